//! `plugins list [--dir DIR] [--json]`: every library in the plugin directories (`plugins.dir`,
//! then `plugins.dirs`), each inspected in a child process; exits 1 when any file could not be
//! loaded, after listing everything.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::{load_config, plugin_dirs};
use crate::cli::Cli;
use crate::plugins::probe::{probe_dir, Probe};
use crate::plugins::worker::WorkerLauncher;
use crate::telemetry;

/// `plugins list`.
pub fn plugins_list(cli: &Cli, dir: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let dirs = match dir {
        Some(dir) => vec![dir.to_path_buf()],
        None => {
            let loaded = load_config(cli)?;
            telemetry::init(&loaded);
            plugin_dirs(&loaded)
        }
    };
    let launcher = WorkerLauncher::current_exe()
        .context("cannot find this executable to inspect plugins with")?;
    let mut probes = Vec::new();
    for dir in &dirs {
        probes.push((dir.clone(), probe_dir(dir, &launcher)?));
    }
    if json {
        print_json(&probes)?;
    } else {
        for (n, (dir, probe)) in probes.iter().enumerate() {
            if n > 0 {
                println!();
            }
            print_table(dir, probe);
        }
    }
    let failed: usize = probes.iter().map(|(_, p)| p.failures.len()).sum();
    if failed > 0 {
        eprintln!(
            "{failed} file{} could not be loaded as a plugin (see `not loaded:` above)",
            if failed == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// One JSON document for every directory: `dir` (the first), `dirs`, `plugins`, `failures`.
fn print_json(probes: &[(PathBuf, Probe)]) -> anyhow::Result<()> {
    let plugins: Vec<serde_json::Value> = probes
        .iter()
        .flat_map(|(_, probe)| probe.plugins.values())
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
    let failures: Vec<serde_json::Value> = probes
        .iter()
        .flat_map(|(_, probe)| &probe.failures)
        .map(|f| serde_json::json!({"path": f.path, "error": f.error.to_string()}))
        .collect();
    let dirs: Vec<&PathBuf> = probes.iter().map(|(dir, _)| dir).collect();
    let document = serde_json::json!({
        "dir": dirs.first(),
        "dirs": dirs,
        "plugins": plugins,
        "failures": failures,
    });
    println!("{}", serde_json::to_string_pretty(&document)?);
    Ok(())
}

/// One directory as a table, with a `not loaded:` line per refused file.
fn print_table(dir: &Path, probe: &Probe) {
    println!("plugins in {}:", dir.display());
    if probe.plugins.is_empty() {
        println!("  (none)");
    }
    for p in probe.plugins.values() {
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
    for f in &probe.failures {
        println!("  not loaded: {f}");
    }
}
