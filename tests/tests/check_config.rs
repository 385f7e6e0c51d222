//! `openclaw-voice check-config`, run as an operator runs it against a config directory: it
//! passes a valid configuration that uses the `tone` example plugin, and fails (non-zero exit)
//! with messages that name the file and dotted key, the missing variable and its provider, or
//! the plugin file and both hashes. Secret values never appear in its output.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use openclaw_voice_tests::{openclaw_voice, toml_path, ConfigDir, PluginDir, Run, FAULT, TONE};
use sha2::{Digest, Sha256};

/// A config directory and a plugin directory holding the `tone` and `fault` plugins.
struct Setup {
    config: ConfigDir,
    plugins: PluginDir,
    tone: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let plugins = PluginDir::with(&[FAULT]);
        let tone = plugins.add(TONE);
        Setup {
            config: ConfigDir::new(),
            plugins,
            tone,
        }
    }

    /// A valid configuration: `fault` (in `ok` mode) for speech-to-text, `tone` for
    /// text-to-speech, followed by `extra` (TOML appended as is).
    fn valid(&self, extra: &str) -> String {
        format!(
            r#"
[plugins]
dir = {dir}

[stt]
providers = ["fault-stt"]

[tts]
providers = ["tone"]

[providers.fault-stt]
plugin = "fault"
timeout_ms = 2000

[providers.tone]
plugin = "tone"
timeout_ms = 2000

[providers.tone.settings]
voice = "high"
sample_rate = 24000

[ops]
enabled = false

[discord]
enabled = false
{extra}"#,
            dir = toml_path(self.plugins.path())
        )
    }

    /// Runs `check-config` for the environment `test` with the extra environment `env`.
    fn check(&self, env: &[(&str, &str)]) -> Run {
        self.check_with(&[], env)
    }

    /// [`check`](Self::check) with more arguments (`--print`, `--probe`).
    fn check_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut all = vec![
            OsStr::new("--config-dir"),
            self.config.path().as_os_str(),
            OsStr::new("--env"),
            OsStr::new("test"),
            OsStr::new("check-config"),
        ];
        all.extend(args.iter().map(OsStr::new));
        openclaw_voice(all, env)
    }
}

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    hex::encode(Sha256::digest(bytes))
}

fn assert_failed(run: &Run) {
    assert!(
        matches!(run.code, Some(code) if code != 0),
        "check-config must exit non-zero: {run}"
    );
}

#[test]
fn a_valid_config_using_the_tone_plugin_passes() {
    let s = Setup::new();
    s.config.write("test.toml", &s.valid(""));
    let run = s.check_with(&["--print"], &[]);
    assert!(run.success(), "{run}");
    assert!(
        run.stdout.starts_with("configuration OK\n"),
        "the verdict first: {run}"
    );
    assert!(run.stdout.contains("environment: test"), "{run}");
    assert!(
        run.stdout
            .contains("fault (worker process), tone (worker process)"),
        "{run}"
    );
    assert!(
        run.stdout
            .contains("tts provider `tone` (plugin `tone`): settings OK"),
        "{run}"
    );
    assert!(
        run.stdout
            .contains("stt provider `fault-stt` (plugin `fault`): settings OK"),
        "{run}"
    );
    assert!(
        run.stdout.contains("sample_rate = 24000"),
        "prints the effective config: {run}"
    );
}

#[test]
fn libraries_no_provider_uses_are_never_opened() {
    let s = Setup::new();
    let garbage = s.plugins.write("libgarbage.so", b"garbage");
    s.config.write("test.toml", &s.valid(""));
    let run = s.check(&[]);
    assert!(run.success(), "{run}");
    assert!(
        !run.stdout.contains(&garbage.display().to_string()),
        "only the libraries the providers use are opened: {run}"
    );
}

#[test]
fn an_unknown_key_is_refused_naming_the_file_and_dotted_key() {
    let s = Setup::new();
    let file = s.config.write(
        "test.toml",
        &s.valid("\n[pipeline]\nsilence_hangover = 600\n"),
    );
    let run = s.check(&[]);
    assert_failed(&run);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("unknown key"))
        .unwrap_or_else(|| panic!("an unknown-key line: {run}"));
    assert!(line.contains(&file.display().to_string()), "{line}");
    assert!(line.contains("`pipeline.silence_hangover`"), "{line}");
    assert!(
        line.contains("silence_hangover_ms"),
        "suggests the real key: {line}"
    );
}

