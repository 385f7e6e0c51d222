//! `/voice-settings view|set|reset` (a guild's own settings, see `guild`) and `/voice forget`.
//!
//! The settings command is its own top-level command because Discord's
//! `default_member_permissions` applies to a whole command: it is registered for Manage
//! Server, so only admins see it unless a server grants it further; the bot checks again on
//! every call (Manage Server, or one of `discord.settings_roles`, by id). Answers are
//! ephemeral; every change is logged with the guild and the caller's hashed id.

use serenity::all::{
    CommandDataOption, CommandDataOptionValue, CommandInteraction, CommandOptionType,
    CreateCommand, CreateCommandOption, InteractionContext, Permissions,
};

use std::sync::Arc;

use serenity::all::{Cache, ChannelId, GuildId, UserId};

use crate::config::TtsVoices;
use crate::guild::{addressed, GuildSettings, GuildStore, SettingKey};
use crate::pipeline::{SessionDeps, Speaker, TurnGate};
use crate::telemetry::hash_user;

/// The settings command's name.
pub const NAME: &str = "voice-settings";

/// The `/voice-settings` definition: view, set, reset; Manage Server by default.
pub fn definition() -> CreateCommand {
    let mut key = CreateCommandOption::new(CommandOptionType::String, "setting", "The setting")
        .required(true);
    for (_, name, _) in SettingKey::ALL {
        key = key.add_string_choice(name, name);
    }
    let value = CreateCommandOption::new(CommandOptionType::String, "value", "The new value")
        .required(true);
    CreateCommand::new(NAME)
        .description("This server's voice assistant settings")
        .contexts(vec![InteractionContext::Guild])
        .default_member_permissions(Permissions::MANAGE_GUILD)
        .add_option(CreateCommandOption::new(
            CommandOptionType::SubCommand,
            "view",
            "Show every setting and whether this server changed it",
        ))
        .add_option(
            CreateCommandOption::new(CommandOptionType::SubCommand, "set", "Change a setting")
                .add_sub_option(key.clone())
                .add_sub_option(value),
        )
        .add_option(
            CreateCommandOption::new(
                CommandOptionType::SubCommand,
                "reset",
                "Go back to the default for a setting",
            )
            .add_sub_option(key),
        )
}

/// Whether the caller may change settings: Manage Server (or Administrator), or one of
/// `roles` (ids).
pub(crate) fn may_change(command: &CommandInteraction, roles: &[u64]) -> bool {
    let Some(member) = command.member.as_deref() else {
        return false;
    };
    let perms = member.permissions.unwrap_or_else(Permissions::empty);
    perms.contains(Permissions::MANAGE_GUILD)
        || perms.contains(Permissions::ADMINISTRATOR)
        || member.roles.iter().any(|r| roles.contains(&r.get()))
}

/// The string options of a subcommand, by name.
fn string_option<'a>(options: &'a [CommandDataOption], name: &str) -> Option<&'a str> {
    options
        .iter()
        .find(|o| o.name == name)
        .and_then(|o| o.value.as_str())
}

/// Runs `/voice-settings …` for `guild`; the text of the (ephemeral) answer.
pub async fn handle(
    store: &GuildStore,
    command: &CommandInteraction,
    guild: u64,
    roles: &[u64],
) -> String {
    if !may_change(command, roles) {
        return "Only members with the Manage Server permission (or a role the bot's operator \
                allowed) can use /voice-settings."
            .into();
    }
    let Some(sub) = command.data.options.first() else {
        return "Use /voice-settings view, set or reset.".into();
    };
    let CommandDataOptionValue::SubCommand(options) = &sub.value else {
        return "Use /voice-settings view, set or reset.".into();
    };
    let by = hash_user(&command.user.id.get().to_string());
    match sub.name.as_str() {
        "view" => {
            let settings = store.settings(guild).await;
            format!(
                "**Voice settings for this server**\n{}",
                settings.describe()
            )
        }
        "set" => {
            let (Some(key), Some(value)) = (
                string_option(options, "setting"),
                string_option(options, "value"),
            ) else {
                return "Give a setting and a value.".into();
            };
            set(store, guild, key, value, &by).await
        }
        "reset" => {
            let Some(key) = string_option(options, "setting") else {
                return "Give the setting to reset.".into();
            };
            reset(store, guild, key, &by).await
        }
        other => format!("I don't know /voice-settings {other}."),
    }
}

