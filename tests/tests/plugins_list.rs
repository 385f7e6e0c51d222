//! `openclaw-voice plugins list`, run as a user runs it: it describes every plugin (name,
//! version, roles, API version, path, SHA-256) and gives one `not loaded: <file>: <reason>` line
//! per file it refused, listing the rest, and exits 1 when any file was refused.

use std::ffi::OsStr;
use std::path::Path;

use openclaw_voice_tests::{library, openclaw_voice, PluginDir, Run, FAULT, NOT_A_PLUGIN, TONE};
use plugin_api::abi::API_VERSION;
use sha2::{Digest, Sha256};

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    hex::encode(Sha256::digest(bytes))
}

fn plugins_list(dir: &Path, json: bool) -> Run {
    let mut args = vec![
        OsStr::new("plugins"),
        OsStr::new("list"),
        OsStr::new("--dir"),
        dir.as_os_str(),
    ];
    if json {
        args.push(OsStr::new("--json"));
    }
    openclaw_voice(args, &[])
}

/// The directory every test here lists: two plugins and three bad files.
struct Mixed {
    dir: PluginDir,
    tone: std::path::PathBuf,
    garbage: std::path::PathBuf,
    not_a_plugin: std::path::PathBuf,
    duplicate: std::path::PathBuf,
}

fn mixed() -> Mixed {
    let dir = PluginDir::with(&[FAULT]);
    let tone = dir.add(TONE);
    let not_a_plugin = dir.add(NOT_A_PLUGIN);
    let garbage = dir.write("libgarbage.so", b"this is not a shared library\n");
    let duplicate = dir.add_as(&library(FAULT), "libzz_fault_copy.so");
    Mixed {
        dir,
        tone,
        garbage,
        not_a_plugin,
        duplicate,
    }
}

#[test]
fn lists_good_plugins_and_one_line_per_bad_file() {
    let m = mixed();
    let run = plugins_list(m.dir.path(), false);
    assert_eq!(
        run.code,
        Some(1),
        "bad files are listed, then fail the command: {run}"
    );

    let lines: Vec<&str> = run.stdout.lines().map(str::trim).collect();
    let tone = lines
        .iter()
        .position(|l| l.starts_with("tone "))
        .unwrap_or_else(|| panic!("tone is listed: {run}"));
    let columns: Vec<&str> = lines[tone].split_whitespace().collect();
    assert_eq!(
        columns,
        [
            "tone",
            "0.1.0",
            "provides",
            "tts",
            "api",
            API_VERSION,
            &m.tone.display().to_string()
        ],
        "{run}"
    );
    assert_eq!(
        lines[tone + 1],
        format!("sha256 {}", sha256(&m.tone)),
        "{run}"
    );
    assert_eq!(
        lines[tone + 2],
        "Example text-to-speech that speaks one beep per word"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("fault ") && l.contains("provides stt,tts")),
        "{run}"
    );

    let refused: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("not loaded: "))
        .collect();
    assert_eq!(refused.len(), 3, "one line per bad file: {run}");
    let line_for = |path: &Path| {
        let prefix = format!("not loaded: {}: ", path.display());
        refused
            .iter()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no line for {}: {run}", path.display()))
            .to_string()
    };
    assert!(
        line_for(&m.garbage).contains("not a loadable shared library"),
        "{run}"
    );
    assert!(
        line_for(&m.not_a_plugin).contains("not an OpenClaw Voice plugin"),
        "{run}"
    );
    assert!(
        line_for(&m.duplicate).contains("another plugin named `fault` is already loaded"),
        "{run}"
    );
}

#[test]
fn json_describes_each_plugin_and_failure() {
    let m = mixed();
    let run = plugins_list(m.dir.path(), true);
    assert_eq!(run.code, Some(1), "{run}");
    let doc: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("stdout is JSON ({e}): {run}"));

    let plugins = doc["plugins"].as_array().expect("a plugins array");
    let names: Vec<&str> = plugins.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["fault", "tone"]);
    let tone = &plugins[1];
    assert_eq!(tone["version"], "0.1.0");
    assert_eq!(tone["provides"], serde_json::json!(["tts"]));
    assert_eq!(tone["api_version"], API_VERSION);
    assert_eq!(tone["path"], m.tone.display().to_string());
    assert_eq!(tone["sha256"], sha256(&m.tone));
    assert_eq!(tone["capabilities"]["streaming"], true);
    assert_eq!(plugins[0]["provides"], serde_json::json!(["stt", "tts"]));

    let failures = doc["failures"].as_array().expect("a failures array");
    let paths: Vec<&str> = failures.iter().filter_map(|f| f["path"].as_str()).collect();
    assert_eq!(
        paths,
        [
            m.garbage.display().to_string(),
            m.not_a_plugin.display().to_string(),
            m.duplicate.display().to_string(),
        ]
    );
    assert!(failures
        .iter()
        .all(|f| f["error"].as_str().is_some_and(|e| !e.is_empty())));
}

#[test]
fn an_unreadable_directory_is_an_error_that_names_it() {
    let dir = PluginDir::new();
    let missing = dir.path().join("does-not-exist");
    let run = plugins_list(&missing, false);
    assert!(!run.success(), "{run}");
    assert!(
        run.stderr.contains("cannot read the plugin directory")
            && run.stderr.contains(&missing.display().to_string()),
        "{run}"
    );
}
