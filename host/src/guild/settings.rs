//! The settings a guild can change, their checked values, and a guild's effective settings:
//! its own values over the configuration's defaults.
//!
//! Values are stored as canonical text, one row per (guild, setting), so a setting a guild
//! never changed has no row and follows the config file, and `/voice forget` can remove
//! exactly the rows one person wrote.

use std::collections::BTreeMap;

use super::error::SettingError;
use crate::config::{Config, ReplyMode};

/// A setting a guild can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SettingKey {
    /// Spoken language (a code such as `en`, `de`), for speech-to-text.
    Language,
    /// The text-to-speech provider tried first (a configured provider id).
    TtsProvider,
    /// The voice asked of the text-to-speech provider.
    Voice,
    /// The names the bot answers to.
    WakeNames,
    /// When the bot answers.
    ReplyMode,
    /// The text channel where transcripts are posted.
    TranscriptChannel,
    /// Role ids allowed to make the bot join and leave.
    AllowedRoles,
    /// A voice channel the bot joins by itself (when the server loads, and when someone
    /// enters it); replaces `discord.auto_join_channels` in this server.
    AutoJoinChannel,
    /// The OpenClaw agent id (model `openclaw:<agentId>`).
    AgentId,
}

impl SettingKey {
    /// Every setting, with its name as typed in `/voice settings set` and a description.
    pub(crate) const ALL: [(SettingKey, &'static str, &'static str); 9] = [
        (
            SettingKey::Language,
            "language",
            "spoken language code (en, de, fr…)",
        ),
        (
            SettingKey::TtsProvider,
            "tts_provider",
            "text-to-speech provider id tried first",
        ),
        (
            SettingKey::Voice,
            "voice",
            "voice id asked of the text-to-speech provider",
        ),
        (
            SettingKey::WakeNames,
            "wake_names",
            "names the bot answers to, comma-separated",
        ),
        (
            SettingKey::ReplyMode,
            "reply_mode",
            "auto, always, addressed or push-to-talk",
        ),
        (
            SettingKey::TranscriptChannel,
            "transcript_channel",
            "text channel id for transcripts",
        ),
        (
            SettingKey::AllowedRoles,
            "allowed_roles",
            "role ids allowed to use join/leave",
        ),
        (
            SettingKey::AutoJoinChannel,
            "auto_join_channel",
            "voice channel id to join by itself",
        ),
        (
            SettingKey::AgentId,
            "agent_id",
            "OpenClaw agent id (model openclaw:<id>)",
        ),
    ];

