//! The turn loop: utterances in, spoken replies out.
//!
//! A [`FrameRouter`] (owned by the transport, called once per frame per speaker) runs
//! endpointing (Silero VAD or the energy gate) and barge-in detection, asks Smart Turn (on a
//! blocking thread) at each pause and hands its verdict back to the endpointer, and sends
//! [`SessionEvent`]s. The session task starts speech-to-text speculatively at each pause
//! (dropped when the speaker goes on) or for each utterance at once, then handles turns in
//! order: agent reply streamed into sentences, each sentence synthesized and queued for
//! playback as its first chunk arrives. A barge-in cancels the turn in progress and stops
//! playback. A speaker who goes on soon after their turn ended (`turn_resume_ms`) withdraws
//! it (its reply stops; [`TurnOutcome::Continued`]) and the next turn answers the whole.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plugin_api::abi::{SynthesisOptions, TranscribeOptions, Transcript};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::endpoint::{
    EndRule, EndpointConfig, EndpointEvent, SpeakerEndpointer, UtteranceAudio, Verdict,
};
use super::models::{SmartTurn, TurnModels};
use super::playback::Playback;
use super::sentences::{speakable, text_cue, SentenceSplitter, TextCue};
use crate::agent::{Agent, AgentRequest};
use crate::config::{LanguageCode, PipelineConfig, TtsVoices, VoiceId};
use crate::plugins::failover::{self, Budget, FailoverOrder};
use crate::plugins::{SpeechToTextProvider, TextToSpeechProvider};

/// Who is speaking.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Speaker {
    /// Stable id (Discord user id, or the simulated speaker's name).
    pub id: String,
    /// Display name, given to the agent.
    pub name: String,
}

/// What the frame path tells the session.
#[derive(Debug)]
pub(crate) enum SessionEvent {
    /// A speaker finished an utterance.
    Utterance(Speaker, UtteranceAudio),
    /// A speaker paused (the pause's number, the utterance so far): transcribe speculatively,
    /// and send the text on the channel, when given, as soon as it is there.
    Paused(
        Speaker,
        u32,
        Arc<[i16]>,
        Option<tokio::sync::oneshot::Sender<SpeculativeText>>,
    ),
    /// A speaker went on after a pause: drop the speculation.
    Resumed(Speaker),
    /// A speaker went on soon after their utterance ended: withdraw its turn (the utterance
    /// in progress starts with that one's audio: this many samples).
    Continued(Speaker, usize),
    /// A speaker talked over the bot for longer than the barge-in minimum.
    BargeIn(Speaker),
}

/// Per-speaker frame handling; owned by the transport's receive loop.
pub struct FrameRouter {
    cfg: EndpointConfig,
    barge_in_ms: Option<u32>,
    speakers: HashMap<String, SpeakerSlot>,
    events: mpsc::UnboundedSender<SessionEvent>,
    playback: Arc<Playback>,
    models: TurnModels,
    speculative: bool,
    text_check: bool,
}

/// How long Smart Turn's "complete" waits for the speculative transcript before it decides
/// alone. An "incomplete" always waits for it: only the words can end that turn sooner.
#[derive(Debug, Clone, Copy)]
struct TextWait {
    limit: Duration,
    /// Smart Turn's probability above which it says "complete" (`turn_threshold`).
    complete_above: f32,
}

impl TextWait {
    /// In real time, until the middle silence; none for `--fast`, which waits for every
    /// verdict (`FrameRouter::settle`), as model time is not simulated time.
    fn of(cfg: &EndpointConfig, playback: &Playback) -> Option<TextWait> {
        playback.is_realtime().then(|| TextWait {
            limit: Duration::from_millis(u64::from(
                cfg.text_complete_ms.saturating_sub(cfg.pause_ms),
            )),
            complete_above: cfg.turn_threshold,
        })
    }
}

struct SpeakerSlot {
    speaker: Speaker,
    endpointer: SpeakerEndpointer,
    barged: bool,
    /// The turn model's answer for a pause, on its way.
    verdict: Option<(u32, tokio::sync::oneshot::Receiver<Verdict>)>,
}

impl SpeakerSlot {
    /// Hands a verdict that has arrived to the endpointer.
    fn poll_verdict(&mut self) {
        use tokio::sync::oneshot::error::TryRecvError;
        if let Some((pause, rx)) = &mut self.verdict {
            match rx.try_recv() {
                Ok(p) => {
                    self.endpointer.set_verdict(*pause, p);
                    self.verdict = None;
                }
                Err(TryRecvError::Closed) => self.verdict = None,
                Err(TryRecvError::Empty) => {}
            }
        }
    }
}

/// The speculative transcript, when one is coming and arrives within `wait` (none: however
/// long it takes).
async fn heard_within(
    transcript: Option<tokio::sync::oneshot::Receiver<SpeculativeText>>,
    wait: Option<Duration>,
) -> Option<SpeculativeText> {
    let rx = transcript?;
    match wait {
        Some(wait) => tokio::time::timeout(wait, rx).await.ok()?.ok(),
        None => rx.await.ok(),
    }
}

