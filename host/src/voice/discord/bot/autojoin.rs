//! Join on start: the voice channel a server is given (`discord.auto_join_channels`, or the
//! server's own `auto_join_channel` setting), joined by the bot itself when the server loads
//! (at start, and again when the gateway had to identify anew), once shortly after a voice
//! connection was lost for good, and when someone enters it while the bot is in no call in
//! that server. Nobody has to type `/voice join`, which other bots cannot do:
//! `scripts/discord-smoke` relies on it.
//!
//! What it will not do, each said in the log with the channel and the reason: join a channel
//! id that is in none of the servers this process serves, a stage channel, a channel that is
//! not a voice channel, or one where the bot lacks View Channel, Connect or Speak. A moderator
//! moving the bot elsewhere wins (the session follows the bot); a moderator disconnecting it
//! holds until someone enters the channel again.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serenity::all::{Cache, ChannelId, Context, GuildId};

use super::{join_refusal, Handler, SessionContext};
use crate::guild::GuildSettings;
use std::sync::Arc;

/// How long a server that loads before READY was handled waits for it.
const READY_WAIT: Duration = Duration::from_secs(10);
/// How long after a voice connection lost for good (songbird's resume and the session's own
/// rejoins failed) the bot tries its auto-join channel again.
pub(super) const REJOIN_AFTER_LOST: Duration = Duration::from_secs(10);

/// Why the bot joins by itself, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trigger {
    /// The server loaded (GUILD_CREATE): at start, or after the gateway identified anew.
    Loaded,
    /// Someone entered the channel while the bot was in no call in the server.
    Arrival,
    /// The voice connection was lost for good a moment ago.
    Lost,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Loaded => "the server loaded",
            Trigger::Arrival => "someone entered it",
            Trigger::Lost => "the voice connection was lost",
        }
    }
}

/// Where the bot joins by itself in a server, and which key chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Target {
    pub channel: u64,
    /// `true`: the server's own `auto_join_channel` setting; `false`: the config's list.
    pub own: bool,
}

impl Target {
    fn key(self) -> &'static str {
        match self.own {
            true => "this server's auto_join_channel setting",
            false => "discord.auto_join_channels",
        }
    }
}

/// The channel a server auto-joins: its own setting when it set one, else the first
/// configured channel that is one of its channels (`in_guild`).
pub(super) fn target(
    configured: &[u64],
    own: Option<u64>,
    in_guild: impl Fn(u64) -> bool,
) -> Option<Target> {
    if let Some(channel) = own {
        return Some(Target { channel, own: true });
    }
    configured
        .iter()
        .copied()
        .find(|c| in_guild(*c))
        .map(|channel| Target {
            channel,
            own: false,
        })
}

/// Configured channels found in none of `guilds`' channels: ids that are wrong, or in a
/// server the bot was never invited to (or another shard process serves).
pub(super) fn unknown(configured: &[u64], known: impl Fn(u64) -> bool) -> Vec<u64> {
    configured.iter().copied().filter(|c| !known(*c)).collect()
}

fn has_channel(cache: &Cache, guild: GuildId, channel: u64) -> bool {
    cache
        .guild(guild)
        .is_some_and(|g| g.channels.contains_key(&ChannelId::new(channel.max(1))))
}

fn channel_name(cache: &Cache, guild: GuildId, channel: ChannelId) -> String {
    cache
        .guild(guild)
        .and_then(|g| g.channels.get(&channel).map(|c| c.name.clone()))
        .unwrap_or_else(|| channel.to_string())
}

/// After a voice connection lost for good: one auto-join attempt, [`REJOIN_AFTER_LOST`]
/// later (a server without an auto-join channel is left alone).
pub(super) async fn after_lost(handler: Handler, guild: GuildId) {
    tokio::time::sleep(REJOIN_AFTER_LOST).await;
    let ctx = handler
        .state
        .gateway
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if let Some(ctx) = ctx {
        handler.auto_join(&ctx, guild, Trigger::Lost).await;
    }
}

