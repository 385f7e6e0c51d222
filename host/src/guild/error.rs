//! What can go wrong with guild settings: the store ([`StoreError`]) and a value someone
//! typed ([`SettingError`]).

use thiserror::Error;

/// The settings store failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The SQLite file cannot be opened or used (corrupt, read-only, not a database).
    #[error(
        "the guild settings database {path} cannot be used: {reason}. Fix or move the file \
         (`storage.path`); it was left untouched"
    )]
    File {
        /// The file.
        path: String,
        /// What the database said.
        reason: String,
    },
    /// The PostgreSQL server refused or failed.
    #[error("the guild settings database (PostgreSQL, URL from ${var}) cannot be used: {reason}")]
    Server {
        /// The variable holding the URL.
        var: String,
        /// What the server or driver said (no URL, no password).
        reason: String,
    },
    /// `storage.database_url_env` names a variable that is not set.
    #[error("storage.database_url_env names ${0}, which is not set; set it to a postgres:// URL")]
    MissingUrl(String),
    /// The migrations could not be applied.
    #[error("migrating the guild settings database failed: {0}")]
    Migration(String),
    /// A query failed after start.
    #[error("the guild settings database failed: {0}")]
    Query(String),
    /// The store could not be opened at start; settings are the config's until a restart.
    #[error("guild settings are unavailable ({0}); the configuration's defaults apply")]
    Unavailable(String),
}

/// A setting value that cannot be used; the message is shown to the server admin.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettingError {
    /// No such setting.
    #[error("there is no setting `{0}`; the settings are: {1}")]
    UnknownKey(String, String),
    /// The value does not fit the setting.
    #[error("`{value}` is not a valid {key}: {expected}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// What was given.
        value: String,
        /// What is expected.
        expected: String,
    },
}