/// Asks Smart Turn about `audio` on a blocking thread and, when a transcript is coming, reads
/// its [`TextCue`] (a "complete" waits for it only as `text_wait` says: a slow transcription
/// does not hold the turn's end past that); the fused [`Verdict`] comes on the receiver (which
/// closes without one if the model fails).
fn ask_turn_model(
    model: Arc<SmartTurn>,
    audio: Arc<[i16]>,
    transcript: Option<tokio::sync::oneshot::Receiver<SpeculativeText>>,
    text_wait: Option<TextWait>,
) -> tokio::sync::oneshot::Receiver<Verdict> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let probability = match tokio::task::spawn_blocking(move || model.predict(&audio)).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::warn!("Smart Turn failed; the turn ends at the silence limit: {e}");
                return;
            }
            Err(_) => return,
        };
        let wait = text_wait
            .filter(|w| probability > w.complete_above)
            .map(|w| w.limit);
        let heard = heard_within(transcript, wait).await;
        let verdict = Verdict {
            probability,
            text: heard
                .as_ref()
                .map_or(TextCue::Neutral, |h| text_cue(&h.text)),
            last_word: heard.and_then(|h| h.last_word),
        };
        let _ = tx.send(verdict);
    });
    rx
}

/// What a speaker's pause sets off: Smart Turn's verdict (off the frame path) and, with
/// speculative STT, a transcription started now.
struct PauseHandling<'a> {
    events: &'a mpsc::UnboundedSender<SessionEvent>,
    turn_model: Option<&'a Arc<SmartTurn>>,
    speculative: bool,
    text_check: bool,
    text_wait: Option<TextWait>,
}

impl PauseHandling<'_> {
    fn paused(&self, slot: &mut SpeakerSlot, pause: u32, audio: Arc<[i16]>) {
        let (text_tx, text_rx) = if self.speculative && self.text_check {
            let (tx, rx) = tokio::sync::oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        if let Some(model) = self.turn_model {
            let verdict = ask_turn_model(model.clone(), audio.clone(), text_rx, self.text_wait);
            slot.verdict = Some((pause, verdict));
        }
        if self.speculative {
            let speaker = slot.speaker.clone();
            let _ = self
                .events
                .send(SessionEvent::Paused(speaker, pause, audio, text_tx));
        }
    }
}

impl FrameRouter {
    /// Handles one frame of `speaker`'s interleaved PCM that arrived at `now`.
    pub fn push(
        &mut self,
        speaker: &Speaker,
        interleaved: &[i16],
        channels: u16,
        rate: u32,
        now: Instant,
    ) {
        // A new speaker's slot is made once; afterwards the lookup borrows the id (no clone
        // per frame: the frame path does not allocate once warm, tests/frame_alloc.rs).
        if !self.speakers.contains_key(&speaker.id) {
            let slot = SpeakerSlot {
                speaker: speaker.clone(),
                endpointer: SpeakerEndpointer::with_vad(self.cfg, self.models.vad.clone()),
                barged: false,
                verdict: None,
            };
            self.speakers.insert(speaker.id.clone(), slot);
        }
        let Some(slot) = self.speakers.get_mut(&speaker.id) else {
            return;
        };
        slot.poll_verdict();
        let event = slot.endpointer.push(interleaved, channels, rate, now);
        if let Some(min) = self.barge_in_ms {
            if !slot.barged
                && slot.endpointer.current_voiced_ms() >= min
                && self.playback.is_playing()
            {
                slot.barged = true;
                let _ = self
                    .events
                    .send(SessionEvent::BargeIn(slot.speaker.clone()));
            }
        }
        match event {
            Some(EndpointEvent::Utterance(audio)) => {
                slot.barged = false;
                slot.verdict = None;
                let _ = self
                    .events
                    .send(SessionEvent::Utterance(slot.speaker.clone(), audio));
            }
            Some(EndpointEvent::Dropped { voiced_ms }) => {
                slot.barged = false;
                slot.verdict = None;
                tracing::debug!(speaker = %slot.speaker.name, voiced_ms, "utterance too short, dropped");
            }
            Some(EndpointEvent::Paused { pause, audio }) => {
                let pauses = PauseHandling {
                    events: &self.events,
                    turn_model: self.models.turn.as_ref(),
                    speculative: self.speculative,
                    text_check: self.text_check,
                    text_wait: TextWait::of(&self.cfg, &self.playback),
                };
                pauses.paused(slot, pause, Arc::from(audio));
            }
            Some(EndpointEvent::Resumed) => {
                slot.verdict = None;
                if self.speculative {
                    let _ = self
                        .events
                        .send(SessionEvent::Resumed(slot.speaker.clone()));
                }
            }
            Some(EndpointEvent::Continued { carried }) => {
                slot.verdict = None;
                let _ = self
                    .events
                    .send(SessionEvent::Continued(slot.speaker.clone(), carried));
            }
            Some(EndpointEvent::SpeechStarted) | None => {}
        }
    }

    /// Waits for every turn-model verdict on its way and hands it over, so a faster-than-real
    /// time feed (`simulate --fast`) sees the model answer within the silence it asked in.
    pub(crate) async fn settle(&mut self) {
        for slot in self.speakers.values_mut() {
            if let Some((pause, rx)) = slot.verdict.take() {
                if let Ok(p) = rx.await {
                    slot.endpointer.set_verdict(pause, p);
                }
            }
        }
    }

    /// Ends every utterance in progress (input ended).
    pub fn flush(&mut self, now: Instant) {
        for slot in self.speakers.values_mut() {
            if let Some(EndpointEvent::Utterance(audio)) = slot.endpointer.flush(now) {
                let _ = self
                    .events
                    .send(SessionEvent::Utterance(slot.speaker.clone(), audio));
            }
        }
    }

    /// Forgets a speaker (they left); an utterance in progress is handled.
    pub(crate) fn remove_speaker(&mut self, id: &str, now: Instant) {
        if let Some(mut slot) = self.speakers.remove(id) {
            if let Some(EndpointEvent::Utterance(audio)) = slot.endpointer.flush(now) {
                let _ = self
                    .events
                    .send(SessionEvent::Utterance(slot.speaker, audio));
            }
        }
    }
}

