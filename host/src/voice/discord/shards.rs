//! `discord.shards`: which of the bot's gateway shards this process runs.

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
}
