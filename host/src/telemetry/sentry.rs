//! Error reporting to Sentry: enabled by `SENTRY_DSN` (unset or empty: disabled, silently),
//! tagged with the environment and release, with the panic integration, and with a
//! `before_send` that scrubs secrets and speech from every event and breadcrumb.
//!
//! The `tracing` side (errors become events, info and warnings become breadcrumbs, debug is
//! never sent) is the layer [`tracing_layer`] gives; `telemetry::init` installs it.

use std::sync::Arc;
use std::time::Duration;

use sentry::integrations::backtrace::{AttachStacktraceIntegration, ProcessStacktraceIntegration};
use sentry::integrations::panic::PanicIntegration;
use sentry::protocol::{Breadcrumb, Event};
use sentry::types::Dsn;
use sentry::ClientOptions;

use super::scrub::{Scrubber, REDACTED};

/// The environment variable holding the DSN.
pub(crate) const DSN_VAR: &str = "SENTRY_DSN";

/// How long shutdown waits for queued events by default.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// Event fields that are identifiers or SDK data, left as they are by the scrubber.
const STRUCTURAL_FIELDS: &[&str] = &[
    "event_id",
    "timestamp",
    "start_timestamp",
    "trace_id",
    "span_id",
    "parent_span_id",
    "sdk",
    "debug_meta",
    "stacktrace",
    "raw_stacktrace",
    "release",
    "environment",
    "platform",
    "level",
];

/// Why Sentry could not be enabled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SentryError {
    /// `SENTRY_DSN` is set but is not a DSN. The value is never shown: it holds a key.
    #[error("{DSN_VAR} is set but is not a valid Sentry DSN ({reason}); error reporting is off")]
    InvalidDsn {
        /// The parser's reason, without the value.
        reason: String,
    },
}

/// What the client is set up with.
#[derive(Debug, Clone)]
pub struct SentrySettings {
    /// `development`, `production`…
    pub environment: String,
    /// `openclaw-voice@<version>`.
    pub release: String,
    /// Share of traces sent, 0 to 1.
    pub traces_sample_rate: f32,
    /// Applied to every event and breadcrumb before it is queued.
    pub scrubber: Arc<Scrubber>,
}

/// The release name Sentry groups events by.
pub(crate) fn release_name() -> String {
    format!("openclaw-voice@{}", env!("CARGO_PKG_VERSION"))
}

/// Client options for `settings` and `dsn`. The integrations are listed explicitly (no
/// defaults), so tests that build a client from these options get the same behaviour.
// Field by field from `default()`: newer sentry releases make `ClientOptions` non-exhaustive.
#[allow(clippy::field_reassign_with_default)]
pub(crate) fn client_options(settings: &SentrySettings, dsn: Option<Dsn>) -> ClientOptions {
    let mut options = ClientOptions::default();
    options.dsn = dsn;
    options.environment = Some(settings.environment.clone().into());
    options.release = Some(settings.release.clone().into());
    options.traces_sample_rate = settings.traces_sample_rate;
    options.send_default_pii = false;
    options.attach_stacktrace = false;
    options.max_breadcrumbs = 50;
    options.shutdown_timeout = SHUTDOWN_TIMEOUT;
    options.default_integrations = false;
    options.integrations = vec![
        Arc::new(AttachStacktraceIntegration),
        Arc::new(PanicIntegration::default()),
        Arc::new(ProcessStacktraceIntegration),
    ];
    let scrubber = settings.scrubber.clone();
    options.before_send = Some(Arc::new(move |event| scrub_event(&scrubber, event)));
    let scrubber = settings.scrubber.clone();
    options.before_breadcrumb = Some(Arc::new(move |crumb| scrub_breadcrumb(&scrubber, crumb)));
    options
}

/// Starts the client when `dsn` (the value of `SENTRY_DSN`) is set; `Ok(None)` when it is not.
pub fn init(
    settings: &SentrySettings,
    dsn: Option<&str>,
) -> Result<Option<sentry::ClientInitGuard>, SentryError> {
    let Some(dsn) = dsn.map(str::trim).filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    let dsn: Dsn =
        dsn.parse()
            .map_err(|e: sentry::types::ParseDsnError| SentryError::InvalidDsn {
                reason: e.to_string(),
            })?;
    let guard = sentry::init(client_options(settings, Some(dsn)));
    Ok(guard.is_enabled().then_some(guard))
}

/// The `tracing` layer: error events become Sentry events, warnings and info become
/// breadcrumbs, debug and trace (where transcripts are logged) are never sent.
pub(crate) fn tracing_layer<S>() -> sentry::integrations::tracing::SentryLayer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    sentry::integrations::tracing::layer()
}

