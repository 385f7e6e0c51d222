//! Finding and loading plugin libraries.
//!
//! **Architecture Invariant:** libraries are opened with
//! `lib_header_from_path(..).init_root_module()`, never `RootModule::load_from_file`, which
//! caches one module per type (a second plugin would get the first). Libraries are never
//! unloaded. A library that fails to load is reported with its file and reason and skipped;
//! it never takes the host down.
//!
//! **Architecture Invariant (verified loading):** no byte of a plugin runs before it is
//! checked. The file is opened once; that descriptor is checked (a regular file, not writable
//! by group or others, nor is its directory), read through for the SHA-256 pin (streamed, never
//! held whole), its ELF headers checked (every loadable segment inside the file, so a
//! truncated library is refused instead of faulting the process with SIGBUS), and then that same descriptor is what `dlopen` maps
//! (`/proc/self/fd/N`): a file swapped after the check is never the one loaded. Descriptors of
//! loaded libraries stay open for the life of the process, so their `/proc/self/fd/N` names are
//! never reused for another file.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError};
use abi_stable::std_types::RStr;
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

/// Descriptors of every library mapped into this process, kept open for its life: `dlopen`
/// knows a library by the name it was opened with (`/proc/self/fd/N`), so a closed and reused
/// descriptor number would make it hand back the earlier library for another file.
static MAPPED: std::sync::Mutex<Vec<File>> = std::sync::Mutex::new(Vec::new());

fn keep_open(file: File) {
    match MAPPED.lock() {
        Ok(mut files) => files.push(file),
        Err(poisoned) => poisoned.into_inner().push(file),
    }
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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// The child process that inspected the file reported this.
    #[error("{0}")]
    Probe(String),
    /// No library in the plugin directory is named for the plugin.
    #[error("{0}")]
    NotFound(String),
    /// The file or its directory could be changed by someone else.
    #[error("refusing to load it: {0}")]
    Insecure(String),
    /// The file is an ELF library whose headers point past its end (truncated or corrupt).
    #[error("refusing to load it: {0}")]
    Corrupt(String),
    /// The plugin refused this host (it needs a newer plugin-api).
    #[error("the plugin refused this host: {0}")]
    Refused(String),
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
pub(crate) fn plugin_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
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

/// The library that holds plugin `name` in `dir`, found by file name alone, so that no
/// other library in the directory is ever opened: `lib<anything>plugin_<name>.so`, with the
/// name's hyphens as underscores (`local-whisper` → `libopenclaw_plugin_local_whisper.so`);
/// `libopenclaw_plugin_<name>.so` wins when several match.
pub(crate) fn library_for_plugin(dir: &Path, name: &str) -> Result<PathBuf, LoadError> {
    let files = plugin_files(dir).map_err(|e| {
        LoadError::NotFound(format!(
            "cannot read the plugin directory {} (`plugins.dir`): {e}",
            dir.display()
        ))
    })?;
    let wanted = format!("plugin_{}", name.replace('-', "_"));
    let preferred = format!("openclaw_{wanted}");
    let stem = |p: &Path| -> String {
        let s = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        s.strip_prefix(std::env::consts::DLL_PREFIX)
            .unwrap_or(s)
            .to_string()
    };
    let mut matches: Vec<&PathBuf> = files
        .iter()
        .filter(|p| stem(p).ends_with(&wanted))
        .collect();
    matches.sort_by_key(|p| (stem(p) != preferred, p.as_os_str().len()));
    match matches.first() {
        Some(path) => Ok((*path).clone()),
        None => {
            let names: Vec<String> = files
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            Err(LoadError::NotFound(format!(
                "no library for plugin `{name}` in {}: plugins are found by file name, \
                 {}…{wanted}{} (no other library there is opened); files there: {}",
                dir.display(),
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX,
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )))
        }
    }
}

/// The library of plugin `name` in the first of `dirs` that holds one (see
/// [`library_for_plugin`]); when none does, every directory's reason, in order.
pub(crate) fn library_in(dirs: &[PathBuf], name: &str) -> Result<PathBuf, LoadError> {
    let mut reasons = Vec::new();
    for dir in dirs {
        match library_for_plugin(dir, name) {
            Ok(path) => return Ok(path),
            Err(LoadError::NotFound(reason)) => reasons.push(reason),
            Err(other) => return Err(other),
        }
    }
    if reasons.is_empty() {
        return Err(LoadError::NotFound(format!(
            "no library for plugin `{name}`: no plugin directory is configured (`plugins.dir`)"
        )));
    }
    Err(LoadError::NotFound(reasons.join("; ")))
}

/// A library file opened once and checked through that descriptor.
struct VerifiedFile {
    file: File,
    sha256: String,
}

impl VerifiedFile {
    /// Opens `path` and checks it: permissions, the SHA-256 pin when given, the ELF headers.
    fn open(path: &Path, expected_sha256: Option<&str>) -> Result<VerifiedFile, LoadError> {
        let mut file = File::open(path).map_err(|e| LoadError::Io(e.to_string()))?;
        let meta = file.metadata().map_err(|e| LoadError::Io(e.to_string()))?;
        if !meta.is_file() {
            return Err(LoadError::Insecure("it is not a regular file".into()));
        }
        check_not_writable_by_others(path, &meta)?;
        // Streamed, not read whole: a library of 10-40 MB held in memory for the hash was the
        // peak of a plugin worker's resident memory (docs/BENCHMARKS.md, "Turn taking").
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher).map_err(|e| LoadError::Io(e.to_string()))?;
        let sha256 = hex::encode(hasher.finalize());
        if let Some(expected) = expected_sha256 {
            if !expected.eq_ignore_ascii_case(&sha256) {
                return Err(LoadError::HashMismatch {
                    expected: expected.to_ascii_lowercase(),
                    found: sha256,
                });
            }
        }
        check_elf(&file, meta.len())?;
        Ok(VerifiedFile { file, sha256 })
    }

    /// The name under which `dlopen` maps exactly this descriptor.
    fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }
}

