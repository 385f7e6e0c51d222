//! Scrubbing for every text that leaves the process: log lines and Sentry events.
//!
//! **Architecture Invariant:** no secret in a log line or an error report. Code never logs a
//! secret on purpose; this is the net under it, for a provider or library that echoes one.
//! Two rules apply:
//! - known values: the current value of every secret variable the configuration names
//!   (`*_env` keys), of `DISCORD_BOT_TOKEN`-style variables (`*_TOKEN`, `*_KEY`, `*_SECRET`,
//!   `*_PASSWORD`), and of `SENTRY_DSN`, replaced wherever they appear;
//! - shapes: `Bearer …`, `sk-…`-style API keys, Discord bot tokens and JWTs (three dotted
//!   base64 parts), `token=…`-style pairs, and passwords in URLs.
//!
//! Structured data (Sentry events) also loses every field named like a secret or like speech
//! (`transcript`, `reply`, `text`…): transcripts never leave the host in an error report.

use std::borrow::Cow;

use serde_json::Value;

use crate::config::{collect_env_keys, looks_like_secret, names_secret, Config, NameMatch};

/// What replaces a secret.
pub(crate) const REDACTED: &str = "[redacted]";

/// Known secret values shorter than this are not searched for (they would match ordinary
/// words); the shape rules still apply.
const MIN_SECRET_LEN: usize = 6;

/// Field names whose values are what someone said or what the bot answered.
const SPEECH_FIELDS: &[&str] = &[
    "transcript",
    "reply",
    "text",
    "heard",
    "said",
    "utterance",
    "prompt",
    "content",
];

/// Values of variables that only look secret by name must be at least this long.
const MIN_GUESSED_SECRET_LEN: usize = 12;

/// Suffixes of environment variable names whose values are treated as secrets.
const SECRET_VAR_SUFFIXES: &[&str] = &["_TOKEN", "_KEY", "_SECRET", "_PASSWORD", "_DSN"];

/// Replaces secrets (and, in structured data, speech) with [`REDACTED`].
#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    /// Known secret values, longest first (so a value containing another is replaced whole).
    secrets: Vec<String>,
}

