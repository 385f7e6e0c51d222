//! The real bot (`openclaw-voice run`) against the fake Discord: gateway (intents, shards,
//! READY and GUILD_CREATE), the `/voice` commands and their ephemeral replies, the role
//! allow-list, a bad token, shutdown on SIGTERM; and voice end to end: a question spoken by a
//! simulated user (espeak-ng speech, Opus, encrypted RTP) answered with audio the fake
//! decrypts and decodes, two speakers attributed, status and leave, a dropped voice
//! connection, leaving when alone, a dropped gateway connection resumed.
//!
//! The command tests use the `fault` test plugin for speech-to-text (it answers with a sample
//! count), the `tone` example plugin for text-to-speech (a beep per word) and the echo agent:
//! no model, no network. The voice tests
//! use the offline stack: local-whisper (tiny.en) and espeak, with the echo agent.
//!
//! The fake does not simulate DAVE (`dave_protocol_version: 0`): see `fake_discord`.

use std::time::Duration;

use openclaw_voice_tests::fake_discord::{
    audio, FakeDiscord, InteractionReply, SayOptions, ALICE, BOB, CAROL, GUILD_ID, JUKEBOX, LOCKED,
    LOUNGE, TRANSCRIPTS,
};
use openclaw_voice_tests::{
    http_get, toml_path, whisper_model, ConfigDir, PluginDir, Running, FAULT, TONE,
};

const WHISPER: &str = "openclaw_plugin_local_whisper";
const ESPEAK: &str = "openclaw_plugin_espeak";

/// Which providers the bot runs with.
#[derive(Clone, Copy, PartialEq)]
enum Stack {
    /// `fault` for both roles: instant, no model.
    Fault,
    /// local-whisper and espeak.
    Offline,
}

/// Startup: providers built and the gateway connected.
const STARTUP: Duration = Duration::from_secs(60);
/// An answer to a slash command.
const ANSWER: Duration = Duration::from_secs(20);

/// The bot running against a fake Discord.
struct Bot {
    fake: FakeDiscord,
    bot: Running,
    _plugins: PluginDir,
    _config: ConfigDir,
}

impl Bot {
    /// Starts the fake and the bot with `extra` appended to its configuration, and waits for
    /// `shards` gateway connections.
    fn start(extra: &str, shards: usize) -> Bot {
        Self::start_with(Stack::Fault, extra, shards)
    }

    fn start_with(stack: Stack, extra: &str, shards: usize) -> Bot {
        let fake = FakeDiscord::start();
        let (plugins, providers) = match stack {
            Stack::Fault => (
                PluginDir::with(&[FAULT, TONE]),
                "[stt]\nproviders = [\"ears\"]\n[tts]\nproviders = [\"voice\"]\n\
                 [providers.ears]\nplugin = \"fault\"\n\
                 [providers.voice]\nplugin = \"tone\"\n"
                    .to_string(),
            ),
            Stack::Offline => (
                PluginDir::with(&[WHISPER, ESPEAK]),
                format!(
                    "[stt]\nproviders = [\"local-whisper\"]\n[tts]\nproviders = [\"espeak\"]\n\
                     [providers.local-whisper]\ntimeout_ms = 60000\n\
                     [providers.local-whisper.settings]\nmodel = {}\n\
                     [providers.espeak.settings]\nvoice = \"en-us\"\n",
                    toml_path(&whisper_model())
                ),
            ),
        };
        let config = ConfigDir::new();
        config.write(
            "test.toml",
            &format!(
                "[plugins]\ndir = {}\n{providers}{ops}\
                 [logging]\nlevel = \"info\"\n{extra}",
                toml_path(plugins.path()),
                ops = if extra.contains("[ops]") {
                    ""
                } else {
                    "[ops]\nenabled = false\n"
                }
            ),
        );
        let env = fake.bot_env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut bot = Running::spawn(
            [
                "--config-dir",
                config.path().to_str().expect("a UTF-8 path"),
                "--env",
                "test",
                "run",
            ],
            &env,
        );
        assert!(
            bot.wait_for_stderr("discord: connected as", STARTUP)
                && fake.wait_ready(shards, STARTUP),
            "the bot did not connect\n{}",
            bot.stderr()
        );
        Bot {
            fake,
            bot,
            _plugins: plugins,
            _config: config,
        }
    }

    /// `user` runs `/voice <sub>`; the answer.
    fn command(&self, user: u64, sub: &str) -> InteractionReply {
        let id = self.fake.slash(GUILD_ID, user, sub);
        self.fake.wait_reply(id, ANSWER).unwrap_or_else(|| {
            panic!(
                "no answer to /voice {sub}: {:?}\n{}",
                self.fake.interaction(id),
                self.bot.stderr()
            )
        })
    }

