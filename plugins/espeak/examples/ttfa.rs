//! Measures the espeak plugin's latency: time to first audio chunk, total synthesis time and
//! real-time factor, through the same adapters the host drives ([`TestPlugin`]).
//!
//! ```sh
//! cargo run --release -p openclaw-plugin-espeak --example ttfa [-- RUNS]
//! ```
//!
//! Prints a Markdown table (the numbers in `docs/BENCHMARKS.md` come from it). Rows:
//!
//! - `3 sentences`: a typical short assistant answer, with the defaults, without prespawned
//!   processes and without silence trimming;
//! - `30 sentences`: a long answer, to show that the first chunk does not wait for the rest;
//! - one `espeak-ng` run on the whole 3-sentence text, output read to the end: what a
//!   non-streaming plugin would wait for before its first audio.

use std::error::Error;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use openclaw_plugin_espeak::definition;
use plugin_api::abi::SynthesisOptions;
use plugin_api::abi_stable::std_types::ROption;
use plugin_api::testing::{TestPlugin, TestTts};

const ANSWER: &str = "Sure, I can help with that. The meeting is scheduled for 3.30 pm \
                      tomorrow in room 4. Let me know if you need anything else!";

/// One synthesis, measured.
struct Run {
    /// From `synthesize` to the first chunk.
    first_chunk: Duration,
    /// From `synthesize` to the first sample above silence (first chunk + leading silence
    /// that would be played before it).
    first_sound: Duration,
    /// From `synthesize` to the end of the stream.
    total: Duration,
    /// Seconds of audio produced.
    audio: f64,
    chunks: usize,
}

fn measure(tts: &TestTts, text: &str) -> Result<Run, Box<dyn Error>> {
    let started = Instant::now();
    let stream = tts.synthesize(text, &SynthesisOptions::default())?;
    let mut first_chunk = None;
    let mut silent_before_sound = 0usize;
    let mut heard = false;
    let mut samples = 0usize;
    let mut rate = 22_050;
    let mut chunks = 0;
    while let ROption::RSome(chunk) = stream.next_chunk().into_result()? {
        first_chunk.get_or_insert_with(|| started.elapsed());
        rate = chunk.sample_rate;
        chunks += 1;
        for &s in chunk.samples.iter() {
            if !heard && s.unsigned_abs() <= 8 {
                silent_before_sound += 1;
            } else {
                heard = true;
            }
        }
        samples += chunk.samples.len();
    }
    let total = started.elapsed();
    let first_chunk = first_chunk.ok_or("no audio")?;
    let silence = Duration::from_secs_f64(silent_before_sound as f64 / f64::from(rate));
    Ok(Run {
        first_chunk,
        first_sound: first_chunk + silence,
        total,
        audio: samples as f64 / f64::from(rate),
        chunks,
    })
}

/// espeak-ng on the whole text at once, waiting for all of its output.
fn one_shot(text: &str) -> Result<Duration, Box<dyn Error>> {
    let started = Instant::now();
    let mut child = Command::new("espeak-ng")
        .args(["--stdin", "--stdout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(text.as_bytes())?;
    let mut wav = Vec::new();
    child
        .stdout
        .take()
        .ok_or("no stdout")?
        .read_to_end(&mut wav)?;
    child.wait()?;
    Ok(started.elapsed())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn p90(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[(values.len() * 9 / 10).min(values.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn row(label: &str, runs: &[Run]) {
    let first: Vec<f64> = runs.iter().map(|r| ms(r.first_chunk)).collect();
    let sound: Vec<f64> = runs.iter().map(|r| ms(r.first_sound)).collect();
    let total: Vec<f64> = runs.iter().map(|r| ms(r.total)).collect();
    let audio = runs[0].audio;
    let rtf: Vec<f64> = runs
        .iter()
        .map(|r| r.total.as_secs_f64() / r.audio)
        .collect();
    println!(
        "| {label} | {:.1} / {:.1} | {:.1} | {:.1} / {:.1} | {audio:.2} s | {} | {:.4} |",
        median(first.clone()),
        p90(first),
        median(sound),
        median(total.clone()),
        p90(total),
        runs[0].chunks,
        median(rtf),
    );
}

fn main() -> Result<(), Box<dyn Error>> {
    let runs: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 30,
    };
    let plugin = TestPlugin::new(definition);
    let long: String = (1..=30)
        .map(|i| format!("This is sentence number {i}, which is here to make the text long."))
        .collect::<Vec<_>>()
        .join(" ");
    let cases = [
        ("3 sentences, defaults", plugin.tts("")?, ANSWER),
        (
            "3 sentences, prespawn = false",
            plugin.tts("prespawn = false")?,
            ANSWER,
        ),
        (
            "3 sentences, trim_silence = false",
            plugin.tts("trim_silence = false")?,
            ANSWER,
        ),
        ("30 sentences, defaults", plugin.tts("")?, long.as_str()),
        (
            "30 sentences, prespawn = false",
            plugin.tts("prespawn = false")?,
            long.as_str(),
        ),
    ];

    // Warm up: page cache, espeak-ng data files.
    for (_, tts, text) in &cases {
        measure(tts, text)?;
    }
    // Interleaved, so that background load hits every case alike; the pause stands for the
    // time between two answers (and lets a standby process finish starting).
    let mut results: Vec<Vec<Run>> = cases.iter().map(|_| Vec::new()).collect();
    let mut shots = Vec::new();
    for _ in 0..runs {
        for ((_, tts, text), measured) in cases.iter().zip(&mut results) {
            std::thread::sleep(Duration::from_millis(50));
            measured.push(measure(tts, text)?);
        }
        std::thread::sleep(Duration::from_millis(50));
        shots.push(ms(one_shot(ANSWER)?));
    }

    println!("{runs} runs each; times in ms, median / p90; RTF = total synthesis time / audio");
    println!();
    println!("| text, settings | first chunk | first sound | total | audio | chunks | RTF |");
    println!("|---|---|---|---|---|---|---|");
    for ((label, _, _), measured) in cases.iter().zip(&results) {
        row(label, measured);
    }
    println!(
        "| 3 sentences, one `espeak-ng` run on the whole text (no streaming) | {:.1} / {:.1} (all of it) | | | | | |",
        median(shots.clone()),
        p90(shots)
    );
    Ok(())
}
