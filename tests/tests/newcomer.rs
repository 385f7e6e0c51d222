//! The newcomer's traps (issue #12), each met as a new user met it, against the real binary:
//! unsetting a key a lower layer names, overriding a hyphenated provider id from a shell,
//! `check-config` passing when `run` cannot start, `LOG_LEVEL=warning`, unchecked bounds, a
//! secret pasted into the wrong key, a flood of half-sent requests to the ops server, colour in
//! piped logs, and one exit status for every kind of failure.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use openclaw_voice_tests::{
    http_get, openclaw_voice, toml_path, ConfigDir, PluginDir, Run, Running, ESPEAK, FAULT,
    OPENAI_WHISPER, TONE,
};

const STARTUP: Duration = Duration::from_secs(60);

/// A config directory (`default.toml` + `test.toml`) with the `fault`, `tone` and
/// `openai-whisper` plugins.
struct Setup {
    plugins: PluginDir,
    config: ConfigDir,
    work: tempfile::TempDir,
}

impl Setup {
    /// `default.toml`: `fault-stt` (the fault plugin) and `openai-whisper` (pointed at a local
    /// address, with `api_key_env = "OPENAI_API_KEY"` as config/default.toml has it); `tone`
    /// speaks; ops off. `test.toml` is `test`, after a `[plugins]` block.
    fn new(stt: &str, test: &str) -> Setup {
        let plugins = PluginDir::with(&[FAULT, TONE, OPENAI_WHISPER]);
        let config = ConfigDir::new();
        config.write(
            "default.toml",
            &format!(
                "[stt]\nproviders = [\"{stt}\"]\n[tts]\nproviders = [\"tone\"]\n\
                 [providers.fault-stt]\nplugin = \"fault\"\n\
                 [providers.openai-whisper]\nplugin = \"openai-whisper\"\n\
                 [providers.openai-whisper.settings]\nbase_url = \"http://127.0.0.1:9\"\n\
                 api_key_env = \"OPENAI_API_KEY\"\n\
                 [providers.tone]\nplugin = \"tone\"\n[ops]\nenabled = false\n"
            ),
        );
        config.write(
            "test.toml",
            &format!("[plugins]\ndir = {}\n{test}", toml_path(plugins.path())),
        );
        Setup {
            plugins,
            config,
            work: tempfile::tempdir().expect("a temporary directory"),
        }
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

    fn run(&self, command: &[&str], env: &[(&str, &str)]) -> Run {
        openclaw_voice(self.args(command), env)
    }

    /// A WAV of `seconds` of a loud tone.
    fn wav(&self, name: &str, seconds: f64) -> PathBuf {
        let path = self.work.path().join(name);
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).expect("create the WAV");
        for i in 0..(16_000.0 * seconds) as usize {
            let t = i as f64 / 16_000.0;
            w.write_sample(((t * 220.0 * std::f64::consts::TAU).sin() * 9_000.0) as i16)
                .expect("write a sample");
        }
        w.finalize().expect("finish the WAV");
        path
    }
}

const HEADLESS: &str = "[discord]\nenabled = false\n";

#[test]
fn an_empty_api_key_env_unsets_the_key_a_lower_layer_names() {
    // Control: default.toml names OPENAI_API_KEY, which is not set.
    let s = Setup::new("openai-whisper", HEADLESS);
    let run = s.run(&["check-config"], &[]);
    assert_eq!(run.code, Some(3), "{run}");
    assert!(run.stderr.contains("OPENAI_API_KEY"), "{run}");

    // A layer above says "no key" with "" (a local server without auth).
    let s = Setup::new(
        "openai-whisper",
        &format!("{HEADLESS}[providers.openai-whisper.settings]\napi_key_env = \"\"\n"),
    );
    let run = s.run(&["check-config"], &[]);
    assert!(run.success(), "{run}");
    assert!(!run.output().contains("is not set"), "{run}");

    // The same from a shell, spelling the hyphenated id with `_`.
    let s = Setup::new("openai-whisper", HEADLESS);
    let run = s.run(
        &["check-config"],
        &[(
            "OPENCLAW__PROVIDERS__OPENAI_WHISPER__SETTINGS__API_KEY_ENV",
            "",
        )],
    );
    assert!(run.success(), "{run}");
}

