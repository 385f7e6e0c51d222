//! The subcommands, at the binary's edge: they load config and plugins, call into the
//! library, and print for humans. Errors here are `anyhow`, with context for the reader.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use plugin_api::abi::Role;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::agent::Agent;
use crate::cli::{exit, Cli, SimulateArgs, UsageError};
use crate::config::{self, LoadedConfig};
use crate::ops::{Components, GatewayStatus, OpsServer, OpsState, Shutdown};
use crate::pipeline::{
    Playback, SessionDeps, Speaker, TurnModels, TurnOutcome, TurnReport, VoiceSession,
};
use crate::plugins::{PluginSet, Providers};
use crate::telemetry;
use crate::voice::discord;
use crate::voice::local::{read_wav, WavRecorder};

/// Loads the configuration for the CLI's environment, with errors as one report.
pub fn load_config(cli: &Cli) -> anyhow::Result<LoadedConfig> {
    config::load(&cli.config_dir, &cli.env, std::env::vars()).map_err(|errors| {
        anyhow::Error::new(errors).context(format!(
            "the configuration is not usable (environment `{}`, config directory {})",
            cli.env,
            cli.config_dir.display()
        ))
    })
}

/// Resolves `plugins.dir` relative to the current directory.
fn plugins_dir(loaded: &LoadedConfig) -> PathBuf {
    PathBuf::from(&loaded.config.plugins.dir)
}

/// `check-config [--probe]`.
pub async fn check_config(cli: &Cli, probe: bool) -> anyhow::Result<ExitCode> {
    let loaded = match load_config(cli) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e:#}");
            return Ok(ExitCode::from(exit::CONFIG));
        }
    };
    telemetry::init(&loaded);
    let mut problems = Vec::new();
    println!("environment: {}", loaded.environment);
    let files: Vec<String> = loaded
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    println!("files: {}", files.join(" → "));
    if loaded.env_overrides.is_empty() {
        println!("environment overrides: none");
    } else {
        println!("environment overrides: {}", loaded.env_overrides.join(", "));
    }

    let dir = plugins_dir(&loaded);
    match PluginSet::load_for_config(&dir, &loaded.config).await {
        Err(e) => problems.push(e.to_string()),
        Ok(set) => {
            print_plugins(&dir, &set);
            validate_providers(&set, &loaded.config, &mut problems).await;
            if probe && problems.is_empty() {
                probe_providers(&set, &loaded.config, &mut problems).await;
            }
        }
    }

    match describe_turn_models(&loaded) {
        Ok(line) => println!("{line}"),
        Err(problem) => problems.push(problem),
    }
    problems.extend(loaded.run_problems().iter().map(ToString::to_string));
    if !loaded.secrets.is_empty() {
        println!("secrets (values never printed):");
        for (key, var, set) in &loaded.secrets {
            println!("  {key} = {var}: {}", if *set { "set" } else { "NOT SET" });
        }
    }
    println!("--- effective configuration ---");
    print!(
        "{}",
        toml::to_string_pretty(&loaded.config).context("cannot print the configuration")?
    );
    println!("---");
    if problems.is_empty() {
        println!("configuration OK");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{} problem{}:",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        for p in &problems {
            eprintln!("  - {p}");
        }
        Ok(ExitCode::from(exit::CONFIG))
    }
}

/// `check-config`: the plugins the configuration uses, and where they run.
fn print_plugins(dir: &Path, set: &PluginSet) {
    let names: Vec<String> = set
        .plugins
        .values()
        .map(|p| format!("{} {}", p.info.name, p.info.version))
        .chain(
            set.isolated
                .keys()
                .filter(|n| !set.plugins.contains_key(*n))
                .map(|n| format!("{n} (worker process)")),
        )
        .collect();
    let names = if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    };
    println!("plugins ({}): {names}", dir.display());
    for failure in &set.failures {
        println!("  not loaded: {failure}");
    }
}

