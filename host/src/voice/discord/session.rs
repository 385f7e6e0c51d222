//! One guild's voice session: a songbird call whose received audio feeds the pipeline per
//! speaker, whose replies play back through [`CallOutput`], with turn reports, auto-leave and
//! recovery from dropped voice connections.
//!
//! Receive path (songbird's event task, every 20 ms): a `VoiceTick` carries each speaking
//! SSRC's decoded 48 kHz stereo frame (the endpointer resamples). SSRCs map to users through
//! `SpeakingStateUpdate`; frames from an SSRC not mapped yet (Speaking comes late, or not at all for a while) are held, up
//! to [`PENDING_FRAMES`], and replayed in order when the mapping arrives. Bots (other than
//! ours, which Discord never sends back) are ignored. A mapped speaker who stops sending gets
//! silent frames for a while, so the endpointer sees the pause that ends the utterance.
//!
//! Every decoded frame and every Speaking event also goes to the session's [`Hearing`] guard:
//! a speaker Discord announces whose audio never decodes (songbird drops DAVE frames it
//! cannot decrypt without a word) is logged, counted and shown in `/voice status` and
//! `/health`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::time::{Duration, Instant};

use serenity::all::{Cache, ChannelId, GuildId, Http, UserId};
use songbird::events::{Event, EventContext, EventHandler as VoiceEventHandler};
use songbird::{Call, CoreEvent, Songbird};
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;

use super::hearing::{self, Hearing, HearingSummary};
use super::output::CallOutput;
use super::BotObserver;
use crate::guild::GuildSettings;
use crate::pipeline::{
    FrameRouter, Playback, SessionDeps, Speaker, TurnOutcome, TurnReport, VoiceSession,
};

/// Rate of the audio songbird decodes for us (set in the songbird config).
pub(crate) const RECEIVE_RATE: u32 = 48_000;
/// Its channels (interleaved).
pub(crate) const RECEIVE_CHANNELS: u16 = 2;
/// Frames held per SSRC that has no user mapping yet (3 s).
pub(crate) const PENDING_FRAMES: usize = 150;
/// How long a speaker who stopped sending keeps getting silent frames.
const SILENCE_FILL: Duration = Duration::from_secs(8);
/// A 20 ms frame of silence at [`RECEIVE_RATE`], [`RECEIVE_CHANNELS`].
const SILENT_FRAME: [i16; 1_920] = [0; 1_920];
/// Samples in one 20 ms frame (channels interleaved).
const FRAME_SAMPLES: usize = SILENT_FRAME.len();
/// Longest transcript message (Discord's limit is 2000 characters).
const MESSAGE_MAX: usize = 1_900;
/// The transport encryption's suffix (AEAD tag and nonce) after each RTP payload: 20 bytes
/// in both modes songbird 0.6.1 speaks (`aead_aes256_gcm_rtpsize`, `aead_xchacha20_poly1305_rtpsize`).
const TRANSPORT_SUFFIX: usize = songbird::driver::CryptoMode::Aes256Gcm.payload_suffix_len();

/// What the session's supervisor hears from the driver.
#[derive(Debug)]
pub(crate) enum DriverNews {
    /// The voice connection dropped and songbird gave up on it.
    Disconnected(String),
    /// songbird reconnected (resumed) by itself.
    Reconnected,
}

/// Numbers for `/voice status`.
#[derive(Debug, Default, Clone)]
pub(crate) struct SessionStats {
    /// Turns taken (someone said something).
    pub turns: u64,
    /// Of which failed.
    pub failed: u64,
    /// The last turn: speaker, ms from the end of speech to the first audio, outcome.
    pub last_turn: Option<(String, Option<f64>, String)>,
    /// Voice connection recoveries (resumed or rejoined).
    pub reconnects: u32,
}

/// One SSRC, as far as we know it.
#[derive(Clone)]
enum Source {
    /// A person: frames go to the pipeline.
    Person(Speaker, UserId),
    /// A bot: ignored.
    Bot,
}

/// The receive side's state, behind one lock taken once per event.
struct ReceiveState {
    router: Option<FrameRouter>,
    sources: HashMap<u32, Source>,
    pending: HashMap<u32, VecDeque<(Vec<i16>, Instant)>>,
    last_heard: HashMap<u32, Instant>,
    hearing: Hearing,
    /// Unheard speakers at the last tick, told to the observer when it changes.
    unheard: usize,
}

