//! Operations, end to end on the real binary (loopback only, every wait bounded): `/metrics`
//! after a simulated turn, `/health` with an open circuit and with a role left without a
//! provider, `/ready` flipping once the providers are built, graceful shutdown on SIGTERM
//! during a turn, a second signal, no secret in logs or endpoints, the `run` command's
//! Discord checks, and Sentry reports posted to a local fake of the Sentry ingest endpoint.
//!
//! The providers are the `fault` test plugin for both roles: no model and no espeak needed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openclaw_voice_tests::{
    http_get, openclaw_voice, toml_path, ConfigDir, HttpResponse, PluginDir, Running, FAULT,
};

const STARTUP: Duration = Duration::from_secs(30);

/// A configuration directory (`--env test`) with fault-plugin providers, and a work dir.
struct Setup {
    _plugins: PluginDir,
    config: ConfigDir,
    work: tempfile::TempDir,
}

/// `[stt]`/`[tts]` and provider blocks: `ears` transcribes, `flaky` fails (`unavailable`,
/// unless `flaky` settings say otherwise; its circuit opens at the first failure), `voice`
/// speaks `chunks` × 10 ms per sentence.
fn providers(stt: &[&str], chunks: u32, flaky: Option<&str>) -> String {
    let flaky = flaky.unwrap_or("mode = \"error\"\nerror_kind = \"unavailable\"\n");
    format!(
        "[stt]\nproviders = [{}]\n[tts]\nproviders = [\"voice\"]\n\
         [providers.ears]\nplugin = \"fault\"\n\
         [providers.flaky]\nplugin = \"fault\"\n\
         [providers.flaky.circuit]\nfailures = 1\n\
         [providers.flaky.settings]\n{flaky}\
         [providers.voice]\nplugin = \"fault\"\n\
         [providers.voice.settings]\nchunks = {chunks}\n",
        stt.iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

impl Setup {
    /// `body` is appended after `[plugins]` and must hold the rest of the configuration.
    fn new(body: &str) -> Setup {
        let plugins = PluginDir::with(&[FAULT]);
        // The input is a tone: speech to the loudness gate, not to Silero.
        let config = ConfigDir::energy_endpointing();
        config.write(
            "test.toml",
            &format!("[plugins]\ndir = {}\n{body}", toml_path(plugins.path())),
        );
        Setup {
            _plugins: plugins,
            config,
            work: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// The usual setup: ops on a free port (plus `ops` keys), headless, and `extra`.
    fn standard(stt: &[&str], chunks: u32, ops: &str, extra: &str) -> Setup {
        Setup::new(&format!(
            "{}[ops]\nenabled = true\nbind = \"127.0.0.1:0\"\n{ops}\
             [discord]\nenabled = false\n{extra}",
            providers(stt, chunks, None)
        ))
    }

    fn args(&self, command: &[&str]) -> Vec<String> {
        let mut all = vec![
            "--config-dir".to_string(),
            self.config.path().display().to_string(),
            "--env".into(),
            "test".into(),
        ];
        all.extend(command.iter().map(|s| s.to_string()));
        all
    }

    /// A 16 kHz mono WAV: `seconds` of a loud tone (speech, to the endpointer).
    fn tone(&self, seconds: f64) -> PathBuf {
        let path = self.work.path().join("tone.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).expect("create the WAV");
        let n = (16_000.0 * seconds) as usize;
        for i in 0..n {
            let t = i as f64 / 16_000.0;
            let s = (t * 220.0 * std::f64::consts::TAU).sin() * 9_000.0;
            w.write_sample(s as i16).expect("write a sample");
        }
        w.finalize().expect("finish the WAV");
        path
    }

    fn out(&self) -> PathBuf {
        self.work.path().join("reply.wav")
    }

    /// `simulate --json --input <tone> --output <reply>` with `flags`, in the background.
    fn simulate(&self, seconds: f64, flags: &[&str], env: &[(&str, &str)]) -> Running {
        let tone = self.tone(seconds);
        let out = self.out();
        let mut command = vec!["simulate", "--json"];
        command.extend_from_slice(flags);
        let tone = tone.display().to_string();
        let out = out.display().to_string();
        command.extend(["--input", &tone, "--output", &out]);
        Running::spawn(self.args(&command), env)
    }
}

fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    http_get(addr, path, None).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn json(response: &HttpResponse) -> serde_json::Value {
    serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", response.body))
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `timeout`.
fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The exposition text, parsed: `TYPE` per family and every sample.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut e = Exposition::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                e.types.insert(name.to_string(), kind.to_string());
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a sample: series value");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("a number: {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_string(), BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("labels end with }");
                    let labels = body
                        .split("\",")
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            let (k, v) = p.split_once("=\"").expect("label=\"value\"");
                            (k.to_string(), v.trim_end_matches('"').to_string())
                        })
                        .collect();
                    (name.to_string(), labels)
                }
            };
            e.samples.push((name, labels, value));
        }
        e
    }

    /// The value of `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| *v)
    }

    fn label_values(&self) -> impl Iterator<Item = &String> {
        self.samples.iter().flat_map(|(_, l, _)| l.values())
    }
}

