//! What a secret looks like, by name and by shape; and the per-layer check that keeps secrets
//! out of configuration files: a key named like a secret (`api_key`, `openai_api_key`), a
//! value shaped like one (`sk-…`, a bot token) under any key, and a `*_env` key whose value is
//! not a variable name (most often the secret itself, pasted in the wrong place). Errors name
//! the key and never repeat the value.

use toml::{Table, Value};

use super::load::ConfigError;

/// Names of things that hold secrets: the one list that config checks and log scrubbing
/// share, each with its own [`NameMatch`].
const SECRET_NAMES: &[&str] = &[
    "api_key",
    "apikey",
    "api-key",
    "token",
    "password",
    "passwd",
    "secret",
    "dsn",
    "authorization",
    "cookie",
];

/// How a name is matched against [`SECRET_NAMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameMatch {
    /// The whole name, or its end after `_` (`api_key`, `openai_api_key`; not `max_tokens`):
    /// configuration keys, which are refused when they match.
    Key,
    /// The name's end (`x-api-key`, `bot_token`): the key before a value in free text.
    /// `authorization` and `cookie` are left to the shape rules there: what follows them is a
    /// scheme or a cookie's name (`Authorization: Bearer …`), not the secret itself.
    Suffix,
    /// Anywhere in the name (`session_cookie_v2`): structured log fields, redacted.
    Anywhere,
}

/// Whether `name` names a secret, matched as `how` says (case-insensitively).
pub fn names_secret(name: &str, how: NameMatch) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_NAMES.iter().any(|s| match how {
        NameMatch::Key => {
            name == *s || name.strip_suffix(s).is_some_and(|head| head.ends_with('_'))
        }
        NameMatch::Suffix => !matches!(*s, "authorization" | "cookie") && name.ends_with(s),
        NameMatch::Anywhere => name.contains(s),
    })
}

/// Prefixes of well-known API key formats (OpenAI, Stripe-style, Slack, GitHub, GitLab).
const KEY_PREFIXES: &[&str] = &[
    "sk-",
    "sk_",
    "rk_",
    "xoxb-",
    "xoxp-",
    "ghp_",
    "github_pat_",
    "glpat-",
];

fn is_base64url(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Whether a run of token characters (no spaces) looks like a secret on its own: a well-known
/// API key prefix, a Discord bot token or a JWT. Shared by config checks and log scrubbing.
pub fn looks_like_secret(run: &str) -> bool {
    let run = run.trim_end_matches(['.', '/']);
    if KEY_PREFIXES
        .iter()
        .any(|p| run.starts_with(p) && run.len() >= p.len() + 12)
    {
        return true;
    }
    let parts: Vec<&str> = run.split('.').collect();
    if parts.len() == 3 && parts.iter().all(|p| is_base64url(p)) {
        // Discord bot tokens: id.timestamp.hmac; JWTs: header.payload.signature.
        let discord = parts[0].len() >= 18 && parts[1].len() >= 5 && parts[2].len() >= 20;
        let jwt = parts[0].starts_with("eyJ") && parts[1].len() >= 8 && parts[2].len() >= 8;
        return discord || jwt;
    }
    false
}

fn names_secret_key(key: &str) -> bool {
    names_secret(key, NameMatch::Key)
}

/// Whether `value` can be an environment variable's name (`OPENAI_API_KEY`).
pub fn is_variable_name(value: &str) -> bool {
    let mut chars = value.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Walks one layer (`origin` names its file or variable) and records every secret found.
pub(super) fn find_secrets(
    origin: &str,
    prefix: &str,
    table: &Table,
    errors: &mut Vec<ConfigError>,
) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let secret_shaped = matches!(v, Value::String(s) if looks_like_secret(s.trim()));
        match v {
            Value::String(s) if k.ends_with("_env") && !s.is_empty() && !is_variable_name(s) => {
                errors.push(ConfigError::NotAVariable {
                    origin: origin.to_string(),
                    key: key.clone(),
                });
            }
            Value::String(_) if k.ends_with("_env") => {}
            _ if names_secret_key(k) || secret_shaped => errors.push(ConfigError::SecretInFile {
                origin: origin.to_string(),
                key: key.clone(),
            }),
            Value::Table(inner) => find_secrets(origin, &key, inner, errors),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_list_three_ways_of_matching() {
        use NameMatch::{Anywhere, Key, Suffix};
        for (name, key, suffix, anywhere) in [
            ("api_key", true, true, true),
            ("OPENAI_API_KEY", true, true, true),
            ("x-api-key", false, true, true),
            ("max_tokens", false, false, true),
            ("token_env", false, false, true),
            ("Authorization", true, false, true),
            ("session_cookie_v2", false, false, true),
            ("voice", false, false, false),
        ] {
            assert_eq!(names_secret(name, Key), key, "{name} as a key");
            assert_eq!(names_secret(name, Suffix), suffix, "{name} as a suffix");
            assert_eq!(names_secret(name, Anywhere), anywhere, "{name} anywhere");
        }
    }

    fn found(text: &str) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        find_secrets("f.toml", "", &text.parse::<Table>().unwrap(), &mut errors);
        errors
    }

    #[test]
    fn secrets_are_found_by_name_and_by_shape_and_never_echoed() {
        let key = "sk-live-0123456789abcdefghij";
        let errors = found(&format!(
            "[providers.x.settings]\nopenai_api_key = \"hello\"\nheader = \"{key}\"\n\
             [agent]\napi_key_env = \"{key}\"\n"
        ));
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(text[0].contains("`agent.api_key_env` must name an environment variable"));
        assert!(text[1].contains("`providers.x.settings.header` looks like a secret"));
        assert!(text[2].contains("`providers.x.settings.openai_api_key` looks like a secret"));
        assert!(text.iter().all(|t| !t.contains("sk-live")), "{text:?}");
    }

    #[test]
    fn ordinary_settings_pass() {
        let errors = found(
            "[providers.x.settings]\nmax_tokens = 200\napi_key_env = \"OPENAI_API_KEY\"\n\
             token_env = \"\"\nsha256 = \"0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9\"\n\
             base_url = \"https://api.openai.com/v1\"\nvoice = \"en-us+f3\"\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
    }
}
