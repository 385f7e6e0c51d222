//! Configuration: layered TOML (`config/default.toml` → `config/<env>.toml` → `OPENCLAW__…`
//! environment variables), checked layer by layer so every error names its file (or variable)
//! and the dotted key, then merged, validated as a whole, and checked for missing secrets.
//!
//! Steps, as in ripgrep: raw layers → parsed per layer → merged → validated.

mod load;
mod provenance;
mod schema;

pub use load::{load, ConfigError, ConfigErrors, LoadedConfig, ENV_PREFIX};
pub use provenance::Origins;
pub use schema::*;
