//! Logging setup: `tracing` with human-readable or JSON lines, level from `LOG_LEVEL` or
//! config. Plugin logs arrive through the plugin loader's callback as `plugin` target events.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LoggingConfig};

/// Installs the global subscriber (once; later calls are ignored). Logs go to stderr so that
/// command output on stdout stays clean.
pub fn init(config: &LoggingConfig) {
    let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| config.level.clone());
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Pretty => builder.with_target(false).compact().try_init(),
    };
}