    /// SIGTERM; the exit code.
    fn stop(self) -> Option<i32> {
        self.bot.signal("TERM");
        let run = self.bot.finish(Duration::from_secs(20));
        assert_eq!(run.code, Some(0), "{run}");
        run.code
    }
}

#[test]
fn the_bot_identifies_with_its_intents_and_answers_voice_commands_without_voice() {
    let bot = Bot::start("", 1);
    let identify = bot.fake.world(|w| w.identifies[0].clone());
    // GUILDS | GUILD_VOICE_STATES, nothing more.
    assert_eq!(identify["intents"], 129, "{identify}");
    assert_eq!(identify["shard"], serde_json::json!([0, 1]), "{identify}");

    // Test 5: a caller in no voice channel gets a clear ephemeral reply, at once.
    let reply = bot.command(CAROL, "join");
    assert!(reply.ephemeral && !reply.deferred, "{reply:?}");
    assert!(
        reply.content.contains("You are not in a voice channel"),
        "{reply:?}"
    );

    // A channel where the bot is denied Connect.
    bot.fake.move_user(GUILD_ID, BOB, Some(LOCKED));
    let reply = bot.command(BOB, "join");
    assert!(reply.ephemeral, "{reply:?}");
    assert!(
        reply.content.contains("I lack the Connect permission") && reply.content.contains("Locked"),
        "{reply:?}"
    );
    assert!(bot.fake.world(|w| w.voice_state_updates.is_empty()));

    let reply = bot.command(CAROL, "status");
    assert!(reply.ephemeral, "{reply:?}");
    for needle in [
        "Not in a voice channel",
        "Speech-to-text: ears (healthy)",
        "Text-to-speech: voice (healthy)",
        "Agent: echo",
    ] {
        assert!(reply.content.contains(needle), "{needle}: {reply:?}");
    }

    let reply = bot.command(CAROL, "leave");
    assert!(
        reply.ephemeral && reply.content.contains("not in a voice channel"),
        "{reply:?}"
    );
    assert!(
        bot.fake.world(|w| w.unknown_requests.is_empty()),
        "{:?}",
        bot.fake.world(|w| w.unknown_requests.clone())
    );
    bot.stop();
}

#[test]
fn join_and_leave_follow_the_role_allow_list() {
    let bot = Bot::start("[discord]\nallowed_roles = [\"dj\"]\n", 1);
    bot.fake.move_user(GUILD_ID, BOB, Some(LOCKED));
    for sub in ["join", "leave"] {
        let reply = bot.command(BOB, sub);
        assert!(
            reply.ephemeral
                && reply
                    .content
                    .contains("Only members with one of these roles"),
            "{sub}: {reply:?}"
        );
    }
    // Status stays open to everyone.
    assert!(bot.command(BOB, "status").content.contains("Agent: echo"));
    bot.stop();
}

#[test]
fn a_shard_range_runs_exactly_those_shards() {
    let bot = Bot::start("[discord]\nshards = \"0-1/2\"\n", 2);
    let mut shards: Vec<serde_json::Value> = bot
        .fake
        .world(|w| w.identifies.iter().map(|i| i["shard"].clone()).collect());
    shards.sort_by_key(|s| s[0].as_u64());
    assert_eq!(
        shards,
        [serde_json::json!([0, 2]), serde_json::json!([1, 2])]
    );
    bot.stop();
}

#[test]
fn run_with_a_bad_token_says_discord_refused_it() {
    let fake = FakeDiscord::start();
    let plugins = PluginDir::with(&[FAULT]);
    let config = ConfigDir::new();
    config.write(
        "test.toml",
        &format!(
            "[plugins]\ndir = {}\n[stt]\nproviders = [\"ears\"]\n[tts]\nproviders = [\"voice\"]\n\
             [providers.ears]\nplugin = \"fault\"\n[providers.voice]\nplugin = \"fault\"\n\
             [ops]\nenabled = false\n",
            toml_path(plugins.path())
        ),
    );
    let base = fake.api_base_url();
    let bot = Running::spawn(
        [
            "--config-dir",
            config.path().to_str().expect("a UTF-8 path"),
            "--env",
            "test",
            "run",
        ],
        &[
            ("DISCORD_BOT_TOKEN", "wrong-token-123"),
            ("OPENCLAW__DISCORD__API_BASE_URL", base.as_str()),
        ],
    );
    let run = bot.finish(Duration::from_secs(60));
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr
            .contains("Discord refused the bot token in DISCORD_BOT_TOKEN (401 Unauthorized)"),
        "{run}"
    );
    assert!(!run.output().contains("wrong-token-123"), "{run}");
    assert!(fake.world(|w| w.identifies.is_empty()));
}

