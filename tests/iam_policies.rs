//! The IAM policies of `template.yaml` and `iam/`, evaluated with their conditions (SPEC §11:
//! "static tests over template.yaml and iam/ check what the emulator does not evaluate").
//!
//! - (a) The evaluator of `tests/common/iam.rs` itself, against the examples of the IAM User
//!   Guide ("IAM JSON policy elements: Condition operators", "Condition", "Resource", and the
//!   multivalued-condition page).

mod common;

use common::iam::{
    Caller, Context, Decision, Kind, Policy, Request, arn_like, evaluate, glob, resource_matches,
};
use serde_json::{Value, json};

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
