//! Checks that need the merged configuration as a whole: ranges, cross-key rules, provider
//! lists, and each section's own rules. Every error names the dotted key.

use std::collections::BTreeSet;

use super::load::ConfigError;
use super::schema::{
    AgentKind, CloudWatchConfig, Config, DiscordConfig, Isolation, LanguageCode, PipelineConfig,
    ProviderConfig,
};

/// The most calls one provider may run at once (a semaphore's permits; far more than any
/// provider serves).
const MAX_CONCURRENT_CALLS: usize = 10_000;

/// An error of the merged configuration about `key`.
pub(super) fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        origin: "configuration".into(),
        key: key.into(),
        reason: reason.into(),
    }
}

/// `[pipeline]` VAD and turn-end settings.
fn validate_turn_taking(pl: &PipelineConfig, errors: &mut Vec<ConfigError>) {
    for (key, value) in [
        ("pipeline.vad_threshold", pl.vad_threshold),
        ("pipeline.turn_threshold", pl.turn_threshold),
    ] {
        if !(value > 0.0 && value < 1.0) {
            errors.push(invalid(key, "must be between 0 and 1 (exclusive)"));
        }
    }
    if !(-100.0..=0.0).contains(&pl.vad_energy_gate_dbfs) {
        errors.push(invalid(
            "pipeline.vad_energy_gate_dbfs",
            "must be between -100 and 0 dBFS",
        ));
    }
    if !(20..=1_000).contains(&pl.turn_pause_ms) {
        errors.push(invalid(
            "pipeline.turn_pause_ms",
            "must be between 20 and 1000",
        ));
    }
    if pl.turn_complete_silence_ms < pl.turn_pause_ms {
        errors.push(invalid(
            "pipeline.turn_complete_silence_ms",
            "must be at least pipeline.turn_pause_ms",
        ));
    }
    if !(pl.turn_complete_silence_ms..=10_000).contains(&pl.turn_incomplete_silence_ms) {
        errors.push(invalid(
            "pipeline.turn_incomplete_silence_ms",
            "must be at least pipeline.turn_complete_silence_ms and at most 10000",
        ));
    }
    let (short, long) = (pl.turn_complete_silence_ms, pl.turn_incomplete_silence_ms);
    if !(short..=long.max(short)).contains(&pl.turn_text_complete_silence_ms) {
        errors.push(invalid(
            "pipeline.turn_text_complete_silence_ms",
            "must be between pipeline.turn_complete_silence_ms and \
             pipeline.turn_incomplete_silence_ms",
        ));
    }
    if !(0.0..=1.0).contains(&pl.turn_last_word_min_probability) {
        errors.push(invalid(
            "pipeline.turn_last_word_min_probability",
            "must be between 0 and 1 (0 turns the cue off)",
        ));
    }
    if pl.turn_resume_ms > 5_000 {
        errors.push(invalid(
            "pipeline.turn_resume_ms",
            "must be at most 5000 (0 turns it off)",
        ));
    }
    for (key, value) in [
        ("pipeline.silero_model", &pl.silero_model),
        ("pipeline.smart_turn_model", &pl.smart_turn_model),
        ("pipeline.onnxruntime", &pl.onnxruntime),
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            errors.push(invalid(key, "must be a file path (or left out)"));
        }
    }
}

/// Checks that need the merged whole.
pub(super) fn validate(config: &Config, errors: &mut Vec<ConfigError>) {
    validate_provider_lists(config, errors);
    for (id, p) in &config.providers {
        validate_provider(id, p, errors);
    }
    validate_pipeline(&config.pipeline, errors);
    validate_services(config, errors);
    validate_discord(&config.discord, errors);
    validate_cloudwatch(&config.logging.cloudwatch, errors);
}

/// Records `reason` for `key` unless `ok`.
fn require(errors: &mut Vec<ConfigError>, ok: bool, key: &str, reason: impl Into<String>) {
    if !ok {
        errors.push(invalid(key, reason));
    }
}

/// `[stt]`/`[tts] providers`: each id has a block, none is listed twice.
fn validate_provider_lists(config: &Config, errors: &mut Vec<ConfigError>) {
    for (role, list) in [
        ("stt", &config.stt.providers),
        ("tts", &config.tts.providers),
    ] {
        let key = format!("{role}.providers");
        let mut seen = BTreeSet::new();
        for id in list {
            require(
                errors,
                config.providers.contains_key(id),
                &key,
                format!("names provider `{id}`, but there is no [providers.{id}] block"),
            );
            require(errors, seen.insert(id), &key, format!("lists `{id}` twice"));
        }
    }
}