/// How long a spoken turn may take on a busy 2-core machine (whisper tiny in a debug build).
const TURN: Duration = Duration::from_secs(120);

impl Bot {
    /// `user` (in Lounge) runs `/voice join`; checks the deferred reply and the connection.
    fn join_lounge(&self, user: u64) {
        self.fake.move_user(GUILD_ID, user, Some(LOUNGE));
        let reply = self.command(user, "join");
        assert!(reply.deferred && reply.ephemeral, "{reply:?}");
        assert!(
            reply.content.contains("Joined 🔊Lounge"),
            "{reply:?}\n{}",
            self.bot.stderr()
        );
        assert_eq!(
            self.fake.wait_bot_connected(GUILD_ID, ANSWER),
            Some(LOUNGE),
            "{}",
            self.bot.stderr()
        );
        // Joined to listen: never self-deafened.
        self.fake.world(|w| {
            let update = w.voice_state_updates.last().expect("an op 4");
            assert_eq!(update["self_deaf"], false, "{update}");
            let channel = &update["channel_id"];
            let channel = channel
                .as_u64()
                .or_else(|| channel.as_str().and_then(|c| c.parse().ok()));
            assert_eq!(channel, Some(LOUNGE), "{update}");
        });
    }

    /// Waits for the bot's reply audio after `packets_before` packets: until it has sent
    /// voiced audio and then been quiet for a second. The voiced seconds.
    fn wait_spoken_reply(&self, packets_before: usize) -> f64 {
        let started = self.fake.wait_for(TURN, |w| {
            let a = w.bot_audio.get(&GUILD_ID)?;
            (a.packets > packets_before && a.voiced_seconds() > 0.2).then_some(())
        });
        if started.is_none() {
            let state = self.fake.world(|w| {
                format!(
                    "packets {:?}, connected {}, resumes {:?}, identifies {:?}, said {:?}",
                    w.bot_audio.get(&GUILD_ID).map(|a| a.packets),
                    w.bot_connected(GUILD_ID),
                    w.voice_resumes.get(&GUILD_ID),
                    w.voice_identifies.get(&GUILD_ID),
                    w.utterances_sent.get(&GUILD_ID),
                )
            });
            panic!(
                "no reply audio after {packets_before} packets ({state})\n{}",
                self.bot.stderr()
            );
        }
        let quiet = self.fake.wait_for(Duration::from_secs(60), |w| {
            let a = w.bot_audio.get(&GUILD_ID)?;
            a.last
                .is_some_and(|t| t.elapsed() > Duration::from_millis(1_200))
                .then(|| a.clone())
        });
        let audio = quiet.expect("the reply ends");
        assert_eq!(audio.bad_packets, 0, "undecodable packets from the bot");
        audio.voiced_seconds()
    }

    /// Posts in #transcripts so far.
    fn transcripts(&self) -> Vec<String> {
        self.fake.world(|w| w.messages_in(TRANSCRIPTS))
    }

    /// Waits for `n` transcript posts.
    fn wait_transcripts(&self, n: usize) -> Vec<String> {
        self.fake
            .wait_for(TURN, |w| {
                let m = w.messages_in(TRANSCRIPTS);
                (m.len() >= n).then_some(m)
            })
            .unwrap_or_else(|| {
                panic!(
                    "{n} transcript(s) expected, got {:?}\n{}",
                    self.transcripts(),
                    self.bot.stderr()
                )
            })
    }
}

/// Transcripts posted; every utterance answered, even with several people in the channel
/// (the default `reply_mode = "auto"` would want wake names then: `discord_settings.rs`).
fn transcript_config() -> String {
    format!("[discord]\ntranscript_channel = {TRANSCRIPTS}\nreply_mode = \"always\"\n")
}

