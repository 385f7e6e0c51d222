//! The ABI evolves, proven both ways with openclaw-plugin-api 0.1.0 frozen as released
//! (tests/compat): a plugin built against 0.1.0 loads and runs in today's host (in-process and
//! in a worker), and falls back to the defaults for what was appended since (no streaming);
//! the 0.1.0 host's loader refuses a plugin built against today's API with a clear message.
//!
//! The compatibility workspace is built here with `cargo build --offline` into
//! `target/compat` (persistent, so reruns take a second): its lock file pins versions that
//! `cargo build --workspace` already fetched.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use openclaw_voice::config::{Config, Isolation, ProviderConfig};
use openclaw_voice::plugins::{PluginSet, Providers};
use openclaw_voice_tests::{
    espeak_speech, library, openclaw_voice, profile_dir, toml_path, workspace_root, ConfigDir,
    PluginDir, FAULT,
};
use plugin_api::abi::TranscribeOptions;

/// The compat workspace's build directory (built once per test process).
fn compat_build() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target = profile_dir()
            .parent()
            .expect("the profile directory is inside the target directory")
            .join("compat");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .args(["build", "--offline", "--quiet", "--manifest-path"])
            .arg(workspace_root().join("tests/compat/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET_DIR")
            .output()
            .expect("run cargo");
        assert!(
            output.status.success(),
            "building tests/compat (plugin-api 0.1.0) failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        target.join("debug")
    })
}

