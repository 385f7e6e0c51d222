//! The plugin through [`TestPlugin`] (the adapters the host drives) against the fake OpenAI
//! speech server of `openclaw_voice_tests::fake_cloud`: real HTTP, real chunked streaming.

use std::sync::Once;
use std::time::Duration;

use openclaw_voice_tests::fake_cloud::{first_n, openai, tone, FakeServer, Reply};
use plugin_api::prelude::*;
use plugin_api::testing::{TestPlugin, TestTts};

use super::*;

const KEY_VAR: &str = "OCV_TEST_OPENAI_TTS_KEY";
const KEY: &str = "sk-test-tts-a1b2c3d4e5f60718293a";

fn plugin() -> TestPlugin {
    static ENV: Once = Once::new();
    ENV.call_once(|| std::env::set_var(KEY_VAR, KEY));
    TestPlugin::new(definition)
}

fn tts(server: &FakeServer, extra: &str) -> TestTts {
    plugin()
        .tts(&format!(
            "base_url = \"{}\"\napi_key_env = \"{KEY_VAR}\"\nbackoff_initial_ms = 10\n{extra}",
            server.base_url()
        ))
        .unwrap()
}

fn samples(chunks: &[AudioChunk]) -> Vec<i16> {
    chunks
        .iter()
        .flat_map(|c| c.samples.iter().copied())
        .collect()
}

#[test]
fn info_lists_the_voices() {
    let info = plugin().info().unwrap();
    assert_eq!(info.name.as_str(), PLUGIN);
    assert_eq!(info.provides.as_slice(), [Role::TextToSpeech]);
    assert!(info.capabilities.streaming);
    assert_eq!(info.capabilities.voices.len(), VOICES.len());
}

#[test]
fn streamed_pcm_is_reassembled_and_the_request_follows_the_api() {
    let pcm = tone(24_000, SAMPLE_RATE);
    let server = FakeServer::start(openai::speech(
        KEY,
        pcm.clone(),
        2_401,
        Duration::from_millis(5),
    ));
    let tts = tts(
        &server,
        "model = \"gpt-4o-mini-tts\"\nvoice = \"nova\"\nspeed = 1.25\ninstructions = \"Calm.\"",
    );
    let chunks = tts
        .synthesize_all("Hello from the fake cloud.", &SynthesisOptions::default())
        .unwrap();
    assert!(chunks.iter().all(|c| c.sample_rate == SAMPLE_RATE));
    assert!(chunks.len() > 1, "streamed in pieces");
    assert_eq!(samples(&chunks), pcm);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r = openai::parse_speech(&requests[0], KEY).expect("a valid request");
    assert_eq!(r.model, "gpt-4o-mini-tts");
    assert_eq!(r.input, "Hello from the fake cloud.");
    assert_eq!(r.voice, "nova");
    assert_eq!(r.response_format, "pcm");
    assert_eq!(r.speed, Some(1.25));
    assert_eq!(r.instructions.as_deref(), Some("Calm."));
}

#[test]
fn the_host_can_choose_the_voice() {
    let server = FakeServer::start(openai::speech(
        KEY,
        tone(480, SAMPLE_RATE),
        480,
        Duration::ZERO,
    ));
    let options = SynthesisOptions::new().with_voice("onyx");
    tts(&server, "").synthesize_all("Hi.", &options).unwrap();
    let r = openai::parse_speech(&server.requests()[0], KEY).unwrap();
    assert_eq!(r.voice, "onyx");
}