    /// The setting's name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(k, _, _)| *k == self)
            .map(|(_, n, _)| *n)
            .unwrap_or("?")
    }

    /// The setting named `name`.
    pub fn parse(name: &str) -> Result<SettingKey, SettingError> {
        let wanted = name.trim().to_ascii_lowercase().replace('-', "_");
        Self::ALL
            .iter()
            .find(|(_, n, _)| *n == wanted)
            .map(|(k, _, _)| *k)
            .ok_or_else(|| SettingError::UnknownKey(name.to_string(), Self::names()))
    }

    fn names() -> String {
        Self::ALL
            .iter()
            .map(|(_, n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `value` checked for this setting and written canonically (what is stored).
    pub(crate) fn canonical(self, value: &str) -> Result<String, SettingError> {
        let value = value.trim();
        let invalid = |expected: &str| SettingError::Invalid {
            key: self.name(),
            value: value.chars().take(100).collect(),
            expected: expected.to_string(),
        };
        match self {
            SettingKey::Language => {
                let ok = (2..=8).contains(&value.len())
                    && value.chars().all(|c| c.is_ascii_alphabetic() || c == '-');
                ok.then(|| value.to_ascii_lowercase())
                    .ok_or_else(|| invalid("a language code such as en, de or pt-br"))
            }
            SettingKey::TtsProvider | SettingKey::Voice | SettingKey::AgentId => {
                let ok = !value.is_empty()
                    && value.len() <= 100
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
                ok.then(|| value.to_string())
                    .ok_or_else(|| invalid("letters, digits, - _ . : (at most 100)"))
            }
            SettingKey::WakeNames => {
                let names = wake_names(value);
                (!names.is_empty() && names.len() <= 10)
                    .then(|| names.join(","))
                    .ok_or_else(|| invalid("one to ten names, comma-separated"))
            }
            SettingKey::ReplyMode => ReplyMode::parse(value)
                .map(|m| m.as_str().to_string())
                .ok_or_else(|| invalid("auto, always, addressed or push-to-talk")),
            SettingKey::TranscriptChannel | SettingKey::AutoJoinChannel => snowflake(value)
                .map(|id| id.to_string())
                .ok_or_else(|| invalid("a channel id or #mention")),
            SettingKey::AllowedRoles => {
                let ids: Option<Vec<String>> = value
                    .split([',', ' '])
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| snowflake(s).map(|id| id.to_string()))
                    .collect();
                ids.filter(|ids| !ids.is_empty())
                    .map(|ids| ids.join(","))
                    .ok_or_else(|| invalid("role ids or @mentions, comma-separated"))
            }
        }
    }
}

/// A Discord id, bare or as a mention (`<#123>`, `<@&123>`).
fn snowflake(text: &str) -> Option<u64> {
    let t = text.trim();
    let t = t
        .strip_prefix("<#")
        .or_else(|| t.strip_prefix("<@&"))
        .and_then(|r| r.strip_suffix('>'))
        .unwrap_or(t);
    t.parse::<u64>().ok().filter(|id| *id > 0)
}

/// Wake names from a comma-separated list: trimmed, lowercased, non-empty, at most 40 chars.
fn wake_names(text: &str) -> Vec<String> {
    text.split(',')
        .map(|n| n.trim().to_lowercase())
        .filter(|n| !n.is_empty() && n.chars().count() <= 40)
        .collect()
}

/// What a guild gets when it changed nothing: the configuration's values.
#[derive(Debug, Clone, PartialEq)]
pub struct GuildDefaults {
    /// `pipeline.language`.
    pub language: String,
    /// The first of `tts.providers`.
    pub tts_provider: Option<String>,
    /// `discord.wake_names`.
    pub wake_names: Vec<String>,
    /// `discord.reply_mode`.
    pub reply_mode: ReplyMode,
    /// `discord.addressed_min_humans`.
    pub addressed_min_humans: usize,
    /// `discord.transcript_channel`.
    pub transcript_channel: Option<u64>,
    /// The ids among `discord.allowed_roles`.
    pub allowed_roles: Vec<u64>,
    /// The agent id in `agent.model` (`openclaw:<id>`).
    pub agent_id: Option<String>,
}

impl GuildDefaults {
    /// The defaults in `config`.
    pub fn from_config(config: &Config) -> GuildDefaults {
        GuildDefaults {
            language: config.pipeline.language.clone(),
            tts_provider: config.tts.providers.first().cloned(),
            wake_names: wake_names(&config.discord.wake_names.join(",")),
            reply_mode: config.discord.reply_mode,
            addressed_min_humans: config.discord.addressed_min_humans,
            transcript_channel: config.discord.transcript_channel,
            allowed_roles: config
                .discord
                .allowed_roles
                .iter()
                .filter_map(|r| snowflake(r))
                .collect(),
            agent_id: config
                .agent
                .model
                .strip_prefix("openclaw:")
                .map(str::to_string),
        }
    }
}

/// A guild's effective settings: its own values over the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct GuildSettings {
    /// Spoken language.
    pub language: String,
    /// The TTS provider tried first.
    pub tts_provider: Option<String>,
    /// The voice; none: the provider's own.
    pub voice: Option<String>,
    /// Wake names, lowercase.
    pub wake_names: Vec<String>,
    /// When the bot answers.
    pub reply_mode: ReplyMode,
    /// In `auto` mode, from how many people on only addressed utterances are answered.
    pub addressed_min_humans: usize,
    /// Where transcripts go; none: nowhere.
    pub transcript_channel: Option<u64>,
    /// Role ids allowed to use join/leave (empty: the config's rule).
    pub allowed_roles: Vec<u64>,
    /// A voice channel to join by itself.
    pub auto_join_channel: Option<u64>,
    /// The OpenClaw agent id.
    pub agent_id: Option<String>,
    /// The settings this guild set itself (the rest are the config's).
    pub overridden: BTreeMap<SettingKey, String>,
}

impl GuildSettings {
    /// `defaults` with `rows` (setting name → stored value) over them. Rows that no longer
    /// parse (a setting renamed in a later release) are skipped, never fatal.
    pub(crate) fn resolve(defaults: &GuildDefaults, rows: &[(String, String)]) -> GuildSettings {
        let mut s = GuildSettings {
            language: defaults.language.clone(),
            tts_provider: defaults.tts_provider.clone(),
            voice: None,
            wake_names: defaults.wake_names.clone(),
            reply_mode: defaults.reply_mode,
            addressed_min_humans: defaults.addressed_min_humans,
            transcript_channel: defaults.transcript_channel,
            allowed_roles: defaults.allowed_roles.clone(),
            auto_join_channel: None,
            agent_id: defaults.agent_id.clone(),
            overridden: BTreeMap::new(),
        };
        for (name, value) in rows {
            let Ok(key) = SettingKey::parse(name) else {
                continue;
            };
            let Ok(value) = key.canonical(value) else {
                continue;
            };
            s.apply(key, &value);
            s.overridden.insert(key, value);
        }
        s
    }

    fn apply(&mut self, key: SettingKey, value: &str) {
        let ids = |v: &str| v.split(',').filter_map(snowflake).collect::<Vec<u64>>();
        match key {
            SettingKey::Language => self.language = value.to_string(),
            SettingKey::TtsProvider => self.tts_provider = Some(value.to_string()),
            SettingKey::Voice => self.voice = Some(value.to_string()),
            SettingKey::WakeNames => self.wake_names = wake_names(value),
            SettingKey::ReplyMode => {
                self.reply_mode = ReplyMode::parse(value).unwrap_or(self.reply_mode)
            }
            SettingKey::TranscriptChannel => self.transcript_channel = snowflake(value),
            SettingKey::AllowedRoles => self.allowed_roles = ids(value),
            SettingKey::AutoJoinChannel => self.auto_join_channel = snowflake(value),
            SettingKey::AgentId => self.agent_id = Some(value.to_string()),
        }
    }

