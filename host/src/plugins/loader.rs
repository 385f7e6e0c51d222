//! Finding and loading plugin libraries.
//!
//! **Architecture Invariant:** libraries are opened with
//! `lib_header_from_path(..).init_root_module()`, never `RootModule::load_from_file`, which
//! caches one module per type (a second plugin would get the first). Libraries are never
//! unloaded. A library that fails to load is reported with its file and reason and skipped;
//! it never takes the host down.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError};
use plugin_api::abi::{HostContext, LogLevel, PluginModule_Ref, Role};
use sha2::{Digest, Sha256};

/// A loaded plugin library.
#[derive(Clone)]
pub struct LoadedPlugin {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// What the plugin says of itself.
    pub info: PluginDescription,
    /// Its root module.
    pub(crate) module: PluginModule_Ref,
}

impl LoadedPlugin {
    /// The plugin's root module, for code that drives the ABI itself (benchmarks, tests).
    /// Everything else goes through [`PluginSet::build_stt`](super::PluginSet::build_stt) and
    /// friends, whose handles run each call off the async threads under a timeout.
    pub fn module(&self) -> PluginModule_Ref {
        self.module
    }
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish()
    }
}

/// Host-side copy of `PluginInfo`, in plain Rust types.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PluginDescription {
    /// Unique name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// One line.
    pub description: String,
    /// plugin-api version it was built with.
    pub api_version: String,
    /// Roles it can fill (`stt`, `tts`).
    pub provides: Vec<String>,
    /// Languages, if it says.
    pub languages: Vec<String>,
    /// Whether it streams.
    pub streaming: bool,
    /// Sample rates, if it says.
    pub sample_rates: Vec<u32>,
    /// Voices, if it says.
    pub voices: Vec<String>,
}

impl PluginDescription {
    /// Whether the plugin can fill `role`.
    pub fn provides(&self, role: Role) -> bool {
        self.provides.iter().any(|r| r == role.as_str())
    }
}

/// Why a library could not be loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be opened as a shared library.
    #[error("not a loadable shared library: {0}")]
    Open(String),
    /// It is a library, but not an OpenClaw Voice plugin.
    #[error("not an OpenClaw Voice plugin: it has no abi_stable root module symbol")]
    MissingSymbol,
    /// Built with an abi_stable version this host cannot read.
    #[error("built with an incompatible abi_stable version: {0}")]
    IncompatibleAbiStable(String),
    /// Built against another plugin-api version.
    #[error(
        "built against plugin-api {found}, but this host uses {expected}; rebuild the plugin \
         against plugin-api {expected}"
    )]
    IncompatibleApi {
        /// The host's plugin-api version.
        expected: String,
        /// The plugin's.
        found: String,
    },
    /// The type layouts differ although the versions match.
    #[error("its ABI layout does not match this host's plugin-api: {0}")]
    LayoutMismatch(String),
    /// The plugin's own code failed while describing itself.
    #[error("the plugin failed to describe itself: {0}")]
    Info(String),
    /// The file's hash is not the configured one.
    #[error(
        "SHA-256 mismatch: config expects {expected}, the file is {found}; refusing to load it"
    )]
    HashMismatch {
        /// The configured hash.
        expected: String,
        /// The file's.
        found: String,
    },
    /// Reading the file failed.
    #[error("cannot read the file: {0}")]
    Io(String),
    /// Another library already has this name.
    #[error("another plugin named `{name}` is already loaded from {other}; remove one of them")]
    DuplicateName {
        /// The name.
        name: String,
        /// The file that was loaded first.
        other: PathBuf,
    },
}

/// A library that could not be loaded.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub error: LoadError,
}

impl fmt::Display for LoadFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

/// The plugin files in `dir` (by the platform's library extension), sorted by name.
pub fn plugin_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file()
            && path.extension().and_then(|e| e.to_str()) == Some(std::env::consts::DLL_EXTENSION)
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Loads one plugin library, checking its hash first when `expected_sha256` is given.
pub fn load_plugin(
    path: &Path,
    expected_sha256: Option<&str>,
    host: HostContext,
) -> Result<LoadedPlugin, LoadError> {
    let sha256 = sha256_file(path).map_err(|e| LoadError::Io(e.to_string()))?;
    if let Some(expected) = expected_sha256 {
        if !expected.eq_ignore_ascii_case(&sha256) {
            return Err(LoadError::HashMismatch {
                expected: expected.to_ascii_lowercase(),
                found: sha256,
            });
        }
    }
    let header = lib_header_from_path(path).map_err(map_library_error)?;
    // abi_stable's version check lets a plugin built against a newer 0.x plugin-api through to
    // the layout check, whose report is a page about package versions; say it plainly first.
    let built_against = header.version_strings().version.as_str();
    if !api_compatible(built_against, plugin_api::abi::API_VERSION) {
        return Err(LoadError::IncompatibleApi {
            expected: plugin_api::abi::API_VERSION.to_string(),
            found: built_against.to_string(),
        });
    }
    let module = header
        .init_root_module::<PluginModule_Ref>()
        .map_err(map_library_error)?;
    (module.init())(host);
    let info = (module.info())()
        .into_result()
        .map_err(|e| LoadError::Info(e.to_string()))?;
    if info.api_version.as_str() != plugin_api::abi::API_VERSION
        && !api_compatible(info.api_version.as_str(), plugin_api::abi::API_VERSION)
    {
        return Err(LoadError::IncompatibleApi {
            expected: plugin_api::abi::API_VERSION.to_string(),
            found: info.api_version.to_string(),
        });
    }
    let caps = &info.capabilities;
    let description = PluginDescription {
        name: info.name.to_string(),
        version: info.version.to_string(),
        description: info.description.to_string(),
        api_version: info.api_version.to_string(),
        provides: info
            .provides
            .iter()
            .map(|r| r.as_str().to_string())
            .collect(),
        languages: caps.languages.iter().map(|s| s.to_string()).collect(),
        streaming: caps.streaming,
        sample_rates: caps.sample_rates.to_vec(),
        voices: caps.voices.iter().map(|s| s.to_string()).collect(),
    };
    Ok(LoadedPlugin {
        path: path.to_path_buf(),
        sha256,
        info: description,
        module,
    })
}

