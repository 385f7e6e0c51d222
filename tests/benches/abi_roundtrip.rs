//! Cost of one plugin ABI round trip (host → plugin → host) with one second of 16 kHz audio
//! (16 000 `i16` samples), against a direct Rust call doing the same work.
//!
//! The plugin is the `fault` test plugin in `ok` mode, loaded from its release `cdylib` through
//! the host's own loader ([`PluginSet::scan`]); its `transcribe` sums the samples and formats
//! the count and sum as the transcript's text. [`describe`] below is the same work, compiled
//! into this benchmark. Three numbers:
//!
//! - `direct_call`: [`describe`] called directly;
//! - `abi_call`: `SttBox::transcribe` on the provider the plugin built (the ABI round trip:
//!   the sabi_trait vtable call, the SDK's `catch_unwind` guard, the `RResult` and the
//!   `RString` allocated in the plugin and freed by the host);
//! - `host_provider`: `SpeechToTextProvider::transcribe`, the path the pipeline takes
//!   (a semaphore permit, `spawn_blocking`, a timeout), awaited with `block_on`.
//!
//! The `stt_empty` group repeats the first two with no samples, leaving the fixed cost of a
//! call: the ABI's overhead without the work.
//!
//! Criterion's medians drift when other processes share the machine, and the two calls are
//! measured a minute apart. So the benchmark also prints an interleaved measurement: 600
//! rounds, each timing 200 direct calls then 200 ABI calls, keeping each one's best round (a
//! round short enough to run undisturbed now and then). Their difference is the overhead.
//!
//! Run: `cargo build --release -p openclaw-test-plugin-fault && cargo bench -p
//! openclaw-voice-tests --bench abi_roundtrip`. Set `ABI_BENCH_PLUGIN` to the path of another
//! build of the fault plugin to measure that one instead. Results: docs/BENCHMARKS.md.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use abi_stable::std_types::RStr;
use criterion::{criterion_group, criterion_main, Criterion};
use openclaw_voice::config::ProviderConfig;
use openclaw_voice::plugins::PluginSet;
use openclaw_voice_tests::{PluginDir, FAULT};
use plugin_api::abi::{Pcm16kMono, SttBox, TranscribeOptions, Transcript};

/// The work the `fault` plugin's `transcribe` does in `ok` mode, as a direct call.
fn describe(samples: &[i16]) -> Transcript {
    let sum: i64 = samples.iter().map(|&s| i64::from(s)).sum();
    Transcript::new(format!("{} samples, sum {sum}", samples.len()))
}

/// One second of 16 kHz audio: a deterministic, non-constant signal.
fn one_second() -> Vec<i16> {
    (0..16_000u32)
        .map(|n| ((n.wrapping_mul(7_919) % 65_536) as i32 - 32_768) as i16)
        .collect()
}

/// Best time per call of `direct` and of `abi`, in ns, from interleaved rounds.
fn interleaved_best(mut direct: impl FnMut(), mut abi: impl FnMut()) -> (f64, f64) {
    const ROUNDS: usize = 600;
    const CALLS: u32 = 200;
    let per_call = |started: Instant| started.elapsed().as_secs_f64() * 1e9 / f64::from(CALLS);
    let (mut best_direct, mut best_abi) = (f64::MAX, f64::MAX);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for _ in 0..CALLS {
            direct();
        }
        best_direct = best_direct.min(per_call(started));
        let started = Instant::now();
        for _ in 0..CALLS {
            abi();
        }
        best_abi = best_abi.min(per_call(started));
    }
    (best_direct, best_abi)
}

fn report_interleaved(stt: &SttBox, options: &TranscribeOptions, samples: &[i16], label: &str) {
    let (direct, abi) = interleaved_best(
        || {
            black_box(describe(black_box(samples)));
        },
        || {
            let _ = black_box(
                stt.transcribe(Pcm16kMono::new(black_box(samples)), black_box(options))
                    .into_result(),
            );
        },
    );
    println!(
        "interleaved best of 600x200 calls, {label}: direct {direct:.0} ns, abi {abi:.0} ns, \
         overhead {:.0} ns per call",
        abi - direct
    );
}

fn abi_roundtrip(c: &mut Criterion) {
    let dir = match std::env::var_os("ABI_BENCH_PLUGIN") {
        // Another build of the fault plugin (other compiler flags), by path.
        Some(path) => {
            let dir = PluginDir::new();
            dir.add_as(Path::new(&path), "libopenclaw_test_plugin_fault.so");
            dir
        }
        None => PluginDir::with(&[FAULT]),
    };
    let set = PluginSet::scan(dir.path()).expect("scan the plugin directory");
    let plugin = set
        .plugins
        .get("fault")
        .unwrap_or_else(|| panic!("the fault plugin did not load: {:?}", set.failures));
    let stt: SttBox = (plugin.module().new_stt())(RStr::from_str(""))
        .into_result()
        .expect("build the fault plugin's stt provider");

    let samples = one_second();
    let options = TranscribeOptions::default();
    let through_abi = stt
        .transcribe(Pcm16kMono::new(&samples), &options)
        .into_result()
        .expect("transcribe through the ABI");
    assert_eq!(
        through_abi,
        describe(&samples),
        "the benchmark's direct call must do exactly the plugin's work"
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start a tokio runtime");
    let config = ProviderConfig {
        plugin: Some("fault".into()),
        ..ProviderConfig::default()
    };
    let provider = runtime
        .block_on(set.build_stt("bench", &config))
        .expect("build the host provider");
    let audio: Arc<[i16]> = samples.clone().into();

    let mut group = c.benchmark_group("stt_1s_16khz");
    group.bench_function("direct_call", |b| b.iter(|| describe(black_box(&samples))));
    group.bench_function("abi_call", |b| {
        b.iter(|| {
            stt.transcribe(Pcm16kMono::new(black_box(&samples)), black_box(&options))
                .into_result()
        })
    });
    group.bench_function("host_provider", |b| {
        b.iter(|| runtime.block_on(provider.transcribe(audio.clone(), options.clone())))
    });
    group.finish();

    // The same calls with no samples: what is left is the fixed cost of a call.
    let empty: &[i16] = &[];
    let mut group = c.benchmark_group("stt_empty");
    group.bench_function("direct_call", |b| b.iter(|| describe(black_box(empty))));
    group.bench_function("abi_call", |b| {
        b.iter(|| {
            stt.transcribe(Pcm16kMono::new(black_box(empty)), black_box(&options))
                .into_result()
        })
    });
    group.finish();

    report_interleaved(&stt, &options, &samples, "1 s buffer");
    report_interleaved(&stt, &options, &[], "no samples");
    let (host, abi) = interleaved_best(
        || {
            let _ =
                black_box(runtime.block_on(provider.transcribe(audio.clone(), options.clone())));
        },
        || {
            let _ = black_box(
                stt.transcribe(Pcm16kMono::new(black_box(&samples)), black_box(&options))
                    .into_result(),
            );
        },
    );
    println!(
        "interleaved best of 600x200 calls, 1 s buffer: host provider path {host:.0} ns, \
         abi {abi:.0} ns, spawn_blocking + timeout + permit {:.0} ns per call",
        host - abi
    );
}

criterion_group!(benches, abi_roundtrip);
criterion_main!(benches);
