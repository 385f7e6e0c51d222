//! What loading and running the turn-taking models costs in resident memory and time, with
//! ONNX Runtime's default session memory behaviour or the lean one: loads Silero VAD and
//! Smart Turn from the models directory, runs Silero on 30 s of audio (one window at a time,
//! as the host does) and Smart Turn 10 times, and prints RSS after each step and the median
//! time per call.
//!
//! `cargo run --release -p openclaw-onnx --example model_memory -- default|lean`

use std::time::Instant;

mod common;
use common::{median_ms, silero_window, smart_turn_features, status_mb, SILERO_WINDOWS};

use openclaw_onnx::signatures::{
    SILERO_INPUTS, SILERO_OUTPUTS, SMART_TURN_INPUTS, SMART_TURN_OUTPUTS,
};
use openclaw_onnx::{Input, Model, ModelOptions};

/// RSS, and its anonymous (heap) and file-backed (library code) parts.
fn rss_mb() -> String {
    format!(
        "{:.1} MB (anon {:.1}, file {:.1})",
        status_mb("VmRSS:"),
        status_mb("RssAnon:"),
        status_mb("RssFile:")
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "default".into());
    let options = match mode.as_str() {
        "lean" => ModelOptions::lean(),
        "default" => ModelOptions::default(),
        other => return Err(format!("unknown mode {other}: default or lean").into()),
    };
    let dir = openclaw_onnx::models_dir().ok_or("HOME is not set")?;
    openclaw_onnx::init(&openclaw_onnx::find_runtime(None)?)?;
    println!("{mode}: runtime opened: {}", rss_mb());
    let silero = Model::load_with(
        &dir.join("silero_vad.onnx"),
        &SILERO_INPUTS,
        &SILERO_OUTPUTS,
        options,
    )?;
    println!("{mode}: Silero loaded: {}", rss_mb());
    let turn = Model::load_with(
        &dir.join("smart-turn-v3.2-cpu.onnx"),
        &SMART_TURN_INPUTS,
        &SMART_TURN_OUTPUTS,
        options,
    )?;
    println!("{mode}: Smart Turn loaded: {}", rss_mb());
    let mut state = vec![0f32; 256];
    let mut times = Vec::new();
    for n in 0..SILERO_WINDOWS {
        let window = silero_window(n);
        let started = Instant::now();
        let out = silero.run(&[
            ("input", Input::F32(&[1, 576], &window)),
            ("state", Input::F32(&[2, 1, 128], &state)),
            ("sr", Input::I64(&[], &[16_000])),
        ])?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        state.copy_from_slice(&out[1].data);
    }
    println!(
        "{mode}: Silero 940 windows: {}, median {:.3} ms",
        rss_mb(),
        median_ms(times)
    );
    let features = smart_turn_features();
    let mut times = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        turn.run(&[("input_features", Input::F32(&[1, 80, 800], &features))])?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "{mode}: Smart Turn 10 calls: {}, median {:.1} ms",
        rss_mb(),
        median_ms(times)
    );
    Ok(())
}
