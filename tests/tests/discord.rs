//! The Discord commands of the real binary: `invite-url` (the permission integer computed from
//! serenity's `Permissions`, pinned here), `register-commands` against the fake Discord's REST
//! API (global, one guild, a bad token, an unknown guild, Discord unreachable), and what `run`
//! says when its token is missing.

use openclaw_voice_tests::fake_discord::{FakeDiscord, APPLICATION_ID, GUILD_ID};
use openclaw_voice_tests::{openclaw_voice, ConfigDir, Run};

/// The permission integer for View Channel, Send Messages, Connect, Speak, Use Voice Activity
/// and Use Application Commands. (The original design's 370688 was wrong: it has no Connect
/// or Speak.)
const PERMISSIONS: u64 = 2_184_186_880;

/// A config directory with `test.toml` holding `extra`.
fn config(extra: &str) -> ConfigDir {
    let config = ConfigDir::new();
    config.write("default.toml", "");
    config.write(
        "test.toml",
        &format!("[ops]\nenabled = false\n[logging]\nlevel = \"warn\"\n{extra}"),
    );
    config
}

fn run(config: &ConfigDir, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut all = vec![
        "--config-dir",
        config.path().to_str().expect("a UTF-8 temporary path"),
        "--env",
        "test",
    ];
    all.extend_from_slice(args);
    openclaw_voice(all, env)
}

#[test]
fn invite_url_has_the_scopes_and_the_computed_permissions() {
    let config = config("[discord]\napplication_id = 1234567890\n");
    let run = run(&config, &["invite-url"], &[]);
    assert!(run.success(), "{run}");
    assert_eq!(
        run.stdout.trim(),
        format!(
            "https://discord.com/oauth2/authorize?client_id=1234567890\
             &scope=bot%20applications.commands&permissions={PERMISSIONS}"
        ),
        "{run}"
    );
}

#[test]
fn invite_url_without_an_application_id_says_where_to_find_it() {
    let config = config("");
    let run = run(&config, &["invite-url"], &[]);
    assert_eq!(run.code, Some(3), "{run}");
    assert!(
        run.stderr.contains("discord.application_id")
            && run.stderr.contains("OPENCLAW__DISCORD__APPLICATION_ID"),
        "{run}"
    );
}

#[test]
fn run_without_a_token_names_the_variable() {
    let config = config("");
    let run = run(&config, &["run"], &[]);
    assert_eq!(run.code, Some(3), "{run}");
    assert!(
        run.stderr
            .contains("environment variable DISCORD_BOT_TOKEN is not set"),
        "{run}"
    );
    // A token variable of the operator's choosing is the one named.
    let config = self::config("[discord]\ntoken_env = \"MY_BOT_TOKEN\"\n");
    let run = self::run(&config, &["run"], &[("DISCORD_BOT_TOKEN", "ignored")]);
    assert!(
        run.stderr
            .contains("environment variable MY_BOT_TOKEN is not set"),
        "{run}"
    );
}

#[test]
fn bad_discord_settings_name_their_keys() {
    let config = config("[discord]\nshards = \"0-16/16\"\n");
    let run = run(&config, &["check-config"], &[]);
    assert!(!run.success(), "{run}");
    assert!(
        run.output().contains("`discord.shards`") && run.output().contains("0-16/16"),
        "{run}"
    );
}

/// The environment that points the binary at `fake` with `token`.
fn fake_env(fake: &FakeDiscord, token: &str) -> Vec<(String, String)> {
    vec![
        ("DISCORD_BOT_TOKEN".to_string(), token.to_string()),
        (
            "OPENCLAW__DISCORD__API_BASE_URL".to_string(),
            fake.api_base_url(),
        ),
    ]
}

fn run_with(config: &ConfigDir, args: &[&str], env: &[(String, String)]) -> Run {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    run(config, args, &env)
}

/// The subcommands of the command `name` the fake recorded for `scope`.
fn registered_subcommands_of(fake: &FakeDiscord, scope: Option<u64>, name: &str) -> Vec<String> {
    fake.world(|w| {
        w.registered
            .iter()
            .filter(|(g, c)| *g == scope && c["name"] == name)
            .flat_map(|(_, c)| {
                c["options"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|o| {
                        assert_eq!(o["type"], 1, "a subcommand: {o}");
                        o["name"].as_str().unwrap_or_default().to_string()
                    })
            })
            .collect()
    })
}

