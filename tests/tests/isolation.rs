//! Plugins you can trust, through the real binary: providers in worker processes survive
//! every kind of plugin fault with no turn lost; what in-process isolation contains and what it
//! does not; verified loading (a mismatched `sha256` or an unused library never runs a byte);
//! `plugins list` survives a truncated library; commands exit within the shutdown deadline
//! whatever a plugin is doing.
//!
//! The conversations are two spoken questions (espeak-ng) through `simulate --fast`, with a
//! faulty speech-to-text provider first and a working one (`fault` in `ok` mode, its own
//! worker) behind it; replies are spoken by the `tone` example plugin.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use openclaw_voice_tests::{
    espeak_speech, openclaw_voice, toml_path, ConfigDir, PluginDir, Run, Running, FAULT, STALL,
    TONE,
};

/// The spoken question every conversation uses (made once).
fn question() -> &'static Path {
    static QUESTION: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &QUESTION
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let wav = espeak_speech(dir.path(), "question.wav", "How long is a piece of string?");
            (dir, wav)
        })
        .1
}

/// A plugin directory with the fault, stall and tone libraries, and a config directory.
struct Setup {
    plugins: PluginDir,
    config: ConfigDir,
    out: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            plugins: PluginDir::with(&[FAULT, STALL, TONE]),
            // Each test counts calls, or pauses inside a question: no speculation, no model.
            config: ConfigDir::energy_endpointing(),
            out: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// `test.toml`: STT providers `bad` (the block given) then `backup`; TTS `tone`.
    fn write(&self, bad: &str) {
        self.config.write(
            "test.toml",
            &format!(
                r#"
[plugins]
dir = {dir}

[stt]
providers = ["bad", "backup"]

[tts]
providers = ["tone"]

[agent]
kind = "echo"

[ops]
enabled = false

[discord]
enabled = false

[providers.backup]
plugin = "fault"

[providers.tone]
plugin = "tone"

[providers.bad]
{bad}
"#,
                dir = toml_path(self.plugins.path())
            ),
        );
    }