/// `check-config`: every listed provider's settings, checked by its plugin.
async fn validate_providers(set: &PluginSet, config: &config::Config, problems: &mut Vec<String>) {
    for (role, list) in [
        (Role::SpeechToText, &config.stt.providers),
        (Role::TextToSpeech, &config.tts.providers),
    ] {
        if list.is_empty() {
            problems.push(format!(
                "`{role}.providers` is empty: the pipeline needs at least one {role} provider"
            ));
        }
        for id in list {
            let Some(cfg) = config.providers.get(id) else {
                continue;
            };
            match set.validate_provider(id, cfg, role).await {
                Ok(()) => println!(
                    "{role} provider `{id}` (plugin `{}`): settings OK",
                    cfg.plugin.as_deref().unwrap_or(id)
                ),
                Err(e) => problems.push(e.to_string()),
            }
        }
    }
}

/// `check-config --probe`: builds every provider and prints its answer to a health check.
async fn probe_providers(set: &PluginSet, config: &config::Config, problems: &mut Vec<String>) {
    let providers = Providers::build(set, config).await;
    problems.extend(providers.failures.iter().map(|f| f.to_string()));
    use futures_util::FutureExt;
    let stt = providers
        .stt
        .iter()
        .map(|p| ("stt", &p.id, p.check_health().boxed()));
    let tts = providers
        .tts
        .iter()
        .map(|p| ("tts", &p.id, p.check_health().boxed()));
    let checks = stt
        .chain(tts)
        .map(|(role, id, check)| async move { (role, id, check.await) });
    let answers = futures_util::future::join_all(checks).await;
    for (role, id, answer) in answers {
        let detail = telemetry::scrub(&answer.detail);
        if answer.healthy {
            println!("{role} provider `{id}`: healthy: {detail}");
        } else {
            problems.push(format!("{role} provider `{id}` is unhealthy: {detail}"));
        }
    }
}

