//! Logs and error reports: `tracing` with human-readable or JSON lines (level from
//! `LOG_LEVEL` or config), every line scrubbed of secrets before it is written (to stderr and,
//! with `[logging.cloudwatch]`, to CloudWatch Logs: [`cloudwatch`]), and Sentry when
//! `SENTRY_DSN` is set. Plugin logs arrive through the plugin loader's callback as
//! `plugin` target events.
//!
//! Privacy: transcripts and replies are logged at debug level only, and user ids through
//! [`user_label`], hashed unless `logging.hash_user_ids = false`: HMAC-SHA-256 under the
//! deployment's key (`logging.hash_key_env`), see [`hash_user`].

pub mod cloudwatch;
pub(crate) mod scrub;
pub mod sentry;

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LoadedConfig, LogFormat};
use scrub::Scrubber;

/// Whether [`user_label`] hashes.
static HASH_USER_IDS: AtomicBool = AtomicBool::new(true);

/// The scrubber `init` built, for command output that reports errors (see [`scrub`]).
static SCRUBBER: OnceLock<Arc<Scrubber>> = OnceLock::new();

/// The Sentry client, kept until [`shutdown`] flushes it.
static SENTRY: OnceLock<Mutex<Option<::sentry::ClientInitGuard>>> = OnceLock::new();

/// Installs logging and, when `SENTRY_DSN` is set, error reporting (once; later calls are
/// ignored). Logs go to stderr so that command output on stdout stays clean.
pub fn init(loaded: &LoadedConfig) {
    let config = &loaded.config;
    HASH_USER_IDS.store(config.logging.hash_user_ids, Ordering::Relaxed);
    let scrubber = Arc::new(Scrubber::for_config(config, std::env::vars()));
    let _ = SCRUBBER.set(scrubber.clone());

    let mut sentry_problem = None;
    let mut sentry_on = false;
    if SENTRY.get().is_none() {
        let settings = sentry::SentrySettings {
            environment: loaded.environment.clone(),
            release: sentry::release_name(),
            traces_sample_rate: config.sentry.traces_sample_rate,
            scrubber: scrubber.clone(),
        };
        let dsn = std::env::var(sentry::DSN_VAR).ok();
        match sentry::init(&settings, dsn.as_deref()) {
            Ok(guard) => {
                sentry_on = guard.is_some();
                let _ = SENTRY.set(Mutex::new(guard));
            }
            Err(e) => sentry_problem = Some(e),
        }
    }

    let cloudwatch_problem = start_cloudwatch(loaded).err();
    // Checked and spelled for tracing by the config load (`LOG_LEVEL` folded in).
    let filter =
        EnvFilter::try_new(&config.logging.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = ScrubbedStderr { scrubber };
    let fmt = match config.logging.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(writer)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            // Colour only for a person at a terminal, never in files, pipes or journald.
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .compact()
            .with_writer(writer)
            .boxed(),
    };
    let sentry_layer = sentry_on.then(sentry::tracing_layer);
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(sentry_layer)
        .try_init()
        .is_ok();
    if installed {
        if let Some(problem) = cloudwatch_problem {
            tracing::warn!(
                "cloudwatch logs: cannot start the sink: {problem}; logs go to stderr only"
            );
        } else if cloudwatch::installed() {
            let c = &config.logging.cloudwatch;
            tracing::info!(log_group = %c.log_group, "log lines also go to CloudWatch Logs");
        }
        if let Some(problem) = sentry_problem {
            tracing::warn!("{problem}");
        } else if sentry_on {
            tracing::info!(environment = %loaded.environment, "error reporting to Sentry is on");
        }
    }
    set_hash_key(config.logging.hash_key_env.as_deref());
}

/// Starts the CloudWatch Logs sink when `[logging.cloudwatch] enabled`.
fn start_cloudwatch(loaded: &LoadedConfig) -> std::io::Result<()> {
    let c = &loaded.config.logging.cloudwatch;
    if !c.enabled {
        return Ok(());
    }
    let settings = cloudwatch::Settings::from_config(
        c,
        &loaded.environment,
        loaded.config.discord.shard_label().as_deref(),
    );
    cloudwatch::install(settings)
}

/// Sends the log lines the CloudWatch sink holds and flushes queued error reports, within
/// `timeout` for both, then stops the Sentry client. Returns whether everything queued was
/// sent; `true` when neither is on.
pub fn shutdown(timeout: Duration) -> bool {
    let started = std::time::Instant::now();
    let logs_sent = cloudwatch::shutdown(timeout);
    let timeout = timeout.saturating_sub(started.elapsed());
    let Some(slot) = SENTRY.get() else {
        return logs_sent;
    };
    let guard = match slot.lock() {
        Ok(mut g) => g.take(),
        Err(p) => p.into_inner().take(),
    };
    match guard {
        Some(guard) => {
            let flushed = guard.flush(Some(timeout));
            drop(guard);
            flushed && logs_sent
        }
        None => logs_sent,
    }
}

