//! Times the piper plugin through the same adapters the host drives ([`TestPlugin`]): time to
//! the first audio chunk and real-time factor, per text, as JSON lines for
//! `bench/piper/bench.py`, which runs the Python piper-tts on the same voice and texts.
//!
//! ```sh
//! cargo run --release -p openclaw-plugin-piper --example bench -- VOICE.onnx THREADS RUNS TEXTS.txt
//! ```
//!
//! Each line of TEXTS.txt is one text; each is synthesized once to warm up, then RUNS times.

use std::error::Error;
use std::time::Instant;

use openclaw_plugin_piper::definition;
use plugin_api::abi::SynthesisOptions;
use plugin_api::abi_stable::std_types::ROption;
use plugin_api::testing::TestPlugin;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [voice, threads, runs, texts] = args.as_slice() else {
        return Err("usage: bench VOICE.onnx THREADS RUNS TEXTS.txt".into());
    };
    let runs: usize = runs.parse()?;
    let plugin = TestPlugin::new(definition);
    let loading = Instant::now();
    let tts = plugin.tts(&format!("voice = \"{voice}\"\nthreads = {threads}"))?;
    eprintln!(
        "voice loaded in {:.0} ms",
        loading.elapsed().as_secs_f64() * 1e3
    );
    for text in std::fs::read_to_string(texts)?
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let mut first = Vec::new();
        let mut total = Vec::new();
        let mut audio = 0.0;
        for run in 0..=runs {
            let started = Instant::now();
            let stream = tts.synthesize(text, &SynthesisOptions::default())?;
            let mut first_at = None;
            let mut samples = 0usize;
            let mut rate = 1;
            while let ROption::RSome(chunk) = stream.next_chunk().into_result()? {
                first_at.get_or_insert_with(|| started.elapsed().as_secs_f64() * 1e3);
                samples += chunk.samples.len();
                rate = chunk.sample_rate;
            }
            if run > 0 {
                first.push(first_at.unwrap_or_default());
                total.push(started.elapsed().as_secs_f64() * 1e3);
                audio = samples as f64 / f64::from(rate);
            }
        }
        println!(
            "{}",
            serde_json::json!({"text": text, "first_ms": first, "total_ms": total, "audio_s": audio})
        );
    }
    Ok(())
}
