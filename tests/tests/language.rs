//! The spoken language end to end, through the real binary (`simulate`): with
//! `pipeline.language = "auto"` the language speech-to-text detects reaches the agent (its
//! request says it) and text-to-speech (the `[tts.voices]` voice for it, else `tts_voice`).
//! Speech-to-text is the `openai-whisper` plugin and text-to-speech the `openai-tts` plugin,
//! both against a fake of OpenAI's audio API that answers `verbose_json` with the language it
//! was told to detect; the agent is `openai-chat` against the same fake.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use openclaw_voice_tests::fake_cloud::{openai, pcm_pieces, tone, FakeServer, Piece, Reply};
use openclaw_voice_tests::{
    espeak_speech, openclaw_voice, toml_path, ConfigDir, PluginDir, Run, OPENAI_TTS, OPENAI_WHISPER,
};
use serde_json::json;

const KEY: &str = "sk-language-test-0000000000";
const KEY_VAR: &str = "OPENCLAW_TEST_LANGUAGE_KEY";

/// What the fake saw: the `language` field of each transcription, the system message of each
/// chat request, the voice of each speech request.
#[derive(Default)]
struct Seen {
    stt_language: Vec<Option<String>>,
    system: Vec<String>,
    voices: Vec<String>,
}

/// OpenAI's audio API and chat completions, detecting `language` (Whisper's name for it,
/// `french`) in every utterance.
fn fake(seen: Arc<Mutex<Seen>>, language: &'static str, text: &'static str) -> FakeServer {
    FakeServer::start(move |request| match request.path() {
        "/v1/models" => openai::models(request, KEY),
        "/v1/audio/transcriptions" => match openai::parse_transcription(request, KEY) {
            Ok(t) => {
                seen.lock().expect("lock").stt_language.push(t.language);
                let duration = t.audio.samples.len() as f64 / f64::from(t.audio.sample_rate.max(1));
                Reply::json(
                    200,
                    &json!({"task": "transcribe", "language": language, "duration": duration,
                        "text": text, "segments": [{"id": 0, "seek": 0, "start": 0.0,
                        "end": duration, "text": text, "tokens": [50364], "temperature": 0.0,
                        "avg_logprob": -0.2, "compression_ratio": 1.1, "no_speech_prob": 0.01}]}),
                )
            }
            Err(reply) => reply,
        },
        "/v1/audio/speech" => match openai::parse_speech(request, KEY) {
            Ok(speech) => {
                seen.lock().expect("lock").voices.push(speech.voice);
                let pcm = tone(4_800, openai::PCM_RATE);
                Reply::chunked(200, "audio/pcm", pcm_pieces(&pcm, 2_400, Duration::ZERO))
            }
            Err(reply) => reply,
        },
        "/v1/chat/completions" => {
            let body = request.json().unwrap_or_default();
            let system = body["messages"][0]["content"].as_str().unwrap_or_default();
            seen.lock().expect("lock").system.push(system.to_string());
            let chunk = json!({"choices": [{"delta": {"content": "Il est midi."}}]});
            Reply::chunked(
                200,
                "text/event-stream",
                vec![
                    Piece::Data(format!("data: {chunk}\n\n").into_bytes()),
                    Piece::Data(b"data: [DONE]\n\n".to_vec()),
                ],
            )
        }
        _ => openai::error(404, "no such path", "invalid_request_error", None),
    })
}

/// One simulated turn with `pipeline` and `voices` (TOML lines) against `server`.
fn simulate(server: &FakeServer, pipeline: &str, voices: &str) -> Run {
    let plugins = PluginDir::with(&[OPENAI_WHISPER, OPENAI_TTS]);
    // The tests count requests: one transcription per turn, no speculation.
    let config = ConfigDir::energy_endpointing();
    let url = server.base_url();
    config.write(
        "test.toml",
        &format!(
            "[plugins]\ndir = {}\n\
             [stt]\nproviders = [\"openai-whisper\"]\n\
             [tts]\nproviders = [\"openai-tts\"]\n[tts.voices]\n{voices}\n\
             [providers.openai-whisper.settings]\nbase_url = \"{url}\"\napi_key_env = \"{KEY_VAR}\"\n\
             response_format = \"verbose_json\"\n\
             [providers.openai-tts.settings]\nbase_url = \"{url}\"\napi_key_env = \"{KEY_VAR}\"\n\
             [agent]\nkind = \"openai-chat\"\nbase_url = \"{url}\"\nmodel = \"test\"\n\
             [pipeline]\n{pipeline}\n\
             [ops]\nenabled = false\n",
            toml_path(plugins.path()),
        ),
    );
    let work = tempfile::tempdir().expect("tempdir");
    let wav = espeak_speech(work.path(), "q.wav", "What time is it?");
    let args = [
        "--config-dir",
        config.path().to_str().expect("UTF-8"),
        "--env",
        "test",
        "simulate",
        "--json",
        "--fast",
        "--input",
        wav.to_str().expect("UTF-8"),
    ];
    openclaw_voice(args, &[(KEY_VAR, KEY)])
}

#[test]
fn a_detected_language_reaches_the_agent_and_picks_the_voice() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let server = fake(seen.clone(), "french", "Quelle heure est-il ?");
    let run = simulate(
        &server,
        "language = \"auto\"\ntts_voice = \"alloy\"",
        "fr = \"nova\"\nde = \"onyx\"",
    );
    assert!(run.success(), "{run}");
    assert!(run.stdout.contains("Il est midi."), "{run}");
    let seen = seen.lock().expect("lock");
    assert_eq!(
        seen.stt_language,
        vec![None],
        "`auto` is not sent as a language: the server detects it"
    );
    assert_eq!(seen.system.len(), 1, "{run}");
    assert!(
        seen.system[0].ends_with("The speaker's language: `fr`. Answer in it."),
        "the agent is told the detected language: {}",
        seen.system[0]
    );
    assert_eq!(
        seen.voices,
        vec!["nova".to_string()],
        "[tts.voices] fr, not tts_voice"
    );
}

#[test]
fn the_configured_language_keeps_tts_voice_and_is_passed_on() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let server = fake(seen.clone(), "english", "What time is it?");
    let run = simulate(
        &server,
        "language = \"en\"\ntts_voice = \"alloy\"",
        // The configured language keeps tts_voice (a guild's choice lands there too).
        "fr = \"nova\"\nen = \"echo\"",
    );
    assert!(run.success(), "{run}");
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.stt_language, vec![Some("en".to_string())]);
    assert!(
        seen.system[0].ends_with("The speaker's language: `en`. Answer in it."),
        "{}",
        seen.system[0]
    );
    assert_eq!(seen.voices, vec!["alloy".to_string()]);
}