/// `plugins list`.
pub fn plugins_list(cli: &Cli, dir: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let dir = match dir {
        Some(dir) => dir.to_path_buf(),
        None => {
            let loaded = load_config(cli)?;
            telemetry::init(&loaded);
            plugins_dir(&loaded)
        }
    };
    let launcher = crate::plugins::worker::WorkerLauncher::current_exe()
        .context("cannot find this executable to inspect plugins with")?;
    let set = crate::plugins::probe::probe_dir(&dir, &launcher)?;
    if json {
        let plugins: Vec<serde_json::Value> = set
            .plugins
            .values()
            .map(|p| {
                serde_json::json!({
                    "name": p.info.name,
                    "version": p.info.version,
                    "description": p.info.description,
                    "provides": p.info.provides,
                    "api_version": p.info.api_version,
                    "path": p.path,
                    "sha256": p.sha256,
                    "capabilities": {
                        "languages": p.info.languages,
                        "streaming": p.info.streaming,
                        "sample_rates": p.info.sample_rates,
                        "voices": p.info.voices,
                    },
                })
            })
            .collect();
        let failures: Vec<serde_json::Value> = set
            .failures
            .iter()
            .map(|f| serde_json::json!({"path": f.path, "error": f.error.to_string()}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"dir": dir, "plugins": plugins, "failures": failures})
            )?
        );
    } else {
        println!("plugins in {}:", dir.display());
        if set.plugins.is_empty() {
            println!("  (none)");
        }
        for p in set.plugins.values() {
            println!(
                "  {:<16} {:<8} provides {:<8} api {:<7} {}",
                p.info.name,
                p.info.version,
                p.info.provides.join(","),
                p.info.api_version,
                p.path.display()
            );
            println!("  {:<16} sha256 {}", "", p.sha256);
            if !p.info.description.is_empty() {
                println!("  {:<16} {}", "", p.info.description);
            }
        }
        for f in &set.failures {
            println!("  not loaded: {f}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One `--input` of `simulate`, with its speaker and start time.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulateInput {
    /// The WAV file.
    pub path: PathBuf,
    /// Who says it.
    pub speaker: String,
    /// When it starts, in ms from the start of the simulation.
    pub at_ms: u64,
}

/// Pairs each `--speaker` and `--at` with the `--input` before it on the command line.
pub fn simulate_inputs(
    matches: &clap::ArgMatches,
    args: &SimulateArgs,
) -> anyhow::Result<Vec<SimulateInput>> {
    let sub = matches
        .subcommand_matches("simulate")
        .context("simulate arguments missing")?;
    let input_idx: Vec<usize> = sub
        .indices_of("inputs")
        .map(|i| i.collect())
        .unwrap_or_default();
    let mut out: Vec<SimulateInput> = args
        .inputs
        .iter()
        .enumerate()
        .map(|(n, path)| SimulateInput {
            path: path.clone(),
            speaker: format!("speaker{}", n + 1),
            at_ms: 0,
        })
        .collect();
    let owner = |idx: usize, flag: &str| -> anyhow::Result<usize> {
        input_idx
            .iter()
            .rposition(|&i| i < idx)
            .ok_or_else(|| usage(format!("`{flag}` must follow the `--input` it belongs to")))
    };
    if let Some(idx) = sub.indices_of("speakers") {
        for (idx, name) in idx.zip(args.speakers.iter()) {
            let n = owner(idx, "--speaker")?;
            out[n].speaker = name.clone();
        }
    }
    if let Some(idx) = sub.indices_of("at") {
        for (idx, at) in idx.zip(args.at.iter()) {
            let n = owner(idx, "--at")?;
            out[n].at_ms = *at;
        }
    }
    check_output(&args.output, &out)?;
    Ok(out)
}

fn usage(message: String) -> anyhow::Error {
    UsageError(message).into()
}

/// `--output` is checked before anything runs: its directory exists, it is not a directory,
/// and it is none of the `--input` files (which it would overwrite).
fn check_output(output: &Path, inputs: &[SimulateInput]) -> anyhow::Result<()> {
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(usage(format!(
            "`--output {}`: the directory {} does not exist",
            output.display(),
            parent.display()
        )));
    }
    if output.is_dir() {
        return Err(usage(format!(
            "`--output {}` is a directory; give a .wav file name",
            output.display()
        )));
    }
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if let Some(input) = inputs.iter().find(|i| same(&i.path, output)) {
        return Err(usage(format!(
            "`--output {}` is also an `--input` ({}): it would be overwritten; write the \
             replies to another file",
            output.display(),
            input.path.display()
        )));
    }
    Ok(())
}

/// Loads plugins and builds the providers and the agent for a session, and tells `ops`
/// (which then reports them and turns ready).
pub async fn build_session_deps(
    loaded: &LoadedConfig,
    ops: &Arc<OpsState>,
) -> anyhow::Result<SessionDeps> {
    let dir = plugins_dir(loaded);
    let set = PluginSet::load_for_config(&dir, &loaded.config).await?;
    for failure in &set.failures {
        tracing::warn!("plugin not loaded: {failure}");
    }
    let providers = Providers::build(&set, &loaded.config).await;
    for failure in &providers.failures {
        tracing::error!("{failure}");
    }
    let problems: Vec<String> = providers.failures.iter().map(|f| f.to_string()).collect();
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
    });
    Ok(SessionDeps {
        stt: providers.stt,
        tts: providers.tts,
        agent,
        config: loaded.config.pipeline.clone(),
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

fn config_files(loaded: &LoadedConfig) -> String {
    let files: Vec<String> = loaded
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    files.join(", ")
}

/// One line on the turn-taking models for `check-config`, or the problem.
fn describe_turn_models(loaded: &LoadedConfig) -> Result<String, String> {
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

/// Sample rate of the simulation's output WAV.
const OUTPUT_RATE: u32 = 24_000;
/// Frame length fed to the pipeline, as Discord sends it.
const FRAME_MS: u64 = 20;

/// `simulate`.
pub async fn simulate(
    cli: &Cli,
    args: &SimulateArgs,
    inputs: Vec<SimulateInput>,
) -> anyhow::Result<ExitCode> {
    let loaded = load_config(cli)?;
    telemetry::init(&loaded);
    // Read every input first: a bad file is reported before anything slow happens.
    let mut audio = Vec::new();
    for input in &inputs {
        audio.push(read_wav(&input.path)?);
    }
    if args.serve && !loaded.config.ops.enabled {
        bail!(
            "`--serve` keeps the ops server running, but it is off (`ops.enabled = false`); \
             turn it on with OPENCLAW__OPS__ENABLED=true"
        );
    }
    let ops = OpsState::new(&loaded)?;
    let shutdown = Shutdown::install(Duration::from_millis(
        loaded.config.ops.shutdown_deadline_ms,
    ))?;
    let server = start_ops_server(&loaded, &ops).await?;
    let deps = tokio::select! {
        deps = build_session_deps(&loaded, &ops) => deps?,
        () = shutdown.requested() => {
            finish_shutdown(&ops, server, &shutdown).await;
            return Ok(ExitCode::SUCCESS);
        }
    };
    if args.serve {
        start_health_checks(&loaded, &ops);
    }
    // Enough silence after the last input for any rule to end the turn.
    let hangover = u64::from(
        deps.config
            .silence_hangover_ms
            .max(deps.config.turn_incomplete_silence_ms),
    );
    let recorder = Arc::new(WavRecorder::new(OUTPUT_RATE));
    let playback = Arc::new(Playback::new(recorder.clone(), !args.fast));
    let (mut router, mut session) =
        VoiceSession::start(deps, "simulation".to_string(), playback.clone());
    let connection = ops.voice_connection();
    let (_, no_reports) = tokio::sync::mpsc::unbounded_channel();
    let mut reports = std::mem::replace(&mut session.reports, no_reports);

    let speakers: Vec<Speaker> = inputs
        .iter()
        .map(|i| Speaker {
            id: i.speaker.clone(),
            name: i.speaker.clone(),
        })
        .collect();
    let end_ms = inputs
        .iter()
        .zip(&audio)
        .map(|(i, a)| i.at_ms + a.duration().as_millis() as u64)
        .max()
        .unwrap_or(0)
        + hangover
        + 200;

    // Feed frames: real time unless --fast; speakers who have started and fallen silent get
    // silence frames, as Discord reports them.
    let feeder = async {
        let start = tokio::time::Instant::now();
        let mut t = 0u64;
        let mut silence: Vec<i16> = Vec::new();
        while t < end_ms && !shutdown.is_requested() {
            if !args.fast {
                tokio::select! {
                    () = tokio::time::sleep_until(start + Duration::from_millis(t)) => {}
                    () = shutdown.requested() => break,
                }
            } else {
                // Model time is not simulated time: each verdict lands in the frame after
                // the pause it was asked at.
                router.settle().await;
                if t.is_multiple_of(1_000) {
                    tokio::task::yield_now().await;
                }
            }
            let now = Instant::now();
            for ((input, wav), speaker) in inputs.iter().zip(&audio).zip(&speakers) {
                if t < input.at_ms {
                    continue;
                }
                let channels = usize::from(wav.channels);
                let frame_len = (wav.sample_rate as usize * FRAME_MS as usize / 1000) * channels;
                let offset =
                    ((t - input.at_ms) * u64::from(wav.sample_rate) / 1000) as usize * channels;
                if offset + frame_len <= wav.samples.len() {
                    router.push(
                        speaker,
                        &wav.samples[offset..offset + frame_len],
                        wav.channels,
                        wav.sample_rate,
                        now,
                    );
                } else {
                    silence.clear();
                    silence.resize(frame_len, 0);
                    if offset < wav.samples.len() {
                        let rest = &wav.samples[offset..];
                        silence[..rest.len()].copy_from_slice(rest);
                    }
                    router.push(speaker, &silence, wav.channels, wav.sample_rate, now);
                }
            }
            t += FRAME_MS;
        }
        // After a shutdown request no new turn starts: speech in progress is dropped.
        if !shutdown.is_requested() {
            router.flush(Instant::now());
        }
        drop(router);
    };

    let turns = std::cell::Cell::new(0usize);
    let failed = std::cell::Cell::new(0usize);
    let printer = async {
        while let Some(report) = reports.recv().await {
            ops.observe_turn(&report);
            if !report.is_turn() {
                eprintln!(
                    "(no speech recognised from {}: {} ms of audio ignored)",
                    report.speaker.name, report.utterance_ms
                );
                continue;
            }
            turns.set(turns.get() + 1);
            if matches!(report.outcome, TurnOutcome::Failed(_)) {
                failed.set(failed.get() + 1);
            }
            print_turn(turns.get(), &report, args.json);
        }
    };
    let work = async {
        tokio::join!(feeder, printer);
    };
    tokio::pin!(work);
    let finished = tokio::select! {
        () = &mut work => true,
        () = shutdown.requested() => false,
    };
    if !finished {
        drain_session(&mut work, &session, &playback, &ops, &shutdown).await;
    }
    if tokio::time::timeout(shutdown.remaining(), session.join())
        .await
        .is_err()
    {
        tracing::warn!("the voice session did not end by the shutdown deadline");
    }
    if shutdown.is_requested() {
        // Leave the channel: nothing more is played.
        playback.stop();
    } else if let Some(end) = playback.ends_at() {
        tokio::select! {
            () = tokio::time::sleep_until(end.into()) => {}
            () = shutdown.requested() => playback.stop(),
        }
    }
    drop(connection);
    let (turns, failed) = (turns.get(), failed.get());
    let written = recorder.write(&args.output)?;
    if !args.json {
        println!(
            "{turns} turn{}; the bot's speech ({:.1} s) is in {}",
            if turns == 1 { "" } else { "s" },
            written.as_secs_f64(),
            args.output.display()
        );
        print_peak_memory(&ops);
    }
    if args.serve && !shutdown.is_requested() {
        if let Some(server) = &server {
            eprintln!(
                "serving http://{} until SIGTERM/SIGINT",
                server.local_addr()
            );
        }
        shutdown.requested().await;
    }
    finish_shutdown(&ops, server, &shutdown).await;
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Starts the ops server when `ops.enabled`, and says where on stderr (tests read the line).
async fn start_ops_server(
    loaded: &LoadedConfig,
    ops: &Arc<OpsState>,
) -> anyhow::Result<Option<OpsServer>> {
    if !loaded.config.ops.enabled {
        return Ok(None);
    }
    let limits = crate::ops::server::Limits::from_config(&loaded.config.ops);
    let server = OpsServer::start(&loaded.config.ops.bind, ops.clone(), limits).await?;
    let addr = server.local_addr();
    // Printed whatever the log level, so scripts and tests can find a port-0 address; shipped
    // like a log line when the CloudWatch sink is on.
    let line = match loaded.config.logging.format {
        config::LogFormat::Pretty => format!("ops server listening on http://{addr}"),
        config::LogFormat::Json => serde_json::json!({
            "timestamp": crate::ops::health::rfc3339(std::time::SystemTime::now()),
            "level": "INFO",
            "message": "ops server listening",
            "ops_addr": addr.to_string(),
        })
        .to_string(),
    };
    eprintln!("{line}");
    telemetry::cloudwatch::push(&line);
    Ok(Some(server))
}

/// After a shutdown request: lets the turns in flight finish within the drain budget, then
/// cancels what is left (reported `Cancelled`) and stops playback.
async fn drain_session(
    work: &mut (impl std::future::Future<Output = ()> + Unpin),
    session: &VoiceSession,
    playback: &Playback,
    ops: &OpsState,
    shutdown: &Shutdown,
) {
    ops.start_draining();
    if tokio::time::timeout(shutdown.drain_budget(), &mut *work)
        .await
        .is_ok()
    {
        return;
    }
    tracing::warn!("shutdown deadline near: cancelling the turn in progress");
    session.shutdown();
    playback.stop();
    if tokio::time::timeout(shutdown.reserve() / 2, work)
        .await
        .is_err()
    {
        tracing::warn!("a turn did not end when cancelled (a provider call is stuck); leaving it");
    }
}

/// The end of every serving command: not ready any more, the ops server closed, error
/// reports flushed, all within what is left of the shutdown deadline.
async fn finish_shutdown(ops: &OpsState, server: Option<OpsServer>, shutdown: &Shutdown) {
    ops.start_draining();
    if let Some(server) = server {
        server
            .stop(shutdown.remaining().min(Duration::from_secs(1)))
            .await;
    }
    telemetry::shutdown(
        shutdown
            .remaining()
            .min(telemetry::sentry::SHUTDOWN_TIMEOUT),
    );
}

/// The process's peak resident set size (Linux `VmHWM`), in KiB.
pub fn peak_rss_kb() -> Option<u64> {
    peak_rss_kb_of("self")
}

/// Prints the peak memory of this process and of the worker processes serving its providers
/// (a model loaded in a worker is counted there).
fn print_peak_memory(ops: &OpsState) {
    let Some(host) = peak_rss_kb() else { return };
    let pids: Vec<u32> = {
        let components = ops.components();
        let stt = components.stt.iter().filter_map(|p| p.worker());
        let tts = components.tts.iter().filter_map(|p| p.worker());
        stt.chain(tts).filter_map(|w| w.pid).collect()
    };
    let workers: u64 = pids
        .iter()
        .filter_map(|pid| peak_rss_kb_of(&pid.to_string()))
        .sum();
    let mb = |kb: u64| kb as f64 / 1024.0;
    if pids.is_empty() {
        println!("peak memory (RSS): {:.1} MB", mb(host));
    } else {
        println!(
            "peak memory (RSS): {:.1} MB (host {:.1} MB, {} worker process{} {:.1} MB)",
            mb(host + workers),
            mb(host),
            pids.len(),
            if pids.len() == 1 { "" } else { "es" },
            mb(workers)
        );
    }
}

/// Peak resident memory of process `pid` (`self` or a number), in kB.
fn peak_rss_kb_of(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn print_turn(n: usize, report: &TurnReport, json: bool) {
    let ms = report.timeline.ms();
    if json {
        let value = serde_json::json!({
            "turn": n,
            "speaker": report.speaker.name,
            "transcript": report.transcript,
            "reply": report.reply,
            "outcome": report.outcome,
            "timeline_ms": ms,
            "utterance_ms": report.utterance_ms,
            "reply_audio_ms": report.reply_audio_ms,
            "stt_provider": report.stt_provider,
            "tts_provider": report.tts_provider,
            "end_rule": report.end_rule,
            "ended_by": report.end_rule.to_string(),
            "speculation": report.speculation,
            "errors": report.errors.iter().map(|e| telemetry::scrub(e)).collect::<Vec<_>>(),
        });
        println!("{value}");
        return;
    }
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into());
    println!(
        "turn {n} · {} ({:.1} s of speech)",
        report.speaker.name,
        report.utterance_ms as f64 / 1000.0
    );
    println!("  heard:  {:?}", report.transcript);
    println!("  reply:  {:?}", report.reply);
    let outcome = match &report.outcome {
        TurnOutcome::Completed => "completed".to_string(),
        TurnOutcome::Interrupted => "interrupted (barge-in)".to_string(),
        TurnOutcome::Failed(why) => format!("FAILED: {}", telemetry::scrub(why)),
        TurnOutcome::Cancelled => "cancelled".to_string(),
        TurnOutcome::NotAddressed => "not addressed to the bot".to_string(),
        TurnOutcome::NoSpeech => "no speech".to_string(),
    };
    println!(
        "  outcome: {outcome} · stt {} · tts {}",
        report.stt_provider.as_deref().unwrap_or("-"),
        report.tts_provider.as_deref().unwrap_or("-")
    );
    println!(
        "  timeline (ms after end of speech): endpoint {:.0} · stt done {} · first token {} · first audio {} · playback {}",
        ms.endpoint_detected,
        opt(ms.stt_done),
        opt(ms.agent_first_token),
        opt(ms.first_tts_audio),
        opt(ms.playback_start)
    );
    // The headline is what the user feels (as Prometheus's response_latency_seconds), then
    // its two parts: waiting to be sure the turn ended, and the work after that.
    println!(
        "  response (end of speech → first audio): {} ms = end-of-turn wait {:.0} + processing {}",
        opt(ms.first_tts_audio),
        ms.endpoint_detected,
        opt(ms.voice_to_voice)
    );
    println!(
        "  ended by: {} · speculative stt: {}, {} thrown away",
        report.end_rule,
        match (report.speculation.streamed, report.speculation.used) {
            (true, _) => "streamed at each pause",
            (false, true) => "used",
            (false, false) => "not used",
        },
        report.speculation.wasted
    );
    for e in &report.errors {
        println!("  error: {}", telemetry::scrub(e));
    }
}

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
    let ops = OpsState::new(&loaded)?;
    ops.set_gateway(GatewayStatus::Disabled);
    let shutdown = Shutdown::install(Duration::from_millis(
        loaded.config.ops.shutdown_deadline_ms,
    ))?;
    let server = start_ops_server(&loaded, &ops).await?;
    let deps = tokio::select! {
        deps = build_session_deps(&loaded, &ops) => Some(deps?),
        () = shutdown.requested() => None,
    };
    if deps.is_some() {
        start_health_checks(&loaded, &ops);
        if server.is_none() {
            tracing::warn!("headless with `ops.enabled = false`: nothing to serve");
        }
        tracing::info!(
            "running headless (discord.enabled = false): serving the ops endpoints until \
             SIGTERM/SIGINT"
        );
        shutdown.requested().await;
    }
    finish_shutdown(&ops, server, &shutdown).await;
    drop(deps);
    Ok(ExitCode::SUCCESS)
}

/// `run` connected to Discord: the ops endpoints, the providers, then the bot until
/// SIGTERM/SIGINT (voice sessions get the drain time to finish their turns).
async fn run_discord(loaded: &LoadedConfig) -> anyhow::Result<ExitCode> {
    let token = discord::BotToken::from_env(&loaded.config.discord)?;
    let ops = OpsState::new(loaded)?;
    ops.set_gateway(GatewayStatus::Connecting);
    let shutdown = Shutdown::install(Duration::from_millis(
        loaded.config.ops.shutdown_deadline_ms,
    ))?;
    let server = start_ops_server(loaded, &ops).await?;
    let deps = tokio::select! {
        deps = build_session_deps(loaded, &ops) => deps?,
        () = shutdown.requested() => {
            finish_shutdown(&ops, server, &shutdown).await;
            return Ok(ExitCode::SUCCESS);
        }
    };
    start_health_checks(loaded, &ops);
    let observer = Arc::new(OpsObserver {
        ops: ops.clone(),
        connections: std::sync::Mutex::new(std::collections::HashMap::new()),
    });
    let store = open_guild_store(loaded, &ops).await;
    let served = discord::serve(
        &loaded.config.discord,
        &token,
        deps,
        store,
        observer,
        shutdown.requested(),
    )
    .await;
    finish_shutdown(&ops, server, &shutdown).await;
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
    }

    fn turn(&self, _guild: u64, report: &TurnReport) {
        self.ops.observe_turn(report);
    }
}

/// `invite-url`: prints the URL that adds the bot to a server, with the permissions it uses.
/// The application id comes from `discord.application_id`, or from Discord with the token.
pub async fn invite_url(cli: &Cli) -> anyhow::Result<ExitCode> {
    let loaded = load_config(cli)?;
    telemetry::init(&loaded);
    let config = &loaded.config.discord;
    let application_id = match config.application_id {
        Some(id) => id,
        None => match discord::BotToken::from_env(config) {
            Ok(token) => discord::Api::new(config, &token).application_id().await?,
            Err(_) => {
                return Err(config::ConfigError::Invalid {
                    origin: "configuration".into(),
                    key: "discord.application_id".into(),
                    reason: format!(
                        "`invite-url` needs the bot's application id: set it \
                         (OPENCLAW__DISCORD__APPLICATION_ID) to the Application ID on the \
                         Developer Portal's General Information page, or set {} to the bot \
                         token to look it up",
                        config.token_env
                    ),
                }
                .into())
            }
        },
    };
    println!("{}", discord::invite_url(application_id));
    Ok(ExitCode::SUCCESS)
}

/// `register-commands [--guild ID]`: registers `/voice` globally or in one guild and prints
/// what Discord registered.
pub async fn register_commands(cli: &Cli, guild: Option<u64>) -> anyhow::Result<ExitCode> {
    let loaded = load_config(cli)?;
    telemetry::init(&loaded);
    let config = &loaded.config.discord;
    let token = discord::BotToken::from_env(config)?;
    let api = discord::Api::new(config, &token);
    let registered = api.register_commands(guild).await?;
    let application_id = api.application_id().await?;
    match guild {
        None => println!(
            "registered {} command(s) globally for application {application_id} \
             (new global commands can take up to an hour to appear in every server):",
            registered.len()
        ),
        Some(g) => println!(
            "registered {} command(s) in guild {g} for application {application_id} \
             (available there at once):",
            registered.len()
        ),
    }
    for command in &registered {
        let subcommands: Vec<_> = command
            .options
            .iter()
            .filter(|o| o.kind == serenity::all::CommandOptionType::SubCommand)
            .collect();
        if subcommands.is_empty() {
            println!(
                "  /{} (id {}): {}",
                command.name, command.id, command.description
            );
        }
        for option in subcommands {
            println!(
                "  /{} {} (id {}): {}",
                command.name, option.name, command.id, option.description
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
