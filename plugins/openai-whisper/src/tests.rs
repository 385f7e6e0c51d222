//! The plugin through [`TestPlugin`] (the adapters the host drives) against the fake OpenAI
//! transcription server of `openclaw_voice_tests::fake_cloud`: real HTTP, real multipart.

use std::sync::Once;
use std::time::{Duration, Instant};

use openclaw_voice_tests::fake_cloud::{first_n, one_worker, openai, FakeServer, Reply};
use plugin_api::prelude::*;
use plugin_api::testing::{TestPlugin, TestStt};

use super::*;

/// The variable the tests' key lives in, and the key.
const KEY_VAR: &str = "OCV_TEST_OPENAI_WHISPER_KEY";
const KEY: &str = "sk-test-whisper-0123456789abcdefXYZ9";

fn plugin() -> TestPlugin {
    static ENV: Once = Once::new();
    ENV.call_once(|| std::env::set_var(KEY_VAR, KEY));
    TestPlugin::new(definition)
}

fn stt(server: &FakeServer, extra: &str) -> TestStt {
    plugin()
        .stt(&format!(
            "base_url = \"{}\"\napi_key_env = \"{KEY_VAR}\"\nbackoff_initial_ms = 10\n{extra}",
            server.base_url()
        ))
        .unwrap()
}

fn english() -> TranscribeOptions {
    TranscribeOptions::new().with_language("en")
}

/// One second of a quiet ramp at 16 kHz.
fn utterance() -> Vec<i16> {
    (0..16_000).map(|i| (i % 200) as i16 - 100).collect()
}

#[test]
fn info_names_the_plugin_and_its_role() {
    let info = plugin().info().unwrap();
    assert_eq!(info.name.as_str(), PLUGIN);
    assert_eq!(info.provides.as_slice(), [Role::SpeechToText]);
    let err = plugin()
        .validate_config(Role::TextToSpeech, "")
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config);
}

#[test]
fn multipart_request_follows_the_api_and_segments_come_back() {
    let server = FakeServer::start(openai::transcriptions(
        KEY,
        "What is the capital of France? (no speech) Thank you.",
    ));
    let stt = stt(&server, "prompt = \"OpenClaw\"\ntemperature = 0.2");
    let audio = utterance();
    let t = stt.transcribe(&audio, &english()).unwrap();
    assert_eq!(t.text.as_str(), "What is the capital of France?");
    assert_eq!(
        t.language.as_ref().map(|l| l.as_str()).into_option(),
        Some("en")
    );
    assert_eq!(t.segments.len(), 1, "the no-speech segment is dropped");
    assert!(t.confidence.into_option().unwrap() > 0.5);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = openai::parse_transcription(&requests[0], KEY).expect("a valid request");
    assert_eq!(request.model, "whisper-1");
    assert_eq!(request.response_format, "verbose_json");
    assert_eq!(request.language.as_deref(), Some("en"));
    assert_eq!(request.prompt.as_deref(), Some("OpenClaw"));
    assert_eq!(request.temperature.as_deref(), Some("0.2"));
    assert_eq!(request.file_name, "utterance.wav");
    assert_eq!(request.file_type.as_deref(), Some("audio/wav"));
    assert_eq!(
        (
            request.audio.sample_rate,
            request.audio.channels,
            request.audio.bits
        ),
        (16_000, 1, 16)
    );
    assert_eq!(request.audio.samples, audio, "the audio arrives intact");
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
}

#[test]
fn gpt_4o_models_get_json_and_dropping_can_be_turned_off() {
    let server = FakeServer::start(openai::transcriptions(KEY, "Hello there."));
    let stt = stt(&server, "model = \"gpt-4o-mini-transcribe\"");
    let t = stt.transcribe(&utterance(), &english()).unwrap();
    assert_eq!(t.text.as_str(), "Hello there.");
    let request = openai::parse_transcription(&server.requests()[0], KEY).unwrap();
    assert_eq!(request.response_format, "json");

    let server = FakeServer::start(openai::transcriptions(KEY, "Hi. (no speech) Thank you."));
    let stt = self::stt(&server, "drop_no_speech = false");
    let t = stt.transcribe(&utterance(), &english()).unwrap();
    assert_eq!(t.text.as_str(), "Hi. Thank you.");

    let server = FakeServer::start(openai::transcriptions(KEY, "Plain."));
    let stt = self::stt(&server, "response_format = \"text\"\nlanguage = \"de\"");
    let t = stt.transcribe(&utterance(), &english()).unwrap();
    assert_eq!(t.text.as_str(), "Plain.");
    let request = openai::parse_transcription(&server.requests()[0], KEY).unwrap();
    assert_eq!(
        request.language.as_deref(),
        Some("de"),
        "settings override the hint"
    );
}

