//! The bot: serenity's gateway client with songbird registered, the `/voice` commands, and
//! the per-guild sessions.
//!
//! Intents: GUILDS (guilds, channels, roles, members in voice) and GUILD_VOICE_STATES (who is
//! in which channel). The bot never deafens itself: it joins to listen.

mod autojoin;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::{Duration, Instant};

use serenity::all::{
    Cache, ChannelId, ChannelType, Client, CommandInteraction, ConnectionStage, Context,
    CreateInteractionResponse, CreateInteractionResponseMessage, EditInteractionResponse,
    EventHandler, GatewayIntents, Guild, GuildId, Http, Interaction, Member, Permissions, Ready,
    ResumedEvent, RoleId, ShardStageUpdateEvent, UserId, VoiceState,
};
use songbird::driver::{Channels, DecodeConfig, DecodeMode, MixMode, SampleRate};
use songbird::{SerenityInit, Songbird};

use super::api::{Api, BotToken};
use super::session::{self, EndReason, GuildSession, SessionContext};
use super::slash::Subcommand;
use super::{BotObserver, DiscordError, ShardSpec};
use crate::config::DiscordConfig;
use crate::guild::GuildStore;
use crate::pipeline::SessionDeps;

/// How long `/voice leave` lets a turn in progress finish.
const LEAVE_GRACE: Duration = Duration::from_millis(200);

/// The intents the bot asks for.
pub fn intents() -> GatewayIntents {
    GatewayIntents::GUILDS | GatewayIntents::GUILD_VOICE_STATES
}

/// songbird's configuration: decode received audio to 48 kHz stereo, mix and encode what we
/// send in mono (speech; half the Opus encoding work of stereo), and give up joining after
/// 10 s.
///
/// Why 48 kHz stereo, not the pipeline's 16 kHz mono: songbird 0.6.1 conceals a lost packet by
/// asking Opus for a 1920-sample buffer, which is 20 ms only at 48 kHz stereo; at 16 kHz mono
/// it is 120 ms of invented audio per lost packet (with 5% loss the word error rate went from
/// 0.07 to 0.38 in `tests/tests/discord_network.rs`). The endpointer resamples to 16 kHz.
pub(crate) fn songbird_config() -> songbird::Config {
    songbird::Config::default()
        .decode_mode(DecodeMode::Decode(DecodeConfig::new(
            Channels::Stereo,
            SampleRate::Hz48000,
        )))
        .mix_mode(MixMode::Mono)
        .gateway_timeout(Some(Duration::from_secs(10)))
}

/// State shared by the event handler and the sessions.
struct BotState {
    config: DiscordConfig,
    deps: SessionDeps,
    songbird: Arc<Songbird>,
    observer: Arc<dyn BotObserver>,
    sessions: StdMutex<HashMap<GuildId, Arc<GuildSession>>>,
    session_ctx: OnceLock<Arc<SessionContext>>,
    joining: StdMutex<HashMap<GuildId, Instant>>,
    store: Arc<GuildStore>,
    /// Shards whose servers have all loaded (`cache_ready`), for the auto-join check.
    shards_loaded: AtomicU32,
    /// The gateway context of the last READY, for joins nobody's event starts (auto-join
    /// after a lost voice connection).
    gateway: StdMutex<Option<Context>>,
}

impl BotState {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<GuildId, Arc<GuildSession>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn session(&self, guild: GuildId) -> Option<Arc<GuildSession>> {
        self.sessions().get(&guild).cloned()
    }
}

/// serenity's event handler.
struct Handler {
    state: Arc<BotState>,
}

