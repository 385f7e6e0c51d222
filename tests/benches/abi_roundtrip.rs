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
//! Run: `cargo build --release -p openclaw-test-plugin-fault && cargo bench -p
//! openclaw-voice-tests --bench abi_roundtrip`. Results: docs/BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;

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

fn abi_roundtrip(c: &mut Criterion) {
    let dir = PluginDir::with(&[FAULT]);
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
}

criterion_group!(benches, abi_roundtrip);
criterion_main!(benches);
