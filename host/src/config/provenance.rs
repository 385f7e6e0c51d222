//! Where each configuration value came from (a file, or an `OPENCLAW__…` variable), so that
//! errors found after the merge (a missing plugin, a plugin's settings refused) can say which
//! file or variable to change; and paths written in a file anchored to that file's directory.

use std::collections::BTreeMap;
use std::path::Path;

use toml::{Table, Value};

/// The layer that set each key last, by dotted key path (arrays count as one value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Origins(BTreeMap<String, String>);

impl Origins {
    /// Records every key of a layer as set by `origin` (a later layer overrides).
    pub(crate) fn record(&mut self, origin: &str, table: &Table) {
        self.record_under(origin, "", table);
    }

    fn record_under(&mut self, origin: &str, prefix: &str, table: &Table) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                Value::Table(inner) => self.record_under(origin, &path, inner),
                _ => {
                    self.0.insert(path, origin.to_string());
                }
            }
        }
    }

    /// Where `key` was set: its own entry, else the nearest enclosing key's (an
    /// `OPENCLAW__…` variable may set a whole inline table), else the origin of the first
    /// key set inside it.
    pub fn of(&self, key: &str) -> Option<&str> {
        let mut prefix = key;
        loop {
            if let Some(origin) = self.0.get(prefix) {
                return Some(origin);
            }
            match prefix.rsplit_once('.') {
                Some((parent, _)) => prefix = parent,
                None => break,
            }
        }
        let inside = format!("{key}.");
        self.0
            .range(inside.clone()..)
            .take_while(|(k, _)| k.starts_with(&inside))
            .map(|(_, origin)| origin.as_str())
            .next()
    }
}

/// Makes the relative plugin directories of a file's layer (`plugins.dir`, `plugins.dirs`)
/// relative to `base`, the file's directory: a configuration means the same wherever the
/// command runs from. (Paths from `OPENCLAW__…` variables stay relative to the working
/// directory, as a shell user expects.)
pub(crate) fn anchor_plugin_dirs(table: &mut Table, base: &Path) {
    let Some(Value::Table(plugins)) = table.get_mut("plugins") else {
        return;
    };
    let anchor = |value: &mut Value| {
        if let Value::String(path) = value {
            if Path::new(path.as_str()).is_relative() {
                *path = base.join(path.as_str()).display().to_string();
            }
        }
    };
    if let Some(dir) = plugins.get_mut("dir") {
        anchor(dir);
    }
    if let Some(Value::Array(dirs)) = plugins.get_mut("dirs") {
        dirs.iter_mut().for_each(anchor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_layer_wins_and_parents_answer_for_their_keys() {
        let mut origins = Origins::default();
        let file: Table = "[stt]\nproviders = [\"a\"]\n[providers.a.settings]\nrate = 1"
            .parse()
            .unwrap();
        origins.record("config/default.toml", &file);
        let env: Table = "[stt]\nproviders = [\"b\"]".parse().unwrap();
        origins.record("environment variable OPENCLAW__STT__PROVIDERS", &env);
        assert_eq!(
            origins.of("stt.providers"),
            Some("environment variable OPENCLAW__STT__PROVIDERS")
        );
        assert_eq!(
            origins.of("providers.a.settings.rate"),
            Some("config/default.toml")
        );
        assert_eq!(origins.of("providers.a"), Some("config/default.toml"));
        assert_eq!(origins.of("providers.b"), None);
    }

    #[test]
    fn relative_plugin_dirs_are_anchored_to_the_file() {
        let mut table: Table = "[plugins]\ndir = \"../target/release\"\ndirs = [\"p\", \"/abs\"]"
            .parse()
            .unwrap();
        anchor_plugin_dirs(&mut table, Path::new("/etc/ocv"));
        let plugins = table["plugins"].as_table().unwrap();
        assert_eq!(plugins["dir"].as_str(), Some("/etc/ocv/../target/release"));
        let dirs: Vec<&str> = plugins["dirs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(dirs, ["/etc/ocv/p", "/abs"]);
    }
}
