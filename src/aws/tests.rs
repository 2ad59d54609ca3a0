//! The adapter at the SDK boundary, with canned responses (aws-smithy-mocks): the kind and the
//! AWS code survive the mapping, and responses shaped as the Secrets Manager API reference shows
//! them (raw JSON through the SDK's own deserialiser) become the values the pipeline decides on.

use super::*;
use crate::outcome::{ErrorKind, RetryClass};
use crate::secret::SecretValue;
use crate::store::{ReadSecrets, WriteSecrets};
use aws_sdk_secretsmanager::operation::describe_secret::{
    DescribeSecretError, DescribeSecretOutput,
};
use aws_sdk_secretsmanager::operation::get_secret_value::{
    GetSecretValueError, GetSecretValueOutput,
};
use aws_sdk_secretsmanager::operation::put_secret_value::{
    PutSecretValueError, PutSecretValueOutput,
};
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::Tag;
use aws_sdk_secretsmanager::types::error::{InternalServiceError, ResourceNotFoundException};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;

fn store(sm: aws_sdk_secretsmanager::Client) -> AwsStore {
    let kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                "AKID", "secret", None, None, "test",
            ))
            .build(),
    );
    AwsStore {
        sm,
        kms,
        role: None,
        keys: Arc::default(),
    }
}

fn generic(code: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message("m").build()
}

#[tokio::test]
async fn current_value_asks_for_awscurrent_and_keeps_binary_bytes() {
    let get = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
        .match_requests(|r| r.version_stage() == Some("AWSCURRENT") && r.secret_id() == Some("a/b"))
        .then_output(|| {
            GetSecretValueOutput::builder()
                .arn("arn:aws:secretsmanager:us-east-1:111122223333:secret:a/b-AbCdEf")
                .name("a/b")
                .version_id("v1")
                .secret_binary(Blob::new(vec![0u8, 159, 146, 150]))
                .build()
        });
    let client = mock_client!(aws_sdk_secretsmanager, [&get]);
    let v = store(client).current_value("a/b").await.unwrap();
    assert_eq!(v.value, SecretValue::bytes(vec![0, 159, 146, 150]));
    assert_eq!(v.name, "a/b");
    assert_eq!(v.version_id, "v1");
}

#[tokio::test]
async fn a_missing_source_keeps_the_aws_code() {
    let get = mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_error(|| {
        GetSecretValueError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .message("gone")
                .meta(generic("ResourceNotFoundException"))
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_secretsmanager, [&get]);
    let e = store(client).current_value("a/b").await.unwrap_err();
    assert!(e.is_aws("ResourceNotFoundException"), "{e:?}");
    assert_eq!(e.aws().unwrap().operation, "GetSecretValue");
}

#[tokio::test]
async fn describe_maps_not_found_to_none_and_reads_the_current_version() {
    let missing = mock!(aws_sdk_secretsmanager::Client::describe_secret).then_error(|| {
        DescribeSecretError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .meta(generic("ResourceNotFoundException"))
                .build(),
        )
    });
    let found = mock!(aws_sdk_secretsmanager::Client::describe_secret).then_output(|| {
        DescribeSecretOutput::builder()
            .name("d")
            .kms_key_id("alias/k")
            .tags(
                Tag::builder()
                    .key("secret-replicator:source")
                    .value("1:r:n")
                    .build(),
            )
            .version_ids_to_stages("old", vec!["AWSPREVIOUS".into()])
            .version_ids_to_stages("new", vec!["AWSCURRENT".into()])
            .deleted_date(aws_smithy_types::DateTime::from_secs(1))
            .build()
    });
    let client = mock_client!(
        aws_sdk_secretsmanager,
        RuleMode::Sequential,
        [&missing, &found]
    );
    let s = store(client);
    assert_eq!(s.describe("d").await.unwrap(), None);
    let d = s.describe("d").await.unwrap().unwrap();
    assert_eq!(d.current_version.as_deref(), Some("new"));
    assert_eq!(d.tag("secret-replicator:source"), Some("1:r:n"));
    assert!(d.deleted);
    assert_eq!(d.kms_key_id.as_deref(), Some("alias/k"));
}

