//! The function's log lines under Lambda (SPEC §10): JSON when `AWS_LAMBDA_LOG_FORMAT` is
//! `JSON` (the template sets it), plain text otherwise; filtered by `AWS_LAMBDA_LOG_LEVEL`,
//! else `RUST_LOG`, else INFO.
//!
//! Why not the runtime's own subscriber (`lambda_runtime::tracing::init_default_subscriber`):
//! - it nests an event's fields under `"fields"`; here they are top-level keys (`status`,
//!   `action`, `error_kind`, `source`, `destination`, `region`, `reason`, ...), so that a Logs
//!   Insights query names them directly;
//! - it writes no timestamp, and Lambda files a JSON line without a valid `level` *and* an RFC
//!   3339 `timestamp` as INFO ("If you don't supply a valid timestamp, Lambda will assign the log
//!   the level INFO and add a timestamp for you", AWS Lambda Developer Guide, "Log-level
//!   filtering",
//!   <https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-log-level.html>), so
//!   its WARN and ERROR lines would be dropped under `LogLevel=WARN`;
//! - it reads `FATAL`, a level Lambda offers, as INFO (tracing has no FATAL).
//!
//! The request span the runtime opens per invocation (`requestId`, `xrayTraceId`) is kept at
//! every level and its fields become top-level keys too, so a WARN line names its request.
//! The EMF metric lines are not log events: `metrics` stamps them with the threshold in force
//! ([`LogLevel::threshold`]) so that no level drops them.

use crate::settings::Env;
use serde_json::{Map, Value};
use std::fmt;
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{
    FmtContext, FormatEvent, FormattedFields, MakeWriter, SubscriberBuilder,
};
use tracing_subscriber::registry::LookupSpan;

/// The target of the runtime's per-invocation span (`Lambda runtime invoke`, with
/// `requestId`); the module has no events of its own.
const REQUEST_SPAN_TARGET: &str = "lambda_runtime::layers::trace";

/// The application log levels Lambda offers (`LoggingConfig.ApplicationLogLevel`, the
/// template's `LogLevel`), most detailed first. Lambda sends a line whose level is the
/// threshold's or less detailed ("Lambda sends logs of the selected level and lower", same
/// page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl LogLevel {
    /// Every level, most detailed first.
    pub const ALL: [LogLevel; 6] = [
        LogLevel::Trace,
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
        LogLevel::Fatal,
    ];

    /// The threshold Lambda filters by: `AWS_LAMBDA_LOG_LEVEL` (set by Lambda from the
    /// function's application log level), INFO when unset or not a level (Lambda files a line
    /// with an invalid level as INFO). `RUST_LOG` filters this process's own lines only.
    pub fn threshold(env: &Env) -> LogLevel {
        env.get("AWS_LAMBDA_LOG_LEVEL")
            .and_then(LogLevel::parse)
            .unwrap_or(LogLevel::Info)
    }

    /// A level name, case-insensitively.
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "TRACE" => LogLevel::Trace,
            "DEBUG" => LogLevel::Debug,
            "INFO" => LogLevel::Info,
            "WARN" => LogLevel::Warn,
            "ERROR" => LogLevel::Error,
            "FATAL" => LogLevel::Fatal,
            _ => return None,
        })
    }

    /// The name Lambda reads in a line's `level`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
            LogLevel::Fatal => "FATAL",
        }
    }

    /// What this process prints at the level: FATAL, which tracing lacks, prints nothing
    /// (Lambda would drop every line tracing can write).
    fn filter(self) -> LevelFilter {
        match self {
            LogLevel::Trace => LevelFilter::TRACE,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Error => LevelFilter::ERROR,
            LogLevel::Fatal => LevelFilter::OFF,
        }
    }
}

/// The process's filter: `AWS_LAMBDA_LOG_LEVEL` first, else `RUST_LOG`'s directives, else
/// INFO; the runtime's request span at every level.
pub fn lambda_filter(env: &Env) -> EnvFilter {
    let base = match env.get("AWS_LAMBDA_LOG_LEVEL").and_then(LogLevel::parse) {
        Some(level) => level.filter().to_string(),
        None => env.get("RUST_LOG").unwrap_or("info").to_string(),
    };
    EnvFilter::builder().parse_lossy(format!("{base},{REQUEST_SPAN_TARGET}=info"))
}

/// The JSON subscriber: one [`FlatJson`] line per event, into `writer`.
pub fn json_subscriber<W>(
    filter: EnvFilter,
    writer: W,
) -> SubscriberBuilder<JsonFields, FlatJson, EnvFilter, W>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .fmt_fields(JsonFields::new())
        .event_format(FlatJson)
        .with_writer(writer)
}

/// Installs the subscriber under Lambda, writing to stdout (where Lambda collects lines):
/// JSON lines when `AWS_LAMBDA_LOG_FORMAT` is JSON, text (Lambda stamps it) otherwise.
pub fn init_lambda(env: &Env) {
    let filter = lambda_filter(env);
    let json = env
        .get("AWS_LAMBDA_LOG_FORMAT")
        .is_some_and(|f| f.eq_ignore_ascii_case("json"));
    let _ = if json {
        tracing::subscriber::set_global_default(json_subscriber(filter, std::io::stdout).finish())
    } else {
        tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_target(false)
                .without_time()
                .with_ansi(false)
                .with_writer(std::io::stdout)
                .finish(),
        )
    };
}

/// One JSON object per event: `timestamp` (RFC 3339, UTC), `level`, `message`, the fields of
/// the spans it is in (outermost first), then its own fields. A field whose name is taken
/// already is written as `field.<name>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlatJson;

impl<S> FormatEvent<S, JsonFields> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        let now = crate::time::format_rfc3339(std::time::SystemTime::now());
        line.insert("timestamp".into(), Value::String(now));
        line.insert(
            "level".into(),
            Value::String(event.metadata().level().as_str().into()),
        );
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let mut fields = fields.0;
        if let Some(m) = fields.shift_remove("message") {
            line.insert("message".into(), m);
        }
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                let Some(recorded) = ext.get::<FormattedFields<JsonFields>>() else {
                    continue;
                };
                if let Ok(Value::Object(span_fields)) = serde_json::from_str(recorded.as_str()) {
                    for (k, v) in span_fields {
                        line.entry(k).or_insert(v);
                    }
                }
            }
        }
        for (k, v) in fields {
            if line.contains_key(&k) {
                line.insert(format!("field.{k}"), v);
            } else {
                line.insert(k, v);
            }
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// An event's fields as JSON values: numbers and booleans as such, everything else as text.
struct Fields(Map<String, Value>);

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0
            .insert(field.name().into(), Value::String(value.into()));
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), Value::Bool(value));
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        self.0
            .insert(field.name().into(), Value::String(value.to_string()));
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests;
