//! Turn-taking accuracy through the real binary with the default `[pipeline]` (Silero VAD,
//! Smart Turn v3.2, speculative speech-to-text, the fused turn-end rule), on a test set made
//! here: 20 questions with a 0.6–1.0 s pause in the middle (an SSML `<break>` inside the
//! sentence, so espeak-ng's intonation goes on across it) and 20 plain ones, four voices, with
//! keyboard-like clicks and a music-like chord between the plain ones. Each paused question is
//! one `simulate` run in real time (so each turn is counted against its question, and a turn
//! that ended in the pause is withdrawn when the speaker goes on, as in the product); the plain
//! set is one run. `OCV_TURN_FAST=1` runs them `--fast` (no turn is ever withdrawn). Prints:
//! how many paused questions stayed one turn (goal ≥ 95 %), how many turns were withdrawn and
//! how long their replies had played, how many plain ones waited for the long silence (goal
//! 0), turns that match no question (goal 0), and speculations thrown away.
//!
//! `OCV_TURN_VOICES=flite` makes the same sets with another synthesizer (CMU Flite, four
//! voices; Debian's `flite`), held out from any tuning: the pause follows a comma, so the
//! voice keeps a continuation tone, and the comma's short break is stretched to the pause.
//! `OCV_TURN_PIPELINE` adds `[pipeline]` lines to the product's defaults (`vad = "silero"`,
//! `turn_model = "smart-turn"`, the fused rule; `;` separates lines).
//!
//! `OCV_TURN_SET=latency`: the 20 plain questions, 3 s apart, through `simulate` in real time
//! (not `--fast`): end of speech → first reply audio p50/p95, turns per question, CPU per turn
//! (the host and its workers), peak RSS, and the load average beside them.
//!
//! A benchmark, not a test (docs/BENCHMARKS.md, "Turn taking"). Needs `make build model`;
//! `OCV_TURN_SET=paused|plain` runs one set.
//!
//! `cargo bench -p openclaw-voice-tests --bench turn_taking`

use std::path::{Path, PathBuf};
use std::process::Command;

use openclaw_voice_tests::{openclaw_voice, toml_path, whisper_model, ConfigDir, PluginDir, Run};

const VOICES: [&str; 4] = ["en-us", "en-gb", "en-us+f3", "en-us+m3"];
const FLITE_VOICES: [&str; 4] = ["slt", "awb", "rms", "kal16"];

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

/// Which synthesizer speaks the sets.
#[derive(Clone, Copy, PartialEq)]
enum Synth {
    Espeak,
    Flite,
}

