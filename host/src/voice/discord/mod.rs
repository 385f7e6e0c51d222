//! The Discord transport: a serenity bot whose voice calls (songbird) feed the pipeline.
//!
//! - [`bot`]: the gateway client (intents GUILDS and GUILD_VOICE_STATES), `/voice join`,
//!   `leave` and `status`, the sessions by guild, sharding; `bot/autojoin.rs`: join on start
//!   (`discord.auto_join_channels`, a server's `auto_join_channel`).
//! - [`session`]: one guild's voice session: received audio to the pipeline per speaker
//!   (SSRC → user, late speakers, bots ignored), transcripts, auto-leave, recovery.
//! - [`hearing`]: the hearing guard: decoded frames per speaker, and speakers Discord
//!   announces whose audio never decodes (DAVE frames songbird cannot decrypt).
//! - [`output`]: the pipeline's audio into the call, without blocking songbird's mixer.
//! - [`api`]: the HTTP API: the token, serenity's client aimed at `discord.api_base_url`,
//!   registering the commands.
//! - [`slash`]: the `/voice` command and its subcommands.
//! - [`settings`]: `/voice-settings` and `/voice forget`; a guild's settings applied to its
//!   session (language, TTS provider, agent id) and the wake-name rule ([`settings::WakeGate`]).
//! - [`invite`]: the OAuth2 invite URL and the permissions the bot asks for.
//! - [`shards`]: `discord.shards`, the shard range this process runs, fixed or worked out
//!   from the process's place in a shard cluster (`auto`).
//! - [`error`]: [`DiscordError`], what went wrong and whether to retry.

pub mod api;
pub mod bot;
pub mod error;
pub mod hearing;
pub mod invite;
pub mod output;
pub mod session;
pub mod settings;
pub mod slash;

pub use crate::config::shards::{AutoShardError, ShardRange, ShardRangeError, ShardSpec};
pub use api::{Api, BotToken};
pub use bot::serve;
pub use error::DiscordError;
pub use invite::{bot_permissions, invite_url};

/// What the bot tells the rest of the process (the ops endpoints, metrics).
pub trait BotObserver: Send + Sync + 'static {
    /// The gateway connection came up (`true`) or went down.
    fn gateway(&self, _up: bool) {}
    /// A voice session started in `guild`.
    fn session_started(&self, _guild: u64) {}
    /// The voice session in `guild` ended.
    fn session_ended(&self, _guild: u64) {}
    /// A turn finished in `guild`.
    fn turn(&self, _guild: u64, _report: &crate::pipeline::TurnReport) {}
    /// `frames` more received frames decoded in `guild`.
    fn frames_decoded(&self, _guild: u64, _frames: u64) {}
    /// In `guild`, Discord says someone is speaking but none of their audio decodes.
    fn undecodable(&self, _guild: u64) {}
    /// `speakers` in `guild` are speaking but unheard now (0: everyone is heard again).
    fn unheard(&self, _guild: u64, _speakers: usize) {}
    /// What `guild`'s received audio is encrypted with now: DAVE end to end (`Some(true)`),
    /// transport only (`Some(false)`), or not known (no one heard yet, or the session ended).
    fn encryption(&self, _guild: u64, _dave: Option<bool>) {}
}