    fn args<'a>(&'a self, extra: &[&'a OsStr]) -> Vec<&'a OsStr> {
        let mut args = vec![
            OsStr::new("--config-dir"),
            self.config.path().as_os_str(),
            OsStr::new("--env"),
            OsStr::new("test"),
        ];
        args.extend_from_slice(extra);
        args
    }

    /// Two questions, 4 s apart, through `simulate --fast --json`.
    fn conversation(&self, env: &[(&str, &str)]) -> (Run, Vec<serde_json::Value>) {
        self.conversation_at(env, true)
    }

    /// Two questions, 4 s apart, through `simulate --json`, in real time unless `fast`.
    fn conversation_at(&self, env: &[(&str, &str)], fast: bool) -> (Run, Vec<serde_json::Value>) {
        let out = self.out.path().join("reply.wav");
        let mut args = vec![
            OsStr::new("simulate"),
            OsStr::new("--input"),
            question().as_os_str(),
            OsStr::new("--input"),
            question().as_os_str(),
            OsStr::new("--at"),
            OsStr::new("4s"),
            OsStr::new("--output"),
            out.as_os_str(),
            OsStr::new("--json"),
        ];
        if fast {
            args.push(OsStr::new("--fast"));
        }
        let run = openclaw_voice(self.args(&args), env);
        let turns = run
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        (run, turns)
    }
}

/// Both turns completed, transcribed by `backup`.
fn assert_no_turn_lost(kind: &str, run: &Run, turns: &[serde_json::Value]) {
    assert!(run.success(), "{kind}: {run}");
    assert_eq!(turns.len(), 2, "{kind}: two turns: {run}");
    for turn in turns {
        assert_eq!(
            turn["outcome"]["kind"], "completed",
            "{kind}: {turn}\n{run}"
        );
        assert_eq!(turn["stt_provider"], "backup", "{kind}: {turn}\n{run}");
        let transcript = turn["transcript"].as_str().unwrap_or_default();
        assert!(transcript.contains("samples, sum"), "{kind}: {turn}");
    }
}

/// A faulty provider in a worker process: every turn completes on the provider behind it,
/// and the turn reports what happened to the faulty one.
fn survives(kind: &str, bad: &str, env: &[(&str, &str)], expect_in_errors: &str) {
    let s = Setup::new();
    s.write(bad);
    let started = Instant::now();
    let (run, turns) = s.conversation(env);
    assert_no_turn_lost(kind, &run, &turns);
    let said = format!("{}\n{}", run.stdout, run.stderr);
    assert!(
        said.contains(expect_in_errors),
        "{kind}: expected {expect_in_errors:?} in the output: {run}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{kind}: took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_panicking_plugin_in_a_worker_loses_no_turn() {
    survives(
        "panic",
        "plugin = \"fault\"\nsettings = { mode = \"panic-in-call\" }",
        &[],
        "plugin panicked in transcribe",
    );
}

#[test]
fn a_failing_plugin_in_a_worker_loses_no_turn() {
    survives(
        "error",
        "plugin = \"fault\"\nsettings = { mode = \"error\", message = \"told to fail\" }",
        &[],
        "told to fail",
    );
}

#[test]
fn a_hung_call_kills_the_worker_and_loses_no_turn() {
    survives(
        "hang",
        "plugin = \"fault\"\ntimeout_ms = 500\nsettings = { mode = \"hang\" }",
        &[],
        "killing its worker process",
    );
}

#[test]
fn an_aborting_plugin_loses_no_turn() {
    survives(
        "abort",
        "plugin = \"fault\"\nsettings = { mode = \"abort\" }",
        &[],
        "SIGABRT",
    );
}

#[test]
fn a_segfaulting_plugin_loses_no_turn() {
    survives(
        "segfault",
        "plugin = \"fault\"\nsettings = { mode = \"segfault\" }",
        &[],
        "SIGSEGV",
    );
}

#[test]
fn a_stack_overflow_loses_no_turn() {
    survives(
        "stack-overflow",
        "plugin = \"fault\"\nsettings = { mode = \"stack-overflow\" }",
        &[],
        "its worker process was killed by signal",
    );
}

#[test]
fn running_out_of_the_memory_limit_loses_no_turn() {
    survives(
        "oom",
        "plugin = \"fault\"\nmemory_limit_mb = 256\nsettings = { mode = \"oom\" }",
        &[],
        "SIGABRT",
    );
}

#[test]
fn a_plugin_that_hangs_describing_itself_loses_no_turn() {
    survives(
        "hang-in-info",
        "plugin = \"stall\"\nsetup_timeout_ms = 1000",
        &[("OPENCLAW_STALL_INFO_MS", "3600000")],
        "did not finish within",
    );
}

#[test]
fn a_library_that_loads_too_slowly_loses_no_turn() {
    survives(
        "slow-load",
        "plugin = \"stall\"\nsetup_timeout_ms = 1000",
        &[("OPENCLAW_STALL_LOAD_MS", "3600000")],
        "did not finish within",
    );
}

#[test]
fn a_crashed_worker_is_restarted_and_serves_again() {
    let s = Setup::new();
    // Crashes on its first call only (across restarts): the restarted worker answers the
    // second turn.
    let once = s.out.path().join("crashed-once");
    s.write(&format!(
        "plugin = \"fault\"\nsettings = {{ mode = \"segfault\", once_file = {} }}",
        toml_path(&once)
    ));
    // In real time, so the second question comes 4 s after the first, as a person's would.
    let (run, turns) = s.conversation_at(&[], false);
    assert!(run.success(), "{run}");
    assert_eq!(turns.len(), 2, "{run}");
    assert_eq!(turns[0]["stt_provider"], "backup", "{run}");
    assert_eq!(turns[1]["stt_provider"], "bad", "served again: {run}");
    for turn in &turns {
        assert_eq!(turn["outcome"]["kind"], "completed", "{turn}\n{run}");
    }
    assert!(run.stderr.contains("worker process restarted"), "{run}");
}

#[test]
fn in_process_unwinding_faults_are_contained() {
    for (kind, settings) in [
        ("panic", "{ mode = \"panic-in-call\" }"),
        ("error", "{ mode = \"error\" }"),
    ] {
        let s = Setup::new();
        s.write(&format!(
            "plugin = \"fault\"\nisolation = \"in-process\"\nsettings = {settings}"
        ));
        let (run, turns) = s.conversation(&[]);
        assert_no_turn_lost(kind, &run, &turns);
    }
}

/// Documents the limit of in-process isolation: a crash in native code ends the host.
#[test]
fn in_process_crashes_are_not_contained() {
    let s = Setup::new();
    s.write("plugin = \"fault\"\nisolation = \"in-process\"\nsettings = { mode = \"segfault\" }");
    let (run, turns) = s.conversation(&[]);
    assert_eq!(run.code, None, "killed by a signal: {run}");
    assert!(turns.is_empty(), "{run}");
}

fn marker_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn a_mismatched_sha256_never_runs_the_library() {
    for isolation in ["process", "in-process"] {
        let s = Setup::new();
        let marker = s.out.path().join("marker");
        s.write(&format!(
            "plugin = \"stall\"\nisolation = \"{isolation}\"\nsha256 = \"{}\"",
            "0".repeat(64)
        ));
        let marker_env = marker.display().to_string();
        let (run, turns) = s.conversation(&[("OPENCLAW_STALL_MARKER", &marker_env)]);
        assert_no_turn_lost(isolation, &run, &turns);
        assert!(
            run.stderr.contains("SHA-256 mismatch"),
            "{isolation}: {run}"
        );
        assert_eq!(
            marker_lines(&marker),
            0,
            "{isolation}: the library's initialiser ran: {run}"
        );
    }
}

#[test]
fn a_matching_sha256_loads_and_the_marker_shows_it() {
    // The counterpart of the test above: the marker does appear when the library is loaded,
    // so its absence there means something.
    let s = Setup::new();
    let marker = s.out.path().join("marker");
    let library = s.plugins.path().join(format!("lib{STALL}.so"));
    let bytes = std::fs::read(&library).expect("read the stall library");
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(bytes))
    };
    s.write(&format!("plugin = \"stall\"\nsha256 = \"{sha}\""));
    let marker_env = marker.display().to_string();
    let (run, turns) = s.conversation(&[("OPENCLAW_STALL_MARKER", &marker_env)]);
    assert!(run.success(), "{run}");
    assert_eq!(turns[0]["stt_provider"], "bad", "{run}");
    assert!(marker_lines(&marker) >= 1, "{run}");
}