/// The songbird event handler of a session's call.
pub(crate) struct Receiver {
    guild: GuildId,
    bot: UserId,
    heard_bots: Arc<[u64]>,
    cache: Arc<Cache>,
    state: StdMutex<ReceiveState>,
    news: mpsc::UnboundedSender<DriverNews>,
    observer: Arc<dyn BotObserver>,
}

impl Receiver {
    fn lock(&self) -> MutexGuard<'_, ReceiveState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Who `user` is: their display name, or a bot to ignore.
    fn resolve(&self, user: UserId) -> Source {
        if user == self.bot {
            return Source::Bot;
        }
        let known = self.cache.guild(self.guild).and_then(|g| {
            g.members
                .get(&user)
                .map(|m| (m.display_name().to_string(), m.user.bot))
                .or_else(|| {
                    g.voice_states
                        .get(&user)
                        .and_then(|v| v.member.as_ref())
                        .map(|m| (m.display_name().to_string(), m.user.bot))
                })
        });
        let known = known.or_else(|| {
            self.cache
                .user(user)
                .map(|u| (u.display_name().to_string(), u.bot))
        });
        let heard = self.heard_bots.contains(&user.get());
        match known {
            Some((_, true)) if !heard => Source::Bot,
            Some((name, _)) => Source::Person(
                Speaker {
                    id: user.get().to_string(),
                    name,
                },
                user,
            ),
            None => Source::Person(
                Speaker {
                    id: user.get().to_string(),
                    name: format!("user {user}"),
                },
                user,
            ),
        }
    }

    fn on_tick(&self, tick: &songbird::events::context_data::VoiceTick) {
        let now = Instant::now();
        let mut state = self.lock();
        let ReceiveState {
            router,
            sources,
            pending,
            last_heard,
            hearing,
            ..
        } = &mut *state;
        let Some(router) = router.as_mut() else {
            return;
        };
        let mut decoded = 0;
        let mut encryption_changed = None;
        for (ssrc, data) in &tick.speaking {
            let Some(pcm) = data.decoded_voice.as_deref() else {
                continue;
            };
            // A lost packet (no `packet`): songbird 0.6.1 asks Opus to conceal a 1920-sample
            // buffer whatever the rate and channels; one frame of it stands for the lost one
            // (a no-op at 48 kHz stereo, 6 frames' worth at 16 kHz mono).
            let pcm = if data.packet.is_none() {
                &pcm[..pcm.len().min(FRAME_SAMPLES)]
            } else {
                pcm
            };
            match sources.get(ssrc) {
                Some(Source::Person(speaker, user)) => {
                    router.push(speaker, pcm, RECEIVE_CHANNELS, RECEIVE_RATE, now);
                    last_heard.insert(*ssrc, now);
                    hearing.decoded(user.get(), 1, now);
                    decoded += 1;
                    if let Some(dave) = data.packet.as_ref().and_then(dave_frame) {
                        if hearing.encryption(dave) {
                            encryption_changed = Some(dave);
                        }
                    }
                }
                Some(Source::Bot) => {}
                None => {
                    let held = pending.entry(*ssrc).or_default();
                    if held.len() == PENDING_FRAMES {
                        held.pop_front();
                    }
                    held.push_back((pcm.to_vec(), now));
                }
            }
        }
        // Speakers who went quiet: silence, so their utterance can end.
        last_heard.retain(|ssrc, heard| {
            if now.duration_since(*heard) > SILENCE_FILL {
                return false;
            }
            if !tick.speaking.contains_key(ssrc) {
                if let Some(Source::Person(speaker, _)) = sources.get(ssrc) {
                    router.push(speaker, &SILENT_FRAME, RECEIVE_CHANNELS, RECEIVE_RATE, now);
                }
            }
            true
        });
        let unheard = hearing.check(now);
        let count = hearing.unheard_count(now);
        let changed = std::mem::replace(&mut state.unheard, count) != count;
        drop(state);
        self.report_tick(
            changed.then_some(count),
            decoded,
            encryption_changed,
            unheard,
        );
    }

