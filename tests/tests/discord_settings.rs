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
use openclaw_voice_tests::{toml_path, ConfigDir, PluginDir, Running, FAULT, TONE};

const STARTUP: Duration = Duration::from_secs(60);
const ANSWER: Duration = Duration::from_secs(20);
const MANAGE_GUILD: u64 = 1 << 5;

/// The bot against `fake`, its settings in `db`, the DJ role allowed to change them.
fn start(fake: &FakeDiscord, plugins: &PluginDir, db: &Path) -> (Running, ConfigDir) {
    let config = ConfigDir::new();
    config.write(
        "test.toml",
        &format!(
            "[plugins]\ndir = {}\n[stt]\nproviders = [\"ears\"]\n[tts]\nproviders = [\"voice\"]\n\
             [providers.ears]\nplugin = \"fault\"\n[providers.voice]\nplugin = \"tone\"\n\
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
