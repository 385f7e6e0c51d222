//! `/voice-settings` against the fake Discord with the real bot: refused without Manage
//! Server or a configured role, ephemeral answers, a change kept in the SQLite file across a
//! restart, and `/voice forget` removing what the caller set.

use std::path::Path;
use std::time::Duration;

use openclaw_voice_tests::fake_discord::{
    model::perms, FakeDiscord, InteractionReply, ALICE, BOB, CAROL, DJ_ROLE, GUILD_ID,
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
