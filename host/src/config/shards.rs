//! `discord.shards`: which of the bot's gateway shards this process runs: a fixed range
//! (`"0-3/16"`), or `"auto"`/`"auto/<total>"`, where a process of a shard cluster (a
//! Kubernetes StatefulSet) works out its own slice from how many processes there are
//! (`SHARD_PROCESSES`) and which one it is (`POD_ORDINAL`, else the `-<n>` that ends its
//! hostname, as a StatefulSet's pod names do).

use std::fmt;

/// A contiguous range of shards out of a total: `first-last/total` or `id/total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardRange {
    /// First shard id run here.
    pub first: u32,
    /// Last shard id run here (inclusive).
    pub last: u32,
    /// The bot's total shard count.
    pub total: u32,
}

/// Why a shard range does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a shard range: {reason} (write `first-last/total`, like \"0-3/16\", or `id/total`)")]
pub struct ShardRangeError {
    text: String,
    reason: &'static str,
}

impl ShardRange {
    /// Parses `"0-3/16"` or `"2/16"`.
    pub fn parse(text: &str) -> Result<ShardRange, ShardRangeError> {
        let err = |reason| ShardRangeError {
            text: text.to_string(),
            reason,
        };
        let (range, total) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| err("no `/total`"))?;
        let number = |s: &str| s.trim().parse::<u32>().map_err(|_| err("not a number"));
        let total = number(total)?;
        let (first, last) = match range.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => {
                let id = number(range)?;
                (id, id)
            }
        };
        if total == 0 {
            return Err(err("the total must be at least 1"));
        }
        if first > last {
            return Err(err("the first shard is after the last"));
        }
        if last >= total {
            return Err(err("shard ids run from 0 to total - 1"));
        }
        Ok(ShardRange { first, last, total })
    }

    /// How many shards run here.
    pub fn count(&self) -> u32 {
        self.last - self.first + 1
    }

    /// The shard a guild belongs to: `(guild_id >> 22) % total`, Discord's rule.
    pub fn shard_of(guild_id: u64, total: u32) -> u32 {
        ((guild_id >> 22) % u64::from(total.max(1))) as u32
    }
}

/// The variable holding the number of processes that share the shards.
pub(crate) const PROCESSES_VAR: &str = "SHARD_PROCESSES";
/// The variable holding this process's ordinal (0-based); optional.
pub(crate) const ORDINAL_VAR: &str = "POD_ORDINAL";
/// Where the ordinal is read from when [`ORDINAL_VAR`] is unset: `openclaw-voice-2` is 2.
pub(crate) const HOSTNAME_VAR: &str = "HOSTNAME";

/// `discord.shards` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSpec {
    /// A fixed range.
    Range(ShardRange),
    /// `"auto"` (one shard per process) or `"auto/<total>"` (`total` shards split over the
    /// processes).
    Auto {
        /// The bot's total shard count; `None`: as many as there are processes.
        total: Option<u32>,
    },
}

impl ShardSpec {
    /// Parses a range, `"auto"` or `"auto/16"`.
    pub fn parse(text: &str) -> Result<ShardSpec, ShardRangeError> {
        let trimmed = text.trim();
        let Some(rest) = trimmed.strip_prefix("auto") else {
            return ShardRange::parse(text).map(ShardSpec::Range);
        };
        let err = |reason| ShardRangeError {
            text: text.to_string(),
            reason,
        };
        match rest.strip_prefix('/') {
            None if rest.is_empty() => Ok(ShardSpec::Auto { total: None }),
            None => Err(err("`auto` takes `/total` or nothing")),
            Some(total) => match total.trim().parse::<u32>() {
                Ok(0) => Err(err("the total must be at least 1")),
                Ok(total) => Ok(ShardSpec::Auto { total: Some(total) }),
                Err(_) => Err(err("not a number")),
            },
        }
    }

