//! What the memory examples share: resident-memory readings, medians, and the synthetic
//! inputs they run Silero VAD and Smart Turn on.

/// A `/proc/self/status` field (`VmRSS:`, `RssAnon:` …) in MB; 0 where there is none.
pub fn status_mb(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The median of `times`.
pub fn median_ms(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Silero windows run: 940 of them, 30 s at 16 kHz.
pub const SILERO_WINDOWS: usize = 940;

/// Silero's `n`th window of a tone: 576 samples (64 of context, 512 new).
pub fn silero_window(n: usize) -> Vec<f32> {
    (0..576)
        .map(|i| ((n * 576 + i) as f32 * 0.05).sin() * 0.3)
        .collect()
}

/// Smart Turn features: 80 mel bins by 800 frames.
pub fn smart_turn_features() -> Vec<f32> {
    (0..80 * 800)
        .map(|i| ((i % 800) as f32 * 0.01).sin())
        .collect()
}