fn vintage_library() -> PathBuf {
    let path = compat_build().join(format!(
        "{}openclaw_test_plugin_vintage{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// The 0.1.0 host's loader run on `library`.
fn old_host(library: &Path) -> (bool, String) {
    let output = Command::new(compat_build().join("openclaw-test-host-0-1-0"))
        .arg(library)
        .output()
        .expect("run the 0.1.0 loader");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn the_0_1_0_host_refuses_a_plugin_built_against_todays_api_with_a_clear_message() {
    let (ok, out) = old_host(&library(FAULT));
    assert!(!ok, "{out}");
    assert!(out.starts_with("refused: "), "{out}");
    assert!(
        out.contains(&format!(
            "built against plugin-api {}",
            plugin_api::abi::API_VERSION
        )),
        "{out}"
    );
    assert!(out.contains("upgrade openclaw-voice"), "{out}");
    assert_eq!(out.trim().lines().count(), 1, "one line: {out}");
}

#[test]
fn the_0_1_0_host_still_runs_a_0_1_0_plugin() {
    // The control for the test above: the old loader itself works.
    let (ok, out) = old_host(&vintage_library());
    assert!(ok, "{out}");
    assert!(out.contains("loaded vintage 0.1.0 api 0.1.0"), "{out}");
    assert!(
        out.contains("vintage heard 16000 samples, sum 16000"),
        "{out}"
    );
}

fn provider(plugin: &str, isolation: Isolation) -> ProviderConfig {
    ProviderConfig {
        plugin: Some(plugin.to_string()),
        isolation,
        ..ProviderConfig::default()
    }
}

#[tokio::test]
async fn todays_host_runs_a_0_1_0_plugin_and_falls_back_for_appended_methods() {
    let dir = PluginDir::new();
    dir.add_as(&vintage_library(), "libopenclaw_test_plugin_vintage.so");
    let set = PluginSet::scan(dir.path()).expect("scan");
    let plugin = set
        .plugins
        .get("vintage")
        .unwrap_or_else(|| panic!("vintage loads: {:?} {:?}", set.failures, set.plugins.keys()));
    assert_eq!(plugin.info.api_version, "0.1.0");
    let stt = set
        .build_stt("v", &provider("vintage", Isolation::InProcess))
        .await
        .expect("build the 0.1.0 provider");
    let transcript = stt
        .transcribe(vec![2i16; 800].into(), TranscribeOptions::default())
        .await
        .expect("transcribe");
    assert_eq!(transcript.text, "vintage heard 800 samples, sum 1600");
    // `start_stream` was appended in 0.1.1: a 0.1.0 plugin's vtable lacks it, and the host
    // gets the trait's default (no streaming) instead of a panic.
    let stream = stt
        .start_stream(TranscribeOptions::default())
        .await
        .expect("start_stream on an old plugin");
    assert!(stream.is_none());
    let tts = set
        .build_tts("v", &provider("vintage", Isolation::InProcess))
        .await
        .expect("build the 0.1.0 voice");
    let mut speech = tts.synthesize("one two".into(), Default::default());
    let mut samples = 0;
    while let Some(chunk) = speech.next().await {
        samples += chunk.expect("a chunk").samples.len();
    }
    assert_eq!(samples, 3_200);
}

#[test]
fn todays_binary_runs_a_0_1_0_plugin_in_a_worker_process() {
    let plugins = PluginDir::new();
    plugins.add_as(&vintage_library(), "libopenclaw_test_plugin_vintage.so");
    let config = ConfigDir::new();
    config.write(
        "test.toml",
        &format!(
            "[plugins]\ndir = {}\n[stt]\nproviders = [\"vintage\"]\n[tts]\nproviders = \
             [\"vintage\"]\n[agent]\nkind = \"echo\"\n[ops]\nenabled = false\n[discord]\n\
             enabled = false\n[providers.vintage]\nplugin = \"vintage\"\n",
            toml_path(plugins.path())
        ),
    );
    let audio = tempfile::tempdir().expect("a temporary directory");
    let question = espeak_speech(audio.path(), "q.wav", "Is anybody there?");
    let out = audio.path().join("reply.wav");
    let run = openclaw_voice(
        [
            OsStr::new("--config-dir"),
            config.path().as_os_str(),
            OsStr::new("--env"),
            OsStr::new("test"),
            OsStr::new("simulate"),
            OsStr::new("--input"),
            question.as_os_str(),
            OsStr::new("--output"),
            out.as_os_str(),
            OsStr::new("--fast"),
        ],
        &[],
    );
    assert!(run.success(), "{run}");
    assert!(run.stdout.contains("heard:  \"vintage heard"), "{run}");
    assert!(run.stdout.contains("outcome: completed"), "{run}");
    let listed = openclaw_voice(
        [
            OsStr::new("plugins"),
            OsStr::new("list"),
            OsStr::new("--dir"),
            plugins.path().as_os_str(),
        ],
        &[],
    );
    assert!(
        listed.stdout.contains("vintage") && listed.stdout.contains("api 0.1.0"),
        "{listed}"
    );
}

#[tokio::test]
async fn streaming_speech_to_text_crosses_the_abi_and_the_worker_pipe() {
    let dir = PluginDir::with(&[FAULT]);
    let mut config = Config::default();
    config.stt.providers = vec!["s".into()];
    config.tts.providers = vec![];
    for isolation in [Isolation::InProcess, Isolation::Process] {
        config
            .providers
            .insert("s".into(), provider("fault", isolation));
        let set = PluginSet::for_config(dir.path(), &config).with_launcher(
            openclaw_voice::plugins::worker::WorkerLauncher {
                program: openclaw_voice_tests::binary(),
            },
        );
        let providers = Providers::build(&set, &config).await;
        assert!(providers.failures.is_empty(), "{:?}", providers.failures);
        let stt = &providers.stt[0];
        assert_eq!(stt.worker().is_some(), isolation == Isolation::Process);
        let stream = stt
            .start_stream(TranscribeOptions::default())
            .await
            .expect("start")
            .expect("the fault plugin streams");
        let partial = stream.push(vec![1i16; 1600].into()).await.expect("push");
        assert_eq!(
            partial.map(|p| p.text.to_string()),
            Some("1600 samples so far".to_string())
        );
        stream.push(vec![3i16; 1600].into()).await.expect("push");
        let done = stream.finish().await.expect("finish");
        assert_eq!(done.transcript.text, "3200 samples, sum 6400");
        assert_eq!(done.words.len(), 2, "word timings cross too");
        assert_eq!(done.words[1].start_ms, 100);
    }
}