    /// Tells the observer what a tick changed (unheard speakers, frames decoded, the
    /// encryption of received audio), and reports newly unheard speakers.
    fn report_tick(
        &self,
        unheard_count: Option<usize>,
        decoded: u64,
        encryption_changed: Option<bool>,
        unheard: Vec<u64>,
    ) {
        if let Some(count) = unheard_count {
            self.observer.unheard(self.guild.get(), count);
        }
        if decoded > 0 {
            self.observer.frames_decoded(self.guild.get(), decoded);
        }
        if let Some(dave) = encryption_changed {
            tracing::info!(guild = %self.guild, dave, "received audio is {}", match dave {
                true => "DAVE end-to-end encrypted",
                false => "transport encrypted only (no DAVE)",
            });
            self.observer.encryption(self.guild.get(), Some(dave));
        }
        for user in unheard {
            self.report_unheard(UserId::new(user.max(1)));
        }
    }

    /// A speaker Discord announced whose audio does not decode: said once per Speaking event.
    fn report_unheard(&self, user: UserId) {
        if matches!(self.resolve(user), Source::Bot) {
            return;
        }
        // The user as logs show users (hashed by default); `/voice status` names them.
        tracing::warn!(
            guild = %self.guild,
            speaker = %crate::telemetry::user_label(&user.get().to_string()),
            "Discord says someone is speaking but none of their audio decodes (DAVE frames \
             songbird cannot decrypt are dropped): the bot cannot hear them"
        );
        self.observer.undecodable(self.guild.get());
    }

    /// The hearing guard's figures.
    fn hearing(&self) -> HearingSummary {
        self.lock().hearing.summary(Instant::now())
    }

    fn on_speaking(&self, ssrc: u32, user: Option<songbird::model::id::UserId>) {
        let Some(user) = user else { return };
        let user = UserId::new(user.0.max(1));
        let source = self.resolve(user);
        let mut guard = self.lock();
        // Through a plain `&mut`, the fields borrow apart.
        let state = &mut *guard;
        if matches!(source, Source::Person(..)) {
            state.hearing.announced(user.get(), Instant::now());
        }
        // A user's SSRC can change (they reconnected): forget the old one.
        let theirs = |src: &Source| matches!(src, Source::Person(_, u) if *u == user);
        state.sources.retain(|s, src| *s == ssrc || !theirs(src));
        state.sources.insert(ssrc, source.clone());
        let held = state.pending.remove(&ssrc);
        if let (Some(router), Source::Person(speaker, _), Some(held)) =
            (state.router.as_mut(), &source, held)
        {
            tracing::debug!(
                guild = %self.guild,
                frames = held.len(),
                "speaker identified after their audio started; replaying it"
            );
            let frames = held.len() as u64;
            let last = held.back().map(|(_, at)| *at);
            for (pcm, at) in held {
                router.push(speaker, &pcm, RECEIVE_CHANNELS, RECEIVE_RATE, at);
            }
            state.hearing.decoded(user.get(), frames, Instant::now());
            if let Some(at) = last {
                state.last_heard.insert(ssrc, at);
            }
        }
    }

    fn on_client_disconnect(&self, user: UserId) {
        let now = Instant::now();
        let mut state = self.lock();
        let ssrcs: Vec<u32> = state
            .sources
            .iter()
            .filter(|(_, s)| matches!(s, Source::Person(_, u) if *u == user))
            .map(|(ssrc, _)| *ssrc)
            .collect();
        for ssrc in ssrcs {
            state.sources.remove(&ssrc);
            state.last_heard.remove(&ssrc);
            state.pending.remove(&ssrc);
        }
        state.hearing.left(user.get());
        if let Some(router) = state.router.as_mut() {
            router.remove_speaker(&user.get().to_string(), now);
        }
    }

    /// Ends the receive side: the utterances in progress are handled, the router dropped
    /// (which lets the session's turn task finish).
    fn close(&self) {
        let mut state = self.lock();
        if let Some(mut router) = state.router.take() {
            router.flush(Instant::now());
        }
        state.pending.clear();
    }

    /// The people heard so far: name by user id.
    fn heard(&self) -> Vec<UserId> {
        self.lock()
            .sources
            .values()
            .filter_map(|s| match s {
                Source::Person(_, u) => Some(*u),
                Source::Bot => None,
            })
            .collect()
    }
}

