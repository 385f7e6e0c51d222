//! End-to-end tests through [`TestPlugin`] (the same adapters the host drives), against the
//! real espeak-ng program: no mocks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use plugin_api::prelude::*;
use plugin_api::testing::TestPlugin;

use super::*;

fn plugin() -> TestPlugin {
    TestPlugin::new(definition)
}

fn samples(chunks: &[AudioChunk]) -> Vec<i16> {
    chunks
        .iter()
        .flat_map(|c| c.samples.iter().copied())
        .collect()
}

fn duration_s(chunks: &[AudioChunk]) -> f64 {
    chunks.iter().map(|c| c.samples.len()).sum::<usize>() as f64 / f64::from(SAMPLE_RATE)
}

fn rms(samples: &[i16]) -> f64 {
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

/// A long answer: many sentences, so synthesizing all of it takes far longer than the first.
fn long_text() -> String {
    (1..=30)
        .map(|i| format!("This is sentence number {i}, which is here to make the text long."))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn info_names_the_plugin_and_its_role() {
    let info = plugin().info().unwrap();
    assert_eq!(info.name.as_str(), "espeak");
    assert_eq!(info.provides.as_slice(), [Role::TextToSpeech]);
    assert!(info.capabilities.streaming);
    assert_eq!(info.capabilities.sample_rates.as_slice(), [SAMPLE_RATE]);
}

#[test]
fn short_sentence_is_audible_with_plausible_duration() {
    let tts = plugin().tts("").unwrap();
    let chunks = tts
        .synthesize_all("Hello, this is a short test.", &SynthesisOptions::default())
        .unwrap();
    assert!(!chunks.is_empty());
    assert!(chunks.iter().all(|c| c.sample_rate == 22_050));
    let seconds = duration_s(&chunks);
    assert!((1.0..=4.0).contains(&seconds), "{seconds} s");
    let all = samples(&chunks);
    assert!(rms(&all) > 500.0, "rms {}", rms(&all));
    assert!(all.iter().any(|s| s.unsigned_abs() > 5_000));
}

#[test]
fn multi_sentence_text_yields_several_chunks_and_the_first_comes_early() {
    let tts = plugin().tts("").unwrap();
    let text = long_text();
    let started = Instant::now();
    let stream = tts.start(&text, &SynthesisOptions::default()).unwrap();
    let mut chunks = Vec::new();
    let mut first_chunk_at = None;
    while let Some(chunk) = stream.next_chunk().unwrap() {
        first_chunk_at.get_or_insert_with(|| started.elapsed());
        chunks.push(chunk);
    }
    let total = started.elapsed();
    let first = first_chunk_at.unwrap();
    eprintln!(
        "{} chunks, {:.1} s of audio; first chunk after {first:?}, all after {total:?}",
        chunks.len(),
        duration_s(&chunks)
    );
    // One espeak-ng run per sentence, and sentences of over a second are cut into 200 ms.
    assert!(chunks.len() >= 30, "{} chunks", chunks.len());
    assert!(chunks.iter().all(|c| c.duration_ms() <= 200));
    // The first chunk does not wait for the other 29 sentences.
    assert!(first * 4 < total, "first {first:?}, total {total:?}");
    let seconds = duration_s(&chunks);
    assert!((60.0..=200.0).contains(&seconds), "{seconds} s");
}

#[test]
fn sentences_are_separated_by_a_pause_and_the_final_pause_is_trimmed() {
    let tts = plugin().tts("").unwrap();
    let one = tts
        .synthesize_all("Hello there.", &SynthesisOptions::default())
        .unwrap();
    let two = tts
        .synthesize_all("Hello there. Hello there.", &SynthesisOptions::default())
        .unwrap();
    let (one, two) = (samples(&one), samples(&two));
    // Speech from the first sample to the last.
    assert!(one[0].unsigned_abs() > 8 && one[one.len() - 1].unsigned_abs() > 8);
    // The second copy follows after espeak-ng's own sentence pause (about 300 ms).
    let pause = two.len() - 2 * one.len();
    let pause_ms = pause as f64 * 1000.0 / 22_050.0;
    assert!((200.0..=400.0).contains(&pause_ms), "{pause_ms} ms");

    let untrimmed = plugin().tts("trim_silence = false").unwrap();
    let raw = samples(
        &untrimmed
            .synthesize_all("Hello there.", &SynthesisOptions::default())
            .unwrap(),
    );
    let extra_ms = (raw.len() - one.len()) as f64 * 1000.0 / 22_050.0;
    assert!((250.0..=400.0).contains(&extra_ms), "{extra_ms} ms");
    assert_eq!(raw[0], 0);

    let gapped = plugin().tts("gap_ms = 50").unwrap();
    let gapped = samples(
        &gapped
            .synthesize_all("Hello there. Hello there.", &SynthesisOptions::default())
            .unwrap(),
    );
    assert_eq!(gapped.len() - 2 * one.len(), 22_050 / 20);
}

#[test]
fn behaves_as_the_host_expects() {
    plugin().check_tts("", &long_text()).unwrap();
}

#[test]
fn cancel_stops_the_stream_promptly() {
    let tts = plugin().tts("").unwrap();
    let stream = tts
        .start(&long_text(), &SynthesisOptions::default())
        .unwrap();
    assert!(stream.next_chunk().unwrap().is_some());
    let cancelled_at = Instant::now();
    stream.cancel();
    assert!(stream.next_chunk().unwrap().is_none());
    assert!(stream.next_chunk().unwrap().is_none());
    assert!(cancelled_at.elapsed() < Duration::from_millis(100));
}

fn job(sentences: Vec<String>, chunk_ms: u32, standby: Option<&Arc<Standby>>) -> stream::Job {
    stream::Job {
        engine: Espeak::locate("espeak-ng").unwrap(),
        prosody: default_prosody(&Settings::default()),
        voice_origin: VoiceOrigin::Settings,
        sentences,
        chunk_ms,
        gap_ms: None,
        trim_silence: true,
        standby: standby.map(Arc::downgrade),
    }
}

#[test]
fn cancelling_kills_espeak_and_ends_the_worker() {
    // One enormous sentence: espeak-ng is still writing when the synthesis is cancelled.
    let cancel = CancelToken::new();
    let job = job(vec!["word ".repeat(8_000)], 200, None);
    let (mut stream, worker) = stream::start(job, cancel.clone()).unwrap();
    assert!(stream.next_chunk().unwrap().is_some());
    let cancelled_at = Instant::now();
    cancel.cancel();
    assert!(stream.next_chunk().unwrap().is_none());
    let outcome = worker.join().unwrap();
    assert_eq!(outcome, stream::Outcome::Stopped);
    assert!(
        cancelled_at.elapsed() < Duration::from_millis(500),
        "{:?}",
        cancelled_at.elapsed()
    );
}

#[test]
fn dropping_the_stream_ends_the_worker() {
    let job = job(vec!["word ".repeat(8_000)], 20, None);
    let (stream, worker) = stream::start(job, CancelToken::new()).unwrap();
    drop(stream);
    assert_eq!(worker.join().unwrap(), stream::Outcome::Stopped);
}

#[test]
fn standby_process_is_used_and_refilled() {
    let engine = Espeak::locate("espeak-ng").unwrap();
    let standby = Arc::new(Standby::new(engine, default_prosody(&Settings::default())));
    assert!(standby.is_ready());
    let sentences = vec!["One.".to_string(), "Two.".into(), "Three.".into()];
    let (mut stream, worker) =
        stream::start(job(sentences, 200, Some(&standby)), CancelToken::new()).unwrap();
    let mut chunks = 0;
    while stream.next_chunk().unwrap().is_some() {
        chunks += 1;
    }
    assert!(chunks >= 3);
    assert_eq!(worker.join().unwrap(), stream::Outcome::Completed);
    assert!(
        standby.is_ready(),
        "a new process waits for the next synthesis"
    );
}

#[test]
fn prespawned_processes_make_the_same_audio() {
    let text = "First sentence here. A second one, with a comma! And a third?";
    let warm = plugin().tts("").unwrap();
    let cold = plugin().tts("prespawn = false").unwrap();
    for _ in 0..2 {
        let a = samples(
            &warm
                .synthesize_all(text, &SynthesisOptions::default())
                .unwrap(),
        );
        let b = samples(
            &cold
                .synthesize_all(text, &SynthesisOptions::default())
                .unwrap(),
        );
        assert_eq!(a.len(), b.len());
        assert!(a == b, "prespawned audio differs");
    }
}

#[test]
fn bad_settings_are_refused_with_their_name() {
    let plugin = plugin();
    for (settings, expected) in [
        ("rate = 1000", "rate"),
        ("pitch = 120", "pitch"),
        ("sped = 100", "sped"),
        ("voice = \"xx-nope\"", "xx-nope"),
        ("binary = \"espeak-ng-not-here\"", "espeak-ng-not-here"),
    ] {
        let err = plugin
            .validate_config(Role::TextToSpeech, settings)
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config, "{settings}: {err}");
        assert!(err.message().contains(expected), "{settings}: {err}");
        let err = plugin.tts(settings).err().unwrap();
        assert_eq!(err.kind, ErrorKind::Config, "{settings}: {err}");
    }
    let err = plugin
        .validate_config(Role::TextToSpeech, "binary = \"espeak-ng-not-here\"")
        .unwrap_err();
    assert!(err.message().contains("apt-get install espeak-ng"), "{err}");
    plugin
        .validate_config(Role::TextToSpeech, "voice = \"en-gb\"\nrate = 220")
        .unwrap();
    assert!(plugin.validate_config(Role::SpeechToText, "").is_err());
}

#[test]
fn a_binary_that_fails_is_unavailable() {
    let err = plugin().tts("binary = \"/bin/false\"").err().unwrap();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains("/bin/false"), "{err}");
}