#[test]
fn an_override_of_a_provider_that_does_not_exist_is_refused_with_the_ids() {
    let s = Setup::new("fault-stt", HEADLESS);
    let run = s.run(
        &["check-config", "--print"],
        &[("OPENCLAW__PROVIDERS__FAULT_STT__TIMEOUT_MS", "4321")],
    );
    assert!(run.success(), "{run}");
    assert!(run.stdout.contains("timeout_ms = 4321"), "{run}");
    assert!(!run.stdout.contains("[providers.fault_stt]"), "{run}");

    let run = s.run(
        &["check-config"],
        &[("OPENCLAW__PROVIDERS__FAULTSTT__TIMEOUT_MS", "4321")],
    );
    assert_eq!(run.code, Some(3), "{run}");
    // A provider defined whole in the environment (its plugin set there) is not a typo.
    let defined = s.run(
        &["check-config", "--print"],
        &[
            ("OPENCLAW__PROVIDERS__EARS2__PLUGIN", "fault"),
            ("OPENCLAW__PROVIDERS__EARS2__TIMEOUT_MS", "999"),
            ("OPENCLAW__STT__PROVIDERS", "[\"ears2\", \"fault-stt\"]"),
        ],
    );
    assert!(defined.success(), "{defined}");
    assert!(defined.stdout.contains("[providers.ears2]"), "{defined}");
    for needle in [
        "OPENCLAW__PROVIDERS__FAULTSTT__TIMEOUT_MS",
        "there is no provider `faultstt`",
        "fault-stt (OPENCLAW__PROVIDERS__FAULT_STT__…)",
        "openai-whisper (OPENCLAW__PROVIDERS__OPENAI_WHISPER__…)",
    ] {
        assert!(run.stderr.contains(needle), "{needle}: {run}");
    }
}

#[test]
fn check_config_fails_when_run_could_not_start() {
    let s = Setup::new("fault-stt", "");
    let run = s.run(&["check-config"], &[]);
    assert_eq!(run.code, Some(3), "{run}");
    assert!(
        run.stderr.contains("DISCORD_BOT_TOKEN") && run.stderr.contains("`run`"),
        "{run}"
    );
    let run = s.run(&["check-config"], &[("DISCORD_BOT_TOKEN", "a-token")]);
    assert!(run.success(), "{run}");
    let run = s.run(&["run"], &[]);
    assert_eq!(run.code, Some(3), "{run}");
}

#[test]
fn log_levels_take_the_usual_spellings_and_refuse_others() {
    let s = Setup::new("fault-stt", HEADLESS);
    let run = s.run(&["check-config"], &[("LOG_LEVEL", "verbose")]);
    assert_eq!(run.code, Some(3), "{run}");
    assert!(
        run.stderr.contains("LOG_LEVEL") && run.stderr.contains("warn (or warning)"),
        "{run}"
    );
    let s = Setup::new(
        "fault-stt",
        &format!("{HEADLESS}[logging]\nlevel = \"loud\"\n"),
    );
    let run = s.run(&["check-config"], &[]);
    assert_eq!(run.code, Some(3), "{run}");
    assert!(run.stderr.contains("`logging.level`"), "{run}");

    // `warning` keeps warnings (and drops info lines); piped logs carry no colour codes.
    let s = Setup::new("fault-stt", HEADLESS);
    let mut running = Running::spawn(s.args(&["run"]), &[("LOG_LEVEL", "warning")]);
    let warned = running.wait_for_stderr("nothing to serve", STARTUP);
    running.signal("TERM");
    let run = running.finish(STARTUP);
    assert!(warned, "the warning was dropped: {run}");
    assert!(
        !run.stderr.contains("running headless"),
        "info shown: {run}"
    );
    assert!(
        !run.stderr.contains('\u{1b}'),
        "colour codes in a pipe: {run}"
    );
}

#[test]
fn bounds_are_checked_before_anything_runs() {
    let s = Setup::new(
        "fault-stt",
        &format!("{HEADLESS}[providers.fault-stt]\nmax_concurrent_calls = 1000000000000\n"),
    );
    let run = s.run(&["check-config"], &[]);
    assert_eq!(run.code, Some(3), "{run}");
    assert!(
        run.stderr
            .contains("providers.fault-stt.max_concurrent_calls"),
        "{run}"
    );

    let s = Setup::new("fault-stt", HEADLESS);
    let input = s.wav("question.wav", 0.5);
    let input = input.to_str().expect("a UTF-8 path");
    let before = std::fs::read(input).expect("read the input");
    for (flags, needle) in [
        (vec!["--at", "1e300s"], "between 0s and 86400s"),
        (vec!["--at", "1e15ms", "--fast"], "between 0s and 86400s"),
        (vec!["--output", input], "would be overwritten"),
        (
            vec!["--output", "/nonexistent-dir/reply.wav"],
            "does not exist",
        ),
    ] {
        let mut command = vec!["simulate", "--input", input];
        command.extend(flags.iter().copied());
        if !flags.contains(&"--output") {
            command.extend(["--output", "/nonexistent-dir/x.wav"]);
        }
        let started = Instant::now();
        let run = s.run(&command, &[]);
        assert_eq!(run.code, Some(2), "{flags:?}: {run}");
        assert!(run.stderr.contains(needle), "{flags:?}: {run}");
        assert!(started.elapsed() < Duration::from_secs(20), "{flags:?}");
    }
    assert_eq!(std::fs::read(input).expect("read the input"), before);
}

