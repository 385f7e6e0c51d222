//! Faulty plugins are refused or contained by the host library, which keeps serving: bad files
//! in the plugin directory, a panic while building a provider, a panic inside a call, a call
//! that hangs, and typed errors, all through the real `fault` test plugin `cdylib` loaded
//! from disk with `PluginSet::scan`, built with `Providers::build`, and called through the
//! host's provider handles.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openclaw_voice::config::Config;
use openclaw_voice::plugins::{Audio, LoadError, PluginSet, ProviderError, Providers};
use openclaw_voice_tests::{PluginDir, FAULT, NOT_A_PLUGIN, TONE};
use plugin_api::abi::{ErrorKind, SynthesisOptions, TranscribeOptions};

/// Runs `future` on a fresh multi-threaded runtime, then drops the runtime without waiting for
/// blocking threads: a hung plugin call must not hold up the test, as it must not hold up the
/// host.
fn block_on<F: Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("start a tokio runtime");
    let output = runtime.block_on(future);
    runtime.shutdown_background();
    output
}

/// A configuration from TOML text (the same schema as the config files).
fn config(text: &str) -> Config {
    toml::from_str(text).unwrap_or_else(|e| panic!("test config does not parse: {e}\n{text}"))
}

/// The fault plugin, loaded from a fresh copy.
fn fault_plugins() -> (PluginDir, PluginSet) {
    let dir = PluginDir::with(&[FAULT]);
    let set = PluginSet::scan(dir.path()).expect("scan the plugin directory");
    assert!(set.plugins.contains_key("fault"), "{:?}", set.failures);
    (dir, set)
}

/// Builds the providers `text` configures and checks that every one was built.
fn build_all(set: &PluginSet, text: &str) -> Providers {
    let providers = block_on(Providers::build(set, &config(text)));
    assert!(
        providers.failures.is_empty(),
        "setup failed: {:?}",
        providers.failures
    );
    providers
}

/// Every item of a synthesis, errors included, until the stream ends.
async fn collect(
    provider: &openclaw_voice::plugins::TextToSpeechProvider,
    text: &str,
) -> Vec<Result<Audio, ProviderError>> {
    let mut stream = provider.synthesize(text.to_string(), SynthesisOptions::default());
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        let failed = item.is_err();
        items.push(item);
        if failed {
            break;
        }
    }
    items
}

fn samples(values: &[i16]) -> Arc<[i16]> {
    Arc::from(values)
}

#[test]
fn scan_loads_the_plugins_and_reports_each_bad_file_on_one_line() {
    let dir = PluginDir::with(&[FAULT, TONE, NOT_A_PLUGIN]);
    let garbage = dir.write("libgarbage.so", b"\x7fELF but not really a library at all");
    let duplicate = dir.add_as(&openclaw_voice_tests::library(FAULT), "libzz_fault_copy.so");
    dir.write(
        "README.txt",
        b"not a library, and not named like one: ignored",
    );
    let not_a_plugin = dir.path().join(
        openclaw_voice_tests::library(NOT_A_PLUGIN)
            .file_name()
            .expect("a file name"),
    );

    let set = PluginSet::scan(dir.path()).expect("scan");

    let names: Vec<&str> = set.plugins.keys().map(String::as_str).collect();
    assert_eq!(names, ["fault", "tone"], "{:?}", set.failures);
    assert_eq!(set.failures.len(), 3, "{:?}", set.failures);
    let error_for = |path: &std::path::Path| {
        set.failures
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("no failure for {}: {:?}", path.display(), set.failures))
    };
    assert!(
        // An ELF header cut short: refused by the check that runs before anything maps it.
        matches!(
            error_for(garbage.as_path()).error,
            LoadError::Open(_) | LoadError::Corrupt(_)
        ),
        "{}",
        error_for(garbage.as_path())
    );
    assert_eq!(
        error_for(not_a_plugin.as_path()).error,
        LoadError::MissingSymbol
    );
    assert!(
        matches!(&error_for(duplicate.as_path()).error, LoadError::DuplicateName { name, .. } if name == "fault"),
        "{}",
        error_for(duplicate.as_path())
    );
    for failure in &set.failures {
        let line = failure.to_string();
        assert!(!line.contains('\n'), "one line per failure: {line}");
        assert!(
            line.starts_with(&failure.path.display().to_string()),
            "names the file first: {line}"
        );
    }

    // The good plugins are usable although bad files sat beside them.
    let providers = build_all(
        &set,
        r#"
        [stt]
        providers = ["fault"]
        [tts]
        providers = ["tone"]
        [providers.fault]
        [providers.tone]
        "#,
    );
    let transcript = block_on(providers.stt[0].transcribe(samples(&[1, 2, 3]), Default::default()))
        .expect("transcribe");
    assert_eq!(transcript.text, "3 samples, sum 6");
    let audio = block_on(collect(&providers.tts[0], "hello world"));
    assert_eq!(audio.len(), 2, "one chunk per word: {audio:?}");
}

