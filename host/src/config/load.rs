//! Reading, checking and merging the configuration layers.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::{Table, Value};

use super::provenance::{anchor_plugin_dirs, Origins};
use super::schema::{AgentKind, Config, DiscordConfig};
use super::shards::{ShardSpec, HOSTNAME_VAR};
use super::validate::{invalid, validate};

/// The variable that overrides `logging.level`.
pub const LOG_LEVEL_VAR: &str = "LOG_LEVEL";

/// Prefix of configuration environment variables: `OPENCLAW__SECTION__KEY=value`.
pub const ENV_PREFIX: &str = "OPENCLAW__";

/// One configuration problem. Each names where it came from and the key concerned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The environment has no file of its own.
    #[error("unknown environment `{env}`: {path} does not exist (available: {available})")]
    UnknownEnvironment {
        /// The environment asked for.
        env: String,
        /// The file looked for.
        path: PathBuf,
        /// The environments that exist.
        available: String,
    },
    /// A file is not valid TOML.
    #[error("{origin}: invalid TOML: {reason}")]
    Syntax {
        /// File or variable.
        origin: String,
        /// Parser message.
        reason: String,
    },
    /// A key the schema does not know.
    #[error("{origin}: unknown key `{key}`{expected}")]
    UnknownKey {
        /// File or variable.
        origin: String,
        /// Dotted key path.
        key: String,
        /// `" (expected one of …)"` or empty.
        expected: String,
    },
    /// A value of the wrong type or out of range.
    #[error("{origin}: `{key}`: {reason}")]
    Invalid {
        /// File, variable, or `configuration` for the merged whole.
        origin: String,
        /// Dotted key path.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A literal secret in a file.
    #[error(
        "{origin}: `{key}` looks like a secret, and secrets never go in config files; \
         put it in an environment variable and set `{key}_env = \"VARIABLE_NAME\"` instead"
    )]
    SecretInFile {
        /// File or variable.
        origin: String,
        /// Dotted key path.
        key: String,
    },
    /// A `*_env` key whose value is not a variable name (often the secret itself).
    #[error(
        "{origin}: `{key}` must name an environment variable (letters, digits and _, like \
         OPENAI_API_KEY), and its value is not one; it is not shown here in case it is the \
         secret itself: put the secret in a variable and name that variable"
    )]
    NotAVariable {
        /// File or variable.
        origin: String,
        /// Dotted key path.
        key: String,
    },
    /// A secret's environment variable is not set.
    #[error(
        "environment variable {var} is not set (or empty), and {needed_by} needs it \
         (named by `{key}`)"
    )]
    MissingSecret {
        /// The variable.
        var: String,
        /// Who needs it: `provider \`openai-whisper\``, `the agent`.
        needed_by: String,
        /// The `*_env` key naming it.
        key: String,
    },
}

/// Every problem found, in the order found.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} configuration problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The effective configuration and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The merged, validated configuration.
    pub config: Config,
    /// The environment name (`development`, `offline`…).
    pub environment: String,
    /// The files read, in layer order.
    pub files: Vec<PathBuf>,
    /// The `OPENCLAW__…` variables applied, in order (names only).
    pub env_overrides: Vec<String>,
    /// Secret variables the configuration names and whether each is set: `(key, var, set)`.
    pub secrets: Vec<(String, String, bool)>,
    /// Which file or variable set each key.
    pub origins: Origins,
}

impl LoadedConfig {
    /// What would stop `run` though the configuration is valid: today the bot token's
    /// variable, when `discord.enabled`. `check-config` reports these too, so that it never
    /// says OK for a `run` that cannot start.
    pub(crate) fn run_problems(&self) -> Vec<ConfigError> {
        let d = &self.config.discord;
        let token_set = std::env::var(&d.token_env).is_ok_and(|v| !v.trim().is_empty());
        if !d.enabled || token_set {
            return Vec::new();
        }
        vec![ConfigError::MissingSecret {
            var: d.token_env.clone(),
            needed_by: "`run` (to connect to Discord: set it to the bot token, or run \
                        headless with `discord.enabled = false`, i.e. \
                        OPENCLAW__DISCORD__ENABLED=false, as `--env offline` does)"
                .into(),
            key: "discord.token_env".into(),
        }]
    }
}

