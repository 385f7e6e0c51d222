//! The CloudWatch Logs sink against a real local implementation of the CloudWatch Logs API:
//! moto's `moto_server` on a loopback port (`openclaw_voice_tests::moto`), reached through
//! `AWS_ENDPOINT_URL` like any endpoint override; the events are read back with the AWS SDK.
//!
//! - 10,000 lines logged through `tracing` arrive once each, in order, scrubbed.
//! - With the endpoint down, every line is dropped and counted exactly, and no log call waits.
//! - The real binary, `run` headless, ships its lines and flushes them at SIGTERM.
//!
//! The first two run in a child process (this test binary again, one test, its own
//! environment and stderr), because logging is process-global: the child installs the real
//! subscriber with `[logging.cloudwatch]` (`telemetry::init`, as the binary does), logs, shuts
//! telemetry down within a deadline (`telemetry::shutdown`) and prints its counters on stdout.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use openclaw_voice_tests::moto::{aws_env, free_port, Moto};
use openclaw_voice_tests::{toml_path, ConfigDir, PluginDir, Running, FAULT};

const CHILD: &str = "OPENCLAW_CLOUDWATCH_TEST_CHILD";
const GROUP: &str = "/openclaw/voice-test";
/// A secret in a variable whose name says it is one: the scrubber redacts its value.
const SECRET_VAR: &str = "CLOUDWATCH_TEST_TOKEN";
const SECRET: &str = "cw-super-secret-value-0042";
/// An API key shape the scrubber redacts wherever it appears.
const KEY_SHAPE: &str = "sk-proj-abcdefghijklmnopqrstuvwx0123456789";

/// What a child reported.
#[derive(Debug)]
struct ChildRun {
    sent: u64,
    dropped: u64,
    max_log_call: Duration,
    stream: String,
    stderr: String,
}