/// Runs the bot until `shutdown` completes or the gateway fails: connects the shards
/// (`discord.shards`, or as many as Discord recommends), serves `/voice`, leaves every channel
/// on shutdown.
pub async fn serve(
    config: &DiscordConfig,
    token: &BotToken,
    deps: SessionDeps,
    store: Arc<GuildStore>,
    observer: Arc<dyn BotObserver>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DiscordError> {
    // The config load turned `auto` into this process's range.
    let shards = match config.shards {
        Some(ShardSpec::Range(range)) => Some(range),
        Some(spec @ ShardSpec::Auto { .. }) => {
            return Err(DiscordError::Gateway(format!(
                "`discord.shards = \"{spec}\"` was not resolved to a range"
            )))
        }
        None => None,
    };
    if let Some(r) = &shards {
        tracing::info!(shards = %r, "this process runs shards {} to {} of {}", r.first, r.last, r.total);
        // Printed whatever the log level: operators and tests look for it.
        eprintln!("discord: running shards {r}");
    }
    let api = Api::new(config, token);
    // A bad token is reported here, plainly, rather than as a gateway close code.
    let (name, id) = api.whoami().await?;
    tracing::info!(bot = %name, id, "Discord accepted the token");
    let songbird = Songbird::serenity_from_config(songbird_config());
    let state = Arc::new(BotState {
        config: config.clone(),
        deps,
        songbird: songbird.clone(),
        observer: observer.clone(),
        sessions: StdMutex::new(HashMap::new()),
        session_ctx: OnceLock::new(),
        joining: StdMutex::new(HashMap::new()),
        store,
        shards_loaded: AtomicU32::new(0),
        gateway: StdMutex::new(None),
    });
    let handler = Handler {
        state: state.clone(),
    };
    let mut client = Client::builder_with_http(api.http, intents())
        .event_handler(handler)
        .register_songbird_with(songbird)
        .await
        .map_err(|e| DiscordError::Gateway(e.to_string()))?;
    let manager = client.shard_manager.clone();
    let run = async {
        match shards {
            // serenity's range end is inclusive (start_connection's "up to and including").
            Some(r) => client.start_shard_range(r.first..r.last, r.total).await,
            None => client.start_autosharded().await,
        }
    };
    tokio::pin!(run);
    let result = tokio::select! {
        r = &mut run => r.map_err(|e| DiscordError::Gateway(e.to_string())),
        () = shutdown => Ok(()),
    };
    // Leave every channel (turns in progress get a moment), then close the gateway.
    let sessions: Vec<Arc<GuildSession>> = state.sessions().drain().map(|(_, s)| s).collect();
    if let Some(ctx) = state.session_ctx.get() {
        for s in sessions {
            s.end(ctx, EndReason::Shutdown, Duration::from_secs(2))
                .await;
        }
    }
    manager.shutdown_all().await;
    observer.gateway(false);
    result
}

trait ClientBuilderExt {
    fn builder_with_http(http: Http, intents: GatewayIntents) -> serenity::all::ClientBuilder;
}

impl ClientBuilderExt for Client {
    fn builder_with_http(http: Http, intents: GatewayIntents) -> serenity::all::ClientBuilder {
        serenity::all::ClientBuilder::new_with_http(http, intents)
    }
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        let shard = ready
            .shard
            .map(|s| format!("{}/{}", s.id.0, s.total))
            .unwrap_or_else(|| "0/1".into());
        tracing::info!(
            bot = %ready.user.name,
            shard = %shard,
            guilds = ready.guilds.len(),
            "connected to the Discord gateway"
        );
        // Printed whatever the log level: operators and tests look for it.
        eprintln!(
            "discord: connected as {} (shard {shard}, {} guild(s))",
            ready.user.name,
            ready.guilds.len()
        );
        let _ = self.state.session_ctx.set(Arc::new(SessionContext {
            songbird: self.state.songbird.clone(),
            cache: ctx.cache.clone(),
            http: ctx.http.clone(),
            bot: ready.user.id,
            observer: self.state.observer.clone(),
            auto_leave: (self.state.config.auto_leave_after_ms > 0)
                .then(|| Duration::from_millis(self.state.config.auto_leave_after_ms)),
            reconnect_attempts: self.state.config.voice_reconnect_attempts,
            bot_name: ready.user.name.clone(),
            heard_bots: self.state.config.heard_bots.clone().into(),
        }));
        *self.state.gateway.lock().unwrap_or_else(|p| p.into_inner()) = Some(ctx);
        self.state.observer.gateway(true);
    }

    async fn guild_create(&self, ctx: Context, guild: Guild, _is_new: Option<bool>) {
        self.auto_join(&ctx, guild.id, autojoin::Trigger::Loaded)
            .await;
    }

    async fn cache_ready(&self, ctx: Context, _guilds: Vec<GuildId>) {
        self.check_auto_join_channels(&ctx);
    }

    async fn resume(&self, _ctx: Context, _: ResumedEvent) {
        tracing::info!("gateway session resumed");
        self.state.observer.gateway(true);
    }

    async fn shard_stage_update(&self, _ctx: Context, event: ShardStageUpdateEvent) {
        // Down while a shard reconnects; READY or RESUMED brings it back up.
        if event.new == ConnectionStage::Disconnected {
            tracing::warn!(
                shard = event.shard_id.0,
                "gateway connection lost; reconnecting"
            );
            self.state.observer.gateway(false);
        }
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        let Interaction::Command(command) = interaction else {
            return;
        };
        if command.data.name == super::settings::NAME {
            self.settings(&ctx, &command).await;
            return;
        }
        let Some(sub) = Subcommand::of(&command) else {
            reply(&ctx, &command, "I don't know that command.").await;
            return;
        };
        tracing::info!(guild = ?command.guild_id, ?sub, "slash command");
        match sub {
            Subcommand::Join => self.join(&ctx, &command).await,
            Subcommand::Leave => self.leave(&ctx, &command).await,
            Subcommand::Status => self.status(&ctx, &command).await,
            Subcommand::Forget => self.forget(&ctx, &command).await,
        }
    }

    async fn voice_state_update(&self, discord: Context, old: Option<VoiceState>, new: VoiceState) {
        let (Some(guild), Some(ctx)) = (new.guild_id, self.state.session_ctx.get()) else {
            return;
        };
        // A person entering a channel: the server's auto-join channel, perhaps.
        let person = new.member.as_ref().is_none_or(|m| !m.user.bot)
            || self.state.config.heard_bots.contains(&new.user_id.get());
        if let (true, true, Some(channel)) = (new.user_id != ctx.bot, person, new.channel_id) {
            if old.and_then(|o| o.channel_id) != Some(channel) {
                self.auto_join_on_arrival(&discord, guild, channel).await;
            }
        }
        // Our own voice state in another channel: a moderator moved the bot. songbird follows
        // (it connects again for the new channel); the session follows too.
        if let (true, Some(channel)) = (new.user_id == ctx.bot, new.channel_id) {
            if let Some(session) = self.state.session(guild) {
                if session.channel() != channel && !session.is_leaving() {
                    let name = caller_channel(&discord.cache, guild, ctx.bot)
                        .map(|(_, n)| n)
                        .unwrap_or_else(|| channel.to_string());
                    tracing::info!(%guild, channel = %name, "moved to another voice channel");
                    session.moved_to(channel, name);
                }
            }
        }
        // Our own voice state: a moderator disconnected the bot (not our leave).
        if new.user_id == ctx.bot && new.channel_id.is_none() {
            if let Some(session) = self.state.session(guild) {
                let joining = self
                    .state
                    .joining
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains_key(&guild);
                if !session.is_leaving() && !joining {
                    tracing::warn!(%guild, "disconnected from the voice channel by someone else");
                    end_session(self.state.clone(), guild, EndReason::Removed);
                }
            }
        }
    }
}