#[test]
fn a_refused_key_is_an_auth_error_naming_plugin_and_variable_without_the_key() {
    let server = FakeServer::start(openai::transcriptions("sk-the-right-key-000000000", "x"));
    let err = stt(&server, "")
        .transcribe(&utterance(), &english())
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(!err.retryable);
    let m = err.message();
    assert!(m.contains(PLUGIN) && m.contains(KEY_VAR), "{m}");
    assert!(
        m.contains("Incorrect API key provided"),
        "the API's own text: {m}"
    );
    assert!(
        !m.contains(KEY) && !m.contains(&KEY[KEY.len() - 4..]),
        "{m}"
    );
    assert_eq!(server.hits(), 1, "auth errors are not retried");
}

#[test]
fn a_missing_key_variable_fails_setup_naming_it() {
    let err = plugin()
        .stt("api_key_env = \"OCV_TEST_UNSET_VARIABLE_42\"")
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(
        err.message().contains("OCV_TEST_UNSET_VARIABLE_42"),
        "{}",
        err.message()
    );
}

#[test]
fn rate_limit_then_success_waits_as_asked() {
    let server = FakeServer::start(first_n(
        1,
        |_| openai::rate_limited(1),
        openai::transcriptions(KEY, "Second time lucky."),
    ));
    let started = Instant::now();
    let t = stt(&server, "")
        .transcribe(&utterance(), &english())
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(t.text.as_str(), "Second time lucky.");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].received - requests[0].received;
    assert!(
        gap >= Duration::from_secs(1),
        "retried after {gap:?}, asked 1 s"
    );
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

#[test]
fn a_long_retry_after_or_a_spent_quota_comes_back_at_once() {
    let server = FakeServer::start(|_| openai::rate_limited(30));
    let started = Instant::now();
    let err = stt(&server, "")
        .transcribe(&utterance(), &english())
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(server.hits(), 1);

    let server = FakeServer::start(|_| openai::quota_exceeded());
    let err = stt(&server, "")
        .transcribe(&utterance(), &english())
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert!(!err.retryable);
    assert!(err.message().contains("quota"), "{}", err.message());
    assert_eq!(server.hits(), 1);
}

#[test]
fn server_errors_are_retried_with_backoff_then_reported() {
    let server = FakeServer::start(|_| openai::server_error(503));
    let err = stt(&server, "max_retries = 2")
        .transcribe(&utterance(), &english())
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(err.message().contains("HTTP 503"), "{}", err.message());
    assert!(
        err.message().contains("Sorry about that"),
        "{}",
        err.message()
    );
    assert_eq!(server.hits(), 3);

    let server = FakeServer::start(first_n(
        2,
        |_| openai::server_error(502),
        openai::transcriptions(KEY, "Recovered."),
    ));
    let t = stt(&server, "")
        .transcribe(&utterance(), &english())
        .unwrap();
    assert_eq!(t.text.as_str(), "Recovered.");
}

#[test]
fn refused_requests_are_invalid_input_with_the_api_text() {
    for (status, text) in [
        (400, "Audio file might be corrupted"),
        (413, "Maximum content size limit exceeded"),
        (415, "Unsupported media type"),
    ] {
        let server =
            FakeServer::start(move |_| openai::error(status, text, "invalid_request_error", None));
        let err = stt(&server, "")
            .transcribe(&utterance(), &english())
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput, "HTTP {status}");
        assert!(err.message().contains(text), "{}", err.message());
        assert_eq!(server.hits(), 1);
    }
    let server = FakeServer::start(openai::transcriptions(KEY, "x"));
    let err = stt(&server, "").transcribe(&[], &english()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert_eq!(server.hits(), 0);
}