#[test]
fn text_starting_with_a_dash_is_spoken_not_parsed() {
    let tts = plugin().tts("").unwrap();
    for text in [
        "-v xx --help",
        "--version",
        "-5 degrees outside",
        "- bullet point",
    ] {
        let chunks = tts
            .synthesize_all(text, &SynthesisOptions::default())
            .unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert!(duration_s(&chunks) > 0.1, "{text:?}");
    }
}

#[test]
fn odd_text_does_not_panic() {
    let tts = plugin().tts("").unwrap();
    for text in [
        "\u{1F44D}",
        "a\0b",
        "<speak>tags</speak>",
        "\u{202E}reversed",
        "x",
        "1.",
        "Zürich, São Paulo, 東京.",
    ] {
        let result = tts.synthesize_all(text, &SynthesisOptions::default());
        assert!(result.is_ok(), "{text:?}: {result:?}");
    }
}

#[test]
fn empty_text_is_invalid_input() {
    let tts = plugin().tts("").unwrap();
    for text in ["", "   \n\t", "... !?"] {
        let err = tts
            .synthesize(text, &SynthesisOptions::default())
            .err()
            .unwrap();
        assert_eq!(err.kind, ErrorKind::InvalidInput, "{text:?}: {err}");
    }
    let long = "a ".repeat(MAX_TEXT_CHARS);
    let err = tts
        .synthesize(&long, &SynthesisOptions::default())
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
}

#[test]
fn requested_voices_and_languages() {
    let tts = plugin().tts("").unwrap();
    let with_voice = |voice: &str| SynthesisOptions::new().with_voice(voice);
    let female = tts
        .synthesize_all("Hello.", &with_voice("en-us+f3"))
        .unwrap();
    assert!(duration_s(&female) > 0.2);

    let err = tts
        .synthesize_all("Hello.", &with_voice("xx-nope"))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("xx-nope"), "{err}");

    let err = tts
        .synthesize("Hello.", &with_voice("--help"))
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");

    let german = SynthesisOptions::new().with_language("de");
    assert!(duration_s(&tts.synthesize_all("Guten Tag.", &german).unwrap()) > 0.3);
}

#[test]
fn voices_are_listed_and_health_runs_the_program() {
    let tts = plugin().tts("").unwrap();
    let voices = tts.voices().unwrap();
    assert!(voices.len() > 50, "{} voices", voices.len());
    assert!(voices.iter().any(|v| v.id.as_str() == "en-us"));
    assert_eq!(tts.voices().unwrap(), voices);
    let health = tts.health().unwrap();
    assert!(health.healthy, "{health:?}");
    assert!(health.detail.as_str().contains("eSpeak NG"), "{health:?}");
}
