//! A plugin built against another plugin-api version is refused with one clear line naming both
//! versions, by the host library and by `openclaw-voice plugins list`, while the compatible
//! plugins next to it load.
//!
//! The incompatible plugin is built here: a copy of `plugin-api` with its version set to the
//! next breaking version (0.1.0 → 0.2.0), and a tiny plugin depending on it, compiled with
//! `cargo build --offline` into `target/incompatible-api` (persistent, so reruns take a second).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use openclaw_voice::plugins::{LoadError, PluginSet};
use openclaw_voice_tests::{openclaw_voice, profile_dir, workspace_root, PluginDir, FAULT};
use plugin_api::abi::API_VERSION;

/// The next version that is incompatible with `version` by cargo's semver rules.
fn next_breaking(version: &str) -> String {
    let parts: Vec<u64> = version
        .split('.')
        .map(|p| p.parse().expect("a numeric version"))
        .collect();
    match parts.as_slice() {
        [0, minor, ..] => format!("0.{}.0", minor + 1),
        [major, ..] => format!("{}.0.0", major + 1),
        [] => panic!("empty version"),
    }
}

/// Writes `text` to `path` unless it already holds exactly that (keeps mtimes for cargo).
fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return;
    }
    std::fs::create_dir_all(path.parent().expect("a file has a parent"))
        .unwrap_or_else(|e| panic!("create the parent of {}: {e}", path.display()));
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// `[workspace.dependencies]` and `[workspace.package]` of the real workspace.
fn workspace_tables() -> (toml::Table, toml::Table) {
    let text = std::fs::read_to_string(workspace_root().join("Cargo.toml"))
        .expect("read the workspace Cargo.toml");
    let mut root: toml::Table = text.parse().expect("the workspace Cargo.toml parses");
    let mut workspace = match root.remove("workspace") {
        Some(toml::Value::Table(t)) => t,
        _ => panic!("the root Cargo.toml has a [workspace]"),
    };
    let mut take = |key: &str| match workspace.remove(key) {
        Some(toml::Value::Table(t)) => t,
        _ => toml::Table::new(),
    };
    (take("dependencies"), take("package"))
}

/// plugin-api's manifest, made standalone (no `workspace = true`) and set to `version`.
fn standalone_plugin_api_manifest(version: &str) -> String {
    let text = std::fs::read_to_string(workspace_root().join("plugin-api/Cargo.toml"))
        .expect("read plugin-api/Cargo.toml");
    let mut manifest: toml::Table = text.parse().expect("plugin-api/Cargo.toml parses");
    let (deps, package_defaults) = workspace_tables();
    manifest.remove("lints");
    let package = manifest
        .get_mut("package")
        .and_then(toml::Value::as_table_mut)
        .expect("plugin-api has a [package]");
    package.remove("readme");
    for (key, value) in package.iter_mut() {
        let inherited = value
            .as_table()
            .and_then(|t| t.get("workspace"))
            .and_then(toml::Value::as_bool)
            == Some(true);
        if inherited {
            *value = package_defaults
                .get(key)
                .unwrap_or_else(|| panic!("[workspace.package] has `{key}`"))
                .clone();
        }
    }
    package.insert("version".into(), version.into());
    package.remove("rust-version");
    if let Some(toml::Value::Table(dependencies)) = manifest.get_mut("dependencies") {
        for (name, spec) in dependencies.iter_mut() {
            let Some(table) = spec.as_table() else {
                continue;
            };
            if table.get("workspace").and_then(toml::Value::as_bool) != Some(true) {
                continue;
            }
            let mut resolved = match deps.get(name) {
                Some(toml::Value::Table(t)) => t.clone(),
                Some(toml::Value::String(v)) => {
                    let mut t = toml::Table::new();
                    t.insert("version".into(), v.clone().into());
                    t
                }
                _ => panic!("[workspace.dependencies] has `{name}`"),
            };
            // Features added at the use site are merged, as cargo does.
            if let Some(toml::Value::Array(extra)) = table.get("features") {
                let features = resolved
                    .entry("features")
                    .or_insert_with(|| toml::Value::Array(Vec::new()));
                if let toml::Value::Array(list) = features {
                    list.extend(extra.iter().cloned());
                }
            }
            *spec = toml::Value::Table(resolved);
        }
    }
    toml::to_string(&manifest).expect("serialize the manifest")
}

const PLUGIN_MANIFEST: &str = r#"[package]
name = "openclaw-test-plugin-other-api"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
name = "openclaw_test_plugin_other_api"
crate-type = ["cdylib"]

[dependencies]
plugin-api = { package = "openclaw-plugin-api", path = "../plugin-api" }
"#;

const PLUGIN_SOURCE: &str = r#"//! A plugin built against another plugin-api version.
use plugin_api::abi::{Pcm16kMono, PluginError, TranscribeOptions, Transcript};
use plugin_api::sdk::{PluginDefinition, SpeechToText};