/// Scrubs an event through its JSON form, so that no field is missed. An event that cannot
/// be scrubbed is dropped rather than sent as it is.
pub(crate) fn scrub_event(scrubber: &Scrubber, event: Event<'static>) -> Option<Event<'static>> {
    let mut value = serde_json::to_value(&event).ok()?;
    scrubber.scrub_json(&mut value, STRUCTURAL_FIELDS);
    // Requests and users are never reported.
    if let Some(map) = value.as_object_mut() {
        map.remove("request");
        map.remove("user");
        map.remove("server_name");
    }
    serde_json::from_value(value).ok()
}

/// Scrubs a breadcrumb the same way.
pub(crate) fn scrub_breadcrumb(scrubber: &Scrubber, crumb: Breadcrumb) -> Option<Breadcrumb> {
    let mut value = serde_json::to_value(&crumb).ok()?;
    scrubber.scrub_json(&mut value, STRUCTURAL_FIELDS);
    serde_json::from_value(value).ok().or_else(|| {
        Some(Breadcrumb {
            message: Some(REDACTED.into()),
            ..Default::default()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sentry::test::with_captured_events_options;
    use tracing_subscriber::layer::SubscriberExt;

    const SECRET: &str = "s3cr3t-discord-token-value";

    fn settings() -> SentrySettings {
        SentrySettings {
            environment: "staging".into(),
            release: release_name(),
            traces_sample_rate: 0.1,
            scrubber: Arc::new(Scrubber::new([SECRET.to_string()])),
        }
    }

    fn text(event: &Event<'static>) -> String {
        serde_json::to_string(event).unwrap()
    }

    #[test]
    fn a_panic_reaches_sentry_without_the_secret() {
        let events = with_captured_events_options(
            || {
                let result = std::panic::catch_unwind(|| {
                    panic!("lost the connection while holding {SECRET}");
                });
                assert!(result.is_err());
            },
            client_options(&settings(), None),
        );
        assert_eq!(events.len(), 1, "{events:?}");
        let event = &events[0];
        let json = text(event);
        assert!(json.contains("lost the connection"), "{json}");
        assert!(!json.contains(SECRET), "{json}");
        assert!(json.contains(REDACTED), "{json}");
        assert_eq!(event.environment.as_deref(), Some("staging"));
        assert_eq!(event.release.as_deref(), Some(release_name().as_str()));
        assert_eq!(event.exception.values[0].ty, "panic");
    }

    #[test]
    fn an_error_log_reaches_sentry_and_info_is_a_breadcrumb() {
        let capture = || {
            with_captured_events_options(
                || {
                    let subscriber = tracing_subscriber::registry().with(tracing_layer());
                    tracing::subscriber::with_default(subscriber, || {
                        tracing::info!(speaker = "u-1234", "turn started");
                        tracing::debug!(transcript = "my pin is 4321", "turn text");
                        tracing::error!(
                            transcript = "my pin is 4321",
                            detail = %format!("Authorization: Bearer {SECRET}"),
                            "speech-to-text failed"
                        );
                    });
                },
                client_options(&settings(), None),
            )
        };
        // tracing keeps one global "most verbose level" across every subscriber, and other
        // tests set and drop theirs on other threads: a capture that races one of them can
        // miss the info line. A second capture settles it; the assertions below are strict.
        let mut events = capture();
        if events.len() != 1 || events[0].breadcrumbs.values.len() != 1 {
            events = capture();
        }
        assert_eq!(events.len(), 1, "{events:?}");
        let event = &events[0];
        let json = text(event);
        assert!(json.contains("speech-to-text failed"), "{json}");
        assert!(!json.contains(SECRET), "{json}");
        assert!(!json.contains("4321"), "transcripts are not sent: {json}");
        assert_eq!(event.breadcrumbs.values.len(), 1, "{json}");
        assert_eq!(
            event.breadcrumbs.values[0].message.as_deref(),
            Some("turn started")
        );
        assert_eq!(event.environment.as_deref(), Some("staging"));
    }

    #[test]
    fn no_dsn_means_disabled_without_error() {
        assert!(init(&settings(), None).unwrap().is_none());
        assert!(init(&settings(), Some("  ")).unwrap().is_none());
        match init(&settings(), Some("not a dsn with key abcdef")) {
            Err(err) => assert!(!err.to_string().contains("abcdef"), "{err}"),
            Ok(_) => panic!("an invalid DSN is refused"),
        }
    }
}
