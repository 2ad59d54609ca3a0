use super::*;

fn failed(kind: ErrorKind) -> Outcome {
    let err = match kind {
        ErrorKind::TooLarge => Error::TooLarge(70_000),
        _ => Error::Aws(AwsError {
            kind,
            service: "secretsmanager",
            operation: "PutSecretValue",
            code: "X".into(),
            message: "m".into(),
        }),
    };
    Outcome::failed("src", None, Action::Update, &err)
}

fn ok() -> Outcome {
    Outcome::ok("src", None, Status::Replicated, Action::Update)
}

#[test]
fn every_kind_has_the_status_code_and_retry_class_of_the_table() {
    use ErrorKind::*;
    let table = [
        (InvalidEvent, 400, RetryClass::Permanent),
        (InvalidConfig, 400, RetryClass::Permanent),
        (AwsClientError, 400, RetryClass::Permanent),
        (AccessDenied, 403, RetryClass::Permanent),
        (SourceNotFound, 404, RetryClass::Permanent),
        (DestinationConflict, 409, RetryClass::Permanent),
        (TooLarge, 413, RetryClass::Permanent),
        (TransformFailed, 422, RetryClass::Permanent),
        (KmsUnavailable, 424, RetryClass::Permanent),
        (Throttled, 429, RetryClass::Retriable),
        (ServiceError, 502, RetryClass::Retriable),
        (Timeout, 504, RetryClass::Retriable),
    ];
    for (kind, code, class) in table {
        assert_eq!(kind.status_code(), code, "{kind:?}");
        assert_eq!(kind.retry_class(), class, "{kind:?}");
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
    }
}

#[test]
fn top_level_code_is_200_207_or_the_common_code() {
    let cases = [
        (vec![ok(), ok()], 200),
        (vec![ok(), failed(ErrorKind::AccessDenied)], 207),
        (
            vec![
                failed(ErrorKind::AccessDenied),
                failed(ErrorKind::Throttled),
            ],
            207,
        ),
        (
            vec![failed(ErrorKind::Throttled), failed(ErrorKind::Throttled)],
            429,
        ),
        (vec![failed(ErrorKind::TooLarge)], 413),
        (vec![], 200),
    ];
    for (results, want) in cases {
        assert_eq!(Report::from_results(results, vec![]).status_code, want);
    }
}

#[test]
fn document_uses_the_spec_field_names() {
    let report = Report::from_results(vec![ok(), failed(ErrorKind::Throttled)], vec![]);
    let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(v["statusCode"], 207);
    assert_eq!(v["results"][1]["retryClass"], "retriable");
    assert_eq!(v["results"][1]["error"]["kind"], "Throttled");
    assert_eq!(v["results"][1]["statusCode"], 429);
    assert_eq!(v["results"][0]["status"], "replicated");
    assert_eq!(v["remaining"], serde_json::json!([]));
    assert_eq!(report.first_failure(), Some(ErrorKind::Throttled));
}
