//! The harness the Discord voice tests share: the real bot (`openclaw-voice run`) started
//! against a fake Discord with the offline or the fault stack, its slash commands, joining
//! Lounge, waiting for spoken replies and transcript posts.

#![allow(dead_code)]

use std::time::Duration;

use openclaw_voice_tests::fake_discord::{
    FakeDiscord, InteractionReply, GUILD_ID, LOUNGE, TRANSCRIPTS,
};
use openclaw_voice_tests::{toml_path, whisper_model, ConfigDir, PluginDir, Running, FAULT, TONE};

const WHISPER: &str = "openclaw_plugin_local_whisper";
const ESPEAK: &str = "openclaw_plugin_espeak";

/// Which providers the bot runs with.
#[derive(Clone, Copy, PartialEq)]
pub enum Stack {
    /// `fault` for both roles: instant, no model.
    Fault,
    /// local-whisper and espeak.
    Offline,
}

/// Startup: providers built and the gateway connected.
pub const STARTUP: Duration = Duration::from_secs(60);
/// An answer to a slash command.
pub const ANSWER: Duration = Duration::from_secs(20);

/// The bot running against a fake Discord.
pub struct Bot {
    pub fake: FakeDiscord,
    pub bot: Running,
    _plugins: PluginDir,
    _config: ConfigDir,
}

impl Bot {
    /// Starts the fake and the bot with `extra` appended to its configuration, and waits for
    /// `shards` gateway connections.
    pub fn start(extra: &str, shards: usize) -> Bot {
        Self::start_with(Stack::Fault, extra, shards)
    }

    pub fn start_with(stack: Stack, extra: &str, shards: usize) -> Bot {
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
        let mut env = fake.bot_env();
        if !extra.contains("reply_mode") {
            // Every utterance answered, even with several people in the channel (the default,
            // `auto`, wants a wake name then: tests/tests/discord_settings.rs covers it).
            env.push((
                "OPENCLAW__DISCORD__REPLY_MODE".to_string(),
                "always".to_string(),
            ));
        }
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
    pub fn command(&self, user: u64, sub: &str) -> InteractionReply {
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
    pub fn stop(self) -> Option<i32> {
        self.bot.signal("TERM");
        let run = self.bot.finish(Duration::from_secs(20));
        assert_eq!(run.code, Some(0), "{run}");
        run.code
    }
}

/// How long a spoken turn may take on a busy 2-core machine (whisper tiny in a debug build).
pub const TURN: Duration = Duration::from_secs(120);

impl Bot {
    /// `user` (in Lounge) runs `/voice join`; checks the deferred reply and the connection.
    pub fn join_lounge(&self, user: u64) {
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
    pub fn wait_spoken_reply(&self, packets_before: usize) -> f64 {
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
    pub fn transcripts(&self) -> Vec<String> {
        self.fake.world(|w| w.messages_in(TRANSCRIPTS))
    }

    /// Waits for `n` transcript posts.
    pub fn wait_transcripts(&self, n: usize) -> Vec<String> {
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

pub fn transcript_config() -> String {
    format!("[discord]\ntranscript_channel = {TRANSCRIPTS}\n")
}
