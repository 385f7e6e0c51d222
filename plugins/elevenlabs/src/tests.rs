//! The plugin through [`TestPlugin`] (the adapters the host drives) against the fake ElevenLabs
//! server of `openclaw_voice_tests::fake_cloud`: real HTTP, real chunked streaming.

use std::sync::{mpsc, Once};
use std::time::{Duration, Instant};

use openclaw_voice_tests::fake_cloud::{
    elevenlabs, first_n, pcm_bytes, tone, FakeServer, Gate, Piece, Reply,
};
use plugin_api::prelude::*;
use plugin_api::testing::{TestPlugin, TestTts};

use super::*;

const KEY_VAR: &str = "OCV_TEST_ELEVENLABS_KEY";
const KEY: &str = "xi-test-key-5f2b9c0d1e7a4b3c";

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
fn streamed_pcm_is_reassembled_and_the_request_follows_the_api() {
    let pcm = tone(12_000, 24_000);
    // Odd-sized chunks split samples across pieces.
    let server = FakeServer::start(elevenlabs::stream(KEY, pcm.clone(), 1_001, Duration::ZERO));
    let tts = tts(
        &server,
        "model_id = \"eleven_turbo_v2_5\"\nstability = 0.4\nuse_speaker_boost = true\n\
         optimize_streaming_latency = 3\nlanguage_code = \"en\"",
    );
    let chunks = tts
        .synthesize_all("Hello from the fake cloud.", &SynthesisOptions::default())
        .unwrap();
    assert!(chunks.iter().all(|c| c.sample_rate == 24_000));
    assert_eq!(samples(&chunks), pcm);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r = elevenlabs::parse_stream(&requests[0], KEY).expect("a valid request");
    assert_eq!(r.voice_id, "21m00Tcm4TlvDq8Ikt00");
    assert_eq!(r.output_format, "pcm_24000");
    assert_eq!(r.optimize_streaming_latency.as_deref(), Some("3"));
    assert_eq!(r.text, "Hello from the fake cloud.");
    assert_eq!(r.model_id.as_deref(), Some("eleven_turbo_v2_5"));
    assert_eq!(r.body["language_code"], "en");
    let settings = r.voice_settings.expect("voice_settings sent");
    assert_eq!(
        settings["stability"].as_f64().map(|v| (v * 10.0).round()),
        Some(4.0)
    );
    assert_eq!(settings["use_speaker_boost"], true);
    assert!(settings.get("style").is_none(), "unset fields are left out");
}

#[test]
fn every_pcm_format_reports_its_rate_and_the_voice_can_be_chosen() {
    let server = FakeServer::start(elevenlabs::stream(
        KEY,
        tone(800, 16_000),
        400,
        Duration::ZERO,
    ));
    for (format, rate) in [
        ("pcm_16000", 16_000),
        ("pcm_22050", 22_050),
        ("pcm_44100", 44_100),
    ] {
        let tts = tts(&server, &format!("output_format = \"{format}\""));
        let options = SynthesisOptions::new().with_voice("pNInz6obpgDQGcFmaJgB");
        let chunks = tts.synthesize_all("Hi.", &options).unwrap();
        assert!(chunks.iter().all(|c| c.sample_rate == rate), "{format}");
        let last = server.requests().pop().unwrap();
        let r = elevenlabs::parse_stream(&last, KEY).unwrap();
        assert_eq!(
            (r.voice_id.as_str(), r.output_format.as_str()),
            ("pNInz6obpgDQGcFmaJgB", format)
        );
        assert!(r.voice_settings.is_none());
    }
    let tts = tts(&server, "");
    let options = SynthesisOptions::new().with_voice("../v1/user");
    let err = tts.synthesize("Hi.", &options).err().unwrap();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
}

#[test]
fn the_first_chunk_arrives_before_the_server_has_finished() {
    let gate = Gate::new();
    let first = tone(2_400, 24_000);
    let rest = tone(24_000, 24_000);
    let server = {
        let (gate, first, rest) = (gate.clone(), first.clone(), rest.clone());
        FakeServer::start(
            move |request| match elevenlabs::parse_stream(request, KEY) {
                Ok(_) => Reply::chunked(
                    200,
                    "audio/pcm",
                    vec![
                        Piece::Data(pcm_bytes(&first)),
                        Piece::Wait(gate.clone()),
                        Piece::Data(pcm_bytes(&rest)),
                    ],
                ),
                Err(reply) => reply,
            },
        )
    };
    let tts = tts(&server, "");
    let stream = tts
        .start("A long answer.", &SynthesisOptions::default())
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut chunks = Vec::new();
        while let Some(chunk) = stream.next_chunk().unwrap() {
            let _ = tx.send(chunk.samples.len());
            chunks.push(chunk);
        }
        chunks
    });
    let first_len = rx.recv_timeout(Duration::from_secs(5));
    let held = !gate.is_open();
    gate.open();
    let chunks = reader.join().unwrap();
    assert!(
        first_len.is_ok(),
        "no audio while the server held the rest back"
    );
    assert!(held);
    let mut all = first.clone();
    all.extend(&rest);
    assert_eq!(samples(&chunks), all);
}

#[test]
fn a_refused_key_is_an_auth_error_naming_plugin_and_variable_without_the_key() {
    let server = FakeServer::start(elevenlabs::stream(
        "another-key",
        vec![1; 10],
        10,
        Duration::ZERO,
    ));
    let err = tts(&server, "")
        .synthesize_all("Hi.", &SynthesisOptions::default())
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    let m = err.message();
    assert!(
        m.contains(PLUGIN) && m.contains(KEY_VAR) && m.contains("Invalid API key"),
        "{m}"
    );
    assert!(!m.contains(KEY), "{m}");
    assert_eq!(server.hits(), 1);
}