/// Environment variables, name and value.
type Vars = Vec<(String, String)>;

/// Loads `dir/default.toml` (optional), `dir/<environment>.toml` (required) and the
/// `OPENCLAW__…` variables from `vars`, and validates the result.
pub fn load(
    dir: &Path,
    environment: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<LoadedConfig, ConfigErrors> {
    let mut layers = Layers::default();
    layers.read_files(dir, environment);
    // `OPENCLAW__…` overrides; the rest is read only for `LOG_LEVEL` and `discord.shards`.
    let (overrides, others): (Vars, Vars) = vars
        .into_iter()
        .partition(|(k, _)| k.starts_with(ENV_PREFIX));
    layers.apply_overrides(overrides);
    let Layers {
        mut errors,
        merged,
        files,
        origins,
        env_overrides,
    } = layers;
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let mut config: Config = match deserialize("configuration", Value::Table(merged)) {
        Ok(config) => config,
        Err(e) => return Err(ConfigErrors(vec![e])),
    };
    validate(&config, &mut errors);
    resolve_log_level(&mut config.logging, &others, &mut errors);
    if errors.is_empty() {
        resolve_shards(&mut config.discord, &others, &mut errors);
    }
    let secrets = secret_refs(&config);
    errors.extend(
        secrets
            .iter()
            .filter(|(_, _, set)| !set)
            .map(|(key, var, _)| ConfigError::MissingSecret {
                var: var.clone(),
                needed_by: needed_by(key),
                key: key.clone(),
            }),
    );
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(LoadedConfig {
        config,
        environment: environment.to_string(),
        files,
        env_overrides,
        secrets,
        origins,
    })
}

/// The layers read so far, merged, with where each key came from and every problem found.
#[derive(Default)]
struct Layers {
    errors: Vec<ConfigError>,
    merged: Table,
    files: Vec<PathBuf>,
    origins: Origins,
    env_overrides: Vec<String>,
}

impl Layers {
    /// Merges one checked layer from `origin`.
    fn merge(&mut self, origin: &str, table: Table) {
        self.origins.record(origin, &table);
        deep_merge(&mut self.merged, table);
    }

    /// `dir/default.toml` (optional), then `dir/<environment>.toml` (required).
    fn read_files(&mut self, dir: &Path, environment: &str) {
        let default_path = dir.join("default.toml");
        if default_path.exists() {
            if let Some(table) = read_layer(&default_path, &mut self.errors) {
                self.merge(&default_path.display().to_string(), table);
            }
            self.files.push(default_path);
        }
        let env_path = dir.join(format!("{environment}.toml"));
        if environment == "default" || !env_path.exists() {
            self.errors.push(ConfigError::UnknownEnvironment {
                env: environment.to_string(),
                path: env_path,
                available: available_environments(dir),
            });
            return;
        }
        if let Some(table) = read_layer(&env_path, &mut self.errors) {
            self.merge(&env_path.display().to_string(), table);
        }
        self.files.push(env_path);
    }

    /// The `OPENCLAW__SECTION__KEY` variables, in name order, each checked as a layer.
    fn apply_overrides(&mut self, mut vars: Vars) {
        vars.sort();
        // Providers defined whole in the environment: their `plugin` is set there.
        let defined: BTreeSet<String> = vars
            .iter()
            .filter_map(|(name, _)| {
                let rest = name[ENV_PREFIX.len()..].strip_prefix("PROVIDERS__")?;
                let id = rest.strip_suffix("__PLUGIN")?;
                (!id.contains("__")).then(|| id.to_ascii_lowercase())
            })
            .collect();
        for (name, raw) in vars {
            let origin = format!("environment variable {name}");
            let mut path: Vec<String> = name[ENV_PREFIX.len()..]
                .split("__")
                .map(|s| s.to_ascii_lowercase())
                .collect();
            let problem = if path.iter().any(|s| s.is_empty()) {
                Some("the name must look like OPENCLAW__SECTION__KEY".to_string())
            } else {
                match_provider_id(&mut path, &self.merged, &defined).err()
            };
            if let Some(reason) = problem {
                self.errors.push(ConfigError::Invalid {
                    origin,
                    key: name,
                    reason,
                });
                continue;
            }
            let table = nest(&path, parse_env_value(&raw));
            if check_layer(&origin, &table, &mut self.errors) {
                self.merge(&origin, table);
                self.env_overrides.push(name);
            }
        }
    }
}

fn available_environments(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let p = e.path();
                    (p.extension()? == "toml")
                        .then(|| p.file_stem()?.to_str().map(str::to_owned))
                        .flatten()
                })
                .filter(|n| n != "default")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    if names.is_empty() {
        format!("none; is {} the config directory?", dir.display())
    } else {
        names.join(", ")
    }
}