#[test]
fn a_stalled_server_is_a_timeout_and_a_closed_port_is_unavailable() {
    let server = FakeServer::start(|_| Reply::stall());
    let started = Instant::now();
    let err = stt(&server, "timeout_ms = 300")
        .transcribe(&utterance(), &english())
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout, "{}", err.message());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(server.hits(), 1, "timeouts are not retried");

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let stt = plugin()
        .stt(&format!(
            "base_url = \"http://{closed}\"\nmax_retries = 1\nbackoff_initial_ms = 10"
        ))
        .unwrap();
    let err = stt.transcribe(&utterance(), &english()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{}", err.message());
    assert!(
        err.message().contains("cannot connect"),
        "{}",
        err.message()
    );
}

#[test]
fn a_server_that_is_not_openai_compatible_is_reported() {
    let server = FakeServer::start(|_| Reply::text(200, "text/html", "<html>hi</html>"));
    let err = stt(&server, "")
        .transcribe(&utterance(), &english())
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(err.message().contains("verbose_json"), "{}", err.message());
    let server = FakeServer::start(|_| {
        openai::error(
            404,
            "The model `whisper-9` does not exist",
            "invalid_request_error",
            None,
        )
    });
    let err = stt(&server, "model = \"whisper-9\"")
        .transcribe(&utterance(), &english())
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config);
    assert!(err.message().contains("whisper-9"), "{}", err.message());
}

#[test]
fn a_server_without_auth_needs_no_key() {
    let server = FakeServer::start(|request: &openclaw_voice_tests::fake_cloud::Request| {
        match request.header("authorization") {
            Some(_) => Reply::new(400),
            None => Reply::json(200, &serde_json::json!({"text": "local"})),
        }
    });
    let stt = plugin()
        .stt(&format!(
            "base_url = \"{}\"\nresponse_format = \"json\"",
            server.base_url()
        ))
        .unwrap();
    assert_eq!(
        stt.transcribe(&utterance(), &english())
            .unwrap()
            .text
            .as_str(),
        "local"
    );
    assert!(stt.health().unwrap().healthy);
}

/// A pool of `servers` (base URLs) with the test key and quick retries.
fn pool_stt(servers: &[&FakeServer], extra: &str) -> TestStt {
    let urls: Vec<String> = servers
        .iter()
        .map(|s| format!("\"{}\"", s.base_url()))
        .collect();
    plugin()
        .stt(&format!(
            "base_urls = [{}]\napi_key_env = \"{KEY_VAR}\"\nresponse_format = \"json\"\n\
             backoff_initial_ms = 10\nbackoff_max_ms = 20\n{extra}",
            urls.join(", ")
        ))
        .unwrap()
}