#[test]
fn a_secret_in_the_wrong_key_is_refused_and_never_echoed() {
    let key = "sk-live-0123456789abcdefghijklmn";
    let s = Setup::new(
        "openai-whisper",
        &format!("{HEADLESS}[providers.openai-whisper.settings]\napi_key_env = \"{key}\"\n"),
    );
    let run = s.run(&["check-config"], &[]);
    assert_eq!(run.code, Some(3), "{run}");
    assert!(
        run.stderr.contains(
            "`providers.openai-whisper.settings.api_key_env` must name an environment variable"
        ),
        "{run}"
    );
    assert!(!run.output().contains("sk-live"), "{run}");

    let s = Setup::new(
        "fault-stt",
        &format!(
            "{HEADLESS}[providers.fault-stt.settings]\nopenai_api_key = \"hunter2hunter2\"\n\
             [providers.tone.settings]\nvoice = \"{key}\"\n"
        ),
    );
    let run = s.run(&["check-config"], &[]);
    assert_eq!(run.code, Some(3), "{run}");
    for needle in [
        "`providers.fault-stt.settings.openai_api_key` looks like a secret",
        "`providers.tone.settings.voice` looks like a secret",
    ] {
        assert!(run.stderr.contains(needle), "{needle}: {run}");
    }
    assert!(
        !run.output().contains("sk-live") && !run.output().contains("hunter2"),
        "{run}"
    );
}

/// Reads until the server closes the connection or `limit` passes; whether it closed.
fn closed_by_server(stream: &mut TcpStream, limit: Duration) -> bool {
    stream
        .set_read_timeout(Some(limit))
        .expect("set a read timeout");
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn half_sent(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect to the ops server");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .expect("send half a request");
    stream
}

#[test]
fn the_ops_server_sheds_half_sent_requests_and_caps_connections() {
    let s = Setup::new(
        "fault-stt",
        &format!(
            "{HEADLESS}[ops]\nenabled = true\nbind = \"127.0.0.1:0\"\nmax_connections = 16\n\
             header_read_timeout_ms = 500\ntoken_env = \"OPS_TOKEN\"\n"
        ),
    );
    let mut running = Running::spawn(s.args(&["run"]), &[("OPS_TOKEN", "ops-secret-token")]);
    let addr = running.ops_addr(STARTUP);

    let mut flood: Vec<TcpStream> = (0..100).map(|_| half_sent(addr)).collect();
    // Over the cap: closed at once. Under it: closed when the header timeout passes.
    assert!(closed_by_server(&mut flood[99], Duration::from_secs(3)));
    assert!(closed_by_server(&mut flood[0], Duration::from_secs(3)));
    let health = http_get(addr, "/health", None).expect("/health answers after the flood");
    assert!(matches!(health.status, 200 | 503), "{}", health.body);

    // The scheme of the bearer token is case-insensitive.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let mut stream = TcpStream::connect(addr).expect("connect");
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {scheme} ops-secret-token\r\n\
             Connection: close\r\n\r\n"
        )
        .expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        assert!(answer.starts_with("HTTP/1.1 200"), "{scheme}: {answer}");
    }
    running.signal("TERM");
    let run = running.finish(STARTUP);
    assert!(run.success(), "{run}");
}

#[test]
fn exit_statuses_tell_usage_from_configuration_from_failure() {
    let s = Setup::new("fault-stt", HEADLESS);
    assert_eq!(
        s.run(&["check-config", "--no-such-flag"], &[]).code,
        Some(2)
    );
    let config_dir = s.config.path().to_str().expect("UTF-8");
    let run = openclaw_voice(
        ["--config-dir", config_dir, "--env", "nope", "check-config"],
        &[],
    );
    assert_eq!(run.code, Some(3), "{run}");
    let missing = s.work.path().join("missing.wav");
    let out = s.work.path().join("out.wav");
    let run = s.run(
        &[
            "simulate",
            "--input",
            missing.to_str().expect("UTF-8"),
            "--output",
            out.to_str().expect("UTF-8"),
        ],
        &[],
    );
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("missing.wav"), "{run}");
    let help = s.run(&["--help"], &[]);
    assert!(help.stdout.contains("3 configuration problem"), "{help}");
}

#[test]
fn plugins_list_names_the_voices_espeak_has() {
    let dir = PluginDir::with(&[ESPEAK]);
    let run = openclaw_voice(
        [
            "plugins",
            "list",
            "--json",
            "--dir",
            dir.path().to_str().expect("UTF-8"),
        ],
        &[],
    );
    assert!(run.success(), "{run}");
    let listed: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    let voices = &listed["plugins"][0]["capabilities"]["voices"];
    let voices: Vec<&str> = voices
        .as_array()
        .expect("a list of voices")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(voices.contains(&"en-us"), "{run}");
}

#[test]
fn shell_completions_are_printed() {
    let s = Setup::new("fault-stt", HEADLESS);
    for shell in ["bash", "zsh", "fish"] {
        let run = s.run(&["completions", shell], &[]);
        assert!(run.success(), "{shell}: {run}");
        assert!(
            run.stdout.contains("check-config") && run.stdout.contains("simulate"),
            "{shell}: {run}"
        );
    }
    let _ = &s.plugins;
}