/// Milestones of one turn. Instants are absolute; [`TurnTimeline::ms`] makes them relative to
/// the end of speech.
#[derive(Debug, Clone, Copy)]
pub struct TurnTimeline {
    /// Last voiced frame.
    pub speech_end: Instant,
    /// The endpointer decided the utterance was over.
    pub endpoint_detected: Instant,
    /// Speech-to-text returned.
    pub stt_done: Option<Instant>,
    /// The agent's first text arrived.
    pub agent_first_token: Option<Instant>,
    /// The first synthesized audio arrived.
    pub first_tts_audio: Option<Instant>,
    /// The first reply audio started playing.
    pub playback_start: Option<Instant>,
}

/// [`TurnTimeline`] in milliseconds after the end of speech.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct TimelineMs {
    /// End of speech → endpoint detected (the configured hang-over, in practice).
    pub endpoint_detected: f64,
    /// End of speech → transcript.
    pub stt_done: Option<f64>,
    /// End of speech → first agent token.
    pub agent_first_token: Option<f64>,
    /// End of speech → first TTS audio.
    pub first_tts_audio: Option<f64>,
    /// End of speech → playback start.
    pub playback_start: Option<f64>,
    /// Endpoint detected → first TTS audio: the processing part of the response time (the
    /// headline, what the user feels, is `first_tts_audio`: it includes the end-of-turn wait).
    pub voice_to_voice: Option<f64>,
}

impl TurnTimeline {
    /// Milliseconds after the end of speech.
    pub fn ms(&self) -> TimelineMs {
        let rel = |t: Instant| t.saturating_duration_since(self.speech_end).as_secs_f64() * 1000.0;
        TimelineMs {
            endpoint_detected: rel(self.endpoint_detected),
            stt_done: self.stt_done.map(rel),
            agent_first_token: self.agent_first_token.map(rel),
            first_tts_audio: self.first_tts_audio.map(rel),
            playback_start: self.playback_start.map(rel),
            voice_to_voice: self.first_tts_audio.map(|t| {
                t.saturating_duration_since(self.endpoint_detected)
                    .as_secs_f64()
                    * 1000.0
            }),
        }
    }
}

impl TurnReport {
    /// A report for `turn` before anything happened: completed, nothing heard or said yet.
    fn new(turn: &QueuedTurn) -> TurnReport {
        TurnReport {
            speaker: turn.speaker.clone(),
            transcript: String::new(),
            reply: String::new(),
            outcome: TurnOutcome::Completed,
            timeline: TurnTimeline {
                speech_end: turn.speech_end,
                endpoint_detected: turn.endpoint_detected,
                stt_done: None,
                agent_first_token: None,
                first_tts_audio: None,
                playback_start: None,
            },
            utterance_ms: turn.audio_ms,
            stt_provider: None,
            tts_provider: None,
            errors: Vec::new(),
            reply_audio_ms: 0,
            end_rule: turn.end_rule,
            speculation: turn.speculation,
            continued: turn.continued,
            reply_played_ms: None,
        }
    }
}

/// What speaking a reply did.
#[derive(Default)]
struct SpokenReply {
    first_audio: Option<Instant>,
    playback_start: Option<Instant>,
    /// The TTS providers that spoke, in order.
    providers: Vec<String>,
    errors: Vec<String>,
    audio_ms: u64,
    /// Why part of the reply was not spoken, the first time that happened.
    cut: Option<String>,
}