#[tokio::test]
async fn put_reports_the_stages_of_the_written_version() {
    let put = mock!(aws_sdk_secretsmanager::Client::put_secret_value)
        .match_requests(|r| {
            r.client_request_token() == Some("tok") && r.secret_string() == Some("v")
        })
        .then_output(|| {
            PutSecretValueOutput::builder()
                .version_id("tok")
                .version_stages("AWSPREVIOUS")
                .build()
        });
    let client = mock_client!(aws_sdk_secretsmanager, [&put]);
    let w = store(client)
        .put("d", &SecretValue::text("v".into()), "tok")
        .await
        .unwrap();
    assert_eq!(w.stages, ["AWSPREVIOUS"]);
}

#[tokio::test]
async fn service_errors_map_to_the_error_table() {
    type Make = fn() -> PutSecretValueError;
    // Attempts: None where the retry decision rests on the HTTP status, which canned errors do not
    // carry (5xx retries are proven through the fault proxy in tests/faults.rs).
    let cases: Vec<(Make, ErrorKind, &str, Option<usize>)> = vec![
        (
            || PutSecretValueError::generic(generic("AccessDeniedException")),
            ErrorKind::AccessDenied,
            "AccessDeniedException",
            Some(1),
        ),
        // Writes make one attempt at the SDK: the pipeline retries them, each attempt paced by
        // the write budget (replicate::execute).
        (
            || PutSecretValueError::generic(generic("ThrottlingException")),
            ErrorKind::Throttled,
            "ThrottlingException",
            Some(1),
        ),
        (
            || {
                PutSecretValueError::InternalServiceError(
                    InternalServiceError::builder()
                        .meta(generic("InternalServiceError"))
                        .build(),
                )
            },
            ErrorKind::ServiceError,
            "InternalServiceError",
            None,
        ),
        (
            || PutSecretValueError::generic(generic("EncryptionFailure")),
            ErrorKind::KmsUnavailable,
            "EncryptionFailure",
            Some(1),
        ),
        (
            || PutSecretValueError::generic(generic("InvalidParameterException")),
            ErrorKind::AwsClientError,
            "InvalidParameterException",
            Some(1),
        ),
    ];
    for (make, kind, code, attempts) in cases {
        let put = mock!(aws_sdk_secretsmanager::Client::put_secret_value).then_error(make);
        let client = mock_client!(aws_sdk_secretsmanager, [&put]);
        let e = store(client)
            .put("d", &SecretValue::text("v".into()), "tok")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{code}");
        assert_eq!(e.aws().unwrap().code, code);
        assert_eq!(e.aws().unwrap().service, "secretsmanager");
        if let Some(n) = attempts {
            assert_eq!(put.num_calls(), n, "{code}");
        }
    }
}

#[test]
fn classification_covers_the_table() {
    let cases = [
        ("AccessDeniedException", None, ErrorKind::AccessDenied),
        ("AccessDenied", Some(403), ErrorKind::AccessDenied),
        ("ExpiredTokenException", Some(400), ErrorKind::AccessDenied),
        ("ThrottlingException", Some(400), ErrorKind::Throttled),
        ("LimitExceededException", Some(400), ErrorKind::Throttled),
        ("DecryptionFailure", Some(400), ErrorKind::KmsUnavailable),
        (
            "KMSInvalidStateException",
            Some(400),
            ErrorKind::KmsUnavailable,
        ),
        ("InternalServiceError", Some(500), ErrorKind::ServiceError),
        ("InternalServiceError", Some(400), ErrorKind::ServiceError),
        ("NotAuthorized", Some(400), ErrorKind::AccessDenied),
        ("Whatever", Some(503), ErrorKind::ServiceError),
        ("RequestTimeout", Some(408), ErrorKind::Timeout),
        (
            "InvalidRequestException",
            Some(400),
            ErrorKind::AwsClientError,
        ),
    ];
    for (code, status, kind) in cases {
        assert_eq!(classify(code, status), kind, "{code}");
    }
    assert_eq!(ErrorKind::Throttled.retry_class(), RetryClass::Retriable);
}

