//! Plugins: loading libraries from the plugin directory, building the configured providers
//! from them (settings validated by the plugin first), and failing over between them
//! ([`failover`], with a circuit breaker per provider: [`breaker`]).

pub mod breaker;
pub mod failover;
pub mod loader;
pub mod provider;
pub mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use abi_stable::std_types::{RResult, RStr};
use plugin_api::abi::{PluginError, PluginModule_Ref, Role};

use crate::config::{Config, ProviderConfig};
pub use breaker::{
    Admission, BreakerConfig, CircuitBreaker, CircuitSnapshot, CircuitState, OpenReason, Transition,
};
pub use loader::{LoadError, LoadFailure, LoadedPlugin, PluginDescription};
pub use provider::{
    Audio, ProviderError, SpeechStream, SpeechToTextProvider, TextToSpeechProvider,
};
pub use stats::{ProviderStats, StatsSnapshot};

/// Time allowed for a plugin to check settings or build a provider (a model load).
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Every plugin library found in a directory, loaded or not.
#[derive(Debug, Default)]
pub struct PluginSet {
    /// The directory scanned.
    pub dir: PathBuf,
    /// Loaded plugins, by name.
    pub plugins: BTreeMap<String, LoadedPlugin>,
    /// Files that could not be loaded, with reasons.
    pub failures: Vec<LoadFailure>,
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
    /// Loads every library in `dir`. Failures are collected, never fatal.
    pub fn scan(dir: &Path) -> Result<PluginSet, ScanError> {
        let files = loader::plugin_files(dir).map_err(|e| ScanError {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut set = PluginSet {
            dir: dir.to_path_buf(),
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

    fn names(&self) -> String {
        if self.plugins.is_empty() {
            "none".to_string()
        } else {
            self.plugins.keys().cloned().collect::<Vec<_>>().join(", ")
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
        let plugin = self.plugins.get(name).ok_or_else(|| {
            let failed: Vec<String> = self.failures.iter().map(|f| f.to_string()).collect();
            let mut reason = format!(
                "uses plugin `{name}`, which is not among the plugins loaded from {} (loaded: {})",
                self.dir.display(),
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

    /// Asks the plugin behind `id` to check its settings, without building the provider.
    pub async fn validate_provider(
        &self,
        id: &str,
        cfg: &ProviderConfig,
        role: Role,
    ) -> Result<(), ProviderSetupError> {
        let plugin = self.plugin_for(id, cfg, role)?;
        let module = plugin.module;
        let settings = settings_text(cfg);
        run_setup(id, "validate_config", move || {
            (module.validate_config())(role, RStr::from_str(&settings)).into_result()
        })
        .await
    }

    /// Checks the settings, then builds a provider through the plugin constructor `new`.
    async fn construct<T: Send + 'static>(
        &self,
        id: &str,
        cfg: &ProviderConfig,
        role: Role,
        new: fn(PluginModule_Ref, RStr<'_>) -> RResult<T, PluginError>,
    ) -> Result<(T, String), ProviderSetupError> {
        self.validate_provider(id, cfg, role).await?;
        let plugin = self.plugin_for(id, cfg, role)?;
        let module = plugin.module;
        let settings = settings_text(cfg);
        let what = match role {
            Role::SpeechToText => "new_stt",
            Role::TextToSpeech => "new_tts",
        };
        let inner = run_setup(id, what, move || {
            new(module, RStr::from_str(&settings)).into_result()
        })
        .await?;
        Ok((inner, plugin.info.name.clone()))
    }

    /// Builds the speech-to-text provider `id`.
    pub async fn build_stt(
        &self,
        id: &str,
        cfg: &ProviderConfig,
    ) -> Result<SpeechToTextProvider, ProviderSetupError> {
        let (inner, plugin) = self
            .construct(id, cfg, Role::SpeechToText, |m, s| (m.new_stt())(s))
            .await?;
        Ok(SpeechToTextProvider::new(
            id.to_string(),
            plugin,
            inner,
            Duration::from_millis(cfg.timeout_ms),
            cfg.max_concurrent_calls,
            cfg.circuit.into(),
        ))
    }

    /// Builds the text-to-speech provider `id`.
    pub async fn build_tts(
        &self,
        id: &str,
        cfg: &ProviderConfig,
    ) -> Result<TextToSpeechProvider, ProviderSetupError> {
        let (inner, plugin) = self
            .construct(id, cfg, Role::TextToSpeech, |m, s| (m.new_tts())(s))
            .await?;
        Ok(TextToSpeechProvider::new(
            id.to_string(),
            plugin,
            inner,
            Duration::from_millis(cfg.timeout_ms),
            cfg.max_concurrent_calls,
            cfg.circuit.into(),
        ))
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
    f: impl FnOnce() -> Result<T, PluginError> + Send + 'static,
) -> Result<T, ProviderSetupError> {
    let task = tokio::task::spawn_blocking(f);
    let fail = |reason: String| ProviderSetupError {
        provider: id.to_string(),
        reason,
    };
    match tokio::time::timeout(SETUP_TIMEOUT, task).await {
        Err(_) => Err(fail(format!(
            "{what} did not finish within {} s",
            SETUP_TIMEOUT.as_secs()
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