#[test]
fn an_unconfigured_library_is_never_opened_by_simulate_or_run() {
    let s = Setup::new();
    let marker = s.out.path().join("marker");
    let marker_env = marker.display().to_string();
    s.write("plugin = \"fault\"\nisolation = \"in-process\"");
    let (run, _) = s.conversation(&[("OPENCLAW_STALL_MARKER", &marker_env)]);
    assert!(run.success(), "{run}");
    let mut running = Running::spawn(
        s.args(&[OsStr::new("run")]),
        &[("OPENCLAW_STALL_MARKER", &marker_env)],
    );
    assert!(
        running.wait_for_stderr("running headless", Duration::from_secs(30)),
        "{}",
        running.stderr()
    );
    running.signal("TERM");
    let _ = running.wait_timeout(Duration::from_secs(10));
    assert_eq!(marker_lines(&marker), 0, "the stall library was opened");
}

#[test]
fn plugins_list_reports_a_truncated_library_and_lists_the_rest() {
    let s = Setup::new();
    let whole = std::fs::read(s.plugins.path().join(format!("lib{TONE}.so"))).expect("read tone");
    let truncated = s
        .plugins
        .write("libopenclaw_plugin_truncated.so", &whole[..100_000]);
    let run = openclaw_voice(
        [
            OsStr::new("plugins"),
            OsStr::new("list"),
            OsStr::new("--dir"),
            s.plugins.path().as_os_str(),
        ],
        &[],
    );
    assert!(
        run.code.is_some(),
        "plugins list must not die of a signal: {run}"
    );
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains(&truncated.display().to_string()))
        .unwrap_or_else(|| panic!("the truncated file is reported: {run}"));
    assert!(line.contains("truncated"), "{line}");
    for name in ["fault", "stall", "tone"] {
        assert!(
            run.stdout.lines().any(|l| l.trim_start().starts_with(name)),
            "{name} is listed: {run}"
        );
    }
}