/// Runs `test` of this binary as a child with the sink configured by `cloudwatch` (TOML keys)
/// and `endpoint`, `lines` log lines to write.
fn run_child(test: &str, endpoint: &str, cloudwatch: &str, lines: usize) -> ChildRun {
    let config = tempfile::tempdir().expect("a config dir");
    std::fs::write(
        config.path().join("test.toml"),
        format!(
            "[logging]\nformat = \"json\"\nlevel = \"info\"\n\
             [logging.cloudwatch]\nenabled = true\nlog_group = \"{GROUP}\"\n\
             create_log_group = true\nregion = \"us-east-1\"\n{cloudwatch}"
        ),
    )
    .expect("write the config");
    let mut child = Command::new(std::env::current_exe().expect("this test binary"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, config.path())
        .env("CHILD_LINES", lines.to_string())
        .envs(aws_env(endpoint))
        .env(SECRET_VAR, SECRET)
        .env_remove("LOG_LEVEL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the child starts");
    let mut stderr = String::new();
    let mut stdout = String::new();
    let mut err_pipe = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    let status = child.wait().expect("the child ends");
    stderr.push_str(&reader.join().expect("stderr reader"));
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    assert!(status.success(), "child failed: {status}\n{stdout}\n{tail}");
    let result = stdout
        .lines()
        // The harness prints `test name ... ` before the child's own output, on the same line.
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no RESULT line:\n{stdout}\n{tail}"));
    let fields: Vec<&str> = result.split(' ').collect();
    ChildRun {
        sent: fields[0].parse().expect("sent"),
        dropped: fields[1].parse().expect("dropped"),
        max_log_call: Duration::from_micros(fields[2].parse().expect("max call")),
        stream: fields[3].to_string(),
        stderr,
    }
}

/// The child's side: real telemetry with the sink, `CHILD_LINES` lines, shutdown, counters.
fn child_logs() {
    let dir = PathBuf::from(std::env::var_os(CHILD).expect("config dir"));
    let lines: usize = std::env::var("CHILD_LINES")
        .expect("CHILD_LINES")
        .parse()
        .expect("a count");
    let loaded = openclaw_voice::config::load(&dir, "test", Vec::<(String, String)>::new())
        .expect("the test config loads");
    openclaw_voice::telemetry::init(&loaded);
    let mut max_call = Duration::ZERO;
    for i in 0..lines {
        let started = Instant::now();
        if i % 100 == 0 {
            tracing::info!(
                turn = i,
                "busy line {i}: provider said token {SECRET} and {KEY_SHAPE}"
            );
        } else {
            tracing::info!(turn = i, "busy line {i}");
        }
        max_call = max_call.max(started.elapsed());
    }
    let settings = openclaw_voice::telemetry::cloudwatch::Settings::from_config(
        &loaded.config.logging.cloudwatch,
        "test",
        None,
    );
    openclaw_voice::telemetry::shutdown(Duration::from_secs(10));
    let (sent, dropped) = openclaw_voice::telemetry::cloudwatch::counters();
    println!(
        "RESULT {sent} {dropped} {} {}",
        max_call.as_micros(),
        settings.log_stream
    );
}

#[test]
fn ten_thousand_lines_arrive_in_order_and_scrubbed() {
    if std::env::var_os(CHILD).is_some() {
        return child_logs();
    }
    let moto = Moto::start();
    let n = 10_000;
    // A flush every 200 ms: several batches while the lines are written, the rest at shutdown.
    let run = run_child(
        "ten_thousand_lines_arrive_in_order_and_scrubbed",
        &moto.url(),
        "flush_interval_ms = 200\nbuffer_events = 20000\n",
        n,
    );
    let messages = moto.read_back(GROUP, &run.stream);
    // The sink's own "log lines also go to CloudWatch Logs" line comes first.
    assert_eq!(run.dropped, 0, "{run:?}");
    assert_eq!(run.sent as usize, n + 1, "{}", run.stderr);
    assert_eq!(messages.len(), n + 1, "every line arrived once");
    assert!(messages[0].contains("CloudWatch Logs"), "{}", messages[0]);
    for (i, message) in messages[1..].iter().enumerate() {
        let line: serde_json::Value = serde_json::from_str(message)
            .unwrap_or_else(|e| panic!("line {i} is not the JSON log line ({e}): {message}"));
        let text = line["message"].as_str().unwrap_or_default();
        assert!(
            text.starts_with(&format!("busy line {i}")),
            "out of order at {i}: {message}"
        );
        assert_eq!(line["turn"], i, "{message}");
        assert!(
            !message.contains(SECRET) && !message.contains(KEY_SHAPE),
            "not scrubbed: {message}"
        );
        if i % 100 == 0 {
            assert!(message.contains("[redacted]"), "{message}");
        }
    }
    assert!(
        run.stderr.contains(&format!(
            "cloudwatch logs: {} events sent, 0 dropped",
            n + 1
        )),
        "the shutdown summary: {}",
        run.stderr
    );
}

#[test]
fn lines_are_dropped_and_counted_exactly_when_the_endpoint_is_down() {
    if std::env::var_os(CHILD).is_some() {
        return child_logs();
    }
    // Nothing listens there: every call fails (connection refused) after its retries.
    let dead = free_port();
    let n = 2_000;
    let started = Instant::now();
    let run = run_child(
        "lines_are_dropped_and_counted_exactly_when_the_endpoint_is_down",
        &format!("http://{dead}"),
        "flush_interval_ms = 100\nbuffer_events = 100\nmax_retries = 1\n",
        n,
    );
    assert_eq!(run.sent, 0, "{run:?}");
    assert_eq!(
        run.dropped as usize,
        n + 1,
        "every line counted once (the sink's own start line included): {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("PutLogEvents") || run.stderr.contains("log stream"),
        "the failure is reported on stderr: {}",
        run.stderr
    );
    // Logging never waited for the sink: no single call took long, even with the buffer full.
    assert!(
        run.max_log_call < Duration::from_millis(200),
        "a log call took {:?}",
        run.max_log_call
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "shutdown kept its deadline"
    );
}

#[test]
fn the_binary_ships_its_lines_and_flushes_them_at_sigterm() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let moto = Moto::start();
    let plugins = PluginDir::with(&[FAULT]);
    let config = ConfigDir::new();
    config.write(
        "test.toml",
        &format!(
            "[plugins]\ndir = {}\n[stt]\nproviders = [\"ears\"]\n[tts]\nproviders = [\"voice\"]\n\
             [providers.ears]\nplugin = \"fault\"\n[providers.voice]\nplugin = \"fault\"\n\
             [ops]\nenabled = true\nbind = \"127.0.0.1:0\"\nshutdown_deadline_ms = 3000\n\
             [discord]\nenabled = false\n\
             [logging]\nformat = \"json\"\n\
             [logging.cloudwatch]\nenabled = true\nlog_group = \"{GROUP}\"\n\
             create_log_group = true\nregion = \"us-east-1\"\nstream = \"{{env}}/{{pid}}\"\n\
             flush_interval_ms = 60000\n",
            toml_path(plugins.path())
        ),
    );
    let env: Vec<(&str, String)> = aws_env(&moto.url());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = [
        "--config-dir".to_string(),
        config.path().display().to_string(),
        "--env".into(),
        "test".into(),
        "run".into(),
    ];
    let mut running = Running::spawn(args, &env);
    running.ops_addr(Duration::from_secs(30));
    assert!(
        running.wait_for_stderr("running headless", Duration::from_secs(30)),
        "{}",
        running.stderr()
    );
    let stream = format!("test/{}", running.pid());
    // The flush interval is a minute: whatever arrives was sent by the shutdown's flush.
    let signalled = Instant::now();
    running.signal("TERM");
    let run = running.finish(Duration::from_secs(15));
    assert!(run.success(), "{run}");
    assert!(
        signalled.elapsed() < Duration::from_millis(3_000 + 1_000),
        "exited within the shutdown deadline: {:?}",
        signalled.elapsed()
    );
    let logged: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        // The sink's own thread (its warnings, the SDK's events) stays off the sink.
        .filter(|l| {
            !l.contains("\"target\":\"openclaw_voice::telemetry::cloudwatch\"")
                && !l.contains("\"target\":\"aws")
        })
        .collect();
    let shipped = moto.read_back(GROUP, &stream);
    assert_eq!(shipped, logged, "every line, in order, as on stderr");
    assert!(
        shipped.iter().any(|l| l.contains("shutting down")),
        "the lines logged during shutdown are flushed too: {shipped:#?}"
    );
    assert!(
        run.stderr.contains(&format!(
            "cloudwatch logs: {} events sent, 0 dropped",
            shipped.len()
        )),
        "{run}"
    );
}
