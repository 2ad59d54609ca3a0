//! Everything that speaks to AWS through the SDK: the configuration (timeouts, bounded retries),
//! the clients per region and role (built once per container), error classification, the
//! Secrets Manager/KMS adapter, assumed roles and the SDK interceptors. No other module imports
//! `aws_sdk_*` or `aws_smithy_*` (but `main.rs`, which only calls [`sdk_config`]).

pub mod errors;
pub mod interceptors;
pub mod roles;
pub mod secrets;

pub use errors::{classify, codes, is_retriable, is_throttle, map_sdk_error};
pub use secrets::AwsStore;

use crate::config::Role;
use crate::outcome::Error;
use crate::store::{RetryPolicy, Stores};
use roles::{AssumedRoles, RoleProvider};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The function's AWS configuration: the standard region, credential and endpoint chains, with
/// explicit timeouts and a bounded retry policy so that one slow region cannot eat an
/// invocation's deadline. Retriable errors (throttling, 5xx, timeouts, resets) are retried with
/// exponential backoff and jitter: at most 3 attempts, each at most 5 s, 20 s in all.
pub async fn sdk_config() -> aws_config::SdkConfig {
    sdk_config_loader().load().await
}

/// The loader behind `sdk_config`, for callers (tests) that add an endpoint or credentials.
pub fn sdk_config_loader() -> aws_config::ConfigLoader {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use std::time::Duration;
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(20))
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(100))
                .with_max_backoff(Duration::from_secs(2)),
        )
}

/// (region, role): one set of clients each.
type ClientKey = (Option<String>, Option<Role>);

/// SDK clients per (region, role), built once per container and reused.
#[derive(Debug)]
pub struct AwsStores {
    base: aws_config::SdkConfig,
    /// Lambda, for an `all` run's continuation: one attempt window of at most 2 s (SPEC §6).
    lambda: aws_sdk_lambda::Client,
    roles: Arc<AssumedRoles>,
    clients: Mutex<HashMap<ClientKey, AwsStore>>,
    /// Shared by every client's interceptor.
    throttles: interceptors::ThrottleCounter,
}

impl AwsStores {
    /// `base` carries the region chain, credentials, endpoint, timeouts and retry policy.
    pub fn new(base: aws_config::SdkConfig, function_name: &str) -> Self {
        let throttles = interceptors::ThrottleCounter::default();
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&base)
                .interceptor(throttles.clone())
                .build(),
        );
        let lambda = aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::config::Builder::from(&base)
                .timeout_config(
                    aws_config::timeout::TimeoutConfig::builder()
                        .connect_timeout(std::time::Duration::from_secs(1))
                        .operation_timeout(std::time::Duration::from_secs(2))
                        .build(),
                )
                .build(),
        );
        AwsStores {
            lambda,
            roles: Arc::new(AssumedRoles::new(sts, function_name)),
            base,
            clients: Mutex::new(HashMap::new()),
            throttles,
        }
    }

    fn store(&self, region: Option<&str>, role: Option<&Role>) -> AwsStore {
        let key = (region.map(str::to_string), role.cloned());
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = clients.get(&key) {
            return s.clone();
        }
        let mut sm = aws_sdk_secretsmanager::config::Builder::from(&self.base)
            .retry_classifier(interceptors::RetryByErrorCode)
            .interceptor(self.throttles.clone());
        let mut kms =
            aws_sdk_kms::config::Builder::from(&self.base).interceptor(self.throttles.clone());
        if let Some(r) = region {
            sm = sm.region(aws_config::Region::new(r.to_string()));
            kms = kms.region(aws_config::Region::new(r.to_string()));
        }
        if let Some(role) = role {
            let provider = RoleProvider {
                roles: self.roles.clone(),
                role: role.clone(),
            };
            // The shared cache in `AssumedRoles` is the one cache; the SDK's own per-client
            // cache would assume the role once per region.
            sm = sm
                .credentials_provider(provider.clone())
                .identity_cache(aws_config::identity::IdentityCache::no_cache());
            kms = kms
                .credentials_provider(provider)
                .identity_cache(aws_config::identity::IdentityCache::no_cache());
        }
        let store = AwsStore {
            sm: aws_sdk_secretsmanager::Client::from_conf(sm.build()),
            kms: aws_sdk_kms::Client::from_conf(kms.build()),
            role: role.map(|r| (self.roles.clone(), r.clone())),
            keys: Arc::default(),
        };
        clients.insert(key, store.clone());
        store
    }
}

impl Stores for AwsStores {
    type Store = AwsStore;

    fn own(&self, region: Option<&str>) -> AwsStore {
        self.store(region, None)
    }

    fn take_throttled(&self) -> u64 {
        self.throttles.take()
    }

    fn retry_policy(&self) -> RetryPolicy {
        let defaults = RetryPolicy::default();
        match self.base.retry_config() {
            Some(r) => RetryPolicy {
                attempts: r.max_attempts(),
                initial_backoff: r.initial_backoff(),
                max_backoff: r.max_backoff(),
            },
            None => defaults,
        }
    }

    async fn invoke_async(&self, function: &str, payload: &str) -> Result<(), Error> {
        let out = self
            .lambda
            .invoke()
            .function_name(function)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(
                payload.as_bytes().to_vec(),
            ))
            .send()
            .await
            .map_err(|e| map_sdk_error("lambda", "Invoke", e))?;
        // An asynchronous invocation is accepted with 202.
        if out.status_code() != 202 && out.status_code() != 200 {
            return Err(Error::Aws(crate::outcome::AwsError {
                kind: crate::outcome::ErrorKind::ServiceError,
                service: "lambda",
                operation: "Invoke",
                code: format!("HTTP{}", out.status_code()),
                message: "the continuation was not accepted".into(),
            }));
        }
        Ok(())
    }

    async fn destination(&self, region: &str, role: Option<&Role>) -> Result<AwsStore, Error> {
        if let Some(role) = role {
            // Assume up front, so that an STS failure is reported as what it is (AccessDenied,
            // Throttled...) rather than as an opaque credentials error inside a later call.
            self.roles.get(role).await?;
        }
        Ok(self.store(Some(region), role))
    }
}

#[cfg(test)]
mod tests;
