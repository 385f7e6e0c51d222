//! Prometheus metrics (text format at `/metrics`).
//!
//! Turn-level metrics are recorded from [`TurnReport`]s by [`Metrics::observe_turn`];
//! provider-level metrics (`provider_requests_total`, `stt_latency_seconds`,
//! `tts_first_audio_seconds`, `provider_circuit_open`, `provider_circuit_opened_total`),
//! `plugin_info` and the CloudWatch sink's `log_events_sent_total`/`log_events_dropped_total`
//! are produced at
//! scrape time from each provider's [`StatsSnapshot`](crate::plugins::StatsSnapshot), so a
//! provider call costs nothing extra. The process collector adds CPU, memory and file
//! descriptors (`process_*`). docs/MONITORING.md says what each one means.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use super::health::circuit_open;
use super::Components;
use crate::pipeline::{TurnOutcome, TurnReport};
use crate::plugins::stats::Histogram as StatsHistogram;
use crate::plugins::StatsSnapshot;

/// Bucket bounds of `response_latency_seconds`, as the seed dashboards expect.
pub(crate) const RESPONSE_LATENCY_BUCKETS: [f64; 6] = [0.1, 0.5, 1.0, 2.0, 3.0, 5.0];

/// Bucket bounds of `agent_first_token_seconds` (the same as the provider latencies).
pub(crate) const STAGE_BUCKETS: [f64; 9] = crate::plugins::stats::LATENCY_BUCKETS;

/// `voice_errors_total{error_type}` values: where a failed turn broke.
pub(crate) const ERROR_TYPES: [&str; 4] = ["stt", "agent", "tts", "turn"];

/// `voice_turns_total{outcome}` values.
pub(crate) const TURN_OUTCOMES: [&str; 7] = [
    "completed",
    "interrupted",
    "failed",
    "cancelled",
    "no_speech",
    "not_addressed",
    "continued",
];

/// The metrics could not be set up or rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A metric could not be registered (a bug: names and labels are fixed).
    #[error("cannot register metric: {0}")]
    Register(#[from] prometheus::Error),
    /// The exposition text could not be produced.
    #[error("cannot encode metrics: {0}")]
    Encode(String),
}

/// The registry and the metrics recorded as things happen.
pub struct Metrics {
    registry: Registry,
    voice_connections_total: IntCounter,
    voice_connections_active: IntGauge,
    transcriptions_total: IntCounter,
    response_latency: Histogram,
    voice_errors: IntCounterVec,
    turns: IntCounterVec,
    agent_first_token: Histogram,
    turn_ends: IntCounterVec,
}

/// `build_info{version, profile} 1`.
fn build_info() -> Result<IntGaugeVec, MetricsError> {
    let build_info = IntGaugeVec::new(
        Opts::new("build_info", "Build of the running binary (always 1)"),
        &["version", "profile"],
    )?;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION"), profile])
        .set(1);
    Ok(build_info)
}

impl Metrics {
    /// Registers every metric; `components` feeds the scrape-time provider metrics.
    pub fn new(components: Arc<RwLock<Components>>) -> Result<Metrics, MetricsError> {
        let voice_connections_total = IntCounter::new(
            "voice_connections_total",
            "Voice connections opened since start",
        )?;
        let voice_connections_active =
            IntGauge::new("voice_connections_active", "Voice connections open now")?;
        let transcriptions_total = IntCounter::new(
            "transcriptions_total",
            "Utterances transcribed by a speech-to-text provider",
        )?;
        let response_latency = Histogram::with_opts(
            HistogramOpts::new(
                "response_latency_seconds",
                "End of the user's speech to the first audio of the reply",
            )
            .buckets(RESPONSE_LATENCY_BUCKETS.to_vec()),
        )?;
        let voice_errors = IntCounterVec::new(
            Opts::new(
                "voice_errors_total",
                "Failed turns, by where they broke (stt, agent, tts, turn)",
            ),
            &["error_type"],
        )?;
        let turns = IntCounterVec::new(
            Opts::new("voice_turns_total", "Finished turns, by outcome"),
            &["outcome"],
        )?;
        let agent_first_token = Histogram::with_opts(
            HistogramOpts::new(
                "agent_first_token_seconds",
                "Transcript ready to the agent's first token",
            )
            .buckets(STAGE_BUCKETS.to_vec()),
        )?;
        let turn_ends = IntCounterVec::new(
            Opts::new(
                "turn_end_decisions_total",
                "Utterances ended, by the rule that ended them (turn_complete, \
                 transcript_complete, last_word_unsure, silence_limit, silence, max_length, \
                 input_ended)",
            ),
            &["rule"],
        )?;
        let metrics = Metrics {
            registry: Registry::new(),
            voice_connections_total,
            voice_connections_active,
            transcriptions_total,
            response_latency,
            voice_errors,
            turns,
            agent_first_token,
            turn_ends,
        };
        metrics.register(components)?;
        Ok(metrics)
    }

