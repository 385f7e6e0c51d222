//! The plugin driven through the SDK's adapters with a real voice: `en_US-joe-medium`, which
//! `make model` puts in the models directory (tests only: its licence is not clear enough to
//! ship it, see docs/MODELS.md).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use plugin_api::abi::{ErrorKind, Role, SynthesisOptions};
use plugin_api::abi_stable::std_types::{ROption, RString};
use plugin_api::sdk::{AudioStream, CancelToken};
use plugin_api::testing::TestPlugin;
use unicode_normalization::UnicodeNormalization;

use super::*;

/// The test voice, or a panic saying how to get it.
pub(crate) fn joe() -> PathBuf {
    let path = openclaw_onnx::models_dir()
        .map(|d| d.join("en_US-joe-medium.onnx"))
        .filter(|p| p.is_file());
    path.expect("the Piper voice en_US-joe-medium: run `make model`")
}

fn settings(extra: &str) -> String {
    format!("voice = \"{}\"\n{extra}", joe().display())
}

/// Noise off: the model's output is then the same on every call.
const STILL: &str = "noise_scale = 0.0\nnoise_w = 0.0";

fn samples(plugin: &TestPlugin, settings: &str, text: &str) -> Vec<i16> {
    let tts = plugin.tts(settings).unwrap();
    let chunks = tts
        .synthesize_all(text, &SynthesisOptions::default())
        .unwrap();
    assert!(chunks.iter().all(|c| c.sample_rate == 22_050));
    chunks
        .iter()
        .flat_map(|c| c.samples.iter().copied())
        .collect()
}

#[test]
fn the_reference_sentence_has_pipers_ids_and_sounds() {
    let (parsed, voice, phonemizer) = check(&settings("")).unwrap();
    assert_eq!(parsed.threads, 1);
    let sentences = clauses::split("Sure, I can help you with that.");
    let phonemes = phonemizer.phonemize(&sentences[0]).unwrap();
    let ids = voice.phoneme_ids(phonemes.iter().map(String::as_str));
    // piper-tts 1.8 on the same text (../shared/notes/onnx-speech-models.md).
    let expected = [
        1, 0, 96, 0, 120, 0, 100, 0, 88, 0, 8, 0, 3, 0, 14, 0, 74, 0, 3, 0, 23, 0, 39, 0, 26, 0, 3,
        0, 20, 0, 120, 0, 61, 0, 24, 0, 28, 0, 3, 0, 22, 0, 33, 0, 122, 0, 3, 0, 35, 0, 74, 0, 41,
        0, 3, 0, 41, 0, 120, 0, 39, 0, 32, 0, 10, 0, 2,
    ];
    assert_eq!(ids, expected);

    let plugin = TestPlugin::new(definition);
    let audio = samples(&plugin, &settings(""), "Sure, I can help you with that.");
    let seconds = audio.len() as f64 / 22_050.0;
    assert!((1.0..3.5).contains(&seconds), "{seconds} s");
    assert_eq!(audio.iter().map(|s| s.unsigned_abs()).max(), Some(32767));
}

#[test]
fn sentences_stream_in_order_and_in_chunks() {
    let plugin = TestPlugin::new(definition);
    let still = settings(STILL);
    let first = samples(&plugin, &still, "The kettle is on.");
    let second = samples(&plugin, &still, "Tea is ready in five minutes!");
    let both = samples(
        &plugin,
        &still,
        "The kettle is on. Tea is ready in five minutes!",
    );
    assert_eq!(both, [first.clone(), second].concat());

    let tts = plugin.tts(&format!("{still}\nchunk_ms = 100")).unwrap();
    let chunks = tts
        .synthesize_all("The kettle is on.", &SynthesisOptions::default())
        .unwrap();
    assert!(chunks.iter().all(|c| c.samples.len() <= 2205));
    assert_eq!(chunks.len(), first.len().div_ceil(2205));

    let gap = samples(
        &plugin,
        &format!("{still}\nsentence_silence_ms = 100"),
        "The kettle is on. Tea is ready in five minutes!",
    );
    assert_eq!(gap.len(), both.len() + 2205);
}

#[test]
fn the_first_sentence_is_heard_before_the_rest_is_made() {
    let plugin = TestPlugin::new(definition);
    let tts = plugin.tts(&settings("")).unwrap();
    let long = "This is the first sentence. ".to_string()
        + &"Then comes a much longer sentence that takes the model a while to speak. ".repeat(6);
    let started = Instant::now();
    let stream = tts.synthesize(&long, &SynthesisOptions::default()).unwrap();
    let first = stream.next_chunk().into_result().unwrap();
    let first_at = started.elapsed();
    assert!(matches!(first, ROption::RSome(_)));
    while let ROption::RSome(_) = stream.next_chunk().into_result().unwrap() {}
    let total = started.elapsed();
    assert!(first_at * 3 < total, "first {first_at:?}, all {total:?}");
}