#[serenity::async_trait]
impl VoiceEventHandler for Receiver {
    async fn act(&self, ctx: &EventContext<'_>) -> Option<Event> {
        match ctx {
            EventContext::VoiceTick(tick) => self.on_tick(tick),
            EventContext::SpeakingStateUpdate(s) => self.on_speaking(s.ssrc, s.user_id),
            EventContext::ClientDisconnect(d) => {
                self.on_client_disconnect(UserId::new(d.user_id.0.max(1)))
            }
            EventContext::DriverDisconnect(d) => {
                let reason = match &d.reason {
                    Some(r) => format!("{r:?}"),
                    None => "closed".to_string(),
                };
                let _ = self
                    .news
                    .send(DriverNews::Disconnected(format!("{:?}: {reason}", d.kind)));
            }
            EventContext::DriverReconnect(_) => {
                let _ = self.news.send(DriverNews::Reconnected);
            }
            _ => {}
        }
        None
    }
}

/// A guild's running voice session.
pub(crate) struct GuildSession {
    /// The guild.
    pub guild: GuildId,
    /// The voice channel and its name: where the bot is now (a moderator may move it).
    place: StdMutex<(ChannelId, String)>,
    /// When it started.
    pub started: Instant,
    /// Where this guild's transcripts go (its own setting, or the config's).
    pub transcript_channel: Option<ChannelId>,
    pub(crate) call: Arc<Mutex<Call>>,
    receiver: Arc<Receiver>,
    playback: Arc<Playback>,
    voice: StdMutex<Option<VoiceSession>>,
    stats: StdMutex<SessionStats>,
    leaving: AtomicBool,
    turns_done: watch::Receiver<bool>,
    tasks: StdMutex<Vec<JoinHandle<()>>>,
}

/// What a session needs from the bot.
pub(crate) struct SessionContext {
    pub(crate) songbird: Arc<Songbird>,
    pub(crate) cache: Arc<Cache>,
    pub(crate) http: Arc<Http>,
    pub(crate) bot: UserId,
    pub(crate) observer: Arc<dyn BotObserver>,
    pub(crate) auto_leave: Option<Duration>,
    pub(crate) reconnect_attempts: u32,
    pub(crate) bot_name: String,
    /// Bots heard like people (`discord.heard_bots`).
    pub(crate) heard_bots: Arc<[u64]>,
}

/// Why a session ended.
#[derive(Debug, Clone)]
pub(crate) enum EndReason {
    /// `/voice leave`.
    Leave,
    /// Alone in the channel for the configured time.
    Alone,
    /// The voice connection was lost and could not be recovered (why: shown through `Debug`
    /// in the "leaving" log line).
    Lost(#[allow(dead_code)] String),
    /// Disconnected by someone (a moderator), or the channel went away.
    Removed,
    /// The process is shutting down.
    Shutdown,
}

impl GuildSession {
    /// Starts a session on a joined `call` with the guild's `settings`; `end` is called
    /// (once) when the session ends by itself (alone, connection lost, removed).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        ctx: Arc<SessionContext>,
        deps: SessionDeps,
        settings: Arc<GuildSettings>,
        guild: GuildId,
        channel: ChannelId,
        channel_name: String,
        call: Arc<Mutex<Call>>,
        end: Arc<dyn Fn(GuildId, EndReason) + Send + Sync>,
    ) -> Arc<GuildSession> {
        let output = Arc::new(CallOutput::new(call.clone()));
        let playback = Arc::new(Playback::new(output, true));
        let conversation = format!("discord:{guild}:{channel}");
        let deps = super::settings::session_deps(&deps, &settings);
        let gate = Arc::new(super::settings::WakeGate {
            cache: ctx.cache.clone(),
            guild,
            channel,
            bot: ctx.bot,
            heard_bots: ctx.heard_bots.clone(),
            settings: settings.clone(),
        });
        let (router, mut voice) =
            VoiceSession::start_gated(deps, conversation, playback.clone(), Some(gate));
        let (news_tx, news_rx) = mpsc::unbounded_channel();
        let receiver = Arc::new(Receiver {
            guild,
            bot: ctx.bot,
            heard_bots: ctx.heard_bots.clone(),
            cache: ctx.cache.clone(),
            state: StdMutex::new(ReceiveState {
                router: Some(router),
                sources: HashMap::new(),
                pending: HashMap::new(),
                last_heard: HashMap::new(),
                hearing: Hearing::default(),
                unheard: 0,
            }),
            news: news_tx,
            observer: ctx.observer.clone(),
        });
        let (done_tx, done_rx) = watch::channel(false);
        let (_, no_reports) = mpsc::unbounded_channel();
        let reports = std::mem::replace(&mut voice.reports, no_reports);
        let session = Arc::new(GuildSession {
            guild,
            place: StdMutex::new((channel, channel_name)),
            started: Instant::now(),
            transcript_channel: settings.transcript_channel.map(ChannelId::new),
            call,
            receiver,
            playback,
            voice: StdMutex::new(Some(voice)),
            stats: StdMutex::new(SessionStats::default()),
            leaving: AtomicBool::new(false),
            turns_done: done_rx,
            tasks: StdMutex::new(Vec::new()),
        });
        let mut tasks = vec![
            tokio::spawn(report_turns(session.clone(), ctx.clone(), reports, done_tx)),
            tokio::spawn(supervise(
                session.clone(),
                ctx.clone(),
                news_rx,
                end.clone(),
            )),
        ];
        if let Some(after) = ctx.auto_leave {
            tasks.push(tokio::spawn(watch_alone(
                session.clone(),
                ctx.clone(),
                after,
                end,
            )));
        }
        *session.lock_tasks() = tasks;
        ctx.observer.session_started(guild.get());
        session
    }