/// Semver compatibility as abi_stable applies it: same major, and same minor while major is 0.
fn api_compatible(plugin: &str, host: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut it = v.split('.');
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    match (parse(plugin), parse(host)) {
        (Some((pm, pn)), Some((hm, hn))) => pm == hm && (hm != 0 || pn == hn),
        _ => false,
    }
}

fn map_library_error(e: LibraryError) -> LoadError {
    match e {
        LibraryError::OpenError { err, .. } => LoadError::Open(one_line(&err.to_string())),
        LibraryError::GetSymbolError { .. } => LoadError::MissingSymbol,
        LibraryError::ParseVersionError(e) => LoadError::IncompatibleApi {
            expected: plugin_api::abi::API_VERSION.to_string(),
            found: format!("an unreadable version ({e})"),
        },
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => LoadError::IncompatibleApi {
            expected: expected_version.to_string(),
            found: actual_version.to_string(),
        },
        LibraryError::RootModule { err, .. } => LoadError::Info(one_line(&err.to_string())),
        LibraryError::AbiInstability(e) => LoadError::LayoutMismatch(summarize(&e.to_string())),
        LibraryError::InvalidAbiHeader(h) => {
            LoadError::IncompatibleAbiStable(one_line(&format!("{h:?}")))
        }
        LibraryError::InvalidCAbi { expected, found } => LoadError::IncompatibleAbiStable(format!(
            "C ABI check failed (expected {expected}, found {found})"
        )),
        LibraryError::Many(errors) => errors
            .into_iter()
            .next()
            .map(map_library_error)
            .unwrap_or_else(|| LoadError::Open("unknown abi_stable error".into())),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// abi_stable's layout reports are pages long; keep the first lines that say what differs.
fn summarize(s: &str) -> String {
    let text = one_line(s);
    if text.len() > 300 {
        let mut end = 300;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!(
            "{}… (run with LOG_LEVEL=debug for the full report)",
            &text[..end]
        )
    } else {
        text
    }
}

/// The log callback handed to every plugin: records become host `tracing` events.
pub extern "C" fn plugin_log(
    level: LogLevel,
    plugin: abi_stable::std_types::RStr<'_>,
    target: abi_stable::std_types::RStr<'_>,
    message: abi_stable::std_types::RStr<'_>,
) {
    let (plugin, target, message) = (plugin.as_str(), target.as_str(), message.as_str());
    match level {
        LogLevel::Error => {
            tracing::error!(target: "plugin", plugin, plugin_target = target, "{message}")
        }
        LogLevel::Warn => {
            tracing::warn!(target: "plugin", plugin, plugin_target = target, "{message}")
        }
        LogLevel::Info => {
            tracing::info!(target: "plugin", plugin, plugin_target = target, "{message}")
        }
        LogLevel::Debug => {
            tracing::debug!(target: "plugin", plugin, plugin_target = target, "{message}")
        }
        LogLevel::Trace => {
            tracing::trace!(target: "plugin", plugin, plugin_target = target, "{message}")
        }
    }
}

/// The host context passed to plugins at load.
pub fn host_context() -> HostContext {
    let max_level = match tracing::level_filters::LevelFilter::current() {
        f if f >= tracing::level_filters::LevelFilter::TRACE => LogLevel::Trace,
        f if f >= tracing::level_filters::LevelFilter::DEBUG => LogLevel::Debug,
        f if f >= tracing::level_filters::LevelFilter::INFO => LogLevel::Info,
        f if f >= tracing::level_filters::LevelFilter::WARN => LogLevel::Warn,
        _ => LogLevel::Error,
    };
    HostContext {
        log: plugin_log,
        max_level,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_compatibility_follows_semver() {
        assert!(api_compatible("0.1.3", "0.1.0"));
        assert!(!api_compatible("0.2.0", "0.1.0"));
        assert!(api_compatible("1.4.0", "1.0.0"));
        assert!(!api_compatible("2.0.0", "1.0.0"));
        assert!(!api_compatible("garbage", "0.1.0"));
    }

    #[test]
    fn a_text_file_is_not_a_library() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libfake.so");
        std::fs::write(&path, "not an ELF file").unwrap();
        let err = load_plugin(&path, None, host_context()).unwrap_err();
        assert!(matches!(err, LoadError::Open(_)), "{err}");
    }

    #[test]
    fn hash_mismatch_is_refused_before_opening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libx.so");
        std::fs::write(&path, "x").unwrap();
        let err = load_plugin(&path, Some(&"0".repeat(64)), host_context()).unwrap_err();
        assert!(matches!(err, LoadError::HashMismatch { .. }), "{err}");
        assert!(err.to_string().contains("refusing"));
    }
}