impl Handler {
    fn session_ctx(&self) -> Option<Arc<SessionContext>> {
        self.state.session_ctx.get().cloned()
    }

    /// `/voice-settings …`: view or change this guild's settings (ephemeral answers).
    async fn settings(&self, ctx: &Context, command: &CommandInteraction) {
        let Some(guild) = command.guild_id else {
            reply(ctx, command, "Use /voice-settings in a server.").await;
            return;
        };
        let roles = &self.state.config.settings_roles;
        let text = super::settings::handle(&self.state.store, command, guild.get(), roles).await;
        reply(ctx, command, &text).await;
    }

    /// `/voice forget`: the caller's settings changes and conversation memory.
    async fn forget(&self, ctx: &Context, command: &CommandInteraction) {
        let user = command.user.id.get();
        let memory = self.state.deps.agent.forget_speaker(&user.to_string());
        let text = super::settings::forget(&self.state.store, user, memory).await;
        reply(ctx, command, &text).await;
    }

    /// The visible notice in the voice channel's text chat that the bot listens.
    async fn post_join_notice(&self, ctx: &Context, guild: GuildId, channel: ChannelId) {
        if !self.state.config.join_notice {
            return;
        }
        let settings = self.state.store.settings(guild.get()).await;
        let bot = ctx.cache.current_user().name.clone();
        let bot_id = ctx.cache.current_user().id;
        let heard = &self.state.config.heard_bots;
        let humans = session::humans_in(&ctx.cache, (guild, channel), bot_id, heard).len();
        let text = super::settings::join_notice(&bot, &settings, humans);
        if let Err(e) = channel.say(&ctx.http, text).await {
            tracing::warn!(%guild, "cannot post the join notice in the channel's chat: {e}");
        }
    }

