//! SDK interceptors and classifiers the clients share: the retry rules by error code, and the
//! count of throttled attempts behind the `ThrottledAttempts` metric.

use super::errors::codes;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    FinalizerInterceptorContextRef, InterceptorContext,
};
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The retry rules the SDK's own classifiers miss, by AWS error code (SPEC §7):
/// `LimitExceededException` is a quota, not a burst (retrying within the invocation cannot help),
/// so it is never retried; `InternalServiceError` is a service failure and is retried whatever
/// HTTP status it comes with (the SDK retries 5xx statuses only).
#[derive(Debug, Default)]
pub struct RetryByErrorCode;

impl ClassifyRetry for RetryByErrorCode {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        // The SDK runs the classifiers on every response, successes included (twice: once more
        // to decide whether to drop the connection), so look at nothing but 4xx statuses: a 5xx
        // is retried anyway.
        let Some(resp) = ctx
            .response()
            .filter(|r| (400..500).contains(&r.status().as_u16()))
        else {
            return RetryAction::NoActionIndicated;
        };
        let header = resp.headers().get("x-amzn-errortype");
        let body = resp.body().bytes();
        let says = |codes: &[&str]| {
            codes.iter().any(|code| {
                header.is_some_and(|h| h.split(':').next() == Some(*code))
                    || body.is_some_and(|b| contains(b, format!("{code}\"").as_bytes()))
            })
        };
        if says(codes::QUOTA) {
            RetryAction::RetryForbidden
        } else if says(codes::SERVICE) {
            RetryAction::server_error()
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "RetryByErrorCode"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// An SDK interceptor counting attempts that AWS answered with throttling (HTTP 429, or a 400
/// whose error code is one of `store::codes::THROTTLE`).
/// Clones share one count: the SDK clients of a container each get a clone as interceptor, and
/// the handler takes the count after each invocation (one invocation at a time per container).
#[derive(Debug, Clone, Default)]
pub struct ThrottleCounter(Arc<AtomicU64>);

impl ThrottleCounter {
    /// Counts one throttled attempt (what the interceptor does on a throttling answer).
    pub fn record(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The count since the last `take`, resetting it.
    pub fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

impl Intercept for ThrottleCounter {
    fn name(&self) -> &'static str {
        "ThrottleCounter"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(resp) = context.response() {
            let error_type = resp.headers().get("x-amzn-errortype");
            if is_throttle(resp.status().as_u16(), error_type, resp.body().bytes()) {
                self.record();
            }
        }
        Ok(())
    }
}

/// Error codes that mean "slow down" (JSON protocols: Secrets Manager, KMS; query: STS).
const THROTTLE_CODES: &[&str] = codes::THROTTLE;

/// Whether a response is a throttling answer. `LimitExceededException` is a quota, not a
/// throttle (it is not retried), and is not counted.
fn is_throttle(status: u16, error_type: Option<&str>, body: Option<&[u8]>) -> bool {
    if status == 429 {
        return true;
    }
    if status != 400 {
        return false;
    }
    if let Some(t) = error_type {
        // `ThrottlingException:http://internal.amazon.com/coral/...`
        let code = t.split(':').next().unwrap_or(t);
        return THROTTLE_CODES.contains(&code);
    }
    let Some(body) = body else { return false };
    THROTTLE_CODES.iter().any(|code| {
        // JSON: "__type":"ThrottlingException" (possibly namespaced `...#ThrottlingException`);
        // XML: <Code>Throttling</Code>.
        contains(body, format!("{code}\"").as_bytes())
            || contains(body, format!("<Code>{code}</Code>").as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_answers_are_recognised() {
        assert!(is_throttle(429, None, None));
        assert!(is_throttle(
            400,
            Some(
                "ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/"
            ),
            None
        ));
        assert!(is_throttle(
            400,
            None,
            Some(
                br#"{"__type":"com.amazonaws.kms#ThrottlingException","message":"Rate exceeded"}"#
            )
        ));
        assert!(is_throttle(
            400,
            None,
            Some(b"<ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>")
        ));
        assert!(!is_throttle(400, Some("LimitExceededException"), None));
        assert!(!is_throttle(
            400,
            None,
            Some(br#"{"__type":"LimitExceededException"}"#)
        ));
        assert!(!is_throttle(500, None, Some(b"ThrottlingException\"")));
        assert!(!is_throttle(200, None, None));
    }
}