    /// Registers every metric, each label value present from the start (so rates and alerts
    /// see zeros, not gaps), and the scrape-time collectors.
    fn register(&self, components: Arc<RwLock<Components>>) -> Result<(), MetricsError> {
        for (vec, values) in [
            (&self.turn_ends, &crate::pipeline::endpoint::END_RULES[..]),
            (&self.voice_errors, &ERROR_TYPES[..]),
            (&self.turns, &TURN_OUTCOMES[..]),
        ] {
            for value in values {
                vec.with_label_values(&[value]);
            }
        }
        let collectors: [Box<dyn prometheus::core::Collector>; 12] = [
            Box::new(self.voice_connections_total.clone()),
            Box::new(self.voice_connections_active.clone()),
            Box::new(self.transcriptions_total.clone()),
            Box::new(self.response_latency.clone()),
            Box::new(self.voice_errors.clone()),
            Box::new(self.turns.clone()),
            Box::new(self.agent_first_token.clone()),
            Box::new(self.turn_ends.clone()),
            Box::new(crate::pipeline::models::VAD_SECONDS.clone()),
            Box::new(crate::pipeline::models::TURN_MODEL_SECONDS.clone()),
            Box::new(build_info()?),
            Box::new(ComponentsCollector::new(components)?),
        ];
        let registry = &self.registry;
        for collector in collectors {
            registry.register(collector)?;
        }
        super::hearing::register(registry)?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(())
    }

    /// A voice connection opened.
    pub(crate) fn connection_opened(&self) {
        self.voice_connections_total.inc();
        self.voice_connections_active.inc();
    }

    /// A voice connection closed.
    pub(crate) fn connection_closed(&self) {
        self.voice_connections_active.dec();
    }

    /// Voice connections open now.
    pub fn voice_connections_active(&self) -> i64 {
        self.voice_connections_active.get()
    }

    /// Voice connections opened since start.
    pub fn voice_connections_total(&self) -> u64 {
        self.voice_connections_total.get()
    }

    /// Records a finished turn (or a dropped no-speech utterance).
    pub(crate) fn observe_turn(&self, report: &TurnReport) {
        self.turns
            .with_label_values(&[outcome_label(&report.outcome)])
            .inc();
        self.turn_ends
            .with_label_values(&[report.end_rule.label()])
            .inc();
        if report.stt_provider.is_some() {
            self.transcriptions_total.inc();
        }
        let t = &report.timeline;
        if let Some(first_audio) = t.first_tts_audio {
            self.response_latency.observe(
                first_audio
                    .saturating_duration_since(t.speech_end)
                    .as_secs_f64(),
            );
        }
        if let (Some(stt), Some(token)) = (t.stt_done, t.agent_first_token) {
            self.agent_first_token
                .observe(token.saturating_duration_since(stt).as_secs_f64());
        }
        if let Some(error_type) = error_type(report) {
            self.voice_errors.with_label_values(&[error_type]).inc();
        }
    }

    /// The exposition text (Prometheus text format 0.0.4).
    pub(crate) fn render(&self) -> Result<String, MetricsError> {
        let families = self.registry.gather();
        let mut buf = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&families, &mut buf)
            .map_err(|e| MetricsError::Encode(e.to_string()))?;
        String::from_utf8(buf).map_err(|e| MetricsError::Encode(e.to_string()))
    }
}

/// The `voice_turns_total{outcome}` value.
pub(crate) fn outcome_label(outcome: &TurnOutcome) -> &'static str {
    match outcome {
        TurnOutcome::Completed => "completed",
        TurnOutcome::Interrupted => "interrupted",
        TurnOutcome::Failed(_) => "failed",
        TurnOutcome::Cancelled => "cancelled",
        TurnOutcome::NotAddressed => "not_addressed",
        TurnOutcome::NoSpeech => "no_speech",
        TurnOutcome::Continued => "continued",
    }
}

/// Where a failed turn broke (`voice_errors_total{error_type}`); `None` when it did not fail.
pub fn error_type(report: &TurnReport) -> Option<&'static str> {
    let TurnOutcome::Failed(reason) = &report.outcome else {
        return None;
    };
    Some(if report.stt_provider.is_none() {
        "stt"
    } else if reason.starts_with("agent") {
        "agent"
    } else if report.timeline.first_tts_audio.is_none() {
        "tts"
    } else {
        "turn"
    })
}

