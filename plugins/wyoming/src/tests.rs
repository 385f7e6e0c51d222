//! Bad peers on loopback: a server that closes mid-call, one that sends garbage, one that
//! never answers, one that refuses connections. Each must give a typed error within its
//! limit, never a hang. (The real servers are in `tests/tests/wyoming.rs`.)

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use openclaw_wyoming::{pcm_bytes, AudioFormat, Event};
use plugin_api::abi::{ErrorKind, Role, SynthesisOptions, TranscribeOptions};
use plugin_api::abi_stable::std_types::ROption;
use plugin_api::testing::TestPlugin;
use serde_json::json;

use super::*;

/// A server running `behave` on each connection after its first event (a `describe` is
/// answered with an offer of both roles instead, so the provider builds).
fn peer(behave: fn(&mut BufReader<TcpStream>, &mut TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                let Ok(Some(first)) = Event::read_from(&mut reader) else {
                    return;
                };
                if first.kind == "describe" {
                    let info = json!({
                        "asr": [{"name": "fake", "models": [{"name": "m", "languages": ["en"]}]}],
                        "tts": [{"name": "fake", "voices": [{"name": "v", "languages": ["en"]}]}],
                    });
                    let _ = Event::new("info", info).write_to(&mut writer);
                    return;
                }
                behave(&mut reader, &mut writer);
            });
        }
    });
    address
}

fn settings(address: &str) -> String {
    format!("address = \"{address}\"\nio_timeout_ms = 500\ntimeout_ms = 2000")
}

fn transcribe(address: &str) -> PluginError {
    let plugin = TestPlugin::new(definition);
    let stt = plugin.stt(&settings(address)).unwrap();
    let started = Instant::now();
    let e = stt
        .transcribe(&[0i16; 16000], &TranscribeOptions::default())
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    e
}

fn drain(reader: &mut BufReader<TcpStream>) {
    while let Ok(Some(event)) = Event::read_from(reader) {
        if event.kind == "audio-stop" {
            return;
        }
    }
}

#[test]
fn a_server_that_closes_mid_call_is_unavailable() {
    let address = peer(|reader, _| {
        let _ = Event::read_from(reader);
    });
    let e = transcribe(&address);
    assert_eq!(e.kind, ErrorKind::Unavailable, "{}", e.message());
}

#[test]
fn garbage_is_unavailable() {
    let address = peer(|reader, writer| {
        drain(reader);
        let _ = writer.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
    });
    let e = transcribe(&address);
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(
        e.message().contains("not a Wyoming event"),
        "{}",
        e.message()
    );
}

#[test]
fn a_server_that_never_answers_times_out() {
    let address = peer(|reader, _| {
        drain(reader);
        thread::sleep(Duration::from_secs(5));
    });
    let e = transcribe(&address);
    assert_eq!(e.kind, ErrorKind::Timeout, "{}", e.message());
}

#[test]
fn an_error_event_carries_the_servers_text() {
    let address = peer(|reader, writer| {
        drain(reader);
        let _ = Event::new("error", json!({"text": "model not loaded"})).write_to(writer);
    });
    let e = transcribe(&address);
    assert!(e.message().contains("model not loaded"), "{}", e.message());
}

#[test]
fn a_refused_connection_is_unavailable_and_does_not_stop_the_provider_building() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = transcribe(&format!("127.0.0.1:{port}"));
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(e.message().contains("cannot connect"), "{}", e.message());
    let plugin = TestPlugin::new(definition);
    let stt = plugin.stt(&settings(&format!("127.0.0.1:{port}"))).unwrap();
    assert!(!stt.health().unwrap().healthy);
}

#[test]
fn a_transcript_comes_back_with_its_language() {
    let address = peer(|reader, writer| {
        let mut samples = 0;
        while let Ok(Some(event)) = Event::read_from(reader) {
            match event.kind.as_str() {
                "audio-chunk" => samples += event.payload.len() / 2,
                "audio-stop" => break,
                _ => {}
            }
        }
        let text = format!("{samples} samples");
        let _ = Event::new("transcript", json!({"text": text, "language": "en"})).write_to(writer);
    });
    let plugin = TestPlugin::new(definition);
    let stt = plugin.stt(&settings(&address)).unwrap();
    let transcript = stt
        .transcribe(&[0i16; 40000], &TranscribeOptions::default())
        .unwrap();
    assert_eq!(transcript.text.as_str(), "40000 samples");
    assert_eq!(
        transcript.language.as_ref().map(|l| l.as_str()),
        ROption::RSome("en")
    );
    assert!(stt.health().unwrap().healthy);
}

#[test]
fn synthesis_streams_chunks_and_a_cut_stream_is_an_error() {
    let address = peer(|_, writer| {
        let stereo = AudioFormat {
            rate: 22050,
            width: 2,
            channels: 2,
        };
        let _ = Event::new("audio-start", stereo.data()).write_to(writer);
        let chunk = Event::new("audio-chunk", stereo.data()).with_payload(pcm_bytes(&[10, 30]));
        let _ = chunk.write_to(writer);
        // Then the server dies before `audio-stop`.
    });
    let plugin = TestPlugin::new(definition);
    let tts = plugin.tts(&settings(&address)).unwrap();
    let stream = tts
        .synthesize("Hello.", &SynthesisOptions::default())
        .unwrap();
    let first = stream.next_chunk().into_result().unwrap();
    let ROption::RSome(chunk) = first else {
        panic!("a chunk")
    };
    assert_eq!(
        (chunk.samples.as_slice(), chunk.sample_rate),
        (&[20i16][..], 22050)
    );
    let next = stream.next_chunk().into_result();
    let e = next.expect_err("an error after the cut");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{}", e.message());
}

#[test]
fn validation_does_not_touch_the_network() {
    let plugin = TestPlugin::new(definition);
    // Nothing listens on port 9 here; validation still passes.
    plugin
        .validate_config(Role::SpeechToText, "address = \"127.0.0.1:9\"")
        .unwrap();
    let e = plugin
        .validate_config(Role::TextToSpeech, "address = \"nowhere\"")
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
}
