//! The IAM policies of `template.yaml` and `iam/`, evaluated with their conditions (SPEC §11:
//! "static tests over template.yaml and iam/ check what the emulator does not evaluate").
//!
//! - (a) The evaluator of `tests/common/iam.rs` itself, against the examples of the IAM User
//!   Guide ("IAM JSON policy elements: Condition operators", "Condition", "Resource", and the
//!   multivalued-condition page).
//! - (b) Every policy: the template's roles under several parameter sets, the suites' stacks,
//!   `iam/destination-role.yaml` resolved, and every JSON document under `iam/`.
//! - (c) No statement allows any action on resource `*` except `secretsmanager:ListSecrets`;
//!   Secrets Manager writes and `sts:AssumeRole` name their resources; the function role grants
//!   exactly what the template's parameters allow.
//! - (d) No trust statement lets a principal of another account assume a role without
//!   `StringEquals sts:ExternalId`, nor any principal but the function role even with it.
//! - (e) KMS data actions only with `kms:ViaService` = Secrets Manager, in identity and key
//!   policies; key policies have no open principal.
//!
//! `tests/iam_recorded.rs` checks the calls the suites made against the same statements.

mod common;

use common::cfn::{
    CROSS_ACCOUNT, MAXIMAL, MINIMAL, Stack, files, load_cfn, read_json, resolve, resolve_in, root,
    scenarios, template,
};
use common::iam::{
    Caller, Context, Decision, Kind, Names, Policy, PrincipalName, Request, arn_like, evaluate,
    glob, resource_matches,
};
use common::policies::{self, DEST_ROLE_ARN, FUNCTION_ROLE_ARN};
use serde_json::{Value, json};
use std::collections::BTreeSet;

// ---- (a) the evaluator, against the IAM User Guide's examples ---------------------------------

/// An IAM user of the guide's examples (long-term keys: no `aws:TokenIssueTime`).
const USER: &str = "arn:aws:iam::111122223333:user/bob";

fn identity(statements: Value) -> Policy {
    let statements = match statements {
        Value::Array(a) => a,
        one => vec![one],
    };
    Policy::new("test policy", Kind::Identity, &statements)
}

fn resource_policy(statements: Value) -> Policy {
    let statements = match statements {
        Value::Array(a) => a,
        one => vec![one],
    };
    Policy::new("test resource policy", Kind::Resource, &statements)
}

fn request(caller: &Caller, action: &str, resource: &str, context: &Value) -> Request {
    Request {
        caller: caller.clone(),
        action: action.into(),
        resource: resource.into(),
        context: Context::from_json(context),
    }
}

/// Condition operators: `(example, Condition element, request context, allowed)`, each under
/// `{"Effect": "Allow", "Action": "s:A", "Resource": "*", "Condition": ...}`.
const CONDITIONS: &[(&str, &str, &str, bool)] = &[
    // String operators: the aws:PrincipalTag/job-category example.
    (
        "StringEquals: a principal tagged iamuser-admin",
        r#"{"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}}"#,
        r#"{"aws:PrincipalTag/job-category": "iamuser-admin"}"#,
        true,
    ),
    (
        "StringEquals: another job category",
        r#"{"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}}"#,
        r#"{"aws:PrincipalTag/job-category": "dev-ops"}"#,
        false,
    ),
    (
        "StringEquals: a user without the tag (key not in the request context: false)",
        r#"{"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}}"#,
        r#"{}"#,
        false,
    ),
    (
        "StringEquals is case-sensitive",
        r#"{"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}}"#,
        r#"{"aws:PrincipalTag/job-category": "IAMuser-Admin"}"#,
        false,
    ),
    // The Condition element page: "only requests made by john match. Users named John are
    // denied"; StringEqualsIgnoreCase matches both.
    (
        "StringEquals aws:username john, request John",
        r#"{"StringEquals": {"aws:username": "john"}}"#,
        r#"{"aws:username": "John"}"#,
        false,
    ),
    (
        "StringEqualsIgnoreCase aws:username john, request John",
        r#"{"StringEqualsIgnoreCase": {"aws:username": "john"}}"#,
        r#"{"aws:username": "John"}"#,
        true,
    ),
    (
        "StringNotEqualsIgnoreCase aws:username john, request JOHN",
        r#"{"StringNotEqualsIgnoreCase": {"aws:username": "john"}}"#,
        r#"{"aws:username": "JOHN"}"#,
        false,
    ),
    // "Context key names are not case-sensitive": aws:SourceIP is aws:SourceIp.
    (
        "condition key names are case-insensitive",
        r#"{"StringEquals": {"AWS:SourceIp": "203.0.113.7"}}"#,
        r#"{"aws:SourceIP": "203.0.113.7"}"#,
        true,
    ),
    // The s3:prefix home-directory example (its policy variable written out: variables are
    // refused, see `policy_variables_and_unsupported_operators_are_refused`).
    (
        "StringLike s3:prefix: the empty prefix is one of the values",
        r#"{"StringLike": {"s3:prefix": ["", "home/", "home/bob/"]}}"#,
        r#"{"s3:prefix": ""}"#,
        true,
    ),
    (
        "StringLike s3:prefix: home/bob/",
        r#"{"StringLike": {"s3:prefix": ["", "home/", "home/bob/"]}}"#,
        r#"{"s3:prefix": "home/bob/"}"#,
        true,
    ),
    (
        "StringLike s3:prefix: another user's home (no wildcard: no partial match)",
        r#"{"StringLike": {"s3:prefix": ["", "home/", "home/bob/"]}}"#,
        r#"{"s3:prefix": "home/alice/"}"#,
        false,
    ),
    (
        "StringLike: * and ? anywhere",
        r#"{"StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.co?"}}"#,
        r#"{"kms:ViaService": "secretsmanager.us-west-2.amazonaws.com"}"#,
        true,
    ),
    (
        "StringLike is case-sensitive",
        r#"{"StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"}}"#,
        r#"{"kms:ViaService": "SecretsManager.us-west-2.amazonaws.com"}"#,
        false,
    ),
    // "If the policy condition requires that the key is not matched, such as StringNotLike or
    // ArnNotLike, and the right key is not present, the condition is true."
    (
        "StringNotLike with the key absent is true",
        r#"{"StringNotLike": {"s3:prefix": "home/*"}}"#,
        r#"{}"#,
        true,
    ),
    (
        "ArnNotLike with the key absent is true",
        r#"{"ArnNotLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:*"}}"#,
        r#"{}"#,
        true,
    ),
    (
        "StringNotEquals with the key absent is true",
        r#"{"StringNotEquals": {"aws:PrincipalTag/team": "a"}}"#,
        r#"{}"#,
        true,
    ),
    // Multiple values OR; a negated operator's values NOR.
    (
        "StringEquals with several values: any one matches",
        r#"{"StringEquals": {"kms:ViaService": ["secretsmanager.us-east-1.amazonaws.com", "secretsmanager.us-west-2.amazonaws.com"]}}"#,
        r#"{"kms:ViaService": "secretsmanager.us-west-2.amazonaws.com"}"#,
        true,
    ),
    (
        "StringNotEquals with several values: true only when none matches",
        r#"{"StringNotEquals": {"aws:RequestedRegion": ["us-east-1", "us-west-2"]}}"#,
        r#"{"aws:RequestedRegion": "us-west-2"}"#,
        false,
    ),
    (
        "StringNotEquals with several values: none matches",
        r#"{"StringNotEquals": {"aws:RequestedRegion": ["us-east-1", "us-west-2"]}}"#,
        r#"{"aws:RequestedRegion": "eu-west-1"}"#,
        true,
    ),
    // Several keys under one operator AND; several operators AND.
    (
        "two keys under StringEquals: both must match",
        r#"{"StringEquals": {"kms:ViaService": "secretsmanager.us-west-2.amazonaws.com", "kms:CallerAccount": "222222222222"}}"#,
        r#"{"kms:ViaService": "secretsmanager.us-west-2.amazonaws.com", "kms:CallerAccount": "111111111111"}"#,
        false,
    ),
    (
        "two keys under StringEquals: both match",
        r#"{"StringEquals": {"kms:ViaService": "secretsmanager.us-west-2.amazonaws.com", "kms:CallerAccount": "222222222222"}}"#,
        r#"{"kms:ViaService": "secretsmanager.us-west-2.amazonaws.com", "kms:CallerAccount": "222222222222"}"#,
        true,
    ),
    (
        "two operators: both must hold",
        r#"{"StringEquals": {"sts:ExternalId": "abc"}, "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111111111111:role/secret-replicator/*"}}"#,
        r#"{"sts:ExternalId": "abc", "aws:PrincipalArn": "arn:aws:iam::111111111111:role/other"}"#,
        false,
    ),
    (
        "two operators: both hold",
        r#"{"StringEquals": {"sts:ExternalId": "abc"}, "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111111111111:role/secret-replicator/*"}}"#,
        r#"{"sts:ExternalId": "abc", "aws:PrincipalArn": "arn:aws:iam::111111111111:role/secret-replicator/fn-AbC"}"#,
        true,
    ),
    // Boolean: the aws:SecureTransport example (as a positive Allow here; the Deny form is in
    // `explicit_deny_beats_allow_and_the_decision_names_the_statement`).
    (
        "Bool aws:SecureTransport true",
        r#"{"Bool": {"aws:SecureTransport": "true"}}"#,
        r#"{"aws:SecureTransport": "true"}"#,
        true,
    ),
    (
        "Bool aws:SecureTransport true, request over plain HTTP",
        r#"{"Bool": {"aws:SecureTransport": "true"}}"#,
        r#"{"aws:SecureTransport": "false"}"#,
        false,
    ),
    (
        "Bool with the key absent is false",
        r#"{"Bool": {"aws:SecureTransport": "true"}}"#,
        r#"{}"#,
        false,
    ),
    (
        "Bool takes a JSON true as well",
        r#"{"Bool": {"aws:SecureTransport": true}}"#,
        r#"{"aws:SecureTransport": "true"}"#,
        true,
    ),
    // ARN operators: the six parts compared one by one.
    (
        "ArnEquals aws:SourceArn: the topic of the SQS example",
        r#"{"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TOPIC-ID"}}"#,
        r#"{"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TOPIC-ID"}"#,
        true,
    ),
    (
        "ArnEquals aws:SourceArn: an IAM user calling directly (key absent)",
        r#"{"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TOPIC-ID"}}"#,
        r#"{}"#,
        false,
    ),
    (
        "ArnLike: the guide's pattern on its matching value",
        r#"{"ArnLike": {"aws:SourceArn": "arn:aws:someservice:*:111122223333:finance/*"}}"#,
        r#"{"aws:SourceArn": "arn:aws:someservice:us-east-2:111122223333:finance/document.txt"}"#,
        true,
    ),
    (
        "ArnLike: the first * matches only us-east-2, so the guide's trick value fails",
        r#"{"ArnLike": {"aws:SourceArn": "arn:aws:someservice:*:111122223333:finance/*"}}"#,
        r#"{"aws:SourceArn": "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"}"#,
        false,
    ),
    (
        "StringLike: the guide's trick value matches (the first * spans colons)",
        r#"{"StringLike": {"aws:SourceArn": "arn:aws:someservice:*:111122223333:finance/*"}}"#,
        r#"{"aws:SourceArn": "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"}"#,
        true,
    ),
    (
        "ArnLike is case-sensitive",
        r#"{"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111111111111:role/secret-replicator/*"}}"#,
        r#"{"aws:PrincipalArn": "arn:aws:iam::111111111111:role/Secret-Replicator/fn"}"#,
        false,
    ),
    (
        "ArnNotEquals: another topic",
        r#"{"ArnNotEquals": {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TOPIC-ID"}}"#,
        r#"{"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:OTHER"}"#,
        true,
    ),
    // ...IfExists: the ec2:InstanceType example, on a resource without the key (an image).
    (
        "StringLike ec2:InstanceType on a resource without the key: THISPOLICYDOESNOTWORK",
        r#"{"StringLike": {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}}"#,
        r#"{}"#,
        false,
    ),
    (
        "StringLikeIfExists ec2:InstanceType on a resource without the key",
        r#"{"StringLikeIfExists": {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}}"#,
        r#"{}"#,
        true,
    ),
    (
        "StringLikeIfExists ec2:InstanceType t2.micro",
        r#"{"StringLikeIfExists": {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}}"#,
        r#"{"ec2:InstanceType": "t2.micro"}"#,
        true,
    ),
    (
        "StringLikeIfExists ec2:InstanceType m4.large",
        r#"{"StringLikeIfExists": {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}}"#,
        r#"{"ec2:InstanceType": "m4.large"}"#,
        false,
    ),
    (
        "StringEqualsIfExists sts:ExternalId absent: the trap a trust policy must avoid",
        r#"{"StringEqualsIfExists": {"sts:ExternalId": "abc"}}"#,
        r#"{}"#,
        true,
    ),
    // Null: the aws:TokenIssueTime example (no temporary credentials).
    (
        "Null aws:TokenIssueTime true: long-term keys",
        r#"{"Null": {"aws:TokenIssueTime": "true"}}"#,
        r#"{}"#,
        true,
    ),
    (
        "Null aws:TokenIssueTime true: temporary credentials",
        r#"{"Null": {"aws:TokenIssueTime": "true"}}"#,
        r#"{"aws:TokenIssueTime": "2020-01-01T00:00:01Z"}"#,
        false,
    ),
    (
        "Null aws:TokenIssueTime false: the key must exist",
        r#"{"Null": {"aws:TokenIssueTime": "false"}}"#,
        r#"{}"#,
        false,
    ),
    // Set operators: the DynamoDB requestedAttributes examples.
    (
        "ForAllValues:StringLike: PostDateTime and Message are both allowed attributes",
        r#"{"ForAllValues:StringLike": {"dynamodb:requestedAttributes": ["PostDateTime", "Message", "Tags"]}}"#,
        r#"{"dynamodb:requestedAttributes": ["PostDateTime", "Message"]}"#,
        true,
    ),
    (
        "ForAllValues:StringLike: UserName matches no allowed attribute",
        r#"{"ForAllValues:StringLike": {"dynamodb:requestedAttributes": ["PostDateTime", "Message", "Tags"]}}"#,
        r#"{"dynamodb:requestedAttributes": ["PostDateTime", "UserName"]}"#,
        false,
    ),
    (
        "ForAllValues over an empty set is true",
        r#"{"ForAllValues:StringLike": {"dynamodb:requestedAttributes": ["PostDateTime", "Message", "Tags"]}}"#,
        r#"{"dynamodb:requestedAttributes": []}"#,
        true,
    ),
    (
        "ForAllValues with the key absent is true",
        r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}"#,
        r#"{}"#,
        true,
    ),
    (
        "ForAnyValue:StringLike: PostDateTime is one of ID, PostDateTime",
        r#"{"ForAnyValue:StringLike": {"dynamodb:requestedAttributes": ["ID", "PostDateTime"]}}"#,
        r#"{"dynamodb:requestedAttributes": ["UserName", "Message", "PostDateTime"]}"#,
        true,
    ),
    (
        "ForAnyValue:StringLike: UserName alone matches neither",
        r#"{"ForAnyValue:StringLike": {"dynamodb:requestedAttributes": ["ID", "PostDateTime"]}}"#,
        r#"{"dynamodb:requestedAttributes": ["UserName"]}"#,
        false,
    ),
    (
        "ForAnyValue over an empty set is false",
        r#"{"ForAnyValue:StringLike": {"dynamodb:requestedAttributes": ["ID", "PostDateTime"]}}"#,
        r#"{"dynamodb:requestedAttributes": []}"#,
        false,
    ),
    (
        "ForAnyValue:StringEqualsIfExists with the key absent is true",
        r#"{"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": ["team"]}}"#,
        r#"{}"#,
        true,
    ),
    (
        "ForAllValues:StringNotEquals: no requested tag key is forbidden",
        r#"{"ForAllValues:StringNotEquals": {"aws:TagKeys": ["owner", "secret-replicator:source"]}}"#,
        r#"{"aws:TagKeys": ["team", "env"]}"#,
        true,
    ),
    (
        "ForAllValues:StringNotEquals: one requested tag key is forbidden",
        r#"{"ForAllValues:StringNotEquals": {"aws:TagKeys": ["owner", "secret-replicator:source"]}}"#,
        r#"{"aws:TagKeys": ["team", "secret-replicator:source"]}"#,
        false,
    ),
];