    /// `/voice join`: the caller's voice channel, after checks that answer at once; then a
    /// deferred reply, because joining can take up to 10 s.
    async fn join(&self, ctx: &Context, command: &CommandInteraction) {
        let Some((guild, sctx, channel, channel_name)) = self.join_target(ctx, command).await
        else {
            return;
        };
        // Defer first: songbird's join waits for Discord for up to 10 s.
        if let Err(e) = command.defer_ephemeral(&ctx.http).await {
            tracing::warn!(%guild, "cannot acknowledge /voice join: {e}");
            return;
        }
        let text = match self
            .connect(ctx, &sctx, (guild, channel, &channel_name))
            .await
        {
            Ok(()) => format!(
                "Joined 🔊{channel_name}. Talk to me: I answer when you pause. Use /voice \
                 leave when you're done."
            ),
            Err(e) => {
                format!("I couldn't join 🔊{channel_name}: {e}. Try /voice join again in a moment.")
            }
        };
        edit(ctx, command, &text).await;
    }

    /// Joins `channel` and starts the guild's session there, ending one elsewhere first (a
    /// move); what songbird said when the join fails. `/voice join` and auto-join share it.
    async fn connect(
        &self,
        ctx: &Context,
        sctx: &Arc<SessionContext>,
        (guild, channel, channel_name): (GuildId, ChannelId, &str),
    ) -> Result<(), String> {
        let old = self.state.sessions().remove(&guild);
        if let Some(old) = old {
            old.end(sctx, EndReason::Leave, LEAVE_GRACE).await;
        }
        let joining = || self.state.joining.lock().unwrap_or_else(|p| p.into_inner());
        joining().insert(guild, Instant::now());
        let result = match sctx.songbird.join(guild, channel).await {
            Ok(call) => {
                self.start_session(ctx, sctx, (guild, channel, channel_name), call)
                    .await;
                Ok(())
            }
            Err(e) => {
                let _ = sctx.songbird.remove(guild).await;
                tracing::warn!(%guild, "joining {channel_name} failed: {e}");
                Err(e.to_string())
            }
        };
        joining().remove(&guild);
        result
    }

    /// Where `/voice join` should go: the caller's voice channel, if they may ask and the bot
    /// may go there and is not there already; otherwise says why and gives `None`.
    async fn join_target(
        &self,
        ctx: &Context,
        command: &CommandInteraction,
    ) -> Option<(GuildId, Arc<SessionContext>, ChannelId, String)> {
        let (Some(guild), Some(sctx)) = (command.guild_id, self.session_ctx()) else {
            reply(
                ctx,
                command,
                "Use /voice join in a server, from a voice channel.",
            )
            .await;
            return None;
        };
        let refusal = self
            .role_refusal(&ctx.cache, guild, command.member.as_deref())
            .await;
        let target = caller_channel(&ctx.cache, guild, command.user.id);
        let why = match (refusal, target) {
            (Some(why), _) => why,
            (None, None) => "You are not in a voice channel. Join one, then use /voice join: I \
                             join the channel you are in."
                .to_string(),
            (None, Some((channel, name))) => {
                match join_refusal(&ctx.cache, guild, channel, sctx.bot) {
                    Some(why) => why.answer(&name),
                    None => match self.state.session(guild) {
                        Some(s) if s.channel() == channel && !s.is_leaving() => {
                            format!("I'm already listening in 🔊{name}.")
                        }
                        _ => return Some((guild, sctx, channel, name)),
                    },
                }
            }
        };
        reply(ctx, command, &why).await;
        None
    }