/// Test 1: a user joins the bot to their channel and asks a question; the bot answers with
/// non-silent Opus audio of plausible length from its SSRC.
#[test]
fn a_question_asked_in_voice_is_answered_with_audio() {
    let bot = Bot::start_with(Stack::Offline, &transcript_config(), 1);
    bot.join_lounge(ALICE);
    let question = audio::speech("What is the weather like in Paris today?", 1_000);
    bot.fake
        .say(GUILD_ID, ALICE, &question, SayOptions::default());
    let voiced = bot.wait_spoken_reply(0);
    // "You said: what is the weather like in Paris today?" spoken by espeak: about 3 s.
    assert!(
        (1.0..15.0).contains(&voiced),
        "{voiced} s of reply audio\n{}",
        bot.bot.stderr()
    );
    let posts = bot.wait_transcripts(1);
    let post = posts[0].to_lowercase();
    assert!(post.starts_with("**alice**:"), "{posts:?}");
    assert!(
        post.contains("weather") && post.contains("you said"),
        "{posts:?}"
    );
    // The bot told Discord it speaks (op 5) from the SSRC it was given.
    let ssrc = bot
        .fake
        .world(|w| w.bot_ssrc(GUILD_ID))
        .expect("a bot SSRC");
    bot.fake.world(|w| {
        let speaking = &w.bot_speaking[&GUILD_ID];
        assert!(
            speaking
                .iter()
                .any(|s| s["speaking"] == 1 && s["ssrc"] == ssrc),
            "{speaking:?}"
        );
    });
    bot.stop();
}

/// Test 2: two users speak in turn; each turn is attributed to its speaker. Bob's Speaking
/// event comes late (after his audio started), as Discord may send it; the Jukebox bot's
/// audio is ignored.
#[test]
fn two_speakers_in_turn_are_each_attributed() {
    let bot = Bot::start_with(Stack::Offline, &transcript_config(), 1);
    bot.join_lounge(ALICE);
    bot.fake.move_user(GUILD_ID, BOB, Some(LOUNGE));
    bot.fake.move_user(GUILD_ID, JUKEBOX, Some(LOUNGE));
    let music = audio::speech("la la la la la la la la", 200);
    bot.fake
        .say(GUILD_ID, JUKEBOX, &music, SayOptions::default());
    bot.fake.say(
        GUILD_ID,
        ALICE,
        &audio::speech("Hello, my name is Alice.", 1_000),
        SayOptions::default(),
    );
    let posts = bot.wait_transcripts(1);
    assert!(posts[0].starts_with("**Alice**:"), "{posts:?}");
    bot.wait_spoken_reply(0);
    let before = bot.fake.bot_audio(GUILD_ID).packets;
    bot.fake.say(
        GUILD_ID,
        BOB,
        &audio::speech("Good morning, this is Bob speaking.", 1_000),
        SayOptions {
            speaking_after_packets: Some(15),
            ..SayOptions::default()
        },
    );
    let posts = bot.wait_transcripts(2);
    assert!(posts[1].starts_with("**Bob**:"), "{posts:?}");
    assert!(posts[1].to_lowercase().contains("bob"), "{posts:?}");
    // Bob's first words were held until his Speaking event and are in the transcript.
    assert!(posts[1].to_lowercase().contains("morning"), "{posts:?}");
    bot.wait_spoken_reply(before);
    assert!(
        !bot.transcripts().iter().any(|p| p.contains("Jukebox")),
        "{:?}",
        bot.transcripts()
    );
    bot.stop();
}

/// Test 3: `/voice status` reports the session; `/voice leave` leaves and frees it.
#[test]
fn status_reports_the_session_and_leave_frees_it() {
    let bot = Bot::start("", 1);
    bot.join_lounge(ALICE);
    bot.fake.move_user(GUILD_ID, JUKEBOX, Some(LOUNGE));
    bot.fake.say(
        GUILD_ID,
        ALICE,
        &audio::speech("Testing one two three.", 800),
        SayOptions::default(),
    );
    bot.wait_spoken_reply(0);
    let status = bot.command(BOB, "status");
    for needle in [
        "Voice session** in 🔊Lounge",
        "Speakers: Alice (heard)",
        "Last turn: Alice,",
        "from end of speech to first audio (completed)",
        "Turns: 1 (0 failed)",
        "Speech-to-text: ears (healthy)",
    ] {
        assert!(status.content.contains(needle), "{needle}: {status:?}");
    }
    assert!(!status.content.contains("Jukebox"), "{status:?}");

    let reply = bot.command(ALICE, "leave");
    assert!(
        reply.content.contains("Left 🔊Lounge after 1 turn(s)"),
        "{reply:?}"
    );
    let left = bot.fake.wait_for(ANSWER, |w| {
        (w.bot_channel(GUILD_ID).is_none()
            && w.voice_channel_of(GUILD_ID, openclaw_voice_tests::fake_discord::BOT_ID)
                .is_none())
        .then_some(())
    });
    assert!(left.is_some(), "the bot did not leave");
    assert!(bot
        .command(ALICE, "status")
        .content
        .contains("Not in a voice channel"));
    // Free to join again.
    let reply = bot.command(ALICE, "join");
    assert!(reply.content.contains("Joined 🔊Lounge"), "{reply:?}");
    bot.stop();
}

