//! A shard cluster against the fake Discord: three real `openclaw-voice run` processes, each
//! with `discord.shards = "auto/4"` and its place from `SHARD_PROCESSES` and `POD_ORDINAL`
//! (or a StatefulSet-style hostname), split the bot's 4 shards between them (0-1, 2, 3).
//! The fake routes each guild to the connection of shard `(guild_id >> 22) % 4`. Checked:
//! every shard is connected exactly once and every guild served by exactly one process (the
//! one whose range holds its shard, and no other sees its commands); `/voice join` works in a
//! guild of each process; a process killed with SIGKILL leaves its guilds unserved, and they
//! come back (commands and voice) when it is started again.
//!
//! Providers: the `fault` test plugin (STT) and the `tone` example plugin (TTS): no model.

use std::time::Duration;

use openclaw_voice_tests::fake_discord::FakeDiscord;
use openclaw_voice_tests::{toml_path, ConfigDir, PluginDir, Running, FAULT, TONE};

const TOTAL: u64 = 4;
const PROCESSES: usize = 3;
/// Providers built and the gateway connected (a process with two shards waits 5 s between
/// identifies, as serenity does for Discord's limit).
const STARTUP: Duration = Duration::from_secs(60);
const ANSWER: Duration = Duration::from_secs(20);

/// The shard range process `ordinal` must run: `auto/4` over 3 processes.
fn range_of(ordinal: usize) -> std::ops::RangeInclusive<u64> {
    [0..=1, 2..=2, 3..=3][ordinal].clone()
}

/// The cluster's shared pieces: the fake, the plugins, the config.
struct Cluster {
    fake: FakeDiscord,
    config: ConfigDir,
    _plugins: PluginDir,
}

impl Cluster {
    fn new() -> Cluster {
        let fake = FakeDiscord::start();
        let plugins = PluginDir::with(&[FAULT, TONE]);
        let config = ConfigDir::new();
        config.write(
            "test.toml",
            &format!(
                "[plugins]\ndir = {}\n[stt]\nproviders = [\"ears\"]\n[tts]\nproviders = [\"voice\"]\n\
                 [providers.ears]\nplugin = \"fault\"\n[providers.voice]\nplugin = \"tone\"\n\
                 [ops]\nenabled = false\n[logging]\nlevel = \"info\"\n\
                 [discord]\nshards = \"auto/{TOTAL}\"\n",
                toml_path(plugins.path())
            ),
        );
        Cluster {
            fake,
            config,
            _plugins: plugins,
        }
    }

