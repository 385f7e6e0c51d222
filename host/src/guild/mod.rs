//! Per-guild (per Discord server) settings: what a server's admins changed with
//! `/voice settings`, kept in a real database, over the configuration's defaults.
//!
//! - [`settings`]: the settings a guild can change ([`SettingKey`]), their checked values,
//!   and [`GuildSettings`], a guild's effective settings (its own values over the config).
//! - [`store`]: [`GuildStore`], SQLite (a file, WAL) or PostgreSQL through `sqlx`, the
//!   embedded migrations, and the in-memory cache the turn path reads.
//! - [`wake`]: wake names: whether an utterance addresses the bot, and the text without
//!   the name.
//! - [`error`]: [`StoreError`] and [`SettingError`].
//!
//! Layer: above `config` and `telemetry` (audit lines carry hashed user ids), below
//! everything that serves a guild (`pipeline`, `ops`, `voice`).

pub mod error;
pub mod settings;
pub mod store;
pub mod wake;

pub use error::{SettingError, StoreError};
pub use settings::{GuildDefaults, GuildSettings, SettingKey};
pub use store::{GuildStore, StorageBackend};
pub use wake::{addressed, WakeMatch};