async fn set(store: &GuildStore, guild: u64, key: &str, value: &str, by: &str) -> String {
    let checked = SettingKey::parse(key).and_then(|k| k.canonical(value).map(|v| (k, v)));
    let (key, value) = match checked {
        Ok(kv) => kv,
        Err(e) => return format!("Not changed: {e}."),
    };
    match store.set(guild, key, &value, by).await {
        Ok(_) => {
            tracing::info!(guild, setting = key.name(), by, "guild setting changed");
            format!("`{}` is now {value} in this server.", key.name())
        }
        Err(e) => format!("Not changed: {e}."),
    }
}

async fn reset(store: &GuildStore, guild: u64, key: &str, by: &str) -> String {
    let key = match SettingKey::parse(key) {
        Ok(k) => k,
        Err(e) => return format!("Not changed: {e}."),
    };
    match store.reset(guild, key).await {
        Ok(true) => {
            tracing::info!(guild, setting = key.name(), by, "guild setting reset");
            format!("`{}` follows the default again.", key.name())
        }
        Ok(false) => format!("`{}` already follows the default.", key.name()),
        Err(e) => format!("Not changed: {e}."),
    }
}

/// `/voice forget`: removes the settings the caller changed (every guild) and the
/// conversation memory of the guild's voice channels; the answer's text.
pub async fn forget(store: &GuildStore, user: u64, memory_forgotten: usize) -> String {
    let by = hash_user(&user.to_string());
    let settings = match store.forget(&by).await {
        Ok(n) => format!("{n} setting(s) you changed now follow the defaults"),
        Err(e) => format!("your settings could not be removed ({e})"),
    };
    tracing::info!(by, "a user asked the bot to forget them");
    format!(
        "Done: {settings}; {memory_forgotten} exchange(s) of yours were removed from the \
         conversation memory. Transcripts already posted in text channels are messages: \
         delete them in Discord."
    )
}

/// A guild's settings applied to a session's dependencies: its language, its TTS provider
/// first, its agent id.
pub(crate) fn session_deps(deps: &SessionDeps, settings: &GuildSettings) -> SessionDeps {
    let mut deps = deps.clone();
    let configured_first = deps.tts.first().map(|p| p.id.clone());
    deps.config.language = settings.language.clone();
    // A voice id is its provider's own: a guild that picked another provider drops the
    // config's voice.
    if settings.voice.is_some() || settings.overridden.contains_key(&SettingKey::TtsProvider) {
        deps.config.tts_voice = settings.voice.clone();
    }
    if let Some(first) = &settings.tts_provider {
        if let Some(at) = deps.tts.iter().position(|p| &p.id == first) {
            let provider = deps.tts.remove(at);
            deps.tts.insert(0, provider);
        }
    }
    // `[tts.voices]` names the configured first provider's voices: not another's.
    if deps.tts.first().map(|p| &p.id) != configured_first.as_ref() {
        deps.voices = TtsVoices::default();
    }
    deps.agent = deps.agent.with_model(settings.agent_model());
    deps
}

/// The Discord rule for which utterances get a reply: with enough people in the channel
/// (`GuildSettings::addressed_only`), only those that start with a wake name, the name
/// taken out; and then only the person being answered (or nobody being answered) can talk
/// over a reply.
pub(crate) struct WakeGate {
    pub(crate) cache: Arc<Cache>,
    pub(crate) guild: GuildId,
    pub(crate) channel: ChannelId,
    pub(crate) bot: UserId,
    pub(crate) heard_bots: Arc<[u64]>,
    pub(crate) settings: Arc<GuildSettings>,
}