    /// Whether an utterance must address the bot, with `humans` people in the channel.
    pub(crate) fn addressed_only(&self, humans: usize) -> bool {
        match self.reply_mode {
            ReplyMode::Always | ReplyMode::PushToTalk => false,
            ReplyMode::Addressed => true,
            ReplyMode::Auto => self.addressed_min_humans > 0 && humans >= self.addressed_min_humans,
        }
    }

    /// The agent model for this guild (`openclaw:<agentId>`), when it has an agent id.
    pub(crate) fn agent_model(&self) -> Option<String> {
        self.agent_id.as_ref().map(|id| format!("openclaw:{id}"))
    }

    /// One line per setting, for `/voice settings view`: value and where it comes from.
    pub fn describe(&self) -> String {
        let show = |v: Option<String>| v.unwrap_or_else(|| "none".into());
        let channel = |c: Option<u64>| c.map(|id| format!("<#{id}>"));
        let values = [
            (SettingKey::Language, self.language.clone()),
            (SettingKey::TtsProvider, show(self.tts_provider.clone())),
            (SettingKey::Voice, show(self.voice.clone())),
            (SettingKey::WakeNames, self.wake_names.join(", ")),
            (SettingKey::ReplyMode, self.reply_mode.as_str().to_string()),
            (
                SettingKey::TranscriptChannel,
                show(channel(self.transcript_channel)),
            ),
            (
                SettingKey::AllowedRoles,
                show((!self.allowed_roles.is_empty()).then(|| {
                    let roles: Vec<String> = self
                        .allowed_roles
                        .iter()
                        .map(|r| format!("<@&{r}>"))
                        .collect();
                    roles.join(", ")
                })),
            ),
            (
                SettingKey::AutoJoinChannel,
                show(channel(self.auto_join_channel)),
            ),
            (SettingKey::AgentId, show(self.agent_id.clone())),
        ];
        values
            .into_iter()
            .map(|(key, value)| {
                let origin = if self.overridden.contains_key(&key) {
                    "this server"
                } else {
                    "default"
                };
                format!("`{}`: {value} ({origin})", key.name())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> GuildDefaults {
        GuildDefaults::from_config(&Config::default())
    }

    #[test]
    fn guild_values_override_the_config_and_the_rest_follow_it() {
        let rows = vec![
            ("language".to_string(), "de".to_string()),
            ("transcript_channel".to_string(), "<#42>".to_string()),
            ("reply_mode".to_string(), "addressed".to_string()),
        ];
        let s = GuildSettings::resolve(&defaults(), &rows);
        assert_eq!(s.language, "de");
        assert_eq!(s.transcript_channel, Some(42));
        assert_eq!(s.reply_mode, ReplyMode::Addressed);
        assert_eq!(s.wake_names, vec!["claw", "openclaw"]);
        assert_eq!(s.agent_id.as_deref(), Some("main"));
        assert_eq!(s.overridden.len(), 3);
        assert!(s.describe().contains("`language`: de (this server)"));
        assert!(s.describe().contains("`voice`: none (default)"));
    }

    #[test]
    fn values_are_checked_and_written_canonically() {
        assert_eq!(SettingKey::parse("Wake-Names"), Ok(SettingKey::WakeNames));
        assert!(matches!(
            SettingKey::parse("colour"),
            Err(SettingError::UnknownKey(..))
        ));
        let k = SettingKey::WakeNames;
        assert_eq!(
            k.canonical(" Claw , Hey Bot ,").as_deref(),
            Ok("claw,hey bot")
        );
        assert!(SettingKey::Language.canonical("english!").is_err());
        assert_eq!(
            SettingKey::AllowedRoles.canonical("<@&12>, 34").as_deref(),
            Ok("12,34")
        );
        assert!(SettingKey::TranscriptChannel.canonical("general").is_err());
        assert_eq!(
            SettingKey::ReplyMode.canonical("Push_To_Talk").as_deref(),
            Ok("push-to-talk")
        );
    }

    #[test]
    fn a_stale_row_is_skipped_not_fatal() {
        let rows = vec![
            ("retired_setting".to_string(), "x".to_string()),
            ("language".to_string(), "not a language!".to_string()),
        ];
        let s = GuildSettings::resolve(&defaults(), &rows);
        assert_eq!(s.language, "en");
        assert!(s.overridden.is_empty());
    }

    #[test]
    fn auto_mode_wants_addressing_from_two_people_on() {
        let s = GuildSettings::resolve(&defaults(), &[]);
        assert!(!s.addressed_only(1));
        assert!(s.addressed_only(2));
        let always = GuildSettings::resolve(
            &defaults(),
            &[("reply_mode".to_string(), "always".to_string())],
        );
        assert!(!always.addressed_only(5));
    }
}