    /// A joined call becomes the guild's session (never deafened: listening is the point),
    /// with the guild's settings; the join notice is posted.
    async fn start_session(
        &self,
        ctx: &Context,
        sctx: &Arc<SessionContext>,
        (guild, channel, channel_name): (GuildId, ChannelId, &str),
        call: Arc<tokio::sync::Mutex<songbird::Call>>,
    ) {
        {
            let mut c = call.lock().await;
            if c.is_deaf() {
                let _ = c.deafen(false).await;
            }
        }
        let state = self.state.clone();
        let end: Arc<dyn Fn(GuildId, EndReason) + Send + Sync> =
            Arc::new(move |g, reason| end_session(state.clone(), g, reason));
        let settings = self.state.store.settings(guild.get()).await;
        let session = GuildSession::start(
            sctx.clone(),
            self.state.deps.clone(),
            settings,
            guild,
            channel,
            channel_name.to_string(),
            call,
            end,
        );
        session.attach().await;
        self.state.sessions().insert(guild, session);
        self.post_join_notice(ctx, guild, channel).await;
    }

    /// `/voice leave`.
    async fn leave(&self, ctx: &Context, command: &CommandInteraction) {
        let (Some(guild), Some(sctx)) = (command.guild_id, self.session_ctx()) else {
            reply(ctx, command, "Use /voice leave in a server.").await;
            return;
        };
        if let Some(why) = self
            .role_refusal(&ctx.cache, guild, command.member.as_deref())
            .await
        {
            reply(ctx, command, &why).await;
            return;
        }
        let Some(session) = self.state.sessions().remove(&guild) else {
            reply(ctx, command, "I'm not in a voice channel in this server.").await;
            return;
        };
        // Defer first, as join does: ending the session waits for the turn in progress and
        // for songbird to leave, which can miss Discord's 3 s limit for an answer.
        let deferred = command.defer_ephemeral(&ctx.http).await;
        if let Err(e) = &deferred {
            tracing::warn!(%guild, "cannot acknowledge /voice leave: {e}");
        }
        let stats = session.stats();
        let minutes = session.started.elapsed().as_secs() / 60;
        session.end(&sctx, EndReason::Leave, LEAVE_GRACE).await;
        if deferred.is_ok() {
            let text = format!(
                "Left 🔊{} after {} turn(s) in {minutes} min.",
                session.channel_name(),
                stats.turns
            );
            edit(ctx, command, &text).await;
        }
    }

    /// `/voice status`.
    async fn status(&self, ctx: &Context, command: &CommandInteraction) {
        let Some(guild) = command.guild_id else {
            reply(ctx, command, "Use /voice status in a server.").await;
            return;
        };
        let text = match (self.state.session(guild), self.session_ctx()) {
            (Some(session), Some(sctx)) => status_text(&self.state.deps, Some((&session, &sctx))),
            _ => status_text(&self.state.deps, None),
        };
        reply(ctx, command, &text).await;
    }

    /// Why the caller may not use join/leave: the guild's own `allowed_roles` (ids) when it
    /// set them, else `discord.allowed_roles`.
    async fn role_refusal(
        &self,
        cache: &Cache,
        guild: GuildId,
        member: Option<&Member>,
    ) -> Option<String> {
        let settings = self.state.store.settings(guild.get()).await;
        if settings
            .overridden
            .contains_key(&crate::guild::SettingKey::AllowedRoles)
        {
            let roles: &[RoleId] = member.map(|m| m.roles.as_slice()).unwrap_or(&[]);
            let permitted = roles
                .iter()
                .any(|r| settings.allowed_roles.contains(&r.get()));
            return (!permitted).then(|| {
                "Only members with one of this server's allowed roles can use /voice join and \
                 /voice leave (see /voice-settings view)."
                    .to_string()
            });
        }
        let allowed = &self.state.config.allowed_roles;
        if allowed.is_empty() {
            return None;
        }
        let roles: &[RoleId] = member.map(|m| m.roles.as_slice()).unwrap_or(&[]);
        let names: Vec<String> = cache
            .guild(guild)
            .map(|g| {
                roles
                    .iter()
                    .filter_map(|r| g.roles.get(r).map(|role| role.name.to_lowercase()))
                    .collect()
            })
            .unwrap_or_default();
        let permitted = allowed.iter().any(|a| {
            let a = a.trim();
            roles.iter().any(|r| r.get().to_string() == a) || names.contains(&a.to_lowercase())
        });
        (!permitted).then(|| {
            format!(
                "Only members with one of these roles can use /voice join and /voice leave: {}.",
                allowed.join(", ")
            )
        })
    }
}