#[test]
fn a_pool_spreads_by_load_and_never_calls_an_endpoint_whose_circuit_is_open() {
    let broken = FakeServer::start(|_: &openclaw_voice_tests::fake_cloud::Request| {
        openai::server_error(503)
    });
    let slow = FakeServer::start(one_worker(
        Duration::from_millis(160),
        openai::transcriptions(KEY, "slow"),
    ));
    let fast = FakeServer::start(one_worker(
        Duration::from_millis(40),
        openai::transcriptions(KEY, "fast"),
    ));
    // The broken server first in config order, so that it is tried before anything is known.
    let stt = std::sync::Arc::new(pool_stt(
        &[&broken, &slow, &fast],
        "endpoint_failures = 2\nendpoint_cooldown_ms = 600000\n",
    ));
    // Nothing known yet: ties go to config order, so the broken server takes the first two
    // requests (each answered by another endpoint at once), and its circuit opens.
    for _ in 0..2 {
        stt.transcribe(&utterance(), &english()).unwrap();
    }
    assert_eq!(broken.hits(), 2);
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let stt = stt.clone();
            std::thread::spawn(move || {
                (0..5)
                    .map(|_| {
                        stt.transcribe(&utterance(), &english())
                            .map(|t| t.text.to_string())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let answers: Vec<_> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("a client thread"))
        .collect();
    // Every utterance transcribed, the failing endpoint's turns by another one.
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    // Its circuit open, it got nothing more (the cooldown is 10 min).
    assert_eq!(broken.hits(), 2);
    let (by_fast, by_slow) = (fast.hits(), slow.hits());
    assert_eq!(by_fast + by_slow, 32);
    // Six clients at once: the fast server's queue grows until the slow one is quicker.
    assert!(
        by_fast > by_slow && by_slow >= 1,
        "fast {by_fast}, slow {by_slow}"
    );
    let health = stt.health().unwrap();
    assert!(health.healthy, "{health:?}");
    let detail = health.detail.as_str();
    assert!(
        detail.contains(&format!("{} (open", broken.base_url()))
            && detail.contains(&format!("{} (closed", fast.base_url())),
        "{detail}"
    );
}

#[test]
fn an_endpoint_out_of_rotation_gets_one_probe_after_its_cooldown() {
    let good = FakeServer::start(openai::transcriptions(KEY, "good"));
    let flaky = FakeServer::start(first_n(
        2,
        |_: &openclaw_voice_tests::fake_cloud::Request| openai::server_error(502),
        openai::transcriptions(KEY, "flaky, recovered"),
    ));
    let stt = pool_stt(
        &[&flaky, &good],
        "endpoint_failures = 2\nendpoint_cooldown_ms = 300\n",
    );
    let started = Instant::now();
    let mut texts = Vec::new();
    while started.elapsed() < Duration::from_millis(250) {
        texts.push(
            stt.transcribe(&utterance(), &english())
                .unwrap()
                .text
                .to_string(),
        );
    }
    assert!(texts.iter().all(|t| t == "good"), "{texts:?}");
    assert_eq!(
        flaky.hits(),
        2,
        "a request reached the endpoint while its circuit was open"
    );
    std::thread::sleep(Duration::from_millis(120));
    // Past the cooldown: the next request probes it, and its answer closes the circuit.
    let text = stt.transcribe(&utterance(), &english()).unwrap().text;
    let times: Vec<Instant> = flaky.requests().iter().map(|r| r.received).collect();
    assert_eq!(times.len(), 3, "{text}");
    assert!(times[2] - times[1] >= Duration::from_millis(300));
    assert_eq!(text.as_str(), "flaky, recovered");
    assert!(stt
        .health()
        .unwrap()
        .detail
        .contains(&format!("{} (closed", flaky.base_url())));
}

#[test]
fn pool_settings_are_checked() {
    for (text, needle) in [
        (
            "base_url = \"http://a\"\nbase_urls = [\"http://b\"]",
            "either `base_url`",
        ),
        ("base_urls = [\"http://a\", \"http://a\"]", "twice"),
        (
            "base_urls = [\"http://a\", \"https://api.openai.com\"]",
            "entry 2",
        ),
        (
            "base_urls = [\"http://a\"]\nendpoint_failures = 0",
            "endpoint_failures",
        ),
    ] {
        let err = Settings::parse(text).unwrap_err();
        assert!(err.message().contains(needle), "{text}: {}", err.message());
    }
}

#[test]
fn a_rate_limited_endpoint_hands_the_request_to_another_at_once() {
    // It asks for 30 s, more than `max_retry_wait_ms`: alone, the error would come back.
    let limited =
        FakeServer::start(|_: &openclaw_voice_tests::fake_cloud::Request| openai::rate_limited(30));
    let good = FakeServer::start(openai::transcriptions(KEY, "good"));
    let stt = pool_stt(&[&limited, &good], "");
    let started = Instant::now();
    let text = stt.transcribe(&utterance(), &english()).unwrap().text;
    assert_eq!(text.as_str(), "good");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!((limited.hits(), good.hits()), (1, 1));
}

#[test]
fn health_makes_a_real_request_and_says_when_the_key_is_refused() {
    let server = FakeServer::start(openai::transcriptions(KEY, "x"));
    let health = stt(&server, "").health().unwrap();
    assert!(health.healthy, "{health:?}");
    assert!(
        health.detail.contains("/v1/models answered 200"),
        "{health:?}"
    );
    let probe = server
        .requests()
        .pop()
        .expect("the health check made a request");
    assert_eq!((probe.method.as_str(), probe.path()), ("GET", "/v1/models"));

    let other = FakeServer::start(openai::transcriptions("sk-another-key-000000000000", "x"));
    let health = stt(&other, "").health().unwrap();
    assert!(!health.healthy, "{health:?}");
    assert!(
        health.detail.contains(KEY_VAR),
        "names the variable: {health:?}"
    );
    assert!(!health.detail.contains(KEY), "never the key: {health:?}");

    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let health = plugin()
        .stt(&format!(
            "base_url = \"{url}\"\napi_key_env = \"{KEY_VAR}\""
        ))
        .unwrap()
        .health()
        .unwrap();
    assert!(!health.healthy, "{health:?}");
    assert!(health.detail.contains("cannot connect"), "{health:?}");
}