#[test]
fn cancel_stops_the_worker() {
    let (parsed, voice, phonemizer) = check(&settings("")).unwrap();
    let model = model::VoiceModel::load(&parsed.model_path().unwrap(), None, false, 1).unwrap();
    let engine = Arc::new(Engine {
        voice,
        model,
        phonemizer,
    });
    let scales = engine.voice.scales;
    let job = || Job {
        sentences: clauses::split(&"One more sentence to say. ".repeat(20)),
        scales,
        speaker: None,
        chunk_samples: 4410,
        silence_samples: 0,
    };
    let cancel = CancelToken::new();
    let (mut stream, worker) = stream::start(engine.clone(), job(), cancel.clone()).unwrap();
    assert!(stream.next_chunk().unwrap().is_some());
    cancel.cancel();
    let stopped = Instant::now();
    assert!(stream.next_chunk().unwrap().is_none());
    assert_eq!(worker.join().unwrap(), stream::Outcome::Stopped);
    assert!(stopped.elapsed() < Duration::from_secs(2));

    // A dropped stream stops the worker too.
    let (stream, worker) = stream::start(engine, job(), CancelToken::new()).unwrap();
    drop(stream);
    assert_eq!(worker.join().unwrap(), stream::Outcome::Stopped);
}

#[test]
fn bad_configuration_and_requests_are_typed_errors() {
    let plugin = TestPlugin::new(definition);
    let e = plugin
        .validate_config(Role::TextToSpeech, "voice = \"/nonexistent/v.onnx\"")
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.message().contains("make model"), "{}", e.message());
    let e = plugin
        .validate_config(Role::SpeechToText, &settings(""))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    let e = plugin
        .tts(&settings(
            "onnxruntime = \"/nonexistent/libonnxruntime.so\"",
        ))
        .err()
        .expect("a missing runtime is refused");
    // This process may have opened the runtime already; a fresh one names the file.
    assert_eq!(e.kind, ErrorKind::Config, "{}", e.message());
    let e = plugin.tts(&settings("speaker = 2")).err().unwrap();
    assert!(e.message().contains("single speaker"), "{}", e.message());

    let tts = plugin.tts(&settings("")).unwrap();
    let e = tts
        .synthesize(" ?! ", &SynthesisOptions::default())
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    let french = SynthesisOptions {
        language: ROption::RSome(RString::from("fr")),
        ..SynthesisOptions::default()
    };
    let e = tts.synthesize("Bonjour.", &french).err().unwrap();
    assert!(e.message().contains("[tts.voices]"), "{}", e.message());
    let english = SynthesisOptions {
        language: ROption::RSome(RString::from("en")),
        voice: ROption::RSome(RString::from("en_US-joe-medium")),
        ..SynthesisOptions::default()
    };
    assert!(!tts.synthesize_all("Hello.", &english).unwrap().is_empty());
    assert_eq!(tts.voices().unwrap()[0].id.as_str(), "en_US-joe-medium");
    assert!(tts.health().unwrap().healthy);
}

/// 20 reply sentences and the phonemes piper-tts 1.8 makes for them (its bundled espeak-ng),
/// as `sentence|phonemes`, one sentence per line.
const PIPER_TTS_PHONEMES: &str = include_str!("../tests/piper-tts-phonemes.txt");

#[test]
fn phonemes_match_piper_tts_on_reply_sentences() {
    let phonemizer = Phonemizer::new("espeak-ng", "en-us").unwrap();
    let mut same = 0;
    let mut total = 0;
    let (mut edits, mut length) = (0, 0);
    for line in PIPER_TTS_PHONEMES.lines().filter(|l| !l.is_empty()) {
        let (text, expected) = line.split_once('|').unwrap();
        let ours: String = clauses::split(text)
            .iter()
            .map(|s| phonemizer.phonemize(s).unwrap().concat())
            .collect::<Vec<_>>()
            .join("|");
        let expected: String = expected.nfd().collect();
        total += 1;
        edits += edit_distance(&ours, &expected);
        length += expected.chars().count();
        if ours == expected {
            same += 1;
        } else {
            // Only espeak-ng's version may differ: the punctuation and sentence cuts may not.
            let marks = |s: &str| {
                s.chars()
                    .filter(|c| ",.?!;:|".contains(*c))
                    .collect::<String>()
            };
            assert_eq!(marks(&ours), marks(&expected), "{text}\n{ours}\n{expected}");
        }
    }
    assert_eq!(total, 20);
    // Debian's espeak-ng 1.51 against the newer one bundled in piper-tts 1.8: that one adds
    // glides (`θɹˈiːʲ`) and says `fˈɔːɹ` for `fˈoːɹ` (docs/BENCHMARKS.md, "Piper").
    assert!(same >= 10, "{same} of {total} identical");
    assert!(
        edits * 100 <= length * 3,
        "{edits} edits in {length} phonemes"
    );
}

/// Levenshtein distance between the codepoints of `a` and `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}
