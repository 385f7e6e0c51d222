//! The `wyoming` plugin, loaded by the host from its built library, against the real
//! wyoming-faster-whisper server (PyPI, `make wyoming`) and against bad peers on loopback: a
//! server that sends garbage, one that never answers, one that closes mid-call, a port nobody
//! listens on. The host fails over past each bad one to the real server, within the limits.

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openclaw_voice::config::{Config, Isolation, ProviderConfig};
use openclaw_voice::plugins::failover;
use openclaw_voice::plugins::{PluginSet, Providers};
use openclaw_voice::voice::local::resample_linear;
use openclaw_voice_tests::wyoming::{free_port, venv, FasterWhisper};
use openclaw_voice_tests::{
    espeak_speech, toml_path, whisper_model, workspace_root, ConfigDir, PluginDir, Running, ESPEAK,
    LOCAL_WHISPER, WYOMING,
};
use plugin_api::abi::{ErrorKind, TranscribeOptions};

/// A peer that reads whatever comes and answers each connection with `answer` (or nothing,
/// holding the connection open for 10 s, when it is `None`).
fn bad_peer(answer: Option<&'static [u8]>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().expect("clone");
                let mut reader = BufReader::new(stream);
                // The first event (`describe` or `transcribe`) and, for a transcription, its
                // audio up to `audio-stop`.
                while let Ok(Some(event)) = openclaw_wyoming::Event::read_from(&mut reader) {
                    if event.kind == "describe" || event.kind == "audio-stop" {
                        break;
                    }
                }
                match answer {
                    Some(bytes) => {
                        let _ = writer.write_all(bytes);
                    }
                    None => std::thread::sleep(Duration::from_secs(10)),
                }
            });
        }
    });
    address
}

/// A `wyoming` provider for `address`; peers that are not the real server get 1 s to answer.
fn wyoming(address: &str, real: bool) -> ProviderConfig {
    let mut settings = toml::Table::new();
    settings.insert("address".into(), address.into());
    let io_timeout_ms = if real { 30_000 } else { 1000 };
    settings.insert("io_timeout_ms".into(), io_timeout_ms.into());
    settings.insert("connect_timeout_ms".into(), 500.into());
    ProviderConfig {
        plugin: Some("wyoming".into()),
        isolation: Isolation::InProcess,
        settings,
        ..ProviderConfig::default()
    }
}

/// 16 kHz speech of `text`, by espeak-ng.
fn speech(text: &str) -> Arc<[i16]> {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let wav = espeak_speech(dir.path(), "q.wav", text);
    let mut reader = hound::WavReader::open(wav).expect("a WAV");
    let rate = reader.spec().sample_rate;
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .map(|s| s.expect("a sample"))
        .collect();
    resample_linear(&samples, rate, 16_000).into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_peers_fail_over_to_the_real_wyoming_faster_whisper() {
    let server = FasterWhisper::start();
    let peers = [
        ("garbage", bad_peer(Some(b"SSH-2.0-OpenSSH_9.6\r\n"))),
        ("silent", bad_peer(None)),
        (
            "closes",
            bad_peer(Some(b"{\"type\":\"transcript\",\"payload_length\":100}\n")),
        ),
        ("refused", format!("127.0.0.1:{}", free_port())),
        ("faster-whisper", server.address.clone()),
    ];
    let mut config = Config::default();
    config.stt.providers = peers.iter().map(|(id, _)| id.to_string()).collect();
    config.tts.providers.clear();
    for (id, address) in &peers {
        let real = *id == "faster-whisper";
        config
            .providers
            .insert(id.to_string(), wyoming(address, real));
    }
    let dir = PluginDir::with(&[WYOMING]);
    let set = PluginSet::for_config(dir.path(), &config);
    let providers = Providers::build(&set, &config).await;
    assert!(providers.failures.is_empty(), "{:?}", providers.failures);

    let audio = speech("What is the weather like in Paris today?");
    let started = Instant::now();
    let done = failover::transcribe(
        &providers.stt,
        audio,
        TranscribeOptions::default(),
        Duration::from_secs(60),
    )
    .await
    .expect("the real server answers");
    let took = started.elapsed();
    assert_eq!(done.provider, "faster-whisper");
    let text = done.transcript.text.as_str().to_lowercase();
    assert!(text.contains("weather") && text.contains("paris"), "{text}");
    let kinds: Vec<ErrorKind> = done.errors.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::Unavailable,
            ErrorKind::Timeout,
            ErrorKind::Unavailable,
            ErrorKind::Unavailable
        ],
        "{:?}",
        done.errors
    );
    // The silent peer costs its 1 s idle limit; nothing waits longer.
    assert!(took < Duration::from_secs(20), "{took:?}");
}