#[test]
fn plugins_list_survives_a_library_that_hangs_while_loading() {
    let s = Setup::new();
    let run = openclaw_voice(
        [
            OsStr::new("plugins"),
            OsStr::new("list"),
            OsStr::new("--dir"),
            s.plugins.path().as_os_str(),
        ],
        &[("OPENCLAW_STALL_INFO_MS", "3600000")],
    );
    assert!(run.code.is_some(), "{run}");
    assert!(
        run.stdout.contains("did not finish loading within"),
        "the hanging library is reported: {run}"
    );
    assert!(run.stdout.contains("tone"), "{run}");
}

/// `simulate` with a provider call that never returns (in this process): the report is
/// printed and the process exits, instead of waiting for the call forever.
#[test]
fn simulate_exits_while_an_in_process_call_hangs() {
    let s = Setup::new();
    s.write("plugin = \"fault\"\nisolation = \"in-process\"\ntimeout_ms = 500\nsettings = { mode = \"hang\" }");
    let started = Instant::now();
    let (run, turns) = s.conversation(&[]);
    assert_no_turn_lost("hang in-process", &run, &turns);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "exited after {:?}",
        started.elapsed()
    );
}

/// Headless `run` while a provider's setup hangs: SIGTERM ends it within the deadline.
#[test]
fn run_exits_within_the_deadline_while_a_provider_setup_hangs() {
    for isolation in ["process", "in-process"] {
        let s = Setup::new();
        s.write(&format!(
            "plugin = \"fault\"\nisolation = \"{isolation}\"\nsettings = {{ setup_delay_ms = 3600000 }}"
        ));
        let mut running = Running::spawn(
            s.args(&[OsStr::new("run")]),
            &[("OPENCLAW__OPS__SHUTDOWN_DEADLINE_MS", "2000")],
        );
        std::thread::sleep(Duration::from_millis(1500));
        let signalled = Instant::now();
        running.signal("TERM");
        let status = running.wait_timeout(Duration::from_secs(10));
        let took = signalled.elapsed();
        assert!(
            status.is_some(),
            "{isolation}: still running 10 s after SIGTERM"
        );
        assert!(
            took < Duration::from_millis(2500),
            "{isolation}: exited {took:?} after SIGTERM (deadline 2 s)"
        );
    }
}