/// Reads and checks one file; returns its table if it is usable.
fn read_layer(path: &Path, errors: &mut Vec<ConfigError>) -> Option<Table> {
    let origin = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            errors.push(ConfigError::Read {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
            return None;
        }
    };
    let mut table: Table = match text.parse() {
        Ok(table) => table,
        Err(e) => {
            errors.push(ConfigError::Syntax {
                origin,
                reason: e.to_string().trim().replace('\n', " "),
            });
            return None;
        }
    };
    if let Some(base) = path.parent() {
        anchor_plugin_dirs(&mut table, base);
    }
    check_layer(&origin, &table, errors).then_some(table)
}

/// Checks one layer alone against the schema, and for literal secrets.
fn check_layer(origin: &str, table: &Table, errors: &mut Vec<ConfigError>) -> bool {
    let before = errors.len();
    super::secrets::find_secrets(origin, "", table, errors);
    if let Err(e) = deserialize::<Config>(origin, Value::Table(table.clone())) {
        errors.push(e);
    }
    errors.len() == before
}

fn deserialize<T: DeserializeOwned>(origin: &str, value: Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = message.split('\n').next().unwrap_or_default().to_string();
        if let Some(rest) = message.strip_prefix("unknown field `") {
            // The path already ends with the unknown key.
            let (name, tail) = rest.split_once('`').unwrap_or((rest, ""));
            let key = if path.is_empty() {
                name.to_string()
            } else {
                path.clone()
            };
            let expected = tail
                .trim_start_matches(',')
                .trim()
                .strip_prefix("expected ")
                .map(|s| format!(" (expected {s})"))
                .unwrap_or_default();
            ConfigError::UnknownKey {
                origin: origin.to_string(),
                key,
                expected,
            }
        } else {
            ConfigError::Invalid {
                origin: origin.to_string(),
                key: if path.is_empty() {
                    "(top level)".into()
                } else {
                    path
                },
                reason: message,
            }
        }
    })
}

