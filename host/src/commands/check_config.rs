//! `check-config [--probe] [--print]`: the verdict first (`configuration OK`, or the problems),
//! then what was checked (files, plugins, providers, turn taking, secrets), and the effective
//! configuration only when asked (`--print`). Provider errors say which file or variable chose
//! the provider and set the setting at fault.

use std::process::ExitCode;

use anyhow::Context;
use plugin_api::abi::Role;

use super::{config_files, describe_turn_models, load_config, plugin_dirs};
use crate::cli::{exit, Cli};
use crate::config::LoadedConfig;
use crate::plugins::{PluginSet, ProviderSetupError, Providers};
use crate::telemetry;

/// `check-config`.
pub async fn check_config(cli: &Cli, probe: bool, print: bool) -> anyhow::Result<ExitCode> {
    let loaded = match load_config(cli) {
        Ok(loaded) => loaded,
        Err(e) => {
            println!("configuration NOT OK");
            eprintln!("{e:#}");
            return Ok(ExitCode::from(exit::CONFIG));
        }
    };
    telemetry::init(&loaded);
    let mut problems = Vec::new();
    let mut report = vec![
        format!("environment: {}", loaded.environment),
        format!("files: {}", config_files(&loaded).replace(", ", " → ")),
    ];
    if loaded.env_overrides.is_empty() {
        report.push("environment overrides: none".into());
    } else {
        report.push(format!(
            "environment overrides: {}",
            loaded.env_overrides.join(", ")
        ));
    }
    let dirs = plugin_dirs(&loaded);
    match PluginSet::load_for_config_in(&dirs, &loaded.config).await {
        Err(e) => problems.push(e.to_string()),
        Ok(set) => {
            describe_plugins(&set, &mut report);
            validate_providers(&set, &loaded, &mut report, &mut problems).await;
            if probe && problems.is_empty() {
                probe_providers(&set, &loaded, &mut report, &mut problems).await;
            }
        }
    }
    match describe_turn_models(&loaded) {
        Ok(line) => report.push(line),
        Err(problem) => problems.push(problem),
    }
    problems.extend(loaded.run_problems().iter().map(ToString::to_string));
    if !loaded.secrets.is_empty() {
        report.push("secrets (values never printed):".into());
        for (key, var, set) in &loaded.secrets {
            report.push(format!(
                "  {key} = {var}: {}",
                if *set { "set" } else { "NOT SET" }
            ));
        }
    }

    print_verdict(&problems);
    for line in &report {
        println!("{line}");
    }
    if print {
        println!("--- effective configuration ---");
        print!(
            "{}",
            toml::to_string_pretty(&loaded.config).context("cannot print the configuration")?
        );
        println!("---");
    } else {
        println!("(the effective configuration: check-config --print)");
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::CONFIG)
    })
}

/// `configuration OK`, or how many problems (on stdout) and each of them (on stderr).
fn print_verdict(problems: &[String]) {
    if problems.is_empty() {
        println!("configuration OK");
        return;
    }
    let n = problems.len();
    let plural = if n == 1 { "" } else { "s" };
    println!("configuration NOT OK: {n} problem{plural}");
    eprintln!("{n} problem{plural}:");
    for p in problems {
        eprintln!("  - {p}");
    }
}

/// The plugins the configuration uses, and where they run.
fn describe_plugins(set: &PluginSet, report: &mut Vec<String>) {
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
    report.push(format!("plugins ({}): {names}", set.dirs_display()));
    for failure in &set.failures {
        report.push(format!("  not loaded: {failure}"));
    }
}

/// Every listed provider's settings, checked by its plugin.
async fn validate_providers(
    set: &PluginSet,
    loaded: &LoadedConfig,
    report: &mut Vec<String>,
    problems: &mut Vec<String>,
) {
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
                Ok(()) => report.push(format!(
                    "{role} provider `{id}` (plugin `{}`): settings OK",
                    cfg.plugin.as_deref().unwrap_or(id)
                )),
                Err(e) => problems.push(explain(loaded, &e)),
            }
        }
    }
}

/// `--probe`: builds every provider and reports its answer to a health check.
async fn probe_providers(
    set: &PluginSet,
    loaded: &LoadedConfig,
    report: &mut Vec<String>,
    problems: &mut Vec<String>,
) {
    let providers = Providers::build(set, &loaded.config).await;
    problems.extend(providers.failures.iter().map(|f| explain(loaded, f)));
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
            report.push(format!("{role} provider `{id}`: healthy: {detail}"));
        } else {
            problems.push(format!("{role} provider `{id}` is unhealthy: {detail}"));
        }
    }
}

/// A provider's setup error, with where the configuration chose the provider and, when a
/// plugin refused one setting, which file or variable set it.
pub(crate) fn explain(loaded: &LoadedConfig, error: &ProviderSetupError) -> String {
    let id = &error.provider;
    let mut line = error.to_string();
    let origins = &loaded.origins;
    if let Some(key) = plugin_api::settings::key_of(&error.reason) {
        let path = format!("providers.{id}.settings.{key}");
        match origins.of(&path) {
            Some(origin) => line.push_str(&format!(" (`{path}`, set by {origin})")),
            None => line.push_str(&format!(" (`{path}`)")),
        }
    }
    let config = &loaded.config;
    for (role, list) in [
        ("stt", &config.stt.providers),
        ("tts", &config.tts.providers),
    ] {
        if list.contains(id) {
            let key = format!("{role}.providers");
            let origin = origins.of(&key).unwrap_or("the defaults");
            line.push_str(&format!("; `{key}`, which lists it, is set by {origin}"));
            if let Some(block) = origins.of(&format!("providers.{id}")) {
                line.push_str(&format!(", its `[providers.{id}]` block by {block}"));
            }
            break;
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    #[test]
    fn a_refused_setting_names_the_variable_and_the_provider_list_its_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("test.toml"),
            "[tts]\nproviders = [\"tone\"]\n[stt]\nproviders = [\"tone\"]\n\
             [providers.tone.settings]\nbeep_ms = 10\n",
        )
        .unwrap();
        let vars = [(
            "OPENCLAW__PROVIDERS__TONE__SETTINGS__SAMPLE_RATE".to_string(),
            "\"fast\"".to_string(),
        )];
        let loaded = config::load(dir.path(), "test", vars).unwrap();
        let error = ProviderSetupError {
            provider: "tone".into(),
            reason: "config error: setting `sample_rate`: invalid type".into(),
        };
        let line = explain(&loaded, &error);
        let file = dir.path().join("test.toml").display().to_string();
        assert!(
            line.contains(
                "(`providers.tone.settings.sample_rate`, set by environment variable \
                 OPENCLAW__PROVIDERS__TONE__SETTINGS__SAMPLE_RATE)"
            ),
            "{line}"
        );
        assert!(
            line.contains(&format!(
                "`stt.providers`, which lists it, is set by {file}"
            )),
            "{line}"
        );
    }
}
