"""moto, corrected where it differs from AWS, with IAM enforced: the emulator every suite runs on.

    .venv/bin/python tests/moto/server.py -H 127.0.0.1 -p PORT

The same server as `moto_server` (request recording included; `-p 0` binds any free port and
`MOTO_PORT_FILE=FILE` receives the port once it listens), plus:

- corrections (monkey-patches), each next to the AWS documentation that says how AWS behaves
  (SPEC §12, last paragraph, lists where moto differs);
- `MOTO_IAM_SETUP=FILE`: identities created directly in moto's backends before serving (and again
  after every `POST /moto-api/reset`), with fixed credentials; then IAM is enforced for every
  request (`INITIAL_NO_AUTH_ACTION_COUNT` = 0). Without it nothing is enforced. The file is written
  by the Rust harness (`tests/common/iam_setup.rs`):

      {"users": [{"account", "name", "access_key_id", "secret_access_key", "policy"}],
       "roles": [{"arn", "trust", "policy",
                  "sessions": [{"session_name", "access_key_id", "secret_access_key",
                                "session_token"}]}]}

  `policy`/`trust` are IAM policy documents. Conditions are stripped from every statement the
  launcher installs: moto evaluates only `StringEquals` and only when the request carries the key
  (so a trust policy requiring `sts:ExternalId` would let a request without one through, and
  `ArnLike aws:PrincipalArn` would be ignored). Trust policies are evaluated here instead, their
  conditions included (section 6); identity-policy conditions are left to the static policy tests
  (SPEC §11), which evaluate them against the calls recorded below. Resources that are template placeholders (`<FailureQueue.Arn>`:
  resources the emulator does not have) are dropped.
- `MOTO_IAM_LOG=FILE`: one JSON object per line for every AWS request authorized or denied:
  principal, principal_role, account, region, action, resource, context, kms_keys, allowed.
- `MOTO_PRIMARY_REGION=recorded|every` (default `recorded`): `PrimaryRegion` as real AWS was
  recorded answering (absent on a primary without replicas), or on every secret, as the
  documentation reads (section 2).

moto handles writes one at a time and reads side by side (its backends are not safe under
concurrent requests; AWS is): see `serve`.

Requests carrying `X-Harness-Internal` (the harness's own bookkeeping, e.g. the
GetCallerIdentity behind `Moto::account_of`) are neither checked nor logged.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
from typing import Any

from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.exceptions import JsonRESTError, _RESTError
from moto.iam.access_control import (
    AssumedRoleAccessKey,
    IAMPolicy,
    IAMRequest,
    IAMUserAccessKey,
)
from moto.iam.models import AccessKey, iam_backends
from moto.kms.models import kms_backends
from moto.kms.responses import KmsResponse
from moto.moto_api._internal.models import MotoAPIBackend
from moto.secretsmanager.exceptions import InvalidRequestException, SecretsManagerClientError
from moto.secretsmanager.models import (
    FakeSecret,
    ReplicaSecret,
    SecretsManagerBackend,
    secretsmanager_backends,
)
from moto.secretsmanager.responses import SecretsManagerResponse
from moto.sts.models import AssumedRole, sts_backends

# The patches below are written against this moto's internals (scripts/venv.sh allows any 5.x).
VERIFIED_MOTO = "5.2.5"
PARTITION = "aws"
INTERNAL_HEADER = "X-Harness-Internal"
# The suffix of the ARN a secret would get (AWS appends a hyphen and six random characters).
PLACEHOLDER_SUFFIX = "??????"
AWS_MANAGED_SM_KEY = "alias/aws/secretsmanager"
JSON_SERVICES = ("secretsmanager", "kms")


# ---- 1. UpdateSecretVersionStage moves the default version with AWSCURRENT ---------------------
#
# AWS, GetSecretValue (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html):
#   "If you don't specify either a VersionStage or VersionId, then Secrets Manager returns the
#   AWSCURRENT version."
# AWS, UpdateSecretVersionStage (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_UpdateSecretVersionStage.html):
#   "Each staging label can be attached to only one version at a time" and "Whenever you move
#   AWSCURRENT, Secrets Manager automatically moves the label AWSPREVIOUS to the version that
#   AWSCURRENT was removed from."
# moto keeps a `default_version_id` that UpdateSecretVersionStage does not move: its next
# GetSecretValue without a stage serves the old value, and its next PutSecretValue demotes the
# old default (not the version holding AWSCURRENT), leaving AWSCURRENT on two versions.

_orig_update_stage = SecretsManagerBackend.update_secret_version_stage


def _update_secret_version_stage(self, secret_id, version_stage, remove_from_version_id, move_to_version_id):  # type: ignore[no-untyped-def]
    _refuse_if_deleted(self, secret_id)
    arn, name = _orig_update_stage(
        self,
        secret_id=secret_id,
        version_stage=version_stage,
        remove_from_version_id=remove_from_version_id,
        move_to_version_id=move_to_version_id,
    )
    secret = self.secrets[secret_id]
    if version_stage == "AWSCURRENT" and move_to_version_id and isinstance(secret, FakeSecret):
        secret.set_default_version_id(move_to_version_id)
    return arn, name


def _reset_default_version(self, secret_version, version_id):  # type: ignore[no-untyped-def]
    # The version that holds AWSCURRENT now (by its label, not moto's default) becomes
    # AWSPREVIOUS and loses AWSPENDING (8., below); any label the new version carries leaves the
    # version it was on ("Each staging label can be attached to only one version at a time").
    new_stages = set(secret_version.get("version_stages") or [])
    for old in self.versions.values():
        if "AWSPREVIOUS" in old["version_stages"]:
            old["version_stages"].remove("AWSPREVIOUS")
    for vid, old in self.versions.items():
        if vid == version_id:
            continue
        if "AWSCURRENT" in old["version_stages"]:
            old["version_stages"] = [
                s for s in old["version_stages"] if s not in ("AWSCURRENT", "AWSPENDING")
            ]
            old["version_stages"].append("AWSPREVIOUS")
        old["version_stages"] = [
            s for s in old["version_stages"] if s not in new_stages or s == "AWSPREVIOUS"
        ]
    self.versions[version_id] = secret_version
    self.default_version_id = version_id


SecretsManagerBackend.update_secret_version_stage = _update_secret_version_stage  # type: ignore[method-assign]
FakeSecret.reset_default_version = _reset_default_version  # type: ignore[method-assign]


# ---- 2. PrimaryRegion as recorded; 3. only labelled versions in VersionIdsToStages -------------
#
# Recorded (LocalStack's AWS-validated snapshots, tests/aws/services/secretsmanager/
# test_secretsmanager.snapshot.json in localstack/localstack; recorded 2022-09-28, last validated
# against AWS 2024-03-15 per test_secretsmanager.validation.json): a plain primary has no
# PrimaryRegion in DescribeSecret (`TestSecretsManager::test_update_secret_description`,
# `describe_secret_res_0..4`; `test_create_and_update_secret`, `describe_secret_rs_1`) nor in
# ListSecrets (`test_call_lists_secrets_multiple_times_snapshots`, `list_secrets_res_0..2`).
# AWS, DescribeSecret (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DescribeSecret.html):
#   PrimaryRegion: "The Region the secret is in. If a secret is replicated to other Regions, the
#   replicas are listed in ReplicationStatus." The page's example (a secret with a replica in
#   eu-west-3) shows it on a primary that has replicas; SecretListEntry.PrimaryRegion is the same
#   for ListSecrets. moto sets it on replicas only.
# So by default (`MOTO_PRIMARY_REGION=recorded`): absent on a primary without replicas, the
# secret's own region on a primary with replicas, the primary's region on a replica (moto's
# ReplicaSecret). `MOTO_PRIMARY_REGION=every` puts it on every secret, the documented reading
# ("the Region the secret is in"): the suites that decide ownership run both ways (SPEC §12).
# AWS, DescribeSecret: VersionIdsToStages is "A list of the versions of the secret that have
#   staging labels attached. Versions that don't have staging labels are considered deprecated
#   and Secrets Manager can delete them." (ListSecrets' SecretVersionsToStages likewise.)
#   moto lists every version.

PRIMARY_REGION_MODES = ("recorded", "every")
PRIMARY_REGION_MODE = os.environ.get("MOTO_PRIMARY_REGION", "recorded")

_orig_to_dict = FakeSecret.to_dict


def _to_dict(self):  # type: ignore[no-untyped-def]
    dct = _orig_to_dict(self)
    if PRIMARY_REGION_MODE == "every" or self.replicas:
        dct["PrimaryRegion"] = self.region
    else:
        dct.pop("PrimaryRegion", None)
    for key in ("VersionIdsToStages", "SecretVersionsToStages"):
        if key in dct:
            dct[key] = {vid: stages for vid, stages in dct[key].items() if stages}
    return dct


FakeSecret.to_dict = _to_dict  # type: ignore[method-assign]

# AWS, ListSecretVersionIds (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_ListSecretVersionIds.html):
#   IncludeDeprecated: "Versions without staging labels are considered deprecated ... By default,
#   versions without staging labels aren't included." moto ignores the parameter.

_orig_list_versions = SecretsManagerResponse.list_secret_version_ids


def _list_secret_version_ids(self):  # type: ignore[no-untyped-def]
    out = json.loads(_orig_list_versions(self))
    if not self._get_bool_param("IncludeDeprecated", False):
        out["Versions"] = [v for v in out["Versions"] if v.get("VersionStages")]
    return json.dumps(out)


SecretsManagerResponse.list_secret_version_ids = _list_secret_version_ids  # type: ignore[method-assign]


# ---- 7. Writes to a secret scheduled for deletion are InvalidRequestException ------------------
#
# AWS, InvalidRequestException (https://docs.aws.amazon.com/secretsmanager/latest/apireference/CommonErrors.html
# and each write's Errors section, e.g. API_PutSecretValue.html): "A parameter value is not valid
# for the current state of the resource. Possible causes: The secret is scheduled for deletion."
# CreateSecret of a name scheduled for deletion fails the same way. moto accepts PutSecretValue,
# UpdateSecretVersionStage and Tag/UntagResource on such a secret, checks UpdateSecret only after
# its token shortcut, and answers CreateSecret with ResourceExistsException.
# Recorded (localstack/localstack, tests/aws/services/secretsmanager/): CreateSecret of a name
# scheduled for deletion, `TestSecretsManager::test_exp_raised_on_creation_of_secret_scheduled_for_deletion`
# (`invalid_req_ex`, recorded 2022-09-28, validated 2024-03-15): InvalidRequestException, 400,
# "You can't create this secret because a secret with this name is already scheduled for
# deletion."; TagResource and UntagResource on a secret scheduled for deletion,
# `TestSecretsManager::test_tag_untag_resource_on_deleted_secret` (`tag_deleted_secret_error`,
# `untag_deleted_secret_error`, an `@markers.aws.validated` test): InvalidRequestException. The
# API reference says the same for each (API_TagResource.html, API_UntagResource.html, Errors:
# InvalidRequestException "The secret is scheduled for deletion").


def _refuse_if_deleted(backend: SecretsManagerBackend, secret_id: str | None) -> None:
    secret = backend.secrets.get(secret_id) if secret_id else None
    if isinstance(secret, FakeSecret) and secret.is_deleted():
        raise InvalidRequestException(
            "You can't perform this operation on the secret because it was marked for deletion."
        )


def _guard_deleted(name: str, id_param: str) -> None:
    original = getattr(SecretsManagerBackend, name)

    def guarded(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        _refuse_if_deleted(self, kwargs[id_param] if id_param in kwargs else args[0])
        return original(self, *args, **kwargs)

    setattr(SecretsManagerBackend, name, guarded)


for _name, _param in (
    ("put_secret_value", "secret_id"),
    ("update_secret", "secret_id"),
    ("tag_resource", "arn"),
    ("untag_resource", "arn"),
):
    _guard_deleted(_name, _param)

_orig_create_secret = SecretsManagerBackend.create_secret


def _create_secret(self, name, *args, **kwargs):  # type: ignore[no-untyped-def]
    existing = self.secrets.get(name)
    if isinstance(existing, FakeSecret) and existing.is_deleted():
        raise InvalidRequestException(
            "You can't create this secret because a secret with this name is already scheduled "
            "for deletion."
        )
    return _orig_create_secret(self, name, *args, **kwargs)


SecretsManagerBackend.create_secret = _create_secret  # type: ignore[method-assign]


# ---- 8. A plain PutSecretValue drops AWSPENDING from the version it demotes -------------------
#
# Recorded (localstack/localstack, tests/aws/services/secretsmanager/test_secretsmanager.snapshot.json,
# `TestSecretsManager::test_update_secret_version_stages_current_pending`, recorded 2022-09-28,
# validated 2024-03-15): the version holding [AWSCURRENT, AWSPENDING] (`list_secret_version_ids_res_1`)
# keeps only [AWSPREVIOUS] after a PutSecretValue without VersionStages
# (`put_secret_value_res_1`, `list_secret_version_ids_res_2`); the rotation recording
# `test_update_secret_version_stages_current_pending_cycle` (`list_secret_version_ids_res_2`) shows
# the same. Whether custom labels survive on the demoted version is not recorded (nothing may
# depend on it; they are kept here). moto itself drops every label of its *default* version
# (`["AWSPREVIOUS"]`); correction 1 follows the AWSCURRENT label instead, and drops AWSPENDING
# from it in `_reset_default_version` above.


# ---- 9. Secrets Manager's JSON errors carry `Message`, with 400 -------------------------------
#
# Recorded (localstack/localstack, tests/aws/services/secretsmanager/test_secretsmanager.snapshot.json):
# botocore parses the modelled Secrets Manager exceptions' `Message` member from the body, and the
# snapshots show it at the top level of the error response with HTTPStatusCode 400:
# `TestSecretsManager::test_secret_not_found` (ResourceNotFoundException, recorded 2022-09-28,
# validated 2024-03-15), `test_exp_raised_on_creation_of_secret_scheduled_for_deletion`
# (InvalidRequestException), `test_secret_exists_snapshots` (ResourceExistsException),
# `test_get_secret_value_errors` (recorded 2024-04-11). The API reference's CommonErrors and each
# operation's Errors section give 400 for every one of them.
# AWS, KMS (https://docs.aws.amazon.com/kms/latest/APIReference/CommonErrors.html, and the
# awsJson1_1 protocol, https://smithy.io/2.0/aws/protocols/aws-json-1_1-protocol.html): KMS
# errors carry `message`, as moto sends them (no correction).
# moto sends Secrets Manager errors as `{"__type", "message"}`, ResourceNotFoundException and a
# VersionStage/VersionId mismatch with 404.

def _sm_error_init(self, error_type, message, *args, **kwargs):  # type: ignore[no-untyped-def]
    JsonRESTError.__init__(self, error_type, message, *args, **kwargs)
    self.description = json.dumps({"__type": self.error_type, "Message": self.message})
    self.code = 400


SecretsManagerClientError.__init__ = _sm_error_init  # type: ignore[method-assign]


# ---- 5. The resource an IAM check is against ---------------------------------------------------
#
# moto's `call_action` authorizes against `self._determine_resource()` when a response class has
# it, else against "*" (so a policy scoped to some secrets or keys allows nothing).
# AWS, Secrets Manager permissions reference (https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_iam-permissions.html):
#   the actions on a secret take the resource type `Secret`
#   (arn:${Partition}:secretsmanager:${Region}:${Account}:secret:${SecretId}); ListSecrets,
#   GetRandomPassword and BatchGetSecretValue take no resource ("*"). For a secret that does not
#   exist (CreateSecret, or a name nothing has), the ARN is the one it would get: the name, a
#   hyphen and six characters (here a placeholder). The API reference, on SecretId: with a wrong
#   suffix "you receive either a ResourceNotFoundException or an AccessDeniedException error,
#   depending on your permissions", i.e. permissions are checked on ARNs that name no secret.
# AWS, KMS (https://docs.aws.amazon.com/kms/latest/developerguide/cmks-in-iam-policies.html):
#   "To specify a KMS key in an IAM policy statement, you must use its key ARN. You cannot use a
#   key id, alias name, or alias ARN" and "use a wildcard character alone ("*") ... for operations
#   that don't use any particular KMS key, namely CreateKey, GenerateRandom, ListAliases, and
#   ListKeys". A key that does not exist has no key policy to evaluate: KMS answers
#   NotFoundException, so such a request is not IAM-checked here (and not logged).

SM_UNSCOPED = ("ListSecrets", "GetRandomPassword", "BatchGetSecretValue")
KMS_UNSCOPED = ("CreateKey", "ListKeys", "ListAliases", "GenerateRandom")
KMS_ALIAS_OPS = ("CreateAlias", "UpdateAlias", "DeleteAlias")


def _json_body(resp: Any) -> dict[str, Any]:
    try:
        body = json.loads(resp.body or "{}")
        return body if isinstance(body, dict) else {}
    except (TypeError, ValueError):
        return {}


def _sm_arn(region: str, account: str, name: str) -> str:
    return f"arn:{PARTITION}:secretsmanager:{region}:{account}:secret:{name}-{PLACEHOLDER_SUFFIX}"


def _kms_key_arn(account: str, region: str, key_id: str | None) -> str | None:
    """The ARN of a customer-managed key, from any of its ids; None for the AWS managed key (or
    any AWS-managed key) and for keys that cannot be resolved."""
    if not key_id or key_id in (AWS_MANAGED_SM_KEY, f"arn:{PARTITION}:kms:{region}:{account}:{AWS_MANAGED_SM_KEY}"):
        return None
    if key_id.startswith("arn:"):
        parts = key_id.split(":")
        if len(parts) > 5:
            region, account = parts[3], parts[4]
    backend = kms_backends[account][region]
    try:
        key = backend.keys[backend.any_id_to_key_id(key_id)]
    except Exception:
        return None
    if getattr(key, "key_manager", "CUSTOMER") != "CUSTOMER":
        return None
    return key.arn


def _sm_determine_resource(self) -> str:  # type: ignore[no-untyped-def]
    self._iam_kms_keys = []
    try:
        action = self._get_action()
        if action in SM_UNSCOPED:
            return "*"
        body = _json_body(self)
        account, region = self.current_account, self.region
        backend = secretsmanager_backends[account][region]
        keys: list[str | None] = []
        if action == "CreateSecret":
            name = body.get("Name") or ""
            existing = backend.secrets.get(name)
            resource = existing.arn if existing is not None else _sm_arn(region, account, name)
            if existing is not None:
                keys.append(_secret_key_arn(existing))
        else:
            secret_id = body.get("SecretId")
            if not secret_id:
                return "*"
            secret = backend.secrets.get(secret_id)
            if secret is not None:
                resource = secret.arn
                keys.append(_secret_key_arn(secret))
            elif secret_id.startswith("arn:"):
                resource = secret_id
            else:
                resource = _sm_arn(region, account, secret_id)
        if action in ("CreateSecret", "UpdateSecret") and body.get("KmsKeyId"):
            keys.append(_kms_key_arn(account, region, body["KmsKeyId"]))
        self._iam_kms_keys = list(dict.fromkeys(k for k in keys if k))
        return resource
    except Exception:
        return "*"


def _secret_key_arn(secret: FakeSecret | ReplicaSecret) -> str | None:
    source = secret.source if isinstance(secret, ReplicaSecret) else secret
    return _kms_key_arn(source.account_id, source.region, source.kms_key_id)


def _kms_determine_resource(self) -> str:  # type: ignore[no-untyped-def]
    self._iam_kms_keys = []
    try:
        action = self._get_action()
        if action in KMS_UNSCOPED:
            return "*"
        body = _json_body(self)
        account, region = self.current_account, self.region
        if action in KMS_ALIAS_OPS:
            name = body.get("AliasName") or ""
            return name if name.startswith("arn:") else f"arn:{PARTITION}:kms:{region}:{account}:{name}"
        key_id = body.get("KeyId") or body.get("DestinationKeyId")
        if not key_id:
            return "*"
        backend = kms_backends[account][region]
        try:
            return backend.keys[backend.any_id_to_key_id(key_id)].arn
        except Exception:
            self._iam_skip = True  # no such key: NotFoundException, as on AWS
            return "*"
    except Exception:
        return "*"


SecretsManagerResponse._determine_resource = _sm_determine_resource  # type: ignore[attr-defined]
KmsResponse._determine_resource = _kms_determine_resource  # type: ignore[attr-defined]


# ---- policy evaluation (replaces moto's IAMPolicyStatement matching) ---------------------------
#
# AWS, Resource element (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html):
#   "You can use wildcard characters (* and ?) within the individual segments of an ARN ... to
#   represent: Any combination of characters (*); Any single character (?)". moto turns `*` into
#   a regex `.*` and leaves `?` (and `.`) as regex syntax: `secret:name-??????` does not compile.
# AWS, Action element (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html):
#   action names are not case sensitive.
# AWS, policy evaluation logic (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
#   an explicit deny in any policy overrides any allow; otherwise an allow is needed.

ALLOW, DENY, NEUTRAL = "allow", "deny", "neutral"


def _glob(pattern: str, value: str, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _statements(doc: Any) -> list[dict[str, Any]]:
    if isinstance(doc, str):
        doc = json.loads(doc)
    return [s for s in _as_list((doc or {}).get("Statement")) if isinstance(s, dict)]


def _action_matches(stmt: dict[str, Any], action: str) -> bool:
    if "NotAction" in stmt:
        return not any(_glob(p, action, True) for p in _as_list(stmt["NotAction"]))
    return any(_glob(p, action, True) for p in _as_list(stmt.get("Action")))


def _resource_matches(stmt: dict[str, Any], resource: str) -> bool:
    if "NotResource" in stmt:
        return not any(_glob(p, resource) for p in _as_list(stmt["NotResource"]))
    return any(_glob(p, resource) for p in _as_list(stmt.get("Resource")))


def _evaluate_identity(docs: list[Any], action: str, resource: str) -> str:
    result = NEUTRAL
    for doc in docs:
        for stmt in _statements(doc):
            if _action_matches(stmt, action) and _resource_matches(stmt, resource):
                if stmt.get("Effect") == "Deny":
                    return DENY
                if stmt.get("Effect") == "Allow":
                    result = ALLOW
    return result


# ---- 6. Principals in trust policies -----------------------------------------------------------
#
# AWS, Principal element (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html):
#   "AWS account principals ... This delegates authority to the account ... you can use the
#   account ARN (arn:aws:iam::account-ID:root), or a shortened form that consists of the "AWS":
#   prefix followed by the account ID ... Using the account ARN in the Principal element does not
#   limit permissions to only the root user of the account." and, under "IAM role principals",
#   a role named as principal is the role whose sessions (assumed-role principals) are trusted.
# moto compares the caller's ARN with the Principal literally: a role ARN never equals its
# sessions' `arn:aws:sts::…:assumed-role/NAME/SESSION`, and an account root matches no caller.
# AWS, cross-account evaluation (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic-cross-account.html):
#   the trusting account's resource-based policy (the role's trust policy) must allow, and the
#   caller's identity-based policy too. moto looks the role up in the *caller's* account only, so
#   a role in another account was never trust-checked at all; here it is looked up by its ARN.


class Principal:
    def __init__(self, arn: str, account: str, role_arn: str | None):
        self.arn = arn
        self.account = account
        self.role_arn = role_arn

    def matches(self, value: str) -> bool:
        if value == "*":
            return True
        if re.fullmatch(r"[0-9]{12}", value):
            return value == self.account
        m = re.fullmatch(r"arn:[^:]+:iam::([0-9]{12}):root", value)
        if m:
            return m.group(1) == self.account
        if ":role/" in value:
            return value == self.role_arn
        return value == self.arn


def _principal_matches(element: Any, principal: Principal) -> bool:
    if element == "*":
        return True
    if not isinstance(element, dict):
        return False
    return any(principal.matches(v) for v in _as_list(element.get("AWS")))


# The trust policies as written (conditions kept; moto is given them stripped, see the module's
# docstring), by role ARN. Their conditions are evaluated here, for the operators and keys the
# trust policies of this repository use:
# AWS, condition operators (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html):
#   StringEquals / StringLike / ArnEquals / ArnLike ("*" and "?" wildcards for the Like forms);
#   a key absent from the request context makes the condition false (no ...IfExists used here).
# AWS, global condition keys (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-principalarn):
#   aws:PrincipalArn "for IAM roles ... returns the ARN of the role, not the ARN of the user that
#   assumed the role"; for an IAM user, the user's ARN.
_TRUSTS: dict[str, Any] = {}


def _like(pattern: str, value: str) -> bool:
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, flags=re.S) is not None


def _conditions_hold(stmt: dict[str, Any], ctx: dict[str, str]) -> bool:
    for op, pairs in (stmt.get("Condition") or {}).items():
        for key, wanted in pairs.items():
            got = ctx.get(key)
            if got is None:
                return False
            values = _as_list(wanted)
            if op in ("StringEquals", "ArnEquals"):
                ok = got in values
            elif op in ("StringLike", "ArnLike"):
                ok = any(_like(v, got) for v in values)
            else:
                raise SystemExit(f"moto launcher: condition operator {op} not evaluated")
            if not ok:
                return False
    return True


def _evaluate_trust(doc: Any, action: str, principal: Principal, ctx: dict[str, str] | None = None) -> str:
    result = NEUTRAL
    ctx = dict(ctx or {})
    ctx["aws:PrincipalArn"] = principal.role_arn or principal.arn
    for stmt in _statements(doc):
        if not _action_matches(stmt, action):
            continue
        if not _conditions_hold(stmt, ctx):
            continue
        if "NotPrincipal" in stmt:
            hit = not _principal_matches(stmt["NotPrincipal"], principal)
        else:
            hit = _principal_matches(stmt.get("Principal"), principal)
        if not hit:
            continue
        if stmt.get("Effect") == "Deny":
            return DENY
        if stmt.get("Effect") == "Allow":
            result = ALLOW
    return result


def _find_role(arn: str) -> Any:
    m = re.fullmatch(r"arn:[^:]+:iam::([0-9]{12}):role/.+", arn or "")
    if not m:
        return None
    for role in iam_backends[m.group(1)][PARTITION].get_roles():
        if role.arn == arn:
            return role
    return None


def _principal_of(access_key: Any) -> Principal:
    if isinstance(access_key, AssumedRoleAccessKey):
        role_arn = None
        for assumed in sts_backends[access_key.account_id][PARTITION].assumed_roles:
            if assumed.access_key_id == access_key._access_key_id:
                role = _find_role(assumed.role_arn)
                role_arn = role.arn if role is not None else assumed.role_arn
                break
        return Principal(access_key.arn, access_key.account_id, role_arn)
    return Principal(access_key.arn, access_key.account_id, None)


# ---- 4. Denials as AWS sends them --------------------------------------------------------------
#
# AWS, Secrets Manager common errors (https://docs.aws.amazon.com/secretsmanager/latest/apireference/CommonErrors.html):
#   "AccessDeniedException: You do not have sufficient access to perform this action. HTTP Status
#   Code: 400" (KMS: https://docs.aws.amazon.com/kms/latest/APIReference/CommonErrors.html, the
#   same). Both are JSON-protocol services: the error is `{"__type": CODE, "message": ...}` with
#   `x-amzn-ErrorType: CODE` (https://smithy.io/2.0/aws/protocols/aws-json-1_1-protocol.html).
#   moto sends an XML 403 `<ErrorResponse><Errors><Error>` for every service. The same page lists
#   InvalidClientTokenId (403) and IncompleteSignature/SignatureDoesNotMatch for credentials that
#   are unknown or signatures that do not verify: sent as JSON too.
# AWS, STS common errors (https://docs.aws.amazon.com/STS/latest/APIReference/CommonErrors.html):
#   STS is a query-protocol service; its errors are `<ErrorResponse><Error><Type>Sender</Type>
#   <Code>AccessDenied</Code><Message>…</Message></Error><RequestId>…</RequestId></ErrorResponse>`
#   with 403 and the message "User: … is not authorized to perform: sts:AssumeRole on resource:
#   …". moto's 403 has the extra `<Errors>` level, no RequestId and no resource in the message.


class _JsonDenial(JsonRESTError):
    pass


def _deny(resp: Any, code: str, message: str, status: int) -> None:
    service = getattr(resp, "service_name", "")
    if service in JSON_SERVICES:
        err = _JsonDenial(code, message)
        err.code = status
        resp.response_headers["x-amzn-ErrorType"] = code
        resp.response_headers["Content-Type"] = "application/x-amz-json-1.1"
        raise err
    err2 = _RESTError(code, message)
    err2.code = status
    request_id = "c0ffee00-0000-4000-8000-000000000000"
    err2.description = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{_xml_escape(message)}</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    resp.response_headers["Content-Type"] = "text/xml"
    raise err2


def _xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---- the IAM log -------------------------------------------------------------------------------

_log_lock = threading.Lock()


def _log(entry: dict[str, Any]) -> None:
    path = os.environ.get("MOTO_IAM_LOG")
    if not path:
        return
    line = json.dumps(entry, separators=(",", ":")) + "\n"
    with _log_lock:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)


# The Secrets Manager condition keys a recorded call carries, for the static check of
# tests/iam_recorded.rs (moto evaluates none of them). As the Secrets Manager service authorization
# reference lists them ("Actions, resources, and condition keys for AWS Secrets Manager"):
# secretsmanager:ResourceTag/<key> (the tags the secret has before the call), aws:RequestTag/<key>
# and aws:TagKeys (the tags a CreateSecret or TagResource asks for), and the request's own
# secretsmanager:ForceDeleteWithoutRecovery, secretsmanager:BlockPublicPolicy and
# secretsmanager:ForceOverwriteReplicaSecret where the request sets them.
_SM_BOOL_KEYS = ("ForceDeleteWithoutRecovery", "BlockPublicPolicy", "ForceOverwriteReplicaSecret")


def _sm_request_context(resp: Any, action: str) -> dict[str, Any]:
    ctx: dict[str, Any] = {}
    try:
        body = _json_body(resp)
        backend = secretsmanager_backends[resp.current_account][resp.region]
        secret_id = body.get("SecretId") or (body.get("Name") if action == "secretsmanager:CreateSecret" else None)
        secret = backend.secrets.get(secret_id) if secret_id else None
    except Exception:
        return ctx
    for tag in (getattr(secret, "tags", None) or []) if secret is not None else []:
        ctx[f"secretsmanager:ResourceTag/{tag['Key']}"] = tag["Value"]
    if action in ("secretsmanager:CreateSecret", "secretsmanager:TagResource"):
        tags = body.get("Tags") or []
        for tag in tags:
            ctx[f"aws:RequestTag/{tag['Key']}"] = tag["Value"]
        if tags:
            ctx["aws:TagKeys"] = [tag["Key"] for tag in tags]
    for key in _SM_BOOL_KEYS:
        if isinstance(body.get(key), bool):
            ctx[f"secretsmanager:{key}"] = "true" if body[key] else "false"
    return ctx


def _request_context(resp: Any, action: str) -> dict[str, str]:
    if action != "sts:AssumeRole":
        return {}
    ctx: dict[str, str] = {}
    data = resp.querystring or {}
    external_id = _first(data.get("ExternalId"))
    if external_id is not None:
        ctx["sts:ExternalId"] = external_id
    session = _first(data.get("RoleSessionName"))
    if session is not None:
        ctx["sts:RoleSessionName"] = session
    return ctx


def _first(v: Any) -> Any:
    return v[0] if isinstance(v, list) and v else v if not isinstance(v, list) else None


# ---- the check itself (replaces ActionAuthenticatorMixin._authenticate_and_authorize_action) ---

_orig_authenticate = ActionAuthenticatorMixin._authenticate_and_authorize_action


def _authenticate_and_authorize_action(self, iam_request_cls, resource="*"):  # type: ignore[no-untyped-def]
    if iam_request_cls is not IAMRequest:  # S3 keeps moto's own
        return _orig_authenticate(self, iam_request_cls, resource)
    if self.headers.get(INTERNAL_HEADER) is not None or getattr(self, "_iam_skip", False):
        return None
    if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
        ActionAuthenticatorMixin.request_count += 1
        return None
    path = self.raw_path + (f"?{self.parsed_url.query}" if self.parsed_url.query else "")
    try:
        request = IAMRequest(
            account_id=self.current_account,
            method=self.method,
            path=path,
            data=self.data,
            body=self.raw_body,
            headers=self.headers,
            action=self._get_action(),
        )
        request.check_signature()
    except _RESTError as e:
        _deny(self, e.error_type, e.message, e.code)
    action = request._action
    principal = _principal_of(request._access_key)
    allowed, reason = _is_allowed(request, action, resource, principal, _request_context(self, action))
    _log(
        {
            "principal": principal.arn,
            "principal_role": principal.role_arn,
            "account": request.account_id,
            "region": request._region,
            "action": action,
            "resource": resource,
            "context": {**_request_context(self, action), **(_sm_request_context(self, action) if action.startswith("secretsmanager:") else {})},
            "kms_keys": list(getattr(self, "_iam_kms_keys", [])) if action.startswith("secretsmanager:") else [],
            "allowed": allowed,
        }
    )
    if not allowed:
        code = "AccessDeniedException" if self.service_name in JSON_SERVICES else "AccessDenied"
        status = 400 if self.service_name in JSON_SERVICES else 403
        _deny(
            self,
            code,
            f"User: {principal.arn} is not authorized to perform: {action} on resource: {resource} {reason}",
            status,
        )
    return None


def _is_allowed(
    request: IAMRequest, action: str, resource: str, principal: Principal, ctx: dict[str, str] | None = None
) -> tuple[bool, str]:
    if action == "sts:GetCallerIdentity":  # always allowed on AWS, even under an explicit deny
        return True, ""
    docs = [IAMPolicy(p)._policy_json for p in request._access_key.collect_policies()]
    identity = _evaluate_identity(docs, action, resource)
    if identity == DENY:
        return False, "with an explicit deny in an identity-based policy"
    if action == "sts:AssumeRole":
        role = _find_role(resource)
        if role is None:
            return False, "because the role does not exist"
        trust = _evaluate_trust(_TRUSTS.get(role.arn, role.assume_role_policy_document), action, principal, ctx)
        if trust == DENY:
            return False, "with an explicit deny in a resource-based policy"
        if trust != ALLOW:
            return False, "because the role's trust policy does not allow it"
    if identity != ALLOW:
        return False, f"because no identity-based policy allows the {action} action"
    return True, ""


ActionAuthenticatorMixin._authenticate_and_authorize_action = _authenticate_and_authorize_action  # type: ignore[method-assign]


# ---- identities (MOTO_IAM_SETUP) ---------------------------------------------------------------


def _installable(doc: dict[str, Any]) -> str:
    """The document as installed: conditions stripped, placeholder resources dropped."""
    out = []
    for stmt in _statements(doc):
        stmt = {k: v for k, v in stmt.items() if k != "Condition"}
        for key in ("Resource", "NotResource"):
            if key in stmt:
                kept = [r for r in _as_list(stmt[key]) if not (isinstance(r, str) and r.startswith("<"))]
                if not kept:
                    stmt = {}
                    break
                stmt[key] = kept
        if stmt:
            out.append(stmt)
    return json.dumps({"Version": "2012-10-17", "Statement": out})


def _fixed_key(account: str, key_id: str, secret: str, prefix: str, user: str | None) -> AccessKey:
    key = AccessKey(user_name=user, prefix=prefix, account_id=account)
    key.access_key_id = key_id
    key.secret_access_key = secret
    iam_backends[account][PARTITION].access_keys[key_id] = key
    return key


def install(setup: dict[str, Any]) -> None:
    for u in setup.get("users", []):
        iam = iam_backends[u["account"]][PARTITION]
        user = iam.create_user(region_name="us-east-1", user_name=u["name"], path=u.get("path", "/"))
        user.put_policy("policy", _installable(u["policy"]))
        user.access_keys.append(
            _fixed_key(u["account"], u["access_key_id"], u["secret_access_key"], "AKIA", u["name"])
        )
    for r in setup.get("roles", []):
        m = re.fullmatch(r"arn:[^:]+:iam::([0-9]{12}):role(/(?:.*/)?)([^/]+)", r["arn"])
        if not m:
            raise SystemExit(f"MOTO_IAM_SETUP: not a role ARN: {r['arn']}")
        account, path, name = m.group(1), m.group(2), m.group(3)
        iam = iam_backends[account][PARTITION]
        role = iam.create_role(
            role_name=name,
            assume_role_policy_document=_installable(r.get("trust", {"Statement": []})),
            path=path,
            permissions_boundary=None,
            description="",
            tags=[],
            max_session_duration=None,
        )
        role.put_policy("policy", _installable(r["policy"]))
        _TRUSTS[role.arn] = r.get("trust", {"Statement": []})
        for s in r.get("sessions", []):
            key = _fixed_key(account, s["access_key_id"], s["secret_access_key"], "ASIA", None)
            key.role_arn = role.arn
            session = AssumedRole(
                account_id=account,
                region_name="us-east-1",
                access_key=key,
                role_session_name=s["session_name"],
                role_arn=role.arn,
                policy=None,  # type: ignore[arg-type]
                duration=10 * 365 * 86400,
                external_id=None,  # type: ignore[arg-type]
            )
            session.session_token = s["session_token"]
            sts_backends[account][PARTITION].assumed_roles.append(session)


class _ReadWriteLock:
    """Many readers or one writer; a waiting writer holds new readers back (no starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextlib.contextmanager
    def reading(self):
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def writing(self):
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def serve(host: str, port: int) -> None:
    """moto's server (what `moto_server` runs), bound before anything else happens so that port 0
    works: the port it got is written to `MOTO_PORT_FILE` (when set) once it is listening. A
    caller that picks a free port and hands it over races every other process doing the same."""
    import signal

    from werkzeug.serving import make_server

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )

    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # type: ignore[attr-defined]

    # Requests that change moto's state one at a time, reads side by side. AWS serves concurrent
    # requests without corrupting its state; moto's backends are plain dicts, and a thread
    # iterating one (ListSecrets, a version lookup) while another inserts answers 500
    # "RuntimeError: dictionary changed size during iteration" (seen under the `all` bench's
    # concurrent creates). Reads (Get*, Describe*, List*, BatchGet* by their X-Amz-Target) share
    # the lock; everything else (writes, STS, the moto API) holds it alone.
    lock = _ReadWriteLock()

    def serialised(environ, start_response):
        op = environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2]
        if op.startswith(("Get", "Describe", "List", "BatchGet")):
            with lock.reading():
                return list(app(environ, start_response))
        with lock.writing():
            return list(app(environ, start_response))

    server = make_server(host, port, serialised, threaded=True, request_handler=MotoRequestHandler)
    os.environ["MOTO_PORT"] = str(server.port)
    port_file = os.environ.get("MOTO_PORT_FILE")
    if port_file:
        with open(port_file + ".tmp", "w", encoding="utf-8") as f:
            f.write(str(server.port))
        os.replace(port_file + ".tmp", port_file)
    print(f" * Running on http://{host}:{server.port}", flush=True)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(0))
    server.serve_forever()