#[test]
fn condition_operators_evaluate_as_the_iam_user_guide_describes() {
    let caller = Caller::user(USER);
    let mut wrong = Vec::new();
    for (example, condition, context, want) in CONDITIONS {
        let condition: Value = serde_json::from_str(condition).unwrap();
        let context: Value = serde_json::from_str(context).unwrap();
        let p = identity(json!({
            "Sid": "Case", "Effect": "Allow", "Action": "s:A", "Resource": "*",
            "Condition": condition
        }));
        let d = evaluate(&[&p], &request(&caller, "s:A", "x", &context));
        if d.allowed() != *want {
            wrong.push(format!("{example}: expected {want}, got {d}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn actions_match_case_insensitively_with_wildcards() {
    // The PrincipalTag example's action pattern `iam:*AccessKey*`.
    for (pattern, action, want) in [
        ("iam:*AccessKey*", "iam:CreateAccessKey", true),
        ("iam:*AccessKey*", "iam:ListAccessKeys", true),
        ("iam:*AccessKey*", "iam:CreateUser", false),
        // "The prefix and the action name are case insensitive": SQS:SendMessage.
        ("SQS:SendMessage", "sqs:sendmessage", true),
        (
            "secretsmanager:Get?ecretValue",
            "secretsmanager:GetSecretValue",
            true,
        ),
        ("secretsmanager:List*", "secretsmanager:ListSecrets", true),
        (
            "kms:GenerateDataKey*",
            "kms:GenerateDataKeyWithoutPlaintext",
            true,
        ),
        (
            "kms:GenerateDataKey",
            "kms:GenerateDataKeyWithoutPlaintext",
            false,
        ),
        ("*", "sts:AssumeRole", true),
        // A service prefix is matched too, not just the name.
        ("secretsmanager:*", "kms:Decrypt", false),
    ] {
        let p = identity(json!({"Effect": "Allow", "Action": pattern, "Resource": "*"}));
        let d = evaluate(
            &[&p],
            &request(&Caller::user(USER), action, "*", &json!({})),
        );
        assert_eq!(d.allowed(), want, "{pattern} vs {action}: {d}");
    }
    // NotAction: everything but the listed actions.
    let p = identity(json!({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}));
    let d = |a: &str| evaluate(&[&p], &request(&Caller::user(USER), a, "*", &json!({})));
    assert!(d("s3:GetObject").allowed());
    assert!(!d("iam:CreateUser").allowed());
}

#[test]
fn resources_match_case_sensitively_by_arn_part() {
    for (pattern, resource, want) in [
        // The Resource page: "In the Resource element, the IAM user name is case sensitive".
        (
            "arn:aws:iam::111122223333:user/Bob",
            "arn:aws:iam::111122223333:user/Bob",
            true,
        ),
        (
            "arn:aws:iam::111122223333:user/Bob",
            "arn:aws:iam::111122223333:user/bob",
            false,
        ),
        (
            "arn:aws:iam::111122223333:user/accounting/*",
            "arn:aws:iam::111122223333:user/accounting/alice",
            true,
        ),
        // Its `*/test/*` example: `*` replaces anything within the part, slashes included.
        (
            "arn:aws:s3:::amzn-s3-demo-bucket/*/test/*",
            "arn:aws:s3:::amzn-s3-demo-bucket/1///test///object.jpg",
            true,
        ),
        (
            "arn:aws:s3:::amzn-s3-demo-bucket/*/test/*",
            "arn:aws:s3:::amzn-s3-demo-bucket//test/object.jpg",
            true,
        ),
        (
            "arn:aws:s3:::amzn-s3-demo-bucket/*/test/*",
            "arn:aws:s3:::amzn-s3-demo-bucket/1/test/",
            true,
        ),
        (
            "arn:aws:s3:::amzn-s3-demo-bucket/*/test/*",
            "arn:aws:s3:::amzn-s3-demo-bucket/1-test/object.jpg",
            false,
        ),
        (
            "arn:aws:s3:::amzn-s3-demo-bucket/*/test/*",
            "arn:aws:s3:::amzn-s3-demo-bucket/test/object.jpg",
            false,
        ),
        (
            "arn:aws:s3:::amzn-s3-demo-bucket/*/test/*",
            "arn:aws:s3:::amzn-s3-demo-bucket/1/2/test.jpg",
            false,
        ),
        // Secrets Manager ARNs end in a 6-character suffix: `-??????` names exactly one secret.
        (
            "arn:aws:secretsmanager:us-east-1:111111111111:secret:secret-replicator/config-??????",
            "arn:aws:secretsmanager:us-east-1:111111111111:secret:secret-replicator/config-AbCdEf",
            true,
        ),
        (
            "arn:aws:secretsmanager:us-east-1:111111111111:secret:secret-replicator/config-??????",
            "arn:aws:secretsmanager:us-east-1:111111111111:secret:secret-replicator/config-x-AbCdEf",
            false,
        ),
        // `?` in the first five parts does not match a colon; `*` in the resource part does.
        (
            "arn:aws:lambda:us-east-1:111111111111:function:fn:*",
            "arn:aws:lambda:us-east-1:111111111111:function:fn:live",
            true,
        ),
        (
            "arn:aws:lambda:us-east-1:111111111111:function:fn:*",
            "arn:aws:lambda:us-east-1:111111111111:function:fn",
            false,
        ),
        (
            "arn:aws:secretsmanager:*:111111111111:secret:dr/*",
            "arn:aws:secretsmanager:eu-west-1:111111111111:secret:dr/app-AbCdEf",
            true,
        ),
        (
            "arn:aws:secretsmanager:*:111111111111:secret:dr/*",
            "arn:aws:secretsmanager:eu-west-1:222222222222:secret:dr/app-AbCdEf",
            false,
        ),
        // "If the * wildcard is the last character of a resource ARN segment, it can expand to
        // match beyond the colon boundaries": the ArnLike trick value matches as a Resource.
        (
            "arn:aws:someservice:*:111122223333:finance/*",
            "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt",
            true,
        ),
        ("*", "*", true),
        ("*", "arn:aws:kms:us-west-2:111111111111:key/k", true),
        ("arn:aws:kms:*:111111111111:key/*", "*", false),
    ] {
        assert_eq!(
            resource_matches(pattern, resource),
            want,
            "{pattern} vs {resource}"
        );
    }
    // ArnLike does not expand: the same trick value fails there.
    assert!(!arn_like(
        "arn:aws:someservice:*:111122223333:finance/*",
        "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"
    ));
    assert!(glob("a*b?c", "axxbyc", false) && !glob("a*b?c", "A-b-c", false));
    // NotResource: everything but the listed resources.
    let p = identity(json!({"Effect": "Allow", "Action": "s:A", "NotResource": "arn:aws:s:::x"}));
    let d = |r: &str| evaluate(&[&p], &request(&Caller::user(USER), "s:A", r, &json!({})));
    assert!(d("arn:aws:s:::y").allowed());
    assert!(!d("arn:aws:s:::x").allowed());
}

#[test]
fn principals_name_accounts_roles_sessions_and_services() {
    let fn_role = "arn:aws:iam::111111111111:role/secret-replicator/fn-AbC";
    let session = Caller::session(fn_role, "replicate");
    assert_eq!(
        session.arn,
        "arn:aws:sts::111111111111:assumed-role/fn-AbC/replicate"
    );
    assert_eq!(session.principal_arn(), Some(fn_role));
    let other_role = Caller::session("arn:aws:iam::111111111111:role/other", "s");
    let foreign = Caller::session("arn:aws:iam::999999999999:role/secret-replicator/fn", "s");
    let user = Caller::user("arn:aws:iam::111111111111:user/alice");
    let lambda = Caller::service("lambda.amazonaws.com");
    let admits = |principal: Value, caller: &Caller| {
        let p = resource_policy(json!({
            "Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"
        }));
        let r = request(
            caller,
            "sts:AssumeRole",
            "arn:aws:iam::2:role/r",
            &json!({}),
        );
        evaluate(&[&p], &r).allowed()
    };
    // The SQS example's `{"AWS": "123456789012"}`: the account, i.e. any principal in it.
    for principal in [
        json!({"AWS": "111111111111"}),
        json!({"AWS": "arn:aws:iam::111111111111:root"}),
    ] {
        assert!(admits(principal.clone(), &session), "{principal}");
        assert!(admits(principal.clone(), &other_role), "{principal}");
        assert!(admits(principal.clone(), &user), "{principal}");
        assert!(!admits(principal.clone(), &foreign), "{principal}");
        assert!(!admits(principal.clone(), &lambda), "{principal}");
    }
    // A role ARN (with its path): that role's sessions only.
    let role = json!({"AWS": fn_role});
    assert!(admits(role.clone(), &session));
    assert!(!admits(role.clone(), &other_role));
    assert!(!admits(role.clone(), &user));
    // Without the path it is another role.
    assert!(!admits(
        json!({"AWS": "arn:aws:iam::111111111111:role/fn-AbC"}),
        &session
    ));
    // One session; one user.
    let one = json!({"AWS": "arn:aws:sts::111111111111:assumed-role/fn-AbC/replicate"});
    assert!(admits(one.clone(), &session));
    assert!(!admits(one, &Caller::session(fn_role, "another-session")));
    assert!(admits(
        json!({"AWS": "arn:aws:iam::111111111111:user/alice"}),
        &user
    ));
    // Everyone.
    for everyone in [json!("*"), json!({"AWS": "*"})] {
        for c in [&session, &foreign, &user, &lambda] {
            assert!(admits(everyone.clone(), c), "{everyone} {c:?}");
        }
    }
    // A service principal.
    let service = json!({"Service": "lambda.amazonaws.com"});
    assert!(admits(service.clone(), &lambda));
    assert!(!admits(service, &session));
    assert!(!admits(json!({"Service": "events.amazonaws.com"}), &lambda));
    // NotPrincipal: everyone but.
    let p = resource_policy(json!({
        "Effect": "Allow", "NotPrincipal": {"AWS": fn_role}, "Action": "sts:AssumeRole"
    }));
    let d = |c: &Caller| evaluate(&[&p], &request(c, "sts:AssumeRole", "r", &json!({})));
    assert!(!d(&session).allowed());
    assert!(d(&other_role).allowed());
    // The SQS example whole: the account principal, SQS:SendMessage, ArnEquals aws:SourceArn.
    let queue = resource_policy(json!({
        "Effect": "Allow",
        "Principal": {"AWS": "123456789012"},
        "Action": "SQS:SendMessage",
        "Resource": "arn:aws:sqs:us-east-2:123456789012:QUEUE-ID",
        "Condition": {"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TOPIC-ID"}}
    }));
    let sns = Caller::user("arn:aws:iam::123456789012:user/publisher");
    let send = |ctx: Value| {
        evaluate(
            &[&queue],
            &request(
                &sns,
                "sqs:SendMessage",
                "arn:aws:sqs:us-east-2:123456789012:QUEUE-ID",
                &ctx,
            ),
        )
    };
    assert!(
        send(json!({"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TOPIC-ID"})).allowed()
    );
    assert!(!send(json!({})).allowed());
}

#[test]
fn explicit_deny_beats_allow_and_the_decision_names_the_statement() {
    // The BooleanExample: deny every S3 action on a bucket unless the request uses TLS, next to
    // an Allow.
    let p = identity(json!([
        {
            "Sid": "AllowBucket", "Effect": "Allow", "Action": "s3:*",
            "Resource": ["arn:aws:s3:::DOC-EXAMPLE-BUCKET", "arn:aws:s3:::DOC-EXAMPLE-BUCKET/*"]
        },
        {
            "Sid": "BooleanExample", "Action": "s3:*", "Effect": "Deny",
            "Resource": ["arn:aws:s3:::DOC-EXAMPLE-BUCKET", "arn:aws:s3:::DOC-EXAMPLE-BUCKET/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        }
    ]));
    let get = |ctx: Value| {
        evaluate(
            &[&p],
            &request(
                &Caller::user(USER),
                "s3:GetObject",
                "arn:aws:s3:::DOC-EXAMPLE-BUCKET/a.txt",
                &ctx,
            ),
        )
    };
    let plain = get(json!({"aws:SecureTransport": "false"}));
    assert!(
        matches!(&plain, Decision::ExplicitDeny(s) if s.sid.as_deref() == Some("BooleanExample"))
    );
    assert_eq!(
        plain.to_string(),
        "explicitly denied by test policy [BooleanExample]"
    );
    let tls = get(json!({"aws:SecureTransport": "true"}));
    assert!(
        matches!(&tls, Decision::Allow(by) if by.len() == 1 && by[0].sid.as_deref() == Some("AllowBucket"))
    );
    assert_eq!(tls.to_string(), "allowed by test policy [AllowBucket]");

    // The ForAnyValue Deny of PutItem on ID or PostDateTime, next to an Allow of everything.
    let table = "arn:aws:dynamodb:us-east-1:111122223333:table/Thread";
    let p = identity(json!([
        {"Sid": "All", "Effect": "Allow", "Action": "dynamodb:*", "Resource": table},
        {
            "Sid": "NoKeyEdits", "Effect": "Deny", "Action": "dynamodb:PutItem", "Resource": table,
            "Condition": {"ForAnyValue:StringLike": {"dynamodb:requestedAttributes": ["ID", "PostDateTime"]}}
        }
    ]));
    let put = |attrs: &[&str]| {
        let r = Request {
            caller: Caller::user(USER),
            action: "dynamodb:PutItem".into(),
            resource: table.into(),
            context: Context::new().with_values("dynamodb:requestedAttributes", attrs),
        };
        evaluate(&[&p], &r)
    };
    assert!(matches!(
        put(&["UserName", "Message", "PostDateTime"]),
        Decision::ExplicitDeny(_)
    ));
    assert!(put(&["UserName"]).allowed());

    // "If you are using an "Effect": "Deny" element with a negated condition operator like
    // StringNotEqualsIfExists, the request is still denied even if the tag is missing."
    let p = identity(json!([
        {"Sid": "All", "Effect": "Allow", "Action": "s:A", "Resource": "*"},
        {
            "Sid": "TeamOnly", "Effect": "Deny", "Action": "s:A", "Resource": "*",
            "Condition": {"StringNotEqualsIfExists": {"aws:ResourceTag/team": "blue"}}
        }
    ]));
    let d = evaluate(&[&p], &request(&Caller::user(USER), "s:A", "r", &json!({})));
    assert!(matches!(d, Decision::ExplicitDeny(_)), "{d}");

    // Two statements allow: both are named. Nothing allows: each near miss says why.
    let p = identity(json!([
        {"Sid": "Reads", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": "arn:aws:secretsmanager:us-east-1:111111111111:secret:app/*"},
        {"Sid": "Writes", "Effect": "Allow",
         "Action": ["secretsmanager:PutSecretValue", "secretsmanager:GetSecretValue"],
         "Resource": "arn:aws:secretsmanager:*:111111111111:secret:*"},
        {"Sid": "Kms", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}}
    ]));
    let caller = Caller::user(USER);
    let d = evaluate(
        &[&p],
        &request(
            &caller,
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:us-east-1:111111111111:secret:app/db-AbCdEf",
            &json!({}),
        ),
    );
    assert_eq!(
        d.to_string(),
        "allowed by test policy [Reads], test policy [Writes]"
    );
    let d = evaluate(
        &[&p],
        &request(
            &caller,
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:us-east-1:999999999999:secret:app/db-AbCdEf",
            &json!({}),
        ),
    );
    let text = d.to_string();
    assert!(
        matches!(&d, Decision::ImplicitDeny(m) if m.len() == 2),
        "{text}"
    );
    assert!(text.contains("test policy [Reads]: Resource"), "{text}");
    assert!(
        text.contains("does not cover arn:aws:secretsmanager:us-east-1:999999999999"),
        "{text}"
    );
    let d = evaluate(&[&p], &request(&caller, "kms:Decrypt", "k", &json!({})));
    assert_eq!(
        d.to_string(),
        "implicitly denied: test policy [Kms]: condition StringEquals {\"kms:ViaService\": \
         [\"secretsmanager.us-east-1.amazonaws.com\"]} is false: the request's kms:ViaService \
         is absent."
    );
    let d = evaluate(&[&p], &request(&caller, "s3:GetObject", "k", &json!({})));
    assert_eq!(
        d.to_string(),
        "implicitly denied: no statement has the action"
    );
    // The statements of several policies are one evaluation.
    let deny = identity(json!({"Sid": "No", "Effect": "Deny", "Action": "*", "Resource": "*"}));
    let d = evaluate(
        &[&p, &deny],
        &request(&caller, "kms:Decrypt", "k", &json!({})),
    );
    assert!(matches!(d, Decision::ExplicitDeny(_)));
}

#[test]
fn policy_variables_and_unsupported_operators_are_refused() {
    let refused = |statement: Value, kind: Kind| {
        Policy::parse("p", kind, &[statement])
            .err()
            .unwrap_or_else(|| panic!("accepted"))
    };
    let allow = |condition: Value| json!({"Effect": "Allow", "Action": "s:A", "Resource": "*", "Condition": condition});
    // The guide's own examples of operators this evaluator does not implement.
    for (condition, what) in [
        (
            json!({"NumericLessThanEquals": {"s3:max-keys": "10"}}),
            "NumericLessThanEquals",
        ),
        (
            json!({"DateGreaterThan": {"aws:TokenIssueTime": "2020-01-01T00:00:01Z"}}),
            "DateGreaterThan",
        ),
        (
            json!({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}),
            "IpAddress",
        ),
        (
            json!({"BinaryEquals": {"key": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}}),
            "BinaryEquals",
        ),
        (
            json!({"StringLike": {"s3:prefix": ["home/${aws:username}/"]}}),
            "policy variables",
        ),
        (
            json!({"NullIfExists": {"aws:TokenIssueTime": "true"}}),
            "Null takes no IfExists",
        ),
        (
            json!({"Bool": {"aws:SecureTransport": "yes"}}),
            "not true or false",
        ),
    ] {
        let e = refused(allow(condition.clone()), Kind::Identity);
        assert!(e.contains(what), "{condition}: {e}");
    }
    for (statement, kind, what) in [
        (
            json!({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/home/${aws:username}/*"}),
            Kind::Identity,
            "policy variables",
        ),
        (
            json!({"Effect": "Allow", "Principal": "*", "Action": "s:A", "Resource": "*"}),
            Kind::Identity,
            "Principal in an identity policy",
        ),
        (
            json!({"Effect": "Allow", "Action": "s:A"}),
            Kind::Identity,
            "no Resource",
        ),
        (
            json!({"Effect": "Allow", "Action": "sts:AssumeRole"}),
            Kind::Resource,
            "no Principal",
        ),
        (
            json!({"Effect": "Allow", "Action": "s:A", "NotAction": "s:B", "Resource": "*"}),
            Kind::Identity,
            "both Action and NotAction",
        ),
        (
            json!({"Effect": "Allow", "Action": "s:A", "Resource": "*", "Condtion": {}}),
            Kind::Identity,
            "unknown element Condtion",
        ),
        (
            json!({"Effect": "Permit", "Action": "s:A", "Resource": "*"}),
            Kind::Identity,
            "Effect",
        ),
        (
            json!({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::*:role/x"}, "Action": "sts:AssumeRole"}),
            Kind::Resource,
            "wildcard in a principal",
        ),
        (
            json!({"Effect": "Allow", "Principal": {"Federated": "cognito-identity.amazonaws.com"}, "Action": "sts:AssumeRoleWithWebIdentity"}),
            Kind::Resource,
            "unsupported principal Federated",
        ),
    ] {
        let e = refused(statement.clone(), kind);
        assert!(e.contains(what), "{statement}: {e}");
    }
}

// ---- (b) the policies under test ------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DocKind {
    Identity,
    Trust,
    Key,
}

/// A policy under test, and where it comes from.
struct Doc {
    origin: String,
    kind: DocKind,
    policy: Policy,
    /// The documents' `Version`s.
    versions: Vec<Value>,
    /// A suites' stack: deliberately broad resource patterns (every name the suites use).
    suite: bool,
}

fn docs_of_stack(label: &str, stack: &Stack, suite: bool, out: &mut Vec<Doc>) {
    for (name, r) in &stack.resources {
        let p = &r["Properties"];
        match r["Type"].as_str().unwrap() {
            "AWS::IAM::Role" => {
                let trust = &p["AssumeRolePolicyDocument"];
                out.push(Doc {
                    origin: format!("{label}: {name} trust"),
                    kind: DocKind::Trust,
                    policy: Policy::document(
                        &format!("{label}: {name} trust"),
                        Kind::Resource,
                        trust,
                    ),
                    versions: vec![trust["Version"].clone()],
                    suite,
                });
                let mut versions: Vec<Value> = p["Policies"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| x["PolicyDocument"]["Version"].clone())
                    .collect();
                let reference = format!("<{name}>");
                for (_, x) in stack.resources.iter() {
                    let attached = x["Properties"]["Roles"]
                        .as_array()
                        .is_some_and(|rs| rs.iter().any(|r| r.as_str() == Some(&reference)));
                    if attached {
                        versions.push(x["Properties"]["PolicyDocument"]["Version"].clone());
                    }
                }
                let origin = format!("{label}: {name}");
                out.push(Doc {
                    policy: Policy::new(
                        &origin,
                        Kind::Identity,
                        &policies::role_statements(stack, name),
                    ),
                    origin,
                    kind: DocKind::Identity,
                    versions,
                    suite,
                });
            }
            "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" => {
                let attached_here = p["Roles"].as_array().is_some_and(|rs| {
                    rs.iter().any(|r| {
                        r.as_str()
                            .and_then(|r| r.strip_prefix('<')?.strip_suffix('>'))
                            .is_some_and(|r| stack.resources.contains_key(r))
                    })
                });
                if !attached_here {
                    let origin = format!("{label}: {name}");
                    out.push(Doc {
                        policy: Policy::document(&origin, Kind::Identity, &p["PolicyDocument"]),
                        origin,
                        kind: DocKind::Identity,
                        versions: vec![p["PolicyDocument"]["Version"].clone()],
                        suite,
                    });
                }
            }
            "AWS::KMS::Key" => {
                let origin = format!("{label}: {name}");
                out.push(Doc {
                    policy: Policy::document(&origin, Kind::Resource, &p["KeyPolicy"]),
                    origin,
                    kind: DocKind::Key,
                    versions: vec![p["KeyPolicy"]["Version"].clone()],
                    suite,
                });
            }
            _ => {}
        }
    }
}

/// Every policy: `template.yaml` under each scenario, the suites' two stacks and the key policy
/// their keys carry, `iam/*.yaml` resolved with example values, and `iam/*.json`.
fn inventory() -> Vec<Doc> {
    let mut out = Vec::new();
    for (label, stack) in scenarios() {
        docs_of_stack(&format!("template.yaml [{label}]"), &stack, false, &mut out);
    }
    docs_of_stack(
        "template.yaml [suites]",
        &policies::function_stack(),
        true,
        &mut out,
    );
    docs_of_stack(
        "iam/destination-role.yaml [suites]",
        &policies::destination_stack(),
        true,
        &mut out,
    );
    for key in [
        "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:eu-west-1:222233334444:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    ] {
        let origin = format!("iam/kms-key-policy-snippet.json [suites: {key}]");
        out.push(Doc {
            policy: Policy::new(&origin, Kind::Resource, &policies::key_policy(key).unwrap()),
            origin,
            kind: DocKind::Key,
            versions: vec![json!("2012-10-17")],
            suite: true,
        });
    }
    // In the example destination account of the standalone documents, with and without keys.
    for (path, keys) in files(&root().join("iam"), "yaml")
        .into_iter()
        .flat_map(|p| {
            [
                (p.clone(), ""),
                (p, "arn:aws:kms:us-west-2:222222222222:key/k-1"),
            ]
        })
    {
        let stack = resolve_in(
            &load_cfn(&path),
            &[
                ("SourceAccountId", "111111111111"),
                ("ExternalId", "4f1c0b6e9d2a7c3b5e8f0a1b"),
                ("SecretNamePrefix", "dr/"),
                ("KmsKeyArns", keys),
            ],
            "222222222222",
            "us-west-2",
        );
        let label = format!("{} [KmsKeyArns={keys:?}]", path.display());
        docs_of_stack(&label, &stack, false, &mut out);
    }
    for path in files(&root().join("iam"), "json") {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let (kind, pkind) = if name.contains("trust") {
            (DocKind::Trust, Kind::Resource)
        } else if name.contains("key-policy") {
            (DocKind::Key, Kind::Resource)
        } else {
            (DocKind::Identity, Kind::Identity)
        };
        let doc = read_json(&path);
        let origin = format!("iam/{name}");
        out.push(Doc {
            policy: Policy::document(&origin, pkind, &doc),
            origin,
            kind,
            versions: vec![doc["Version"].clone()],
            suite: false,
        });
    }
    out
}

fn of_kind(docs: &[Doc], kind: DocKind) -> Vec<&Doc> {
    docs.iter().filter(|d| d.kind == kind).collect()
}

fn sid(s: &common::iam::Statement) -> String {
    s.sid
        .clone()
        .unwrap_or_else(|| format!("statement {}", s.index))
}

#[test]
fn every_policy_is_one_the_evaluator_decides_and_least_privilege_lives_in_the_stacks() {
    let docs = inventory();
    for kind in [DocKind::Identity, DocKind::Trust, DocKind::Key] {
        assert!(
            of_kind(&docs, kind).len() >= 2,
            "{kind:?}: {:?}",
            docs.iter().map(|d| &d.origin).collect::<Vec<_>>()
        );
    }
    for d in &docs {
        for v in &d.versions {
            assert_eq!(v, "2012-10-17", "{}", d.origin);
        }
    }
    // No managed policies on a role (not least privilege), no SAM policies on the function
    // (they belong on FunctionRole, where the checks see them).
    let mut stacks = scenarios();
    stacks.push(("suites", policies::function_stack()));
    stacks.push(("destination", policies::destination_stack()));
    for (label, stack) in &stacks {
        for (name, r) in &stack.resources {
            let p = &r["Properties"];
            match r["Type"].as_str().unwrap() {
                "AWS::IAM::Role" => assert!(
                    p.get("ManagedPolicyArns").is_none(),
                    "{label}: {name}: managed policies are not least privilege"
                ),
                "AWS::Serverless::Function" => assert!(
                    p.get("Policies").is_none(),
                    "{label}: {name}: policies belong on FunctionRole"
                ),
                _ => {}
            }
        }
    }
}

// ---- (c) resources -------------------------------------------------------------------------

/// A resource pattern that covers everything: `*`, or one made only of wildcards.
fn is_star(pattern: &str) -> bool {
    resource_matches(pattern, "*") || pattern.chars().all(|c| c == '*')
}

/// Every action any policy names, plus a few no policy should grant on `*`.
fn action_catalogue(docs: &[Doc]) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = [
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
        "secretsmanager:DeleteSecret",
        "secretsmanager:ListSecrets",
        "kms:Decrypt",
        "kms:DescribeKey",
        "sts:AssumeRole",
        "iam:PassRole",
        "lambda:InvokeFunction",
        "s3:GetObject",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for d in docs {
        for s in &d.policy.statements {
            let (Names::Listed(a) | Names::AllBut(a)) = &s.actions;
            out.extend(a.iter().filter(|a| !a.contains(['*', '?'])).cloned());
        }
    }
    out
}

#[test]
fn no_statement_allows_any_action_on_star_but_list_secrets() {
    let docs = inventory();
    let catalogue = action_catalogue(&docs);
    let mut wrong = Vec::new();
    for d in of_kind(&docs, DocKind::Identity) {
        for s in &d.policy.statements {
            if s.effect != common::iam::Effect::Allow {
                continue;
            }
            let at = format!("{} [{}]", d.origin, sid(s));
            let open = match &s.resources {
                Some(Names::Listed(r)) => r.iter().any(|p| is_star(p)),
                Some(Names::AllBut(_)) => true,
                None => true,
            };
            if !open {
                continue;
            }
            match &s.actions {
                Names::Listed(a)
                    if a.iter()
                        .all(|a| a.eq_ignore_ascii_case("secretsmanager:ListSecrets")) => {}
                other => wrong.push(format!("{at}: {other:?} on {:?}", s.resources)),
            }
        }
        // The same by evaluation, with every condition key a statement could ask for.
        let probe = Context::new()
            .with("kms:ViaService", "secretsmanager.us-east-1.amazonaws.com")
            .with("kms:CallerAccount", "111111111111")
            .with("sts:ExternalId", "4f1c0b6e9d2a7c3b5e8f0a1b")
            .with("aws:SecureTransport", "true");
        let caller = Caller::session(FUNCTION_ROLE_ARN, "probe");
        for action in &catalogue {
            let r = Request {
                caller: caller.clone(),
                action: action.clone(),
                resource: "*".into(),
                context: probe.clone(),
            };
            let decision = evaluate(&[&d.policy], &r);
            if decision.allowed() && !action.eq_ignore_ascii_case("secretsmanager:ListSecrets") {
                wrong.push(format!("{}: {action} on *: {decision}", d.origin));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Secrets Manager actions that change something.
fn is_sm_write(action: &str) -> bool {
    let a = action.to_ascii_lowercase();
    let Some(op) = a.strip_prefix("secretsmanager:") else {
        return a == "*";
    };
    !(op.starts_with("get")
        || op.starts_with("describe")
        || op.starts_with("list")
        || op.starts_with("batchget")
        || op.starts_with("validate"))
}

/// `*`, a non-ARN, an ARN with a wildcard account, or one naming every secret or role.
fn is_open_resource(resource: &str) -> bool {
    if resource == "*" {
        return true;
    }
    let parts: Vec<&str> = resource.splitn(6, ':').collect();
    if parts.len() < 6 || parts[0] != "arn" {
        return true;
    }
    let name = parts[5]
        .trim_start_matches("secret:")
        .trim_start_matches("role/");
    parts[4].contains('*') || name.is_empty() || name == "*"
}

#[test]
fn secrets_manager_writes_and_assume_role_name_their_resources_and_actions() {
    // The suites' stacks are left out: their parameters cover every name the suites use.
    let docs = inventory();
    let mut wrong = Vec::new();
    for d in of_kind(&docs, DocKind::Identity)
        .into_iter()
        .filter(|d| !d.suite)
    {
        for s in &d.policy.statements {
            let at = format!("{} [{}]", d.origin, sid(s));
            let (Names::Listed(actions), Some(Names::Listed(resources))) =
                (&s.actions, &s.resources)
            else {
                wrong.push(format!("{at}: NotAction or NotResource"));
                continue;
            };
            if s.effect != common::iam::Effect::Allow {
                continue;
            }
            for a in actions {
                if a.ends_with(":*") || a == "*" {
                    wrong.push(format!("{at}: wildcard action {a}"));
                }
                if is_sm_write(a) || a.to_ascii_lowercase().starts_with("sts:") {
                    for r in resources.iter().filter(|r| is_open_resource(r)) {
                        wrong.push(format!("{at}: {a} on {r}"));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Asks the function role of `stack`.
fn function_allows(stack: &Stack, action: &str, resource: &str) -> bool {
    let p = Policy::new(
        "FunctionRole",
        Kind::Identity,
        &policies::role_statements(stack, "FunctionRole"),
    );
    let r = Request {
        caller: Caller::session(FUNCTION_ROLE_ARN, "probe"),
        action: action.into(),
        resource: resource.into(),
        // A destination the function owns (its marker on the secret, and in a CreateSecret's
        // request): what the marker conditions ask for is probed in section (g).
        context: Context::new()
            .with("kms:ViaService", "secretsmanager.us-west-2.amazonaws.com")
            .with("kms:CallerAccount", "111111111111")
            .with(MARKER_RESOURCE_TAG, "111111111111:us-east-1:app/db")
            .with(MARKER_REQUEST_TAG, "111111111111:us-east-1:app/db"),
    };
    evaluate(&[&p], &r).allowed()
}

const MARKER_RESOURCE_TAG: &str = "secretsmanager:ResourceTag/secret-replicator:source";
const MARKER_REQUEST_TAG: &str = "aws:RequestTag/secret-replicator:source";

const SM_WRITES: [&str; 8] = [
    "secretsmanager:CreateSecret",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecret",
    "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:TagResource",
    "secretsmanager:UntagResource",
    "secretsmanager:DeleteSecret",
    "secretsmanager:RestoreSecret",
];

fn secret(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:secretsmanager:{region}:{account}:secret:{name}-AbCdEf")
}

#[test]
fn the_function_role_grants_exactly_what_the_parameters_allow() {
    let t = template();
    let here = "111111111111";
    let key = "arn:aws:kms:us-west-2:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let dest_role = "arn:aws:iam::222222222222:role/secret-replicator-destination";

    // No destination roles, no destination pattern: no AssumeRole, no writes at all; reads of
    // this account and region only.
    let s = resolve(&t, MINIMAL);
    assert!(!function_allows(&s, "sts:AssumeRole", dest_role));
    for a in SM_WRITES {
        for r in [secret("us-west-2", here, "app/db"), "*".into()] {
            assert!(!function_allows(&s, a, &r), "{a} on {r} granted by default");
        }
    }
    let read = "secretsmanager:GetSecretValue";
    assert!(function_allows(
        &s,
        read,
        &secret("us-east-1", here, "app/db")
    ));
    assert!(!function_allows(
        &s,
        read,
        &secret("us-west-2", here, "app/db")
    ));
    assert!(!function_allows(
        &s,
        read,
        &secret("us-east-1", "222222222222", "app/db")
    ));
    assert!(function_allows(&s, "secretsmanager:ListSecrets", "*"));
    assert!(!function_allows(&s, "kms:DescribeKey", key));
    // KMS data keys of this account only (through Secrets Manager: the probe says so).
    assert!(function_allows(&s, "kms:GenerateDataKey", key));
    assert!(!function_allows(
        &s,
        "kms:GenerateDataKey",
        "arn:aws:kms:us-west-2:222222222222:key/k"
    ));

    // Cross-account: AssumeRole on exactly the approved roles.
    let s = resolve(&t, CROSS_ACCOUNT);
    assert!(function_allows(&s, "sts:AssumeRole", dest_role));
    assert!(function_allows(
        &s,
        "sts:AssumeRole",
        "arn:aws:iam::333333333333:role/secret-replicator-destination"
    ));
    assert!(!function_allows(
        &s,
        "sts:AssumeRole",
        "arn:aws:iam::444444444444:role/secret-replicator-destination"
    ));
    assert!(!function_allows(
        &s,
        "sts:AssumeRole",
        "arn:aws:iam::222222222222:role/admin"
    ));

    // Same-account destinations and keys: writes on exactly the patterns, reads narrowed.
    let s = resolve(&t, MAXIMAL);
    for a in SM_WRITES {
        for region in ["us-west-2", "eu-west-1"] {
            assert!(
                function_allows(&s, a, &secret(region, here, "dr/app/db")),
                "{a}"
            );
        }
        assert!(
            !function_allows(&s, a, &secret("ap-south-1", here, "dr/app/db")),
            "{a}"
        );
        assert!(
            !function_allows(&s, a, &secret("us-west-2", here, "app/db")),
            "{a}"
        );
        assert!(
            !function_allows(&s, a, &secret("us-east-1", here, "app/db")),
            "{a}"
        );
    }
    assert!(function_allows(
        &s,
        read,
        &secret("us-east-1", here, "app/db")
    ));
    assert!(function_allows(
        &s,
        read,
        &secret("us-east-1", here, "secret-replicator/config")
    ));
    assert!(!function_allows(
        &s,
        read,
        &secret("us-east-1", here, "secret-replicator/config-x")
    ));
    assert!(!function_allows(
        &s,
        read,
        &secret("us-east-1", here, "other/db")
    ));
    assert!(function_allows(&s, "kms:DescribeKey", key));
    assert!(!function_allows(
        &s,
        "kms:DescribeKey",
        "arn:aws:kms:us-west-2:111111111111:key/another"
    ));
}

// ---- (d) trust policies ----------------------------------------------------------------------

/// The probes for one principal a trust statement names: (caller, meant to be admitted with the
/// external id). A named role is admitted; an account admits only roles on the replicator's
/// path, if its conditions say so; anyone else in that account never.
fn probes(p: &PrincipalName) -> Vec<(Caller, bool)> {
    let in_account = |a: &str| {
        vec![
            (
                Caller::session(
                    &format!("arn:aws:iam::{a}:role/secret-replicator/fn-Probe"),
                    "p",
                ),
                true,
            ),
            (
                Caller::session(&format!("arn:aws:iam::{a}:role/intruder"), "p"),
                false,
            ),
            (
                Caller::user(&format!("arn:aws:iam::{a}:user/intruder")),
                false,
            ),
        ]
    };
    match p {
        PrincipalName::Role(r) => {
            let (account, _) = common::iam::role_parts(r).unwrap();
            let mut v = vec![(Caller::session(r, "p"), true)];
            v.extend(in_account(account).into_iter().map(|(c, _)| (c, false)));
            v
        }
        PrincipalName::Account(a) => in_account(a),
        PrincipalName::Arn(a) => vec![(Caller::user(a), true)],
        PrincipalName::Everyone => in_account("999999999999"),
        PrincipalName::Service(_) => unreachable!(),
    }
}

#[test]
fn no_trust_statement_lets_another_account_assume_the_role_without_the_external_id() {
    let docs = inventory();
    let mut wrong = Vec::new();
    let mut destination_trusts = 0;
    for d in of_kind(&docs, DocKind::Trust) {
        for s in &d.policy.statements {
            let at = format!("{} [{}]", d.origin, sid(s));
            let Some(Names::Listed(principals)) = &s.principals else {
                wrong.push(format!("{at}: NotPrincipal"));
                continue;
            };
            if principals
                .iter()
                .all(|p| matches!(p, PrincipalName::Service(_)))
            {
                // The function's own role: only Lambda may assume it.
                if principals != &[PrincipalName::Service("lambda.amazonaws.com".into())]
                    || s.actions != Names::Listed(vec!["sts:AssumeRole".into()])
                    || s.effect != common::iam::Effect::Allow
                {
                    wrong.push(format!(
                        "{at}: a service trust other than Lambda's: {}",
                        s.raw
                    ));
                }
                continue;
            }
            if s.effect != common::iam::Effect::Allow {
                continue;
            }
            destination_trusts += 1;
            if s.actions != Names::Listed(vec!["sts:AssumeRole".into()]) {
                wrong.push(format!("{at}: actions {:?}", s.actions));
            }
            // StringEquals, exactly: not ...IfExists (true without the key), not a set operator
            // (ForAllValues is true without it), not Like.
            let ext: Vec<&common::iam::Condition> = s
                .conditions
                .iter()
                .filter(|c| c.key.eq_ignore_ascii_case("sts:ExternalId"))
                .collect();
            let required = ext
                .iter()
                .any(|c| c.operator == "StringEquals" && c.values.iter().all(|v| v.len() >= 16));
            if !required {
                wrong.push(format!(
                    "{at}: no StringEquals sts:ExternalId of 16+ characters: {}",
                    s.raw
                ));
                continue;
            }
            let external_id = ext[0].values[0].clone();
            // By evaluation, the whole trust policy: without the external id or with a wrong one
            // nobody gets in; with it, the function role does and nobody else in its account.
            for p in principals {
                let mut admitted = 0;
                for (caller, meant) in probes(p) {
                    let ask = |context: Context| {
                        let r = Request {
                            caller: caller.clone(),
                            action: "sts:AssumeRole".into(),
                            resource:
                                "arn:aws:iam::222222222222:role/secret-replicator-destination"
                                    .into(),
                            context: common::iam::global_context(&caller, "us-east-1")
                                .merge(&context),
                        };
                        evaluate(&[&d.policy], &r)
                    };
                    for context in [
                        Context::new(),
                        Context::new().with("sts:ExternalId", "not-the-external-id-at-all"),
                    ] {
                        let got = ask(context.clone());
                        if got.allowed() {
                            wrong.push(format!(
                                "{at}: {} assumes the role with {context:?}: {got}",
                                caller.arn
                            ));
                        }
                    }
                    let with_id = ask(Context::new().with("sts:ExternalId", &external_id));
                    if with_id.allowed() && !meant {
                        wrong.push(format!(
                            "{at}: {} (not the function role) assumes the role: {with_id}",
                            caller.arn
                        ));
                    }
                    admitted += usize::from(with_id.allowed() && meant);
                }
                if admitted == 0 {
                    wrong.push(format!(
                        "{at}: the trust admits no function role of {p:?}, even with the external id"
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        destination_trusts >= 3,
        "iam/destination-role-trust-policy.json, iam/destination-role.yaml and the suites' \
         destination stack are all checked ({destination_trusts})"
    );
}

// ---- (e) KMS -------------------------------------------------------------------------------

/// The data actions: Secrets Manager's own use of a key, never the caller's directly.
const KMS_DATA: [&str; 8] = [
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
];

/// A key ARN each KMS resource pattern of `policy` covers (wildcards filled in), and `*`.
fn probe_keys(policy: &Policy) -> BTreeSet<String> {
    let mut out = BTreeSet::from(["*".to_string()]);
    for s in &policy.statements {
        if let Some(Names::Listed(r)) = &s.resources {
            for p in r.iter().filter(|p| p.starts_with("arn:aws:kms:")) {
                out.insert(p.replace(['*', '?'], "x"));
            }
        }
    }
    out
}

/// Contexts without Secrets Manager as the calling service.
fn not_via_secrets_manager(account: &str) -> Vec<Context> {
    vec![
        Context::new().with("kms:CallerAccount", account),
        Context::new()
            .with("kms:ViaService", "ec2.us-west-2.amazonaws.com")
            .with("kms:CallerAccount", account),
        Context::new()
            .with("kms:ViaService", "s3.us-west-2.amazonaws.com")
            .with("kms:CallerAccount", account),
    ]
}

fn via_secrets_manager(region: &str, account: &str) -> Context {
    Context::new()
        .with(
            "kms:ViaService",
            &format!("secretsmanager.{region}.amazonaws.com"),
        )
        .with("kms:CallerAccount", account)
}

#[test]
fn kms_data_actions_are_allowed_only_through_secrets_manager() {
    let docs = inventory();
    let mut wrong = Vec::new();
    // Identity policies: whoever holds them (the probe is the function role's session).
    for d in of_kind(&docs, DocKind::Identity) {
        let caller = Caller::session(FUNCTION_ROLE_ARN, "probe");
        for key in probe_keys(&d.policy) {
            let account = common::iam::arn_account(&key).unwrap_or_else(|| "111111111111".into());
            for action in KMS_DATA {
                for context in not_via_secrets_manager(&account) {
                    let r = Request {
                        caller: caller.clone(),
                        action: action.into(),
                        resource: key.clone(),
                        context: context.clone(),
                    };
                    let got = evaluate(&[&d.policy], &r);
                    if got.allowed() {
                        wrong.push(format!(
                            "{}: {action} on {key} with {context:?}: {got}",
                            d.origin
                        ));
                    }
                }
            }
        }
    }
    // The suites' roles can use their own account's keys through Secrets Manager (writes and
    // reads of secrets under a customer-managed key need exactly this).
    for (policy, account) in [
        (policies::function_policy(), policies::SOURCE_ACCOUNT),
        (policies::destination_policy(), policies::DEST_ACCOUNT),
    ] {
        let p = Policy::new(account, Kind::Identity, &policy);
        let key =
            format!("arn:aws:kms:eu-west-1:{account}:key/1234abcd-12ab-34cd-56ef-1234567890ab");
        for action in ["kms:Decrypt", "kms:GenerateDataKey"] {
            let r = Request {
                caller: Caller::session(FUNCTION_ROLE_ARN, "probe"),
                action: action.into(),
                resource: key.clone(),
                context: via_secrets_manager("eu-west-1", account),
            };
            let got = evaluate(&[&p], &r);
            if !got.allowed() {
                wrong.push(format!(
                    "the role of {account} cannot {action} {key} through Secrets Manager: {got}"
                ));
            }
        }
    }
    // Key policies: the statements that grant a named role (not the key's own account, which
    // only delegates to IAM policies) allow data actions only through Secrets Manager.
    for d in of_kind(&docs, DocKind::Key) {
        for s in &d.policy.statements {
            let Some(Names::Listed(principals)) = &s.principals else {
                continue;
            };
            for p in principals {
                let caller = match p {
                    PrincipalName::Role(r) => Caller::session(r, "probe"),
                    PrincipalName::Arn(a) => Caller::user(a),
                    _ => continue,
                };
                let account = caller.account.clone().unwrap();
                let only: Vec<serde_json::Value> = vec![s.raw.clone()];
                let one = Policy::new(&d.origin, Kind::Resource, &only);
                for action in KMS_DATA {
                    for context in not_via_secrets_manager(&account) {
                        let r = Request {
                            caller: caller.clone(),
                            action: action.into(),
                            resource: "*".into(),
                            context,
                        };
                        let got = evaluate(&[&one], &r);
                        if got.allowed() {
                            wrong.push(format!(
                                "{} [{}]: {action} for {} not through Secrets Manager: {got}",
                                d.origin,
                                sid(s),
                                caller.arn
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn key_policies_have_no_open_principal_and_grant_only_the_approved_destination_role() {
    let docs = inventory();
    let approved: Vec<String> = {
        let p = Policy::document(
            "iam/function-role-policy.json",
            Kind::Identity,
            &read_json(&root().join("iam/function-role-policy.json")),
        );
        p.statements
            .iter()
            .filter(|s| s.covers_action("sts:AssumeRole"))
            .flat_map(|s| match &s.resources {
                Some(Names::Listed(r)) => r.clone(),
                _ => vec![],
            })
            .chain([DEST_ROLE_ARN.to_string(), FUNCTION_ROLE_ARN.to_string()])
            .collect()
    };
    let mut wrong = Vec::new();
    for d in of_kind(&docs, DocKind::Key) {
        let mut grants_replicator = false;
        for s in &d.policy.statements {
            let at = format!("{} [{}]", d.origin, sid(s));
            let Some(Names::Listed(principals)) = &s.principals else {
                wrong.push(format!("{at}: NotPrincipal"));
                continue;
            };
            if principals.contains(&PrincipalName::Everyone) && s.conditions.is_empty() {
                wrong.push(format!("{at}: open principal without a condition"));
            }
            if s.covers_action("kms:ScheduleKeyDeletion") || s.covers_action("kms:PutKeyPolicy") {
                // Key administration stays with the key's own account, never a wildcard.
                if !principals
                    .iter()
                    .all(|p| matches!(p, PrincipalName::Account(_)))
                {
                    wrong.push(format!("{at}: key administration for {principals:?}"));
                }
                continue;
            }
            if s.covers_action("kms:Decrypt") || s.covers_action("kms:GenerateDataKey") {
                grants_replicator = true;
                for p in principals {
                    let ok = matches!(p, PrincipalName::Role(r) if approved.contains(r));
                    if !ok {
                        wrong.push(format!("{at}: {p:?} is not an approved replicator role"));
                    }
                }
            }
        }
        if !grants_replicator {
            wrong.push(format!("{}: grants the replicator nothing", d.origin));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---- (f) the examples under iam/ against each other and the template ----------------------------

fn granted(p: &Policy, action: &str) -> Vec<String> {
    p.statements
        .iter()
        .filter(|s| s.effect == common::iam::Effect::Allow)
        .filter(|s| matches!(&s.actions, Names::Listed(a) if a.iter().any(|a| a == action)))
        .flat_map(|s| match &s.resources {
            Some(Names::Listed(r)) => r.clone(),
            _ => vec![],
        })
        .collect()
}

fn listed_actions(p: &Policy) -> BTreeSet<String> {
    p.statements
        .iter()
        .flat_map(|s| match &s.actions {
            Names::Listed(a) => a.clone(),
            Names::AllBut(_) => vec![],
        })
        .collect()
}

#[test]
fn the_iam_examples_are_consistent_with_each_other_and_the_template() {
    let json_doc = |name: &str| {
        Policy::document(
            name,
            if name.contains("trust") || name.contains("key") {
                Kind::Resource
            } else {
                Kind::Identity
            },
            &read_json(&root().join("iam").join(name)),
        )
    };
    let role = json_doc("function-role-policy.json");
    let trust = json_doc("destination-role-trust-policy.json");
    let dest = json_doc("destination-role-policy.json");
    // The destination role has every destination action of SPEC §11.
    for a in [
        "secretsmanager:CreateSecret",
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecret",
        "secretsmanager:UpdateSecretVersionStage",
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetSecretValue",
        "secretsmanager:TagResource",
        "secretsmanager:UntagResource",
        "secretsmanager:DeleteSecret",
        "secretsmanager:RestoreSecret",
    ] {
        assert!(!granted(&dest, a).is_empty(), "destination role lacks {a}");
    }
    // The example function role assumes exactly the example destination role, and the example
    // trust admits the example function role with the example external id.
    let assumed = granted(&role, "sts:AssumeRole");
    assert_eq!(assumed.len(), 1);
    assert!(assumed[0].starts_with("arn:aws:iam::222222222222:role/"));
    let trusted: Vec<&PrincipalName> = trust
        .statements
        .iter()
        .flat_map(|s| match &s.principals {
            Some(Names::Listed(p)) => p.iter().collect(),
            _ => vec![],
        })
        .collect();
    // A named role (as now), or the account with a path condition (SPEC §11's form).
    let fn_role = match trusted.as_slice() {
        [PrincipalName::Role(r)] => r.clone(),
        [PrincipalName::Account(a)] => {
            format!(
                "arn:aws:iam::{a}:role/secret-replicator/secret-replicator-FunctionRole-EXAMPLE"
            )
        }
        other => panic!("the example trust names {other:?}"),
    };
    assert!(fn_role.starts_with("arn:aws:iam::111111111111:role/"));
    let external_id = trust.statements[0]
        .conditions
        .iter()
        .find(|c| c.key == "sts:ExternalId")
        .expect("the example trust requires an external id")
        .values[0]
        .clone();
    let caller = Caller::session(&fn_role, "replicate");
    let r = Request {
        caller: caller.clone(),
        action: "sts:AssumeRole".into(),
        resource: assumed[0].clone(),
        context: common::iam::global_context(&caller, "us-east-1")
            .with("sts:ExternalId", &external_id),
    };
    let got = evaluate(&[&trust], &r);
    assert!(got.allowed(), "{got}");
    // The template's role grants no action the standalone example lacks.
    let tpl = Policy::new(
        "template",
        Kind::Identity,
        &policies::role_statements(&resolve(&template(), MAXIMAL), "FunctionRole"),
    );
    let extra: Vec<String> = listed_actions(&tpl)
        .difference(&listed_actions(&role))
        .cloned()
        .collect();
    assert!(
        extra.is_empty(),
        "the example function role lacks {extra:?}"
    );
    let stack = resolve(&template(), MAXIMAL);
    assert!(
        stack.outputs.contains_key("FunctionRoleArn"),
        "the template outputs the role the destination trusts name"
    );
}

// ---- (g) the destination writes only what it owns (SPEC §11) ------------------------------------

/// The writes SPEC §11 allows only where the marker tag exists on the secret, with the context a
/// well-formed call of the replicator carries for each (the replicator never forces a deletion,
/// always blocks public policies, never overwrites a replica).
const MARKED_ONLY: &[(&str, &[(&str, &str)])] = &[
    ("secretsmanager:PutSecretValue", &[]),
    ("secretsmanager:UpdateSecret", &[]),
    ("secretsmanager:UpdateSecretVersionStage", &[]),
    ("secretsmanager:UntagResource", &[]),
    (
        "secretsmanager:DeleteSecret",
        &[("secretsmanager:ForceDeleteWithoutRecovery", "false")],
    ),
];
/// Marker-conditioned unless adoption is allowed (SPEC §11: "Adoption lifts the marker condition
/// on TagResource, RestoreSecret and GetSecretValue only").
const ADOPTABLE: [&str; 3] = [
    "secretsmanager:TagResource",
    "secretsmanager:RestoreSecret",
    "secretsmanager:GetSecretValue",
];

/// The writing role of each place SPEC §11's conditions apply to, for `adoption`,
/// `policies` and `replicas` (the StackSet's parameters; the template has adoption only):
/// (label, role policy, a destination secret ARN it may write, its account).
fn writing_roles(adoption: bool, policies: bool, replicas: bool) -> Vec<(String, Policy, String)> {
    let yes = |b: bool| if b { "true" } else { "false" };
    let t = load_cfn(&root().join("iam/destination-role.yaml"));
    let params = [
        ("SourceAccountId", "111111111111"),
        ("ExternalId", "4f1c0b6e9d2a7c3b5e8f4f1c"),
        ("SecretNamePrefix", "dr/"),
        ("AllowAdoption", yes(adoption)),
        ("ManageResourcePolicies", yes(policies)),
        ("ManageReplicaRegions", yes(replicas)),
    ];
    let dest = resolve_in(&t, &params, "222222222222", "us-west-2");
    let mut out = vec![(
        format!("iam/destination-role.yaml {params:?}"),
        Policy::new(
            "DestinationRole",
            Kind::Identity,
            &policies::role_statements(&dest, "DestinationRole"),
        ),
        "arn:aws:secretsmanager:eu-west-1:222222222222:secret:dr/app/db-AbCdEf".to_string(),
    )];
    if !policies && !replicas {
        let mut params: Vec<(&str, &str)> = MAXIMAL.to_vec();
        params.push(("AllowAdoption", yes(adoption)));
        let stack = resolve(&template(), &params);
        out.push((
            format!("template.yaml MAXIMAL, AllowAdoption={adoption}"),
            Policy::new(
                "FunctionRole",
                Kind::Identity,
                &policies::role_statements(&stack, "FunctionRole"),
            ),
            "arn:aws:secretsmanager:us-west-2:111111111111:secret:dr/app/db-AbCdEf".to_string(),
        ));
    }
    out
}

fn asks(policy: &Policy, action: &str, resource: &str, keys: &[(&str, &str)]) -> bool {
    let caller = Caller::session(FUNCTION_ROLE_ARN, "secret-replicator");
    let mut context = common::iam::global_context(&caller, "us-west-2");
    for (k, v) in keys {
        context = context.with(k, v);
    }
    evaluate(
        &[policy],
        &Request {
            caller,
            action: action.into(),
            resource: resource.into(),
            context,
        },
    )
    .allowed()
}

const MARKED: (&str, &str) = (MARKER_RESOURCE_TAG, "111111111111:us-east-1:app/db");

#[test]
fn writes_reads_and_deletes_need_the_marker_on_the_secret_and_describe_never_does() {
    for adoption in [false, true] {
        for (label, p, secret) in writing_roles(adoption, false, false) {
            for (action, keys) in MARKED_ONLY {
                let mut with = keys.to_vec();
                with.push(MARKED);
                assert!(
                    asks(&p, action, &secret, &with),
                    "{label}: {action} on a marked secret"
                );
                assert!(
                    !asks(&p, action, &secret, keys),
                    "{label}: {action} on an unmarked one"
                );
                // Whatever the request asks to tag: the resource's tag decides.
                let mut requested = keys.to_vec();
                requested.push((MARKER_REQUEST_TAG, "x"));
                assert!(!asks(&p, action, &secret, &requested), "{label}: {action}");
            }
            for action in ADOPTABLE {
                assert!(asks(&p, action, &secret, &[MARKED]), "{label}: {action}");
                assert_eq!(
                    asks(&p, action, &secret, &[]),
                    adoption,
                    "{label}: {action} on an unmarked secret, adoption {adoption}"
                );
                // TagResource is never allowed on aws:RequestTag alone.
                assert_eq!(
                    asks(&p, action, &secret, &[(MARKER_REQUEST_TAG, "x")]),
                    adoption,
                    "{label}: {action} with the marker only in the request"
                );
            }
            // The ownership check sees absent and foreign secrets as such.
            assert!(
                asks(&p, "secretsmanager:DescribeSecret", &secret, &[]),
                "{label}"
            );
            assert!(asks(&p, "secretsmanager:ListSecrets", "*", &[]), "{label}");
            // Deletion only with a recovery window; the key may be absent (a default window).
            let delete = "secretsmanager:DeleteSecret";
            let forced = [
                MARKED,
                ("secretsmanager:ForceDeleteWithoutRecovery", "true"),
            ];
            assert!(!asks(&p, delete, &secret, &forced), "{label}");
            assert!(asks(&p, delete, &secret, &[MARKED]), "{label}");
            // Policies and replicas only when asked for (the StackSet's parameters).
            for action in [
                "secretsmanager:PutResourcePolicy",
                "secretsmanager:GetResourcePolicy",
                "secretsmanager:ReplicateSecretToRegions",
                "secretsmanager:RemoveRegionsFromReplication",
            ] {
                let all = [
                    MARKED,
                    ("secretsmanager:BlockPublicPolicy", "true"),
                    ("secretsmanager:ForceOverwriteReplicaSecret", "false"),
                ];
                assert!(
                    !asks(&p, action, &secret, &all),
                    "{label}: {action} not asked for"
                );
            }
        }
    }
}

#[test]
fn create_needs_the_marker_in_the_request_and_its_implied_tag_resource_is_covered() {
    for adoption in [false, true] {
        for (label, p, secret) in writing_roles(adoption, false, false) {
            let create = "secretsmanager:CreateSecret";
            assert!(
                asks(&p, create, &secret, &[(MARKER_REQUEST_TAG, "a:b:c")]),
                "{label}"
            );
            assert!(
                !asks(&p, create, &secret, &[]),
                "{label}: no marker requested"
            );
            assert!(
                !asks(&p, create, &secret, &[("aws:RequestTag/team", "x")]),
                "{label}: other tags only"
            );
            // CreateSecret with Tags also asks TagResource of the new secret; its resource tags
            // are the request's (AWS's IAM ABAC tutorial; documentation only).
            let on_create = [
                (MARKER_REQUEST_TAG, "a:b:c"),
                (MARKER_RESOURCE_TAG, "a:b:c"),
            ];
            assert!(
                asks(&p, "secretsmanager:TagResource", &secret, &on_create),
                "{label}"
            );
        }
    }
}

#[test]
fn policies_and_replicas_when_asked_for_never_public_never_overwriting() {
    for (label, p, secret) in writing_roles(false, true, true) {
        let put = "secretsmanager:PutResourcePolicy";
        let blocked = ("secretsmanager:BlockPublicPolicy", "true");
        assert!(asks(&p, put, &secret, &[MARKED, blocked]), "{label}");
        assert!(
            !asks(&p, put, &secret, &[MARKED]),
            "{label}: without BlockPublicPolicy"
        );
        assert!(
            !asks(
                &p,
                put,
                &secret,
                &[MARKED, ("secretsmanager:BlockPublicPolicy", "false")]
            ),
            "{label}"
        );
        assert!(!asks(&p, put, &secret, &[blocked]), "{label}: unmarked");
        let get = "secretsmanager:GetResourcePolicy";
        assert!(asks(&p, get, &secret, &[MARKED]), "{label}");
        assert!(!asks(&p, get, &secret, &[]), "{label}: unmarked");
        let replicate = "secretsmanager:ReplicateSecretToRegions";
        let keep = ("secretsmanager:ForceOverwriteReplicaSecret", "false");
        assert!(asks(&p, replicate, &secret, &[MARKED, keep]), "{label}");
        assert!(
            !asks(
                &p,
                replicate,
                &secret,
                &[
                    MARKED,
                    ("secretsmanager:ForceOverwriteReplicaSecret", "true")
                ]
            ),
            "{label}: overwriting"
        );
        assert!(!asks(&p, replicate, &secret, &[keep]), "{label}: unmarked");
        let remove = "secretsmanager:RemoveRegionsFromReplication";
        assert!(asks(&p, remove, &secret, &[MARKED]), "{label}");
        assert!(!asks(&p, remove, &secret, &[]), "{label}: unmarked");
        // Adoption stays off: the marker still guards TagResource.
        assert!(
            !asks(&p, "secretsmanager:TagResource", &secret, &[]),
            "{label}"
        );
    }
}
