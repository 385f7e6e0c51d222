//! Join on start against the fake Discord with the real bot: `discord.auto_join_channels`
//! joined without a command when the server loads, held after a moderator's disconnect until
//! someone enters the channel, joined again after the gateway identifies anew; refusals said
//! in the log with the channel and the reason (a stage channel, a channel id in no server, a
//! channel where the bot lacks Connect); a server's own `auto_join_channel` setting
//! replacing the configured channel there. And what `scripts/discord-smoke` relies on: a bot
//! listed in `discord.heard_bots` speaking in the auto-join channel is transcribed and
//! answered like a person.

use std::time::Duration;

use openclaw_voice_tests::fake_discord::{
    audio, model::perms, SayOptions, ALICE, BOB, GUILD_ID, JUKEBOX, LOCKED, LOUNGE, STAGE, STUDIO,
    TRANSCRIPTS,
};
use openclaw_voice_tests::toml_path;

mod discord_harness;

use discord_harness::{Bot, Stack, ANSWER};

const MANAGE_GUILD: u64 = 1 << 5;
/// A voice channel id in no server of the fake.
const NOWHERE: u64 = 1_300_000_000_000_009_999;

fn auto_join(channels: &[u64]) -> String {
    let list: Vec<String> = channels.iter().map(u64::to_string).collect();
    format!("[discord]\nauto_join_channels = [{}]\n", list.join(", "))
}

/// Waits for `needle` in the bot's log.
fn wait_log(bot: &mut Bot, needle: &str) {
    assert!(
        bot.bot.wait_for_stderr(needle, ANSWER),
        "`{needle}` not logged\n{}",
        bot.bot.stderr()
    );
}

/// Whether the bot stays out of voice in the guild for `for_`.
fn stays_out(bot: &Bot, for_: Duration) -> bool {
    bot.fake
        .wait_for(for_, |w| w.bot_connected(GUILD_ID).then_some(()))
        .is_none()
}

#[test]
fn the_configured_channel_is_joined_at_start_and_again_after_a_disconnect_or_a_new_gateway_session()
{
    let mut bot = Bot::start(&auto_join(&[LOUNGE]), 1);
    // Nobody typed /voice join.
    assert_eq!(
        bot.fake.wait_bot_connected(GUILD_ID, ANSWER),
        Some(LOUNGE),
        "{}",
        bot.bot.stderr()
    );
    wait_log(&mut bot, "auto-join: joined 🔊Lounge (the server loaded");
    assert!(bot.fake.world(|w| w.interactions.is_empty()));

    // A moderator's disconnect holds until someone enters the channel.
    bot.fake.disconnect_bot(GUILD_ID);
    assert!(
        bot.fake
            .wait_for(ANSWER, |w| (!w.bot_connected(GUILD_ID)).then_some(()))
            .is_some(),
        "the bot stayed connected"
    );
    assert!(
        stays_out(&bot, Duration::from_secs(2)),
        "{}",
        bot.bot.stderr()
    );
    bot.fake.move_user(GUILD_ID, ALICE, Some(LOUNGE));
    assert_eq!(
        bot.fake.wait_bot_connected(GUILD_ID, ANSWER),
        Some(LOUNGE),
        "{}",
        bot.bot.stderr()
    );
    wait_log(&mut bot, "auto-join: joined 🔊Lounge (someone entered it");

    // Out again, then the gateway session is lost (4009: identify anew): the server loads
    // again and the bot goes back.
    bot.fake.disconnect_bot(GUILD_ID);
    assert!(bot
        .fake
        .wait_for(ANSWER, |w| (!w.bot_connected(GUILD_ID)).then_some(()))
        .is_some());
    let identifies = bot.fake.world(|w| w.identifies.len());
    bot.fake.drop_gateway(4009);
    assert!(
        bot.fake
            .wait_for(ANSWER, |w| (w.identifies.len() > identifies).then_some(()))
            .is_some(),
        "the bot did not identify anew\n{}",
        bot.bot.stderr()
    );
    assert_eq!(
        bot.fake.wait_bot_connected(GUILD_ID, ANSWER),
        Some(LOUNGE),
        "{}",
        bot.bot.stderr()
    );
    bot.stop();
}