/// The agent's error label (`timeout`, `http`…) when the agent failed in this turn.
pub(crate) fn agent_error_label(report: &TurnReport) -> Option<&'static str> {
    let TurnOutcome::Failed(reason) = &report.outcome else {
        return None;
    };
    let label = reason.strip_prefix("agent: ")?;
    // Only the fixed set of `AgentError::label` values; anything else is "other".
    Some(
        ["http", "connect", "timeout", "stream", "config"]
            .into_iter()
            .find(|l| *l == label)
            .unwrap_or("other"),
    )
}

/// Produces the provider metrics and `plugin_info` from the components at scrape time.
struct ComponentsCollector {
    components: Arc<RwLock<Components>>,
    descs: Vec<Desc>,
}

const REQUESTS: &str = "provider_requests_total";
const STT_LATENCY: &str = "stt_latency_seconds";
const TTS_FIRST_AUDIO: &str = "tts_first_audio_seconds";
const CIRCUIT_OPEN: &str = "provider_circuit_open";
const CIRCUIT_OPENED: &str = "provider_circuit_opened_total";
const PLUGIN_INFO: &str = "plugin_info";
const LOG_SENT: &str = "log_events_sent_total";
const LOG_DROPPED: &str = "log_events_dropped_total";
const TURN_FALLBACK: &str = "turn_taking_fallback";

const FAMILIES: [(&str, &str, &[&str]); 9] = [
    (
        REQUESTS,
        "Provider calls by outcome (success or the error kind)",
        &["provider", "role", "outcome"],
    ),
    (
        STT_LATENCY,
        "Speech-to-text call duration, successful calls",
        &["provider"],
    ),
    (
        TTS_FIRST_AUDIO,
        "Text-to-speech request to first audio, successful calls",
        &["provider"],
    ),
    (
        CIRCUIT_OPEN,
        "1 while the provider is taken out of rotation (circuit open)",
        &["provider", "role"],
    ),
    (
        CIRCUIT_OPENED,
        "Times the provider's circuit opened since start",
        &["provider", "role"],
    ),
    (
        PLUGIN_INFO,
        "Loaded plugins (always 1)",
        &["name", "version", "api"],
    ),
    (
        LOG_SENT,
        "Log lines the CloudWatch Logs sink delivered",
        &[],
    ),
    (
        LOG_DROPPED,
        "Log lines the CloudWatch Logs sink dropped (buffer full, endpoint failing, shutdown)",
        &[],
    ),
    (
        TURN_FALLBACK,
        "1 while a turn-taking model the configuration asks for is not installed and the \
         energy gate or a fixed silence runs instead",
        &[],
    ),
];