struct Env {
    synth: Synth,
    _plugins: PluginDir,
    config: ConfigDir,
    work: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let synth = match std::env::var("OCV_TURN_VOICES").as_deref() {
            Ok("flite") => Synth::Flite,
            Ok("espeak") | Err(_) => Synth::Espeak,
            Ok(other) => panic!("OCV_TURN_VOICES={other}: espeak or flite"),
        };
        // The product's defaults (Silero, Smart Turn, the fused rule) unless told otherwise.
        let pipeline = std::env::var("OCV_TURN_PIPELINE").unwrap_or_default();
        let plugins = PluginDir::with(&["openclaw_plugin_local_whisper", "openclaw_plugin_espeak"]);
        let config = ConfigDir::new();
        config.write(
            "test.toml",
            &format!(
                "[plugins]\ndir = {}\n\
                 [stt]\nproviders = [\"local-whisper\"]\n\
                 [tts]\nproviders = [\"espeak\"]\n\
                 [providers.local-whisper]\ntimeout_ms = 60000\n\
                 [providers.local-whisper.settings]\nmodel = {}\n\
                 [providers.espeak.settings]\nvoice = \"en-us\"\n\
                 [pipeline]\n{}\n\
                 [ops]\nenabled = false\n\
                 [logging]\nlevel = \"warn\"\n",
                toml_path(plugins.path()),
                toml_path(&whisper_model()),
                pipeline.replace(';', "\n")
            ),
        );
        Env {
            synth,
            _plugins: plugins,
            config,
            work: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// Speech (22050 Hz mono) of `text` in the `n`th voice of the set's synthesizer; with a
    /// pause of `pause_ms` after `text`'s first part when `after` is given.
    fn speech(&self, name: &str, n: usize, text: &str, after: Option<(&str, u32)>) -> PathBuf {
        match (self.synth, after) {
            (Synth::Espeak, None) => self.espeak(name, VOICES[n % VOICES.len()], text),
            (Synth::Espeak, Some((after, ms))) => self.espeak(
                name,
                VOICES[n % VOICES.len()],
                &format!("{text} <break time=\"{ms}ms\"/> {after}"),
            ),
            (Synth::Flite, None) => self.flite(name, FLITE_VOICES[n % 4], text),
            (Synth::Flite, Some((after, ms))) => {
                let path = self.flite(name, FLITE_VOICES[n % 4], &format!("{text}, {after}"));
                stretch_pause(&path, ms);
                path
            }
        }
    }

    /// CMU Flite speech in `voice`, as 22050 Hz mono.
    fn flite(&self, name: &str, voice: &str, text: &str) -> PathBuf {
        let raw = self.path(&format!("raw-{name}"));
        let ok = Command::new("flite")
            .args(["-voice", voice, "-t", text, "-o"])
            .arg(&raw)
            .status()
            .expect("flite is installed (`make deps`)")
            .success();
        assert!(ok, "flite failed on {text:?}");
        let path = self.path(name);
        let (raw, out) = (raw.to_str().expect("UTF-8"), path.to_str().expect("UTF-8"));
        sox(&[raw, "-r", "22050", "-c", "1", "-b", "16", out]);
        path
    }

    /// espeak-ng speech (22050 Hz mono) for SSML `text` in `voice`.
    fn espeak(&self, name: &str, voice: &str, text: &str) -> PathBuf {
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

    /// `simulate --json` on `input`, `--fast` unless `real_time`.
    fn simulate(&self, input: &Path, real_time: bool) -> Run {
        let reply = self.path("reply.wav");
        let mut args = vec![
            "--config-dir",
            self.config.path().to_str().expect("a UTF-8 path"),
            "--env",
            "test",
            "simulate",
            "--json",
            "--input",
            input.to_str().expect("a UTF-8 path"),
            "--output",
            reply.to_str().expect("a UTF-8 path"),
        ];
        if !real_time {
            args.push("--fast");
        }
        let run = openclaw_voice(args, &[]);
        assert!(
            !run.stderr.contains("turn-taking models not installed"),
            "the sets measure the turn-taking models: run `make model` first\n{run}"
        );
        run
    }
}

/// Lengthens the longest silence inside `path` (a 16-bit mono WAV: the break at a comma) to
/// `pause_ms`.
fn stretch_pause(path: &Path, pause_ms: u32) {
    let mut reader = hound::WavReader::open(path).expect("a WAV file");
    let spec = reader.spec();
    let pcm: Vec<i16> = reader
        .samples::<i16>()
        .map(|s| s.expect("a sample"))
        .collect();
    let step = spec.sample_rate as usize / 100; // 10 ms
    let quiet: Vec<bool> = pcm
        .chunks(step)
        .map(|c| c.iter().all(|s| s.unsigned_abs() < 300))
        .collect();
    // The longest quiet run between the first and the last fifth of the file.
    let (lo, hi) = (quiet.len() / 5, quiet.len() * 4 / 5);
    let (mut best, mut run_start, mut longest) = (None, 0, 0);
    for (i, &is_quiet) in quiet.iter().enumerate().take(hi).skip(lo) {
        if !is_quiet {
            run_start = i + 1;
        } else if i + 1 - run_start > longest {
            longest = i + 1 - run_start;
            best = Some(run_start + longest / 2);
        }
    }
    let centre = best.expect("a break at the comma") * step;
    let missing = (pause_ms as usize * step / 10).saturating_sub(longest * step);
    let mut out = pcm[..centre].to_vec();
    // Room noise at about -70 dBFS rather than digital silence, as a microphone gives.
    out.extend((0..missing).map(|i| [7i16, -9, 4, -6, 10, -3][i % 6]));
    out.extend_from_slice(&pcm[centre..]);
    let mut writer = hound::WavWriter::create(path, spec).expect("the WAV is writable");
    for s in out {
        writer.write_sample(s).expect("a sample is written");
    }
    writer.finalize().expect("the WAV is written");
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

/// A run whose turns failed (a transcription past its deadline) is still scored: a failed
/// turn holds no words, so it counts against the set. Any other failure ends the benchmark.
fn check_run(run: &Run) {
    let failed = run.stdout.matches("\"kind\":\"failed\"").count();
    assert!(run.success() || failed > 0, "{run}");
    if failed > 0 {
        println!("{failed} turns failed (scored as wrong):");
        for line in run.stderr.lines().filter(|l| l.contains("turn failed")) {
            println!("  {line}");
        }
    }
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

/// Speculations thrown away: how many, per turn, and how many of them never ran (thrown
/// away while they waited for the speaker's earlier transcription).
fn wasted(turns: &[serde_json::Value]) -> String {
    let sum = |key: &str| -> u64 {
        turns
            .iter()
            .map(|t| t["speculation"][key].as_u64().unwrap_or(0))
            .sum()
    };
    let (thrown, skipped) = (sum("wasted"), sum("skipped"));
    format!(
        "{thrown} ({:.2} per turn; {skipped} of them thrown away before they ran)",
        thrown as f64 / turns.len().max(1) as f64
    )
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

/// The turns a run withdrew because the speaker went on (`simulate` notes them on stderr),
/// with how long each one's reply had played, in ms, when it was stopped.
fn withdrawn(run: &Run) -> Vec<Option<u64>> {
    run.stderr
        .lines()
        .filter(|l| l.contains("went on speaking"))
        .map(|l| {
            l.split("stopped after ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|ms| ms.parse().ok())
        })
        .collect()
}

/// Whether the accuracy sets run in real time, as the product does (`OCV_TURN_FAST=1`: `--fast`).
fn real_time() -> bool {
    std::env::var("OCV_TURN_FAST").as_deref() != Ok("1")
}

/// Paused questions: how many stayed one turn. Each question runs through `simulate` on its
/// own (followed by 3 s of silence), so a turn is counted against the question it came from
/// whatever the speech-to-text made of it: one turn is one turn even when a word is misheard,
/// and the words check says apart whether both halves were heard. In real time (the product:
/// a turn that ended in the pause is withdrawn when the speaker goes on, and the bench says
/// how many were and how long their replies had played); `OCV_TURN_FAST=1` runs `--fast`,
/// which never withdraws a turn.
fn paused_set() {
    let env = Env::new();
    let real_time = real_time();
    let gap = silence(&env, "gap.wav", 3.0);
    let (mut whole, mut heard, mut all_turns) = (0, 0, Vec::new());
    let mut joined: Vec<Option<u64>> = Vec::new();
    for (n, (before, after, a, b)) in PAUSED.iter().enumerate() {
        let pause_ms = 600 + (n * 400 / PAUSED.len()) as u32; // 600-980 ms
        let speech = env.speech(&format!("p{n}.wav"), n, before, Some((after, pause_ms)));
        let input = env.path(&format!("paused-{n}.wav"));
        join(&[speech, gap.clone()], &input);
        let run = env.simulate(&input, real_time);
        check_run(&run);
        let turns = turns(&run);
        let withdrawn = withdrawn(&run);
        let text =
            |t: &serde_json::Value| t["transcript"].as_str().unwrap_or_default().to_lowercase();
        let one = turns.len() == 1;
        let both = one && text(&turns[0]).contains(a) && text(&turns[0]).contains(b);
        whole += usize::from(one);
        heard += usize::from(both);
        println!(
            "{} \"{before} … {after}\" ({pause_ms} ms pause): {} turn(s){}\n{}",
            if one { "ok   " } else { "SPLIT" },
            turns.len(),
            if withdrawn.is_empty() {
                String::new()
            } else {
                format!(
                    ", {} withdrawn (reply played {withdrawn:?} ms)",
                    withdrawn.len()
                )
            },
            describe(&turns)
        );
        all_turns.extend(turns);
        joined.extend(withdrawn);
    }
    let played: Vec<u64> = joined.iter().flatten().copied().collect();
    println!(
        "paused questions that stayed one turn: {whole}/{} ({}%; goal >= 95%), both halves heard \
         in {heard} of them; turns beyond one per question: {}; end rules {}; speculations \
         thrown away: {}; {}",
        PAUSED.len(),
        whole * 100 / PAUSED.len(),
        all_turns.len().saturating_sub(PAUSED.len()),
        count_rules(&all_turns),
        wasted(&all_turns),
        if real_time {
            format!(
                "turns withdrawn as the speaker went on: {} (their replies had played {:?} ms; \
                 {} had not started)",
                joined.len(),
                played,
                joined.len() - played.len()
            )
        } else {
            "--fast: no turn is withdrawn".to_string()
        }
    );
}

/// Plain questions with clicks and tones between them: long waits and phantom turns.
fn plain_set() {
    let env = Env::new();
    let gap = silence(&env, "gap.wav", 3.0);
    let (clicks, tones) = (clicks(&env), tones(&env));
    let mut parts = Vec::new();
    for (n, (text, _)) in PLAIN.iter().enumerate() {
        parts.push(env.speech(&format!("q{n}.wav"), n, text, None));
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
    let run = env.simulate(&input, real_time());
    check_run(&run);
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
         that reached speech-to-text): {ignored}; end rules {}; speculations thrown away: {}; \
         turns withdrawn as the speaker went on: {:?} (ms their replies had played)",
        PLAIN.len(),
        turns.len().saturating_sub(PLAIN.len()),
        count_rules(&turns),
        wasted(&turns),
        withdrawn(&run)
    );
}

/// The first number after `prefix` on a line of `text` (`simulate`'s resource lines).
fn figure(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The machine's 1-minute load average (`/proc/loadavg`), or `?` where there is none.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Plain questions in real time: end of speech → first reply audio.
fn latency_set() {
    let env = Env::new();
    let gap = silence(&env, "gap.wav", 3.0);
    let mut parts = Vec::new();
    for (n, (text, _)) in PLAIN.iter().enumerate() {
        parts.push(env.speech(&format!("q{n}.wav"), n, text, None));
        parts.push(gap.clone());
    }
    let input = env.path("latency.wav");
    join(&parts, &input);
    let load_before = load_average();
    let run = env.simulate(&input, true);
    println!(
        "load average (1 min) before / after the run: {load_before} / {} \
         (wall times are inflated above 1: other work shares the cores)",
        load_average()
    );
    assert!(run.success(), "{run}");
    let cpu = figure(&run.stderr, "CPU time: ");
    let rss = figure(&run.stderr, "peak memory (RSS): ");
    let turns = turns(&run);
    let mut first_audio: Vec<f64> = turns
        .iter()
        .filter_map(|t| t["timeline_ms"]["first_tts_audio"].as_f64())
        .collect();
    first_audio.sort_by(f64::total_cmp);
    assert!(!first_audio.is_empty(), "no turn was answered: {run}");
    println!("latency set: {} turns", turns.len());
    for t in &turns {
        let ms = |k: &str| t["timeline_ms"][k].as_f64().unwrap_or(f64::NAN);
        println!(
            "  {:?}: end {:.0} ms, transcript {:.0} ms, first audio {:.0} ms; {}; {} thrown away",
            t["transcript"].as_str().unwrap_or_default(),
            ms("endpoint_detected"),
            ms("stt_done"),
            ms("first_tts_audio"),
            t["ended_by"].as_str().unwrap_or_default(),
            t["speculation"]["wasted"]
        );
    }
    println!(
        "end of speech -> first reply audio over {} turns: p50 {:.0} ms, p95 {:.0} ms (goal p50 \
         <= 450 ms); turns beyond one per question: {}; end rules {}; speculations thrown \
         away: {}; CPU {:.2} s per turn (host and workers, {:.1} s in all); peak RSS \
         {rss:.1} MB (host and workers)",
        first_audio.len(),
        percentile(&first_audio, 0.5),
        percentile(&first_audio, 0.95),
        turns.len().saturating_sub(PLAIN.len()),
        count_rules(&turns),
        wasted(&turns),
        cpu / turns.len().max(1) as f64,
        cpu
    );
}

fn main() {
    let set = std::env::var("OCV_TURN_SET").unwrap_or_default();
    if set == "latency" {
        latency_set();
        return;
    }
    if set.is_empty() || set == "paused" {
        paused_set();
    }
    if set.is_empty() || set == "plain" {
        plain_set();
    }
}
