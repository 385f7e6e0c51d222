//! Configuration: layered TOML (`config/default.toml` → `config/<env>.toml` → `OPENCLAW__…`
//! environment variables), checked layer by layer so every error names its file (or variable)
//! and the dotted key, then merged, validated as a whole, and checked for missing secrets.
//!
//! Steps, as in ripgrep: raw layers → parsed per layer → merged → validated.

mod level;
mod load;
mod provenance;
mod schema;
mod secrets;
pub mod shards;
mod validate;

pub use level::normalize_filter;
pub use load::{
    collect_env_keys, load, ConfigError, ConfigErrors, LoadedConfig, ENV_PREFIX, LOG_LEVEL_VAR,
};
pub use provenance::Origins;
pub use schema::*;
pub use secrets::{is_variable_name, looks_like_secret, names_secret, NameMatch};
pub use validate::check_stream_template;