impl ComponentsCollector {
    fn new(components: Arc<RwLock<Components>>) -> Result<Self, prometheus::Error> {
        let descs = FAMILIES
            .iter()
            .map(|(name, help, labels)| {
                Desc::new(
                    name.to_string(),
                    help.to_string(),
                    labels.iter().map(|l| l.to_string()).collect(),
                    HashMap::new(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ComponentsCollector { components, descs })
    }
}

fn family(name: &str, kind: MetricType, metrics: Vec<proto::Metric>) -> MetricFamily {
    let help = FAMILIES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, h, _)| *h)
        .unwrap_or_default();
    let mut mf = MetricFamily::default();
    mf.set_name(name.to_string());
    mf.set_help(help.to_string());
    mf.set_field_type(kind);
    mf.set_metric(metrics);
    mf
}

fn labels(pairs: &[(&str, &str)]) -> Vec<proto::LabelPair> {
    pairs
        .iter()
        .map(|(k, v)| {
            let mut p = proto::LabelPair::default();
            p.set_name(k.to_string());
            p.set_value(v.to_string());
            p
        })
        .collect()
}

fn counter(pairs: &[(&str, &str)], value: u64) -> proto::Metric {
    let mut c = proto::Counter::default();
    c.set_value(value as f64);
    let mut m = proto::Metric::from_label(labels(pairs));
    m.set_counter(c);
    m
}

fn gauge(pairs: &[(&str, &str)], value: f64) -> proto::Metric {
    let mut g = proto::Gauge::default();
    g.set_value(value);
    let mut m = proto::Metric::from_gauge(g);
    m.set_label(labels(pairs));
    m
}

fn histogram(pairs: &[(&str, &str)], h: &StatsHistogram) -> proto::Metric {
    let mut out = proto::Histogram::default();
    out.set_sample_count(h.count);
    out.set_sample_sum(h.sum);
    let buckets = h
        .cumulative()
        .into_iter()
        .filter(|(bound, _)| bound.is_finite())
        .map(|(bound, count)| {
            let mut b = proto::Bucket::default();
            b.set_upper_bound(bound);
            b.set_cumulative_count(count);
            b
        })
        .collect();
    out.set_bucket(buckets);
    let mut m = proto::Metric::from_label(labels(pairs));
    m.set_histogram(out);
    m
}

/// One provider's series, appended to the families.
fn provider_series(
    id: &str,
    role: &str,
    snap: &StatsSnapshot,
    requests: &mut Vec<proto::Metric>,
    latency: &mut Vec<proto::Metric>,
    circuit: &mut Vec<proto::Metric>,
    opened: &mut Vec<proto::Metric>,
) {
    requests.push(counter(
        &[("provider", id), ("role", role), ("outcome", "success")],
        snap.successes,
    ));
    for (kind, n) in &snap.failures {
        requests.push(counter(
            &[("provider", id), ("role", role), ("outcome", kind)],
            *n,
        ));
    }
    latency.push(histogram(&[("provider", id)], &snap.latency));
    circuit.push(gauge(
        &[("provider", id), ("role", role)],
        if circuit_open(snap) { 1.0 } else { 0.0 },
    ));
    opened.push(counter(
        &[("provider", id), ("role", role)],
        snap.circuit.times_opened,
    ));
}

impl Collector for ComponentsCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let components = match self.components.read() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        let mut requests = Vec::new();
        let mut stt_latency = Vec::new();
        let mut tts_latency = Vec::new();
        let mut circuit = Vec::new();
        let mut opened = Vec::new();
        for p in &components.stt {
            let snap = p.stats().snapshot();
            provider_series(
                &p.id,
                "stt",
                &snap,
                &mut requests,
                &mut stt_latency,
                &mut circuit,
                &mut opened,
            );
        }
        for p in &components.tts {
            let snap = p.stats().snapshot();
            provider_series(
                &p.id,
                "tts",
                &snap,
                &mut requests,
                &mut tts_latency,
                &mut circuit,
                &mut opened,
            );
        }
        let (log_sent, log_dropped) = crate::telemetry::cloudwatch::counters();
        // No series before the turn taking is known (the providers are still being built).
        let turn_fallback = components
            .turn_taking
            .iter()
            .map(|t| gauge(&[], if t.fallback { 1.0 } else { 0.0 }))
            .collect();
        let plugins = components
            .plugins
            .iter()
            .map(|p| {
                gauge(
                    &[
                        ("name", &p.name),
                        ("version", &p.version),
                        ("api", &p.api_version),
                    ],
                    1.0,
                )
            })
            .collect();
        vec![
            family(REQUESTS, MetricType::COUNTER, requests),
            family(STT_LATENCY, MetricType::HISTOGRAM, stt_latency),
            family(TTS_FIRST_AUDIO, MetricType::HISTOGRAM, tts_latency),
            family(CIRCUIT_OPEN, MetricType::GAUGE, circuit),
            family(CIRCUIT_OPENED, MetricType::COUNTER, opened),
            family(PLUGIN_INFO, MetricType::GAUGE, plugins),
            family(LOG_SENT, MetricType::COUNTER, vec![counter(&[], log_sent)]),
            family(
                LOG_DROPPED,
                MetricType::COUNTER,
                vec![counter(&[], log_dropped)],
            ),
            family(TURN_FALLBACK, MetricType::GAUGE, turn_fallback),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Speaker, TurnTimeline};
    use std::time::{Duration, Instant};

    fn report(outcome: TurnOutcome, stt: bool, audio_after_ms: Option<u64>) -> TurnReport {
        let end = Instant::now();
        TurnReport {
            speaker: Speaker {
                id: "1".into(),
                name: "ann".into(),
            },
            transcript: "secret words".into(),
            reply: "more secret words".into(),
            outcome,
            timeline: TurnTimeline {
                speech_end: end,
                endpoint_detected: end + Duration::from_millis(500),
                stt_done: stt.then(|| end + Duration::from_millis(700)),
                agent_first_token: stt.then(|| end + Duration::from_millis(900)),
                first_tts_audio: audio_after_ms.map(|ms| end + Duration::from_millis(ms)),
                playback_start: None,
            },
            utterance_ms: 1000,
            stt_provider: stt.then(|| "whisper".to_string()),
            tts_provider: None,
            errors: vec![],
            reply_audio_ms: 0,
            end_rule: crate::pipeline::EndRule::Silence,
            speculation: Default::default(),
            continued: false,
            reply_played_ms: None,
        }
    }

