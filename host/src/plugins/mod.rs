//! Plugins: finding the libraries the configuration uses (and only those), building the
//! configured providers from them in this process or in worker processes ([`worker`]),
//! settings validated by the plugin first, and failing over between them ([`failover`], with a
//! circuit breaker per provider: [`breaker`]).

pub mod backend;
pub(crate) mod breaker;
pub mod failover;
pub mod loader;
pub mod probe;
pub mod provider;
pub mod stats;
pub mod worker;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use abi_stable::std_types::RStr;
use plugin_api::abi::{PluginError, PluginModule_Ref, Role};

use crate::config::{Config, Isolation, ProviderConfig};
pub use backend::WorkerStatus;
use backend::{Constructor, RoleBackend};
pub use breaker::{
    Admission, BreakerConfig, CircuitBreaker, CircuitSnapshot, CircuitState, OpenReason, Transition,
};
pub use loader::{LoadError, LoadFailure, LoadedPlugin, PluginDescription};
pub use provider::{
    Audio, ProviderError, SpeechStream, SpeechToTextProvider, TextToSpeechProvider,
    TranscriptionStream,
};
pub use stats::{HealthAnswer, ProviderStats, StatsSnapshot};
use worker::{Setup, Worker, WorkerLauncher, WorkerSpec};

/// Plugin libraries: the ones a configuration uses ([`PluginSet::for_config`]), or every one
/// in a directory ([`PluginSet::scan`]), loaded or not.
#[derive(Debug, Default)]
pub struct PluginSet {
    /// The directory scanned (the first of [`dirs`](Self::dirs)).
    pub dir: PathBuf,
    /// Every directory searched, in order (`plugins.dir`, then `plugins.dirs`).
    pub dirs: Vec<PathBuf>,
    /// Plugins loaded into this process, by name.
    pub plugins: BTreeMap<String, LoadedPlugin>,
    /// Files that could not be loaded, with reasons.
    pub failures: Vec<LoadFailure>,
    /// The library file of each plugin the configuration uses, by name (found by file name;
    /// those used only by isolated providers are never opened here).
    pub isolated: BTreeMap<String, PathBuf>,
    /// Why a plugin the configuration uses could not be found or loaded, by plugin name.
    unavailable: BTreeMap<String, String>,
    /// How worker processes are started; `None`: this executable.
    launcher: Option<WorkerLauncher>,
    /// Set by [`PluginSet::scan`], which loads every library into this process: providers
    /// built from such a set run in-process, whatever their `isolation` says.
    all_in_process: bool,
}

/// Why the directory could not be scanned at all.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot read the plugin directory {dir} (`plugins.dir`): {reason}; build the plugins with \
     `cargo build --release` or point `plugins.dir` at the directory holding them"
)]
pub struct ScanError {
    /// The directory.
    pub dir: PathBuf,
    /// Why.
    pub reason: String,
}

