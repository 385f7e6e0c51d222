//! The Discord transport: a serenity bot whose voice calls (songbird) feed the pipeline.
//!
//! - [`api`]: the HTTP API: the token, serenity's client aimed at `discord.api_base_url`,
//!   registering the commands.
//! - [`slash`]: the `/voice` command and its subcommands.
//! - [`invite`]: the OAuth2 invite URL and the permissions the bot asks for.
//! - [`shards`]: `discord.shards`, the shard range this process runs.
//! - [`error`]: [`DiscordError`], what went wrong and whether to retry.

pub mod api;
pub mod error;
pub mod invite;
pub mod shards;
pub mod slash;

pub use api::{Api, BotToken};
pub use error::DiscordError;
pub use invite::{bot_permissions, invite_url};
pub use shards::{ShardRange, ShardRangeError};
