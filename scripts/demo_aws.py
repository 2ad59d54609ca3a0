"""Small AWS helpers for scripts/demo.sh, run with .venv's Python (boto3 comes with moto[server]).

The endpoint, region and credentials come from the environment (AWS_ENDPOINT_URL, the
emulator's admin keys that scripts/demo.sh exports), as for the function itself.

  seed NAME REGION INITIAL NEW     create the secret with INITIAL, then PutSecretValue NEW;
                                   prints {"arn", "versionId"} of the new value
  event ARN NAME REGION ACCOUNT    prints an EventBridge "AWS API Call via CloudTrail"
                                   PutSecretValue event for it
  state NAME REGION                prints {"value", "currentVersion", "versions"} (value null when
                                   the secret does not exist)
  compare SRC_LABEL SRC DST_LABEL DST
                                   prints the two values field by field, source above copy
"""

import json
import sys

ACCOUNT = "123456789012"  # moto's default account


def client(region):
    import boto3  # imported here: `event` and `compare` need no AWS

    return boto3.client("secretsmanager", region_name=region)


def seed(name, region, initial, new):
    sm = client(region)
    sm.create_secret(Name=name, SecretString=initial, Description="demo source secret")
    r = sm.put_secret_value(SecretId=name, SecretString=new)
    print(json.dumps({"arn": r["ARN"], "versionId": r["VersionId"]}))


def event(arn, name, region, account):
    print(
        json.dumps(
            {
                "version": "0",
                "id": "3f1c2a9e-7b6d-4e5f-8a9b-0c1d2e3f4a5b",
                "detail-type": "AWS API Call via CloudTrail",
                "source": "aws.secretsmanager",
                "account": account,
                "time": "2026-11-20T09:15:03Z",
                "region": region,
                "resources": [],
                "detail": {
                    "eventVersion": "1.09",
                    "userIdentity": {
                        "type": "AssumedRole",
                        "principalId": "AROAEXAMPLEID:jdoe",
                        "arn": f"arn:aws:sts::{account}:assumed-role/platform-admin/jdoe",
                        "accountId": account,
                        "sessionContext": {
                            "sessionIssuer": {
                                "type": "Role",
                                "principalId": "AROAEXAMPLEID",
                                "arn": f"arn:aws:iam::{account}:role/platform-admin",
                                "accountId": account,
                                "userName": "platform-admin",
                            }
                        },
                    },
                    "eventTime": "2026-11-20T09:15:02Z",
                    "eventSource": "secretsmanager.amazonaws.com",
                    "eventName": "PutSecretValue",
                    "awsRegion": region,
                    "sourceIPAddress": "203.0.113.10",
                    "userAgent": "aws-cli/2.17.0",
                    "requestParameters": {"secretId": name},
                    "responseElements": {"arn": arn},
                    "requestID": "2c7f0f3e-0d1b-4b2e-9b8e-6f1f9f1c0a11",
                    "eventID": "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
                    "readOnly": False,
                    "eventType": "AwsApiCall",
                    "managementEvent": True,
                    "recipientAccountId": account,
                    "eventCategory": "Management",
                },
            },
            indent=2,
        )
    )


def state(name, region):
    sm = client(region)
    try:
        value = sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
    except sm.exceptions.ResourceNotFoundException:
        print(json.dumps({"value": None, "currentVersion": None, "versions": 0}))
        return
    ids, token = [], None
    while True:
        kw = {"SecretId": name, "IncludeDeprecated": True}
        if token:
            kw["NextToken"] = token
        page = sm.list_secret_version_ids(**kw)
        ids += [v["VersionId"] for v in page.get("Versions", [])]
        token = page.get("NextToken")
        if not token:
            break
    print(
        json.dumps(
            {
                "value": value.get("SecretString"),
                "currentVersion": value["VersionId"],
                "versions": len(ids),
            }
        )
    )


def compare(src_label, src, dst_label, dst):
    """Each field of the two values, source above destination, so a rewrite lines up."""
    try:
        s, d = json.loads(src), json.loads(dst)
    except ValueError:
        s = d = None
    if not (isinstance(s, dict) and isinstance(d, dict)):
        s, d = {"value": src}, {"value": dst}
    w = max(len(k) for k in list(s) + list(d))
    lw = max(len(src_label), len(dst_label))
    for k in list(s) + [k for k in d if k not in s]:
        a = json.dumps(s[k]) if k in s else "(absent)"
        b = json.dumps(d[k]) if k in d else "(absent)"
        if a == b:
            print(f"  {k:<{w}}  {'both':<{lw}}  {a}")
        else:
            print(f"  {k:<{w}}  {src_label:<{lw}}  {a}")
            print(f"  {'':<{w}}  {dst_label:<{lw}}  {b}   <- rewritten")


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "seed":
        seed(*args)
    elif cmd == "event":
        event(*args)
    elif cmd == "state":
        state(*args)
    elif cmd == "compare":
        compare(*args)
    else:
        sys.exit(f"demo_aws.py: unknown command {cmd!r}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv)