/// The agent's text deltas cut into sentences as they stream in, each sent on `sentences`
/// the moment it is complete; an apology is spoken when the agent fails before saying
/// anything. The whole text, when the first token came, and the agent's error.
async fn sentences_of(
    mut deltas: crate::agent::ReplyStream,
    sentences: mpsc::UnboundedSender<String>,
) -> (String, Option<Instant>, Option<crate::agent::AgentError>) {
    let mut splitter = SentenceSplitter::new();
    let mut full = String::new();
    let mut first_token = None;
    let mut error = None;
    while let Some(delta) = deltas.recv().await {
        match delta {
            Ok(text) => {
                first_token.get_or_insert_with(Instant::now);
                full.push_str(&text);
                for s in splitter.push(&text) {
                    let _ = sentences.send(s);
                }
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    if let Some(rest) = splitter.finish() {
        let _ = sentences.send(rest);
    }
    if error.is_some() && full.trim().is_empty() {
        let _ = sentences
            .send("Sorry, I could not reach the assistant just now. Please try again.".into());
    }
    (full, first_token, error)
}

/// How a turn ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum TurnOutcome {
    /// The reply was spoken in full.
    Completed,
    /// Someone talked over the bot and the reply was stopped.
    Interrupted,
    /// Speech-to-text found no words (silence, noise, a dropped hallucination): no turn.
    NoSpeech,
    /// The turn failed; the reason is in `errors`.
    Failed(String),
    /// The session shut down during the turn.
    Cancelled,
    /// Heard, but not addressed to the bot (wake names in a busy channel): no reply.
    NotAddressed,
    /// The speaker went on within `turn_resume_ms`: this turn was withdrawn (its reply, if
    /// begun, stopped) and the next turn answers the whole; not a turn.
    Continued,
}

/// Everything about one turn, for the caller to print, log or count.
#[derive(Debug, Clone)]
pub struct TurnReport {
    /// Who spoke.
    pub speaker: Speaker,
    /// What they said.
    pub transcript: String,
    /// What the bot answered (the part that was produced).
    pub reply: String,
    /// How it ended.
    pub outcome: TurnOutcome,
    /// Milestones.
    pub timeline: TurnTimeline,
    /// Length of the utterance audio, ms.
    pub utterance_ms: u64,
    /// The speech-to-text provider that answered.
    pub stt_provider: Option<String>,
    /// The text-to-speech provider(s) that spoke.
    pub tts_provider: Option<String>,
    /// Provider and agent errors met on the way (failovers included).
    pub errors: Vec<String>,
    /// Reply audio produced, ms.
    pub reply_audio_ms: u64,
    /// The rule that ended the utterance.
    pub end_rule: EndRule,
    /// Speculative speech-to-text in this turn.
    pub speculation: SpeculationReport,
    /// Whether it continues a turn the speaker went on with (that turn was withdrawn).
    pub continued: bool,
    /// A turn withdrawn while its reply played ([`TurnOutcome::Continued`]): how long the
    /// reply had played.
    pub reply_played_ms: Option<u64>,
}

/// What speculative speech-to-text did in one turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SpeculationReport {
    /// Whether the transcript came from a speculation started at the final pause.
    pub used: bool,
    /// Speculations started in this turn and thrown away (the speaker went on).
    pub wasted: u32,
    /// Of those, the ones thrown away while they waited for the speaker's earlier
    /// transcription: they never called the provider (no CPU spent).
    pub skipped: u32,
    /// Whether the transcript came from a streaming transcription fed at each pause (the
    /// provider streams; nothing is thrown away then).
    pub streamed: bool,
}

impl TurnReport {
    /// Whether this was a turn at all (someone said something).
    pub(crate) fn is_turn(&self) -> bool {
        !matches!(
            self.outcome,
            TurnOutcome::NoSpeech | TurnOutcome::NotAddressed | TurnOutcome::Continued
        )
    }
}

/// What a session needs.
#[derive(Clone)]
pub struct SessionDeps {
    /// Speech-to-text providers, in failover order.
    pub stt: Vec<Arc<SpeechToTextProvider>>,
    /// Text-to-speech providers, in failover order.
    pub tts: Vec<Arc<TextToSpeechProvider>>,
    /// The agent.
    pub agent: Agent,
    /// Pipeline settings.
    pub config: PipelineConfig,
    /// `[tts.voices]`: the first TTS provider's voice for a reply's language.
    pub voices: TtsVoices,
    /// The VAD and turn models (none: the energy gate and a fixed silence).
    pub models: TurnModels,
}

/// A running voice session: the task that handles turns.
pub struct VoiceSession {
    /// Reports of finished turns.
    pub reports: mpsc::UnboundedReceiver<TurnReport>,
    task: JoinHandle<()>,
    shutdown: CancellationToken,
}

/// Which utterances a session answers, and which barge-ins stop a reply: the transport's
/// rule (Discord: wake names once several people are in the channel).
pub trait TurnGate: Send + Sync + 'static {
    /// The text the agent should see for `transcript` (the wake name taken out), or `None`
    /// to leave the utterance unanswered.
    fn admit(&self, speaker: &Speaker, transcript: &str) -> Option<String>;
    /// Whether `speaker` talking over the reply to `answering` stops it.
    fn barge_in(&self, speaker: &Speaker, answering: Option<&Speaker>) -> bool;
}

impl VoiceSession {
    /// Starts a session for `conversation` playing on `playback`; returns the router to feed
    /// frames into.
    pub fn start(
        deps: SessionDeps,
        conversation: String,
        playback: Arc<Playback>,
    ) -> (FrameRouter, VoiceSession) {
        Self::start_gated(deps, conversation, playback, None)
    }

    /// [`VoiceSession::start`], with `gate` deciding which utterances get a reply and which
    /// barge-ins count.
    pub(crate) fn start_gated(
        deps: SessionDeps,
        conversation: String,
        playback: Arc<Playback>,
        gate: Option<Arc<dyn TurnGate>>,
    ) -> (FrameRouter, VoiceSession) {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let mut cfg = EndpointConfig::from(&deps.config);
        cfg.use_turn_model &= deps.models.turn.is_some();
        if !playback.is_realtime() {
            // A reply is over at once (`simulate --fast`): nothing left to withdraw.
            cfg.resume_ms = 0;
        }
        let router = FrameRouter {
            cfg,
            barge_in_ms: deps.config.barge_in.then_some(deps.config.barge_in_min_ms),
            speakers: HashMap::new(),
            events: events_tx,
            playback: playback.clone(),
            models: deps.models.clone(),
            speculative: deps.config.speculative_stt,
            text_check: deps.config.turn_text_check && deps.config.language.starts_with("en"),
        };
        let shutdown = CancellationToken::new();
        let runner = Arc::new(TurnRunner {
            deps,
            conversation,
            playback,
            current: Mutex::new(None),
            shutdown: shutdown.clone(),
            gate,
            answering: Mutex::new(None),
        });
        let task = tokio::spawn(runner.run(events_rx, reports_tx));
        (
            router,
            VoiceSession {
                reports: reports_rx,
                task,
                shutdown,
            },
        )
    }

    /// Cancels the turn in progress and every queued turn (they are reported `Cancelled`).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits for the session task to end (after the router is dropped and turns are done).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

use super::speculation::{Speculations, SttTask};
use super::streaming::{SpeakerStreams, SpeculativeText, SttResult};

struct QueuedTurn {
    speaker: Speaker,
    audio_ms: u64,
    speech_end: Instant,
    endpoint_detected: Instant,
    stt: SttTask,
    end_rule: EndRule,
    speculation: SpeculationReport,
    continued: bool,
    link: Arc<TurnLink>,
}

/// A queued turn as its speaker's going on sees it: open (it may still be withdrawn),
/// withdrawn, or closed with or without its reply heard in full.
#[derive(Default)]
struct TurnLink {
    state: std::sync::atomic::AtomicU8,
    withdrawn: CancellationToken,
}

impl TurnLink {
    const OPEN: u8 = 0;
    const WITHDRAWN: u8 = 1;
    const ANSWERED: u8 = 2;
    const UNANSWERED: u8 = 3;

