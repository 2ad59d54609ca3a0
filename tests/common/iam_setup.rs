//! The identities the IAM-enforcing moto (`tests/moto/server.py`) creates before it serves
//! (`MOTO_IAM_SETUP`), with fixed credentials, from [`super::policies`]:
//!
//! - the admin user of the source account ([`policies::ADMIN_ACCESS_KEY_ID`]) and an admin role
//!   in every account of [`policies::ADMIN_ACCOUNTS`] that it may assume (seeding, inspection);
//! - the function's role ([`policies::FUNCTION_ROLE_ARN`], the template's policy) with one
//!   session named like the function ([`policies::FUNCTION_ACCESS_KEY_ID`]): the product's
//!   credentials, an assumed-role principal as on Lambda;
//! - the destination role ([`policies::DEST_ROLE_ARN`]) with its policy and trust policy.
#![allow(dead_code)]

use super::policies;
use serde_json::{Value, json};

/// What the launcher installs. [`IamSetup::default`] is the suites' setup.
#[derive(Debug, Clone)]
pub struct IamSetup {
    /// The function role's statements.
    pub function_policy: Vec<Value>,
    /// The destination role's statements.
    pub destination_policy: Vec<Value>,
    /// The destination role's trust statements.
    pub destination_trust: Vec<Value>,
}

impl Default for IamSetup {
    fn default() -> Self {
        IamSetup {
            function_policy: policies::function_policy(),
            destination_policy: policies::destination_policy(),
            destination_trust: policies::destination_trust(),
        }
    }
}

fn doc(statements: &[Value]) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

impl IamSetup {
    /// The suites' setup with another function policy.
    pub fn with_function_policy(statements: Vec<Value>) -> Self {
        IamSetup {
            function_policy: statements,
            ..IamSetup::default()
        }
    }

    /// The document `MOTO_IAM_SETUP` names (format: the docstring of `tests/moto/server.py`).
    pub fn to_json(&self) -> Value {
        let admin = doc(&policies::admin_policy());
        let source_root = format!("arn:aws:iam::{}:root", policies::SOURCE_ACCOUNT);
        let mut roles: Vec<Value> = policies::ADMIN_ACCOUNTS
            .iter()
            .map(|account| {
                json!({
                    "arn": policies::admin_role_arn(account),
                    "trust": doc(&[json!({
                        "Effect": "Allow",
                        "Principal": {"AWS": source_root},
                        "Action": "sts:AssumeRole"
                    })]),
                    "policy": admin,
                })
            })
            .collect();
        roles.push(json!({
            "arn": policies::FUNCTION_ROLE_ARN,
            "trust": doc(&policies::function_trust()),
            "policy": doc(&self.function_policy),
            "sessions": [{
                "session_name": policies::FUNCTION_SESSION_NAME,
                "access_key_id": policies::FUNCTION_ACCESS_KEY_ID,
                "secret_access_key": policies::FUNCTION_SECRET_ACCESS_KEY,
                "session_token": policies::FUNCTION_SESSION_TOKEN,
            }],
        }));
        roles.push(json!({
            "arn": policies::DEST_ROLE_ARN,
            "trust": doc(&self.destination_trust),
            "policy": doc(&self.destination_policy),
        }));
        json!({
            "users": [{
                "account": policies::SOURCE_ACCOUNT,
                "name": "admin",
                "access_key_id": policies::ADMIN_ACCESS_KEY_ID,
                "secret_access_key": policies::ADMIN_SECRET_ACCESS_KEY,
                "policy": admin,
            }],
            "roles": roles,
        })
    }
}
