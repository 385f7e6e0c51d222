//! `plugins new NAME --stt|--tts [--path DIR] [--api-path DIR]`: scaffolds a plugin crate that
//! builds and passes its tests as generated: `Cargo.toml` (a `cdylib` named so the host finds
//! it, the plugin API as a dependency), `src/lib.rs` (settings, a minimal provider, tests with
//! the SDK's test kit) and a README saying how to build and configure it.
//!
//! The API dependency is a `path` to a checkout's `plugin-api` when there is one (`--api-path`,
//! else the checkout this binary was built from, when it still exists), and otherwise the
//! released crate from the project's repository (`git` with a `version` requirement).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

const CARGO_TOML: &str = include_str!("../../templates/plugin/Cargo.toml.in");
const STT_LIB: &str = include_str!("../../templates/plugin/stt.rs");
const TTS_LIB: &str = include_str!("../../templates/plugin/tts.rs");
const README: &str = include_str!("../../templates/plugin/README.md");

/// Where the released API comes from until it is on crates.io.
const API_REPOSITORY: &str = "https://github.com/openclaw/openclaw-voice";

/// What `plugins new` was asked for.
#[derive(Debug, Clone)]
pub struct NewPlugin {
    /// The plugin's name (what `[providers.<id>] plugin = "…"` refers to).
    pub name: String,
    /// Speech-to-text (`true`) or text-to-speech.
    pub stt: bool,
    /// The crate's directory; default `./<name>`.
    pub path: Option<PathBuf>,
    /// A checkout's `plugin-api` directory to depend on by path.
    pub api_path: Option<PathBuf>,
}

/// `plugins new`.
pub fn plugins_new(request: &NewPlugin) -> anyhow::Result<ExitCode> {
    check_name(&request.name)?;
    let dir = request
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(&request.name));
    if dir.exists()
        && dir
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} already exists and is not empty: choose another `--path`",
            dir.display()
        );
    }
    let (dependency, kind) = dependency_line(request.api_path.as_deref())?;
    let files = render(request, &dependency, &kind);
    for (file, text) in &files {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "created plugin `{}` ({}) in {}",
        request.name,
        if request.stt {
            "speech-to-text"
        } else {
            "text-to-speech"
        },
        dir.display()
    );
    println!("  plugin API: {kind}");
    println!("next:");
    println!(
        "  cd {} && cargo test && cargo build --release",
        dir.display()
    );
    println!(
        "  then add {} to `[plugins] dirs` and the provider to your configuration (README.md)",
        dir.join("target/release").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A name the host can find by file name: lower-case letters, digits and hyphens.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "`{name}` is not a plugin name: use lower-case letters, digits and hyphens, \
             starting with a letter (e.g. `my-whisper`)"
        );
    }
    Ok(())
}

/// The `[dependencies]` line for the plugin API, and how it was chosen (for the user).
fn dependency_line(api_path: Option<&Path>) -> anyhow::Result<(String, String)> {
    let local = match api_path {
        Some(path) => {
            let manifest = path.join("Cargo.toml");
            let text = std::fs::read_to_string(&manifest).with_context(|| {
                format!(
                    "--api-path {}: cannot read {}",
                    path.display(),
                    manifest.display()
                )
            })?;
            if !text.contains("name = \"openclaw-plugin-api\"") {
                bail!(
                    "--api-path {}: {} is not openclaw-plugin-api's manifest",
                    path.display(),
                    manifest.display()
                );
            }
            Some(path.to_path_buf())
        }
        None => build_checkout_api(),
    };
    Ok(match local {
        Some(path) => {
            let path = std::path::absolute(&path).unwrap_or(path);
            (
                format!(
                    "plugin-api = {{ package = \"openclaw-plugin-api\", path = {} }}",
                    toml::Value::String(path.display().to_string())
                ),
                format!("path, the checkout at {}", path.display()),
            )
        }
        None => (
            format!(
                "plugin-api = {{ package = \"openclaw-plugin-api\", git = \"{API_REPOSITORY}\", \
                 version = \"{}\" }}",
                plugin_api::abi::API_VERSION
            ),
            format!(
                "git, {API_REPOSITORY} (version {})",
                plugin_api::abi::API_VERSION
            ),
        ),
    })
}

/// The `plugin-api` directory of the checkout this binary was built from, if it is still there.
fn build_checkout_api() -> Option<PathBuf> {
    let host = Path::new(env!("CARGO_MANIFEST_DIR"));
    let api = host.parent()?.join("plugin-api");
    api.join("Cargo.toml").is_file().then_some(api)
}

/// Every file of the new crate, by path relative to its directory.
fn render(request: &NewPlugin, dependency: &str, kind: &str) -> Vec<(&'static str, String)> {
    let lib = format!("openclaw_plugin_{}", request.name.replace('-', "_"));
    let (role, role_words, source, description) = if request.stt {
        (
            "stt",
            "speech-to-text",
            STT_LIB,
            "Transcribes each utterance as its length",
        )
    } else {
        ("tts", "text-to-speech", TTS_LIB, "Speaks one beep per word")
    };
    let dependency_kind = kind.split(',').next().unwrap_or(kind);
    let fill = |template: &str| {
        template
            .replace("{{name}}", &request.name)
            .replace("{{crate}}", &format!("openclaw-plugin-{}", request.name))
            .replace("{{lib}}", &lib)
            .replace("{{dependency}}", dependency)
            .replace("{{dependency_kind}}", dependency_kind)
            .replace("{{description}}", description)
            .replace("{{role}}", role)
            .replace("{{role_words}}", role_words)
            .replace("{{api_version}}", plugin_api::abi::API_VERSION)
            .replace("{{release_dir}}", "path/to/this/crate/target/release")
    };
    vec![
        ("Cargo.toml", fill(CARGO_TOML)),
        ("src/lib.rs", fill(source)),
        ("README.md", fill(README)),
        (".gitignore", "/target\n".to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("my-whisper2").is_ok());
        for bad in ["", "My", "2fast", "a_b", "a-", "a b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        for stt in [true, false] {
            let request = NewPlugin {
                name: "my-plugin".into(),
                stt,
                path: None,
                api_path: None,
            };
            for (file, text) in render(&request, "plugin-api = \"x\"", "path, x") {
                assert!(!text.contains("{{"), "{file}: {text}");
            }
        }
    }

    #[test]
    fn the_checkout_api_is_a_path_dependency_and_a_wrong_one_is_refused() {
        let api = build_checkout_api().expect("built from a checkout");
        let (line, kind) = dependency_line(Some(&api)).unwrap();
        assert!(
            line.contains("path = ") && kind.starts_with("path"),
            "{line}"
        );
        let elsewhere = tempfile::tempdir().unwrap();
        assert!(dependency_line(Some(elsewhere.path())).is_err());
    }
}
