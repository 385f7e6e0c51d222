//! Discord voice at scale: N guilds with one speaker each, through the fake Discord.
//!
//! Starts the fake Discord with N extra guilds (one voice channel, one user already in it),
//! then the real bot (`run`, release build) with the `fault` plugin for speech-to-text (it
//! answers at once: speech-to-text is excluded from the cost), the `tone` plugin for
//! text-to-speech and the echo agent. Each user runs `/voice join`; once every call is up:
//!
//! - **idle**: RSS and CPU of the bot with N joined, silent sessions (RSS per idle session
//!   is measured against the bot before any join);
//! - **active**: every user talks (espeak-ng speech, Opus, encrypted RTP at 50 packets/s,
//!   2.5 s of speech then a 0.7 s pause, so turns end and the bot answers with tones that it
//!   mixes, encodes and sends): CPU per active speaker and the speakers one core carries.
//!
//! The fake runs in this process and its work (encryption, sending) is not counted: the
//! numbers are the bot's own CPU time (`/proc/<pid>/stat`) and RSS (`/proc/<pid>/status`).
//!
//! Run: `cargo build --release -p openclaw-voice -p openclaw-test-plugin-fault -p
//! openclaw-plugin-tone && cargo bench -p openclaw-voice-tests --bench discord_voice`.
//! `OCV_BENCH_GUILDS` sets N (default 100, comma-separated for several runs);
//! `OCV_BENCH_SECONDS` the active measurement (default 20); `OCV_BENCH_DAVE=1` runs every call
//! under DAVE (protocol 1: each user a real MLS member whose Opus is end-to-end encrypted, the
//! bot decrypting it and encrypting its replies), the DAVE column. Results: docs/BENCHMARKS.md,
//! "Discord voice at scale".

use std::sync::Arc;
use std::time::{Duration, Instant};

use openclaw_voice_tests::fake_discord::{audio, FakeDiscord, SayOptions};
use openclaw_voice_tests::{toml_path, ConfigDir, PluginDir, Running, FAULT, TONE};

