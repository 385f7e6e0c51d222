//! `scripts/discord-smoke` run as operators run it, against the fake Discord with the real bot
//! and the real speaker bot (a second bot identity in the fake): PASS end to end without DAVE,
//! with DAVE when the two bots are alone (the bot's commit forms the group) and with DAVE when
//! a simulated member is already there (the bot's commit adds the speaker), each with the
//! audio relayed both ways as Discord's SFU does; and its FAIL verdicts: a bot that cannot
//! join (the reason from the bot's own log), a speaker whose token Discord refuses (what the
//! bot's /metrics show), a missing speaker token.
use std::process::Command;

use openclaw_voice_tests::fake_discord::{FakeDiscord, ALICE, BOT_ID, GUILD_ID, LOUNGE, STAGE};
use openclaw_voice_tests::{
    binary, espeak_speech, toml_path, workspace_root, ConfigDir, PluginDir, FAULT, TONE,
};

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
    // Speech, as Silero VAD (the default) wants: a tone is not speech to it.
    let wav = espeak_speech(
        config.path(),
        "question.wav",
        "What is the capital of France?",
    );
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

/// Packets the fake relayed (speaker → bot, bot → speaker) and, of all, those DAVE-encrypted.
fn relayed(fake: &FakeDiscord) -> (usize, usize, usize) {
    fake.world(|w| {
        let n = |m: &std::collections::HashMap<(u64, u64), usize>, from: u64| {
            m.get(&(GUILD_ID, from)).copied().unwrap_or(0)
        };
        (
            n(&w.relayed_packets, SPEAKER),
            n(&w.relayed_packets, BOT_ID),
            n(&w.relayed_dave_frames, SPEAKER) + n(&w.relayed_dave_frames, BOT_ID),
        )
    })
}

/// DAVE-encrypted packets the fake relayed: (from the speaker, from the bot).
fn dave_relayed(fake: &FakeDiscord) -> (usize, usize) {
    fake.world(|w| {
        let n = |from: u64| {
            w.relayed_dave_frames
                .get(&(GUILD_ID, from))
                .copied()
                .unwrap_or(0)
        };
        (n(SPEAKER), n(BOT_ID))
    })
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
    let relayed = relayed(&fake);
    assert!(
        relayed.0 > 40 && relayed.1 > 40,
        "{relayed:?}\n{out}\n{err}"
    );
    assert_eq!(relayed.2, 0, "DAVE frames without DAVE: {relayed:?}");
}

#[test]
fn the_smoke_test_passes_against_the_fake_with_dave() {
    let fake = FakeDiscord::start();
    fake.set_dave_version(1);
    // A simulated member forms the group with the bot; the speaker joins it by the bot's commit.
    fake.move_user(GUILD_ID, ALICE, Some(LOUNGE));
    let speaker_token = fake.add_bot(SPEAKER, "speaker");
    let (code, out, err) = smoke_expecting(&fake, LOUNGE, &speaker_token, Some("samples"));
    let dave = fake.world(|w| w.dave_ended.get(&GUILD_ID).cloned());
    assert_eq!(code, Some(0), "{dave:?}\n{out}\n{err}");
    assert!(
        out.contains(
            "discord-smoke: PASS transcribed, answered, and the reply reached the speaker"
        ),
        "{out}\n{err}"
    );
    let dave = dave.expect("a DAVE call");
    // The speaker was in the bot's group (added by the bot's commit), and the bot's reply was
    // DAVE-encrypted.
    assert!(dave.members.contains(&SPEAKER), "{dave:?}");
    assert!(
        dave.commits_from_bot >= 1 && dave.errors.is_empty(),
        "{dave:?}"
    );
    assert!(dave.bot_frames_decrypted > 50, "{dave:?}");
    let (speaker_dave, bot_dave) = dave_relayed(&fake);
    assert!(speaker_dave > 40 && bot_dave > 40, "{:?}", relayed(&fake));
}

#[test]
fn the_smoke_test_passes_with_dave_when_the_two_bots_are_alone() {
    let fake = FakeDiscord::start();
    fake.set_dave_version(1);
    let speaker_token = fake.add_bot(SPEAKER, "speaker");
    let (code, out, err) = smoke_expecting(&fake, LOUNGE, &speaker_token, Some("samples"));
    let dave = fake.world(|w| w.dave_ended.get(&GUILD_ID).cloned());
    assert_eq!(code, Some(0), "{dave:?}\n{out}\n{err}");
    let dave = dave.expect("a DAVE call");
    // The group was formed by the bot's commit; the speaker's question and the bot's reply
    // crossed the relay DAVE-encrypted.
    assert!(
        dave.commits_from_bot >= 1 && dave.errors.is_empty(),
        "{dave:?}"
    );
    let (speaker_dave, bot_dave) = dave_relayed(&fake);
    assert!(speaker_dave > 40 && bot_dave > 40, "{:?}", relayed(&fake));
}