/// The providers' own health checks run in the background and reach `/health`, with the
/// worker process serving each isolated provider.
#[test]
fn health_checks_and_workers_show_in_health() {
    let s = Setup::new();
    s.write("plugin = \"fault\"");
    let mut running = Running::spawn(
        s.args(&[OsStr::new("run")]),
        &[
            ("OPENCLAW__OPS__ENABLED", "true"),
            ("OPENCLAW__OPS__BIND", "127.0.0.1:0"),
            ("OPENCLAW__OPS__HEALTH_CHECK_INTERVAL_MS", "1000"),
        ],
    );
    let addr = running.ops_addr(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let response = openclaw_voice_tests::http_get(addr, "/health", None).expect("GET /health");
        let body: serde_json::Value = serde_json::from_str(&response.body).expect("JSON");
        if body["services"]["stt:bad"]["check"].is_string() || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let bad = &body["services"]["stt:bad"];
    assert_eq!(bad["check"], "healthy", "{body}");
    assert!(
        bad["check_detail"]
            .as_str()
            .is_some_and(|d| d.contains("fault plugin")),
        "{body}"
    );
    assert!(
        bad["worker"]["pid"].as_u64().is_some_and(|p| p > 0),
        "{body}"
    );
    assert_eq!(bad["worker"]["restarts"], 0, "{body}");
    running.signal("TERM");
    let _ = running.wait_timeout(Duration::from_secs(10));
}

/// `check-config --probe` builds every provider and asks each for its health: a cloud
/// provider whose server does not answer is a problem, named with the reason.
#[test]
fn check_config_probe_reports_an_unreachable_cloud_provider() {
    let s = Setup::new();
    s.plugins.add(openclaw_voice_tests::OPENAI_WHISPER);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", dead.local_addr().expect("an address"));
    drop(dead);
    s.write(&format!(
        "plugin = \"openai-whisper\"\nsettings = {{ base_url = \"{url}\", api_key_env = \"OCV_PROBE_KEY\" }}"
    ));
    let run = openclaw_voice(
        s.args(&[OsStr::new("check-config"), OsStr::new("--probe")]),
        &[("OCV_PROBE_KEY", "sk-probe-test-0000000000000000")],
    );
    assert!(!run.success(), "{run}");
    assert!(
        run.stderr
            .contains("stt provider `bad` is unhealthy: openai-whisper: health check"),
        "{run}"
    );
    assert!(run.stderr.contains("cannot connect"), "{run}");
    assert!(
        run.stdout.contains("stt provider `backup`: healthy"),
        "{run}"
    );
    assert!(!run.output().contains("sk-probe-test"), "no secret: {run}");
}

/// "How long is a piece", a short silence, "of string?": one turn with a pause in it.
fn paused_question(dir: &Path) -> PathBuf {
    let a = espeak_speech(dir, "a.wav", "How long is a piece");
    let b = espeak_speech(dir, "b.wav", "of string?");
    let read = |p: &Path| -> (hound::WavSpec, Vec<i16>) {
        let mut r = hound::WavReader::open(p).expect("an espeak WAV");
        let spec = r.spec();
        (
            spec,
            r.samples::<i16>().map(|s| s.expect("a sample")).collect(),
        )
    };
    let ((spec, mut samples), (_, second)) = (read(&a), read(&b));
    // espeak-ng ends and starts each clip with silence of its own: about a quarter second.
    samples.extend(std::iter::repeat_n(0, spec.sample_rate as usize / 20));
    samples.extend(second);
    let path = dir.join("paused.wav");
    let mut w = hound::WavWriter::create(&path, spec).expect("write a WAV");
    for s in samples {
        w.write_sample(s).expect("a sample");
    }
    w.finalize().expect("finish the WAV");
    path
}

/// Streaming speech-to-text in the pipeline: with a provider that streams, each pause's new
/// audio is pushed to one stream and the end of the turn finishes it; the transcript is the
/// one a whole-utterance transcription gives (the pushes rebuild the utterance exactly).
#[test]
fn a_streaming_provider_is_fed_at_each_pause_and_finishes_the_turn() {
    let s = Setup::new();
    s.config.write(
        "test.toml",
        &format!(
            "[plugins]\ndir = {}\n[stt]\nproviders = [\"ears\"]\n[tts]\nproviders = [\"tone\"]\n\
             [agent]\nkind = \"echo\"\n[ops]\nenabled = false\n[discord]\nenabled = false\n\
             [providers.ears]\nplugin = \"fault\"\n[providers.tone]\nplugin = \"tone\"\n",
            toml_path(s.plugins.path())
        ),
    );
    let question = paused_question(s.out.path());
    let simulate = |env: &[(&str, &str)]| {
        let out = s.out.path().join("reply.wav");
        let run = openclaw_voice(
            s.args(&[
                OsStr::new("simulate"),
                OsStr::new("--input"),
                question.as_os_str(),
                OsStr::new("--output"),
                out.as_os_str(),
                OsStr::new("--fast"),
                OsStr::new("--json"),
            ]),
            env,
        );
        let turns: Vec<serde_json::Value> = run
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert!(run.success(), "{run}");
        assert_eq!(turns.len(), 1, "one turn despite the pause: {run}");
        turns.into_iter().next().expect("a turn")
    };
    let streamed = simulate(&[]);
    assert_eq!(streamed["speculation"]["streamed"], true, "{streamed}");
    let whole = simulate(&[("OPENCLAW__PIPELINE__SPECULATIVE_STT", "false")]);
    assert_eq!(whole["speculation"]["streamed"], false, "{whole}");
    assert_eq!(streamed["transcript"], whole["transcript"]);
    assert!(
        streamed["transcript"]
            .as_str()
            .is_some_and(|t| t.contains("samples, sum")),
        "{streamed}"
    );
}
