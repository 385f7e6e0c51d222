//! Turn-taking accuracy through the real binary with `vad = "silero"` and `turn_model =
//! "smart-turn"` (Silero VAD, Smart Turn v3.2, speculative speech-to-text), on a test set made here: 20 questions with a
//! 0.6–1.0 s pause in the middle (an SSML `<break>` inside the sentence, so espeak-ng's
//! intonation goes on across it) and 20 plain ones, four voices, with keyboard-like clicks and
//! a music-like chord between the plain ones. Each set is one `simulate --fast` run. Prints:
//! how many paused questions stayed one turn (goal ≥ 95 %), how many plain ones waited for the
//! long silence (goal 0), turns that match no question (goal 0), and speculations thrown away.
//!
//! A benchmark, not a test: the goals are NOT met yet (docs/BENCHMARKS.md, "Turn taking").
//! Needs `make build model`; `OCV_TURN_SET=paused|plain` runs one set.
//!
//! `cargo bench -p openclaw-voice-tests --bench turn_taking`

use std::path::{Path, PathBuf};
use std::process::Command;

use openclaw_voice_tests::{openclaw_voice, toml_path, whisper_model, ConfigDir, PluginDir, Run};

const VOICES: [&str; 4] = ["en-us", "en-gb", "en-us+f3", "en-us+m3"];

/// (before the pause, after it, a word from each half that the transcript must hold).
const PAUSED: [(&str, &str, &str, &str); 20] = [
    (
        "How many minutes are there in",
        "a full week?",
        "minutes",
        "week",
    ),
    (
        "Could you tell me the",
        "weather for tomorrow?",
        "tell",
        "tomorrow",
    ),
    (
        "What is the capital of",
        "Australia?",
        "capital",
        "australia",
    ),
    (
        "Can you set a timer for",
        "ten minutes please?",
        "timer",
        "minutes",
    ),
    (
        "Who wrote the book about",
        "the old man and the sea?",
        "wrote",
        "sea",
    ),
    (
        "What time does the train to",
        "London leave?",
        "train",
        "leave",
    ),
    (
        "How far is it from Paris to",
        "Berlin by car?",
        "paris",
        "berlin",
    ),
    (
        "Please remind me to call my",
        "sister tonight.",
        "remind",
        "sister",
    ),
    (
        "What is the best way to",
        "learn the piano?",
        "best",
        "piano",
    ),
    (
        "Can you play some music by",
        "the Beatles?",
        "music",
        "beatles",
    ),
    ("How do I make a cup of", "green tea?", "cup", "tea"),
    (
        "Is it going to rain in",
        "Seattle this weekend?",
        "rain",
        "weekend",
    ),
    (
        "What is the population of",
        "Canada today?",
        "population",
        "canada",
    ),
    (
        "Could you add milk and",
        "bread to my list?",
        "milk",
        "bread",
    ),
    (
        "How long should I boil an",
        "egg for breakfast?",
        "boil",
        "breakfast",
    ),
    (
        "Tell me a story about a",
        "dragon and a knight.",
        "story",
        "dragon",
    ),
    ("When was the first person on", "the moon?", "first", "moon"),
    (
        "What is the difference between",
        "a lake and a pond?",
        "difference",
        "pond",
    ),
    (
        "Can you turn the lights in",
        "the kitchen off?",
        "lights",
        "kitchen",
    ),
    ("Why is the sky blue during", "the day?", "sky", "day"),
];

const PLAIN: [(&str, &str); 20] = [
    ("What is the weather like in Paris today?", "paris"),
    ("How old is the universe?", "universe"),
    ("Please play some jazz music.", "jazz"),
    ("What is two plus two?", "two"),
    ("Who painted the Mona Lisa?", "mona"),
    ("Set an alarm for seven tomorrow morning.", "alarm"),
    ("How tall is Mount Everest?", "everest"),
    ("Tell me a joke.", "joke"),
    ("What day is it today?", "day"),
    ("How do you say hello in Spanish?", "spanish"),
    ("What is the speed of light?", "light"),
    ("Turn off the kitchen lights.", "kitchen"),
    ("Who won the world cup last year?", "cup"),
    ("How many legs does a spider have?", "spider"),
    ("What is the tallest building in the world?", "building"),
    ("Recommend a good movie for tonight.", "movie"),
    ("What is the boiling point of water?", "water"),
    ("How far away is the moon?", "moon"),
    ("Read me the latest news.", "news"),
    ("What is the square root of sixty four?", "square"),
];