    fn swap_open(&self, to: u8) -> Result<u8, u8> {
        use std::sync::atomic::Ordering::SeqCst;
        self.state.compare_exchange(Self::OPEN, to, SeqCst, SeqCst)
    }

    /// The speaker went on: withdraws the turn unless its reply was heard in full; whether
    /// the new speech continues it (also when it had no reply to withdraw).
    fn withdraw(&self) -> bool {
        match self.swap_open(Self::WITHDRAWN) {
            Ok(_) => {
                self.withdrawn.cancel();
                true
            }
            Err(state) => state != Self::ANSWERED,
        }
    }

    /// The turn is over, its reply heard in full or not; false when it had been withdrawn.
    fn close(&self, answered: bool) -> bool {
        let to = if answered {
            Self::ANSWERED
        } else {
            Self::UNANSWERED
        };
        self.swap_open(to).is_ok()
    }
}

/// What the session loop keeps per speaker between events.
#[derive(Default)]
struct Speakers {
    speculations: Speculations,
    streams: SpeakerStreams,
    /// Each speaker's last queued turn, which their going on may withdraw.
    last_turn: HashMap<String, Arc<TurnLink>>,
    /// Samples to cut from the start of a speaker's utterance in progress: it began as a
    /// continuation of a turn whose reply had been heard in full, so it stands on its own.
    cut: HashMap<String, usize>,
}

impl Speakers {
    /// `speaker` went on after their turn ended: it is withdrawn (the utterance in progress
    /// continues it), unless its reply was heard in full (the utterance then loses the
    /// `carried` samples of that turn's audio it starts with). A speculation from a pause in
    /// between is void.
    fn continued(&mut self, speaker: &Speaker, carried: usize) {
        self.speculations.discard(&speaker.id);
        let withdrawn = self
            .last_turn
            .get(&speaker.id)
            .is_none_or(|turn| turn.withdraw());
        if withdrawn {
            tracing::info!(speaker = %speaker.name, "went on after the turn ended: the turn continues");
        } else {
            tracing::debug!(speaker = %speaker.name, "went on after a reply heard in full: a new turn");
            self.cut.insert(speaker.id.clone(), carried);
        }
    }

    /// A pause's audio without what was cut from the speaker's utterance.
    fn without_cut(&self, speaker: &str, audio: Arc<[i16]>) -> Arc<[i16]> {
        match self.cut.get(speaker) {
            Some(&n) => Arc::from(&audio[n.min(audio.len())..]),
            None => audio,
        }
    }

    /// Whether the speaker's finished utterance `audio` continues their previous turn; its
    /// audio loses what was cut.
    fn continues(&mut self, speaker: &str, audio: &mut UtteranceAudio) -> bool {
        match (self.cut.remove(speaker), audio.continued) {
            (Some(n), Some(_)) => {
                audio.samples.drain(..n.min(audio.samples.len()));
                false
            }
            (_, continued) => continued.is_some(),
        }
    }
}

struct TurnRunner {
    deps: SessionDeps,
    conversation: String,
    playback: Arc<Playback>,
    current: Mutex<Option<CancellationToken>>,
    gate: Option<Arc<dyn TurnGate>>,
    answering: Mutex<Option<Speaker>>,
    shutdown: CancellationToken,
}

impl TurnRunner {
    async fn run(
        self: Arc<Self>,
        mut events: mpsc::UnboundedReceiver<SessionEvent>,
        reports: mpsc::UnboundedSender<TurnReport>,
    ) {
        let (queue_tx, mut queue_rx) = mpsc::unbounded_channel::<QueuedTurn>();
        let worker = {
            let me = self.clone();
            tokio::spawn(async move {
                while let Some(turn) = queue_rx.recv().await {
                    let report = me.handle(turn).await;
                    tracing::info!(
                        speaker = %report.speaker.name,
                        outcome = ?report.outcome,
                        voice_to_voice_ms = report.timeline.ms().voice_to_voice,
                        "turn finished"
                    );
                    tracing::debug!(transcript = %report.transcript, reply = %report.reply, "turn text");
                    let _ = reports.send(report);
                }
            })
        };
        let mut speakers = Speakers::default();
        while let Some(event) = events.recv().await {
            match event {
                SessionEvent::Utterance(speaker, audio) => {
                    let turn = self.queued_turn(speaker, audio, &mut speakers);
                    let _ = queue_tx.send(turn);
                }
                SessionEvent::Paused(speaker, pause, audio, text) => {
                    let audio = speakers.without_cut(&speaker.id, audio);
                    let options = self.options();
                    if speakers
                        .streams
                        .ready(&self.deps.stt, &options, &speaker.id, &audio)
                        .await
                    {
                        speakers.streams.push(&speaker.id, audio, text);
                        continue;
                    }
                    let call = self.stt_call(audio, text);
                    speakers.speculations.start(&speaker.id, pause, call);
                }
                SessionEvent::Resumed(speaker) => speakers.speculations.discard(&speaker.id),
                SessionEvent::Continued(speaker, carried) => speakers.continued(&speaker, carried),
                SessionEvent::BargeIn(speaker) => self.barge_in(&speaker),
            }
        }
        drop(queue_tx);
        let _ = worker.await;
    }