/// One `[providers.<id>]` block.
fn validate_provider(id: &str, p: &ProviderConfig, errors: &mut Vec<ConfigError>) {
    let key = |k: &str| format!("providers.{id}.{k}");
    require(
        errors,
        p.timeout_ms > 0,
        &key("timeout_ms"),
        "must be greater than 0",
    );
    require(
        errors,
        (1..=MAX_CONCURRENT_CALLS).contains(&p.max_concurrent_calls),
        &key("max_concurrent_calls"),
        format!("must be between 1 and {MAX_CONCURRENT_CALLS}"),
    );
    require(
        errors,
        (1..=3_600_000).contains(&p.setup_timeout_ms),
        &key("setup_timeout_ms"),
        "must be between 1 and 3600000 (one hour)",
    );
    if let Some(mb) = p.memory_limit_mb {
        let key = key("memory_limit_mb");
        require(
            errors,
            (64..=1_048_576).contains(&mb),
            &key,
            "must be between 64 and 1048576 (MiB)",
        );
        require(
            errors,
            p.isolation == Isolation::Process,
            &key,
            "applies only with isolation = \"process\" (a worker process of its own)",
        );
    }
    if let Some(hash) = &p.sha256 {
        let hex = hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit());
        require(
            errors,
            hex,
            &key("sha256"),
            "must be 64 hexadecimal characters",
        );
    }
    let c = &p.circuit;
    for (k, ok, range) in [
        (
            "failures",
            (1..=1_000).contains(&c.failures),
            "between 1 and 1000",
        ),
        (
            "failure_rate",
            (0.0..=1.0).contains(&c.failure_rate),
            "between 0 and 1",
        ),
        (
            "window",
            (1..=10_000).contains(&c.window),
            "between 1 and 10000",
        ),
        (
            "cooldown_ms",
            (100..=3_600_000).contains(&c.cooldown_ms),
            "between 100 and 3600000",
        ),
    ] {
        require(
            errors,
            ok,
            &key(&format!("circuit.{k}")),
            format!("must be {range}"),
        );
    }
}

/// `[pipeline]`: levels, lengths, budgets, and the turn-taking settings.
fn validate_pipeline(pl: &PipelineConfig, errors: &mut Vec<ConfigError>) {
    for (key, ok, reason) in [
        (
            "pipeline.speech_threshold_dbfs",
            (-90.0..=0.0).contains(&pl.speech_threshold_dbfs),
            "must be between -90 and 0 dBFS",
        ),
        (
            "pipeline.silence_hangover_ms",
            (100..=5_000).contains(&pl.silence_hangover_ms),
            "must be between 100 and 5000",
        ),
        (
            "pipeline.min_utterance_ms",
            pl.min_utterance_ms < pl.max_utterance_ms,
            "must be less than pipeline.max_utterance_ms",
        ),
        (
            "pipeline.max_utterance_ms",
            pl.max_utterance_ms <= 60_000,
            "must be at most 60000",
        ),
        (
            "pipeline.preroll_ms",
            pl.preroll_ms <= 1_000,
            "must be at most 1000",
        ),
        (
            "pipeline.stt_budget_ms",
            (100..=600_000).contains(&pl.stt_budget_ms),
            "must be between 100 and 600000",
        ),
        (
            "pipeline.tts_budget_ms",
            (100..=600_000).contains(&pl.tts_budget_ms),
            "must be between 100 and 600000",
        ),
    ] {
        require(errors, ok, key, reason);
    }
    if pl.language != "auto" {
        if let Err(reason) = LanguageCode::try_from(pl.language.clone()) {
            errors.push(invalid(
                "pipeline.language",
                format!("{reason}, or `auto` to detect it"),
            ));
        }
    }
    validate_turn_taking(pl, errors);
}

/// `[agent]`, `[sentry]` and `[ops]`.
fn validate_services(config: &Config, errors: &mut Vec<ConfigError>) {
    let url = &config.agent.base_url;
    require(
        errors,
        config.agent.kind != AgentKind::OpenaiChat
            || url.starts_with("http://")
            || url.starts_with("https://"),
        "agent.base_url",
        "must start with http:// or https://",
    );
    require(
        errors,
        (0.0..=1.0).contains(&config.sentry.traces_sample_rate),
        "sentry.traces_sample_rate",
        "must be between 0 and 1",
    );
    let ops = &config.ops;
    let interval = ops.health_check_interval_ms;
    require(
        errors,
        interval == 0 || (1_000..=86_400_000).contains(&interval),
        "ops.health_check_interval_ms",
        "must be 0 (off) or between 1000 and 86400000 (a day)",
    );
    require(
        errors,
        ops.shutdown_deadline_ms >= 100,
        "ops.shutdown_deadline_ms",
        "must be at least 100",
    );
    require(
        errors,
        (1..=65_536).contains(&ops.max_connections),
        "ops.max_connections",
        "must be between 1 and 65536",
    );
    require(
        errors,
        (100..=120_000).contains(&ops.header_read_timeout_ms),
        "ops.header_read_timeout_ms",
        "must be between 100 and 120000",
    );
}

