//! `run`: the bot connected to Discord, or headless (`discord.enabled = false`: the ops
//! endpoints only), until SIGTERM/SIGINT; and the adapter that tells the ops endpoints what
//! the bot does.

use std::process::ExitCode;
use std::sync::Arc;

use super::load_config;
use super::serving::Serving;
use crate::cli::Cli;
use crate::config::{self, LoadedConfig};
use crate::ops::{GatewayStatus, OpsState};
use crate::pipeline::TurnReport;
use crate::telemetry;
use crate::voice::discord;

/// `run`. With `discord.enabled = false` it runs headless: providers built, the ops endpoints
/// served (`/ready` turns 200 once the providers are up) until SIGTERM/SIGINT.
pub async fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let loaded = load_config(cli)?;
    telemetry::init(&loaded);
    let discord = &loaded.config.discord;
    let blockers = loaded.run_problems();
    if !blockers.is_empty() {
        return Err(config::ConfigErrors(blockers).into());
    }
    if discord.enabled {
        return run_discord(&loaded).await;
    }
    let serving = Serving::start(&loaded).await?;
    serving.ops.set_gateway(GatewayStatus::Disabled);
    let deps = serving.session_deps(&loaded, true).await?;
    if deps.is_some() {
        if serving.server.is_none() {
            tracing::warn!("headless with `ops.enabled = false`: nothing to serve");
        }
        tracing::info!(
            "running headless (discord.enabled = false): serving the ops endpoints until \
             SIGTERM/SIGINT"
        );
        serving.shutdown.requested().await;
    }
    serving.finish().await;
    drop(deps);
    Ok(ExitCode::SUCCESS)
}

/// `run` connected to Discord: the ops endpoints, the providers, then the bot until
/// SIGTERM/SIGINT (voice sessions get the drain time to finish their turns).
async fn run_discord(loaded: &LoadedConfig) -> anyhow::Result<ExitCode> {
    let token = discord::BotToken::from_env(&loaded.config.discord)?;
    let serving = Serving::start(loaded).await?;
    serving.ops.set_gateway(GatewayStatus::Connecting);
    let Some(deps) = serving.session_deps(loaded, true).await? else {
        serving.finish().await;
        return Ok(ExitCode::SUCCESS);
    };
    let observer = Arc::new(OpsObserver {
        ops: serving.ops.clone(),
        connections: std::sync::Mutex::new(std::collections::HashMap::new()),
        unheard: Default::default(),
        encryption: Default::default(),
    });
    let store = open_guild_store(loaded, &serving.ops).await;
    let served = discord::serve(
        &loaded.config.discord,
        &token,
        deps,
        store,
        observer,
        serving.shutdown.requested(),
    )
    .await;
    serving.finish().await;
    served?;
    Ok(ExitCode::SUCCESS)
}

/// The guild settings store of `[storage]`. One that cannot be opened (corrupt, read-only,
/// unreachable) is reported plainly, left untouched, and marks `/health` unhealthy; the bot
/// still runs, every guild on the configuration's defaults.
async fn open_guild_store(loaded: &LoadedConfig, ops: &OpsState) -> Arc<crate::guild::GuildStore> {
    use crate::guild::{GuildDefaults, GuildStore};
    use crate::ops::StorageStatus;
    let defaults = GuildDefaults::from_config(&loaded.config);
    match GuildStore::open(&loaded.config.storage, defaults.clone()).await {
        Ok(store) => {
            let backend = store.backend().map(|b| b.as_str()).unwrap_or("none");
            tracing::info!(backend, "guild settings store open");
            ops.set_storage(StorageStatus::Up(backend));
            Arc::new(store)
        }
        Err(e) => {
            tracing::error!("{e}");
            // Printed whatever the log level: an operator must fix the database.
            eprintln!("error: {e}");
            ops.set_storage(StorageStatus::Down);
            Arc::new(GuildStore::unavailable(&e, defaults))
        }
    }
}

/// The bot's news for the ops endpoints: gateway status, voice connections, turns.
struct OpsObserver {
    ops: Arc<OpsState>,
    connections: std::sync::Mutex<std::collections::HashMap<u64, crate::ops::VoiceConnectionGuard>>,
    unheard: crate::ops::hearing::UnheardByGuild,
    encryption: crate::ops::hearing::EncryptionByGuild,
}

impl discord::BotObserver for OpsObserver {
    fn gateway(&self, up: bool) {
        self.ops.set_gateway(if up {
            GatewayStatus::Up
        } else {
            GatewayStatus::Down
        });
    }

    fn session_started(&self, guild: u64) {
        let guard = self.ops.voice_connection();
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(guild, guard);
    }

    fn session_ended(&self, guild: u64) {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&guild);
        self.encryption.set(guild, None);
    }

    fn turn(&self, _guild: u64, report: &TurnReport) {
        self.ops.observe_turn(report);
    }

    fn frames_decoded(&self, _guild: u64, frames: u64) {
        crate::ops::hearing::FRAMES_DECODED.inc_by(frames);
    }

    fn undecodable(&self, _guild: u64) {
        crate::ops::hearing::UNDECODABLE.inc();
    }

    fn unheard(&self, guild: u64, speakers: usize) {
        self.unheard.set(guild, speakers);
    }

    fn encryption(&self, guild: u64, dave: Option<bool>) {
        self.encryption.set(guild, dave);
    }
}