/// Ends a session by itself (alone, lost, removed): off the calling task.
/// A voice connection lost for good is followed by an auto-join attempt.
fn end_session(state: Arc<BotState>, guild: GuildId, reason: EndReason) {
    tokio::spawn(async move {
        let lost = matches!(reason, EndReason::Lost(_));
        let session = state.sessions().remove(&guild);
        if let (Some(session), Some(ctx)) = (session, state.session_ctx.get()) {
            session.end(ctx, reason, LEAVE_GRACE).await;
        }
        if lost {
            autojoin::after_lost(Handler { state }, guild).await;
        }
    });
}

/// The caller's voice channel in `guild`, with its name.
fn caller_channel(cache: &Cache, guild: GuildId, user: UserId) -> Option<(ChannelId, String)> {
    let g = cache.guild(guild)?;
    let channel = g.voice_states.get(&user)?.channel_id?;
    let name = g
        .channels
        .get(&channel)
        .map(|c| c.name.clone())
        .unwrap_or_else(|| channel.to_string());
    Some((channel, name))
}

/// Why the bot will not join a channel, known before trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// A stage channel: the bot would join as a listener and could never answer without a
    /// moderator inviting it to speak.
    Stage,
    /// Not a voice channel at all (a text channel's id, a category).
    NotVoice,
    /// The bot lacks this permission there (View Channel, Connect or Speak).
    Missing(&'static str),
}

impl Refusal {
    /// The reason, for an operator's log.
    fn reason(self) -> String {
        match self {
            Refusal::Stage => "it is a stage channel, where the bot would join as a listener \
                               and could not answer"
                .into(),
            Refusal::NotVoice => "it is not a voice channel".into(),
            Refusal::Missing(p) => format!(
                "the bot lacks the {p} permission there (allow View Channel, Connect and Speak)"
            ),
        }
    }

    /// The answer to `/voice join`.
    fn answer(self, channel_name: &str) -> String {
        match self {
            Refusal::Stage => format!(
                "🔊{channel_name} is a stage channel: I would join as a listener and could not \
                 answer. Use /voice join from a voice channel."
            ),
            Refusal::NotVoice => {
                format!("I can't join 🔊{channel_name}: it is not a voice channel.")
            }
            Refusal::Missing(p) => format!(
                "I can't join 🔊{channel_name}: I lack the {p} permission there. Ask a server \
                 admin to allow View Channel, Connect and Speak for me in that channel."
            ),
        }
    }
}

/// Why the bot will not join `channel`, said at once: a stage channel, not a voice channel,
/// or a missing permission.
fn join_refusal(cache: &Cache, guild: GuildId, channel: ChannelId, bot: UserId) -> Option<Refusal> {
    if is_stage(cache, guild, channel) {
        return Some(Refusal::Stage);
    }
    missing_permissions(cache, guild, channel, bot)
}

/// Whether `channel` is a stage channel.
fn is_stage(cache: &Cache, guild: GuildId, channel: ChannelId) -> bool {
    cache
        .guild(guild)
        .and_then(|g| {
            g.channels
                .get(&channel)
                .map(|c| c.kind == ChannelType::Stage)
        })
        .unwrap_or(false)
}

/// The first permission the bot lacks in `channel` among View Channel, Connect, Speak (or
/// that it is no voice channel).
fn missing_permissions(
    cache: &Cache,
    guild: GuildId,
    channel: ChannelId,
    bot: UserId,
) -> Option<Refusal> {
    let g = cache.guild(guild)?;
    let c = g.channels.get(&channel)?;
    if !matches!(c.kind, ChannelType::Voice | ChannelType::Stage) {
        return Some(Refusal::NotVoice);
    }
    // Without our member in the cache, let the join itself fail rather than guess.
    let me = g.members.get(&bot)?;
    let perms = g.user_permissions_in(c, me);
    [
        (Permissions::VIEW_CHANNEL, "View Channel"),
        (Permissions::CONNECT, "Connect"),
        (Permissions::SPEAK, "Speak"),
    ]
    .into_iter()
    .find(|(p, _)| !perms.contains(*p))
    .map(|(_, name)| Refusal::Missing(name))
}