    /// A finished utterance as a turn for the queue, its transcription already under way:
    /// the speaker's stream finished, the speculation that covers it, or a new call.
    fn queued_turn(
        &self,
        speaker: Speaker,
        mut audio: UtteranceAudio,
        speakers: &mut Speakers,
    ) -> QueuedTurn {
        let continued = speakers.continues(&speaker.id, &mut audio);
        let Speakers {
            speculations,
            streams,
            last_turn,
            ..
        } = speakers;
        let (speculated, mut speculation) = speculations.take(&speaker.id, audio.pause);
        let samples = Arc::from(audio.samples.as_slice());
        let stt = match (streams.take(&speaker.id), speculated) {
            (Some(stream), _) => {
                speculation.streamed = true;
                let providers = self.deps.stt.clone();
                stream.finish(samples, providers, self.options(), self.budget())
            }
            (None, Some(stt)) => stt,
            (None, None) => speculations.transcribe(&speaker.id, self.stt_call(samples, None)),
        };
        let link = Arc::new(TurnLink::default());
        last_turn.insert(speaker.id.clone(), link.clone());
        QueuedTurn {
            speaker,
            audio_ms: audio.duration_ms(),
            speech_end: audio.speech_end,
            endpoint_detected: audio.endpoint_detected,
            stt,
            end_rule: audio.end_rule,
            speculation,
            continued,
            link,
        }
    }

    /// Someone talked over the reply: it stops, if they may interrupt it.
    fn barge_in(&self, speaker: &Speaker) {
        if !self.barge_in_counts(speaker) {
            tracing::debug!(speaker = %speaker.name, "talking over the reply to someone else: not a barge-in");
            return;
        }
        tracing::info!(speaker = %speaker.name, "barge-in: stopping the reply");
        if let Some(token) = self.lock_current().take() {
            token.cancel();
        }
        self.playback.stop();
    }

    fn lock_current(&self) -> std::sync::MutexGuard<'_, Option<CancellationToken>> {
        match self.current.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Whether `speaker` talking over the current reply stops it (the gate's rule; always
    /// without a gate).
    fn barge_in_counts(&self, speaker: &Speaker) -> bool {
        let Some(gate) = &self.gate else {
            return true;
        };
        let answering = self
            .answering
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        gate.barge_in(speaker, answering.as_ref())
    }

    /// The text the agent sees, or `None` when the gate leaves the utterance unanswered.
    fn admitted(&self, speaker: &Speaker, transcript: &str) -> Option<String> {
        match &self.gate {
            Some(gate) => gate.admit(speaker, transcript),
            None => Some(transcript.to_string()),
        }
    }

    /// The options of a synthesis by provider `id` of a reply in `language`: every provider
    /// is told the language; the voice goes to the first provider only (voice ids are a
    /// provider's own): `tts_voice` (the configuration's or a guild's) for the configured
    /// language, `[tts.voices]` for the others, `tts_voice` where that has no entry.
    fn synthesis_options(&self, id: &str, language: Option<&str>) -> SynthesisOptions {
        let mut options = SynthesisOptions::default();
        if let Some(code) = language {
            options = options.with_language(code);
        }
        let tts_voice = self.deps.config.tts_voice.as_deref();
        let configured = LanguageCode::try_from(self.deps.config.language.clone()).ok();
        let in_configured = language
            .and_then(|code| LanguageCode::try_from(code.to_string()).ok())
            .is_some_and(|code| Some(code) == configured);
        let per_language = language
            .filter(|_| !(in_configured && tts_voice.is_some()))
            .and_then(|code| self.deps.voices.voice_for(code))
            .map(VoiceId::as_str);
        let voice = per_language.or(tts_voice);
        let first = self.deps.tts.first().map(|p| p.id.as_str());
        if let (Some(voice), Some(first)) = (voice, first) {
            if first == id {
                options.voice = abi_stable::std_types::ROption::RSome(voice.into());
            }
        }
        options
    }

    /// The language of a reply to `transcript`: the one speech-to-text detected, else the
    /// configured one (none when that is `auto`).
    fn reply_language(&self, transcript: &Transcript) -> Option<String> {
        transcript
            .language_code()
            .filter(|code| !code.is_empty() && *code != "auto")
            .map(str::to_string)
            .or_else(|| {
                let configured = self.deps.config.language.as_str();
                (configured != "auto").then(|| configured.to_string())
            })
    }

    /// The options of every transcription in this session.
    fn options(&self) -> TranscribeOptions {
        TranscribeOptions::default().with_language(self.deps.config.language.as_str())
    }

    /// A turn's speech-to-text budget.
    fn budget(&self) -> Duration {
        Duration::from_millis(self.deps.config.stt_budget_ms)
    }

    /// One transcription of `samples` through the providers (lazy: it runs when polled);
    /// `text` hears a speculation's words for the turn-end rule.
    fn stt_call(
        &self,
        samples: Arc<[i16]>,
        text: Option<tokio::sync::oneshot::Sender<SpeculativeText>>,
    ) -> impl std::future::Future<Output = (SttResult, Instant)> + Send + 'static {
        let providers = self.deps.stt.clone();
        let (options, budget) = (self.options(), self.budget());
        async move {
            let result = failover::transcribe(&providers, samples, options, budget).await;
            if let (Some(tx), Ok(done)) = (text, &result) {
                let _ = tx.send(SpeculativeText {
                    text: done.transcript.text.to_string(),
                    last_word: done.words.last().and_then(|w| w.probability.into_option()),
                });
            }
            (result, Instant::now())
        }
    }

