//! Log lines as `TIME LEVEL key=value ...`, one event per line, fields in the order the code
//! names them. Values are quoted only when they contain spaces, quotes or `=`, so both people
//! and fail2ban can read them and the field names are a stable interface.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

struct KeyValue;

struct Fields(String);

impl Fields {
    fn push(&mut self, name: &str, value: &str) {
        let name = if name == "message" { "msg" } else { name };
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        let needs_quotes = value.is_empty() || value.contains(|c: char| c.is_whitespace() || c == '"' || c == '=');
        if needs_quotes {
            let _ = write!(self.0, "{name}={value:?}");
        } else {
            let _ = write!(self.0, "{name}={value}");
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field.name(), &format!("{value:?}"));
    }
}

impl<S, N> FormatEvent<S, N> for KeyValue
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        writeln!(w, "{time} {} {}", event.metadata().level(), fields.0)
    }
}

/// Logs to stderr, and to `file` too when it is not empty, at `level` (a tracing filter);
/// RUST_LOG wins when set.
/// The dashboard's counters ([`crate::stats`]) see every event the filter lets through.
pub fn init(level: &str, file: &str) -> std::io::Result<()> {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // hickory's validator warns with a debug dump of every DNS message that fails DNSSEC
    // validation (RFC 7672 lookups): the outcome is logged as our own dane_* events instead.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("hickory_net=error,hickory_proto=error,hickory_resolver=error,{level}")));
    let registry = tracing_subscriber::registry().with(filter).with(crate::stats::StatsLayer);
    let format = tracing_subscriber::fmt::layer().event_format(KeyValue);
    if file.is_empty() {
        let _ = registry.with(format.with_writer(std::io::stderr)).try_init();
    } else {
        let f = std::fs::OpenOptions::new().create(true).append(true).open(file)?;
        let _ = registry.with(format.with_writer(std::io::stderr.and(std::sync::Mutex::new(f)))).try_init();
    }
    Ok(())
}