struct Env {
    _plugins: PluginDir,
    config: ConfigDir,
    work: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let plugins = PluginDir::with(&["openclaw_plugin_local_whisper", "openclaw_plugin_espeak"]);
        let config = ConfigDir::new();
        config.write(
            "test.toml",
            &format!(
                "[plugins]\ndir = {}\n\
                 [stt]\nproviders = [\"local-whisper\"]\n\
                 [tts]\nproviders = [\"espeak\"]\n\
                 [providers.local-whisper.settings]\nmodel = {}\n\
                 [providers.espeak.settings]\nvoice = \"en-us\"\n\
                 [pipeline]\nvad = \"silero\"\nturn_model = \"smart-turn\"\n\
                 [ops]\nenabled = false\n\
                 [logging]\nlevel = \"warn\"\n",
                toml_path(plugins.path()),
                toml_path(&whisper_model())
            ),
        );
        Env {
            _plugins: plugins,
            config,
            work: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// espeak-ng speech (22050 Hz mono) for SSML `text` in `voice`.
    fn speech(&self, name: &str, voice: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        let ok = Command::new("espeak-ng")
            .args(["-m", "-v", voice, "-s", "165", "-w"])
            .arg(&path)
            .arg(format!("<speak>{text}</speak>"))
            .status()
            .expect("espeak-ng is installed (`make deps`)")
            .success();
        assert!(ok, "espeak-ng failed on {text:?}");
        path
    }

    fn simulate(&self, input: &Path) -> Run {
        let reply = self.path("reply.wav");
        openclaw_voice(
            [
                "--config-dir",
                self.config.path().to_str().expect("a UTF-8 path"),
                "--env",
                "test",
                "simulate",
                "--json",
                "--fast",
                "--input",
                input.to_str().expect("a UTF-8 path"),
                "--output",
                reply.to_str().expect("a UTF-8 path"),
            ],
            &[],
        )
    }
}

fn sox(args: &[&str]) {
    let ok = Command::new("sox")
        .args(args)
        .status()
        .expect("sox is installed (`make deps`)")
        .success();
    assert!(ok, "sox {args:?}");
}

/// Joins `parts` (22050 Hz mono WAVs) into one file.
fn join(parts: &[PathBuf], out: &Path) {
    let mut args: Vec<&str> = parts
        .iter()
        .map(|p| p.to_str().expect("a UTF-8 path"))
        .collect();
    args.push(out.to_str().expect("a UTF-8 path"));
    sox(&args);
}

fn silence(env: &Env, name: &str, seconds: f64) -> PathBuf {
    let path = env.path(name);
    let s = seconds.to_string();
    sox(&[
        "-n",
        "-r",
        "22050",
        "-c",
        "1",
        "-b",
        "16",
        path.to_str().expect("a UTF-8 path"),
        "trim",
        "0",
        &s,
    ]);
    path
}

/// 1 s of keyboard-like clicks (3 ms noise bursts, 7 a second) in 1 s of silence around it.
fn clicks(env: &Env) -> PathBuf {
    let click = env.path("click.wav");
    sox(&[
        "-R",
        "-n",
        "-r",
        "22050",
        "-c",
        "1",
        "-b",
        "16",
        click.to_str().expect("a UTF-8 path"),
        "synth",
        "0.003",
        "whitenoise",
        "vol",
        "0.6",
        "pad",
        "0",
        "0.14",
    ]);
    let gap = silence(env, "click-gap.wav", 1.0);
    let mut parts = vec![gap.clone()];
    parts.extend(std::iter::repeat_n(click, 7));
    parts.push(gap);
    let out = env.path("clicks.wav");
    join(&parts, &out);
    out
}

/// 1.5 s of a music-like chord (three sines, a tremolo) in 1 s of silence around it.
fn tones(env: &Env) -> PathBuf {
    let chord = env.path("chord.wav");
    sox(&[
        "-n",
        "-r",
        "22050",
        "-c",
        "1",
        "-b",
        "16",
        chord.to_str().expect("a UTF-8 path"),
        "synth",
        "1.5",
        "sine",
        "261.6",
        "sine",
        "329.6",
        "sine",
        "392",
        "remix",
        "-",
        "tremolo",
        "5",
        "40",
        "vol",
        "0.3",
    ]);
    let gap = silence(env, "chord-gap.wav", 1.0);
    let out = env.path("tones.wav");
    join(&[gap.clone(), chord, gap], &out);
    out
}

fn turns(run: &Run) -> Vec<serde_json::Value> {
    run.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

fn describe(turns: &[serde_json::Value]) -> String {
    turns
        .iter()
        .map(|t| format!("  {:?} ({})\n", t["transcript"], t["ended_by"]))
        .collect()
}

fn wasted(turns: &[serde_json::Value]) -> u64 {
    turns
        .iter()
        .map(|t| t["speculation"]["wasted"].as_u64().unwrap_or(0))
        .sum()
}

fn count_rules(turns: &[serde_json::Value]) -> String {
    let mut rules = std::collections::BTreeMap::<String, usize>::new();
    for t in turns {
        *rules
            .entry(t["end_rule"]["rule"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    format!("{rules:?}")
}

/// Paused questions: how many stayed one turn.
fn paused_set() {
    let env = Env::new();
    let gap = silence(&env, "gap.wav", 3.0);
    let mut parts = Vec::new();
    for (n, (before, after, _, _)) in PAUSED.iter().enumerate() {
        let pause_ms = 600 + (n * 400 / PAUSED.len()) as u32; // 600-980 ms
        let text = format!("{before} <break time=\"{pause_ms}ms\"/> {after}");
        parts.push(env.speech(&format!("p{n}.wav"), VOICES[n % VOICES.len()], &text));
        parts.push(gap.clone());
    }
    let input = env.path("paused.wav");
    join(&parts, &input);
    let run = env.simulate(&input);
    assert!(run.success(), "{run}");
    let turns = turns(&run);
    // One turn per question; a split question makes two (neither holding both halves).
    let whole = PAUSED
        .iter()
        .filter(|(_, _, a, b)| {
            turns.iter().any(|t| {
                let text = t["transcript"].as_str().unwrap_or_default().to_lowercase();
                text.contains(a) && text.contains(b)
            })
        })
        .count();
    println!(
        "paused set: {} turns for {} questions\n{}",
        turns.len(),
        PAUSED.len(),
        describe(&turns)
    );
    println!(
        "paused questions that stayed one turn: {whole}/{} ({}%; goal >= 95%); end rules {}; \
         speculations thrown away: {} ({:.2} per turn)",
        PAUSED.len(),
        whole * 100 / PAUSED.len(),
        count_rules(&turns),
        wasted(&turns),
        wasted(&turns) as f64 / turns.len().max(1) as f64
    );
}

/// Plain questions with clicks and tones between them: long waits and phantom turns.
fn plain_set() {
    let env = Env::new();
    let gap = silence(&env, "gap.wav", 3.0);
    let (clicks, tones) = (clicks(&env), tones(&env));
    let mut parts = Vec::new();
    for (n, (text, _)) in PLAIN.iter().enumerate() {
        parts.push(env.speech(&format!("q{n}.wav"), VOICES[n % VOICES.len()], text));
        parts.push(gap.clone());
        // Between questions, by turns: keyboard clicks, then a music-like chord.
        parts.push(if n % 2 == 0 {
            clicks.clone()
        } else {
            tones.clone()
        });
    }
    let input = env.path("plain.wav");
    join(&parts, &input);
    let run = env.simulate(&input);
    assert!(run.success(), "{run}");
    let turns = turns(&run);
    let long_waits = turns
        .iter()
        .filter(|t| t["end_rule"]["rule"] == "silence_limit")
        .count();
    let matched = PLAIN
        .iter()
        .filter(|(_, word)| {
            turns.iter().any(|t| {
                let text = t["transcript"].as_str().unwrap_or_default().to_lowercase();
                text.contains(word)
            })
        })
        .count();
    let ignored = run.stderr.matches("no speech recognised").count();
    println!(
        "plain set: {} turns for {} questions\n{}",
        turns.len(),
        PLAIN.len(),
        describe(&turns)
    );
    println!(
        "plain questions heard: {matched}/{}; turns beyond one per question: {} (goal 0); \
         waited for the long silence: {long_waits} (goal 0); utterances with no words (noise \
         that reached speech-to-text): {ignored}; end rules {}; speculations thrown away: {} \
         ({:.2} per turn)",
        PLAIN.len(),
        turns.len().saturating_sub(PLAIN.len()),
        count_rules(&turns),
        wasted(&turns),
        wasted(&turns) as f64 / turns.len().max(1) as f64
    );
}

fn main() {
    let set = std::env::var("OCV_TURN_SET").unwrap_or_default();
    if set.is_empty() || set == "paused" {
        paused_set();
    }
    if set.is_empty() || set == "plain" {
        plain_set();
    }
}