impl WakeGate {
    fn addressed_only(&self) -> bool {
        let place = (self.guild, self.channel);
        let humans = super::session::humans_in(&self.cache, place, self.bot, &self.heard_bots);
        self.settings.addressed_only(humans.len())
    }
}

impl TurnGate for WakeGate {
    fn admit(&self, _speaker: &Speaker, transcript: &str) -> Option<String> {
        if !self.addressed_only() {
            return Some(transcript.to_string());
        }
        addressed(transcript, &self.settings.wake_names)
            .map(|m| m.text)
            .filter(|text| !text.is_empty())
    }

    fn barge_in(&self, speaker: &Speaker, answering: Option<&Speaker>) -> bool {
        match answering {
            Some(answering) if self.addressed_only() => answering.id == speaker.id,
            _ => true,
        }
    }
}

/// The notice posted (visibly) in the voice channel's own text chat when the bot joins.
pub(crate) fn join_notice(bot_name: &str, settings: &GuildSettings, humans: usize) -> String {
    let how = if settings.addressed_only(humans.max(settings.addressed_min_humans)) {
        format!(
            " When several people are here I answer only when addressed by name ({}).",
            settings.wake_names.join(", ")
        )
    } else {
        String::new()
    };
    format!(
        "🎙️ **{bot_name} is listening** in this voice channel: what is said here is \
         transcribed and sent to an AI assistant to answer.{how} Use `/voice leave` to stop \
         me, `/voice forget` to delete what I keep about you."
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::guild::GuildDefaults;

    fn gate(mode: &str) -> WakeGate {
        let defaults = GuildDefaults::from_config(&Config::default());
        let rows = [("reply_mode".to_string(), mode.to_string())];
        WakeGate {
            cache: Arc::new(Cache::new()),
            guild: GuildId::new(1),
            channel: ChannelId::new(2),
            bot: UserId::new(3),
            heard_bots: Arc::new([]),
            settings: Arc::new(GuildSettings::resolve(&defaults, &rows)),
        }
    }

    fn speaker(id: &str) -> Speaker {
        Speaker {
            id: id.into(),
            name: format!("user {id}"),
        }
    }

    #[test]
    fn addressed_mode_answers_only_wake_names_with_the_name_stripped() {
        let g = gate("addressed");
        let (ann, bob) = (speaker("10"), speaker("11"));
        assert_eq!(g.admit(&ann, "what time is it"), None);
        assert_eq!(
            g.admit(&ann, "Hey Claw, what time is it?").as_deref(),
            Some("What time is it?")
        );
        assert_eq!(g.admit(&ann, "Claw."), None, "a bare name is no question");
        // Only the person being answered talks over the reply.
        assert!(g.barge_in(&ann, Some(&ann)));
        assert!(!g.barge_in(&bob, Some(&ann)));
        assert!(g.barge_in(&bob, None));
    }

    #[test]
    fn always_mode_answers_everything_and_anyone_barges_in() {
        let g = gate("always");
        let (ann, bob) = (speaker("10"), speaker("11"));
        assert_eq!(
            g.admit(&ann, "what time is it").as_deref(),
            Some("what time is it")
        );
        assert!(g.barge_in(&bob, Some(&ann)));
    }

    #[test]
    fn the_join_notice_says_the_bot_listens_and_how_to_stop_it() {
        let g = gate("auto");
        let text = join_notice("OpenClaw", &g.settings, 1);
        assert!(
            text.contains("listening") && text.contains("transcribed"),
            "{text}"
        );
        assert!(
            text.contains("/voice forget") && text.contains("claw, openclaw"),
            "{text}"
        );
    }
}
