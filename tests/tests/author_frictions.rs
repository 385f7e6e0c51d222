//! The host-side frictions a third-party plugin author met (issue #18), each through the real
//! binary with the real `fault` and `tone` plugins:
//!
//! - a settings value of the wrong type names its key and the file or `OPENCLAW__…` variable
//!   that set it;
//! - `[plugins] dir` and `dirs` in a file are relative to that file's directory;
//! - an error about a missing plugin says which file chose the provider;
//! - `plugins list` exits non-zero when a file fails to load;
//! - a reply cut short by a text-to-speech failure is reported as such, not "completed";
//! - `check-config` prints its verdict first, and the effective configuration on request.
//!
//! The SDK-side ones are tested in plugin-api (`settings`, `testing`: typed settings, the
//! cancel check) and in `plugin_scaffold.rs` (`plugins new`, `panic = "abort"`, the guide's
//! walk-through).

use std::ffi::OsStr;
use std::path::Path;

use openclaw_voice_tests::{
    espeak_speech, library, openclaw_voice, toml_path, ConfigDir, PluginDir, Run, FAULT, TONE,
};

/// Providers `ears` (fault, STT) and `voice` (tone, TTS), then `extra`.
fn config_text(plugins: &str, extra: &str) -> String {
    format!(
        "[plugins]\n{plugins}\n[stt]\nproviders = [\"ears\"]\n[tts]\nproviders = [\"voice\"]\n\
         [agent]\nkind = \"echo\"\n[ops]\nenabled = false\n[discord]\nenabled = false\n\
         [providers.ears]\nplugin = \"fault\"\n[providers.voice]\nplugin = \"tone\"\n{extra}"
    )
}

fn run(config: &ConfigDir, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut all = vec![
        OsStr::new("--config-dir"),
        config.path().as_os_str(),
        OsStr::new("--env"),
        OsStr::new("test"),
    ];
    all.extend(args.iter().map(OsStr::new));
    openclaw_voice(all, env)
}

/// Copies the built library `name` into `dir` (created).
fn install(dir: &Path, name: &str) {
    std::fs::create_dir_all(dir).expect("create a plugin directory");
    let source = library(name);
    std::fs::copy(&source, dir.join(source.file_name().expect("a file name")))
        .expect("copy a plugin");
}

#[test]
fn a_mistyped_setting_names_its_key_and_the_variable_or_file_that_set_it() {
    let plugins = PluginDir::with(&[FAULT, TONE]);
    let config = ConfigDir::new();
    let file = config.write(
        "test.toml",
        &config_for(&plugins, "[providers.voice.settings]\nbeep_ms = \"long\"\n"),
    );
    let from_file = run(&config, &["check-config"], &[]);
    assert!(!from_file.success(), "{from_file}");
    assert!(
        from_file.stderr.contains(&format!(
            "setting `beep_ms`: invalid type: string \"long\", expected u32 \
             (`providers.voice.settings.beep_ms`, set by {})",
            file.display()
        )),
        "{from_file}"
    );

    config.write("test.toml", &config_for(&plugins, ""));
    let var = "OPENCLAW__PROVIDERS__VOICE__SETTINGS__SAMPLE_RATE";
    let from_env = run(&config, &["check-config"], &[(var, "fast")]);
    assert!(!from_env.success(), "{from_env}");
    assert!(
        from_env.stderr.contains(&format!(
            "setting `sample_rate`: invalid type: string \"fast\", expected u32 \
             (`providers.voice.settings.sample_rate`, set by environment variable {var})"
        )),
        "{from_env}"
    );
}

fn config_for(plugins: &PluginDir, extra: &str) -> String {
    config_text(&format!("dir = {}", toml_path(plugins.path())), extra)
}

#[test]
fn plugin_directories_in_a_file_are_relative_to_its_directory() {
    let config = ConfigDir::new();
    install(&config.path().join("stt-plugins"), FAULT);
    install(&config.path().join("more/tts-plugins"), TONE);
    config.write(
        "test.toml",
        &config_text("dir = \"stt-plugins\"\ndirs = [\"more/tts-plugins\"]", ""),
    );
    // The binary runs from the tests crate's directory, not the config directory.
    let checked = run(&config, &["check-config"], &[]);
    assert!(checked.success(), "{checked}");
    let dir = config.path().join("stt-plugins").display().to_string();
    assert!(checked.stdout.contains(&dir), "{checked}");

    let listed = run(&config, &["plugins", "list"], &[]);
    assert!(listed.success(), "{listed}");
    for name in ["fault ", "tone "] {
        assert!(
            listed
                .stdout
                .lines()
                .any(|l| l.trim_start().starts_with(name)),
            "{name}in one of the directories: {listed}"
        );
    }
}

