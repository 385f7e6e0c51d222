//! `/voice-settings` against the fake Discord with the real bot: refused without Manage
//! Server or a configured role, ephemeral answers, a change kept in the SQLite file across a
//! restart, and `/voice forget` removing what the caller set; two guilds with their own
//! transcript channels whose turns never cross.

use std::path::Path;
use std::time::Duration;

use openclaw_voice_tests::fake_discord::{
    audio, model::perms, FakeDiscord, InteractionReply, SayOptions, ALICE, BOB, CAROL, DJ_ROLE,
    GUILD_ID, LOUNGE, TRANSCRIPTS,
};
use openclaw_voice_tests::{
    http_get, toml_path, whisper_model, ConfigDir, PluginDir, Running, FAULT, TONE,
};

const STARTUP: Duration = Duration::from_secs(60);
const ANSWER: Duration = Duration::from_secs(20);
const MANAGE_GUILD: u64 = 1 << 5;

/// `fault` speech-to-text (a sample count as the text) and `tone` speech.
const FAULT_STACK: &str = "[stt]\nproviders = [\"ears\"]\n[tts]\nproviders = [\"voice\"]\n\
     [providers.ears]\nplugin = \"fault\"\n[providers.voice]\nplugin = \"tone\"\n";

/// The bot against `fake`, its settings in `db`, the DJ role allowed to change them.
fn start(fake: &FakeDiscord, plugins: &PluginDir, db: &Path) -> (Running, ConfigDir) {
    start_with(fake, plugins, db, FAULT_STACK)
}

fn start_with(
    fake: &FakeDiscord,
    plugins: &PluginDir,
    db: &Path,
    stack: &str,
) -> (Running, ConfigDir) {
    let config = ConfigDir::new();
    config.write(
        "test.toml",
        &format!(
            "[plugins]\ndir = {}\n{stack}\
             [ops]\nenabled = false\n[logging]\nlevel = \"info\"\n\
             [discord]\nsettings_roles = [{DJ_ROLE}]\n[storage]\npath = {}\n",
            toml_path(plugins.path()),
            toml_path(db)
        ),
    );
    let env = fake.bot_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut bot = Running::spawn(
        [
            "--config-dir",
            config.path().to_str().expect("UTF-8"),
            "--env",
            "test",
            "run",
        ],
        &env,
    );
    assert!(
        bot.wait_for_stderr("discord: connected as", STARTUP) && fake.wait_ready(1, STARTUP),
        "the bot did not connect\n{}",
        bot.stderr()
    );
    (bot, config)
}

fn settings_in(
    fake: &FakeDiscord,
    guild: u64,
    user: u64,
    sub: &str,
    options: &[(&str, &str)],
) -> InteractionReply {
    let permissions = perms::EVERYONE_DEFAULT | MANAGE_GUILD;
    let id = fake.command_with(guild, user, "voice-settings", sub, options, permissions);
    fake.wait_reply(id, ANSWER)
        .unwrap_or_else(|| panic!("no answer to /voice-settings {sub} in {guild}"))
}

fn settings(
    fake: &FakeDiscord,
    user: u64,
    sub: &str,
    options: &[(&str, &str)],
    permissions: u64,
) -> InteractionReply {
    let id = fake.command_with(GUILD_ID, user, "voice-settings", sub, options, permissions);
    fake.wait_reply(id, ANSWER)
        .unwrap_or_else(|| panic!("no answer to /voice-settings {sub}"))
}

fn stop(bot: Running) {
    bot.signal("TERM");
    let run = bot.finish(Duration::from_secs(20));
    assert_eq!(run.code, Some(0), "{run}");
}