#[test]
fn errors_are_typed_with_the_api_text_and_no_key() {
    let server = FakeServer::start(openai::speech(
        "sk-someone-elses-key-9999",
        vec![1],
        1,
        Duration::ZERO,
    ));
    let err = tts(&server, "")
        .synthesize_all("Hi.", &SynthesisOptions::default())
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    let m = err.message();
    assert!(m.contains(PLUGIN) && m.contains(KEY_VAR), "{m}");
    assert!(
        !m.contains(KEY) && !m.contains(&KEY[KEY.len() - 4..]),
        "{m}"
    );

    let server = FakeServer::start(openai::speech(KEY, vec![1], 1, Duration::ZERO));
    let options = SynthesisOptions::new().with_voice("robot");
    let err = tts(&server, "")
        .synthesize_all("Hi.", &options)
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(
        err.message().contains("Invalid value: 'robot'"),
        "{}",
        err.message()
    );

    let server = FakeServer::start(|_| openai::quota_exceeded());
    let err = tts(&server, "")
        .synthesize_all("Hi.", &SynthesisOptions::default())
        .unwrap_err();
    assert_eq!((err.kind, err.retryable), (ErrorKind::RateLimited, false));
    assert_eq!(server.hits(), 1);
}

#[test]
fn rate_limit_and_server_errors_are_retried_before_the_audio() {
    let pcm = tone(2_400, SAMPLE_RATE);
    let server = FakeServer::start(first_n(
        2,
        |request| {
            if request.header("x-second").is_some() {
                openai::server_error(500)
            } else {
                openai::rate_limited(1)
            }
        },
        openai::speech(KEY, pcm.clone(), 600, Duration::ZERO),
    ));
    let chunks = tts(&server, "")
        .synthesize_all("Hi.", &SynthesisOptions::default())
        .unwrap();
    assert_eq!(samples(&chunks), pcm);
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests[1].received - requests[0].received >= Duration::from_secs(1));
}

#[test]
fn a_stalled_server_is_a_timeout() {
    let server = FakeServer::start(|_| Reply::stall());
    let err = tts(&server, "timeout_ms = 300")
        .synthesize_all("Hi.", &SynthesisOptions::default())
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout, "{}", err.message());
}

#[test]
fn an_empty_answer_is_an_error_not_silence() {
    let server = FakeServer::start(|_| Reply::chunked(200, "audio/pcm", vec![]));
    let err = tts(&server, "")
        .synthesize_all("Hi.", &SynthesisOptions::default())
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(
        err.message().contains("without any audio"),
        "{}",
        err.message()
    );
}

#[test]
fn a_pool_skips_a_failing_server_and_counts_a_stream_in_flight_until_it_ends() {
    let pcm = tone(24_000, SAMPLE_RATE);
    let broken = FakeServer::start(|_: &openclaw_voice_tests::fake_cloud::Request| {
        openai::server_error(503)
    });
    let good = FakeServer::start(openai::speech(
        KEY,
        pcm.clone(),
        2_400,
        Duration::from_millis(20),
    ));
    let tts = plugin()
        .tts(&format!(
            "base_urls = [\"{}\", \"{}\"]\napi_key_env = \"{KEY_VAR}\"\nbackoff_initial_ms = 10\n\
             endpoint_failures = 2\nendpoint_cooldown_ms = 600000\n",
            broken.base_url(),
            good.base_url()
        ))
        .unwrap();
    // The broken server comes first in config order: two syntheses find it failing (each
    // answered by the other server at once) and take it out of rotation.
    for _ in 0..3 {
        let chunks = tts
            .synthesize_all("Hello from the pool.", &SynthesisOptions::default())
            .unwrap();
        assert_eq!(samples(&chunks), pcm);
    }
    assert_eq!((broken.hits(), good.hits()), (2, 3));
    // A stream is in flight on its endpoint until its last chunk, not just its headers.
    let in_flight = |tts: &TestTts| {
        let detail = tts.health().unwrap().detail.to_string();
        let at = detail.find(&good.base_url()).expect("the good endpoint");
        detail[at..].contains(&format!("{} (closed, 1 in flight", good.base_url()))
    };
    let stream = tts
        .start("Hello again.", &SynthesisOptions::default())
        .unwrap();
    assert!(stream.next_chunk().unwrap().is_some());
    assert!(in_flight(&tts), "{:?}", tts.health());
    while stream.next_chunk().unwrap().is_some() {}
    assert!(!in_flight(&tts), "{:?}", tts.health());
    let detail = tts.health().unwrap().detail.to_string();
    assert!(
        detail.contains(&format!("{} (open", broken.base_url())),
        "{detail}"
    );
    assert_eq!(broken.hits(), 2);
}
