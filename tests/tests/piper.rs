//! The piper plugin loaded by the host from its built library, next to espeak, with speech
//! checked by ear: local-whisper transcribes 20 reply sentences spoken by each voice, and
//! Piper's word error rate must be at most espeak-ng's and at most 0.10.
//!
//! Needs `make model` (Whisper tiny.en, ONNX Runtime, the Piper voice en_US-joe-medium) and
//! `cargo build --workspace` (the plugin libraries and the worker binary).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use openclaw_voice::config::{Config, Isolation, ProviderConfig};
use openclaw_voice::plugins::worker::WorkerLauncher;
use openclaw_voice::plugins::{PluginSet, Providers, TextToSpeechProvider};
use openclaw_voice_tests::{binary, whisper_model, PluginDir, ESPEAK, LOCAL_WHISPER, PIPER};
use plugin_api::abi::{SynthesisOptions, TranscribeOptions};

/// The 20 sentences: the first field of each line of the piper plugin's phoneme reference.
fn sentences() -> Vec<String> {
    include_str!("../../plugins/piper/tests/piper-tts-phonemes.txt")
        .lines()
        .filter_map(|l| l.split_once('|').map(|(text, _)| text.to_string()))
        .collect()
}

fn joe() -> String {
    let dir = std::env::var_os("OPENCLAW_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/openclaw-voice/models"))
        })
        .expect("HOME is set");
    let voice = dir.join("en_US-joe-medium.onnx");
    assert!(
        voice.is_file(),
        "{} is missing: run `make model`",
        voice.display()
    );
    voice.display().to_string()
}

fn provider(plugin: &str, isolation: Isolation, settings: &[(&str, String)]) -> ProviderConfig {
    ProviderConfig {
        plugin: Some(plugin.into()),
        isolation,
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), toml::Value::String(v.clone())))
            .collect(),
        ..ProviderConfig::default()
    }
}

async fn providers(dir: &PluginDir) -> Providers {
    let mut config = Config::default();
    config.stt.providers = vec!["whisper".into()];
    config.tts.providers = vec!["piper".into(), "espeak".into()];
    config.providers.insert(
        "whisper".into(),
        provider(
            "local-whisper",
            Isolation::Process,
            &[("model", whisper_model().display().to_string())],
        ),
    );
    config.providers.insert(
        "piper".into(),
        provider("piper", Isolation::InProcess, &[("voice", joe())]),
    );
    config.providers.insert(
        "espeak".into(),
        provider("espeak", Isolation::InProcess, &[]),
    );
    let set = PluginSet::for_config(dir.path(), &config)
        .with_launcher(WorkerLauncher { program: binary() });
    let providers = Providers::build(&set, &config).await;
    assert!(
        providers.failures.is_empty() && providers.tts.len() == 2,
        "{:?}",
        providers.failures
    );
    providers
}

/// Silence before and after each clip, in milliseconds.
const PAD_MS: usize = 300;

/// `text` spoken by `tts`, as 16 kHz mono (resampled by sox, as a user would).
async fn speak(tts: &TextToSpeechProvider, text: &str, scratch: &Path) -> Vec<i16> {
    let mut stream = tts.synthesize(text.to_string(), SynthesisOptions::default());
    let (mut samples, mut rate) = (Vec::new(), 0);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("audio");
        rate = chunk.sample_rate;
        samples.extend(chunk.samples);
    }
    // As the endpointer hands an utterance over: with pre-roll and trailing silence.
    let pad = vec![0; rate as usize * PAD_MS / 1000];
    let samples = [pad.as_slice(), &samples, &pad].concat();
    let (wav, wav16) = (scratch.join("in.wav"), scratch.join("out.wav"));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&wav, spec).expect("write a WAV");
    samples
        .iter()
        .for_each(|s| writer.write_sample(*s).expect("write"));
    writer.finalize().expect("finish the WAV");
    let status = Command::new("sox")
        .arg(&wav)
        .args(["-r", "16000"])
        .arg(&wav16)
        .status()
        .expect("sox is installed (`make deps`)");
    assert!(status.success());
    hound::WavReader::open(&wav16)
        .expect("read the WAV")
        .samples::<i16>()
        .map(|s| s.expect("a sample"))
        .collect()
}

/// Number words Whisper writes as digits.
const NUMBERS: [&str; 21] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
];

/// Lower-case words without punctuation, number words as digits (as Whisper writes them).
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(|w| match NUMBERS.iter().position(|n| *n == w) {
            Some(n) => n.to_string(),
            None => w.to_string(),
        })
        .collect()
}

/// Word-level edit distance.
fn errors(reference: &[String], heard: &[String]) -> usize {
    let mut row: Vec<usize> = (0..=heard.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, h) in heard.iter().enumerate() {
            let substitute = diagonal + usize::from(r != h);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[heard.len()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piper_is_at_least_as_intelligible_as_espeak_through_whisper() {
    let dir = PluginDir::with(&[PIPER, ESPEAK, LOCAL_WHISPER]);
    let providers = providers(&dir).await;
    let stt = providers.stt[0].clone();
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let (mut total_words, mut piper_errors, mut espeak_errors) = (0, 0, 0);
    for text in sentences() {
        let reference = words(&text);
        total_words += reference.len();
        for (name, tts, errors_so_far) in [
            ("piper", &providers.tts[0], &mut piper_errors),
            ("espeak", &providers.tts[1], &mut espeak_errors),
        ] {
            let audio: Arc<[i16]> = speak(tts, &text, scratch.path()).await.into();
            let heard = stt
                .transcribe(audio, TranscribeOptions::default())
                .await
                .expect("a transcript");
            let wrong = errors(&reference, &words(heard.text.as_str()));
            if wrong > 0 {
                eprintln!("{name}: {text:?} heard as {:?}", heard.text.as_str());
            }
            *errors_so_far += wrong;
        }
    }
    let piper = piper_errors as f64 / total_words as f64;
    let espeak = espeak_errors as f64 / total_words as f64;
    eprintln!("WER over {total_words} words: piper {piper:.3}, espeak {espeak:.3}");
    assert!(piper <= espeak, "piper {piper:.3} > espeak {espeak:.3}");
    assert!(piper <= 0.10, "piper WER {piper:.3}");
}