#[test]
fn metrics_after_a_simulated_turn_have_the_seed_names_types_and_buckets() {
    let setup = Setup::standard(&["ears"], 20, "", "");
    let mut running = setup.simulate(1.0, &["--fast", "--serve"], &[]);
    let addr = running.ops_addr(STARTUP);
    assert!(
        running.wait_for_stderr("serving http://", STARTUP),
        "the turn ends and the server keeps serving: {}",
        running.stderr()
    );
    let response = get(addr, "/metrics");
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        response.headers.contains("text/plain; version=0.0.4"),
        "{}",
        response.headers
    );
    let m = Exposition::parse(&response.body);

    for (name, kind) in [
        ("voice_connections_total", "counter"),
        ("voice_connections_active", "gauge"),
        ("transcriptions_total", "counter"),
        ("response_latency_seconds", "histogram"),
        ("voice_errors_total", "counter"),
        ("stt_latency_seconds", "histogram"),
        ("tts_first_audio_seconds", "histogram"),
        ("agent_first_token_seconds", "histogram"),
        ("provider_requests_total", "counter"),
        ("provider_circuit_open", "gauge"),
        ("provider_circuit_opened_total", "counter"),
        ("plugin_info", "gauge"),
        ("build_info", "gauge"),
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
    ] {
        assert_eq!(
            m.types.get(name).map(String::as_str),
            Some(kind),
            "{name} is a {kind}:\n{}",
            response.body
        );
    }
    let bounds: Vec<String> = m
        .samples
        .iter()
        .filter(|(n, _, _)| n == "response_latency_seconds_bucket")
        .map(|(_, l, _)| l["le"].clone())
        .collect();
    assert_eq!(bounds, ["0.1", "0.5", "1", "2", "3", "5", "+Inf"]);

    // The turn moved the counters.
    assert_eq!(m.value("voice_connections_total", &[]), Some(1.0));
    assert_eq!(m.value("voice_connections_active", &[]), Some(0.0));
    assert_eq!(m.value("transcriptions_total", &[]), Some(1.0));
    assert_eq!(m.value("response_latency_seconds_count", &[]), Some(1.0));
    assert_eq!(
        m.value("response_latency_seconds_bucket", &[("le", "+Inf")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("voice_turns_total", &[("outcome", "completed")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("voice_errors_total", &[("error_type", "stt")]),
        Some(0.0)
    );
    assert_eq!(
        m.value(
            "provider_requests_total",
            &[
                ("provider", "ears"),
                ("role", "stt"),
                ("outcome", "success")
            ]
        ),
        Some(1.0)
    );
    assert!(
        m.value(
            "provider_requests_total",
            &[("provider", "voice"), ("role", "tts")]
        ) >= Some(1.0)
    );
    assert_eq!(
        m.value("stt_latency_seconds_count", &[("provider", "ears")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("provider_circuit_open", &[("provider", "ears")]),
        Some(0.0)
    );
    assert_eq!(
        m.value(
            "plugin_info",
            &[("name", "fault"), ("api", plugin_api::abi::API_VERSION)]
        ),
        Some(1.0),
        "{}",
        response.body
    );
    assert!(m.value("process_resident_memory_bytes", &[]) > Some(1e6));

    // Label values are bounded: ids and fixed sets, nothing anyone said.
    let stdout = running.stdout();
    let turn: serde_json::Value =
        serde_json::from_str(stdout.lines().next().unwrap_or_default()).expect("a JSON turn");
    let transcript = turn["transcript"].as_str().expect("a transcript");
    assert!(!transcript.is_empty());
    for value in m.label_values() {
        assert!(
            !transcript.contains(value.as_str()) || value.len() < 4,
            "label value {value:?} comes from the transcript"
        );
        assert!(value.len() <= 40, "label value {value:?} is unbounded");
    }
    assert!(!response.body.contains(transcript));

    promtool_check_metrics(&response.body);

    running.signal("TERM");
    let run = running.finish(Duration::from_secs(15));
    assert!(run.success(), "{run}");
}

/// Lints the exposition with `promtool check metrics` when promtool is installed (`make
/// monitoring-check` installs it and sets OPENCLAW_TEST_REQUIRE_PROMTOOL=1).
fn promtool_check_metrics(text: &str) {
    let required = std::env::var_os("OPENCLAW_TEST_REQUIRE_PROMTOOL").is_some();
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            assert!(!required, "promtool is required but cannot run: {e}");
            eprintln!("promtool not installed; `make monitoring-check` lints the scrape");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let output = child.wait_with_output().expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn health_is_degraded_with_an_open_circuit_and_unhealthy_without_a_working_provider() {
    // `flaky` fails, `ears` takes over: the bot works, one circuit is open.
    let setup = Setup::standard(&["flaky", "ears"], 5, "", "");
    let mut running = setup.simulate(0.8, &["--fast", "--serve"], &[]);
    let addr = running.ops_addr(STARTUP);
    assert!(
        running.wait_for_stderr("serving http://", STARTUP),
        "{}",
        running.stderr()
    );
    let response = get(addr, "/health");
    assert_eq!(response.status, 200, "{}", response.body);
    let health = json(&response);
    assert_eq!(health["status"], "degraded", "{health:#}");
    let flaky = &health["services"]["stt:flaky"];
    assert_eq!(flaky["circuit"], "open", "{health:#}");
    assert_eq!(flaky["status"], "down", "{health:#}");
    assert_eq!(flaky["last_error"], "unavailable", "{health:#}");
    assert_eq!(flaky["circuit_reason"], "unavailable", "{health:#}");
    assert_eq!(flaky["circuit_opened"], 1, "{health:#}");
    assert_eq!(health["services"]["stt:ears"]["circuit"], "closed");
    // The turn taking that runs: the energy gate, chosen in this setup's default.toml.
    let turn_taking = &health["services"]["turn_taking"];
    assert_eq!(turn_taking["status"], "up", "{health:#}");
    assert_eq!(turn_taking["kind"], "energy+silence", "{health:#}");
    assert_eq!(health["services"]["tts:voice"]["circuit"], "closed");
    assert_eq!(health["services"]["discord_gateway"]["status"], "disabled");
    assert_eq!(health["services"]["agent"]["kind"], "echo");
    assert_eq!(health["services"]["voice_sessions"]["active"], 0);
    assert_eq!(health["environment"], "test");
    assert!(health["rss_bytes"].as_u64() > Some(1_000_000), "{health:#}");
    assert!(health["uptime_seconds"].as_f64() > Some(0.0));
    assert!(health["timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let metrics = Exposition::parse(&get(addr, "/metrics").body);
    assert_eq!(
        metrics.value("provider_circuit_open", &[("provider", "flaky")]),
        Some(1.0)
    );
    assert_eq!(
        metrics.value(
            "provider_requests_total",
            &[("provider", "flaky"), ("outcome", "unavailable")]
        ),
        Some(1.0)
    );
    running.signal("TERM");
    let run = running.finish(Duration::from_secs(15));
    assert!(run.success(), "{run}");

    // Only `flaky`: speech-to-text has no working provider left.
    let setup = Setup::standard(&["flaky"], 5, "", "");
    let mut running = setup.simulate(0.8, &["--fast", "--serve"], &[]);
    let addr = running.ops_addr(STARTUP);
    assert!(
        running.wait_for_stderr("serving http://", STARTUP),
        "{}",
        running.stderr()
    );
    let response = get(addr, "/health");
    assert_eq!(response.status, 503, "{}", response.body);
    let health = json(&response);
    assert_eq!(health["status"], "unhealthy", "{health:#}");
    assert_eq!(health["services"]["stt:flaky"]["circuit"], "open");
    let metrics = Exposition::parse(&get(addr, "/metrics").body);
    assert_eq!(
        metrics.value("voice_errors_total", &[("error_type", "stt")]),
        Some(1.0)
    );
    assert_eq!(
        metrics.value("voice_turns_total", &[("outcome", "failed")]),
        Some(1.0)
    );
    running.signal("TERM");
    let run = running.finish(Duration::from_secs(15));
    assert_eq!(
        run.code,
        Some(1),
        "a failed turn fails the simulation: {run}"
    );
}

#[test]
fn ready_turns_200_only_once_the_providers_are_built() {
    // Building `ears` takes 1.5 s (a slow model load); the server is up before that.
    let setup = Setup::standard(
        &["ears"],
        5,
        "",
        "[providers.ears.settings]\nsetup_delay_ms = 1500\n",
    );
    let mut running = Running::spawn(setup.args(&["run"]), &[]);
    let addr = running.ops_addr(STARTUP);
    let early = get(addr, "/ready");
    assert_eq!(early.status, 503, "{}", early.body);
    assert!(early.body.contains("providers"), "{}", early.body);
    let health = get(addr, "/health");
    assert_eq!(
        health.status, 200,
        "starting is degraded, not down: {}",
        health.body
    );
    assert_eq!(json(&health)["services"]["stt"]["status"], "starting");

    let ready = poll(STARTUP, || {
        let r = get(addr, "/ready");
        (r.status == 200).then_some(r)
    })
    .unwrap_or_else(|| panic!("/ready never turned 200: {}", running.stderr()));
    assert_eq!(json(&ready)["ready"], true);
    let health = get(addr, "/health");
    assert_eq!(health.status, 200);
    assert_eq!(json(&health)["status"], "healthy", "{}", health.body);

    let signalled = Instant::now();
    running.signal("TERM");
    let run = running.finish(Duration::from_secs(15));
    assert!(run.success(), "{run}");
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "an idle process exits promptly"
    );
}

/// Starts a real-time simulation whose reply lasts `reply_ms`, and sends SIGTERM once the
/// reply is being spoken (the first synthesis has succeeded). Returns the run, the time from
/// the signal to the exit, and the turns printed.
fn sigterm_during_a_turn(
    deadline_ms: u64,
    reply_ms: u32,
) -> (openclaw_voice_tests::Run, Duration, Vec<serde_json::Value>) {
    let setup = Setup::standard(
        &["ears"],
        reply_ms / 10,
        &format!("shutdown_deadline_ms = {deadline_ms}\n"),
        "",
    );
    let mut running = setup.simulate(1.0, &[], &[]);
    let addr = running.ops_addr(STARTUP);
    let speaking = poll(Duration::from_secs(20), || {
        let m = Exposition::parse(&get(addr, "/metrics").body);
        let spoke = m.value(
            "provider_requests_total",
            &[("provider", "voice"), ("outcome", "success")],
        );
        (spoke >= Some(1.0)).then_some(())
    });
    assert!(
        speaking.is_some(),
        "the reply never started: {}",
        running.stderr()
    );
    let signalled = Instant::now();
    running.signal("TERM");
    let code = running.wait_timeout(Duration::from_millis(deadline_ms + 10_000));
    let elapsed = signalled.elapsed();
    assert!(code.is_some(), "still running 10 s after the deadline");
    let run = running.finish(Duration::from_secs(5));
    let turns = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect();
    (run, elapsed, turns)
}

#[test]
fn sigterm_cancels_a_turn_that_outlasts_the_deadline_and_exits_0_in_time() {
    let deadline = 1_500;
    let (run, elapsed, turns) = sigterm_during_a_turn(deadline, 6_000);
    assert!(run.success(), "{run}");
    assert!(
        elapsed <= Duration::from_millis(deadline + 500),
        "exited {elapsed:?} after SIGTERM, deadline {deadline} ms: {run}"
    );
    assert_eq!(turns.len(), 1, "the turn is reported: {run}");
    assert_eq!(turns[0]["outcome"]["kind"], "cancelled", "{run}");
}

#[test]
fn sigterm_lets_the_turn_in_flight_finish() {
    let deadline = 8_000;
    let (run, elapsed, turns) = sigterm_during_a_turn(deadline, 1_500);
    assert!(run.success(), "{run}");
    assert!(
        elapsed < Duration::from_millis(deadline),
        "{elapsed:?}: {run}"
    );
    assert_eq!(turns.len(), 1, "{run}");
    assert_eq!(turns[0]["outcome"]["kind"], "completed", "{run}");
}

#[test]
fn a_second_signal_exits_at_once() {
    let setup = Setup::standard(&["ears"], 1_000, "", "");
    let mut running = setup.simulate(1.0, &[], &[]);
    let addr = running.ops_addr(STARTUP);
    let speaking = poll(Duration::from_secs(20), || {
        let m = Exposition::parse(&get(addr, "/metrics").body);
        (m.value(
            "provider_requests_total",
            &[("provider", "voice"), ("outcome", "success")],
        ) >= Some(1.0))
        .then_some(())
    });
    assert!(speaking.is_some(), "{}", running.stderr());
    running.signal("TERM");
    // The 10 s reply would keep the drain going for 7.5 s; a second signal ends it now.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        running.wait_timeout(Duration::ZERO).is_none(),
        "still draining"
    );
    let signalled = Instant::now();
    running.signal("INT");
    let code = running.wait_timeout(Duration::from_secs(3));
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "{:?}",
        signalled.elapsed()
    );
    assert_eq!(code, Some(Some(130)), "{}", running.stderr());
}

#[test]
fn no_secret_reaches_logs_health_or_metrics() {
    const OPS_TOKEN: &str = "ops-bearer-0f8e7d6c5b4a";
    const DISCORD: &str = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA.GhIjKl.discord-secret-token-value-xyz";
    const AGENT_KEY: &str = "sk-agent-secret-1234567890abcdef";
    const FAULT_KEY: &str = "fault-provider-secret-4242";
    let setup = Setup::new(&format!(
        "{}[providers.ears.settings]\napi_key_env = \"FAULT_PROVIDER_KEY\"\n\
         [agent]\nkind = \"openai-chat\"\napi_key_env = \"AGENT_API_KEY\"\n\
         [ops]\nenabled = true\nbind = \"127.0.0.1:0\"\ntoken_env = \"OPS_TOKEN\"\n\
         [discord]\nenabled = false\n",
        providers(&["ears"], 5, None)
    ));
    let env = [
        ("OPS_TOKEN", OPS_TOKEN),
        ("DISCORD_BOT_TOKEN", DISCORD),
        ("AGENT_API_KEY", AGENT_KEY),
        ("FAULT_PROVIDER_KEY", FAULT_KEY),
        ("LOG_LEVEL", "trace"),
    ];
    let mut running = Running::spawn(setup.args(&["run"]), &env);
    let addr = running.ops_addr(STARTUP);
    assert!(
        poll(STARTUP, || (get(addr, "/ready").status == 200)
            .then_some(()))
        .is_some(),
        "{}",
        running.stderr()
    );
    let mut bodies = Vec::new();
    let unauthorized = get(addr, "/metrics");
    assert_eq!(unauthorized.status, 401);
    let summary = get(addr, "/health");
    assert_eq!(summary.status, 200);
    assert!(!summary.body.contains("services"), "{}", summary.body);
    for path in ["/health", "/metrics", "/ready"] {
        let r = http_get(addr, path, Some(OPS_TOKEN)).expect("GET with the token");
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        bodies.push(r.body);
    }
    assert!(
        bodies[0].contains("\"services\""),
        "the token shows the details"
    );
    running.signal("TERM");
    let run = running.finish(Duration::from_secs(15));
    assert!(run.success(), "{run}");
    assert!(
        run.stderr.contains("FAULT_PROVIDER_KEY"),
        "variable names may be logged: {run}"
    );
    let everything = format!("{}\n{}\n{}", run.stdout, run.stderr, bodies.join("\n"));
    for secret in [OPS_TOKEN, DISCORD, AGENT_KEY, FAULT_KEY] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
}

#[test]
fn logs_are_json_lines_when_configured() {
    let setup = Setup::standard(
        &["ears"],
        5,
        "",
        "[logging]\nformat = \"json\"\nlevel = \"info\"\n",
    );
    let mut running = Running::spawn(setup.args(&["run"]), &[]);
    let addr = running.ops_addr(STARTUP);
    assert!(poll(STARTUP, || (get(addr, "/ready").status == 200)
        .then_some(()))
    .is_some());
    running.signal("TERM");
    let run = running.finish(Duration::from_secs(15));
    assert!(run.success(), "{run}");
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(lines.len() >= 2, "{run}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string(), "{line}");
    }
}

#[test]
fn run_needs_the_discord_token_and_says_when_discord_is_unreachable() {
    let setup = Setup::new(&format!(
        "{}[ops]\nenabled = false\n",
        providers(&["ears"], 5, None)
    ));
    let run = openclaw_voice(setup.args(&["run"]), &[]);
    assert_eq!(run.code, Some(3), "{run}");
    assert!(run.stderr.contains("DISCORD_BOT_TOKEN"), "{run}");
    assert!(run.stderr.contains("discord.enabled = false"), "{run}");

    // With the token set, `run` goes to Discord (here an address where nothing listens).
    let run = openclaw_voice(
        setup.args(&["run"]),
        &[
            ("DISCORD_BOT_TOKEN", "a-token-that-is-set"),
            ("OPENCLAW__DISCORD__API_BASE_URL", "http://127.0.0.1:9"),
        ],
    );
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr
            .contains("cannot reach Discord's API at http://127.0.0.1:9"),
        "{run}"
    );
    assert!(!run.output().contains("a-token-that-is-set"));
}

/// One request the fake Sentry received.
#[derive(Debug, Clone)]
struct Received {
    head: String,
    body: String,
}

/// A loopback listener that answers every request with `200 {}` and keeps what it got.
fn fake_sentry() -> (SocketAddr, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("its address");
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let store = store.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(&stream);
                loop {
                    let mut head = String::new();
                    let mut line = String::new();
                    while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                        if line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                        line.clear();
                    }
                    if head.is_empty() {
                        return;
                    }
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    store.lock().expect("store").push(Received {
                        head,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    let mut w = &stream;
                    let _ = w.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
                    );
                }
            });
        }
    });
    (addr, received)
}