    /// Starts process `ordinal`: its place from POD_ORDINAL, except process 1, which reads it
    /// from its hostname as a StatefulSet pod does.
    fn spawn(&self, ordinal: usize) -> Running {
        let mut env = self.fake.bot_env();
        env.push(("SHARD_PROCESSES".into(), PROCESSES.to_string()));
        if ordinal == 1 {
            env.push(("HOSTNAME".into(), format!("openclaw-voice-{ordinal}")));
        } else {
            env.push(("POD_ORDINAL".into(), ordinal.to_string()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Running::spawn(
            [
                "--config-dir",
                self.config.path().to_str().expect("a UTF-8 path"),
                "--env",
                "test",
                "run",
            ],
            &env,
        )
    }

    /// Waits until every shard of `ranges` has a gateway connection.
    fn wait_shards(&self, shards: &[u64]) -> bool {
        self.fake
            .wait_for(STARTUP, |w| {
                shards
                    .iter()
                    .all(|s| w.shards.iter().any(|c| u64::from(c.shard()[0]) == *s))
                    .then_some(())
            })
            .is_some()
    }

    /// How many live gateway connections run each shard.
    fn connections_per_shard(&self) -> Vec<usize> {
        self.fake.world(|w| {
            (0..TOTAL)
                .map(|s| {
                    w.shards
                        .iter()
                        .filter(|c| c.shard() == [s as u32, TOTAL as u32])
                        .count()
                })
                .collect()
        })
    }

    /// `user` runs `/voice <sub>` in `guild`; the reply's text.
    fn command(&self, guild: u64, user: u64, sub: &str, bots: &[&Running]) -> String {
        let id = self.fake.slash(guild, user, sub);
        match self.fake.wait_reply(id, ANSWER) {
            Some(reply) => reply.content,
            None => panic!(
                "no answer to /voice {sub} in guild {guild}\n{}",
                bots.iter()
                    .map(|b| b.stderr())
                    .collect::<Vec<_>>()
                    .join("\n----\n")
            ),
        }
    }
}

/// Whether `bot` logged a slash command from `guild`.
fn handled(bot: &Running, guild: u64) -> bool {
    let id = guild.to_string();
    bot.stderr()
        .lines()
        .chain(bot.stdout().lines().collect::<Vec<_>>())
        .any(|l| l.contains("slash command") && l.contains(&id))
}

fn shard_of(guild: u64) -> u64 {
    (guild >> 22) % TOTAL
}

fn owner(guild: u64) -> usize {
    (0..PROCESSES)
        .find(|p| range_of(*p).contains(&shard_of(guild)))
        .expect("every shard has a process")
}

#[test]
fn three_processes_split_the_shards_and_a_killed_one_comes_back() {
    let cluster = Cluster::new();
    // Two guilds per shard: (1000 + i) % 4 cycles through the shards.
    let guilds = cluster.fake.add_load_guilds(8);
    let mut bots: Vec<Running> = (0..PROCESSES).map(|p| cluster.spawn(p)).collect();
    for (p, bot) in bots.iter_mut().enumerate() {
        let r = range_of(p);
        let expected = format!("discord: running shards {}-{}/{TOTAL}", r.start(), r.end());
        assert!(
            bot.wait_for_stderr(&expected, STARTUP),
            "process {p}: no `{expected}`\n{}",
            bot.stderr()
        );
    }
    assert!(
        cluster.wait_shards(&[0, 1, 2, 3]),
        "not every shard connected: {:?}\n{}",
        cluster.connections_per_shard(),
        bots.iter()
            .map(|b| b.stderr())
            .collect::<Vec<_>>()
            .join("\n----\n")
    );
    assert_eq!(cluster.connections_per_shard(), [1, 1, 1, 1]);

    // Every guild is served by exactly one process: the one whose range holds its shard.
    let refs: Vec<&Running> = bots.iter().collect();
    for &(guild, _, user) in &guilds {
        let text = cluster.command(guild, user, "status", &refs);
        assert!(text.contains("Not in a voice channel"), "{guild}: {text}");
        let by: Vec<usize> = (0..PROCESSES)
            .filter(|p| handled(&bots[*p], guild))
            .collect();
        assert_eq!(
            by,
            [owner(guild)],
            "guild {guild} (shard {})",
            shard_of(guild)
        );
    }

    // /voice join works in a guild of each process.
    for p in 0..PROCESSES {
        let &(guild, voice, user) = guilds
            .iter()
            .find(|(g, _, _)| owner(*g) == p)
            .expect("a guild for each process");
        let text = cluster.command(guild, user, "join", &refs);
        assert!(
            text.starts_with("Joined"),
            "process {p}, guild {guild}: {text}"
        );
        assert_eq!(
            cluster.fake.wait_bot_connected(guild, ANSWER),
            Some(voice),
            "process {p}: the voice connection in guild {guild} did not come up"
        );
    }

    // Kill process 1 (shard 2) outright: its guilds have no gateway connection any more.
    let killed = bots.remove(1);
    killed.signal("KILL");
    let run = killed.finish(Duration::from_secs(10));
    assert_ne!(run.code, Some(0), "{run}");
    assert!(
        cluster
            .fake
            .wait_for(ANSWER, |w| w
                .shards
                .iter()
                .all(|c| c.shard()[0] != 2)
                .then_some(()))
            .is_some(),
        "shard 2 still connected after its process was killed"
    );
    assert_eq!(cluster.connections_per_shard(), [1, 1, 0, 1]);

    // Started again (the StatefulSet would), it takes shard 2 back.
    let mut restarted = cluster.spawn(1);
    assert!(
        restarted.wait_for_stderr("discord: running shards 2-2/4", STARTUP)
            && cluster.wait_shards(&[2]),
        "the restarted process did not reconnect shard 2\n{}",
        restarted.stderr()
    );
    assert_eq!(cluster.connections_per_shard(), [1, 1, 1, 1]);
    let mine: Vec<(u64, u64, u64)> = guilds
        .iter()
        .copied()
        .filter(|(g, _, _)| owner(*g) == 1)
        .collect();
    assert_eq!(mine.len(), 2);
    let refs = [&bots[0], &restarted, &bots[1]];
    for &(guild, _, user) in &mine {
        let text = cluster.command(guild, user, "status", &refs);
        assert!(!text.is_empty(), "{guild}");
        assert!(
            handled(&restarted, guild),
            "guild {guild} not served by the restarted process"
        );
    }
    let (guild, voice, user) = mine[1];
    let text = cluster.command(guild, user, "join", &refs);
    assert!(
        text.starts_with("Joined"),
        "after the restart, guild {guild}: {text}"
    );
    assert_eq!(cluster.fake.wait_bot_connected(guild, ANSWER), Some(voice));

    for bot in bots.into_iter().chain([restarted]) {
        bot.signal("TERM");
        let run = bot.finish(Duration::from_secs(20));
        assert_eq!(run.code, Some(0), "{run}");
    }
}