#[tokio::test]
async fn reads_are_retried_by_the_sdk_and_throttles_counted() {
    let get = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
        .then_error(|| GetSecretValueError::generic(generic("ThrottlingException")));
    let client = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, [&get], |c| {
        c.retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(std::time::Duration::from_millis(1)),
        )
    });
    let e = store(client).current_value("a/b").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Throttled);
    assert_eq!(
        get.num_calls(),
        3,
        "a read is retried by the SDK's standard policy"
    );
}

// ---- responses shaped as the API reference shows them ------------------------------------------

/// A raw HTTP answer of the awsJson1_1 protocol.
fn http(status: u16, body: &str) -> aws_smithy_runtime_api::http::Response {
    let mut r = aws_smithy_runtime_api::http::Response::new(
        aws_smithy_runtime_api::http::StatusCode::try_from(status).unwrap(),
        aws_smithy_types::body::SdkBody::from(body.to_string()),
    );
    r.headers_mut()
        .insert("Content-Type", "application/x-amz-json-1.1");
    r
}

/// A JSON error answer, as AWS sends it (`__type`, and `x-amzn-ErrorType`).
fn http_error(status: u16, code: &str, message: &str) -> aws_smithy_runtime_api::http::Response {
    let mut r = http(
        status,
        &serde_json::json!({"__type": code, "message": message}).to_string(),
    );
    r.headers_mut().insert("x-amzn-ErrorType", code.to_string());
    r
}

async fn describe_json(body: &'static str) -> crate::store::Description {
    let d = mock!(aws_sdk_secretsmanager::Client::describe_secret)
        .then_http_response(move || http(200, body));
    let client = mock_client!(aws_sdk_secretsmanager, [&d]);
    store(client).describe("x").await.unwrap().unwrap()
}

/// The API reference's describe-secret example: a primary in us-west-2 replicated to
/// eu-west-3. `PrimaryRegion` is the secret's own region.
const PRIMARY_WITH_REPLICAS: &str = r#"{
  "ARN": "arn:aws:secretsmanager:us-west-2:123456789012:secret:MyTestDatabaseSecret-a1b2c3",
  "Name": "MyTestDatabaseSecret",
  "Description": "My test database secret",
  "KmsKeyId": "arn:aws:kms:us-west-2:123456789012:key/EXAMPLE1-90ab-cdef-fedc-ba987KMSKEY1",
  "RotationEnabled": true,
  "RotationLambdaARN": "arn:aws:lambda:us-west-2:123456789012:function:MyTestRotationLambda",
  "RotationRules": {"AutomaticallyAfterDays": 14, "Duration": "2h", "ScheduleExpression": "cron(0 16 1,15 * ? *)"},
  "LastRotatedDate": 1525747253.72,
  "LastChangedDate": 1523477145.729,
  "LastAccessedDate": 1524572133.25,
  "Tags": [{"Key": "SecondTag", "Value": "AnotherValue"}, {"Key": "FirstTag", "Value": "SomeValue"}],
  "VersionIdsToStages": {
    "a1b2c3d4-5678-90ab-cdef-EXAMPLEaaaaa": ["AWSPREVIOUS"],
    "a1b2c3d4-5678-90ab-cdef-EXAMPLEbbbbb": ["AWSCURRENT"]
  },
  "CreatedDate": 1523477145.713,
  "PrimaryRegion": "us-west-2",
  "ReplicationStatus": [{"Region": "eu-west-3", "KmsKeyId": "alias/aws/secretsmanager", "Status": "InSync", "StatusMessage": "Replication succeeded"}]
}"#;

#[tokio::test]
async fn a_primary_with_replicas_is_not_a_native_replica() {
    let d = describe_json(PRIMARY_WITH_REPLICAS).await;
    assert_eq!(d.primary_region.as_deref(), Some("us-west-2"));
    assert!(
        !d.is_native_replica(),
        "PrimaryRegion is the secret's own region"
    );
    assert_eq!(
        d.current_version.as_deref(),
        Some("a1b2c3d4-5678-90ab-cdef-EXAMPLEbbbbb")
    );
    assert_eq!(d.version_ids.len(), 2);
    assert_eq!(d.tag("FirstTag"), Some("SomeValue"));
    assert!(!d.deleted);
    assert_eq!(
        d.kms_key_id.as_deref(),
        Some("arn:aws:kms:us-west-2:123456789012:key/EXAMPLE1-90ab-cdef-fedc-ba987KMSKEY1")
    );
}

