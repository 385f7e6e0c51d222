//! A stranger's path to a plugin, end to end, outside the workspace:
//!
//! - `openclaw-voice plugins new` makes a speech-to-text and a text-to-speech crate in a
//!   temporary directory; each builds offline and passes its own tests as generated, and the
//!   host loads both and completes a `simulate` turn with them;
//! - the guide's speech-to-text walk-through (docs/PLUGINS.md) is at most 40 lines, names no
//!   abi_stable type, and builds into a plugin the host loads;
//! - no example imports abi_stable or the `abi` module;
//! - a plugin built with `panic = "abort"` does not compile, with the message saying why.
//!
//! The crates share one target directory, `target/plugin-scaffold` (persistent: the
//! dependencies are compiled once, ~80 s on two cores, and reruns take seconds), and the
//! workspace's lock file, so the build needs no network.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use openclaw_voice_tests::{
    espeak_speech, openclaw_voice, profile_dir, toml_path, workspace_root, ConfigDir, PluginDir,
};

/// The shared target directory of every crate built here.
fn target_dir() -> PathBuf {
    profile_dir()
        .parent()
        .expect("the profile directory is inside the target directory")
        .join("plugin-scaffold")
}

/// `cargo <args> --offline` in the crate at `dir`, with the shared target directory.
fn cargo(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = Instant::now();
    let output = Command::new(cargo)
        .args(args)
        .args(["--offline", "--quiet"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .envs(env.iter().copied())
        .output()
        .expect("run cargo");
    eprintln!(
        "cargo {} in {}: {:.1} s",
        args.join(" "),
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    output
}

fn assert_ok(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The workspace's lock file beside the crate's manifest: the same dependency versions, which
/// the local registry cache holds after `cargo build --workspace`.
fn pin(dir: &Path) {
    std::fs::copy(workspace_root().join("Cargo.lock"), dir.join("Cargo.lock"))
        .expect("copy Cargo.lock");
}

/// `plugins new NAME --ROLE --path DIR`, checked.
fn scaffold(parent: &Path, name: &str, role: &str) -> PathBuf {
    let dir = parent.join(name);
    let run = openclaw_voice(
        [
            OsStr::new("plugins"),
            OsStr::new("new"),
            OsStr::new(name),
            OsStr::new(role),
            OsStr::new("--path"),
            dir.as_os_str(),
        ],
        &[],
    );
    assert!(run.success(), "{run}");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("a Cargo.toml");
    let api = workspace_root().join("plugin-api");
    assert!(
        manifest.contains(&format!("path = {}", toml_path(&api))),
        "depends on this checkout's API: {manifest}"
    );
    pin(&dir);
    dir
}

/// The built library of crate `lib`, copied into `plugins`.
fn install(plugins: &PluginDir, lib: &str) {
    let file = format!("lib{lib}.so");
    plugins.add_as(&target_dir().join("debug").join(&file), &file);
}

/// The guide's walk-through for `role` (`stt`, `tts`): the first `rust` block after its marker.
fn walkthrough(role: &str) -> String {
    let guide = std::fs::read_to_string(workspace_root().join("docs/PLUGINS.md"))
        .expect("read docs/PLUGINS.md");
    let (_, after) = guide
        .split_once(&format!("<!-- walkthrough: {role} -->"))
        .expect("the guide marks its walk-through");
    let (_, code) = after.split_once("```rust\n").expect("a rust block");
    code.split_once("```")
        .expect("the block ends")
        .0
        .to_string()
}

/// Identifiers of abi_stable types, which plugin code should never need.
fn abi_types_in(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for word in code.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
        let r_type = [
            "RVec", "RString", "ROption", "RStr", "RSlice", "RResult", "RBox",
        ]
        .contains(&word);
        if r_type || word == "abi_stable" || word.ends_with("_TO") {
            found.push(word.to_string());
        }
    }
    if code.contains("plugin_api::abi") {
        found.push("plugin_api::abi".into());
    }
    found
}

#[test]
fn scaffolded_plugins_build_pass_their_tests_and_complete_a_turn() {
    let started = Instant::now();
    let work = tempfile::tempdir().expect("a temporary directory outside the workspace");
    let ears = scaffold(work.path(), "scaffold-ears", "--stt");
    let voice = scaffold(work.path(), "scaffold-voice", "--tts");
    for dir in [&ears, &voice] {
        assert_ok("cargo test", &cargo(dir, &["test"], &[]));
        assert_ok("cargo build", &cargo(dir, &["build"], &[]));
    }

    let plugins = PluginDir::new();
    install(&plugins, "openclaw_plugin_scaffold_ears");
    install(&plugins, "openclaw_plugin_scaffold_voice");
    let config = ConfigDir::new();
    config.write(
        "test.toml",
        &format!(
            "[plugins]\ndir = {}\n[stt]\nproviders = [\"ears\"]\n[tts]\nproviders = [\"voice\"]\n\
             [agent]\nkind = \"echo\"\n[ops]\nenabled = false\n[discord]\nenabled = false\n\
             [providers.ears]\nplugin = \"scaffold-ears\"\n\
             [providers.ears.settings]\nunit = \"ms of speech\"\n\
             [providers.voice]\nplugin = \"scaffold-voice\"\n",
            toml_path(plugins.path())
        ),
    );
    let question = espeak_speech(work.path(), "q.wav", "Hello there, plugin.");
    let reply = work.path().join("reply.wav");
    let run = openclaw_voice(
        [
            OsStr::new("--config-dir"),
            config.path().as_os_str(),
            OsStr::new("--env"),
            OsStr::new("test"),
            OsStr::new("simulate"),
            OsStr::new("--fast"),
            OsStr::new("--json"),
            OsStr::new("--input"),
            question.as_os_str(),
            OsStr::new("--output"),
            reply.as_os_str(),
        ],
        &[],
    );
    assert!(run.success(), "{run}");
    let turns: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v.get("turn").is_some())
        .collect();
    assert_eq!(turns.len(), 1, "{run}");
    let turn = &turns[0];
    assert_eq!(turn["outcome"]["kind"], "completed", "{run}");
    assert!(
        turn["transcript"]
            .as_str()
            .is_some_and(|t| t.ends_with("ms of speech")),
        "{turn}"
    );
    assert_eq!(turn["stt_provider"], "ears");
    assert_eq!(turn["tts_provider"], "voice");
    assert!(turn["reply_audio_ms"].as_u64().unwrap_or(0) > 0, "{turn}");
    eprintln!(
        "scaffold, build, test and a turn: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Builds `code` as plugin crate `name` (library `openclaw_plugin_<name>`) and lists it with
/// the host: it must load and provide `role`.
fn build_and_list(name: &str, code: &str, role: &str) {
    let work = tempfile::tempdir().expect("a temporary directory");
    let dir = work.path().join(name);
    std::fs::create_dir_all(dir.join("src")).expect("create the crate");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"openclaw-plugin-{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
             [lib]\nname = \"openclaw_plugin_{name}\"\ncrate-type = [\"cdylib\"]\n\
             [dependencies]\nplugin-api = {{ package = \"openclaw-plugin-api\", path = {} }}\n\
             serde = {{ version = \"1\", features = [\"derive\"] }}\n[workspace]\n",
            toml_path(&workspace_root().join("plugin-api"))
        ),
    )
    .expect("write Cargo.toml");
    std::fs::write(dir.join("src/lib.rs"), code).expect("write lib.rs");
    pin(&dir);
    assert_ok("cargo build", &cargo(&dir, &["build"], &[]));

    let plugins = PluginDir::new();
    install(&plugins, &format!("openclaw_plugin_{name}"));
    let run = openclaw_voice(
        [
            OsStr::new("plugins"),
            OsStr::new("list"),
            OsStr::new("--dir"),
            plugins.path().as_os_str(),
        ],
        &[],
    );
    assert!(run.success(), "{run}");
    assert!(
        run.stdout.lines().any(|l| {
            l.trim_start().starts_with(&format!("{name} "))
                && l.contains(&format!("provides {role}"))
        }),
        "{run}"
    );
}

#[test]
fn the_guides_walkthroughs_are_short_plain_rust_and_plugins_the_host_loads() {
    let stt = walkthrough("stt");
    let lines = stt.lines().count();
    assert!(lines <= 40, "the STT walk-through is {lines} lines:\n{stt}");
    let tts = walkthrough("tts");
    for code in [&stt, &tts] {
        assert_eq!(abi_types_in(code), Vec::<String>::new(), "{code}");
    }
    build_and_list("mumble", &stt, "stt");
    build_and_list("beeper", &tts, "tts");
}

#[test]
fn the_examples_import_no_abi_type() {
    let examples = workspace_root().join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).expect("read examples/") {
        let src = entry.expect("an entry").path().join("src/lib.rs");
        let code = std::fs::read_to_string(&src).expect("an example's lib.rs");
        assert_eq!(
            abi_types_in(&code),
            Vec::<String>::new(),
            "{} names abi_stable types",
            src.display()
        );
        checked += 1;
    }
    assert!(checked >= 2, "tone-tts and keyword-stt at least");
}

#[test]
fn a_plugin_built_with_panic_abort_does_not_compile() {
    let work = tempfile::tempdir().expect("a temporary directory");
    let dir = scaffold(work.path(), "aborting", "--stt");
    let mut manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
    manifest.push_str("\n[profile.dev]\npanic = \"abort\"\n");
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("write Cargo.toml");
    let output = cargo(&dir, &["check", "--lib"], &[]);
    assert!(!output.status.success(), "it must not compile");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("OpenClaw Voice plugins must be built with `panic = \"unwind\"`"),
        "{stderr}"
    );
}