/// `[discord]`: ids, the shard range, time limits, the API address.
fn validate_discord(d: &DiscordConfig, errors: &mut Vec<ConfigError>) {
    if d.token_env.trim().is_empty() {
        errors.push(invalid(
            "discord.token_env",
            "must name an environment variable",
        ));
    }
    if d.application_id == Some(0) {
        errors.push(invalid(
            "discord.application_id",
            "must be the application's id (a positive number)",
        ));
    }
    if d.allowed_roles.iter().any(|r| r.trim().is_empty()) {
        errors.push(invalid(
            "discord.allowed_roles",
            "holds an empty entry (give role ids or names)",
        ));
    }
    if d.auto_leave_after_ms != 0 && !(1_000..=86_400_000).contains(&d.auto_leave_after_ms) {
        errors.push(invalid(
            "discord.auto_leave_after_ms",
            "must be 0 (never) or between 1000 and 86400000",
        ));
    }
    if d.transcript_channel == Some(0) {
        errors.push(invalid(
            "discord.transcript_channel",
            "must be a channel id (a positive number)",
        ));
    }
    if d.auto_join_channels.contains(&0) {
        errors.push(invalid(
            "discord.auto_join_channels",
            "holds 0: give voice channel ids (right-click the channel → Copy Channel ID)",
        ));
    }
    if d.voice_reconnect_attempts > 20 {
        errors.push(invalid(
            "discord.voice_reconnect_attempts",
            "must be at most 20",
        ));
    }
    if let Some(url) = &d.api_base_url {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        if rest.is_none_or(|r| r.trim_end_matches('/').is_empty() || r.contains(['?', '#'])) {
            errors.push(invalid(
                "discord.api_base_url",
                format!("`{url}` is not a base URL like https://discord.com"),
            ));
        }
    }
}

/// Checks a stream-name template: known placeholders, no `:` or `*`, 1 to 512 characters.
pub fn check_stream_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("`{template}` has a `{{` without its `}}`"))?;
        let name = &rest[open + 1..open + close];
        if !["host", "shards", "env", "pid"].contains(&name) {
            return Err(format!(
                "`{{{name}}}` is not a placeholder (use {{host}}, {{shards}}, {{env}}, {{pid}})"
            ));
        }
        rest = &rest[open + close + 1..];
    }
    if template.is_empty() || template.len() > 512 || template.contains([':', '*']) {
        return Err("must be 1 to 512 characters without `:` or `*`".into());
    }
    Ok(())
}

/// `[logging.cloudwatch]`: names within CloudWatch Logs' rules, sane limits.
fn validate_cloudwatch(c: &CloudWatchConfig, errors: &mut Vec<ConfigError>) {
    if !c.enabled {
        return;
    }
    let group_ok = (1..=512).contains(&c.log_group.len())
        && c.log_group
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "._-/#".contains(ch));
    if !group_ok {
        errors.push(invalid(
            "logging.cloudwatch.log_group",
            "must be 1 to 512 characters of letters, digits and . _ - / # \
             (required when logging.cloudwatch.enabled)",
        ));
    }
    if let Err(reason) = check_stream_template(&c.stream) {
        errors.push(invalid("logging.cloudwatch.stream", reason));
    }
    if let Some(region) = &c.region {
        let ok = !region.is_empty()
            && region
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
        if !ok {
            errors.push(invalid(
                "logging.cloudwatch.region",
                format!("`{region}` is not a region like eu-west-1"),
            ));
        }
    }
    for (key, ok, range) in [
        (
            "flush_interval_ms",
            (100..=60_000).contains(&c.flush_interval_ms),
            "between 100 and 60000",
        ),
        (
            "buffer_events",
            (100..=1_000_000).contains(&c.buffer_events),
            "between 100 and 1000000",
        ),
        ("max_retries", c.max_retries <= 10, "at most 10"),
    ] {
        if !ok {
            errors.push(invalid(
                &format!("logging.cloudwatch.{key}"),
                format!("must be {range}"),
            ));
        }
    }
}
