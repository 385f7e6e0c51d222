//! End-to-end tests of `openclaw-voice simulate` on the offline stack: the real binary, the
//! real local-whisper and espeak plugins, the tiny.en model, and speech made by espeak-ng.

use std::path::Path;
use std::process::Command;

use openclaw_voice_tests::{
    espeak_speech, openclaw_voice, toml_path, whisper_model, ConfigDir, PluginDir, Run,
};

const WHISPER: &str = "openclaw_plugin_local_whisper";
const ESPEAK: &str = "openclaw_plugin_espeak";

fn sox(args: &[&str]) {
    let status = Command::new("sox")
        .args(args)
        .status()
        .expect("sox is installed (`make deps`)");
    assert!(status.success(), "sox {args:?}");
}

struct Offline {
    _plugins: PluginDir,
    config: ConfigDir,
    work: tempfile::TempDir,
}

impl Offline {
    fn new(extra: &str) -> Self {
        let plugins = PluginDir::with(&[WHISPER, ESPEAK]);
        let config = ConfigDir::new();
        config.write(
            "test.toml",
            &format!(
                "[plugins]\ndir = {}\n\
                 [stt]\nproviders = [\"local-whisper\"]\n\
                 [tts]\nproviders = [\"espeak\"]\n\
                 [providers.local-whisper.settings]\nmodel = {}\n\
                 [providers.espeak.settings]\nvoice = \"en-us\"\n\
                 [ops]\nenabled = false\n\
                 [logging]\nlevel = \"warn\"\n{extra}",
                toml_path(plugins.path()),
                toml_path(&whisper_model())
            ),
        );
        Offline {
            _plugins: plugins,
            config,
            work: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    fn dir(&self) -> &Path {
        self.work.path()
    }

    fn simulate(&self, args: &[&str]) -> Run {
        let mut all = vec![
            "--config-dir".to_string(),
            self.config.path().display().to_string(),
            "--env".into(),
            "test".into(),
            "simulate".into(),
            "--json".into(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        openclaw_voice(all, &[])
    }

    /// `simulate --fast` on `input`, the reply into this directory.
    fn simulate_fast(&self, input: &Path) -> Run {
        let reply = self.dir().join("reply.wav");
        self.simulate(&[
            "--fast",
            "--input",
            input.to_str().expect("a UTF-8 path"),
            "--output",
            reply.to_str().expect("a UTF-8 path"),
        ])
    }
}

fn turns(run: &Run) -> Vec<serde_json::Value> {
    run.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

fn text(turn: &serde_json::Value, key: &str) -> String {
    turn[key].as_str().unwrap_or_default().to_lowercase()
}

/// (duration in seconds, RMS 0..1) of a mono 16-bit WAV.
fn wav_stats(path: &Path) -> (f64, f64) {
    let mut reader = hound::WavReader::open(path).expect("a readable WAV");
    let rate = reader.spec().sample_rate;
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .map(|s| s.expect("16-bit samples"))
        .collect();
    let energy: f64 = samples
        .iter()
        .map(|&s| (f64::from(s) / 32768.0).powi(2))
        .sum();
    let rms = (energy / samples.len().max(1) as f64).sqrt();
    (samples.len() as f64 / f64::from(rate), rms)
}

#[test]
fn a_question_in_gives_a_spoken_answer_out() {
    let env = Offline::new("");
    let question = espeak_speech(env.dir(), "q.wav", "What is the capital of France?");
    let reply = env.dir().join("reply.wav");
    let run = env.simulate(&[
        "--fast",
        "--input",
        question.to_str().unwrap(),
        "--speaker",
        "alice",
        "--output",
        reply.to_str().unwrap(),
    ]);
    assert!(run.success(), "{run}");
    let turns = turns(&run);
    assert_eq!(turns.len(), 1, "{run}");
    let turn = &turns[0];
    assert_eq!(turn["speaker"], "alice");
    let heard = text(turn, "transcript");
    assert!(
        heard.contains("capital") && heard.contains("france"),
        "{run}"
    );
    assert!(
        text(turn, "reply").contains("france"),
        "echo answers with what it heard"
    );
    assert_eq!(turn["outcome"]["kind"], "completed");
    for key in [
        "stt_done",
        "agent_first_token",
        "first_tts_audio",
        "playback_start",
    ] {
        assert!(
            turn["timeline_ms"][key].as_f64().is_some(),
            "timeline has {key}: {run}"
        );
    }
    let (seconds, rms) = wav_stats(&reply);
    // "You said: what is the capital of France?" at espeak's pace.
    assert!((1.5..8.0).contains(&seconds), "reply lasts {seconds} s");
    assert!(rms > 0.01, "reply is audible (rms {rms})");
}

#[test]
fn overlapping_speakers_are_each_heard_and_attributed() {
    let env = Offline::new("");
    let a = espeak_speech(
        env.dir(),
        "a.wav",
        "The roses in my garden look lovely today.",
    );
    let b = espeak_speech(env.dir(), "b.wav", "Please play some jazz music for me.");
    let reply = env.dir().join("reply.wav");
    let run = env.simulate(&[
        "--fast",
        "--input",
        a.to_str().unwrap(),
        "--speaker",
        "ann",
        "--input",
        b.to_str().unwrap(),
        "--speaker",
        "bob",
        "--at",
        "0.8s",
        "--output",
        reply.to_str().unwrap(),
    ]);
    assert!(run.success(), "{run}");
    let turns = turns(&run);
    assert_eq!(turns.len(), 2, "{run}");
    let by = |name: &str| {
        turns
            .iter()
            .find(|t| t["speaker"] == name)
            .unwrap_or_else(|| panic!("a turn from {name}: {run}"))
    };
    assert!(text(by("ann"), "transcript").contains("garden"), "{run}");
    assert!(text(by("bob"), "transcript").contains("music"), "{run}");
    assert!(!text(by("ann"), "transcript").contains("music"), "{run}");
}

#[test]
fn talking_over_the_reply_stops_it() {
    let env = Offline::new("");
    let long = espeak_speech(
        env.dir(),
        "long.wav",
        "Tell me the whole history of the Roman empire, from the founding of the city to the \
         fall of Constantinople, with every emperor in order.",
    );
    let interrupt = espeak_speech(env.dir(), "stop.wav", "Please stop talking now.");
    let long_seconds = wav_stats(&long).0;
    // The echo reply starts about a second after the question ends and lasts longer than the
    // question; the interruption comes two seconds into it.
    let at = format!("{:.2}s", long_seconds + 3.0);
    let reply = env.dir().join("reply.wav");
    let run = env.simulate(&[
        "--input",
        long.to_str().unwrap(),
        "--speaker",
        "ann",
        "--input",
        interrupt.to_str().unwrap(),
        "--speaker",
        "bob",
        "--at",
        &at,
        "--output",
        reply.to_str().unwrap(),
    ]);
    assert!(run.success(), "{run}");
    let turns = turns(&run);
    assert_eq!(turns.len(), 2, "{run}");
    assert_eq!(turns[0]["speaker"], "ann");
    assert_eq!(turns[0]["outcome"]["kind"], "interrupted", "{run}");
    assert_eq!(turns[1]["speaker"], "bob");
    assert_eq!(turns[1]["outcome"]["kind"], "completed", "{run}");
    assert!(text(&turns[1], "transcript").contains("stop"), "{run}");
    // The first reply was cut: less of it was recorded than was synthesized.
    let produced_ms = turns[0]["reply_audio_ms"].as_f64().unwrap();
    let second_ms = turns[1]["reply_audio_ms"].as_f64().unwrap();
    let (recorded, _) = wav_stats(&reply);
    assert!(
        recorded * 1000.0 < produced_ms + second_ms,
        "recorded {recorded} s, produced {produced_ms} + {second_ms} ms"
    );
}

#[test]
fn silence_and_noise_make_no_turn() {
    let env = Offline::new("");
    let silence = env.dir().join("silence.wav");
    let noise = env.dir().join("noise.wav");
    sox(&[
        "-n",
        "-r",
        "16000",
        "-c",
        "1",
        "-b",
        "16",
        silence.to_str().unwrap(),
        "trim",
        "0",
        "3",
    ]);
    // `-R`: the same noise every run, so the test is repeatable.
    sox(&[
        "-R",
        "-n",
        "-r",
        "16000",
        "-c",
        "1",
        "-b",
        "16",
        noise.to_str().unwrap(),
        "synth",
        "3",
        "whitenoise",
        "vol",
        "0.3",
    ]);
    for input in [&silence, &noise] {
        let run = env.simulate_fast(input);
        assert!(run.success(), "{run}");
        assert!(
            turns(&run).is_empty(),
            "no turn from {}: {run}",
            input.display()
        );
        let (seconds, _) = wav_stats(&env.dir().join("reply.wav"));
        assert_eq!(seconds, 0.0, "the bot said nothing");
    }
}

#[test]
fn bad_inputs_fail_with_clear_errors() {
    let env = Offline::new("");
    let corrupt = env.dir().join("corrupt.wav");
    std::fs::write(&corrupt, b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk").unwrap();
    let run = env.simulate(&["--input", corrupt.to_str().unwrap()]);
    assert!(!run.success(), "{run}");
    assert!(run.stderr.contains("corrupt.wav"), "{run}");

    let question = espeak_speech(env.dir(), "q.wav", "Hello there.");
    let missing_model = Offline::new("[providers.local-whisper]\nplugin = \"local-whisper\"\n");
    missing_model.config.write(
        "test.toml",
        &std::fs::read_to_string(missing_model.config.path().join("test.toml"))
            .unwrap()
            .replace(
                &toml_path(&whisper_model()),
                "\"/nonexistent/ggml-tiny.en.bin\"",
            ),
    );
    let run = missing_model.simulate(&["--input", question.to_str().unwrap()]);
    assert!(!run.success(), "{run}");
    assert!(
        run.stderr.contains("/nonexistent/ggml-tiny.en.bin"),
        "{run}"
    );
    assert!(
        run.stderr.contains("fetch-model") || run.stderr.contains("make model"),
        "{run}"
    );

    let unknown = Offline::new("[providers.espeak]\nplugin = \"no-such-voice\"\n");
    let run = unknown.simulate(&["--input", question.to_str().unwrap()]);
    assert!(!run.success(), "{run}");
    assert!(run.stderr.contains("no-such-voice"), "{run}");
}

#[test]
fn turn_models_that_are_absent_or_wrong_are_reported() {
    let env = Offline::new("[pipeline]\nvad = \"silero\"\nturn_model = \"smart-turn\"\n");
    let question = espeak_speech(env.dir(), "q.wav", "What is the capital of France?");
    let reply = env.dir().join("reply.wav");
    let args = [
        "--config-dir",
        env.config.path().to_str().unwrap(),
        "--env",
        "test",
        "simulate",
        "--fast",
        "--input",
        question.to_str().unwrap(),
        "--output",
        reply.to_str().unwrap(),
    ];
    // Not installed: one warning saying how to get them, and the fallback answers.
    let empty = env.dir().join("no-models");
    std::fs::create_dir_all(&empty).unwrap();
    let run = openclaw_voice(args, &[("OPENCLAW_MODELS_DIR", empty.to_str().unwrap())]);
    assert!(run.success(), "{run}");
    assert_eq!(
        run.stderr
            .matches("turn-taking models not installed")
            .count(),
        1,
        "{run}"
    );
    assert!(run.stderr.contains("scripts/fetch-turn-models"), "{run}");
    assert!(run.stdout.contains("ended by: silence"), "{run}");

    // Set but missing: an error naming the file and the setting, at start and at check-config.
    let missing = [(
        "OPENCLAW__PIPELINE__SMART_TURN_MODEL",
        "\"/nonexistent/smart-turn.onnx\"",
    )];
    let run = openclaw_voice(args, &missing);
    assert!(!run.success(), "{run}");
    for needle in ["/nonexistent/smart-turn.onnx", "pipeline.smart_turn_model"] {
        assert!(run.stderr.contains(needle), "{needle}: {run}");
    }
    let check = [
        "--config-dir",
        env.config.path().to_str().unwrap(),
        "--env",
        "test",
        "check-config",
    ];
    let run = openclaw_voice(check, &missing);
    assert!(!run.success(), "{run}");
    assert!(run.stderr.contains("pipeline.smart_turn_model"), "{run}");

    // Corrupt, at start; a model with the wrong inputs (Silero given as Smart Turn), at
    // check-config: errors naming the file and the setting, never a panic.
    let corrupt = env.dir().join("corrupt-turn.onnx");
    std::fs::write(&corrupt, b"\x08\x07 not an ONNX model").unwrap();
    let corrupt_set = format!("\"{}\"", corrupt.display());
    let run = openclaw_voice(
        args,
        &[("OPENCLAW__PIPELINE__SMART_TURN_MODEL", corrupt_set.as_str())],
    );
    assert!(!run.success() && !run.stderr.contains("panicked"), "{run}");
    for needle in [
        "corrupt-turn.onnx",
        "pipeline.smart_turn_model",
        "cannot be loaded",
    ] {
        assert!(run.stderr.contains(needle), "{needle}: {run}");
    }
    // Where `make model` put them (openclaw_onnx::models_dir's order).
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let models = var("OPENCLAW_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            var("XDG_CACHE_HOME")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| std::path::Path::new(&var("HOME").unwrap()).join(".cache"))
                .join("openclaw-voice/models")
        });
    let wrong = format!("\"{}\"", models.join("silero_vad.onnx").display());
    let run = openclaw_voice(
        check,
        &[("OPENCLAW__PIPELINE__SMART_TURN_MODEL", wrong.as_str())],
    );
    assert!(!run.success() && !run.stderr.contains("panicked"), "{run}");
    for needle in [
        "silero_vad.onnx",
        "pipeline.smart_turn_model",
        "input_features",
    ] {
        assert!(run.stderr.contains(needle), "{needle}: {run}");
    }
}

/// The speculative transcript's word probabilities cross the plugin ABI on both paths (a
/// worker process and in process) and reach the turn-end rule: with a minimum no word
/// reaches (and a Smart Turn threshold every answer passes, 0.001), a question waits for the middle
/// silence, and the rule says the word was unsure and how sure.
#[test]
fn the_last_words_probability_reaches_the_turn_rule_from_a_worker_and_in_process() {
    for isolation in ["process", "in-process"] {
        let env = Offline::new(&format!(
            "[pipeline]\nvad = \"silero\"\nturn_model = \"smart-turn\"\n\
             turn_last_word_min_probability = 1.0\nturn_threshold = 0.001\n\
             [providers.local-whisper]\nisolation = \"{isolation}\"\n"
        ));
        let question = espeak_speech(env.dir(), "q.wav", "What is the capital of France?");
        let run = env.simulate_fast(&question);
        assert!(run.success(), "{isolation}: {run}");
        let turns = turns(&run);
        assert_eq!(turns.len(), 1, "{isolation}: {run}");
        let rule = &turns[0]["end_rule"];
        assert_eq!(rule["rule"], "last_word_unsure", "{isolation}: {rule}");
        let p = rule["last_word"].as_f64();
        assert!(
            p.is_some_and(|p| (0.0..1.0).contains(&p)),
            "{isolation}: no word probability reached the rule: {rule}"
        );
    }
}

#[test]
fn going_on_after_the_turn_ended_withdraws_it_and_answers_the_whole() {
    // The energy gate and a fixed 500 ms silence, so that the 800 ms pause surely ends the
    // first turn; the speaker goes on 300 ms later, while its reply is under way or playing.
    let env = Offline::new("[pipeline]\nvad = \"energy\"\nturn_model = \"none\"\n");
    let before = espeak_speech(env.dir(), "a.wav", "How many minutes are there in");
    let after = espeak_speech(env.dir(), "b.wav", "a full week?");
    let question = env.dir().join("paused.wav");
    let padded = env.dir().join("a-pause.wav");
    // espeak-ng ends with 0.3 s of silence: trim it, then pause 0.8 s.
    sox(&[
        before.to_str().unwrap(),
        padded.to_str().unwrap(),
        "reverse",
        "silence",
        "1",
        "0.01",
        "0.5%",
        "reverse",
        "pad",
        "0",
        "0.8",
    ]);
    sox(&[
        padded.to_str().unwrap(),
        after.to_str().unwrap(),
        question.to_str().unwrap(),
    ]);
    let reply = env.dir().join("reply.wav");
    let run = env.simulate(&[
        "--input",
        question.to_str().unwrap(),
        "--output",
        reply.to_str().unwrap(),
    ]);
    assert!(run.success(), "{run}");
    assert!(
        run.stderr.contains("went on speaking"),
        "the pause ended a turn, which was withdrawn: {run}"
    );
    let turns = turns(&run);
    assert_eq!(turns.len(), 1, "one question, one answer: {run}");
    assert_eq!(turns[0]["continued"], true, "{run}");
    assert_eq!(turns[0]["outcome"]["kind"], "completed", "{run}");
    let heard = text(&turns[0], "transcript");
    assert!(heard.contains("minutes") && heard.contains("week"), "{run}");
}