#[test]
fn a_spent_quota_is_reported_as_the_api_says() {
    let server = FakeServer::start(|_| elevenlabs::quota_exceeded());
    let err = tts(&server, "")
        .synthesize_all("Hi.", &SynthesisOptions::default())
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(!err.retryable);
    assert!(
        err.message().contains("quota_exceeded"),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("exceeds your quota"),
        "{}",
        err.message()
    );
    assert_eq!(server.hits(), 1);
}

#[test]
fn a_validation_error_is_invalid_input_naming_the_field() {
    let server = FakeServer::start(|_| {
        elevenlabs::validation_error(
            &["body", "text"],
            "ensure this value has at most 40000 characters",
        )
    });
    let err = tts(&server, "")
        .synthesize_all("Hi.", &SynthesisOptions::default())
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(
        err.message().contains("body.text: ensure this value"),
        "{}",
        err.message()
    );
    assert!(err.message().contains("422"), "{}", err.message());
}

#[test]
fn busy_then_success_waits_as_asked_and_streams() {
    let pcm = tone(4_800, 24_000);
    let server = FakeServer::start(first_n(
        1,
        |_| elevenlabs::busy(Some(1)),
        elevenlabs::stream(KEY, pcm.clone(), 960, Duration::ZERO),
    ));
    let chunks = tts(&server, "")
        .synthesize_all("Hi.", &SynthesisOptions::default())
        .unwrap();
    assert_eq!(samples(&chunks), pcm);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].received - requests[0].received;
    assert!(
        gap >= Duration::from_secs(1),
        "retried after {gap:?}, asked 1 s"
    );
}

#[test]
fn a_stall_before_or_within_the_audio_is_a_timeout() {
    let server = FakeServer::start(|_| Reply::stall());
    let started = Instant::now();
    let err = tts(&server, "timeout_ms = 300")
        .synthesize_all("Hi.", &SynthesisOptions::default())
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout, "{}", err.message());
    assert!(started.elapsed() < Duration::from_secs(3));

    let server = FakeServer::start(|_| {
        Reply::chunked(
            200,
            "audio/pcm",
            vec![
                Piece::Data(pcm_bytes(&[1, 2, 3])),
                Piece::Pause(Duration::from_secs(5)),
                Piece::Data(pcm_bytes(&[4])),
            ],
        )
    });
    let stream = tts(&server, "timeout_ms = 300")
        .synthesize("Hi.", &SynthesisOptions::default())
        .unwrap();
    let first = stream.next_chunk().into_result().unwrap();
    assert!(first.is_some());
    let err = stream.next_chunk().into_result().unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout, "{}", err.message());
}

#[test]
fn cancelling_ends_the_stream() {
    let server = FakeServer::start(elevenlabs::stream(
        KEY,
        tone(48_000, 24_000),
        2_400,
        Duration::from_millis(50),
    ));
    let stream = tts(&server, "")
        .synthesize("Hi.", &SynthesisOptions::default())
        .unwrap();
    assert!(stream.next_chunk().into_result().unwrap().is_some());
    stream.cancel();
    assert!(stream.next_chunk().into_result().unwrap().is_none());
}

#[test]
fn voices_come_from_the_voice_list() {
    let server = FakeServer::start(elevenlabs::stream(KEY, vec![], 1, Duration::ZERO));
    let voices = tts(&server, "").voices().unwrap();
    assert_eq!(voices.len(), 2);
    assert_eq!(voices[0].id.as_str(), "21m00Tcm4TlvDq8Ikt00");
    assert_eq!(voices[0].name.as_str(), "Rachel");
    assert_eq!(
        voices[0]
            .language
            .as_ref()
            .map(|l| l.as_str())
            .into_option(),
        Some("en")
    );
    assert_eq!(
        voices[1]
            .language
            .as_ref()
            .map(|l| l.as_str())
            .into_option(),
        Some("en")
    );
    let request = &server.requests()[0];
    assert_eq!(
        (request.method.as_str(), request.path()),
        ("GET", "/v1/voices")
    );
    assert_eq!(request.header("xi-api-key"), Some(KEY));
}

#[test]
fn empty_or_huge_text_is_refused_without_a_request() {
    let server = FakeServer::start(|_| Reply::new(500));
    let tts = tts(&server, "");
    for text in ["  ".to_string(), "a".repeat(MAX_TEXT_CHARS + 1)] {
        let err = tts
            .synthesize(&text, &SynthesisOptions::default())
            .err()
            .unwrap();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
    }
    assert_eq!(server.hits(), 0);
}

#[test]
fn health_asks_for_the_voice_list_with_the_key() {
    let server = FakeServer::start(elevenlabs::stream(KEY, vec![0; 10], 10, Duration::ZERO));
    let health = tts(&server, "").health().unwrap();
    assert!(health.healthy, "{health:?}");
    let probe = server
        .requests()
        .pop()
        .expect("the health check made a request");
    assert_eq!((probe.method.as_str(), probe.path()), ("GET", "/v1/voices"));
    let refused = FakeServer::start(elevenlabs::stream(
        "xi-other",
        vec![0; 10],
        10,
        Duration::ZERO,
    ));
    let health = tts(&refused, "").health().unwrap();
    assert!(
        !health.healthy && health.detail.contains(KEY_VAR),
        "{health:?}"
    );
}