#[test]
fn settings_need_manage_server_or_a_role_and_survive_a_restart() {
    let fake = FakeDiscord::start();
    let plugins = PluginDir::with(&[FAULT, TONE]);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("state/guild-settings.sqlite");
    let (bot, _config) = start(&fake, &plugins, &db);
    let everyone = perms::EVERYONE_DEFAULT;

    // Bob: neither Manage Server nor the DJ role.
    let refused = settings(
        &fake,
        BOB,
        "set",
        &[("setting", "language"), ("value", "de")],
        everyone,
    );
    assert!(refused.ephemeral, "{refused:?}");
    assert!(refused.content.contains("Manage Server"), "{refused:?}");

    // Carol has Manage Server; Alice has the configured role.
    let set = settings(
        &fake,
        CAROL,
        "set",
        &[("setting", "language"), ("value", "de")],
        everyone | MANAGE_GUILD,
    );
    assert!(
        set.ephemeral && set.content.contains("`language` is now de"),
        "{set:?}"
    );
    let bad = settings(
        &fake,
        ALICE,
        "set",
        &[("setting", "transcript_channel"), ("value", "general")],
        everyone,
    );
    assert!(
        bad.content.contains("Not changed") && bad.content.contains("channel id"),
        "{bad:?}"
    );
    let wake = settings(
        &fake,
        ALICE,
        "set",
        &[("setting", "wake_names"), ("value", "Jarvis, Claw")],
        everyone,
    );
    assert!(wake.content.contains("jarvis,claw"), "{wake:?}");
    stop(bot);

    // A new process reads the same file.
    let (bot, _config) = start(&fake, &plugins, &db);
    let view = settings(&fake, ALICE, "view", &[], everyone);
    assert!(view.ephemeral, "{view:?}");
    assert!(
        view.content.contains("`language`: de (this server)"),
        "{view:?}"
    );
    assert!(
        view.content
            .contains("`wake_names`: jarvis, claw (this server)"),
        "{view:?}"
    );
    assert!(
        view.content.contains("`reply_mode`: auto (default)"),
        "{view:?}"
    );

    // Forget: Alice's settings go back to the defaults, Carol's stay.
    let id = fake.slash(GUILD_ID, ALICE, "forget");
    let forgot = fake
        .wait_reply(id, ANSWER)
        .expect("an answer to /voice forget");
    assert!(
        forgot.ephemeral && forgot.content.contains("1 setting(s)"),
        "{forgot:?}"
    );
    let view = settings(&fake, CAROL, "view", &[], everyone | MANAGE_GUILD);
    assert!(
        view.content
            .contains("`wake_names`: claw, openclaw (default)"),
        "{view:?}"
    );
    assert!(
        view.content.contains("`language`: de (this server)"),
        "{view:?}"
    );
    stop(bot);
}

