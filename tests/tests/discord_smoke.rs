//! `scripts/discord-smoke` run as operators run it, against the fake Discord with DAVE on and
//! the real bot: its checks and verdicts. The fake has one bot identity, so the script's two
//! bots cannot both connect: these cover a bot that cannot join (the reason from the bot's
//! own log) and a bot that joins but is never spoken to because Discord refuses the speaker's
//! token (FAIL, with what the bot's /metrics show); the speaker's PASS path is
//! `discord_speak.rs`.

use std::process::Command;

use openclaw_voice_tests::fake_discord::{FakeDiscord, BOT_ID, GUILD_ID, LOUNGE, STAGE};
use openclaw_voice_tests::{binary, toml_path, workspace_root, ConfigDir, PluginDir, FAULT, TONE};

/// Runs the script against `fake` for `channel`; (exit code, stdout, stderr).
fn smoke(fake: &FakeDiscord, channel: u64, speaker_token: &str) -> (Option<i32>, String, String) {
    smoke_expecting(fake, channel, speaker_token, None)
}

/// The speaker bot's user id (a second bot identity in the fake).
const SPEAKER: u64 = 1_300_000_000_000_000_999;

/// As [`smoke`], with `--expect WORD` when given.
fn smoke_expecting(
    fake: &FakeDiscord,
    channel: u64,
    speaker_token: &str,
    expect: Option<&str>,
) -> (Option<i32>, String, String) {
    let plugins = PluginDir::with(&[FAULT, TONE]);
    let config = ConfigDir::new();
    config.write(
        "smoke.toml",
        &format!(
            "[plugins]\ndir = {}\n[stt]\nproviders = [\"ears\"]\n[tts]\nproviders = [\"voice\"]\n\
             [providers.ears]\nplugin = \"fault\"\n[providers.voice]\nplugin = \"tone\"\n",
            toml_path(plugins.path())
        ),
    );
    let wav = config.path().join("question.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&wav, spec).expect("create the WAV");
    for i in 0..16_000 {
        let t = f64::from(i) / 16_000.0;
        writer
            .write_sample((8_000.0 * (t * 440.0 * std::f64::consts::TAU).sin()) as i16)
            .expect("write the WAV");
    }
    writer.finalize().expect("finish the WAV");
    let out = Command::new(workspace_root().join("scripts/discord-smoke"))
        .args([
            "--guild",
            &GUILD_ID.to_string(),
            "--channel",
            &channel.to_string(),
        ])
        .args(["--wav", wav.to_str().expect("UTF-8"), "--timeout", "20"])
        .args([
            "--env",
            "smoke",
            "--config-dir",
            config.path().to_str().expect("UTF-8"),
        ])
        .args([
            "--bot-id",
            &BOT_ID.to_string(),
            "--speaker-id",
            &SPEAKER.to_string(),
        ])
        .args(expect.map(|e| ["--expect", e]).into_iter().flatten())
        .envs(fake.bot_env())
        .env("DISCORD_SPEAKER_TOKEN", speaker_token)
        .env("OPENCLAW_VOICE", binary())
        .output()
        .expect("run scripts/discord-smoke");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bot_that_cannot_join_fails_the_smoke_test_with_the_reason() {
    let fake = FakeDiscord::start();
    fake.set_dave_version(1);
    let (code, out, err) = smoke(&fake, STAGE, "speaker.token");
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        out.contains("discord-smoke: FAIL the bot did not join: ")
            && out.contains("it is a stage channel"),
        "{out}\n{err}"
    );
}

#[test]
fn a_refused_speaker_fails_the_smoke_test_after_the_bot_joined() {
    let fake = FakeDiscord::start();
    fake.set_dave_version(1);
    let (code, out, err) = smoke(&fake, LOUNGE, "not.the.speaker");
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        out.contains(&format!("discord-smoke: the bot joined channel {LOUNGE}")),
        "{out}\n{err}"
    );
    // The bot under test really connected to the channel's voice server.
    let identifies = fake.world(|w| w.voice_identifies.get(&GUILD_ID).copied());
    assert!(identifies.unwrap_or(0) >= 1, "{out}\n{err}");
    assert!(
        out.contains("discord-smoke: FAIL the bot transcribed nothing (transcriptions_total = 0"),
        "{out}\n{err}"
    );
}

#[test]
fn the_smoke_test_names_a_missing_speaker_token() {
    let fake = FakeDiscord::start();
    let (code, out, err) = smoke(&fake, LOUNGE, "");
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        out.contains("FAIL DISCORD_SPEAKER_TOKEN is not set"),
        "{out}\n{err}"
    );
}

#[test]
fn the_smoke_test_passes_against_the_fake_without_dave() {
    let fake = FakeDiscord::start();
    let speaker_token = fake.add_bot(SPEAKER, "speaker");
    let (code, out, err) = smoke_expecting(&fake, LOUNGE, &speaker_token, Some("samples"));
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("speak: PASS heard") && out.contains(&format!("from user {BOT_ID}")),
        "{out}\n{err}"
    );
    assert!(
        out.contains(
            "discord-smoke: PASS transcribed, answered, and the reply reached the speaker"
        ),
        "{out}\n{err}"
    );
    // Both ways through the fake's relay: the speaker's WAV to the bot, the reply back.
    let relayed = fake.world(|w| w.relayed_packets.get(&GUILD_ID).copied());
    assert!(relayed.unwrap_or(0) > 100, "{relayed:?}\n{out}\n{err}");
}