impl Handler {
    /// Joins `guild`'s auto-join channel if it has one and the bot is in no call there.
    pub(super) async fn auto_join(&self, ctx: &Context, guild: GuildId, trigger: Trigger) {
        let Some(sctx) = self.wait_ready().await else {
            return;
        };
        if self.busy(guild) {
            return;
        }
        let settings = self.state.store.settings(guild.get()).await;
        let Some(target) = self.target_of(&ctx.cache, guild, &settings) else {
            return;
        };
        let channel = ChannelId::new(target.channel.max(1));
        let name = channel_name(&ctx.cache, guild, channel);
        if target.own && !has_channel(&ctx.cache, guild, target.channel) {
            tracing::error!(
                %guild, channel = target.channel,
                "auto-join: cannot join channel {}: it is not one of this server's channels \
                 (set by {}; change it with /voice-settings)",
                target.channel, target.key()
            );
            return;
        }
        if let Some(refusal) = join_refusal(&ctx.cache, guild, channel, sctx.bot) {
            tracing::error!(
                %guild, channel = target.channel,
                "auto-join: cannot join 🔊{name}: {} (set by {})",
                refusal.reason(), target.key()
            );
            return;
        }
        match self.connect(ctx, &sctx, (guild, channel, &name)).await {
            Ok(()) => tracing::info!(
                %guild, channel = target.channel,
                "auto-join: joined 🔊{name} ({}; set by {})",
                trigger.as_str(), target.key()
            ),
            Err(e) => tracing::error!(
                %guild, channel = target.channel,
                "auto-join: joining 🔊{name} failed: {e} (set by {}; tried again when the \
                 gateway reconnects or someone enters it)",
                target.key()
            ),
        }
    }

    /// Someone entered `channel`: the bot joins if it is the server's auto-join channel and
    /// the bot is in no call there.
    pub(super) async fn auto_join_on_arrival(
        &self,
        ctx: &Context,
        guild: GuildId,
        channel: ChannelId,
    ) {
        if self.busy(guild) {
            return;
        }
        let settings = self.state.store.settings(guild.get()).await;
        if self
            .target_of(&ctx.cache, guild, &settings)
            .is_some_and(|t| t.channel == channel.get())
        {
            self.auto_join(ctx, guild, Trigger::Arrival).await;
        }
    }

    /// Once every shard of this process has loaded its servers: the configured channels that
    /// are in none of them, reported.
    pub(super) fn check_auto_join_channels(&self, ctx: &Context) {
        let loaded = self.state.shards_loaded.fetch_add(1, Ordering::SeqCst) + 1;
        let expected = match self.state.config.shards {
            Some(crate::config::shards::ShardSpec::Range(r)) => r.last - r.first + 1,
            _ => ctx.cache.shard_count(),
        };
        if loaded != expected {
            return;
        }
        let guilds = ctx.cache.guilds();
        let known = |c: u64| guilds.iter().any(|g| has_channel(&ctx.cache, *g, c));
        for channel in unknown(&self.state.config.auto_join_channels, known) {
            tracing::error!(
                channel,
                "auto-join: discord.auto_join_channels holds {channel}, which is in none of \
                 the {} server(s) this process serves: check the id (right-click the voice \
                 channel → Copy Channel ID) and that the bot was invited to its server",
                guilds.len()
            );
        }
    }

    fn target_of(&self, cache: &Cache, guild: GuildId, settings: &GuildSettings) -> Option<Target> {
        target(
            &self.state.config.auto_join_channels,
            settings.auto_join_channel,
            |c| has_channel(cache, guild, c),
        )
    }

    /// A session or a join under way in `guild`.
    fn busy(&self, guild: GuildId) -> bool {
        self.state.session(guild).is_some()
            || self
                .state
                .joining
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(&guild)
    }

    /// The session context, waiting a moment for READY's handler (serenity runs event
    /// handlers concurrently, so a server can load before it has run).
    async fn wait_ready(&self) -> Option<Arc<SessionContext>> {
        let deadline = tokio::time::Instant::now() + READY_WAIT;
        loop {
            if let Some(ctx) = self.session_ctx() {
                return Some(ctx);
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!("auto-join: the gateway's READY was not handled in time");
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_servers_own_setting_wins_over_the_configured_channels() {
        let mine = |c: u64| c == 7 || c == 9;
        assert_eq!(
            target(&[5, 9, 7], None, mine),
            Some(Target {
                channel: 9,
                own: false
            })
        );
        assert_eq!(
            target(&[9], Some(42), mine),
            Some(Target {
                channel: 42,
                own: true
            })
        );
        assert_eq!(target(&[5], None, mine), None);
        assert_eq!(target(&[], None, mine), None);
    }

    #[test]
    fn configured_channels_in_no_server_are_found() {
        assert_eq!(unknown(&[1, 2, 3], |c| c == 2), vec![1, 3]);
        assert!(unknown(&[], |_| false).is_empty());
    }
}
