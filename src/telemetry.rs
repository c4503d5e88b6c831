//! Logging set-up. Building a subscriber is separate from installing it, so tests and the
//! offline commands can choose where logs go.

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogFormat, LogSettings};

/// A subscriber writing to `writer` in the configured format and level.
/// `ansi` colours the pretty format (for a terminal).
pub fn subscriber<W>(
    settings: &LogSettings,
    writer: W,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true);
    match settings.format {
        LogFormat::Json => Box::new(builder.with_ansi(false).json().flatten_event(true).finish()),
        LogFormat::Pretty => Box::new(builder.with_ansi(ansi).compact().finish()),
    }
}

/// Installs `subscriber` for the whole process (once; later calls are ignored).
pub fn init(subscriber: Box<dyn Subscriber + Send + Sync>) {
    let _ = tracing::subscriber::set_global_default(subscriber);
}