/// Test 4: the voice connection drops mid-session. A resumable close (4015) is resumed by
/// songbird; a final one (4014) is rejoined by the bot; either way the next question is
/// answered and `/voice status` counts the recoveries.
#[test]
fn a_dropped_voice_connection_is_recovered() {
    let bot = Bot::start("", 1);
    bot.join_lounge(ALICE);
    let say = |text: &str| {
        bot.fake.say(
            GUILD_ID,
            ALICE,
            &audio::speech(text, 800),
            SayOptions::default(),
        );
    };
    say("First question.");
    bot.wait_spoken_reply(0);

    assert!(bot.fake.drop_voice(GUILD_ID, 4015));
    let resumed = bot.fake.wait_for(ANSWER, |w| {
        (w.voice_resumes.get(&GUILD_ID).copied().unwrap_or(0) >= 1 && w.bot_connected(GUILD_ID))
            .then_some(())
    });
    assert!(resumed.is_some(), "no resume\n{}", bot.bot.stderr());
    let before = bot.fake.bot_audio(GUILD_ID).packets;
    say("Second question.");
    bot.wait_spoken_reply(before);

    let identifies = bot.fake.world(|w| w.voice_identifies[&GUILD_ID]);
    assert!(bot.fake.drop_voice(GUILD_ID, 4014));
    let rejoined = bot.fake.wait_for(Duration::from_secs(30), |w| {
        (w.voice_identifies[&GUILD_ID] > identifies && w.bot_connected(GUILD_ID)).then_some(())
    });
    assert!(rejoined.is_some(), "no rejoin\n{}", bot.bot.stderr());
    let before = bot.fake.bot_audio(GUILD_ID).packets;
    say("Third question.");
    bot.wait_spoken_reply(before);
    let status = bot.command(ALICE, "status");
    assert!(status.content.contains("Turns: 3 (0 failed)"), "{status:?}");
    assert!(status.content.contains("voice reconnects: 2"), "{status:?}");
    bot.stop();
}

/// Alone in the channel (only bots left) for `auto_leave_after_ms`, the bot leaves; while a
/// person is there, it stays.
#[test]
fn the_bot_leaves_when_left_alone() {
    let bot = Bot::start("[discord]\nauto_leave_after_ms = 1000\n", 1);
    bot.join_lounge(ALICE);
    bot.fake.move_user(GUILD_ID, JUKEBOX, Some(LOUNGE));
    std::thread::sleep(Duration::from_millis(2_000));
    assert_eq!(
        bot.fake.world(|w| w.bot_channel(GUILD_ID)),
        Some(LOUNGE),
        "left while Alice was there"
    );
    bot.fake.move_user(GUILD_ID, ALICE, None);
    let left = bot.fake.wait_for(Duration::from_secs(10), |w| {
        w.bot_channel(GUILD_ID).is_none().then_some(())
    });
    assert!(left.is_some(), "still in the channel\n{}", bot.bot.stderr());
    assert!(bot
        .command(BOB, "status")
        .content
        .contains("Not in a voice channel"));
    bot.stop();
}

/// The gateway connection drops (close 4000, resumable): serenity resumes the session and the
/// commands keep working; `/health` reports the gateway up again, and the voice sessions.
#[test]
fn a_dropped_gateway_connection_is_resumed() {
    let mut bot = Bot::start("[ops]\nenabled = true\nbind = \"127.0.0.1:0\"\n", 1);
    let ops = bot.bot.ops_addr(STARTUP);
    let health = |field: &str| -> serde_json::Value {
        let response = http_get(ops, "/health", None).expect("GET /health");
        let body: serde_json::Value =
            serde_json::from_str(&response.body).expect("/health is JSON");
        body["services"][field].clone()
    };
    assert_eq!(health("discord_gateway")["status"], "up");
    bot.join_lounge(ALICE);
    assert_eq!(health("voice_sessions")["active"], 1);
    bot.fake.drop_gateway(4000);
    let resumed = bot.fake.wait_for(Duration::from_secs(30), |w| {
        (w.gateway_resumes >= 1 && !w.shards.is_empty()).then_some(())
    });
    assert!(resumed.is_some(), "no resume\n{}", bot.bot.stderr());
    let up = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        health("discord_gateway")["status"] == "up"
    });
    assert!(up, "{}", health("discord_gateway"));
    let reply = bot.command(CAROL, "join");
    assert!(
        reply.content.contains("You are not in a voice channel"),
        "{reply:?}"
    );
    bot.stop();
}