/// (utime + stime) in clock ticks, from /proc/<pid>/stat.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/<pid>/stat");
    let rest = &stat[stat.rfind(')').expect("comm ends with )") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn rss_kb(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("a VmRSS line")
}

/// The bot's CPU use over `window`, in cores (1.0 = one core busy).
fn cores_used(pid: u32, window: Duration) -> f64 {
    let t0 = cpu_ticks(pid);
    let start = Instant::now();
    std::thread::sleep(window);
    let ticks = cpu_ticks(pid) - t0;
    ticks as f64 / ticks_per_second() / start.elapsed().as_secs_f64()
}

fn main() {
    let counts: Vec<usize> = std::env::var("OCV_BENCH_GUILDS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100]);
    let seconds: u64 = std::env::var("OCV_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dave = std::env::var("OCV_BENCH_DAVE").is_ok_and(|v| v == "1");
    println!("DAVE: {}", if dave { "on (protocol 1)" } else { "off" });
    println!(
        "{:>6} | {:>9} | {:>13} | {:>13} | {:>12} | {:>14} | {:>16} | {:>8}",
        "guilds",
        "RSS base",
        "RSS/idle sess",
        "idle CPU/sess",
        "active CPU",
        "CPU/speaker",
        "speakers/core",
        "replies"
    );
    for n in counts {
        measure(n, Duration::from_secs(seconds), dave);
    }
}

fn measure(n: usize, active_for: Duration, dave: bool) {
    let fake = FakeDiscord::start();
    let guilds = fake.add_load_guilds(n);
    fake.set_decode_bot_audio(false);
    fake.set_dave_version(u16::from(dave));
    let plugins = PluginDir::with(&[FAULT, TONE]);
    let config = ConfigDir::new();
    config.write(
        "bench.toml",
        &format!(
            "[plugins]\ndir = {}\n\
             [stt]\nproviders = [\"ears\"]\n[tts]\nproviders = [\"voice\"]\n\
             [providers.ears]\nplugin = \"fault\"\nmax_concurrent_calls = 64\n\
             [providers.voice]\nplugin = \"tone\"\nmax_concurrent_calls = 64\n\
             [providers.voice.settings]\nbeep_ms = 80\ngap_ms = 40\n\
             [ops]\nenabled = false\n[logging]\nlevel = \"warn\"\n\
             [discord]\nauto_leave_after_ms = 0\n",
            toml_path(plugins.path())
        ),
    );
    let env = fake.bot_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut bot = Running::spawn(
        [
            "--config-dir",
            config.path().to_str().expect("a UTF-8 path"),
            "--env",
            "bench",
            "run",
        ],
        &env,
    );
    assert!(
        bot.wait_for_stderr("discord: connected as", Duration::from_secs(60))
            && fake.wait_ready(1, Duration::from_secs(60)),
        "the bot did not connect\n{}",
        bot.stderr()
    );
    let pid = bot.pid();
    std::thread::sleep(Duration::from_secs(2));
    let rss_base = rss_kb(pid);

    // Everyone joins the bot to their channel.
    let interactions: Vec<u64> = guilds
        .iter()
        .map(|&(guild, _, user)| fake.slash(guild, user, "join"))
        .collect();
    for id in &interactions {
        let reply = fake
            .wait_reply(*id, Duration::from_secs(120))
            .unwrap_or_else(|| panic!("no answer to a join\n{}", bot.stderr()));
        assert!(
            reply.content.contains("Joined"),
            "{reply:?}\n{}",
            bot.stderr()
        );
    }
    for &(guild, _, _) in &guilds {
        assert!(
            fake.wait_bot_connected(guild, Duration::from_secs(60))
                .is_some(),
            "guild {guild} not connected\n{}",
            bot.stderr()
        );
    }

    // Idle sessions.
    std::thread::sleep(Duration::from_secs(5));
    let idle_cores = cores_used(pid, Duration::from_secs(10));
    let rss_idle = rss_kb(pid);

    // Everyone talks.
    let speech = audio::speech("One two three four five, this is a load test.", 0);
    let frames = Arc::new(audio::opus_frames(&speech));
    let utterance = Duration::from_millis(frames.len() as u64 * 20 + 700);
    let repeats =
        ((active_for + Duration::from_secs(8)).as_millis() / utterance.as_millis()) as usize + 1;
    let packets_before: usize = guilds
        .iter()
        .map(|(g, _, _)| fake.bot_audio(*g).packets)
        .sum();
    for (i, &(guild, _, user)) in guilds.iter().enumerate() {
        // Spread the starts over one packet interval.
        std::thread::sleep(Duration::from_micros(20_000 / n.max(1) as u64));
        let _ = i;
        fake.say_frames(
            guild,
            user,
            frames.clone(),
            SayOptions {
                gap_ms: 700,
                ..SayOptions::default()
            },
            repeats,
        );
    }
    // Let the first turns happen, then measure.
    std::thread::sleep(Duration::from_secs(5));
    let active_cores = cores_used(pid, active_for);
    let replied = guilds
        .iter()
        .filter(|(g, _, _)| fake.bot_audio(*g).packets > 0)
        .count();
    let packets_after: usize = guilds
        .iter()
        .map(|(g, _, _)| fake.bot_audio(*g).packets)
        .sum();

    let per_idle_kb = rss_idle.saturating_sub(rss_base) as f64 / n as f64;
    let per_speaker = active_cores / n as f64;
    println!(
        "{n:>6} | {:>6.1} MB | {:>10.2} MB | {:>11.3} % | {:>6.2} cores | {:>12.3} % | {:>16.0} | {replied:>4}/{n}",
        rss_base as f64 / 1024.0,
        per_idle_kb / 1024.0,
        idle_cores / n as f64 * 100.0,
        active_cores,
        per_speaker * 100.0,
        if per_speaker > 0.0 { 1.0 / per_speaker } else { f64::INFINITY },
    );
    eprintln!(
        "  ({n} guilds: bot sent {} reply packets while measured; idle {:.3} cores total)",
        packets_after - packets_before,
        idle_cores
    );
    bot.signal("TERM");
    let _ = bot.finish(Duration::from_secs(30));
}