    /// The range this process runs: a fixed range as it is; `auto` from [`PROCESSES_VAR`] and
    /// the ordinal ([`ORDINAL_VAR`], else [`HOSTNAME_VAR`]) read through `var`. Returns the
    /// range and how it was found, for the log.
    pub(crate) fn resolve(
        self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<(ShardRange, String), AutoShardError> {
        let total = match self {
            ShardSpec::Range(r) => return Ok((r, "discord.shards".into())),
            ShardSpec::Auto { total } => total,
        };
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let processes_text = set(PROCESSES_VAR).ok_or(AutoShardError::NoProcesses)?;
        let processes = match processes_text.trim().parse::<u32>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(AutoShardError::NotANumber {
                    var: PROCESSES_VAR,
                    value: processes_text,
                })
            }
        };
        let (ordinal, from) = match set(ORDINAL_VAR) {
            Some(text) => {
                let n = text
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| AutoShardError::NotANumber {
                        var: ORDINAL_VAR,
                        value: text.clone(),
                    })?;
                (n, ORDINAL_VAR.to_string())
            }
            None => {
                let host = set(HOSTNAME_VAR).unwrap_or_default();
                let n = ordinal_of_hostname(&host).ok_or_else(|| AutoShardError::NoOrdinal {
                    hostname: host.clone(),
                })?;
                (n, format!("{HOSTNAME_VAR} {host}"))
            }
        };
        let total = total.unwrap_or(processes);
        if ordinal >= processes {
            return Err(AutoShardError::OrdinalTooLarge {
                ordinal,
                from,
                processes,
            });
        }
        if total < processes {
            return Err(AutoShardError::TooFewShards { total, processes });
        }
        let range = ShardRange::split(ordinal, processes, total);
        Ok((
            range,
            format!("auto: process {ordinal} ({from}) of {processes} ({PROCESSES_VAR})"),
        ))
    }
}

/// The `n` in a hostname ending in `-<n>` (a StatefulSet pod's name).
pub(crate) fn ordinal_of_hostname(host: &str) -> Option<u32> {
    let (_, n) = host.trim().rsplit_once('-')?;
    if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// Why `discord.shards = "auto"` cannot pick this process's shards.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AutoShardError {
    /// `SHARD_PROCESSES` is unset.
    #[error(
        "`auto` needs the environment variable {PROCESSES_VAR}: the number of processes sharing \
         the shards (the StatefulSet's replicas)"
    )]
    NoProcesses,
    /// A variable is not a number.
    #[error("environment variable {var} must be a whole number (at least 1 for {PROCESSES_VAR}), got `{value}`")]
    NotANumber {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// No ordinal anywhere.
    #[error(
        "`auto` needs this process's ordinal: set {ORDINAL_VAR}, or run it where the hostname \
         ends in `-<ordinal>` (a StatefulSet pod); {HOSTNAME_VAR} is `{hostname}`"
    )]
    NoOrdinal {
        /// The hostname seen.
        hostname: String,
    },
    /// The ordinal is past the last process.
    #[error("the ordinal {ordinal} (from {from}) must be below {PROCESSES_VAR} = {processes}")]
    OrdinalTooLarge {
        /// The ordinal.
        ordinal: u32,
        /// Where it came from.
        from: String,
        /// The process count.
        processes: u32,
    },
    /// Fewer shards than processes.
    #[error("`auto/{total}` has fewer shards than {PROCESSES_VAR} = {processes} processes: some would run none")]
    TooFewShards {
        /// The shard total.
        total: u32,
        /// The process count.
        processes: u32,
    },
}

impl ShardRange {
    /// Process `ordinal`'s share when `processes` split `total` shards into contiguous ranges
    /// as evenly as they go (the first `total % processes` get one more). Needs
    /// `ordinal < processes <= total`.
    pub fn split(ordinal: u32, processes: u32, total: u32) -> ShardRange {
        let processes = processes.max(1);
        let base = total / processes;
        let extra = total % processes;
        let first = ordinal * base + ordinal.min(extra);
        let count = base + u32::from(ordinal < extra);
        ShardRange {
            first,
            last: first + count.max(1) - 1,
            total,
        }
    }
}

impl std::str::FromStr for ShardSpec {
    type Err = ShardRangeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ShardSpec::parse(text)
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShardSpec::Range(r) => r.fmt(f),
            ShardSpec::Auto { total: None } => f.write_str("auto"),
            ShardSpec::Auto { total: Some(t) } => write!(f, "auto/{t}"),
        }
    }
}