impl PluginSet {
    /// Loads every library in `dir` into this process (benchmarks and tests that drive the
    /// ABI directly; the commands use [`for_config`](Self::for_config) and
    /// [`probe`](crate::plugins::probe)). Providers built from this set run in-process.
    /// Failures are collected, never fatal.
    pub fn scan(dir: &Path) -> Result<PluginSet, ScanError> {
        let files = loader::plugin_files(dir).map_err(|e| ScanError {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut set = PluginSet {
            dir: dir.to_path_buf(),
            dirs: vec![dir.to_path_buf()],
            all_in_process: true,
            ..Default::default()
        };
        let host = loader::host_context();
        for path in files {
            match loader::load_plugin(&path, None, host) {
                Ok(plugin) => {
                    if let Some(existing) = set.plugins.get(&plugin.info.name) {
                        set.failures.push(LoadFailure {
                            path: path.clone(),
                            error: LoadError::DuplicateName {
                                name: plugin.info.name.clone(),
                                other: existing.path.clone(),
                            },
                        });
                    } else {
                        tracing::debug!(
                            plugin = %plugin.info.name,
                            version = %plugin.info.version,
                            path = %path.display(),
                            "plugin loaded"
                        );
                        set.plugins.insert(plugin.info.name.clone(), plugin);
                    }
                }
                Err(error) => {
                    let failure = LoadFailure { path, error };
                    tracing::warn!("plugin not loaded: {failure}");
                    set.failures.push(failure);
                }
            }
        }
        Ok(set)
    }

    /// The libraries `config`'s providers use, and nothing else in the directory: plugins run
    /// in this process are loaded (hash-pinned before anything maps them); those run in
    /// worker processes are only located. A library that fails is recorded, never fatal.
    pub fn for_config(dir: &Path, config: &Config) -> PluginSet {
        Self::for_config_in(&[dir.to_path_buf()], config)
    }

    /// [`for_config`](Self::for_config) over several directories, searched in order: each
    /// plugin comes from the first directory holding its library.
    pub(crate) fn for_config_in(dirs: &[PathBuf], config: &Config) -> PluginSet {
        let mut set = PluginSet {
            dir: dirs.first().cloned().unwrap_or_default(),
            dirs: dirs.to_vec(),
            ..Default::default()
        };
        let host = loader::host_context();
        let ids = config.stt.providers.iter().chain(&config.tts.providers);
        for (id, cfg) in ids.filter_map(|id| config.providers.get(id).map(|c| (id, c))) {
            let name = cfg.plugin.as_deref().unwrap_or(id);
            if set.unavailable.contains_key(name) {
                continue;
            }
            let path = match set.isolated.get(name) {
                Some(path) => path.clone(),
                None => match loader::library_in(dirs, name) {
                    Ok(path) => {
                        set.isolated.insert(name.to_string(), path.clone());
                        path
                    }
                    Err(error) => {
                        set.fail(name, set.dir.clone(), error);
                        continue;
                    }
                },
            };
            if cfg.isolation == Isolation::Process || set.plugins.contains_key(name) {
                continue;
            }
            match loader::load_plugin(&path, cfg.sha256.as_deref(), host) {
                Ok(plugin) if plugin.info.name == name => {
                    set.plugins.insert(name.to_string(), plugin);
                }
                Ok(plugin) => {
                    let error = LoadError::Info(format!(
                        "the file is named for plugin `{name}` but holds plugin `{}`",
                        plugin.info.name
                    ));
                    set.fail(name, path, error);
                }
                Err(error) => set.fail(name, path, error),
            }
        }
        set
    }

    /// [`for_config`](Self::for_config) over several directories, in order, off the async
    /// runtime, within the longest `setup_timeout_ms` of the providers (a library whose
    /// initialiser hangs cannot hang the command; the loading thread is abandoned).
    pub(crate) async fn load_for_config_in(
        dirs: &[PathBuf],
        config: &Config,
    ) -> Result<PluginSet, ScanError> {
        let dir = dirs.first().cloned().unwrap_or_default();
        let limit = config
            .providers
            .values()
            .map(|p| p.setup_timeout_ms)
            .max()
            .unwrap_or(120_000);
        let (owned_dirs, owned) = (dirs.to_vec(), config.clone());
        let task =
            tokio::task::spawn_blocking(move || PluginSet::for_config_in(&owned_dirs, &owned));
        let fail = |reason: String| ScanError {
            dir: dir.clone(),
            reason,
        };
        match tokio::time::timeout(Duration::from_millis(limit), task).await {
            Ok(Ok(set)) => Ok(set),
            Ok(Err(e)) => Err(fail(format!("loading the plugins failed: {e}"))),
            Err(_) => Err(fail(format!(
                "loading the plugins did not finish within {limit} ms (the longest \
                 providers.<id>.setup_timeout_ms)"
            ))),
        }
    }

    fn fail(&mut self, name: &str, path: PathBuf, error: LoadError) {
        let failure = LoadFailure { path, error };
        self.unavailable
            .insert(name.to_string(), failure.to_string());
        self.failures.push(failure);
    }

    /// Starts worker processes with `launcher` instead of this executable (tests, benchmarks).
    pub fn with_launcher(mut self, launcher: WorkerLauncher) -> Self {
        self.launcher = Some(launcher);
        self
    }

    /// Where provider `cfg` runs with this set.
    fn isolation(&self, cfg: &ProviderConfig) -> Isolation {
        if self.all_in_process {
            Isolation::InProcess
        } else {
            cfg.isolation
        }
    }

    /// The directories searched, for messages: `a`, or `a, then b`.
    pub(crate) fn dirs_display(&self) -> String {
        if self.dirs.is_empty() {
            return self.dir.display().to_string();
        }
        let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        dirs.join(", then ")
    }

    fn names(&self) -> String {
        let names: Vec<&String> = self.plugins.keys().chain(self.isolated.keys()).collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    /// The plugin a provider block refers to, checked for role and hash.
    fn plugin_for(
        &self,
        id: &str,
        cfg: &ProviderConfig,
        role: Role,
    ) -> Result<&LoadedPlugin, ProviderSetupError> {
        let name = cfg.plugin.as_deref().unwrap_or(id);
        let fail = |reason: String| ProviderSetupError {
            provider: id.to_string(),
            reason,
        };
        if let Some(reason) = self.unavailable.get(name) {
            return Err(fail(format!("plugin `{name}`: {reason}")));
        }
        let plugin = self.plugins.get(name).ok_or_else(|| {
            let failed: Vec<String> = self.failures.iter().map(|f| f.to_string()).collect();
            let mut reason = format!(
                "uses plugin `{name}`, which is not among the plugins loaded from {} (loaded: {})",
                self.dirs_display(),
                self.names()
            );
            if !failed.is_empty() {
                reason.push_str(&format!("; failed to load: {}", failed.join("; ")));
            }
            fail(reason)
        })?;
        if !plugin.info.provides(role) {
            return Err(fail(format!(
                "plugin `{name}` ({}) does not provide {role}; it provides: {}",
                plugin.path.display(),
                plugin.info.provides.join(", ")
            )));
        }
        if let Some(expected) = &cfg.sha256 {
            if !expected.eq_ignore_ascii_case(&plugin.sha256) {
                return Err(fail(
                    LoadError::HashMismatch {
                        expected: expected.to_ascii_lowercase(),
                        found: plugin.sha256.clone(),
                    }
                    .to_string()
                        + &format!(" ({})", plugin.path.display()),
                ));
            }
        }
        Ok(plugin)
    }

    /// Asks the plugin behind `id` to check its settings, without building the provider (in
    /// a worker process when the provider is isolated: the library never loads here).
    pub(crate) async fn validate_provider(
        &self,
        id: &str,
        cfg: &ProviderConfig,
        role: Role,
    ) -> Result<(), ProviderSetupError> {
        if self.isolation(cfg) == Isolation::Process {
            let spec = self.worker_spec(id, cfg, role, true)?;
            return run_setup(id, "validate_config", cfg, move || {
                Worker::start(spec).map(|_| ())
            })
            .await;
        }
        let plugin = self.plugin_for(id, cfg, role)?;
        let module = plugin.module;
        let settings = settings_text(cfg);
        run_setup(id, "validate_config", cfg, move || {
            (module.validate_config())(role, RStr::from_str(&settings)).into_result()
        })
        .await
    }

    /// The library of the isolated plugin behind `id`, and what its worker needs.
    fn worker_spec(
        &self,
        id: &str,
        cfg: &ProviderConfig,
        role: Role,
        validate_only: bool,
    ) -> Result<WorkerSpec, ProviderSetupError> {
        let fail = |reason: String| ProviderSetupError {
            provider: id.to_string(),
            reason,
        };
        let name = cfg.plugin.as_deref().unwrap_or(id);
        let library = self
            .isolated
            .get(name)
            .ok_or_else(|| match self.unavailable.get(name) {
                Some(reason) => fail(format!("plugin `{name}`: {reason}")),
                None => fail(format!(
                    "uses plugin `{name}`, which was not located in {}",
                    self.dirs_display()
                )),
            })?;
        let launcher = match &self.launcher {
            Some(l) => l.clone(),
            None => WorkerLauncher::current_exe().map_err(|e| {
                fail(format!(
                    "cannot find this executable to start a worker: {e}"
                ))
            })?,
        };
        Ok(WorkerSpec {
            launcher,
            setup: Setup {
                provider: id.to_string(),
                library: library.display().to_string(),
                sha256: cfg.sha256.clone(),
                role,
                settings: settings_text(cfg),
                max_level: loader::host_context().max_level as u8,
                validate_only,
                expect_plugin: name.to_string(),
            },
            setup_timeout: Duration::from_millis(cfg.setup_timeout_ms),
            memory_limit_mb: cfg.memory_limit_mb,
        })
    }

    /// Starts the worker of an isolated provider (setup runs there, within the setup timeout).
    async fn start_worker(
        &self,
        id: &str,
        cfg: &ProviderConfig,
        role: Role,
    ) -> Result<(Arc<Worker>, PluginDescription), ProviderSetupError> {
        let spec = self.worker_spec(id, cfg, role, false)?;
        let what = match role {
            Role::SpeechToText => "new_stt",
            Role::TextToSpeech => "new_tts",
        };
        run_setup(id, what, cfg, move || Worker::start(spec)).await
    }

    /// Checks the settings, then builds a provider in this process through the plugin
    /// constructor `new`.
    async fn construct<T: Send + 'static>(
        &self,
        id: &str,
        cfg: &ProviderConfig,
        role: Role,
        constructor: fn(PluginModule_Ref) -> Constructor<T>,
    ) -> Result<(T, PluginDescription), ProviderSetupError> {
        self.validate_provider(id, cfg, role).await?;
        let plugin = self.plugin_for(id, cfg, role)?;
        let module = plugin.module;
        let settings = settings_text(cfg);
        let what = match role {
            Role::SpeechToText => "new_stt",
            Role::TextToSpeech => "new_tts",
        };
        let inner = run_setup(id, what, cfg, move || {
            constructor(module)(RStr::from_str(&settings)).into_result()
        })
        .await?;
        Ok((inner, plugin.info.clone()))
    }

    /// Builds the speech-to-text provider `id`.
    pub async fn build_stt(
        &self,
        id: &str,
        cfg: &ProviderConfig,
    ) -> Result<SpeechToTextProvider, ProviderSetupError> {
        let (inner, plugin) = self.backend(id, cfg).await?;
        Ok(SpeechToTextProvider::new(id, plugin, inner, cfg))
    }

    /// Builds the text-to-speech provider `id`.
    pub async fn build_tts(
        &self,
        id: &str,
        cfg: &ProviderConfig,
    ) -> Result<TextToSpeechProvider, ProviderSetupError> {
        let (inner, plugin) = self.backend(id, cfg).await?;
        Ok(TextToSpeechProvider::new(id, plugin, inner, cfg))
    }

    /// Starts the provider `id`'s backend: its worker process, or its library in this process,
    /// as `cfg.isolation` says.
    async fn backend<B: RoleBackend>(
        &self,
        id: &str,
        cfg: &ProviderConfig,
    ) -> Result<(B, PluginDescription), ProviderSetupError> {
        Ok(match self.isolation(cfg) {
            Isolation::Process => {
                let (worker, name) = self.start_worker(id, cfg, B::ROLE).await?;
                (B::worker(worker), name)
            }
            Isolation::InProcess => {
                let (boxed, name) = self.construct(id, cfg, B::ROLE, B::constructor).await?;
                (B::in_process(boxed), name)
            }
        })
    }
}

/// A provider that could not be set up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("provider `{provider}`: {reason}")]
pub struct ProviderSetupError {
    /// Provider id.
    pub provider: String,
    /// Why.
    pub reason: String,
}

fn settings_text(cfg: &ProviderConfig) -> String {
    toml::to_string(&cfg.settings).unwrap_or_default()
}

async fn run_setup<T: Send + 'static>(
    id: &str,
    what: &str,
    cfg: &ProviderConfig,
    f: impl FnOnce() -> Result<T, PluginError> + Send + 'static,
) -> Result<T, ProviderSetupError> {
    // A worker enforces the limit itself (and kills the process); this bound is the backstop.
    let limit = Duration::from_millis(cfg.setup_timeout_ms) + Duration::from_millis(500);
    let task = tokio::task::spawn_blocking(f);
    let fail = |reason: String| ProviderSetupError {
        provider: id.to_string(),
        reason,
    };
    match tokio::time::timeout(limit, task).await {
        Err(_) => Err(fail(format!(
            "{what} did not finish within {} ms (providers.{id}.setup_timeout_ms)",
            cfg.setup_timeout_ms
        ))),
        Ok(Err(join)) => Err(fail(format!("{what} failed: {join}"))),
        Ok(Ok(Err(e))) => Err(fail(e.to_string())),
        Ok(Ok(Ok(v))) => Ok(v),
    }
}

fn missing_block(id: &str) -> ProviderSetupError {
    ProviderSetupError {
        provider: id.to_string(),
        reason: format!("is listed but has no [providers.{id}] block"),
    }
}

/// The providers the configuration selects, in failover order.
#[derive(Default)]
pub struct Providers {
    /// Speech-to-text providers that were built.
    pub stt: Vec<Arc<SpeechToTextProvider>>,
    /// Text-to-speech providers that were built.
    pub tts: Vec<Arc<TextToSpeechProvider>>,
    /// Providers that could not be built.
    pub failures: Vec<ProviderSetupError>,
}

impl Providers {
    /// What the plugins behind the built providers say of themselves, one entry per plugin.
    pub(crate) fn plugin_infos(&self) -> Vec<PluginDescription> {
        let mut by_name = BTreeMap::new();
        let infos = self.stt.iter().map(|p| p.plugin_info());
        for info in infos.chain(self.tts.iter().map(|p| p.plugin_info())) {
            by_name
                .entry(info.name.clone())
                .or_insert_with(|| info.clone());
        }
        by_name.into_values().collect()
    }

    /// Builds every provider the configuration lists. Failures are collected.
    pub async fn build(set: &PluginSet, config: &Config) -> Providers {
        let mut out = Providers::default();
        for id in &config.stt.providers {
            let Some(cfg) = config.providers.get(id) else {
                out.failures.push(missing_block(id));
                continue;
            };
            match set.build_stt(id, cfg).await {
                Ok(p) => out.stt.push(Arc::new(p)),
                Err(e) => out.failures.push(e),
            }
        }
        for id in &config.tts.providers {
            let Some(cfg) = config.providers.get(id) else {
                out.failures.push(missing_block(id));
                continue;
            };
            match set.build_tts(id, cfg).await {
                Ok(p) => out.tts.push(Arc::new(p)),
                Err(e) => out.failures.push(e),
            }
        }
        out
    }
}