    /// Answers `turn`, unless its speaker goes on before its reply has been heard in full:
    /// then it stops where it is, its reply stopped, reported [`TurnOutcome::Continued`].
    async fn handle(&self, turn: QueuedTurn) -> TurnReport {
        let mut report = TurnReport::new(&turn);
        let link = turn.link.clone();
        let transcription = turn.stt.abort_handle();
        let withdrawn = tokio::select! {
            biased;
            () = link.withdrawn.cancelled() => true,
            () = self.answer(&mut report, turn) => false,
        };
        // The turn is no longer the one replying, however `answer` ended.
        self.lock_current().take();
        let replying = self
            .answering
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if withdrawn {
            // Its words are no longer wanted (a provider call in progress ends on its own).
            transcription.abort();
            if replying.is_some() {
                let played = self.playback.stop();
                report.reply_played_ms = played.map(|d| d.as_millis() as u64);
                tracing::info!(
                    played_ms = report.reply_played_ms,
                    "the reply to the withdrawn turn was stopped"
                );
            }
        }
        if withdrawn || !link.close(report.outcome == TurnOutcome::Completed) {
            report.outcome = TurnOutcome::Continued;
        }
        report
    }

    /// Transcript → agent → speech → playback, the report filled in on the way; the turn is
    /// left set as the one replying (`handle` clears it).
    async fn answer(&self, report: &mut TurnReport, turn: QueuedTurn) {
        if self.shutdown.is_cancelled() {
            turn.stt.abort();
            report.outcome = TurnOutcome::Cancelled;
            return;
        }
        let Some(heard) = self.transcribed(report, turn.stt).await else {
            return;
        };
        *self.answering.lock().unwrap_or_else(|p| p.into_inner()) = Some(report.speaker.clone());
        let cancel = self.shutdown.child_token();
        *self.lock_current() = Some(cancel.clone());
        let stopped = || {
            if self.shutdown.is_cancelled() {
                TurnOutcome::Cancelled
            } else {
                TurnOutcome::Interrupted
            }
        };
        report.outcome = tokio::select! {
            _ = cancel.cancelled() => stopped(),
            outcome = self.reply(report, heard, turn.link.withdrawn.clone()) => outcome,
        };
        // Let the reply finish playing before the next turn, unless it is interrupted.
        if let (TurnOutcome::Completed, Some(end)) = (&report.outcome, self.playback.ends_at()) {
            tokio::select! {
                _ = cancel.cancelled() => report.outcome = stopped(),
                _ = tokio::time::sleep_until(end.into()) => {}
            }
        }
    }

    /// Waits for the turn's transcript and fills in the report; what the agent answers, or
    /// `None` (with the outcome set) when there is nothing to answer: a failure, no words,
    /// or words not addressed to the bot.
    async fn transcribed(
        &self,
        report: &mut TurnReport,
        stt: JoinHandle<(SttResult, Instant)>,
    ) -> Option<Heard> {
        let (stt, stt_done) = match stt.await {
            Ok(r) => r,
            Err(e) => {
                report.outcome = TurnOutcome::Failed(format!("speech-to-text task failed: {e}"));
                return None;
            }
        };
        report.timeline.stt_done = Some(stt_done);
        let language = match stt {
            Ok(done) => {
                report.transcript = done.transcript.text.trim().to_string();
                report.stt_provider = Some(done.provider);
                report.errors = done.errors.iter().map(|e| e.to_string()).collect();
                self.reply_language(&done.transcript)
            }
            Err(errors) => {
                report.errors = errors.iter().map(|e| e.to_string()).collect();
                report.outcome = TurnOutcome::Failed(if errors.is_empty() {
                    "no speech-to-text provider is configured".into()
                } else {
                    "every speech-to-text provider failed".into()
                });
                return None;
            }
        };
        if report.transcript.is_empty() {
            report.outcome = TurnOutcome::NoSpeech;
            return None;
        }
        let Some(text) = self.admitted(&report.speaker, &report.transcript) else {
            report.outcome = TurnOutcome::NotAddressed;
            return None;
        };
        Some(Heard { text, language })
    }

    /// Agent → sentences → TTS → playback, with the agent and TTS overlapping; `withdrawn`
    /// takes the exchange out of the agent's memory if the turn is withdrawn.
    async fn reply(
        &self,
        report: &mut TurnReport,
        heard: Heard,
        withdrawn: CancellationToken,
    ) -> TurnOutcome {
        let request = AgentRequest {
            conversation: self.conversation.clone(),
            speaker_id: report.speaker.id.clone(),
            speaker_name: report.speaker.name.clone(),
            text: heard.text,
            language: heard.language.clone(),
            withdrawn,
        };
        let deltas = self.deps.agent.reply(request);
        let (sentence_tx, sentence_rx) = mpsc::unbounded_channel::<String>();
        let ((full, first_token, agent_error), spoken) = tokio::join!(
            sentences_of(deltas, sentence_tx),
            self.speak_all(sentence_rx, heard.language.as_deref())
        );
        report.reply = full.trim().to_string();
        report.timeline.agent_first_token = first_token;
        report.timeline.first_tts_audio = spoken.first_audio;
        report.timeline.playback_start = spoken.playback_start;
        report.reply_audio_ms = spoken.audio_ms;
        report.tts_provider = (!spoken.providers.is_empty()).then(|| spoken.providers.join(","));
        report.errors.extend(spoken.errors);
        if let Some(e) = agent_error {
            report.errors.push(format!("agent: {e}"));
            return TurnOutcome::Failed(format!("agent: {}", e.label()));
        }
        if spoken.first_audio.is_none() {
            return TurnOutcome::Failed("no text-to-speech provider could speak the reply".into());
        }
        if let Some(why) = spoken.cut {
            return TurnOutcome::Failed(format!("the reply was cut short: {why}"));
        }
        TurnOutcome::Completed
    }