#[test]
fn working_providers_carry_audio_text_and_voices_across_the_abi() {
    let (_dir, set) = fault_plugins();
    let providers = build_all(
        &set,
        r#"
        [stt]
        providers = ["fault"]
        [tts]
        providers = ["fault"]
        [providers.fault.settings]
        chunks = 3
        "#,
    );
    let one_second: Vec<i16> = (0..16_000).map(|n| (n % 200) as i16 - 100).collect();
    let expected_sum: i64 = one_second.iter().map(|&s| i64::from(s)).sum();
    let transcript =
        block_on(providers.stt[0].transcribe(Arc::from(one_second), TranscribeOptions::default()))
            .expect("transcribe");
    assert_eq!(
        transcript.text,
        format!("16000 samples, sum {expected_sum}")
    );

    let items = block_on(collect(&providers.tts[0], "four"));
    let chunks: Vec<Audio> = items.into_iter().map(|i| i.expect("a chunk")).collect();
    assert_eq!(chunks.len(), 3);
    for chunk in &chunks {
        assert_eq!(chunk.sample_rate, 16_000);
        assert_eq!(chunk.samples, vec![4; 160]);
    }
    let voices = block_on(providers.tts[0].voices()).expect("voices");
    assert_eq!(voices.len(), 1);
    assert_eq!(voices[0].id, "fault");
    assert!(block_on(providers.stt[0].check_health()).healthy);
}

#[test]
fn panic_in_constructor_is_a_setup_error_and_other_providers_still_build() {
    let (_dir, set) = fault_plugins();
    let providers = block_on(Providers::build(
        &set,
        &config(
            r#"
            [stt]
            providers = ["boom-stt", "good"]
            [tts]
            providers = ["boom-tts"]
            [providers.boom-stt]
            plugin = "fault"
            settings = { mode = "panic-in-constructor" }
            [providers.boom-tts]
            plugin = "fault"
            settings = { mode = "panic-in-constructor" }
            [providers.good]
            plugin = "fault"
            "#,
        ),
    ));
    let failed: Vec<&str> = providers
        .failures
        .iter()
        .map(|f| f.provider.as_str())
        .collect();
    assert_eq!(failed, ["boom-stt", "boom-tts"]);
    for (failure, role) in providers.failures.iter().zip(["stt", "tts"]) {
        let message = failure.to_string();
        assert!(
            message.contains("panicked")
                && message.contains(&format!("panic in the {role} constructor")),
            "names the panic: {message}"
        );
        assert!(!message.contains('\n'), "one line: {message}");
    }
    assert_eq!(providers.stt.len(), 1);
    assert_eq!(providers.stt[0].id, "good");
    let transcript = block_on(providers.stt[0].transcribe(samples(&[5]), Default::default()))
        .expect("the good provider works");
    assert_eq!(transcript.text, "1 samples, sum 5");
}

#[test]
fn panic_while_checking_settings_is_a_setup_error() {
    let (_dir, set) = fault_plugins();
    let providers = block_on(Providers::build(
        &set,
        &config(
            r#"
            [stt]
            providers = ["fault"]
            [providers.fault.settings]
            mode = "panic-in-validate"
            "#,
        ),
    ));
    assert!(providers.stt.is_empty());
    assert_eq!(providers.failures.len(), 1);
    let message = providers.failures[0].to_string();
    assert!(
        message.contains("provider `fault`") && message.contains("panic in validate_config"),
        "{message}"
    );
}

#[test]
fn panic_in_a_call_is_an_internal_error_and_the_next_call_works() {
    let (_dir, set) = fault_plugins();
    let providers = build_all(
        &set,
        r#"
        [stt]
        providers = ["flaky"]
        [tts]
        providers = ["flaky"]
        [providers.flaky]
        plugin = "fault"
        settings = { mode = "panic-in-call", fail_calls = 1 }
        "#,
    );
    let stt = &providers.stt[0];
    let err = block_on(stt.transcribe(samples(&[1, 1]), Default::default()))
        .expect_err("the first call panics");
    assert_eq!(err.kind, ErrorKind::Internal);
    assert_eq!(err.provider, "flaky");
    assert!(!err.retryable, "a panic is not retried: {err:?}");
    assert!(
        err.message.contains("panicked in transcribe") && err.message.contains("as configured"),
        "{err}"
    );
    let transcript = block_on(stt.transcribe(samples(&[1, 1]), Default::default()))
        .expect("the host and the provider survived the panic");
    assert_eq!(transcript.text, "2 samples, sum 2");

    let tts = &providers.tts[0];
    let first = block_on(collect(tts, "hi"));
    assert_eq!(first.len(), 1, "{first:?}");
    let err = first[0].as_ref().expect_err("synthesize panics");
    assert_eq!(err.kind, ErrorKind::Internal);
    assert!(err.message.contains("panicked in synthesize"), "{err}");
    let second = block_on(collect(tts, "hi"));
    assert_eq!(second.len(), 2, "the next synthesis works: {second:?}");
    assert!(second.iter().all(Result::is_ok), "{second:?}");
}