#[test]
fn a_missing_plugin_names_the_file_that_chose_the_provider() {
    let plugins = PluginDir::with(&[TONE]);
    let config = ConfigDir::new();
    let file = config.write("test.toml", &config_for(&plugins, ""));
    let checked = run(&config, &["check-config"], &[]);
    assert!(!checked.success(), "{checked}");
    assert!(
        checked.stderr.contains("no library for plugin `fault`")
            && checked.stderr.contains(&format!(
                "`stt.providers`, which lists it, is set by {}",
                file.display()
            )),
        "{checked}"
    );
}

#[test]
fn plugins_list_exits_non_zero_when_a_file_fails_to_load() {
    let plugins = PluginDir::with(&[TONE]);
    let garbage = plugins.write("libgarbage.so", b"not a library");
    let listed = openclaw_voice(
        [
            OsStr::new("plugins"),
            OsStr::new("list"),
            OsStr::new("--dir"),
            plugins.path().as_os_str(),
        ],
        &[],
    );
    assert_eq!(listed.code, Some(1), "{listed}");
    assert!(
        listed.stdout.contains("tone "),
        "still lists the rest: {listed}"
    );
    assert!(
        listed
            .stdout
            .contains(&format!("not loaded: {}", garbage.display())),
        "{listed}"
    );
    assert!(
        listed.stderr.contains("1 file could not be loaded"),
        "{listed}"
    );
}

#[test]
fn a_reply_cut_by_a_text_to_speech_failure_is_not_completed() {
    let plugins = PluginDir::with(&[FAULT, TONE]);
    let config = ConfigDir::new();
    let work = tempfile::tempdir().expect("a temporary directory");
    config.write(
        "test.toml",
        &config_for(
            &plugins,
            "[providers.broken]\nplugin = \"fault\"\n\
             [providers.broken.settings]\nmode = \"panic-in-stream\"\nchunks = 5\n",
        )
        .replace("providers = [\"voice\"]", "providers = [\"broken\"]"),
    );
    let question = espeak_speech(work.path(), "q.wav", "Tell me something long.");
    let reply = work.path().join("reply.wav");
    let simulated = run(
        &config,
        &[
            "simulate",
            "--fast",
            "--json",
            "--input",
            question.to_str().expect("a UTF-8 path"),
            "--output",
            reply.to_str().expect("a UTF-8 path"),
        ],
        &[],
    );
    let turns: Vec<serde_json::Value> = simulated
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v.get("turn").is_some())
        .collect();
    assert_eq!(turns.len(), 1, "{simulated}");
    let outcome = &turns[0]["outcome"];
    assert_eq!(outcome["kind"], "failed", "{simulated}");
    let detail = outcome["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("the reply was cut short")
            && detail.contains("broke off mid-sentence")
            && detail.contains("panicked in next_chunk"),
        "{detail}: {simulated}"
    );
}

#[test]
fn check_config_gives_its_verdict_first_and_the_effective_config_on_request() {
    let plugins = PluginDir::with(&[FAULT, TONE]);
    let config = ConfigDir::new();
    config.write("test.toml", &config_for(&plugins, ""));
    let plain = run(&config, &["check-config"], &[]);
    assert!(plain.success(), "{plain}");
    assert_eq!(
        plain.stdout.lines().next(),
        Some("configuration OK"),
        "{plain}"
    );
    assert!(!plain.stdout.contains("[pipeline]"), "{plain}");
    assert!(plain.stdout.lines().count() < 30, "{plain}");

    let printed = run(&config, &["check-config", "--print"], &[]);
    assert!(printed.success(), "{printed}");
    assert_eq!(printed.stdout.lines().next(), Some("configuration OK"));
    assert!(printed.stdout.contains("--- effective configuration ---"));
    assert!(printed.stdout.contains("[pipeline]"), "{printed}");

    config.write(
        "test.toml",
        &config_for(&plugins, "").replace("tone", "nothing"),
    );
    let failed = run(&config, &["check-config"], &[]);
    assert!(!failed.success(), "{failed}");
    assert_eq!(
        failed.stdout.lines().next(),
        Some("configuration NOT OK: 1 problem"),
        "{failed}"
    );
}
