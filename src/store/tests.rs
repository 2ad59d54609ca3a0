//! The adapter at the SDK boundary, with canned responses (aws-smithy-mocks): the kind and the
//! AWS code survive the mapping.

use super::*;
use crate::outcome::RetryClass;
use aws_sdk_secretsmanager::operation::describe_secret::{
    DescribeSecretError, DescribeSecretOutput,
};
use aws_sdk_secretsmanager::operation::get_secret_value::{
    GetSecretValueError, GetSecretValueOutput,
};
use aws_sdk_secretsmanager::operation::put_secret_value::{
    PutSecretValueError, PutSecretValueOutput,
};
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
    assert_eq!(v.value, SecretValue::Binary(vec![0, 159, 146, 150]));
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
        .put("d", &SecretValue::String("v".into()), "tok")
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
        (
            || PutSecretValueError::generic(generic("ThrottlingException")),
            ErrorKind::Throttled,
            "ThrottlingException",
            Some(3),
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
            .put("d", &SecretValue::String("v".into()), "tok")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{code}");
        assert_eq!(e.aws().unwrap().code, code);
        assert_eq!(e.aws().unwrap().service, "secretsmanager");
        // Retriable errors are retried by the SDK's standard policy; permanent ones are not.
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
