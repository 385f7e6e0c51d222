//! The subcommands, at the binary's edge: they load config and plugins, call into the
//! library, and print for humans. Errors here are `anyhow`, with context for the reader.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use plugin_api::abi::Role;

use crate::cli::{Cli, Command, SimulateArgs};
use crate::config::{self, LoadedConfig};
use crate::plugins::PluginSet;
use crate::telemetry;

/// Loads the configuration for the CLI's environment, with errors as one report.
pub fn load_config(cli: &Cli) -> anyhow::Result<LoadedConfig> {
    config::load(&cli.config_dir, &cli.env, std::env::vars()).map_err(|errors| {
        anyhow::anyhow!(
            "{}(environment `{}`, config directory {})",
            errors,
            cli.env,
            cli.config_dir.display()
        )
    })
}

/// Resolves `plugins.dir` relative to the current directory.
fn plugins_dir(loaded: &LoadedConfig) -> PathBuf {
    PathBuf::from(&loaded.config.plugins.dir)
}

/// `check-config`.
pub async fn check_config(cli: &Cli) -> anyhow::Result<ExitCode> {
    let loaded = match load_config(cli) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    telemetry::init(&loaded.config.logging);
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
    match PluginSet::scan(&dir) {
        Err(e) => problems.push(e.to_string()),
        Ok(set) => {
            let names: Vec<String> = set
                .plugins
                .values()
                .map(|p| format!("{} {}", p.info.name, p.info.version))
                .collect();
            println!(
                "plugins ({}): {}",
                dir.display(),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            );
            for failure in &set.failures {
                println!("  not loaded: {failure}");
            }
            let config = &loaded.config;
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
    }

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
        Ok(ExitCode::FAILURE)
    }
}

/// `plugins list`.
pub fn plugins_list(cli: &Cli, dir: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let dir = match dir {
        Some(dir) => dir.to_path_buf(),
        None => {
            let loaded = load_config(cli)?;
            telemetry::init(&loaded.config.logging);
            plugins_dir(&loaded)
        }
    };
    let set = PluginSet::scan(&dir)?;
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
            .with_context(|| format!("`{flag}` must follow the `--input` it belongs to"))
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
            out[n].at_ms = parse_time_ms(at)
                .with_context(|| format!("`--at {at}`: expected a time like 2.5s or 800ms"))?;
        }
    }
    Ok(out)
}

/// Parses `2.5s`, `800ms` or a bare number of seconds.
pub fn parse_time_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (s, 1000.0)
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| (v * scale).round() as u64)
}

/// `simulate`.
pub async fn simulate(
    cli: &Cli,
    _args: &SimulateArgs,
    _inputs: Vec<SimulateInput>,
) -> anyhow::Result<ExitCode> {
    let loaded = load_config(cli)?;
    telemetry::init(&loaded.config.logging);
    bail!("`simulate` is not yet available in this build: the offline pipeline is being written")
}

/// `run`.
pub async fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let loaded = load_config(cli)?;
    telemetry::init(&loaded.config.logging);
    bail!(
        "`run` is not yet available: the Discord transport is not built yet. \
         Use `openclaw-voice simulate --env offline --input question.wav` to try the pipeline"
    )
}

/// Commands a later release fills in.
pub fn not_yet_available(command: &Command) -> anyhow::Result<ExitCode> {
    let name = match command {
        Command::RegisterCommands { .. } => "register-commands",
        Command::InviteUrl => "invite-url",
        _ => "this command",
    };
    bail!("`{name}` is not yet available: it comes with the Discord transport")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        assert_eq!(parse_time_ms("2.5s"), Some(2500));
        assert_eq!(parse_time_ms("800ms"), Some(800));
        assert_eq!(parse_time_ms("3"), Some(3000));
        assert_eq!(parse_time_ms("-1s"), None);
        assert_eq!(parse_time_ms("soon"), None);
    }
}