/// Refuses a file, or a directory holding it, that group or others may write.
fn check_not_writable_by_others(path: &Path, meta: &std::fs::Metadata) -> Result<(), LoadError> {
    let writable = |mode: u32| mode & 0o022 != 0;
    if writable(meta.permissions().mode()) {
        return Err(LoadError::Insecure(format!(
            "the file is writable by group or others (mode {:o}); anyone who can write it can \
             run code in this process: `chmod go-w {}`",
            meta.mode() & 0o7777,
            path.display()
        )));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(dmeta) = std::fs::metadata(dir) {
        // A sticky, world-writable directory (like /tmp) still lets only the owner replace the
        // file; any other writable directory lets others swap it.
        let sticky = dmeta.mode() & 0o1000 != 0;
        if writable(dmeta.permissions().mode()) && !sticky {
            return Err(LoadError::Insecure(format!(
                "its directory {} is writable by group or others (mode {:o}), so the file can \
                 be replaced: `chmod go-w {}`",
                dir.display(),
                dmeta.mode() & 0o7777,
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Checks an ELF file's headers against its size before anything maps it: a truncated
/// library would otherwise fault (SIGBUS) inside `dlopen`. Files that are not ELF are left to
/// `dlopen`, which refuses them cleanly.
///
/// `file` is `len` bytes long; only the ELF header and the program headers are read.
fn check_elf(file: &File, len: u64) -> Result<(), LoadError> {
    let read_at = |offset: u64, size: u64| -> Result<Vec<u8>, LoadError> {
        let size = usize::try_from(size).map_err(|e| LoadError::Io(e.to_string()))?;
        let mut buf = vec![0u8; size];
        file.read_exact_at(&mut buf, offset)
            .map_err(|e| LoadError::Io(e.to_string()))?;
        Ok(buf)
    };
    let header = read_at(0, len.min(64))?;
    if header.len() < 4 || &header[..4] != b"\x7fELF" {
        return Ok(());
    }
    let corrupt = |what: String| {
        Err(LoadError::Corrupt(format!(
            "the ELF file is truncated or corrupt: {what} (the file has {len} bytes)"
        )))
    };
    if header.len() < 64 || header[4] != 2 || header[5] != 1 {
        return corrupt("not a complete 64-bit little-endian ELF header".into());
    }
    let (phoff, phentsize, phnum) = (
        le_u64(&header, 0x20),
        le_u16(&header, 0x36),
        le_u16(&header, 0x38),
    );
    let (shoff, shentsize, shnum) = (
        le_u64(&header, 0x28),
        le_u16(&header, 0x3a),
        le_u16(&header, 0x3c),
    );
    let ph_end = phoff.saturating_add(phentsize.saturating_mul(phnum));
    if phentsize < 56 || ph_end > len {
        return corrupt(format!("program headers end at byte {ph_end}"));
    }
    let sh_end = shoff.saturating_add(shentsize.saturating_mul(shnum));
    if sh_end > len {
        return corrupt(format!("section headers end at byte {sh_end}"));
    }
    let headers = read_at(phoff, ph_end - phoff)?;
    for i in 0..phnum {
        let at = (i * phentsize) as usize;
        let (kind, offset, filesz) = (
            le_u32(&headers, at),
            le_u64(&headers, at + 8),
            le_u64(&headers, at + 32),
        );
        // PT_LOAD (1) and PT_DYNAMIC (2) are mapped and read by the dynamic loader.
        if (kind == 1 || kind == 2) && offset.saturating_add(filesz) > len {
            return corrupt(format!(
                "segment {i} spans bytes {offset}..{}",
                offset.saturating_add(filesz)
            ));
        }
    }
    Ok(())
}

/// The little-endian integers at byte `at` of `bytes` (in bounds: callers read whole headers).
fn le_u16(bytes: &[u8], at: usize) -> u64 {
    u64::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Loads one plugin library, checking it first (see the module docs); `expected_sha256` pins
/// its hash.
pub(crate) fn load_plugin(
    path: &Path,
    expected_sha256: Option<&str>,
    host: HostContext,
) -> Result<LoadedPlugin, LoadError> {
    let verified = VerifiedFile::open(path, expected_sha256)?;
    let header = lib_header_from_path(&verified.proc_path());
    // Mapped or not, this descriptor number has been given to `dlopen`: never reuse it.
    let VerifiedFile { file, sha256 } = verified;
    keep_open(file);
    let header = header.map_err(map_library_error)?;
    // abi_stable's version check lets a plugin built against a newer 0.x plugin-api through to
    // the layout check, whose report is a page about package versions; say it plainly first.
    let built_against = header.version_strings().version.as_str();
    if !api_compatible(built_against, plugin_api::abi::API_VERSION) {
        return Err(LoadError::IncompatibleApi {
            expected: plugin_api::abi::API_VERSION.to_string(),
            found: built_against.to_string(),
        });
    }
    let module = init_root_module(header)?;
    (module.init())(host);
    // Plugins built against 0.1.1 or later wait for the host's version before describing
    // themselves; older ones have no `handshake` (the accessor says `None`).
    if let Some(handshake) = module.handshake() {
        handshake(RStr::from_str(plugin_api::abi::API_VERSION))
            .into_result()
            .map_err(|e| LoadError::Refused(e.message().to_string()))?;
    }
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
    Ok(LoadedPlugin {
        path: path.to_path_buf(),
        sha256,
        info: describe(&info),
        module,
    })
}

/// The plugin's root module, its layout checked against this host's in either direction.
///
/// abi_stable accepts a library whose prefix types (the root module, the trait vtables) have
/// at least the fields the host knows: a plugin *newer* than the host. A plugin *older* than
/// the host (built before a function or a method was appended) is refused by that check, yet
/// it is just as compatible: every field it has must match the host's in place and type (the
/// same check with the roles swapped), and the host reads appended fields through accessors
/// that consult the library's own field count (`None` for a module function, the trait's
/// default body for a method). Guarded by tests/tests/compat.rs, which loads a plugin built
/// against plugin-api 0.1.0 as released.
fn init_root_module(
    header: &abi_stable::library::LibHeader,
) -> Result<PluginModule_Ref, LoadError> {
    use abi_stable::StableAbi;
    let newer_or_same = header.init_root_module::<PluginModule_Ref>();
    let Err(LibraryError::AbiInstability(report)) = newer_or_same else {
        return newer_or_same.map_err(map_library_error);
    };
    let refused = || LoadError::LayoutMismatch(summarize(&report.to_string()));
    let library_layout = header.layout().ok_or_else(refused)?;
    abi_stable::abi_stability::abi_checking::check_layout_compatibility(
        library_layout,
        <PluginModule_Ref as StableAbi>::LAYOUT,
    )
    .map_err(|_| refused())?;
    // SAFETY: the layouts were checked just above, with the library as the older side.
    unsafe { header.init_root_module_with_unchecked_layout::<PluginModule_Ref>() }
        .map_err(map_library_error)
}

/// Host-side copy of what a plugin says of itself.
fn describe(info: &plugin_api::abi::PluginInfo) -> PluginDescription {
    let caps = &info.capabilities;
    PluginDescription {
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
    }
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
    emit_plugin_log(level, plugin.as_str(), target.as_str(), message.as_str());
}

/// One log record from a plugin (in this process or a worker), as a host `tracing` event.
pub(crate) fn emit_plugin_log(level: LogLevel, plugin: &str, target: &str, message: &str) {
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

extern "C" fn no_log(_: LogLevel, _: RStr<'_>, _: RStr<'_>, _: RStr<'_>) {}

/// A host context that drops plugin logs (a probe prints only its answer).
pub(crate) fn quiet_host_context() -> HostContext {
    HostContext {
        log: no_log,
        max_level: LogLevel::Error,
    }
}

/// The host context passed to plugins at load.
pub(crate) fn host_context() -> HostContext {
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

    /// A minimal ELF64 header whose one PT_LOAD segment spans `filesz` bytes from offset 0.
    fn elf_with_segment(filesz: u64, file_len: usize) -> Vec<u8> {
        let mut b = vec![0u8; file_len.max(120)];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        b[64..68].copy_from_slice(&1u32.to_le_bytes());
        b[64 + 32..64 + 40].copy_from_slice(&filesz.to_le_bytes());
        b.truncate(file_len.max(120));
        b
    }

    /// [`check_elf`] on a file holding `bytes`.
    fn check_bytes(bytes: &[u8]) -> Result<(), LoadError> {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, bytes).unwrap();
        check_elf(&file, bytes.len() as u64)
    }

    #[test]
    fn elf_segments_past_the_end_are_refused() {
        assert!(check_bytes(&elf_with_segment(100, 200)).is_ok());
        let err = check_bytes(&elf_with_segment(5000, 200)).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let err = check_bytes(&b"\x7fELF\x02\x01"[..]).unwrap_err();
        assert!(matches!(err, LoadError::Corrupt(_)), "{err}");
        assert!(check_bytes(b"not an elf").is_ok());
        assert!(check_bytes(b"").is_ok());
    }

    #[test]
    fn group_writable_files_and_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libw.so");
        std::fs::write(&path, "x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
        let err = load_plugin(&path, None, host_context()).unwrap_err();
        assert!(matches!(err, LoadError::Insecure(_)), "{err}");
        assert!(err.to_string().contains("chmod go-w"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = load_plugin(&path, None, host_context()).unwrap_err();
        assert!(err.to_string().contains("directory"), "{err}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
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