#[test]
fn sentry_receives_a_scrubbed_error_report_from_the_binary() {
    const KEY: &str = "fault-upstream-credential-77aa";
    let (addr, received) = fake_sentry();
    let flaky = format!(
        "mode = \"error\"\nerror_kind = \"auth\"\napi_key_env = \"FAULT_PROVIDER_KEY\"\n\
         message = \"upstream rejected credential {KEY} (Authorization: Bearer {KEY})\"\n"
    );
    let setup = Setup::new(&format!(
        "{}[ops]\nenabled = false\n[discord]\nenabled = false\n[logging]\nlevel = \"info\"\n",
        providers(&["flaky"], 5, Some(&flaky))
    ));
    let dsn = format!("http://public@{addr}/1");
    let tone = setup.tone(0.8);
    let run = openclaw_voice(
        setup.args(&[
            "simulate",
            "--fast",
            "--json",
            "--input",
            tone.to_str().expect("a UTF-8 path"),
            "--output",
            setup.out().to_str().expect("a UTF-8 path"),
        ]),
        &[("SENTRY_DSN", &dsn), ("FAULT_PROVIDER_KEY", KEY)],
    );
    assert_eq!(run.code, Some(1), "the turn fails: {run}");
    let got = poll(Duration::from_secs(5), || {
        let r = received.lock().expect("store").clone();
        (!r.is_empty()).then_some(r)
    })
    .unwrap_or_else(|| panic!("nothing reached the fake Sentry: {run}"));
    let envelope = got
        .iter()
        .find(|r| r.head.starts_with("POST /api/1/envelope/") && r.body.contains("turn failed"))
        .unwrap_or_else(|| panic!("no envelope for the failed turn among {got:?}"));
    let body = &envelope.body;
    assert!(body.contains("turn failed"), "{body}");
    assert!(body.contains("\"environment\":\"test\""), "{body}");
    assert!(
        body.contains(&format!("openclaw-voice@{}", env!("CARGO_PKG_VERSION"))),
        "{body}"
    );
    assert!(
        body.contains("[redacted]"),
        "the message was scrubbed: {body}"
    );
    for r in &got {
        assert!(!r.body.contains(KEY) && !r.head.contains(KEY), "{r:?}");
    }
    assert!(!run.output().contains(KEY), "logs are scrubbed too: {run}");
}