def main() -> None:
    import argparse

    import moto

    if moto.__version__ != VERIFIED_MOTO:
        print(
            f"tests/moto/server.py: written against moto {VERIFIED_MOTO}, running "
            f"{moto.__version__}: check the corrections still apply",
            file=sys.stderr,
            flush=True,
        )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("-p", "--port", type=int, default=5000, help="port (0: any free one)")
    args = parser.parse_args()
    if PRIMARY_REGION_MODE not in PRIMARY_REGION_MODES:
        raise SystemExit(
            f"MOTO_PRIMARY_REGION={PRIMARY_REGION_MODE!r}: expected one of {', '.join(PRIMARY_REGION_MODES)}"
        )

    setup_path = os.environ.get("MOTO_IAM_SETUP")
    if setup_path:
        with open(setup_path, encoding="utf-8") as f:
            setup = json.load(f)
        install(setup)
        # `POST /moto-api/reset` wipes every backend, identities included: install them again.
        orig_reset = MotoAPIBackend.reset

        def reset(self):  # type: ignore[no-untyped-def]
            orig_reset(self)
            install(setup)

        MotoAPIBackend.reset = reset  # type: ignore[method-assign]
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        ActionAuthenticatorMixin.request_count = 0

    serve(args.host, args.port)


if __name__ == "__main__":
    main()