#[tokio::test]
async fn a_plain_secret_on_the_managed_key_has_no_key_and_is_ours_to_compare() {
    let d = describe_json(
        r#"{"ARN": "arn:aws:secretsmanager:us-west-2:123456789012:secret:plain-a1b2c3",
            "Name": "plain",
            "LastChangedDate": 1523477145.729,
            "VersionIdsToStages": {"a1b2c3d4-5678-90ab-cdef-EXAMPLEbbbbb": ["AWSCURRENT"]},
            "CreatedDate": 1523477145.713}"#,
    )
    .await;
    assert_eq!(d.primary_region, None);
    assert!(!d.is_native_replica());
    assert_eq!(
        d.kms_key_id, None,
        "AWS omits KmsKeyId for aws/secretsmanager"
    );
    assert!(crate::replicate::decide::key_matches(
        crate::replicate::decide::MANAGED_KEY,
        None,
        d.kms_key_id.as_deref()
    ));
}

#[tokio::test]
async fn a_native_replica_names_its_primary_s_region() {
    let d = describe_json(
        r#"{"ARN": "arn:aws:secretsmanager:eu-west-3:123456789012:secret:MyTestDatabaseSecret-a1b2c3",
            "Name": "MyTestDatabaseSecret",
            "VersionIdsToStages": {"a1b2c3d4-5678-90ab-cdef-EXAMPLEbbbbb": ["AWSCURRENT"]},
            "PrimaryRegion": "us-west-2"}"#,
    )
    .await;
    assert!(d.is_native_replica());
}

#[tokio::test]
async fn a_secret_scheduled_for_deletion_says_when() {
    let d = describe_json(
        r#"{"ARN": "arn:aws:secretsmanager:us-west-2:123456789012:secret:gone-a1b2c3",
            "Name": "gone",
            "DeletedDate": 1795770902,
            "VersionIdsToStages": {"a1b2c3d4-5678-90ab-cdef-EXAMPLEbbbbb": ["AWSCURRENT"]},
            "PrimaryRegion": "us-west-2"}"#,
    )
    .await;
    assert!(d.deleted);
    let secs = d
        .deletion_date
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(secs, 1_795_770_902);
}

#[tokio::test]
async fn versions_without_a_label_are_not_listed() {
    let d = describe_json(
        r#"{"ARN": "arn:aws:secretsmanager:us-west-2:123456789012:secret:x-a1b2c3",
            "Name": "x",
            "VersionIdsToStages": {"v-current": ["AWSCURRENT"], "v-deprecated": []}}"#,
    )
    .await;
    assert_eq!(d.version_ids, ["v-current"]);
}

#[tokio::test]
async fn a_repeated_token_with_the_same_value_is_ignored_and_with_another_is_an_error() {
    // Same value: AWS answers with the existing version, whose stages say whether it is current.
    let same = mock!(aws_sdk_secretsmanager::Client::put_secret_value).then_http_response(|| {
        http(
            200,
            r#"{"ARN": "arn:aws:secretsmanager:us-west-2:123456789012:secret:x-a1b2c3",
                "Name": "x",
                "VersionId": "EXAMPLE1-90ab-8a5e-8edc-ba987EXAMPLE",
                "VersionStages": ["AWSPREVIOUS"]}"#,
        )
    });
    let other = mock!(aws_sdk_secretsmanager::Client::put_secret_value).then_http_response(|| {
        http_error(
            400,
            "ResourceExistsException",
            "A resource with the ID you requested already exists.",
        )
    });
    let client = mock_client!(
        aws_sdk_secretsmanager,
        RuleMode::Sequential,
        [&same, &other]
    );
    let s = store(client);
    let w = s
        .put(
            "x",
            &SecretValue::text("v".into()),
            "EXAMPLE1-90ab-8a5e-8edc-ba987EXAMPLE",
        )
        .await
        .unwrap();
    assert!(
        !w.is_current(),
        "the write was ignored: AWSCURRENT did not move"
    );
    let e = s
        .put(
            "x",
            &SecretValue::text("other".into()),
            "EXAMPLE1-90ab-8a5e-8edc-ba987EXAMPLE",
        )
        .await
        .unwrap_err();
    assert!(e.is_aws("ResourceExistsException"), "{e:?}");
    assert_eq!(other.num_calls(), 1, "a write is not retried by the SDK");
}

