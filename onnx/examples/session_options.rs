//! What ONNX Runtime's session options do to the turn-taking models' resident memory and
//! speed: one variant per run (resident memory is per process), each on top of the lean
//! sessions the host uses (no memory pattern, no pre-packing, one thread); `second-silero`
//! loads Silero twice to show what a session costs beyond the runtime's own set-up. Loads Silero VAD
//! and Smart Turn from the models directory, runs Silero on 30 s of audio one window at a
//! time and Smart Turn 10 times, and prints RSS and its high-water mark after each step and
//! the median time per call.
//!
//! ```sh
//! for v in lean global-pool silero-no-arena no-arena device-initializers from-memory \
//!          no-spinning trim second-silero; do
//!     cargo run -q --release -p openclaw-onnx --example session_options -- $v
//! done
//! ```
//!
//! Figures: docs/BENCHMARKS.md, "Turn taking" → "Memory".

use std::path::Path;
use std::time::Instant;

mod common;
use common::{median_ms, silero_window, smart_turn_features, status_mb, SILERO_WINDOWS};

use ort::environment::GlobalThreadPoolOptions;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

type Error = Box<dyn std::error::Error>;

/// The variants, by name.
const VARIANTS: &[&str] = &[
    "lean",
    "global-pool",
    "silero-no-arena",
    "no-arena",
    "device-initializers",
    "from-memory",
    "no-spinning",
    "trim",
    "second-silero",
];

/// RSS, its anonymous part, and the high-water mark so far.
fn rss() -> String {
    format!(
        "RSS {:.1} MB (anon {:.1}), peak {:.1} MB",
        status_mb("VmRSS:"),
        status_mb("RssAnon:"),
        status_mb("VmHWM:")
    )
}

/// Gives freed heap pages back to the system, as the host does after loading its models.
fn trim(variant: &str) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if variant == "trim" {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim takes a plain integer and only walks glibc's own free lists.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// A lean session for `path` with `variant`'s change.
fn open(path: &Path, variant: &str, is_silero: bool) -> Result<Session, Error> {
    let arena = !(variant == "no-arena" || (variant == "silero-no-arena" && is_silero));
    let cpu = ort::ep::CPU::default().with_arena_allocator(arena).build();
    let mut builder = Session::builder()?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(1)?
        .with_inter_threads(1)?
        .with_memory_pattern(false)?
        .with_prepacking(false)?
        .with_execution_providers([cpu])?;
    match variant {
        "device-initializers" => builder = builder.with_device_allocated_initializers()?,
        "no-spinning" => {
            builder = builder
                .with_intra_op_spinning(false)?
                .with_inter_op_spinning(false)?
        }
        _ => {}
    }
    let session = if variant == "from-memory" {
        builder.commit_from_memory(&std::fs::read(path)?)?
    } else {
        builder.commit_from_file(path)?
    };
    trim(variant);
    Ok(session)
}

/// Runs Silero over 940 windows (30 s at 16 kHz) and Smart Turn 10 times; the median times.
fn run_models(silero: &mut Session, turn: &mut Session) -> Result<(f64, f64), Error> {
    let mut state = vec![0f32; 256];
    let sr = [16_000i64];
    let mut times = Vec::new();
    for n in 0..SILERO_WINDOWS {
        let window = silero_window(n);
        let started = Instant::now();
        let outputs = silero.run(ort::inputs![
            "input" => TensorRef::from_array_view(([1usize, 576], &window[..]))?,
            "state" => TensorRef::from_array_view(([2usize, 1, 128], &state[..]))?,
            "sr" => TensorRef::from_array_view((&[] as &[usize], &sr[..]))?,
        ])?;
        let (_, next) = outputs["stateN"].try_extract_tensor::<f32>()?;
        state.copy_from_slice(next);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let silero_ms = median_ms(times);
    let features = smart_turn_features();
    let mut times = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        turn.run(ort::inputs![
            "input_features" => TensorRef::from_array_view(([1usize, 80, 800], &features[..]))?
        ])?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((silero_ms, median_ms(times)))
}

fn main() -> Result<(), Error> {
    let variant = std::env::args().nth(1).unwrap_or_else(|| "lean".into());
    if !VARIANTS.contains(&variant.as_str()) {
        return Err(format!("unknown variant {variant}: one of {}", VARIANTS.join(", ")).into());
    }
    let dir = openclaw_onnx::models_dir().ok_or("HOME is not set")?;
    let mut environment = ort::init_from(openclaw_onnx::find_runtime(None)?)?;
    if variant == "global-pool" {
        let pool = GlobalThreadPoolOptions::default()
            .with_intra_threads(1)?
            .with_inter_threads(1)?
            .with_spin_control(false)?;
        environment = environment.with_global_thread_pool(pool);
    }
    environment.with_name("session-options").commit();
    let mut silero = open(&dir.join("silero_vad.onnx"), &variant, true)?;
    println!("{variant}: Silero loaded: {}", rss());
    // What one more Silero session costs (one per model, not per speaker, in the host).
    let _second = if variant == "second-silero" {
        let second = open(&dir.join("silero_vad.onnx"), &variant, true)?;
        println!("{variant}: Silero loaded again: {}", rss());
        Some(second)
    } else {
        None
    };
    let mut turn = open(&dir.join("smart-turn-v3.2-cpu.onnx"), &variant, false)?;
    println!("{variant}: Smart Turn loaded: {}", rss());
    let (silero_ms, turn_ms) = run_models(&mut silero, &mut turn)?;
    trim(&variant);
    println!(
        "{variant}: after the calls: {}; median call Silero {silero_ms:.3} ms, Smart Turn \
         {turn_ms:.1} ms",
        rss()
    );
    Ok(())
}
