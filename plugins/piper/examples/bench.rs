//! Times the piper plugin through the same adapters the host drives ([`TestPlugin`]), for
//! `bench/piper/bench.py`, which alternates it with the Python piper-tts on the same voice and
//! texts so that both see the same machine load.
//!
//! ```sh
//! cargo run --release -p openclaw-plugin-piper --example bench -- VOICE.onnx THREADS
//! ```
//!
//! Reads one text per line on stdin; for each, synthesizes it and prints a JSON line: time to
//! the first chunk, total time (ms) and seconds of audio.

use std::error::Error;
use std::io::{BufRead, Write};
use std::time::Instant;

use openclaw_plugin_piper::definition;
use plugin_api::abi::SynthesisOptions;
use plugin_api::abi_stable::std_types::ROption;
use plugin_api::testing::TestPlugin;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [voice, threads] = args.as_slice() else {
        return Err("usage: bench VOICE.onnx THREADS < texts".into());
    };
    let plugin = TestPlugin::new(definition);
    let loading = Instant::now();
    let tts = plugin.tts(&format!("voice = \"{voice}\"\nthreads = {threads}"))?;
    eprintln!(
        "voice loaded in {:.0} ms",
        loading.elapsed().as_secs_f64() * 1e3
    );
    let mut out = std::io::stdout().lock();
    for text in std::io::stdin().lock().lines() {
        let text = text?;
        let started = Instant::now();
        let stream = tts.synthesize(&text, &SynthesisOptions::default())?;
        let mut first_ms = None;
        let (mut samples, mut rate) = (0usize, 1);
        while let ROption::RSome(chunk) = stream.next_chunk().into_result()? {
            first_ms.get_or_insert_with(|| started.elapsed().as_secs_f64() * 1e3);
            samples += chunk.samples.len();
            rate = chunk.sample_rate;
        }
        let total_ms = started.elapsed().as_secs_f64() * 1e3;
        let audio_s = samples as f64 / f64::from(rate);
        let line =
            serde_json::json!({"first_ms": first_ms, "total_ms": total_ms, "audio_s": audio_s});
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok(())
}
