//! `wyoming serve`: loads the configured providers and offers them over the Wyoming protocol
//! ([`crate::voice::wyoming`]) until SIGTERM/SIGINT. Prints one line with the address it
//! listens on (the port resolved, for `--bind 127.0.0.1:0`) and what it serves.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::cli::Cli;
use crate::ops::Shutdown;
use crate::plugins::{PluginSet, Providers};
use crate::telemetry;
use crate::voice::wyoming::WyomingService;

/// `wyoming serve --bind ADDR`.
pub async fn serve(cli: &Cli, bind: &str) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(cli)?;
    telemetry::init(&loaded);
    let shutdown = Shutdown::install(Duration::from_millis(
        loaded.config.ops.shutdown_deadline_ms,
    ))?;
    let set = PluginSet::load_for_config_in(&super::plugin_dirs(&loaded), &loaded.config).await?;
    for failure in &set.failures {
        tracing::warn!("plugin not loaded: {failure}");
    }
    let providers = Providers::build(&set, &loaded.config).await;
    for failure in &providers.failures {
        tracing::error!("{failure}");
    }
    if providers.stt.is_empty() && providers.tts.is_empty() {
        bail!(
            "no provider could be started (stt.providers = {:?}, tts.providers = {:?}), so \
             there is nothing to serve",
            loaded.config.stt.providers,
            loaded.config.tts.providers
        );
    }
    let listener = std::net::TcpListener::bind(bind)
        .with_context(|| format!("cannot listen on {bind} (`--bind`)"))?;
    let address = listener.local_addr().context("the listening address")?;
    let ids = |ids: Vec<&str>| ids.join(", ");
    println!(
        "serving Wyoming on tcp://{address}: speech-to-text [{}], text-to-speech [{}]",
        ids(providers.stt.iter().map(|p| p.id.as_str()).collect()),
        ids(providers.tts.iter().map(|p| p.id.as_str()).collect())
    );
    let _ = std::io::stdout().flush();
    let languages = vec![loaded.config.pipeline.language.clone()];
    WyomingService::new(providers.stt, providers.tts, languages).serve(listener);
    shutdown.requested().await;
    tracing::info!("wyoming serve: shutting down");
    Ok(ExitCode::SUCCESS)
}