    fn metrics() -> Metrics {
        Metrics::new(Arc::new(RwLock::new(Components::default()))).unwrap()
    }

    #[test]
    fn a_turn_moves_the_seed_metrics() {
        let m = metrics();
        m.observe_turn(&report(TurnOutcome::Completed, true, Some(1200)));
        m.observe_turn(&report(
            TurnOutcome::Failed("every speech-to-text provider failed".into()),
            false,
            None,
        ));
        let text = m.render().unwrap();
        assert!(text.contains("transcriptions_total 1\n"), "{text}");
        assert!(
            text.contains("response_latency_seconds_bucket{le=\"1\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("response_latency_seconds_bucket{le=\"2\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("voice_errors_total{error_type=\"stt\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("voice_errors_total{error_type=\"tts\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("voice_turns_total{outcome=\"completed\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("agent_first_token_seconds_count 1\n"),
            "{text}"
        );
        assert!(text.contains("build_info{"), "{text}");
        // The CloudWatch sink's counters are there (zero: no sink in this process).
        assert!(text.contains("log_events_dropped_total 0\n"), "{text}");
        assert!(text.contains("log_events_sent_total 0\n"), "{text}");
        assert!(!text.contains("secret words"));
    }

    #[test]
    fn the_turn_taking_fallback_is_a_gauge_once_the_turn_taking_is_known() {
        let components = Arc::new(RwLock::new(Components::default()));
        let m = Metrics::new(components.clone()).unwrap();
        assert!(!m.render().unwrap().contains("\nturn_taking_fallback "));
        let mut turn_taking = super::super::TurnTaking {
            vad: "energy",
            turn_model: "silence",
            fallback: true,
        };
        components.write().unwrap().turn_taking = Some(turn_taking);
        let text = m.render().unwrap();
        assert!(text.contains("# TYPE turn_taking_fallback gauge"), "{text}");
        assert!(text.contains("\nturn_taking_fallback 1\n"), "{text}");
        turn_taking.fallback = false;
        components.write().unwrap().turn_taking = Some(turn_taking);
        assert!(m.render().unwrap().contains("\nturn_taking_fallback 0\n"));
    }

    #[test]
    fn turn_end_decisions_and_model_times_are_exposed() {
        let m = metrics();
        let mut turn = report(TurnOutcome::Completed, true, Some(400));
        turn.end_rule = crate::pipeline::EndRule::TurnComplete { probability: 0.9 };
        m.observe_turn(&turn);
        turn.end_rule = crate::pipeline::EndRule::SilenceLimit {
            probability: Some(0.2),
            unfinished_words: false,
            unsure_last_word: None,
        };
        m.observe_turn(&turn);
        m.observe_turn(&turn);
        crate::pipeline::models::VAD_SECONDS.observe(0.0001);
        crate::pipeline::models::TURN_MODEL_SECONDS.observe(0.04);
        let text = m.render().unwrap();
        for line in [
            "turn_end_decisions_total{rule=\"turn_complete\"} 1\n",
            "turn_end_decisions_total{rule=\"silence_limit\"} 2\n",
            "turn_end_decisions_total{rule=\"max_length\"} 0\n",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
        // Process-wide histograms: other tests may have observed too.
        for family in ["vad_inference_seconds", "turn_model_inference_seconds"] {
            let count = text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{family}_count ")))
                .and_then(|n| n.parse::<u64>().ok());
            assert!(count.is_some_and(|n| n >= 1), "{family}: {text}");
            assert!(
                text.contains(&format!("# TYPE {family} histogram")),
                "{text}"
            );
        }
    }

    #[test]
    fn failed_turns_are_typed_by_where_they_broke() {
        let agent = report(
            TurnOutcome::Failed("agent: timeout".into()),
            true,
            Some(900),
        );
        assert_eq!(error_type(&agent), Some("agent"));
        assert_eq!(agent_error_label(&agent), Some("timeout"));
        let tts = report(
            TurnOutcome::Failed("no text-to-speech provider could speak the reply".into()),
            true,
            None,
        );
        assert_eq!(error_type(&tts), Some("tts"));
        assert_eq!(agent_error_label(&tts), None);
        assert_eq!(
            error_type(&report(TurnOutcome::Completed, true, Some(1))),
            None
        );
        let odd = report(TurnOutcome::Failed("agent: teapot".into()), true, None);
        assert_eq!(agent_error_label(&odd), Some("other"));
    }
}