#[test]
fn monitoring_assets_refer_only_to_exported_metrics() {
    let root = openclaw_voice_tests::workspace_root();
    let read = |p: &str| -> String {
        std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
    };
    let exported: Vec<&str> = vec![
        "voice_connections_total",
        "voice_connections_active",
        "transcriptions_total",
        "response_latency_seconds",
        "voice_errors_total",
        "voice_turns_total",
        "stt_latency_seconds",
        "tts_first_audio_seconds",
        "agent_first_token_seconds",
        "provider_requests_total",
        "provider_circuit_open",
        "provider_circuit_opened_total",
        "plugin_info",
        "build_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "log_events_sent_total",
        "log_events_dropped_total",
        // The hearing guard (Discord sessions; `discord_dave.rs` scrapes them).
        "voice_frames_decoded_total",
        "voice_undecodable_total",
        "voice_unheard_speakers",
        "up",
    ];
    let known = |name: &str| {
        exported.iter().any(|e| {
            name == *e
                || ["_bucket", "_count", "_sum"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(e))
        })
    };
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/openclaw-voice.json")).expect("dashboard JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().expect("an expr").to_string());
        }
    }
    assert!(exprs.len() >= 8, "{exprs:?}");
    for rules in ["deploy/prometheus/alerts.yml", "deploy/prometheus/slo.yml"] {
        exprs.extend(rule_exprs(&read(rules)));
    }
    assert!(
        exprs.iter().any(|e| e.contains("le=\"3\"")),
        "the SLO rules' multi-line expressions are read: {exprs:?}"
    );
    for expr in &exprs {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            let looks_like_metric = word.contains('_')
                && word.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && (word.ends_with("_total")
                    || word.ends_with("_seconds")
                    || word.ends_with("_bucket")
                    || word.ends_with("_count")
                    || word.ends_with("_sum")
                    || word.ends_with("_bytes")
                    || word.ends_with("_fds")
                    || word.ends_with("_info")
                    || word.ends_with("_active")
                    || word.ends_with("_open"));
            if looks_like_metric {
                assert!(known(word), "`{word}` in `{expr}` is not exported");
            }
        }
    }
}

/// The `expr:` of every rule in a rule file, single-line or a `|` block.
fn rule_exprs(text: &str) -> Vec<String> {
    let mut exprs = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim().strip_prefix("expr:") else {
            continue;
        };
        if rest.trim() != "|" {
            exprs.push(rest.to_string());
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let mut block = String::new();
        while let Some(next) =
            lines.next_if(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
        {
            block.push_str(next.trim());
            block.push(' ');
        }
        exprs.push(block);
    }
    exprs
}