#[test]
fn two_guilds_post_their_turns_only_in_their_own_transcript_channels() {
    let fake = FakeDiscord::start();
    let (other, _other_voice, other_user) = fake.add_load_guilds(1)[0];
    // `add_load_guilds` gives each guild its text channel at the guild id + 2.
    let other_text = other + 2;
    let plugins = PluginDir::with(&[FAULT, TONE]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (bot, _config) = start(&fake, &plugins, &dir.path().join("g.sqlite"));
    let channel = TRANSCRIPTS.to_string();
    let set = settings_in(
        &fake,
        GUILD_ID,
        CAROL,
        "set",
        &[("setting", "transcript_channel"), ("value", &channel)],
    );
    assert!(set.content.contains("is now"), "{set:?}");
    let channel = format!("<#{other_text}>");
    let set = settings_in(
        &fake,
        other,
        other_user,
        "set",
        &[("setting", "transcript_channel"), ("value", &channel)],
    );
    assert!(set.content.contains("is now"), "{set:?}");

    fake.move_user(GUILD_ID, ALICE, Some(LOUNGE));
    for (guild, user) in [(GUILD_ID, ALICE), (other, other_user)] {
        let id = fake.slash(guild, user, "join");
        let reply = fake
            .wait_reply(id, ANSWER)
            .expect("an answer to /voice join");
        assert!(
            reply.content.contains("Joined"),
            "{reply:?}\n{}",
            bot.stderr()
        );
        assert!(
            fake.wait_bot_connected(guild, ANSWER).is_some(),
            "{}",
            bot.stderr()
        );
    }
    let speech = audio::speech("Hello there, how are you today?", 800);
    fake.say(GUILD_ID, ALICE, &speech, SayOptions::default());
    fake.say(other, other_user, &speech, SayOptions::default());
    let posted = fake.wait_for(Duration::from_secs(60), |w| {
        let (mine, theirs) = (w.messages_in(TRANSCRIPTS), w.messages_in(other_text));
        (!mine.is_empty() && !theirs.is_empty()).then_some((mine, theirs))
    });
    let (mine, theirs) = posted.unwrap_or_else(|| panic!("no transcripts\n{}", bot.stderr()));
    assert!(mine.iter().all(|m| m.starts_with("**Alice**")), "{mine:?}");
    assert!(
        theirs.iter().all(|m| m.starts_with("**User 0**")),
        "{theirs:?}"
    );
    stop(bot);
}

/// Wake names with two people in the channel: an unaddressed question gets no reply, an
/// addressed one does, and the agent (echo) sees it without the name.
#[test]
fn with_two_people_only_addressed_utterances_are_answered_without_the_name() {
    let fake = FakeDiscord::start();
    let plugins = PluginDir::with(&["openclaw_plugin_local_whisper", "openclaw_plugin_espeak"]);
    let stack = format!(
        "[stt]\nproviders = [\"local-whisper\"]\n[tts]\nproviders = [\"espeak\"]\n\
         [providers.local-whisper]\ntimeout_ms = 60000\n\
         [providers.local-whisper.settings]\nmodel = {}\n\
         [providers.espeak.settings]\nvoice = \"en-us\"\n",
        toml_path(&whisper_model())
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (bot, _config) = start_with(&fake, &plugins, &dir.path().join("g.sqlite"), &stack);
    let everyone = perms::EVERYONE_DEFAULT | MANAGE_GUILD;
    let channel = TRANSCRIPTS.to_string();
    for (key, value) in [
        ("transcript_channel", channel.as_str()),
        ("wake_names", "computer"),
    ] {
        let set = settings(
            &fake,
            CAROL,
            "set",
            &[("setting", key), ("value", value)],
            everyone,
        );
        assert!(set.content.contains("is now"), "{set:?}");
    }
    fake.move_user(GUILD_ID, ALICE, Some(LOUNGE));
    fake.move_user(GUILD_ID, BOB, Some(LOUNGE));
    let id = fake.slash(GUILD_ID, ALICE, "join");
    let reply = fake
        .wait_reply(id, ANSWER)
        .expect("an answer to /voice join");
    assert!(
        reply.content.contains("Joined"),
        "{reply:?}\n{}",
        bot.stderr()
    );
    assert!(fake.wait_bot_connected(GUILD_ID, ANSWER).is_some());

    let plain = audio::speech("What is the capital of France?", 1_000);
    fake.say(GUILD_ID, ALICE, &plain, SayOptions::default());
    assert!(fake.wait_said(GUILD_ID, 1, Duration::from_secs(30)));
    let addressed = audio::speech("Computer, what is the capital of Spain?", 1_000);
    fake.say(GUILD_ID, BOB, &addressed, SayOptions::default());
    let posts = fake
        .wait_for(Duration::from_secs(120), |w| {
            let m = w.messages_in(TRANSCRIPTS);
            (!m.is_empty()).then_some(m)
        })
        .unwrap_or_else(|| panic!("no transcript\n{}", bot.stderr()));
    // Give a late post from the unaddressed question time to show up, if one were coming.
    std::thread::sleep(Duration::from_secs(3));
    let posts = fake
        .world(|w| w.messages_in(TRANSCRIPTS))
        .into_iter()
        .chain(posts)
        .fold(Vec::<String>::new(), |mut all, m| {
            if !all.contains(&m) {
                all.push(m);
            }
            all
        });
    assert_eq!(
        posts.len(),
        1,
        "only the addressed question is a turn: {posts:?}"
    );
    let post = posts[0].to_lowercase();
    assert!(
        post.starts_with("**bob**:") && post.contains("spain"),
        "{posts:?}"
    );
    let reply = post.split("you said:").nth(1).unwrap_or_default();
    assert!(
        reply.contains("spain") && !reply.contains("computer"),
        "the agent saw the question without the name: {posts:?}"
    );
    stop(bot);
}

/// A settings file that is not a database: the bot says so at start, leaves the file as it
/// was, runs on the defaults, answers `/voice-settings set` with the reason, and `/health`
/// is unhealthy.
#[test]
fn a_corrupt_settings_file_is_reported_left_alone_and_makes_health_unhealthy() {
    let fake = FakeDiscord::start();
    let plugins = PluginDir::with(&[FAULT, TONE]);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("guild-settings.sqlite");
    let garbage = b"not a database, just some text that is long enough to matter\n".repeat(200);
    std::fs::write(&db, &garbage).expect("write");
    let config = ConfigDir::new();
    config.write(
        "test.toml",
        &format!(
            "[plugins]\ndir = {}\n{FAULT_STACK}\
             [ops]\nenabled = true\nbind = \"127.0.0.1:0\"\n[logging]\nlevel = \"info\"\n\
             [storage]\npath = {}\n",
            toml_path(plugins.path()),
            toml_path(&db)
        ),
    );
    let env = fake.bot_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let config_dir = config.path().to_str().expect("UTF-8");
    let mut bot = Running::spawn(["--config-dir", config_dir, "--env", "test", "run"], &env);
    let addr = bot.ops_addr(STARTUP);
    assert!(
        bot.wait_for_stderr("discord: connected as", STARTUP) && fake.wait_ready(1, STARTUP),
        "the bot did not connect\n{}",
        bot.stderr()
    );
    assert!(bot.stderr().contains("cannot be used"), "{}", bot.stderr());
    assert!(
        bot.stderr().contains("guild-settings.sqlite"),
        "{}",
        bot.stderr()
    );
    let health = http_get(addr, "/health", None).expect("GET /health");
    assert_eq!(health.status, 503, "{}", health.body);
    let everyone = perms::EVERYONE_DEFAULT | MANAGE_GUILD;
    let set = settings(
        &fake,
        CAROL,
        "set",
        &[("setting", "language"), ("value", "de")],
        everyone,
    );
    assert!(
        set.content.contains("Not changed") && set.content.contains("unavailable"),
        "{set:?}"
    );
    stop(bot);
    assert_eq!(
        std::fs::read(&db).expect("read"),
        garbage,
        "the file is untouched"
    );
}