    /// Speaks each sentence as it comes, in order, until the sender closes.
    async fn speak_all(
        &self,
        mut sentences: mpsc::UnboundedReceiver<String>,
        language: Option<&str>,
    ) -> SpokenReply {
        let mut out = SpokenReply::default();
        while let Some(sentence) = sentences.recv().await {
            let text = speakable(&sentence);
            if text.is_empty() {
                continue;
            }
            let spoken = self
                .speak(
                    &text,
                    language,
                    &mut out.first_audio,
                    &mut out.playback_start,
                    &mut out.audio_ms,
                    &mut out.errors,
                )
                .await;
            match &spoken {
                Spoken::Whole(p) | Spoken::BrokeOff(p, _) if !out.providers.contains(p) => {
                    out.providers.push(p.clone())
                }
                _ => {}
            }
            if out.cut.is_none() {
                out.cut = spoken.cut();
            }
        }
        out
    }

    /// Speaks one sentence, failing over between TTS providers (open circuits last) until one
    /// produces audio, within the sentence's budget for its first audio.
    async fn speak(
        &self,
        text: &str,
        language: Option<&str>,
        first_audio: &mut Option<Instant>,
        playback_start: &mut Option<Instant>,
        audio_ms: &mut u64,
        errors: &mut Vec<String>,
    ) -> Spoken {
        let budget = Budget::new(Duration::from_millis(self.deps.config.tts_budget_ms));
        for (provider, _) in FailoverOrder::new(&self.deps.tts) {
            if budget.limit(provider.timeout()).is_none() {
                errors.push(budget.spent(&provider.id, "text-to-speech").to_string());
                break;
            }
            let mut stream = provider
                .synthesize(
                    text.to_string(),
                    self.synthesis_options(&provider.id, language),
                )
                .first_audio_by(budget.deadline());
            let mut produced = false;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(audio) => {
                        if audio.samples.is_empty() {
                            continue;
                        }
                        first_audio.get_or_insert_with(Instant::now);
                        *audio_ms += super::playback::duration(&audio).as_millis() as u64;
                        let start = self.playback.enqueue(&audio);
                        playback_start.get_or_insert(start);
                        produced = true;
                    }
                    Err(e) => {
                        errors.push(e.to_string());
                        if produced {
                            // Not counted by the provider handle, which counts first audio.
                            tracing::warn!("text-to-speech broke off mid-sentence: {e}");
                            return Spoken::BrokeOff(provider.id.clone(), e.to_string());
                        }
                        // The provider handle logged it (once); fail over.
                        tracing::debug!("text-to-speech failed, failing over: {e}");
                        break;
                    }
                }
            }
            if produced {
                return Spoken::Whole(provider.id.clone());
            }
        }
        Spoken::Not(text.to_string())
    }
}

/// An utterance the session answers.
struct Heard {
    /// What the agent sees (a wake name taken out).
    text: String,
    /// The reply's language: detected by speech-to-text, else the configured one.
    language: Option<String>,
}

/// How one sentence of a reply went.
enum Spoken {
    /// Spoken in full by this provider.
    Whole(String),
    /// This provider started speaking it, then failed (the error).
    BrokeOff(String, String),
    /// No provider could speak it (the sentence).
    Not(String),
}

impl Spoken {
    /// Why the reply is incomplete because of this sentence, if it is.
    fn cut(&self) -> Option<String> {
        match self {
            Spoken::Whole(_) => None,
            Spoken::BrokeOff(provider, error) => Some(format!(
                "text-to-speech provider `{provider}` broke off mid-sentence: {error}"
            )),
            Spoken::Not(sentence) => Some(format!(
                "no text-to-speech provider could speak {:?}",
                sentence.chars().take(60).collect::<String>()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_can_be_withdrawn_until_its_reply_is_heard_in_full() {
        let open = TurnLink::default();
        assert!(open.withdraw(), "an open turn is withdrawn");
        assert!(open.withdrawn.is_cancelled());
        assert!(
            !open.close(true),
            "a withdrawn turn does not close as answered"
        );

        let answered = TurnLink::default();
        assert!(answered.close(true));
        assert!(!answered.withdraw(), "a reply heard in full stays");
        assert!(!answered.withdrawn.is_cancelled());

        let unanswered = TurnLink::default();
        assert!(unanswered.close(false));
        assert!(
            unanswered.withdraw(),
            "nothing was heard (no words, not addressed, cut): the speech continues it"
        );
        assert!(!unanswered.withdrawn.is_cancelled(), "nothing left to stop");
    }

    fn words(text: &str) -> SpeculativeText {
        SpeculativeText {
            text: text.into(),
            last_word: Some(0.9),
        }
    }

    #[tokio::test]
    async fn the_verdict_waits_for_the_transcript_only_as_long_as_it_is_told() {
        let limit = Some(Duration::from_millis(50));
        let (late, rx) = tokio::sync::oneshot::channel::<SpeculativeText>();
        assert!(
            heard_within(Some(rx), limit).await.is_none(),
            "not there in time"
        );
        drop(late);

        let (tx, rx) = tokio::sync::oneshot::channel();
        tx.send(words("What is it?")).expect("sent");
        let heard = heard_within(Some(rx), limit).await.map(|h| h.text);
        assert_eq!(heard.as_deref(), Some("What is it?"));

        // Without a limit (`simulate --fast`) it waits for however long the words take.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiting = tokio::spawn(heard_within(Some(rx), None));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(!waiting.is_finished());
        tx.send(words("Go on.")).expect("sent");
        assert!(waiting.await.expect("joins").is_some());
        assert!(
            heard_within(None, limit).await.is_none(),
            "no transcript coming"
        );
    }
}
