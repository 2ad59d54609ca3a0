//! Assumed-role credentials for destination accounts, cached per (role, external id) for the
//! life of the container.
//!
//! Sessions last one hour: the function's own credentials are themselves an assumed role, and
//! role chaining caps a session at 3600 s. A cached session is reused until it is within
//! `REFRESH_MARGIN` of expiry; the margin is the longest a Lambda invocation can run, so a session
//! handed out at the start of an invocation outlives it and AssumeRole runs about once every 45
//! minutes per role.

use super::errors::map_sdk_error;
use crate::config::Role;
use crate::outcome::Error;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, error::CredentialsError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Requested session length (the role-chaining maximum).
pub const SESSION: Duration = Duration::from_secs(3600);
/// Refresh a session this long before it expires (Lambda's maximum timeout).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(900);

type Slot = Arc<tokio::sync::Mutex<Option<Credentials>>>;

/// The cache, shared by every destination client.
#[derive(Debug)]
pub struct AssumedRoles {
    sts: aws_sdk_sts::Client,
    session_name: String,
    slots: Mutex<HashMap<(String, Option<String>), Slot>>,
}

impl AssumedRoles {
    /// `session_name` is the function's name, so that events caused by its writes in a
    /// destination account are recognisable there too (SPEC §5).
    pub fn new(sts: aws_sdk_sts::Client, session_name: &str) -> Self {
        AssumedRoles {
            sts,
            session_name: session_name.to_string(),
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, role: &Role) -> Slot {
        let key = (role.arn.clone(), role.external_id.clone());
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(key).or_default().clone()
    }

    /// Cached credentials for the role, assuming it when there are none or they are close to
    /// expiry. One AssumeRole at a time per role: concurrent destinations wait for it.
    pub async fn get(&self, role: &Role) -> Result<Credentials, Error> {
        let slot = self.slot(role);
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref() {
            let fresh = c
                .expiry()
                .is_none_or(|exp| exp > SystemTime::now() + REFRESH_MARGIN);
            if fresh {
                return Ok(c.clone());
            }
        }
        let creds = self.assume(role).await?;
        *cached = Some(creds.clone());
        Ok(creds)
    }

    /// Forgets the role's session (after ExpiredToken); the next `get` assumes it again.
    pub async fn invalidate(&self, role: &Role) {
        *self.slot(role).lock().await = None;
    }

    async fn assume(&self, role: &Role) -> Result<Credentials, Error> {
        let out = self
            .sts
            .assume_role()
            .role_arn(&role.arn)
            .role_session_name(&self.session_name)
            .set_external_id(role.external_id.clone())
            .duration_seconds(SESSION.as_secs() as i32)
            .send()
            .await
            .map_err(|e| map_sdk_error("sts", "AssumeRole", e))?;
        let c = out.credentials().ok_or_else(|| {
            Error::InvalidConfig(format!("AssumeRole {} returned no credentials", role.arn))
        })?;
        let expiry = SystemTime::try_from(*c.expiration()).ok();
        tracing::debug!(role = %role.arn, "assumed destination role");
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expiry,
            "secret-replicator-assume-role",
        ))
    }
}

/// The credentials provider of a destination client: reads the shared cache.
#[derive(Debug, Clone)]
pub struct RoleProvider {
    pub roles: Arc<AssumedRoles>,
    pub role: Role,
}

impl ProvideCredentials for RoleProvider {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            self.roles
                .get(&self.role)
                .await
                .map_err(CredentialsError::provider_error)
        })
    }
}