impl Scrubber {
    /// A scrubber for these known secret values (plus the shape rules).
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = values
            .into_iter()
            .map(|v| v.trim().to_string())
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Scrubber { secrets }
    }

    /// A scrubber knowing the values of the secret variables `config` names and of
    /// secret-looking variables in `vars` (the process environment, in practice).
    pub fn for_config(config: &Config, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let named = secret_variables(config);
        let values = vars.into_iter().filter_map(|(name, value)| {
            let upper = name.to_ascii_uppercase();
            if named.contains(&name) || upper == "SENTRY_DSN" {
                return Some(value);
            }
            // Found by name only: a short value (`LOG_KEY=info`) is more likely a word than a
            // secret, and replacing it everywhere would garble the logs.
            let by_name = SECRET_VAR_SUFFIXES.iter().any(|s| upper.ends_with(s));
            (by_name && value.trim().len() >= MIN_GUESSED_SECRET_LEN).then_some(value)
        });
        Scrubber::new(values)
    }

    /// How many known values it looks for.
    #[cfg(test)]
    pub(crate) fn known_values(&self) -> usize {
        self.secrets.len()
    }

    /// `text` with every secret replaced.
    pub(crate) fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
        match scrub_shapes(&out) {
            Some(scrubbed) => Cow::Owned(scrubbed),
            None => out,
        }
    }

    /// Scrubs a JSON value in place: secret- and speech-named fields are replaced whole,
    /// every other string is scrubbed. `skip` names fields left as they are (identifiers).
    pub(crate) fn scrub_json(&self, value: &mut Value, skip: &[&str]) {
        match value {
            Value::String(s) => {
                if let Cow::Owned(scrubbed) = self.scrub(s) {
                    *s = scrubbed;
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.scrub_json(item, skip);
                }
            }
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    if skip.contains(&key.as_str()) {
                        continue;
                    }
                    if is_sensitive_field(key) && !v.is_null() {
                        *v = Value::String(REDACTED.into());
                    } else {
                        self.scrub_json(v, skip);
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// Whether a field of this name holds a secret or speech.
pub(crate) fn is_sensitive_field(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SPEECH_FIELDS.contains(&lower.as_str()) || names_secret(&lower, NameMatch::Anywhere)
}

/// The environment variables the configuration names as holding secrets.
fn secret_variables(config: &Config) -> Vec<String> {
    let mut vars = vec![config.discord.token_env.clone()];
    vars.extend(config.agent.api_key_env.clone());
    vars.extend(config.ops.token_env.clone());
    let mut keys = Vec::new();
    for (id, provider) in &config.providers {
        collect_env_keys(
            &format!("providers.{id}.settings"),
            &provider.settings,
            &mut keys,
        );
    }
    vars.extend(keys.into_iter().map(|(_, var)| var));
    vars
}

fn is_token_char(c: char) -> bool {
    // Not '=': `api_key=value` must split into the key and the value.
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '/' | '~')
}

/// Whether the text just before a run (`api_key=`, `"token": "`) names a secret.
fn preceded_by_secret_key(before: &str) -> bool {
    let trimmed = before.trim_end_matches(['"', '\'']);
    let trimmed = trimmed.trim_end();
    let Some(rest) = trimmed
        .strip_suffix('=')
        .or_else(|| trimmed.strip_suffix(':'))
    else {
        return false;
    };
    let rest = rest.trim_end().trim_end_matches(['"', '\'']);
    let key: String = rest
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    !key.is_empty() && names_secret(&key, NameMatch::Suffix)
}

/// Applies the shape rules; `None` when nothing matched.
fn scrub_shapes(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut last = 0;
    let mut changed = false;
    let mut iter = text.char_indices().peekable();
    while let Some((start, c)) = iter.next() {
        if !is_token_char(c) {
            continue;
        }
        let mut end = start + c.len_utf8();
        while let Some(&(i, c)) = iter.peek() {
            if !is_token_char(c) {
                break;
            }
            end = i + c.len_utf8();
            iter.next();
        }
        let run = &text[start..end];
        let before = &text[last..start];
        let whole_before = &text[..start];
        let after_scheme = whole_before.ends_with(' ')
            && whole_before
                .trim_end()
                .rsplit(|c: char| !c.is_ascii_alphabetic())
                .next()
                .is_some_and(|w| {
                    w.eq_ignore_ascii_case("bearer") || w.eq_ignore_ascii_case("basic")
                });
        if after_scheme || looks_like_secret(run) || preceded_by_secret_key(whole_before) {
            out.push_str(before);
            out.push_str(REDACTED);
            last = end;
            changed = true;
        }
    }
    // Passwords in URLs: the runs above stop at ':' and '@', so this looks at the whole text.
    if !changed {
        return scrub_url_userinfo(text);
    }
    out.push_str(&text[last..]);
    Some(scrub_url_userinfo(&out).unwrap_or(out))
}

/// `scheme://userinfo@host` → `scheme://[redacted]@host`; `None` when there is none.
fn scrub_url_userinfo(text: &str) -> Option<String> {
    if !text.contains("://") {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(idx) = rest.find("://") {
        let (head, tail) = rest.split_at(idx + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(at) if at > 0 && !authority[..at].starts_with(REDACTED) => {
                out.push_str(REDACTED);
                out.push_str(&authority[at..]);
                changed = true;
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrubber() -> Scrubber {
        Scrubber::new(["hunter2-very-secret".to_string(), "abc".to_string()])
    }

    #[test]
    fn known_values_are_replaced_wherever_they_appear() {
        let s = scrubber();
        assert_eq!(s.scrub("key=xhunter2-very-secretx!"), "key=x[redacted]x!");
        // Too short to search for: ordinary words would match.
        assert_eq!(s.scrub("abc def"), "abc def");
        assert_eq!(s.known_values(), 1);
    }

    #[test]
    fn secret_shapes_are_replaced() {
        let s = Scrubber::default();
        let cases = [
            (
                "Authorization: Bearer abc.def-ghi",
                "Authorization: Bearer [redacted]",
            ),
            (
                "using sk-proj-1234567890abcdefXYZ now",
                "using [redacted] now",
            ),
            (
                "token MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0123 bad",
                "token [redacted] bad",
            ),
            (
                "jwt eyJhbGciOi.eyJzdWIiOiIx.c2lnbmF0dXJl ok",
                "jwt [redacted] ok",
            ),
            ("api_key=plainvalue&x=1", "api_key=[redacted]&x=1"),
            ("{\"token\": \"plainvalue\"}", "{\"token\": \"[redacted]\"}"),
            (
                "posting to https://user:pass@example.com/x",
                "posting to https://[redacted]@example.com/x",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(s.scrub(input), expected, "{input}");
        }
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let s = Scrubber::default();
        for text in [
            "turn finished: outcome Completed, voice_to_voice_ms 812.5",
            "provider `espeak`: timeout error: synthesize took longer than 10000 ms",
            "version 0.1.0, event 9f1c3b2a4d5e6f708192a3b4c5d6e7f8",
            "https://example.com/api/1/envelope/",
            "the key is not set",
        ] {
            assert!(matches!(s.scrub(text), Cow::Borrowed(_)), "{text}");
        }
    }

    #[test]
    fn json_loses_secret_and_speech_fields() {
        let s = scrubber();
        let mut v = serde_json::json!({
            "event_id": "9f1c3b2a4d5e6f708192a3b4c5d6e7f8",
            "message": "failed with hunter2-very-secret",
            "extra": {"transcript": "my card number is 1234", "api_key": "x", "count": 3,
                      "nested": [{"reply": "sure"}, "Bearer zzz"]},
        });
        s.scrub_json(&mut v, &["event_id"]);
        assert_eq!(v["message"], "failed with [redacted]");
        assert_eq!(v["extra"]["transcript"], REDACTED);
        assert_eq!(v["extra"]["api_key"], REDACTED);
        assert_eq!(v["extra"]["count"], 3);
        assert_eq!(v["extra"]["nested"][0]["reply"], REDACTED);
        assert_eq!(v["extra"]["nested"][1], "Bearer [redacted]");
        assert_eq!(v["event_id"], "9f1c3b2a4d5e6f708192a3b4c5d6e7f8");
    }

    #[test]
    fn config_names_the_variables_to_watch() {
        let config: Config = toml::from_str(
            "[agent]\napi_key_env = \"MY_AGENT_CRED\"\n\
             [providers.cloud.settings]\nkey_env = \"CLOUD_CRED\"\n",
        )
        .unwrap();
        let vars = [
            ("MY_AGENT_CRED", "agent-credential-1"),
            ("CLOUD_CRED", "cloud-credential-2"),
            ("DISCORD_BOT_TOKEN", "discord-credential-3"),
            ("OTHER_API_KEY", "other-credential-4"),
            ("HOME", "/root/not-a-secret"),
            ("LOG_KEY", "verbose"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let s = Scrubber::for_config(&config, vars);
        assert_eq!(s.known_values(), 4);
        let line = "agent-credential-1 cloud-credential-2 discord-credential-3 other-credential-4 /root/not-a-secret";
        assert_eq!(
            s.scrub(line),
            "[redacted] [redacted] [redacted] [redacted] /root/not-a-secret"
        );
    }
}