#[test]
fn a_stage_channel_and_an_unknown_id_are_refused_with_the_reason() {
    let mut bot = Bot::start(&auto_join(&[NOWHERE, STAGE]), 1);
    wait_log(
        &mut bot,
        &format!("discord.auto_join_channels holds {NOWHERE}, which is in none of the 1 server"),
    );
    wait_log(
        &mut bot,
        "auto-join: cannot join 🔊Town Hall: it is a stage channel",
    );
    // Someone entering the stage changes nothing.
    bot.fake.move_user(GUILD_ID, BOB, Some(STAGE));
    assert!(
        stays_out(&bot, Duration::from_secs(2)),
        "{}",
        bot.bot.stderr()
    );
    bot.stop();
}

#[test]
fn a_channel_without_connect_is_refused_and_a_servers_own_setting_replaces_it() {
    // Settings of its own, in a file of its own.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("guild-settings.sqlite");
    let storage = format!("[storage]\npath = {}\n", toml_path(&db));
    let mut bot = Bot::start(&format!("{}{storage}", auto_join(&[LOCKED])), 1);
    wait_log(
        &mut bot,
        "auto-join: cannot join 🔊Locked: the bot lacks the Connect permission there",
    );
    assert!(stays_out(&bot, Duration::from_secs(1)));
    // The server picks Studio for itself; someone entering it brings the bot.
    let permissions = perms::EVERYONE_DEFAULT | MANAGE_GUILD;
    let options = [
        ("setting", "auto_join_channel"),
        ("value", &*STUDIO.to_string()),
    ];
    let id = bot.fake.command_with(
        GUILD_ID,
        ALICE,
        "voice-settings",
        "set",
        &options,
        permissions,
    );
    let reply = bot.fake.wait_reply(id, ANSWER).expect("an answer");
    assert!(reply.content.contains("auto_join_channel"), "{reply:?}");
    bot.fake.move_user(GUILD_ID, BOB, Some(STUDIO));
    assert_eq!(
        bot.fake.wait_bot_connected(GUILD_ID, ANSWER),
        Some(STUDIO),
        "{}",
        bot.bot.stderr()
    );
    wait_log(&mut bot, "set by this server's auto_join_channel setting");
    bot.stop();
}

#[test]
fn a_heard_bot_speaking_in_the_auto_join_channel_is_answered() {
    let config = format!(
        "[discord]\nauto_join_channels = [{LOUNGE}]\nheard_bots = [{JUKEBOX}]\n\
         transcript_channel = {TRANSCRIPTS}\n"
    );
    let bot = Bot::start_with(Stack::Offline, &config, 1);
    assert_eq!(
        bot.fake.wait_bot_connected(GUILD_ID, ANSWER),
        Some(LOUNGE),
        "{}",
        bot.bot.stderr()
    );
    // The Jukebox bot comes in and asks, as the smoke test's speaker bot does.
    bot.fake.move_user(GUILD_ID, JUKEBOX, Some(LOUNGE));
    bot.fake.say(
        GUILD_ID,
        JUKEBOX,
        &audio::speech("What is the capital of France?", 1_000),
        SayOptions::default(),
    );
    let posts = bot.wait_transcripts(1);
    assert!(
        posts[0].starts_with("**Jukebox**:") && posts[0].to_lowercase().contains("france"),
        "{posts:?}"
    );
    let voiced = bot.wait_spoken_reply(0);
    assert!(voiced > 0.5, "{voiced} s of reply");
    let status = bot.command(ALICE, "status");
    assert!(status.content.contains("Jukebox (heard)"), "{status:?}");
    bot.stop();
}

#[test]
fn a_voice_connection_lost_for_good_is_followed_by_an_auto_join() {
    // No rejoin of the session's own: the loss is final at once.
    let config = format!("{}voice_reconnect_attempts = 0\n", auto_join(&[LOUNGE]));
    let mut bot = Bot::start(&config, 1);
    assert_eq!(bot.fake.wait_bot_connected(GUILD_ID, ANSWER), Some(LOUNGE));
    wait_log(&mut bot, "auto-join: joined 🔊Lounge (the server loaded");
    // 4014: "disconnected", not resumable.
    assert!(bot.fake.drop_voice(GUILD_ID, 4014));
    wait_log(&mut bot, "could not rejoin after 0 attempt(s)");
    wait_log(
        &mut bot,
        "auto-join: joined 🔊Lounge (the voice connection was lost",
    );
    assert_eq!(
        bot.fake.wait_bot_connected(GUILD_ID, ANSWER),
        Some(LOUNGE),
        "{}",
        bot.bot.stderr()
    );
    bot.stop();
}
