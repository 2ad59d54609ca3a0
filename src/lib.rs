//! secret-replicator: replicates AWS Secrets Manager secrets across regions and accounts,
//! rewriting values on the way.
//!
//! The data's path, one module per stage:
//! `event` (payload → request) → `config` / `rules` (which destinations) → `transform` (the
//! value) → `replicate` (read, write, confirm) through `store` / `credentials` (AWS) →
//! `outcome` (the result document) → `metrics`. `app` ties them into the handler; `cli` is the
//! operator's command line.

pub mod app;
pub mod arn;
pub mod aws;
pub mod cli;
pub mod config;
pub mod continuation;
pub mod error;
pub mod event;
pub mod logging;
pub mod metrics;
pub mod outcome;
pub mod replicate;
pub mod rules;
pub mod secret;
pub mod settings;
pub mod store;
pub mod time;
pub mod token;
pub mod transform;
