//! `openclaw-voice discord speak`, the smoke test's speaker bot, against the fake Discord with
//! DAVE on: the real songbird client joins, plays a WAV that the fake's MLS members decrypt
//! and decode as voiced audio, and reports PASS once the user it listens to answers with
//! voiced audio (DAVE-encrypted by that user's own client), FAIL with the reason when nobody
//! does. Here the speaker is the fake's main bot identity and the "bot under test" a simulated
//! user; `discord_smoke.rs` runs the two bots together.

use std::path::Path;
use std::time::Duration;

use openclaw_voice_tests::fake_discord::{audio, FakeDiscord, SayOptions, ALICE, GUILD_ID, LOUNGE};
use openclaw_voice_tests::{ConfigDir, Running};

const CONNECT: Duration = Duration::from_secs(60);

/// The fake with DAVE on and Alice in Lounge; the WAV the speaker plays.
fn setup(dir: &Path) -> (FakeDiscord, ConfigDir, String) {
    let fake = FakeDiscord::start();
    fake.set_dave_version(1);
    fake.move_user(GUILD_ID, ALICE, Some(LOUNGE));
    let wav = dir.join("question.wav");
    let samples = audio::speech("Hello there, can you hear me?", 300);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&wav, spec).expect("create the WAV");
    for s in samples {
        writer.write_sample(s).expect("write the WAV");
    }
    writer.finalize().expect("finish the WAV");
    let config = ConfigDir::new();
    config.write(
        "test.toml",
        "[ops]\nenabled = false\n[logging]\nlevel = \"info\"\n",
    );
    (fake, config, wav.display().to_string())
}

fn speak(fake: &FakeDiscord, config: &ConfigDir, wav: &str, timeout: u32) -> Running {
    let mut env = fake.bot_env();
    env.retain(|(k, _)| k != "DISCORD_BOT_TOKEN");
    env.push(("DISCORD_SPEAKER_TOKEN".into(), fake.token()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (guild, channel, alice) = (GUILD_ID.to_string(), LOUNGE.to_string(), ALICE.to_string());
    let timeout = timeout.to_string();
    Running::spawn(
        [
            "--config-dir",
            config.path().to_str().expect("UTF-8"),
            "--env",
            "test",
            "discord",
            "speak",
            "--guild",
            &guild,
            "--channel",
            &channel,
            "--wav",
            wav,
            "--listen-to",
            &alice,
            "--timeout",
            &timeout,
        ],
        &env,
    )
}

/// Waits until the speaker has played voiced audio and gone quiet; its voiced seconds.
fn wait_played(fake: &FakeDiscord, speaker: &Running) -> f64 {
    let played = fake.wait_for(CONNECT, |w| {
        let a = w.bot_audio.get(&GUILD_ID)?;
        let quiet = a
            .last
            .is_some_and(|t| t.elapsed() > Duration::from_millis(800));
        (a.voiced_seconds() > 0.5 && quiet).then(|| a.voiced_seconds())
    });
    played.unwrap_or_else(|| {
        panic!(
            "the speaker played nothing: {:?}\n{}\n{}",
            fake.dave_status(GUILD_ID),
            speaker.stdout(),
            speaker.stderr()
        )
    })
}

#[test]
fn the_speaker_plays_its_wav_under_dave_and_passes_when_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fake, config, wav) = setup(dir.path());
    let speaker = speak(&fake, &config, &wav, 30);
    let voiced = wait_played(&fake, &speaker);
    assert!((1.0..4.0).contains(&voiced), "{voiced} s played");
    let s = fake.dave_status(GUILD_ID).expect("a DAVE call");
    assert!(
        s.bot_frames_decrypted > 50 && s.bot_frames_failed == 0,
        "{s:?}"
    );
    // The answer, DAVE-encrypted by Alice's client.
    fake.say(
        GUILD_ID,
        ALICE,
        &audio::speech("Yes, I hear you loud and clear.", 200),
        SayOptions::default(),
    );
    let run = speaker.finish(CONNECT);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(
        run.stdout.contains("speak: PASS heard")
            && run.stdout.contains(&format!("from user {ALICE}")),
        "{run}"
    );
}

#[test]
fn the_speaker_fails_with_the_reason_when_nobody_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fake, config, wav) = setup(dir.path());
    let speaker = speak(&fake, &config, &wav, 3);
    wait_played(&fake, &speaker);
    let run = speaker.finish(CONNECT);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stdout.contains(&format!(
            "speak: FAIL no voiced reply from user {ALICE} within 3 s"
        )),
        "{run}"
    );
}
