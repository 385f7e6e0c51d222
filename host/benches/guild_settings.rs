//! A guild's settings lookup on the turn path (goal: ≤ 50 µs p99), cached in front of a real
//! SQLite store: 1,000 guilds with settings, lookups over random guilds, one guild's entry
//! invalidated (a `/voice-settings set`) every 1,000 lookups, so the figure includes the
//! database reads that follow a change.
//!
//! `cargo bench -p openclaw-voice --bench guild_settings`

use std::time::{Duration, Instant};

use openclaw_voice::config::{Config, StorageConfig};
use openclaw_voice::guild::{GuildDefaults, GuildStore, SettingKey};

const GUILDS: u64 = 1_000;
const LOOKUPS: usize = 200_000;
const INVALIDATE_EVERY: usize = 1_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

async fn bench() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StorageConfig {
        path: dir.path().join("bench.sqlite").display().to_string(),
        database_url_env: None,
        cache_ttl_ms: 30_000,
    };
    let defaults = GuildDefaults::from_config(&Config::default());
    let store = GuildStore::open(&config, defaults).await.expect("open");
    for guild in 1..=GUILDS {
        let lang = if guild % 2 == 0 { "de" } else { "fr" };
        store
            .set(guild, SettingKey::Language, lang, "u-bench")
            .await
            .expect("set");
        store
            .set(guild, SettingKey::WakeNames, "claw,jarvis", "u-bench")
            .await
            .expect("set");
    }
    let mut times = Vec::with_capacity(LOOKUPS);
    for i in 0..LOOKUPS {
        let guild = fastrand::u64(1..=GUILDS);
        if i % INVALIDATE_EVERY == 0 {
            store.invalidate(guild);
        }
        let start = Instant::now();
        let settings = store.settings(guild).await;
        times.push(start.elapsed());
        assert!(!settings.wake_names.is_empty());
    }
    times.sort();
    println!(
        "guild settings lookup over {GUILDS} guilds, {LOOKUPS} lookups, one invalidation per \
         {INVALIDATE_EVERY}: p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.1} µs, max {:.1} µs",
        percentile(&times, 0.50).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6,
        percentile(&times, 0.999).as_secs_f64() * 1e6,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1e6,
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}
