//! The CloudWatch Logs sink against a real local implementation of the CloudWatch Logs API:
//! moto's `moto_server` (PyPI `moto[server]`) on a loopback port, reached through
//! `AWS_ENDPOINT_URL` like any endpoint override. The events are read back with the AWS SDK.
//!
//! Each scenario runs in a child process (this test binary again, one test, its own
//! environment and stderr), because logging is process-global: the child installs the real
//! subscriber with `[logging.cloudwatch]`, logs through `tracing` (so every line is formatted
//! and scrubbed as in production), shuts telemetry down within a deadline, and prints its
//! counters on stdout for the parent.
//!
//! moto_server is found in `$MOTO_SERVER`, `target/moto-venv/bin/`, or on `PATH`; when it is
//! nowhere, it is installed into `target/moto-venv` with `python3 -m venv` and pip (as `make
//! test` does beforehand).

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_cloudwatchlogs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudwatchlogs::Client;

const CHILD: &str = "OPENCLAW_CLOUDWATCH_TEST_CHILD";
const GROUP: &str = "/openclaw/voice-test";
/// A secret in a variable whose name says it is one: the scrubber redacts its value.
const SECRET_VAR: &str = "CLOUDWATCH_TEST_TOKEN";
const SECRET: &str = "cw-super-secret-value-0042";
/// An API key shape the scrubber redacts wherever it appears.
const KEY_SHAPE: &str = "sk-proj-abcdefghijklmnopqrstuvwx0123456789";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

/// The moto_server executable, installing moto into target/moto-venv when it is missing.
fn moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        return p.into();
    }
    let venv = workspace_root().join("target/moto-venv");
    let in_venv = venv.join("bin/moto_server");
    if in_venv.exists() {
        return in_venv;
    }
    if let Some(found) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("moto_server"))
            .find(|p| p.is_file())
    }) {
        return found;
    }
    let run = |cmd: &mut Command| {
        let status = cmd.status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "installing moto[server] failed ({cmd:?}: {status:?}); install it with \
             `make moto` (python3-venv and PyPI needed) or set MOTO_SERVER"
        );
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    run(Command::new(venv.join("bin/pip")).args(["install", "-q", "moto[server]"]));
    in_venv
}

/// A running moto_server, stopped on drop.
struct Moto {
    child: Child,
    addr: SocketAddr,
}

impl Moto {
    fn start() -> Moto {
        let addr = free_port();
        let child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", &addr.port().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Moto { child, addr };
        let end = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < end,
                "moto_server did not listen on {addr} in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    listener.local_addr().expect("its address")
}

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
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(SECRET_VAR, SECRET)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
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

/// Every message in the stream, oldest first.
fn read_back(endpoint: &str, stream: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let config = aws_sdk_cloudwatchlogs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(http)
            .endpoint_url(endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .build();
        let client = Client::from_conf(config);
        let mut messages = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = client
                .get_log_events()
                .log_group_name(GROUP)
                .log_stream_name(stream)
                .start_from_head(true)
                .set_next_token(token.clone())
                .send()
                .await
                .expect("GetLogEvents");
            let events = page.events();
            messages.extend(
                events
                    .iter()
                    .filter_map(|e| e.message().map(str::to_string)),
            );
            let next = page.next_forward_token().map(str::to_string);
            if events.is_empty() || next == token {
                break;
            }
            token = next;
        }
        messages
    })
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
    let messages = read_back(&moto.url(), &run.stream);
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