/// `OPENCLAW__PROVIDERS__<ID>__…`: a variable name cannot hold `-`, so `_` in `<ID>` also
/// matches `-` (`OPENAI_WHISPER` → `openai-whisper`); the id is replaced by the provider's own.
/// An id that matches no provider of the files is refused with the list of ids: it would
/// otherwise create a new, unused provider and change nothing.
fn match_provider_id(
    path: &mut [String],
    merged: &Table,
    defined_here: &BTreeSet<String>,
) -> Result<(), String> {
    let [section, id, ..] = path else {
        return Ok(());
    };
    if section != "providers" {
        return Ok(());
    }
    let ids: Vec<&String> = match merged.get("providers") {
        Some(Value::Table(providers)) => providers.keys().collect(),
        _ => Vec::new(),
    };
    let spelled = |k: &str| k.to_ascii_lowercase().replace('-', "_");
    if let Some(found) = ids.iter().find(|k| spelled(k) == spelled(id)) {
        *id = (*found).clone();
        return Ok(());
    }
    if defined_here.contains(id.as_str()) {
        // A new provider, defined in the environment with its `plugin`.
        return Ok(());
    }
    let listed: Vec<String> = ids
        .iter()
        .map(|k| {
            format!(
                "{k} (OPENCLAW__PROVIDERS__{}__…)",
                spelled(k).to_uppercase()
            )
        })
        .collect();
    Err(format!(
        "there is no provider `{id}` in the config files; the providers are: {}. (A new \
         provider is defined in a file, or in the environment with its plugin: \
         OPENCLAW__PROVIDERS__{}__PLUGIN.)",
        if listed.is_empty() {
            "none".to_string()
        } else {
            listed.join(", ")
        },
        id.to_uppercase()
    ))
}