#[tokio::test]
async fn list_secrets_pages_are_followed_to_the_end() {
    let first = mock!(aws_sdk_secretsmanager::Client::list_secrets)
        .match_requests(|r| r.next_token().is_none() && r.max_results() == Some(100))
        .then_http_response(|| {
            http(
                200,
                r#"{"SecretList": [
                    {"ARN": "arn:aws:secretsmanager:us-west-2:123456789012:secret:a-a1b2c3", "Name": "a",
                     "KmsKeyId": "arn:aws:kms:us-west-2:123456789012:key/EXAMPLE1-90ab-cdef-fedc-ba987KMSKEY1",
                     "Tags": [{"Key": "secret-replicator:source", "Value": "1:r:a"}],
                     "SecretVersionsToStages": {"v1": ["AWSCURRENT"]},
                     "PrimaryRegion": "us-west-2"},
                    {"ARN": "arn:aws:secretsmanager:us-west-2:123456789012:secret:b-a1b2c3", "Name": "b",
                     "DeletedDate": 1795770902}
                   ],
                   "NextToken": "page-2"}"#,
            )
        });
    let second = mock!(aws_sdk_secretsmanager::Client::list_secrets)
        .match_requests(|r| r.next_token() == Some("page-2"))
        .then_http_response(|| {
            http(
                200,
                r#"{"SecretList": [{"ARN": "arn:aws:secretsmanager:us-west-2:123456789012:secret:c-a1b2c3", "Name": "c"}]}"#,
            )
        });
    let client = mock_client!(
        aws_sdk_secretsmanager,
        RuleMode::MatchAny,
        [&first, &second]
    );
    let listed = store(client)
        .list(crate::store::ListFilter::default())
        .await
        .unwrap();
    let names: Vec<&str> = listed.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(
        listed[0].tags,
        [("secret-replicator:source".into(), "1:r:a".into())]
    );
    assert!(listed[1].deleted);
}

#[tokio::test]
async fn an_internal_service_error_is_retried_whatever_its_status() {
    // Secrets Manager can send InternalServiceError with a 4xx status: still a service failure.
    let get = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
        .sequence()
        .http_response(|| {
            http_error(
                400,
                "InternalServiceError",
                "We encountered an internal error.",
            )
        })
        .http_response(|| {
            http(
                200,
                r#"{"ARN": "arn:aws:secretsmanager:us-west-2:123456789012:secret:x-a1b2c3",
                    "Name": "x", "VersionId": "v1", "SecretString": "s",
                    "VersionStages": ["AWSCURRENT"], "CreatedDate": 1523477145.713}"#,
            )
        })
        .build();
    let client = mock_client!(aws_sdk_secretsmanager, RuleMode::Sequential, [&get], |c| {
        c.retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(std::time::Duration::from_millis(1)),
        )
        .retry_classifier(interceptors::RetryByErrorCode)
    });
    let v = store(client).current_value("x").await.unwrap();
    assert_eq!(v.version_id, "v1");
    assert!(v.created.is_some());
    assert_eq!(get.num_calls(), 2);
}

#[tokio::test]
async fn an_iam_denial_is_access_denied_with_its_code() {
    let get = mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_http_response(|| {
        http_error(
            400,
            "AccessDeniedException",
            "User: arn:aws:sts::123456789012:assumed-role/r/s is not authorized to perform: secretsmanager:GetSecretValue on resource: x because no identity-based policy allows the secretsmanager:GetSecretValue action",
        )
    });
    let client = mock_client!(aws_sdk_secretsmanager, [&get]);
    let e = store(client).current_value("x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AccessDenied);
    assert!(e.is_aws("AccessDeniedException"));
    assert_eq!(get.num_calls(), 1);
}