    fn lock_tasks(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers the receive handler on the call (after joining).
    pub(crate) async fn attach(self: &Arc<Self>) {
        let mut call = self.call.lock().await;
        for event in [
            CoreEvent::VoiceTick,
            CoreEvent::SpeakingStateUpdate,
            CoreEvent::ClientDisconnect,
            CoreEvent::DriverDisconnect,
            CoreEvent::DriverReconnect,
        ] {
            call.add_global_event(Event::Core(event), ReceiverRef(self.receiver.clone()));
        }
    }

    /// The voice channel the bot is in.
    pub fn channel(&self) -> ChannelId {
        self.place.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    /// Its name.
    pub(crate) fn channel_name(&self) -> String {
        self.place
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    /// The bot was moved to `channel`: auto-leave, rejoins and `/voice status` follow it.
    pub(crate) fn moved_to(&self, channel: ChannelId, name: String) {
        *self.place.lock().unwrap_or_else(|p| p.into_inner()) = (channel, name);
    }

    /// The numbers so far.
    pub fn stats(&self) -> SessionStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update_stats(&self, f: impl FnOnce(&mut SessionStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// People heard so far.
    pub fn heard(&self) -> Vec<UserId> {
        self.receiver.heard()
    }

    /// Frames decoded, when audio was last heard, and who is speaking unheard.
    pub fn hearing(&self) -> HearingSummary {
        self.receiver.hearing()
    }

    /// Whether it is ending.
    pub(crate) fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::SeqCst)
    }

    /// Ends the session: stops the receive side, lets the turn in progress finish within
    /// `grace` (cancelled after), stops playback, leaves the channel. Idempotent.
    pub(crate) async fn end(&self, ctx: &SessionContext, reason: EndReason, grace: Duration) {
        if self.leaving.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::info!(guild = %self.guild, channel = %self.channel_name(), ?reason, "leaving the voice channel");
        // The router dropped, the turn task ends once the queued turns are done; the report
        // task sees the end of the reports.
        self.receiver.close();
        let mut done = self.turns_done.clone();
        let _ = tokio::time::timeout(grace, done.wait_for(|d| *d)).await;
        let voice = self.voice.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(voice) = voice {
            voice.shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(2), voice.join()).await;
        }
        self.playback.stop();
        {
            let mut call = self.call.lock().await;
            call.remove_all_global_events();
        }
        if let Err(e) = ctx.songbird.remove(self.guild).await {
            tracing::debug!(guild = %self.guild, "leaving the call: {e}");
        }
        for task in self.lock_tasks().drain(..) {
            task.abort();
        }
        ctx.observer.session_ended(self.guild.get());
    }
}

/// `Arc<Receiver>` as a songbird handler (one per event kind).
struct ReceiverRef(Arc<Receiver>);

#[serenity::async_trait]
impl VoiceEventHandler for ReceiverRef {
    async fn act(&self, ctx: &EventContext<'_>) -> Option<Event> {
        self.0.act(ctx).await
    }
}

/// Posts and counts finished turns.
async fn report_turns(
    session: Arc<GuildSession>,
    ctx: Arc<SessionContext>,
    mut reports: mpsc::UnboundedReceiver<TurnReport>,
    done: watch::Sender<bool>,
) {
    while let Some(report) = reports.recv().await {
        ctx.observer.turn(session.guild.get(), &report);
        if !report.is_turn() {
            continue;
        }
        let outcome = outcome_text(&report.outcome);
        session.update_stats(|s| {
            s.turns += 1;
            if matches!(report.outcome, TurnOutcome::Failed(_)) {
                s.failed += 1;
            }
            s.last_turn = Some((
                report.speaker.name.clone(),
                report.timeline.ms().first_tts_audio,
                outcome.clone(),
            ));
        });
        if let Some(channel) = session.transcript_channel {
            let text = transcript_message(&report, &ctx.bot_name);
            if let Err(e) = channel.say(&ctx.http, text).await {
                tracing::warn!(guild = %session.guild, "cannot post the transcript: {e}");
            }
        }
    }
    let _ = done.send(true);
}

/// A turn as posted in the transcript channel.
pub(crate) fn transcript_message(report: &TurnReport, bot_name: &str) -> String {
    let mut text = format!("**{}**: {}", report.speaker.name, report.transcript);
    if !report.reply.is_empty() {
        text.push_str(&format!("\n**{bot_name}**: {}", report.reply));
    }
    if let TurnOutcome::Failed(why) = &report.outcome {
        text.push_str(&format!("\n_(turn failed: {why})_"));
    }
    if text.chars().count() > MESSAGE_MAX {
        text = text.chars().take(MESSAGE_MAX).collect::<String>() + "…";
    }
    text
}

/// How a turn ended, in words.
pub(crate) fn outcome_text(outcome: &TurnOutcome) -> String {
    match outcome {
        TurnOutcome::Completed => "completed".into(),
        TurnOutcome::Interrupted => "interrupted".into(),
        TurnOutcome::NoSpeech => "no speech".into(),
        TurnOutcome::Failed(why) => format!("failed: {why}"),
        TurnOutcome::Cancelled => "cancelled".into(),
        TurnOutcome::NotAddressed => "not addressed".into(),
        TurnOutcome::Continued => "continued by the next turn".into(),
    }
}

/// Recovers dropped voice connections: songbird resumes what it can by itself; a connection
/// it gives up on is rejoined here, with backoff, up to `reconnect_attempts` times.
async fn supervise(
    session: Arc<GuildSession>,
    ctx: Arc<SessionContext>,
    mut news: mpsc::UnboundedReceiver<DriverNews>,
    end: Arc<dyn Fn(GuildId, EndReason) + Send + Sync>,
) {
    while let Some(item) = news.recv().await {
        if session.is_leaving() {
            return;
        }
        match item {
            DriverNews::Reconnected => {
                tracing::info!(guild = %session.guild, "voice connection resumed");
                session.update_stats(|s| s.reconnects += 1);
            }
            DriverNews::Disconnected(why) => {
                tracing::warn!(guild = %session.guild, "voice connection lost ({why}); rejoining");
                let mut recovered = false;
                for attempt in 1..=ctx.reconnect_attempts {
                    let backoff = Duration::from_millis(500 * (1 << (attempt - 1).min(5)));
                    tokio::time::sleep(backoff).await;
                    if session.is_leaving() {
                        return;
                    }
                    match ctx.songbird.join(session.guild, session.channel()).await {
                        Ok(_) => {
                            tracing::info!(guild = %session.guild, attempt, "rejoined the voice channel");
                            session.update_stats(|s| s.reconnects += 1);
                            recovered = true;
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(guild = %session.guild, attempt, "rejoining failed: {e}")
                        }
                    }
                }
                if !recovered {
                    let reason = format!(
                        "lost the voice connection to {} ({why}) and could not rejoin after {} \
                         attempt(s)",
                        session.channel_name(),
                        ctx.reconnect_attempts
                    );
                    tracing::error!(guild = %session.guild, "{reason}");
                    if let Some(channel) = session.transcript_channel {
                        let _ = channel
                            .say(
                                &ctx.http,
                                format!("I {reason}. Use /voice join to bring me back."),
                            )
                            .await;
                    }
                    end(session.guild, EndReason::Lost(reason));
                    return;
                }
            }
        }
    }
}

/// Whether songbird's received packet came DAVE-encrypted ([`hearing::dave_frame`]).
fn dave_frame(rtp: &songbird::events::context_data::RtpData) -> Option<bool> {
    let padded = rtp.rtp().get_padding() != 0;
    hearing::dave_frame(&rtp.packet, rtp.payload_end_pad, TRANSPORT_SUFFIX, padded)
}

/// Leaves when no one but bots has been in the channel for `after`.
async fn watch_alone(
    session: Arc<GuildSession>,
    ctx: Arc<SessionContext>,
    after: Duration,
    end: Arc<dyn Fn(GuildId, EndReason) + Send + Sync>,
) {
    let mut alone_since: Option<Instant> = None;
    let mut tick = tokio::time::interval(
        Duration::from_millis(500)
            .min(after / 4)
            .max(Duration::from_millis(50)),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if session.is_leaving() {
            return;
        }
        let people = humans_in(
            &ctx.cache,
            (session.guild, session.channel()),
            ctx.bot,
            &ctx.heard_bots,
        );
        if people.is_empty() {
            let since = *alone_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= after {
                tracing::info!(guild = %session.guild, "alone in the channel: leaving");
                end(session.guild, EndReason::Alone);
                return;
            }
        } else {
            alone_since = None;
        }
    }
}

/// The people in a voice channel (bots only when heard like people), with their display
/// names, from the cache.
pub(crate) fn humans_in(
    cache: &Cache,
    (guild, channel): (GuildId, ChannelId),
    bot: UserId,
    heard_bots: &[u64],
) -> Vec<(UserId, String)> {
    let Some(g) = cache.guild(guild) else {
        return Vec::new();
    };
    let mut people: Vec<(UserId, String)> = g
        .voice_states
        .values()
        .filter(|v| v.channel_id == Some(channel) && v.user_id != bot)
        .filter_map(|v| {
            let member = g.members.get(&v.user_id).or(v.member.as_ref());
            match member {
                Some(m) if m.user.bot && !heard_bots.contains(&v.user_id.get()) => None,
                Some(m) => Some((v.user_id, m.display_name().to_string())),
                None => Some((v.user_id, format!("user {}", v.user_id))),
            }
        })
        .collect();
    people.sort_by(|a, b| a.1.cmp(&b.1));
    people
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::TurnTimeline;

    fn report(transcript: &str, reply: &str, outcome: TurnOutcome) -> TurnReport {
        let now = Instant::now();
        TurnReport {
            speaker: Speaker {
                id: "1".into(),
                name: "Alice".into(),
            },
            transcript: transcript.into(),
            reply: reply.into(),
            outcome,
            timeline: TurnTimeline {
                speech_end: now,
                endpoint_detected: now,
                stt_done: None,
                agent_first_token: None,
                first_tts_audio: None,
                playback_start: None,
            },
            utterance_ms: 1_000,
            stt_provider: None,
            tts_provider: None,
            errors: Vec::new(),
            reply_audio_ms: 0,
            end_rule: crate::pipeline::EndRule::Silence,
            speculation: Default::default(),
            continued: false,
            reply_played_ms: None,
        }
    }

    #[test]
    fn transcripts_name_both_sides_and_fit_a_message() {
        let text = transcript_message(
            &report("hello", "You said: hello", TurnOutcome::Completed),
            "OpenClaw",
        );
        assert_eq!(text, "**Alice**: hello\n**OpenClaw**: You said: hello");
        let failed = transcript_message(
            &report("hi", "", TurnOutcome::Failed("agent: timeout".into())),
            "OpenClaw",
        );
        assert_eq!(failed, "**Alice**: hi\n_(turn failed: agent: timeout)_");
        let long = transcript_message(
            &report(&"word ".repeat(1_000), "", TurnOutcome::Completed),
            "OpenClaw",
        );
        assert!(long.chars().count() <= MESSAGE_MAX + 1 && long.ends_with('…'));
    }
}