impl fmt::Display for ShardRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}/{}", self.first, self.last, self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_bad_ones_say_why() {
        assert_eq!(
            ShardRange::parse("0-3/16").unwrap(),
            ShardRange {
                first: 0,
                last: 3,
                total: 16
            }
        );
        assert_eq!(ShardRange::parse("2/16").unwrap().count(), 1);
        for bad in ["", "3", "4-2/8", "0-8/8", "0/0", "a-b/c"] {
            let e = ShardRange::parse(bad).unwrap_err().to_string();
            assert!(e.contains("is not a shard range"), "{bad}: {e}");
        }
        assert_eq!(ShardRange::shard_of(81_384_788_765_712_384, 1), 0);
        assert_eq!(ShardRange::shard_of(5 << 22, 4), 1);
    }

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn splits_cover_every_shard_once() {
        for total in 1..=40 {
            for processes in 1..=total.min(9) {
                let mut next = 0;
                for ordinal in 0..processes {
                    let r = ShardRange::split(ordinal, processes, total);
                    assert_eq!(
                        (r.first, r.total),
                        (next, total),
                        "{ordinal}/{processes}/{total}"
                    );
                    assert!(r.count() == total / processes || r.count() == total / processes + 1);
                    next = r.last + 1;
                }
                assert_eq!(next, total, "{processes} processes, {total} shards");
            }
        }
        assert_eq!(ShardRange::split(0, 3, 4).to_string(), "0-1/4");
        assert_eq!(ShardRange::split(2, 3, 4).to_string(), "3-3/4");
    }

    #[test]
    fn auto_takes_the_ordinal_from_the_variable_or_the_hostname() {
        let auto16 = ShardSpec::parse("auto/16").unwrap();
        assert_eq!(auto16, ShardSpec::Auto { total: Some(16) });
        let (r, how) = auto16
            .resolve(vars(&[("SHARD_PROCESSES", "4"), ("POD_ORDINAL", "1")]))
            .unwrap();
        assert_eq!(r.to_string(), "4-7/16");
        assert!(how.contains("POD_ORDINAL"), "{how}");
        let (r, how) = auto16
            .resolve(vars(&[
                ("SHARD_PROCESSES", "4"),
                ("HOSTNAME", "openclaw-voice-3"),
            ]))
            .unwrap();
        assert_eq!(r.to_string(), "12-15/16");
        assert!(how.contains("openclaw-voice-3"), "{how}");
        // An empty POD_ORDINAL (a downward-API label that is missing) falls back too.
        let (r, _) = ShardSpec::parse("auto")
            .unwrap()
            .resolve(vars(&[
                ("SHARD_PROCESSES", "3"),
                ("POD_ORDINAL", ""),
                ("HOSTNAME", "bot-2"),
            ]))
            .unwrap();
        assert_eq!(r.to_string(), "2-2/3");
        assert_eq!(
            ShardSpec::parse("0-3/16").unwrap(),
            ShardSpec::Range(ShardRange::parse("0-3/16").unwrap())
        );
    }

    #[test]
    fn auto_errors_name_the_variable() {
        for bad in ["auto/0", "auto/x", "autox", "auto-3"] {
            assert!(ShardSpec::parse(bad).is_err(), "{bad}");
        }
        let auto = ShardSpec::parse("auto/8").unwrap();
        for (env, needle) in [
            (&[][..], "SHARD_PROCESSES"),
            (
                &[("SHARD_PROCESSES", "two")][..],
                "SHARD_PROCESSES must be a whole number",
            ),
            (&[("SHARD_PROCESSES", "0")][..], "got `0`"),
            (&[("SHARD_PROCESSES", "2")][..], "set POD_ORDINAL"),
            (
                &[("SHARD_PROCESSES", "2"), ("HOSTNAME", "laptop")][..],
                "`laptop`",
            ),
            (
                &[("SHARD_PROCESSES", "2"), ("POD_ORDINAL", "x")][..],
                "POD_ORDINAL must be",
            ),
            (
                &[("SHARD_PROCESSES", "2"), ("POD_ORDINAL", "2")][..],
                "below SHARD_PROCESSES = 2",
            ),
            (
                &[("SHARD_PROCESSES", "9"), ("POD_ORDINAL", "0")][..],
                "fewer shards",
            ),
        ] {
            let e = auto.resolve(vars(env)).unwrap_err().to_string();
            assert!(e.contains(needle), "{env:?}: {e}");
        }
        assert_eq!(ordinal_of_hostname("openclaw-voice-12"), Some(12));
        assert_eq!(ordinal_of_hostname("openclaw-voice"), None);
        assert_eq!(ordinal_of_hostname("x-"), None);
    }
}
