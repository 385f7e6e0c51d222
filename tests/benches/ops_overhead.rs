//! Ops overhead: what the ops server costs a running host.
//!
//! Starts the real binary headless (`run` with `discord.enabled = false`, the `fault` plugin
//! as both providers, so no model is loaded), waits for `/ready`, then measures:
//! - the host's RSS and CPU while idle (ops server listening, nobody calling),
//! - `/metrics` scrape time over loopback (a new connection per scrape, as measured by the
//!   client: connect, request, full body), and its CPU cost,
//! - RSS after the scrapes.
//!
//! Run: `cargo build --release -p openclaw-voice -p openclaw-test-plugin-fault && cargo bench
//! -p openclaw-voice-tests --bench ops_overhead`. Results: docs/BENCHMARKS.md, "Ops overhead".

use std::time::{Duration, Instant};

use openclaw_voice_tests::{http_get, toml_path, ConfigDir, PluginDir, Running, FAULT};

const SCRAPES: usize = 1_000;
const IDLE: Duration = Duration::from_secs(10);

/// (utime + stime) in clock ticks, from /proc/<pid>/stat.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/<pid>/stat");
    // Fields after the command name (which is in parentheses and may hold spaces).
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

fn status_kb(pid: u32, key: &str) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("a VmRSS line")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    measure("Sentry off", &[]);
    // Sentry on: its transport thread and runtime idle too (nothing is listening there).
    measure(
        "Sentry on (SENTRY_DSN set)",
        &[("SENTRY_DSN", "http://public@127.0.0.1:9/1")],
    );
}

fn measure(label: &str, env: &[(&str, &str)]) {
    let plugins = PluginDir::with(&[FAULT]);
    let config = ConfigDir::new();
    config.write(
        "bench.toml",
        &format!(
            "[plugins]\ndir = {}\n\
             [stt]\nproviders = [\"ears\"]\n[tts]\nproviders = [\"voice\"]\n\
             [providers.ears]\nplugin = \"fault\"\n[providers.voice]\nplugin = \"fault\"\n\
             [ops]\nenabled = true\nbind = \"127.0.0.1:0\"\n\
             [discord]\nenabled = false\n[logging]\nlevel = \"warn\"\n",
            toml_path(plugins.path())
        ),
    );
    let args = [
        "--config-dir".to_string(),
        config.path().display().to_string(),
        "--env".into(),
        "bench".into(),
        "run".into(),
    ];
    let mut host = Running::spawn(args, env);
    let addr = host.ops_addr(Duration::from_secs(30));
    let ready_by = Instant::now() + Duration::from_secs(30);
    while http_get(addr, "/ready", None).map(|r| r.status).ok() != Some(200) {
        assert!(Instant::now() < ready_by, "never ready: {}", host.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = host.pid();
    let tck = ticks_per_second();

    // Idle: the ops server listening, nobody calling.
    std::thread::sleep(Duration::from_secs(1));
    let t0 = cpu_ticks(pid);
    std::thread::sleep(IDLE);
    let idle_ticks = cpu_ticks(pid) - t0;
    let idle_cpu = idle_ticks as f64 / tck / IDLE.as_secs_f64();
    let rss_idle = status_kb(pid, "VmRSS:");
    let hwm_idle = status_kb(pid, "VmHWM:");

    // Scrapes.
    let size = http_get(addr, "/metrics", None).expect("scrape").body.len();
    for _ in 0..50 {
        let _ = http_get(addr, "/metrics", None);
    }
    let t0 = cpu_ticks(pid);
    let started = Instant::now();
    let mut times = Vec::with_capacity(SCRAPES);
    for _ in 0..SCRAPES {
        let t = Instant::now();
        let r = http_get(addr, "/metrics", None).expect("scrape");
        times.push(t.elapsed());
        assert_eq!(r.status, 200);
    }
    let wall = started.elapsed();
    let scrape_cpu_ms = (cpu_ticks(pid) - t0) as f64 / tck * 1000.0 / SCRAPES as f64;
    times.sort();
    let rss_after = status_kb(pid, "VmRSS:");

    let health_t = {
        let mut t = Vec::new();
        for _ in 0..200 {
            let s = Instant::now();
            let _ = http_get(addr, "/health", None).expect("health");
            t.push(s.elapsed());
        }
        t.sort();
        percentile(&t, 0.5)
    };

    host.signal("TERM");
    let run = host.finish(Duration::from_secs(15));
    assert!(run.success(), "{run}");

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("ops overhead, {label} (release build, fault plugin as both providers, no model)");
    println!(
        "  idle {:.0} s: CPU {:.3}% of a core ({} ticks), RSS {:.1} MB (peak {:.1} MB)",
        IDLE.as_secs_f64(),
        idle_cpu * 100.0,
        idle_ticks,
        rss_idle as f64 / 1024.0,
        hwm_idle as f64 / 1024.0
    );
    println!(
        "  /metrics ({size} bytes), {SCRAPES} scrapes, new connection each: median {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms; {:.0} scrapes/s",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.9)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().expect("scrapes")),
        SCRAPES as f64 / wall.as_secs_f64()
    );
    println!(
        "  host CPU per scrape: {scrape_cpu_ms:.3} ms; RSS after the scrapes {:.1} MB",
        rss_after as f64 / 1024.0
    );
    println!("  /health median {:.3} ms", ms(health_t));
}
