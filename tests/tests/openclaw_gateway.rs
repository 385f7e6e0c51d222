//! The real binary (`simulate`, with the `fault` test plugin for speech-to-text, which
//! answers with a sample count, and the `tone` plugin for speech) talking to a fake OpenClaw
//! gateway: an
//! OpenAI-compatible `/v1/chat/completions` that, like the gateway, wants the bearer token,
//! picks the agent from `model = "openclaw:<agentId>"`, keys its session on the `user` field,
//! and streams the answer as server-sent events (docs/OPENCLAW.md).

use std::sync::{Arc, Mutex};

use openclaw_voice_tests::fake_cloud::{FakeServer, Piece, Reply};
use openclaw_voice_tests::{
    espeak_speech, openclaw_voice, toml_path, ConfigDir, PluginDir, Run, FAULT, TONE,
};
const TOKEN: &str = "gw-token-for-tests-5f1e";

/// What the fake gateway saw: (model, user, last message, bearer ok, stream).
type Seen = Arc<Mutex<Vec<(String, String, String, bool, bool)>>>;

fn gateway(seen: Seen) -> FakeServer {
    FakeServer::start(move |request| {
        let body = request.json().unwrap_or_default();
        let authorized =
            request.header("authorization") == Some(format!("Bearer {TOKEN}").as_str());
        let last = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .map(|m| m["content"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default();
        seen.lock().expect("lock").push((
            body["model"].as_str().unwrap_or_default().to_string(),
            body["user"].as_str().unwrap_or_default().to_string(),
            last,
            authorized,
            body["stream"] == true,
        ));
        if !authorized || request.path() != "/v1/chat/completions" {
            return Reply::json(
                401,
                &serde_json::json!({"error": {"message": "unauthorized"}}),
            );
        }
        let delta = |text: &str| {
            let chunk = serde_json::json!({"choices": [{"delta": {"content": text}}]});
            Piece::Data(format!("data: {chunk}\n\n").into_bytes())
        };
        Reply::chunked(
            200,
            "text/event-stream",
            vec![
                delta("The gateway "),
                delta("answers."),
                Piece::Data(b"data: [DONE]\n\n".to_vec()),
            ],
        )
    })
}

fn simulate(gateway_url: &str, hash_key: &str, wav: &str, speaker: &str) -> Run {
    let plugins = PluginDir::with(&[FAULT, TONE]);
    let config = ConfigDir::new();
    config.write(
        "test.toml",
        &format!(
            "[plugins]\ndir = {}\n\
             [stt]\nproviders = [\"ears\"]\n[tts]\nproviders = [\"voice\"]\n\
             [providers.ears]\nplugin = \"fault\"\n\
             [providers.voice]\nplugin = \"tone\"\n\
             [agent]\nkind = \"openai-chat\"\nmodel = \"openclaw:voice-bot\"\n\
             api_key_env = \"OPENCLAW_GATEWAY_TOKEN\"\n\
             [ops]\nenabled = false\n\
             [logging]\nlevel = \"warn\"\nhash_key_env = \"OPENCLAW_USER_HASH_KEY\"\n",
            toml_path(plugins.path()),
        ),
    );
    let args = [
        "--config-dir",
        config.path().to_str().expect("UTF-8"),
        "--env",
        "test",
        "simulate",
        "--json",
        "--fast",
        "--input",
        wav,
        "--speaker",
        speaker,
    ];
    openclaw_voice(
        args,
        &[
            ("OPENCLAW__AGENT__BASE_URL", gateway_url),
            ("OPENCLAW_GATEWAY_TOKEN", TOKEN),
            ("OPENCLAW_USER_HASH_KEY", hash_key),
        ],
    )
}

#[test]
fn the_gateway_gets_the_agent_the_token_the_speaker_and_streams_back() {
    let seen: Seen = Arc::default();
    let server = gateway(seen.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = espeak_speech(dir.path(), "q.wav", "What is the capital of France?");
    let wav = wav.to_str().expect("UTF-8");

    let run = simulate(&server.base_url(), "key-one-0123456789", wav, "Alice");
    assert!(run.success(), "{run}");
    assert!(run.stdout.contains("The gateway answers."), "{run}");
    let first = seen.lock().expect("lock")[0].clone();
    let (model, user, message, authorized, stream) = first;
    assert_eq!(model, "openclaw:voice-bot");
    assert!(authorized, "the bearer token was sent");
    assert!(stream, "a streaming request");
    assert!(
        message.starts_with("Alice: ") && message.contains("samples"),
        "the speaker's display name is in the message: {message}"
    );
    assert!(
        user.starts_with("u-") && user.len() == 18 && !user.contains("Alice"),
        "a hashed speaker identity in `user`: {user}"
    );

    // The same speaker with the same key keeps the same `user` (one gateway session); another
    // deployment key gives another one (the hash is keyed, not a bare digest of the id).
    let again = simulate(&server.base_url(), "key-one-0123456789", wav, "Alice");
    assert!(again.success(), "{again}");
    let other_key = simulate(&server.base_url(), "key-two-9876543210", wav, "Alice");
    assert!(other_key.success(), "{other_key}");
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1].1, user);
    assert_ne!(seen[2].1, user);
    let everything = format!("{}{}{}", run.stderr, again.stderr, other_key.stderr);
    assert!(!everything.contains(TOKEN), "the token is never printed");
}