fn parse_env_value(raw: &str) -> Value {
    format!("v = {raw}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()))
}

fn nest(path: &[String], value: Value) -> Table {
    let mut value = value;
    for key in path.iter().skip(1).rev() {
        let mut t = Table::new();
        t.insert(key.clone(), value);
        value = Value::Table(t);
    }
    let mut root = Table::new();
    if let Some(first) = path.first() {
        root.insert(first.clone(), value);
    }
    root
}

/// Merges `over` into `base`: tables merge key by key, everything else is replaced.
pub(crate) fn deep_merge(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => deep_merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// `discord.shards = "auto…"`: replaced by the range this process runs, worked out from
/// `SHARD_PROCESSES` and the ordinal (`POD_ORDINAL`, else the hostname) among `vars`.
fn resolve_shards(d: &mut DiscordConfig, vars: &[(String, String)], errors: &mut Vec<ConfigError>) {
    let Some(spec @ ShardSpec::Auto { .. }) = d.shards else {
        return;
    };
    let var = |name: &str| {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| {
                // Where HOSTNAME is not exported (a plain shell), the kernel knows it.
                (name == HOSTNAME_VAR)
                    .then(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
                    .flatten()
                    .map(|h| h.trim().to_string())
            })
    };
    match spec.resolve(var) {
        Ok((range, _)) => d.shards = Some(ShardSpec::Range(range)),
        Err(e) => errors.push(invalid("discord.shards", format!("`{spec}`: {e}"))),
    }
}

/// `logging.level`, overridden by `LOG_LEVEL` among `vars`: checked, and replaced by the
/// filter in tracing's spelling (`warning` → `warn`), so the logging set-up reads it as is.
fn resolve_log_level(
    logging: &mut super::schema::LoggingConfig,
    vars: &[(String, String)],
    errors: &mut Vec<ConfigError>,
) {
    let from_env = vars.iter().find(|(k, _)| k == LOG_LEVEL_VAR);
    let (origin, key, text) = match from_env {
        Some((_, v)) => (
            format!("environment variable {LOG_LEVEL_VAR}"),
            LOG_LEVEL_VAR,
            v.clone(),
        ),
        None => (
            "configuration".to_string(),
            "logging.level",
            logging.level.clone(),
        ),
    };
    match super::level::normalize_filter(&text) {
        Ok(filter) => logging.level = filter,
        Err(reason) => errors.push(ConfigError::Invalid {
            origin,
            key: key.into(),
            reason,
        }),
    }
}

/// Every `*_env` key the active configuration uses, with whether its variable is set.
fn secret_refs(config: &Config) -> Vec<(String, String, bool)> {
    let mut refs = Vec::new();
    let active: BTreeSet<&String> = config
        .stt
        .providers
        .iter()
        .chain(config.tts.providers.iter())
        .collect();
    for (id, provider) in &config.providers {
        if !active.contains(id) {
            continue;
        }
        collect_env_keys(
            &format!("providers.{id}.settings"),
            &provider.settings,
            &mut refs,
        );
    }
    if config.agent.kind == AgentKind::OpenaiChat {
        if let Some(var) = &config.agent.api_key_env {
            refs.push(("agent.api_key_env".to_string(), var.clone()));
        }
    }
    if config.ops.enabled {
        if let Some(var) = &config.ops.token_env {
            refs.push(("ops.token_env".to_string(), var.clone()));
        }
    }
    if let Some(var) = &config.logging.hash_key_env {
        refs.push(("logging.hash_key_env".to_string(), var.clone()));
    }
    if let Some(var) = &config.storage.database_url_env {
        refs.push(("storage.database_url_env".to_string(), var.clone()));
    }
    // An empty `*_env` says "no key" (a local server without auth).
    refs.into_iter()
        .filter(|(_, var)| !var.trim().is_empty())
        .map(|(key, var)| {
            let set = std::env::var(&var)
                .map(|v| !v.trim().is_empty())
                .unwrap_or(false);
            (key, var, set)
        })
        .collect()
}

/// Every `*_env` key under `table` (dotted after `prefix`) and the variable it names.
pub fn collect_env_keys(prefix: &str, table: &Table, out: &mut Vec<(String, String)>) {
    for (k, v) in table {
        let key = format!("{prefix}.{k}");
        match v {
            Value::String(var) if k.ends_with("_env") => out.push((key, var.clone())),
            Value::Table(inner) => collect_env_keys(&key, inner, out),
            _ => {}
        }
    }
}

fn needed_by(key: &str) -> String {
    if let Some(rest) = key.strip_prefix("providers.") {
        let id = rest.split('.').next().unwrap_or(rest);
        format!("provider `{id}`")
    } else if key.starts_with("agent.") {
        "the agent".into()
    } else if key.starts_with("ops.") {
        "the ops server".into()
    } else {
        format!("`{key}`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    fn errs(r: Result<LoadedConfig, ConfigErrors>) -> Vec<String> {
        r.unwrap_err().0.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn layers_merge_in_order() {
        let dir = dir_with(&[
            (
                "default.toml",
                "[pipeline]\nsilence_hangover_ms = 600\npreroll_ms = 100\n",
            ),
            ("staging.toml", "[pipeline]\npreroll_ms = 300\n"),
        ]);
        let vars = vec![(
            "OPENCLAW__PIPELINE__BARGE_IN_MIN_MS".to_string(),
            "700".to_string(),
        )];
        let loaded = load(dir.path(), "staging", vars).unwrap();
        assert_eq!(loaded.config.pipeline.silence_hangover_ms, 600);
        assert_eq!(loaded.config.pipeline.preroll_ms, 300);
        assert_eq!(loaded.config.pipeline.barge_in_min_ms, 700);
        assert_eq!(
            loaded.env_overrides,
            vec!["OPENCLAW__PIPELINE__BARGE_IN_MIN_MS"]
        );
    }

    #[test]
    fn unknown_key_names_file_and_dotted_path() {
        let dir = dir_with(&[("staging.toml", "[pipeline]\nsilence_hangover = 600\n")]);
        let e = errs(load(dir.path(), "staging", vec![]));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("staging.toml"), "{}", e[0]);
        assert!(e[0].contains("`pipeline.silence_hangover`"), "{}", e[0]);
        assert!(
            e[0].contains("silence_hangover_ms"),
            "suggests the real keys: {}",
            e[0]
        );
    }

    #[test]
    fn the_middle_turn_silence_must_lie_between_the_short_and_the_long() {
        let dir = dir_with(&[(
            "offline.toml",
            "[pipeline]\nturn_complete_silence_ms = 300\nturn_text_complete_silence_ms = 200\n",
        )]);
        let e = errs(load(dir.path(), "offline", vec![]));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("`pipeline.turn_text_complete_silence_ms`"),
            "{}",
            e[0]
        );
        let dir = dir_with(&[(
            "offline.toml",
            "[pipeline]\nturn_text_complete_silence_ms = 600\n",
        )]);
        let loaded = load(dir.path(), "offline", vec![]).expect("600 ms lies between");
        assert_eq!(loaded.config.pipeline.turn_text_complete_silence_ms, 600);
    }

    #[test]
    fn the_last_word_minimum_is_a_probability() {
        for bad in ["1.5", "-0.1"] {
            let dir = dir_with(&[(
                "offline.toml",
                &format!("[pipeline]\nturn_last_word_min_probability = {bad}\n"),
            )]);
            let e = errs(load(dir.path(), "offline", vec![]));
            assert_eq!(e.len(), 1, "{e:?}");
            assert!(
                e[0].contains("`pipeline.turn_last_word_min_probability`"),
                "{}",
                e[0]
            );
        }
        let dir = dir_with(&[(
            "offline.toml",
            "[pipeline]\nturn_last_word_min_probability = 0\n",
        )]);
        let loaded = load(dir.path(), "offline", vec![]).expect("0 turns the cue off");
        assert_eq!(loaded.config.pipeline.turn_last_word_min_probability, 0.0);
    }

    #[test]
    fn type_error_names_file_and_key() {
        let dir = dir_with(&[
            ("default.toml", "[pipeline]\npreroll_ms = \"lots\"\n"),
            ("offline.toml", ""),
        ]);
        let e = errs(load(dir.path(), "offline", vec![]));
        assert!(e[0].contains("default.toml"), "{}", e[0]);
        assert!(e[0].contains("`pipeline.preroll_ms`"), "{}", e[0]);
        assert!(e[0].contains("invalid type"), "{}", e[0]);
    }

    #[test]
    fn env_override_errors_name_the_variable() {
        let dir = dir_with(&[("offline.toml", "")]);
        let vars = vec![("OPENCLAW__OPS__BINDD".to_string(), "x".to_string())];
        let e = errs(load(dir.path(), "offline", vars));
        assert!(e[0].contains("OPENCLAW__OPS__BINDD"), "{}", e[0]);
        assert!(e[0].contains("`ops.bindd`"), "{}", e[0]);
    }

    #[test]
    fn literal_secret_in_file_is_refused() {
        let dir = dir_with(&[(
            "production.toml",
            "[providers.openai]\n[providers.openai.settings]\napi_key = \"sk-live-123\"\n",
        )]);
        let e = errs(load(dir.path(), "production", vec![]));
        assert!(
            e[0].contains("providers.openai.settings.api_key"),
            "{}",
            e[0]
        );
        assert!(e[0].contains("api_key_env"), "{}", e[0]);
        assert!(!e[0].contains("sk-live-123"));
    }

    #[test]
    fn missing_secret_names_variable_and_provider() {
        let dir = dir_with(&[(
            "staging.toml",
            "[stt]\nproviders = [\"cloud\"]\n[providers.cloud.settings]\napi_key_env = \"OPENCLAW_TEST_UNSET_KEY_1\"\n",
        )]);
        let e = errs(load(dir.path(), "staging", vec![]));
        assert!(e[0].contains("OPENCLAW_TEST_UNSET_KEY_1"), "{}", e[0]);
        assert!(e[0].contains("provider `cloud`"), "{}", e[0]);
    }

    #[test]
    fn unknown_environment_lists_available() {
        let dir = dir_with(&[("offline.toml", ""), ("staging.toml", "")]);
        let e = errs(load(dir.path(), "prod", vec![]));
        assert!(e[0].contains("unknown environment `prod`"), "{}", e[0]);
        assert!(e[0].contains("offline, staging"), "{}", e[0]);
    }

    #[test]
    fn circuit_and_budget_settings_are_range_checked() {
        let dir = dir_with(&[(
            "offline.toml",
            "[providers.cloud.circuit]\nfailures = 0\nfailure_rate = 1.5\nwindow = 0\n\
             cooldown_ms = 10\n[pipeline]\nstt_budget_ms = 50\n",
        )]);
        let e = errs(load(dir.path(), "offline", vec![]));
        for key in [
            "providers.cloud.circuit.failures",
            "providers.cloud.circuit.failure_rate",
            "providers.cloud.circuit.window",
            "providers.cloud.circuit.cooldown_ms",
            "pipeline.stt_budget_ms",
        ] {
            assert!(e.iter().any(|m| m.contains(key)), "{key} in {e:?}");
        }
        let dir = dir_with(&[(
            "offline.toml",
            "[providers.cloud.circuit]\nfailures = 5\ncooldown_ms = 1000\n",
        )]);
        let loaded = load(dir.path(), "offline", vec![]).unwrap();
        let c = loaded.config.providers["cloud"].circuit;
        assert_eq!((c.failures, c.cooldown_ms, c.window), (5, 1_000, 20));
        let dir = dir_with(&[("offline.toml", "[providers.cloud.circuit]\nfailure = 5\n")]);
        let e = errs(load(dir.path(), "offline", vec![]));
        assert!(e[0].contains("providers.cloud.circuit.failure"), "{}", e[0]);
    }

    #[test]
    fn discord_settings_are_checked_with_their_keys() {
        let dir = dir_with(&[
            ("default.toml", ""),
            (
                "test.toml",
                "[discord]\napplication_id = 0\nallowed_roles = [\"\"]\n\
                 auto_leave_after_ms = 5\ntranscript_channel = 0\n\
                 voice_reconnect_attempts = 50\napi_base_url = \"discord.com\"\n",
            ),
        ]);
        let errors = errs(load(dir.path(), "test", Vec::<(String, String)>::new()));
        // A range that does not parse is a type error of its layer, reported with its key.
        let shards = dir_with(&[
            ("default.toml", ""),
            ("test.toml", "[discord]\nshards = \"4-2/8\"\n"),
        ]);
        let shard_errors = errs(load(shards.path(), "test", Vec::<(String, String)>::new()));
        assert!(
            shard_errors[0].contains("test.toml: `discord.shards`: `4-2/8` is not a shard range"),
            "{shard_errors:?}"
        );
        for key in [
            "discord.application_id",
            "discord.allowed_roles",
            "discord.auto_leave_after_ms",
            "discord.transcript_channel",
            "discord.voice_reconnect_attempts",
            "discord.api_base_url",
        ] {
            assert!(
                errors.iter().any(|e| e.contains(&format!("`{key}`"))),
                "{key} not reported: {errors:?}"
            );
        }
        let good = dir_with(&[
            ("default.toml", ""),
            (
                "test.toml",
                "[discord]\napplication_id = 1234\nshards = \"0-3/16\"\n\
                 allowed_roles = [\"DJ\", \"987\"]\nauto_leave_after_ms = 0\n\
                 api_base_url = \"http://127.0.0.1:9\"\n",
            ),
        ]);
        let loaded = load(good.path(), "test", Vec::<(String, String)>::new()).unwrap();
        assert_eq!(
            loaded.config.discord.shard_label().as_deref(),
            Some("0-3/16")
        );
    }

    #[test]
    fn auto_shards_resolve_from_the_cluster_variables() {
        let dir = dir_with(&[("prod.toml", "[discord]\nshards = \"auto/16\"\n")]);
        let vars = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let loaded = load(
            dir.path(),
            "prod",
            vars(&[("SHARD_PROCESSES", "4"), ("HOSTNAME", "openclaw-voice-2")]),
        )
        .unwrap();
        assert_eq!(
            loaded
                .config
                .discord
                .shards
                .map(|s| s.to_string())
                .as_deref(),
            Some("8-11/16")
        );
        let loaded = load(
            dir.path(),
            "prod",
            vars(&[
                ("OPENCLAW__DISCORD__SHARDS", "auto"),
                ("SHARD_PROCESSES", "3"),
                ("POD_ORDINAL", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(
            loaded
                .config
                .discord
                .shards
                .map(|s| s.to_string())
                .as_deref(),
            Some("1-1/3")
        );
        let e = errs(load(dir.path(), "prod", vars(&[("POD_ORDINAL", "1")])));
        assert!(
            e[0].contains("discord.shards") && e[0].contains("SHARD_PROCESSES"),
            "{e:?}"
        );
        let e = errs(load(
            dir.path(),
            "prod",
            vars(&[("SHARD_PROCESSES", "4"), ("POD_ORDINAL", "4")]),
        ));
        assert!(
            e[0].contains("POD_ORDINAL") && e[0].contains("below"),
            "{e:?}"
        );
    }

    #[test]
    fn cloudwatch_settings_are_checked_with_their_keys() {
        let dir = dir_with(&[(
            "offline.toml",
            "[logging.cloudwatch]\nenabled = true\nlog_group = \"bad group!\"\n\
             stream = \"{host}:{nope}\"\nregion = \"EU West\"\nflush_interval_ms = 5\n\
             buffer_events = 1\nmax_retries = 99\n",
        )]);
        let errors = errs(load(dir.path(), "offline", vec![]));
        for key in [
            "logging.cloudwatch.log_group",
            "logging.cloudwatch.stream",
            "logging.cloudwatch.region",
            "logging.cloudwatch.flush_interval_ms",
            "logging.cloudwatch.buffer_events",
            "logging.cloudwatch.max_retries",
        ] {
            assert!(
                errors.iter().any(|e| e.contains(&format!("`{key}`"))),
                "{key} not reported: {errors:?}"
            );
        }
        let dir = dir_with(&[("offline.toml", "[logging.cloudwatch]\nenabled = true\n")]);
        let errors = errs(load(dir.path(), "offline", vec![]));
        assert!(
            errors
                .iter()
                .any(|e| e.contains("logging.cloudwatch.log_group")),
            "{errors:?}"
        );
        let dir = dir_with(&[(
            "offline.toml",
            "[logging.cloudwatch]\nenabled = true\nlog_group = \"/openclaw/voice\"\n\
             stream = \"{env}/{host}/{shards}-{pid}\"\nregion = \"eu-west-1\"\n",
        )]);
        let loaded = load(dir.path(), "offline", vec![]).unwrap();
        assert_eq!(
            loaded.config.logging.cloudwatch.log_group,
            "/openclaw/voice"
        );
        let dir = dir_with(&[("offline.toml", "[logging.cloudwatch]\naccess_key = \"x\"\n")]);
        assert!(
            load(dir.path(), "offline", vec![]).is_err(),
            "no credentials in files"
        );
    }

    #[test]
    fn provider_lists_must_name_blocks() {
        let dir = dir_with(&[("offline.toml", "[tts]\nproviders = [\"nope\"]\n")]);
        let e = errs(load(dir.path(), "offline", vec![]));
        assert!(e[0].contains("[providers.nope]"), "{}", e[0]);
    }

    #[test]
    fn env_values_parse_as_toml_or_string() {
        assert_eq!(parse_env_value("true"), Value::Boolean(true));
        assert_eq!(parse_env_value("12"), Value::Integer(12));
        assert_eq!(
            parse_env_value("0.0.0.0:3001"),
            Value::String("0.0.0.0:3001".into())
        );
        assert!(matches!(parse_env_value("[\"a\", \"b\"]"), Value::Array(_)));
    }
}