/// The subcommands of the `/voice` command the fake recorded for `scope`.
fn registered_subcommands(fake: &FakeDiscord, scope: Option<u64>) -> Vec<String> {
    registered_subcommands_of(fake, scope, "voice")
}

#[test]
fn register_commands_globally_and_in_one_guild() {
    let fake = FakeDiscord::start();
    let config = config("");
    let env = fake_env(&fake, &fake.token());

    let run = run_with(&config, &["register-commands"], &env);
    assert!(run.success(), "{run}");
    assert!(run.stdout.contains("globally"), "{run}");
    assert!(
        run.stdout
            .contains(&format!("application {APPLICATION_ID}")),
        "{run}"
    );
    for sub in ["join", "leave", "status", "forget"] {
        assert!(run.stdout.contains(&format!("/voice {sub} (id ")), "{run}");
    }
    assert_eq!(
        registered_subcommands(&fake, None),
        ["join", "leave", "status", "forget"]
    );
    // The settings command: its own, for Manage Server (1 << 5) unless a server grants more.
    assert_eq!(
        registered_subcommands_of(&fake, None, "voice-settings"),
        ["view", "set", "reset"]
    );
    fake.world(|w| {
        let settings = w
            .registered
            .iter()
            .find(|(_, c)| c["name"] == "voice-settings")
            .map(|(_, c)| c.clone())
            .expect("voice-settings registered");
        assert_eq!(settings["default_member_permissions"], "32", "{settings}");
    });

    let run = run_with(
        &config,
        &["register-commands", "--guild", &GUILD_ID.to_string()],
        &env,
    );
    assert!(run.success(), "{run}");
    assert!(
        run.stdout.contains(&format!("in guild {GUILD_ID}")),
        "{run}"
    );
    assert_eq!(
        registered_subcommands(&fake, Some(GUILD_ID)),
        ["join", "leave", "status", "forget"]
    );
    // Guild-only: the command is not offered in DMs.
    fake.world(|w| {
        for (_, c) in &w.registered {
            assert_eq!(c["contexts"], serde_json::json!([0]), "{c}");
        }
    });
    assert!(
        fake.world(|w| w.unknown_requests.is_empty()),
        "{:?}",
        fake.world(|w| w.unknown_requests.clone())
    );
}

#[test]
fn register_commands_with_a_bad_token_says_so_without_printing_it() {
    let fake = FakeDiscord::start();
    let config = config("");
    let run = run_with(
        &config,
        &["register-commands"],
        &fake_env(&fake, "not-the-token-xyz"),
    );
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr
            .contains("Discord refused the bot token in DISCORD_BOT_TOKEN (401 Unauthorized)"),
        "{run}"
    );
    assert!(!run.output().contains("not-the-token-xyz"), "{run}");
    assert!(fake.world(|w| w.registered.is_empty()));
}

#[test]
fn register_commands_reports_discords_refusal_and_an_unreachable_api() {
    let fake = FakeDiscord::start();
    let config = config("");
    let run = run_with(
        &config,
        &["register-commands", "--guild", "42"],
        &fake_env(&fake, &fake.token()),
    );
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr
            .contains("Discord refused to register the slash commands")
            && run.stderr.contains("Unknown Guild"),
        "{run}"
    );

    // Nothing listens on port 9 of the loopback.
    let env = vec![
        ("DISCORD_BOT_TOKEN".to_string(), "t".to_string()),
        (
            "OPENCLAW__DISCORD__API_BASE_URL".to_string(),
            "http://127.0.0.1:9".to_string(),
        ),
    ];
    let run = run_with(&config, &["register-commands"], &env);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr
            .contains("cannot reach Discord's API at http://127.0.0.1:9"),
        "{run}"
    );
}

#[test]
fn register_commands_without_a_token_names_the_variable() {
    let config = config("");
    let run = run(&config, &["register-commands"], &[]);
    assert_eq!(run.code, Some(3), "{run}");
    assert!(
        run.stderr
            .contains("environment variable DISCORD_BOT_TOKEN is not set"),
        "{run}"
    );
}

#[test]
fn invite_url_looks_the_application_up_with_the_token() {
    let fake = FakeDiscord::start();
    let config = config("");
    let run = run_with(&config, &["invite-url"], &fake_env(&fake, &fake.token()));
    assert!(run.success(), "{run}");
    assert!(
        run.stdout.contains(&format!(
            "client_id={APPLICATION_ID}&scope=bot%20applications.commands&permissions={PERMISSIONS}"
        )),
        "{run}"
    );
}