#[test]
fn a_type_error_is_refused_naming_the_file_and_key() {
    let s = Setup::new();
    let default = s
        .config
        .write("default.toml", "[providers.tone]\ntimeout_ms = \"soon\"\n");
    s.config.write("test.toml", &s.valid(""));
    let run = s.check(&[]);
    assert_failed(&run);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("`providers.tone.timeout_ms`"))
        .unwrap_or_else(|| panic!("a line naming the key: {run}"));
    assert!(line.contains(&default.display().to_string()), "{line}");
    assert!(line.contains("invalid type"), "{line}");
}

#[test]
fn a_missing_secret_names_the_variable_and_the_provider() {
    let s = Setup::new();
    let var = format!("OCV_TEST_UNSET_SECRET_{}", std::process::id());
    s.config.write(
        "test.toml",
        &s.valid(&format!(
            "\n[providers.fault-stt.settings]\napi_key_env = \"{var}\"\n"
        )),
    );
    let run = s.check(&[]);
    assert_failed(&run);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains(&var))
        .unwrap_or_else(|| panic!("a line naming {var}: {run}"));
    assert!(line.contains("is not set"), "{line}");
    assert!(line.contains("provider `fault-stt`"), "{line}");
    assert!(
        line.contains("providers.fault-stt.settings.api_key_env"),
        "{line}"
    );
}

#[test]
fn secret_values_are_never_printed() {
    let s = Setup::new();
    let secret = "sk-ocv-test-4f1c9e2a7b5d3816";
    s.config.write(
        "test.toml",
        &s.valid("\n[providers.fault-stt.settings]\napi_key_env = \"OCV_TEST_SECRET\"\n"),
    );
    // The most verbose logs, so that a leak anywhere (config, host, plugin) would show.
    let run = s.check_with(
        &["--print"],
        &[("OCV_TEST_SECRET", secret), ("LOG_LEVEL", "trace")],
    );
    assert!(run.success(), "{run}");
    assert!(
        run.stdout
            .contains("providers.fault-stt.settings.api_key_env = OCV_TEST_SECRET: set"),
        "{run}"
    );
    assert!(
        run.stderr.contains("secret found"),
        "the plugin read the secret during the check: {run}"
    );
    assert!(!run.output().contains(secret), "the secret leaked: {run}");
    assert!(
        !run.output().contains(&secret[3..]),
        "part of the secret leaked: {run}"
    );
}

#[test]
fn a_wrong_sha256_is_refused_naming_the_file_and_both_hashes() {
    let s = Setup::new();
    let expected = "ab".repeat(32);
    let text = s.valid("").replace(
        "[providers.tone]\n",
        &format!("[providers.tone]\nsha256 = \"{expected}\"\n"),
    );
    s.config.write("test.toml", &text);
    let run = s.check(&[]);
    assert_failed(&run);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("SHA-256 mismatch"))
        .unwrap_or_else(|| panic!("a hash mismatch line: {run}"));
    assert!(line.contains("provider `tone`"), "{line}");
    assert!(line.contains(&expected), "{line}");
    assert!(line.contains(&sha256(&s.tone)), "{line}");
    assert!(line.contains(&s.tone.display().to_string()), "{line}");
}

#[test]
fn the_right_sha256_passes() {
    let s = Setup::new();
    let text = s.valid("").replace(
        "[providers.tone]\n",
        &format!(
            "[providers.tone]\nsha256 = \"{}\"\n",
            sha256(&s.tone).to_uppercase()
        ),
    );
    s.config.write("test.toml", &text);
    let run = s.check(&[]);
    assert!(run.success(), "{run}");
}

#[test]
fn a_plugin_setting_error_names_the_provider_and_the_setting() {
    let s = Setup::new();
    let text = s
        .valid("")
        .replace("sample_rate = 24000", "sample_rat = 24000");
    s.config.write("test.toml", &text);
    let run = s.check(&[]);
    assert_failed(&run);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("sample_rat"))
        .unwrap_or_else(|| panic!("a line naming the setting: {run}"));
    assert!(line.contains("provider `tone`"), "{line}");
}