struct Nothing;

impl SpeechToText for Nothing {
    fn transcribe(&self, _: Pcm16kMono<'_>, _: &TranscribeOptions) -> Result<Transcript, PluginError> {
        Ok(Transcript::empty())
    }
}

fn definition() -> PluginDefinition {
    PluginDefinition::new("other-api", "0.1.0").speech_to_text(|_: &str| Ok(Nothing))
}

plugin_api::export_plugin!(definition);
"#;

/// Copies the `.rs` files under `from` (submodules' directories too) to `to`.
fn copy_sources(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read a plugin-api source directory") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().expect("a file name");
        if path.is_dir() {
            copy_sources(&path, &to.join(name));
        } else if path.extension().and_then(|e| e.to_str()) == Some("rs") {
            let text = std::fs::read_to_string(&path).expect("read a plugin-api source");
            write_if_changed(&to.join(name), &text);
        }
    }
}

/// Builds (once per test process) the plugin against the incompatible plugin-api; returns the
/// library and the version it was built against.
fn incompatible_plugin() -> &'static (PathBuf, String) {
    static BUILT: OnceLock<(PathBuf, String)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let version = next_breaking(API_VERSION);
        let base = profile_dir()
            .parent()
            .expect("the profile directory is inside the target directory")
            .join("incompatible-api");
        let ws = base.join("src");
        write_if_changed(
            &ws.join("Cargo.toml"),
            "[workspace]\nresolver = \"2\"\nmembers = [\"plugin-api\", \"plugin\"]\n",
        );
        write_if_changed(
            &ws.join("plugin-api/Cargo.toml"),
            &standalone_plugin_api_manifest(&version),
        );
        copy_sources(
            &workspace_root().join("plugin-api/src"),
            &ws.join("plugin-api/src"),
        );
        write_if_changed(&ws.join("plugin/Cargo.toml"), PLUGIN_MANIFEST);
        write_if_changed(&ws.join("plugin/src/lib.rs"), PLUGIN_SOURCE);
        // The workspace's lock file pins the same dependency versions, which are in the local
        // registry cache after `cargo build --workspace`: the build needs no network.
        let lock = std::fs::read_to_string(workspace_root().join("Cargo.lock"))
            .expect("read the workspace Cargo.lock");
        write_if_changed(&ws.join("Cargo.lock"), &lock);

        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let target = base.join("target");
        let output = Command::new(cargo)
            .args(["build", "--offline", "--quiet", "--manifest-path"])
            .arg(ws.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET_DIR")
            .output()
            .expect("run cargo");
        assert!(
            output.status.success(),
            "building the plugin against plugin-api {version} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let library = target.join("debug").join(format!(
            "{}openclaw_test_plugin_other_api{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ));
        assert!(library.is_file(), "{} was not built", library.display());
        (library, version)
    })
}

#[test]
fn host_library_refuses_a_plugin_built_against_another_api_version() {
    let (library, version) = incompatible_plugin();
    let dir = PluginDir::with(&[FAULT]);
    let copy = dir.add_as(library, library.file_name().expect("a file name"));

    let set = PluginSet::scan(dir.path()).expect("scan");
    assert!(set.plugins.contains_key("fault"), "{:?}", set.failures);
    assert!(!set.plugins.contains_key("other-api"));
    assert_eq!(set.failures.len(), 1, "{:?}", set.failures);
    let failure = &set.failures[0];
    assert_eq!(failure.path, copy);
    assert_eq!(
        failure.error,
        LoadError::IncompatibleApi {
            expected: API_VERSION.to_string(),
            found: version.clone(),
        }
    );
    let line = failure.to_string();
    assert!(
        line.contains(&format!("built against plugin-api {version}")),
        "{line}"
    );
    assert!(
        line.contains(&format!("this host uses {API_VERSION}")),
        "{line}"
    );
    assert!(!line.contains('\n'), "one line: {line}");
}

#[test]
fn plugins_list_reports_the_incompatible_plugin_and_lists_the_rest() {
    let (library, version) = incompatible_plugin();
    let dir = PluginDir::with(&[FAULT]);
    let copy = dir.add_as(library, library.file_name().expect("a file name"));

    let run = openclaw_voice(
        [
            OsStr::new("plugins"),
            OsStr::new("list"),
            OsStr::new("--dir"),
            dir.path().as_os_str(),
        ],
        &[],
    );
    assert_eq!(run.code, Some(3), "a refused file fails the command: {run}");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("fault ")),
        "{run}"
    );
    let expected = format!(
        "not loaded: {}: built against plugin-api {version}, but this host uses {API_VERSION}; \
         rebuild the plugin against plugin-api {API_VERSION}",
        copy.display()
    );
    assert!(
        run.stdout.lines().any(|l| l.trim() == expected),
        "expected the line `{expected}`:\n{run}"
    );
}