/// `openclaw-voice wyoming serve` with local-whisper for STT and, for TTS, a dead Wyoming
/// server then espeak; the PyPI `wyoming` client describes, transcribes and synthesizes.
#[test]
fn the_wyoming_client_library_uses_wyoming_serve_for_stt_and_tts() {
    let plugins = PluginDir::with(&[WYOMING, LOCAL_WHISPER, ESPEAK]);
    let config = ConfigDir::new();
    config.write(
        "test.toml",
        &format!(
            "[plugins]\ndir = {}\n[stt]\nproviders = [\"local-whisper\"]\n\
             [tts]\nproviders = [\"dead\", \"espeak\"]\n\
             [providers.local-whisper]\nplugin = \"local-whisper\"\n\
             [providers.local-whisper.settings]\nmodel = {}\n\
             [providers.espeak]\nplugin = \"espeak\"\nisolation = \"in-process\"\n\
             [providers.dead]\nplugin = \"wyoming\"\nisolation = \"in-process\"\n\
             [providers.dead.settings]\naddress = \"127.0.0.1:{}\"\n\
             [discord]\nenabled = false\n",
            toml_path(plugins.path()),
            toml_path(&whisper_model()),
            free_port()
        ),
    );
    let args = [
        "--config-dir",
        &config.path().display().to_string(),
        "--env",
        "test",
        "wyoming",
        "serve",
        "--bind",
        "127.0.0.1:0",
    ]
    .map(String::from);
    let server = Running::spawn(args, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let address = loop {
        let stdout = server.stdout();
        if let Some(rest) = stdout.split("serving Wyoming on tcp://").nth(1) {
            break rest.split(':').take(2).collect::<Vec<_>>().join(":");
        }
        assert!(
            Instant::now() < deadline,
            "not serving:\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let port = address.rsplit(':').next().expect("a port").to_string();

    let scratch = tempfile::tempdir().expect("a scratch directory");
    let wav = espeak_speech(
        scratch.path(),
        "q.wav",
        "What is the weather like in Paris today?",
    );
    let client = workspace_root().join("tests/wyoming/client.py");
    let output = Command::new(venv().join("bin/python"))
        .arg(client)
        .args(["127.0.0.1", &port])
        .arg(&wav)
        .arg("Sure. It is sunny in Paris today.")
        .output()
        .expect("run the wyoming client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}\n--- server ---\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.stderr()
    );
    let got: serde_json::Value = serde_json::from_str(&stdout).expect("JSON from the client");
    assert_eq!(got["asr"], serde_json::json!(["local-whisper"]));
    assert_eq!(got["tts"], serde_json::json!(["dead", "espeak"]));
    let transcript = got["transcript"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        transcript.contains("weather") && transcript.contains("paris"),
        "{got}"
    );
    assert_eq!(got["tts_rate"], 22050, "{got}");
    assert!(got["tts_seconds"].as_f64().unwrap_or(0.0) > 1.0, "{got}");
    assert!(got["tts_chunks"].as_u64().unwrap_or(0) >= 2, "{got}");
    server.signal("TERM");
    let run = server.finish(Duration::from_secs(10));
    assert_eq!(run.code, Some(0), "{run}");
}
