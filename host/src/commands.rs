//! The subcommands, at the binary's edge: they load config and plugins, call into the
//! library, and print for humans. Errors here are `anyhow`, with context for the reader.
//! One module per command; what several share (loading the configuration, building a
//! session's providers, the ops start-up sequence in [`serving`]) is here.

mod check_config;
mod discord;
mod discord_speak;
mod plugins_list;
mod plugins_new;
mod run;
mod serving;
mod simulate;
pub mod wyoming;

pub use check_config::check_config;
pub use discord::{invite_url, register_commands};
pub use discord_speak::speak as discord_speak;
pub use plugins_list::plugins_list;
pub use plugins_new::{plugins_new, NewPlugin};
pub use run::run;
pub use simulate::{peak_rss_kb, simulate, simulate_inputs, SimulateInput};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;

use crate::agent::Agent;
use crate::cli::Cli;
use crate::config::{self, LoadedConfig};
use crate::ops::{Components, OpsState, TurnTaking};
use crate::pipeline::{SessionDeps, TurnModels};
use crate::plugins::{PluginSet, Providers};

/// Loads the configuration for the CLI's environment, with errors as one report.
pub(crate) fn load_config(cli: &Cli) -> anyhow::Result<LoadedConfig> {
    config::load(&cli.config_dir, &cli.env, std::env::vars()).map_err(|errors| {
        anyhow::Error::new(errors).context(format!(
            "the configuration is not usable (environment `{}`, config directory {})",
            cli.env,
            cli.config_dir.display()
        ))
    })
}

/// The plugin directories in search order: `plugins.dir`, then `plugins.dirs` (a relative
/// path from a file was made relative to that file's directory when it was read).
fn plugin_dirs(loaded: &LoadedConfig) -> Vec<PathBuf> {
    loaded.config.plugins.search_path()
}

/// Loads plugins and builds the providers and the agent for a session, and tells `ops`
/// (which then reports them and turns ready).
pub(crate) async fn build_session_deps(
    loaded: &LoadedConfig,
    ops: &Arc<OpsState>,
) -> anyhow::Result<SessionDeps> {
    let dirs = plugin_dirs(loaded);
    let set = PluginSet::load_for_config_in(&dirs, &loaded.config).await?;
    for failure in &set.failures {
        tracing::warn!("plugin not loaded: {failure}");
    }
    let providers = Providers::build(&set, &loaded.config).await;
    let problems: Vec<String> = providers
        .failures
        .iter()
        .map(|f| check_config::explain(loaded, f))
        .collect();
    for problem in &problems {
        tracing::error!("{problem}");
    }
    if providers.stt.is_empty() {
        bail!(
            "no speech-to-text provider could be started (stt.providers = {:?}): {}",
            loaded.config.stt.providers,
            problems.join("; ")
        );
    }
    if providers.tts.is_empty() {
        bail!(
            "no text-to-speech provider could be started (tts.providers = {:?}): {}",
            loaded.config.tts.providers,
            problems.join("; ")
        );
    }
    let agent = Agent::from_config(&loaded.config.agent)?;
    let models = load_turn_models(loaded)?;
    ops.set_components(Components {
        stt: providers.stt.clone(),
        tts: providers.tts.clone(),
        plugins: providers.plugin_infos(),
        agent_kind: Some(agent.kind()),
        turn_taking: Some(TurnTaking::of(&models)),
    });
    Ok(SessionDeps {
        stt: providers.stt,
        tts: providers.tts,
        agent,
        config: loaded.config.pipeline.clone(),
        voices: loaded.config.tts.voices.clone(),
        models,
    })
}

/// Loads the VAD and turn models `[pipeline]` asks for; warns once when they are not
/// installed and the fallback runs.
fn load_turn_models(loaded: &LoadedConfig) -> anyhow::Result<TurnModels> {
    let models = TurnModels::load(&loaded.config.pipeline).map_err(|e| {
        anyhow::anyhow!(
            "cannot load the turn-taking models: {e} (configuration: {})",
            config_files(loaded)
        )
    })?;
    if let Some(warning) = &models.warning {
        tracing::warn!("{warning}");
    }
    Ok(models)
}

pub(crate) fn config_files(loaded: &LoadedConfig) -> String {
    let files: Vec<String> = loaded
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    files.join(", ")
}

/// One line on the turn-taking models for `check-config`, or the problem.
pub(crate) fn describe_turn_models(loaded: &LoadedConfig) -> Result<String, String> {
    let models = TurnModels::load(&loaded.config.pipeline)
        .map_err(|e| format!("{e} (configuration: {})", config_files(loaded)))?;
    let vad = match &models.vad {
        Some(_) => "Silero VAD".to_string(),
        None => "energy gate".to_string(),
    };
    let turn = match &models.turn {
        Some(_) => "Smart Turn v3.2".to_string(),
        None => format!("{} ms silence", loaded.config.pipeline.silence_hangover_ms),
    };
    let mut line = format!("turn taking: {vad}, {turn}");
    if let Some(warning) = models.warning {
        line.push_str(&format!("\n  warning: {warning}"));
    }
    Ok(line)
}

/// Serving commands check their providers' health in the background (`/health` shows it);
/// a one-off `simulate` does not, so its providers see only its turns.
fn start_health_checks(loaded: &LoadedConfig, ops: &Arc<OpsState>) {
    ops.spawn_health_checks(Duration::from_millis(
        loaded.config.ops.health_check_interval_ms,
    ));
}