/// Reports an error that ends the process (the command's error chain) to Sentry, if on.
pub fn capture_fatal(message: &str) {
    if ::sentry::Hub::current().client().is_some() {
        ::sentry::capture_message(message, ::sentry::Level::Fatal);
    }
}

/// `text` followed by the messages of `source` and its own sources, each after `": "`: an
/// error's whole chain on one line.
pub(crate) fn with_sources(
    mut text: String,
    source: Option<&(dyn std::error::Error + 'static)>,
) -> String {
    let mut source = source;
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `text` with secrets replaced, for command output that carries provider or agent error
/// messages (unchanged before [`init`]).
pub(crate) fn scrub(text: &str) -> String {
    match SCRUBBER.get() {
        Some(s) => s.scrub(text).into_owned(),
        None => text.to_string(),
    }
}

/// The key user ids are hashed with: the value of `logging.hash_key_env`, set by [`init`].
static HASH_KEY: OnceLock<Vec<u8>> = OnceLock::new();

/// Used when no per-deployment key is configured: hashes still differ from a bare SHA-256
/// of the id, but anyone with the source can recompute them.
const BUILT_IN_HASH_KEY: &[u8] = b"openclaw-voice:user-id";

/// Sets the per-deployment hashing key from the variable `var` names (once; a missing or
/// empty variable leaves the built-in key and says so).
fn set_hash_key(var: Option<&str>) {
    let Some(var) = var.filter(|v| !v.trim().is_empty()) else {
        return;
    };
    match std::env::var(var) {
        Ok(key) if !key.trim().is_empty() => {
            let _ = HASH_KEY.set(key.trim().as_bytes().to_vec());
        }
        _ => tracing::warn!(
            variable = var,
            "logging.hash_key_env names a variable that is not set; user ids are hashed with \
             the built-in key"
        ),
    }
}

/// Hashes a user id with HMAC-SHA-256 under the deployment's key (`logging.hash_key_env`),
/// so the raw id never leaves the host and a hash cannot be matched to a public Discord id
/// without the key.
pub(crate) fn hash_user(id: &str) -> String {
    use hmac::{Hmac, Mac};
    let key = HASH_KEY
        .get()
        .map(Vec::as_slice)
        .unwrap_or(BUILT_IN_HASH_KEY);
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => return "u-unhashable".into(),
    };
    mac.update(id.as_bytes());
    format!("u-{}", &hex::encode(mac.finalize().into_bytes())[..16])
}

/// How a user id appears in logs: hashed (`u-…`) unless `logging.hash_user_ids = false`.
pub(crate) fn user_label(id: &str) -> String {
    if HASH_USER_IDS.load(Ordering::Relaxed) {
        hash_user(id)
    } else {
        id.to_string()
    }
}

/// stderr, with each formatted event scrubbed before it is written.
#[derive(Clone)]
struct ScrubbedStderr {
    scrubber: Arc<Scrubber>,
}

/// One event's bytes; written, scrubbed, when dropped (the formatter writes a whole event and
/// then drops its writer).
struct ScrubbedLine {
    scrubber: Arc<Scrubber>,
    buf: Vec<u8>,
}

impl<'a> MakeWriter<'a> for ScrubbedStderr {
    type Writer = ScrubbedLine;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbedLine {
            scrubber: self.scrubber.clone(),
            buf: Vec::with_capacity(256),
        }
    }
}

impl Write for ScrubbedLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ScrubbedLine {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        let scrubbed = self.scrubber.scrub(&text);
        // A log line that cannot be written has nowhere to be reported.
        let _ = std::io::stderr().lock().write_all(scrubbed.as_bytes());
        cloudwatch::push(&scrubbed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_hashed_by_default() {
        let label = user_label("123456789012345678");
        assert!(label.starts_with("u-"), "{label}");
        assert!(!label.contains("123456789012345678"));
    }

    #[test]
    fn user_ids_are_hashed_stably() {
        assert_eq!(hash_user("42"), hash_user("42"));
        assert_ne!(hash_user("42"), hash_user("43"));
        assert!(!hash_user("123456789").contains("123456789"));
    }

    #[test]
    fn the_hash_is_keyed_not_a_bare_sha256_of_the_id() {
        use sha2::{Digest, Sha256};
        let bare = hex::encode(Sha256::digest(b"123456789"));
        let salted = hex::encode(Sha256::digest(b"openclaw-voice:123456789"));
        let h = hash_user("123456789");
        assert!(
            !bare.starts_with(&h[2..]) && !salted.starts_with(&h[2..]),
            "{h}"
        );
    }
}