/// The `/voice status` text.
fn status_text(
    deps: &SessionDeps,
    session: Option<(&Arc<GuildSession>, &Arc<SessionContext>)>,
) -> String {
    let mut lines = match session {
        Some((s, ctx)) => session_lines(s, ctx),
        None => vec![
            "Not in a voice channel in this server. Use /voice join from a voice channel.".into(),
        ],
    };
    let providers = |list: Vec<String>| match list.is_empty() {
        true => "none".to_string(),
        false => list.join(", "),
    };
    let stt = deps.stt.iter();
    let stt = stt.map(|p| format!("{} ({})", p.id, health(p.stats().circuit().state)));
    let tts = deps.tts.iter();
    let tts = tts.map(|p| format!("{} ({})", p.id, health(p.stats().circuit().state)));
    lines.push(format!("Speech-to-text: {}", providers(stt.collect())));
    lines.push(format!("Text-to-speech: {}", providers(tts.collect())));
    lines.push(format!("Agent: {}", deps.agent.kind()));
    lines.join("\n")
}

/// `/voice status` lines about the call: channel, people (and who was heard), the last turn,
/// the counts, and the hearing guard.
fn session_lines(s: &Arc<GuildSession>, ctx: &Arc<SessionContext>) -> Vec<String> {
    let elapsed = s.started.elapsed().as_secs();
    let mut lines = vec![format!(
        "**Voice session** in 🔊{} for {} min {} s",
        s.channel_name(),
        elapsed / 60,
        elapsed % 60
    )];
    let people = session::humans_in(&ctx.cache, (s.guild, s.channel()), ctx.bot, &ctx.heard_bots);
    let heard = s.heard();
    let speakers: Vec<String> = people
        .iter()
        .map(|(id, name)| match heard.contains(id) {
            true => format!("{name} (heard)"),
            false => name.clone(),
        })
        .collect();
    let speakers = match speakers.is_empty() {
        true => "none".to_string(),
        false => speakers.join(", "),
    };
    lines.push(format!("Speakers: {speakers}"));
    let stats = s.stats();
    lines.push(match &stats.last_turn {
        Some((who, response, outcome)) => format!(
            "Last turn: {who}, {} from end of speech to first audio ({outcome})",
            response
                .map(|ms| format!("{:.2} s", ms / 1000.0))
                .unwrap_or_else(|| "no audio".into())
        ),
        None => "Last turn: none yet".into(),
    });
    lines.push(format!(
        "Turns: {} ({} failed) · voice reconnects: {}",
        stats.turns, stats.failed, stats.reconnects
    ));
    let hearing = s.hearing();
    lines.push(hearing.status_line(std::time::Instant::now(), |u| {
        people
            .iter()
            .find(|(id, _)| id.get() == u)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| format!("user {u}"))
    }));
    lines.push(hearing.encryption_line());
    lines
}

fn health(state: crate::plugins::breaker::CircuitState) -> String {
    use crate::plugins::breaker::CircuitState;
    match state {
        CircuitState::Closed => "healthy".into(),
        CircuitState::Open => "failing, skipped".into(),
        CircuitState::HalfOpen => "recovering".into(),
    }
}

/// An immediate ephemeral reply.
async fn reply(ctx: &Context, command: &CommandInteraction, text: &str) {
    let response = CreateInteractionResponse::Message(
        CreateInteractionResponseMessage::new()
            .content(text)
            .ephemeral(true),
    );
    if let Err(e) = command.create_response(&ctx.http, response).await {
        tracing::warn!("cannot answer /voice: {e}");
    }
}

/// The text of a deferred reply.
async fn edit(ctx: &Context, command: &CommandInteraction, text: &str) {
    if let Err(e) = command
        .edit_response(&ctx.http, EditInteractionResponse::new().content(text))
        .await
    {
        tracing::warn!("cannot answer /voice: {e}");
    }
}