#[test]
fn panic_in_a_speech_stream_ends_it_with_an_internal_error() {
    let (_dir, set) = fault_plugins();
    let providers = build_all(
        &set,
        r#"
        [tts]
        providers = ["fault"]
        [providers.fault.settings]
        mode = "panic-in-stream"
        chunks = 5
        "#,
    );
    let items = block_on(collect(&providers.tts[0], "abc"));
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(
        items[0].as_ref().expect("the first chunk arrives").samples,
        vec![3; 160]
    );
    let err = items[1].as_ref().expect_err("then the panic, as an error");
    assert_eq!(err.kind, ErrorKind::Internal);
    assert!(err.message.contains("panicked in next_chunk"), "{err}");
}

#[test]
fn hung_call_times_out_and_the_host_keeps_serving() {
    let (_dir, set) = fault_plugins();
    let providers = build_all(
        &set,
        r#"
        [stt]
        providers = ["stuck", "good"]
        [tts]
        providers = ["stuck"]
        [providers.stuck]
        plugin = "fault"
        timeout_ms = 300
        max_concurrent_calls = 1
        settings = { mode = "hang" }
        [providers.good]
        plugin = "fault"
        "#,
    );
    let (stuck, good) = (&providers.stt[0], &providers.stt[1]);
    block_on(async {
        let started = Instant::now();
        let err = stuck
            .transcribe(samples(&[1]), Default::default())
            .await
            .expect_err("a hung call times out");
        let waited = started.elapsed();
        assert_eq!(err.kind, ErrorKind::Timeout);
        assert!(err.retryable);
        assert!(err.message.contains("300 ms"), "{err}");
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
            "timed out after {waited:?}"
        );

        // The host keeps serving: another provider answers at once…
        let started = Instant::now();
        let transcript = good
            .transcribe(samples(&[7, 8]), Default::default())
            .await
            .expect("the other provider works");
        assert_eq!(transcript.text, "2 samples, sum 15");
        assert!(started.elapsed() < Duration::from_secs(1));

        // …and the stuck one fails new calls within its timeout instead of piling up threads:
        // its only slot is still held by the abandoned call.
        let err = stuck
            .transcribe(samples(&[1]), Default::default())
            .await
            .expect_err("no free slot");
        assert_eq!(err.kind, ErrorKind::Timeout);
        assert!(err.message.contains("earlier calls are stuck"), "{err}");
    });

    // A synthesis that never yields a chunk times out too.
    let started = Instant::now();
    let items = block_on(collect(&providers.tts[0], "hello"));
    assert_eq!(items.len(), 1, "{items:?}");
    let err = items[0].as_ref().expect_err("times out");
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn plugin_errors_keep_their_kind_retryability_and_retry_after() {
    let (_dir, set) = fault_plugins();
    let providers = build_all(
        &set,
        r#"
        [stt]
        providers = ["limited", "denied", "down"]
        [tts]
        providers = ["refused"]
        [providers.limited]
        plugin = "fault"
        settings = { mode = "error", error_kind = "rate_limited", retry_after_ms = 1500, message = "too many requests" }
        [providers.denied]
        plugin = "fault"
        settings = { mode = "error", error_kind = "auth", message = "key refused" }
        [providers.down]
        plugin = "fault"
        settings = { mode = "error", error_kind = "unavailable", retryable = false }
        [providers.refused]
        plugin = "fault"
        settings = { mode = "error", error_kind = "invalid_input", message = "text too long" }
        "#,
    );
    let call = |n: usize| {
        block_on(providers.stt[n].transcribe(samples(&[0]), Default::default()))
            .expect_err("configured to fail")
    };

    let limited = call(0);
    assert_eq!(
        limited,
        ProviderError {
            provider: "limited".into(),
            kind: ErrorKind::RateLimited,
            message: "too many requests".into(),
            retryable: true,
            retry_after: Some(Duration::from_millis(1500)),
        }
    );
    assert!(limited.should_fail_over());

    let denied = call(1);
    assert_eq!(denied.kind, ErrorKind::Auth);
    assert!(!denied.retryable, "auth errors are not retried by default");
    assert_eq!(denied.retry_after, None);
    assert_eq!(
        denied.to_string(),
        "provider `denied`: auth error: key refused"
    );

    let down = call(2);
    assert_eq!(down.kind, ErrorKind::Unavailable);
    assert!(!down.retryable, "the plugin's override wins");

    let items = block_on(collect(&providers.tts[0], "a very long text"));
    let refused = items[0].as_ref().expect_err("configured to fail");
    assert_eq!(refused.kind, ErrorKind::InvalidInput);
    assert_eq!(refused.message, "text too long");
    assert!(
        !refused.should_fail_over(),
        "bad input fails on every provider"
    );
}
