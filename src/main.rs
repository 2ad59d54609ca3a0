//! The one binary: serves Lambda events under a Lambda runtime, and is the operator CLI
//! otherwise.

use lambda_runtime::{LambdaEvent, service_fn};
use secret_replicator::app;
use secret_replicator::event;
use secret_replicator::logging::{self, LogLevel};
use secret_replicator::metrics::Metrics;
use secret_replicator::settings::{self, Env, Settings};
use serde_json::value::RawValue;
use std::process::ExitCode;
use std::sync::Arc;

// One thread: Lambda hands a container one invocation at a time, the work is waiting on the
// network, and a single-threaded runtime saves the cross-thread wake-ups (futex and epoll calls)
// that a multi-threaded one spends on every request.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let env = Env::from_process();
    if !settings::under_lambda_runtime(&env) {
        return secret_replicator::cli::run(env, std::env::args().skip(1).collect()).await;
    }
    logging::init_lambda(&env);
    match serve(env).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "Lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}

async fn serve(env: Env) -> Result<(), lambda_runtime::Error> {
    let metrics = Metrics::stdout(LogLevel::threshold(&env));
    let app = match Settings::from_env(&env) {
        Ok(settings) => app::build(settings, metrics).await,
        Err(e) => {
            metrics.config_load_failed(&e);
            Err(e)
        }
    };
    if let Err(e) = &app {
        // Serve anyway: every invocation answers with this error instead of timing out.
        tracing::error!(error = %e, "invalid configuration");
    }
    let app = Arc::new(app);
    // The payload arrives raw: a typed `Value` would be parsed by the runtime before the handler,
    // and a deeply nested one would fail there with serde_json's "recursion limit exceeded"
    // instead of the InvalidEvent that names the depth limit (RawValue skips nesting without
    // recursion).
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let app = app.clone();
        async move {
            let payload = match event::read_payload(event.payload.get()) {
                Ok(p) => p,
                Err(e) => return app::unreadable_payload(&e).map(app::Answer::Document),
            };
            match app.as_ref() {
                Ok(app) => {
                    let invoked = app::Invoked {
                        deadline: deadline(event.context.deadline),
                        function_arn: Some(event.context.invoked_function_arn.clone())
                            .filter(|a| !a.is_empty()),
                    };
                    app.answer(&payload, &invoked).await
                }
                Err(e) => app::cannot_work(e, &payload),
            }
        }
    }))
    .await
}

/// The invocation's deadline (epoch milliseconds from the Runtime API) as an `Instant`.
fn deadline(epoch_ms: u64) -> Option<std::time::Instant> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    let left = epoch_ms.checked_sub(now)?;
    Some(std::time::Instant::now() + std::time::Duration::from_millis(left))
}
