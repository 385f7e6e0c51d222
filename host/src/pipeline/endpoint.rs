//! Per-speaker endpointing: turns a speaker's PCM frames (any rate, any channel count) into
//! utterances of 16 kHz mono audio.
//!
//! Per frame: downmix to mono, measure RMS level, resample to 16 kHz (rubato, streaming), and
//! decide whether the frame is speech: with Silero VAD (`vad = "silero"`), frames under the
//! energy gate are silence without running the network, the rest take the probability of the
//! latest 32 ms window (with hysteresis); with `vad = "energy"`, a frame louder than the
//! threshold is speech. An utterance starts on a speech frame (with the pre-roll kept from
//! before it). After `turn_pause_ms` of silence the endpointer reports a pause (the router
//! asks Smart Turn and may start speculative speech-to-text); the turn then ends after
//! `turn_complete_silence_ms` if the model found it complete, or after
//! `turn_incomplete_silence_ms` whatever it found; without the model, after
//! `silence_hangover_ms`. `max_utterance_ms` cuts long speech. Utterances with less than
//! `min_utterance_ms` of speech are dropped as noise. An utterance's audio is kept for
//! `turn_resume_ms` after its end of speech: when the speaker goes on within that time (for
//! `min_utterance_ms` of speech), the new utterance continues it, starting with its audio, and
//! [`EndpointEvent::Continued`] tells the session to withdraw the turn that ended too early.
//! This is the hot path: no allocation per frame once warm (a pause copies the utterance once,
//! so does the end of an utterance that may be continued).

use std::collections::VecDeque;
use std::time::Instant;

use rubato::{FftFixedIn, Resampler};

use std::sync::Arc;

use serde::Serialize;

use super::models::{Silero, VadStream};
use super::sentences::TextCue;
use crate::config::{PipelineConfig, TurnModelKind};

/// Sample rate of utterance audio.
pub const UTTERANCE_RATE: u32 = 16_000;

/// Trailing silence kept after the last voiced frame, in 16 kHz samples (150 ms).
const TRAILING_KEEP: usize = 2_400;
/// Trailing silence of the audio a pause hands over, in 16 kHz samples (200 ms).
pub(crate) const TURN_TRAILING: usize = 3_200;

/// Endpointing parameters, derived from [`PipelineConfig`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointConfig {
    /// RMS level (linear, 0..1) above which a frame counts as speech (energy VAD).
    pub threshold: f32,
    /// Unvoiced time that ends an utterance without a turn model.
    pub hangover_ms: u32,
    /// Minimum voiced time for an utterance to count.
    pub min_voiced_ms: u32,
    /// Maximum utterance length.
    pub max_ms: u32,
    /// Audio kept from before speech started.
    pub preroll_ms: u32,
    /// Silero probability that starts speech (speech goes on down to this minus 0.15).
    pub vad_threshold: f32,
    /// RMS level (linear) under which Silero is not run.
    pub gate: f32,
    /// Silence after which a pause is reported.
    pub pause_ms: u32,
    /// Silence that ends a turn the model found complete.
    pub complete_ms: u32,
    /// Silence that ends a turn whatever the model found.
    pub incomplete_ms: u32,
    /// Silence that ends a turn the transcript found finished and the model incomplete.
    pub text_complete_ms: u32,
    /// Turn-model probability above which a turn is complete.
    pub turn_threshold: f32,
    /// A speculative transcript whose last word's probability is below this is unfinished
    /// (the speech-to-text invented the word that ends it); 0 turns the cue off.
    pub last_word_min_probability: f32,
    /// Whether a turn model decides (else `hangover_ms` does).
    pub use_turn_model: bool,
    /// Speech this soon after an utterance's end of speech continues that utterance (0:
    /// never).
    pub resume_ms: u32,
}

impl From<&PipelineConfig> for EndpointConfig {
    fn from(c: &PipelineConfig) -> Self {
        EndpointConfig {
            threshold: 10f32.powf(c.speech_threshold_dbfs / 20.0),
            hangover_ms: c.silence_hangover_ms,
            min_voiced_ms: c.min_utterance_ms,
            max_ms: c.max_utterance_ms,
            preroll_ms: c.preroll_ms,
            vad_threshold: c.vad_threshold,
            gate: 10f32.powf(c.vad_energy_gate_dbfs / 20.0),
            pause_ms: c.turn_pause_ms,
            complete_ms: c.turn_complete_silence_ms,
            incomplete_ms: c.turn_incomplete_silence_ms,
            text_complete_ms: c.turn_text_complete_silence_ms,
            turn_threshold: c.turn_threshold,
            last_word_min_probability: c.turn_last_word_min_probability,
            use_turn_model: c.turn_model == TurnModelKind::SmartTurn,
            resume_ms: c.turn_resume_ms,
        }
    }
}

/// The rule that ended an utterance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "rule")]
pub enum EndRule {
    /// The turn model found the turn complete (and the transcript, if any, did not stop
    /// mid-sentence), and the short silence passed.
    TurnComplete {
        /// Its probability.
        probability: f32,
    },
    /// The speculative transcript ends a sentence but the turn model found the turn
    /// incomplete, and `turn_text_complete_silence_ms` passed.
    TranscriptComplete {
        /// The model's probability.
        probability: f32,
    },
    /// The turn model found the turn complete but the speculative transcript's last word is
    /// unsure (below `turn_last_word_min_probability`), and `turn_text_complete_silence_ms`
    /// passed.
    LastWordUnsure {
        /// The model's probability.
        probability: f32,
        /// The last word's probability.
        last_word: f32,
    },
    /// The long silence passed (the model found the turn incomplete, or had not answered).
    SilenceLimit {
        /// The model's probability, when it answered.
        probability: Option<f32>,
        /// The transcript so far stops mid-sentence ("… are there in", "…").
        unfinished_words: bool,
        /// The transcript's last word's probability, when it was below
        /// `turn_last_word_min_probability` (a word the speech-to-text likely invented).
        unsure_last_word: Option<f32>,
    },
    /// The fixed silence passed (no turn model).
    Silence,
    /// The utterance reached `max_utterance_ms`.
    MaxLength,
    /// The input ended or the speaker left.
    InputEnded,
}

/// Every [`EndRule::label`].
pub(crate) const END_RULES: [&str; 7] = [
    "turn_complete",
    "transcript_complete",
    "last_word_unsure",
    "silence_limit",
    "silence",
    "max_length",
    "input_ended",
];

impl EndRule {
    /// A short label: `turn_complete`, `transcript_complete`, `last_word_unsure`,
    /// `silence_limit`, `silence`, `max_length`, `input_ended`.
    pub fn label(&self) -> &'static str {
        match self {
            EndRule::TurnComplete { .. } => "turn_complete",
            EndRule::TranscriptComplete { .. } => "transcript_complete",
            EndRule::LastWordUnsure { .. } => "last_word_unsure",
            EndRule::SilenceLimit { .. } => "silence_limit",
            EndRule::Silence => "silence",
            EndRule::MaxLength => "max_length",
            EndRule::InputEnded => "input_ended",
        }
    }
}

impl std::fmt::Display for EndRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndRule::TurnComplete { probability } => {
                write!(f, "turn model: complete p={probability:.2}")
            }
            EndRule::TranscriptComplete { probability } => write!(
                f,
                "transcript: sentence ended (turn model: incomplete p={probability:.2})"
            ),
            EndRule::LastWordUnsure {
                probability,
                last_word,
            } => write!(
                f,
                "last word unsure p={last_word:.2} (turn model: complete p={probability:.2})"
            ),
            EndRule::SilenceLimit {
                probability: Some(p),
                unfinished_words: true,
                ..
            } => write!(
                f,
                "silence limit (turn model p={p:.2}; the words stop mid-sentence)"
            ),
            EndRule::SilenceLimit {
                probability: Some(p),
                unsure_last_word: Some(w),
                ..
            } => write!(
                f,
                "silence limit (turn model p={p:.2}; the last word is unsure p={w:.2})"
            ),
            EndRule::SilenceLimit {
                probability: Some(p),
                ..
            } => write!(f, "silence limit (turn model: incomplete p={p:.2})"),
            EndRule::SilenceLimit {
                probability: None, ..
            } => {
                write!(f, "silence limit (turn model had not answered)")
            }
            EndRule::Silence => write!(f, "silence"),
            EndRule::MaxLength => write!(f, "maximum length"),
            EndRule::InputEnded => write!(f, "input ended"),
        }
    }
}

/// The cues gathered at a pause: the turn model's answer and the speculative transcript's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Verdict {
    /// Smart Turn's probability that the turn is complete.
    pub probability: f32,
    /// What the speculative transcript says ([`TextCue::Neutral`] without one).
    pub text: TextCue,
    /// The speculative transcript's last word's probability, where the speech-to-text
    /// reports one.
    pub last_word: Option<f32>,
}

impl Verdict {
    /// The fused turn-end rule (ARCHITECTURE.md, "Turn taking"): how much silence ends the
    /// turn, and the rule it then ends by. A transcript that stops mid-sentence waits for the
    /// long silence whatever the model says. Where the model says "complete", the turn ends
    /// after the short silence, or after `text_complete_ms` when the transcript's last word
    /// is unsure (likely misheard or invented: weaker evidence than a word no sentence ends
    /// on, so it never costs the long silence). Where it says "incomplete", a transcript
    /// that ends a sentence ends the turn after `text_complete_ms`; anything else waits for
    /// the long silence.
    pub fn rule(&self, cfg: &EndpointConfig) -> (u32, EndRule) {
        let probability = self.probability;
        let unsure_last_word = self
            .last_word
            .filter(|&p| p < cfg.last_word_min_probability);
        let complete = probability > cfg.turn_threshold;
        match (self.text, unsure_last_word) {
            (TextCue::Unfinished, _) => (
                cfg.incomplete_ms,
                EndRule::SilenceLimit {
                    probability: Some(probability),
                    unfinished_words: true,
                    unsure_last_word,
                },
            ),
            (_, Some(last_word)) if complete => (
                cfg.text_complete_ms,
                EndRule::LastWordUnsure {
                    probability,
                    last_word,
                },
            ),
            (_, None) if complete => (cfg.complete_ms, EndRule::TurnComplete { probability }),
            (TextCue::Finished, _) => (
                cfg.text_complete_ms,
                EndRule::TranscriptComplete { probability },
            ),
            (TextCue::Neutral, unsure_last_word) => (
                cfg.incomplete_ms,
                EndRule::SilenceLimit {
                    probability: Some(probability),
                    unfinished_words: false,
                    unsure_last_word,
                },
            ),
        }
    }
}

/// An utterance's audio and timing.
#[derive(Debug, Clone)]
pub struct UtteranceAudio {
    /// 16 kHz mono samples, pre-roll included, trailing silence trimmed.
    pub samples: Vec<i16>,
    /// Voiced time in it.
    pub voiced_ms: u32,
    /// When the last voiced frame arrived (end of speech).
    pub speech_end: Instant,
    /// When the endpoint was detected (end of speech + hang-over, or the length cap).
    pub endpoint_detected: Instant,
    /// Whether it was cut at `max_utterance_ms` rather than ended by silence.
    pub truncated: bool,
    /// The rule that ended it.
    pub end_rule: EndRule,
    /// The pause it ended in, when a pause was reported and no speech came after it: the
    /// speculative transcription of that pause (same audio) can stand for this one.
    pub pause: Option<u32>,
    /// When it continues the speaker's previous utterance (they went on within
    /// `turn_resume_ms`): how many of its first samples are that utterance's audio.
    pub continued: Option<usize>,
}

impl UtteranceAudio {
    /// Duration of the audio in ms.
    pub(crate) fn duration_ms(&self) -> u64 {
        self.samples.len() as u64 * 1000 / u64::from(UTTERANCE_RATE)
    }
}

/// What a frame changed.
#[derive(Debug)]
pub enum EndpointEvent {
    /// Speech started (first voiced frame of an utterance).
    SpeechStarted,
    /// The speaker fell silent for `turn_pause_ms`: time to ask the turn model, and to start
    /// transcribing `audio` (the utterance so far) speculatively.
    Paused {
        /// Which pause of this speaker (matches [`UtteranceAudio::pause`] and
        /// [`SpeakerEndpointer::set_verdict`]).
        pause: u32,
        /// The utterance so far, ending 200 ms after the last speech.
        audio: Vec<i16>,
    },
    /// The speaker talked again after a pause: its verdict and speculation are void.
    Resumed,
    /// The speaker went on within `turn_resume_ms` of their last utterance's end of speech,
    /// for `min_utterance_ms` of speech: the utterance in progress continues that one (its
    /// first `carried` samples are that one's audio), whose turn ended too early. A pause's
    /// verdict and speculation in between are void, as with [`EndpointEvent::Resumed`].
    Continued {
        /// Samples of the previous utterance at the start of this one.
        carried: usize,
    },
    /// An utterance ended and is ready for speech-to-text.
    Utterance(UtteranceAudio),
    /// An utterance ended but was too short to count (a click, a cough).
    Dropped {
        /// Its voiced time.
        voiced_ms: u32,
    },
}

enum State {
    Idle,
    Speaking(Speech),
}

/// An utterance in progress.
struct Speech {
    /// Voiced time since it started (not counting the audio it continues).
    voiced_ms: u32,
    silence_ms: u32,
    /// Its length, the audio it continues included (for `max_utterance_ms`).
    total_ms: u32,
    last_voiced_len: usize,
    last_voiced_at: Instant,
    /// The pause reported in the current silence, if any.
    paused: Option<u32>,
    /// The turn model's answer for that pause.
    verdict: Option<Verdict>,
    /// The previous utterance, when this one started within `resume_ms` of its end.
    carried: Option<Carried>,
}

/// The previous utterance's audio at the start of the one in progress.
#[derive(Clone, Copy)]
struct Carried {
    /// Its samples.
    samples: usize,
    /// Its voiced time.
    voiced_ms: u32,
    /// Whether the speaker has gone on long enough (`min_voiced_ms`) for a continuation.
    confirmed: bool,
}

/// The last utterance, kept while its speaker may go on with it.
struct Ended {
    samples: Vec<i16>,
    voiced_ms: u32,
    speech_end: Instant,
}

/// How frames are told to be speech.
enum Detector {
    Energy,
    Silero { stream: Box<VadStream>, idle: bool },
}

/// Streaming resampler to 16 kHz mono with an input buffer, for frames of any size.
struct To16k {
    resampler: FftFixedIn<f32>,
    pending: Vec<f32>,
    input: [Vec<f32>; 1],
    output: [Vec<f32>; 1],
}

impl To16k {
    fn new(rate: u32) -> Option<Self> {
        // 20 ms chunks: the size Discord sends.
        let chunk = (rate / 50) as usize;
        let resampler =
            FftFixedIn::<f32>::new(rate as usize, UTTERANCE_RATE as usize, chunk, 1, 1).ok()?;
        let out_max = resampler.output_frames_max();
        Some(To16k {
            resampler,
            pending: Vec::with_capacity(chunk * 2),
            input: [Vec::with_capacity(chunk)],
            output: [vec![0.0; out_max]],
        })
    }

    /// Feeds mono samples; resampled output is appended to `out`.
    fn process(&mut self, mono: &[f32], out: &mut Vec<f32>) {
        let chunk = self.resampler.input_frames_next();
        // The common case (whole 20 ms frames, nothing pending) needs no copy.
        if self.pending.is_empty() && mono.len() == chunk {
            self.run(&[mono], out);
            return;
        }
        self.pending.extend_from_slice(mono);
        let mut start = 0;
        while self.pending.len() - start >= chunk {
            self.input[0].clear();
            self.input[0].extend_from_slice(&self.pending[start..start + chunk]);
            start += chunk;
            let input = std::mem::take(&mut self.input);
            self.run(&input, out);
            self.input = input;
        }
        self.pending.drain(..start);
    }

    fn run<V: AsRef<[f32]>>(&mut self, input: &[V], out: &mut Vec<f32>) {
        match self
            .resampler
            .process_into_buffer(input, &mut self.output, None)
        {
            Ok((_, produced)) => out.extend_from_slice(&self.output[0][..produced]),
            Err(e) => tracing::warn!("resampler error, frame dropped: {e}"),
        }
    }
}

/// One speaker's endpointer.
pub struct SpeakerEndpointer {
    cfg: EndpointConfig,
    input_rate: u32,
    resampler: Option<To16k>,
    mono: Vec<f32>,
    resampled: Vec<f32>,
    preroll: VecDeque<i16>,
    preroll_cap: usize,
    utterance: Vec<i16>,
    state: State,
    detector: Detector,
    pauses: u32,
    /// The last utterance, for `resume_ms` after its end of speech.
    ended: Option<Ended>,
}

impl SpeakerEndpointer {
    /// A new endpointer with the energy gate.
    pub fn new(cfg: EndpointConfig) -> Self {
        Self::with_vad(cfg, None)
    }

    /// A new endpointer; with Silero VAD when `vad` is given, else the energy gate.
    pub(crate) fn with_vad(cfg: EndpointConfig, vad: Option<Arc<Silero>>) -> Self {
        let preroll_cap = (cfg.preroll_ms as usize) * (UTTERANCE_RATE as usize) / 1000;
        SpeakerEndpointer {
            cfg,
            input_rate: 0,
            resampler: None,
            mono: Vec::with_capacity(1920),
            resampled: Vec::with_capacity(640),
            preroll: VecDeque::with_capacity(preroll_cap + 640),
            preroll_cap,
            utterance: Vec::with_capacity(UTTERANCE_RATE as usize * 4),
            state: State::Idle,
            detector: match vad {
                Some(model) => Detector::Silero {
                    stream: Box::new(VadStream::new(model)),
                    idle: true,
                },
                None => Detector::Energy,
            },
            pauses: 0,
            ended: None,
        }
    }

    /// Voiced time of the utterance in progress, 0 when idle.
    pub(crate) fn current_voiced_ms(&self) -> u32 {
        match self.state {
            State::Idle => 0,
            State::Speaking(Speech { voiced_ms, .. }) => voiced_ms,
        }
    }

    /// Whether an utterance is in progress.
    pub(crate) fn is_speaking(&self) -> bool {
        matches!(self.state, State::Speaking(_))
    }

    /// The turn model's answer for pause `pause`; ignored if the speaker went on since.
    pub(crate) fn set_verdict(&mut self, pause: u32, answer: Verdict) {
        if let State::Speaking(Speech {
            paused: Some(p),
            verdict,
            ..
        }) = &mut self.state
        {
            if *p == pause {
                *verdict = Some(answer);
            }
        }
    }

    /// Processes one frame of interleaved samples that arrived at `now`.
    pub fn push(
        &mut self,
        interleaved: &[i16],
        channels: u16,
        rate: u32,
        now: Instant,
    ) -> Option<EndpointEvent> {
        let channels = usize::from(channels.max(1));
        if rate == 0 || interleaved.len() < channels {
            return None;
        }
        let frames = interleaved.len() / channels;
        let frame_ms = (frames as u64 * 1000 / u64::from(rate)) as u32;
        let rms = self.downmix(interleaved, channels);

        // Resample to 16 kHz.
        self.resampled.clear();
        if rate == UTTERANCE_RATE {
            self.resampled.extend_from_slice(&self.mono);
        } else {
            if self.input_rate != rate || self.resampler.is_none() {
                self.resampler = To16k::new(rate);
                self.input_rate = rate;
            }
            match self.resampler.as_mut() {
                Some(r) => r.process(&self.mono, &mut self.resampled),
                None => return None,
            }
        }
        let voiced = self.is_voiced(rms);

        match &mut self.state {
            State::Idle => {
                if voiced {
                    self.begin(frame_ms, now);
                    Some(EndpointEvent::SpeechStarted)
                } else {
                    if self
                        .ended
                        .as_ref()
                        .is_some_and(|e| !self.may_resume(e, now))
                    {
                        self.ended = None;
                    }
                    for &v in &self.resampled {
                        if self.preroll.len() == self.preroll_cap {
                            self.preroll.pop_front();
                        }
                        if self.preroll_cap > 0 {
                            self.preroll.push_back(to_i16(v));
                        }
                    }
                    None
                }
            }
            State::Speaking(_) => self.speaking(voiced, frame_ms, now),
        }
    }

    /// Whether speech at `now` continues the utterance that ended as `ended` did.
    fn may_resume(&self, ended: &Ended, now: Instant) -> bool {
        let since = now.saturating_duration_since(ended.speech_end);
        since.as_millis() <= u128::from(self.cfg.resume_ms)
    }

    /// Starts an utterance with the frame just resampled: after the pre-roll, and after the
    /// previous utterance's audio when the speaker may be going on with it.
    fn begin(&mut self, frame_ms: u32, now: Instant) {
        self.utterance.clear();
        let carried = match &self.ended {
            Some(e) if self.may_resume(e, now) => {
                self.utterance.extend_from_slice(&e.samples);
                Some(Carried {
                    samples: e.samples.len(),
                    voiced_ms: e.voiced_ms,
                    confirmed: false,
                })
            }
            _ => None,
        };
        let carried_ms = self.utterance.len() as u64 * 1000 / u64::from(UTTERANCE_RATE);
        self.utterance.extend(self.preroll.drain(..));
        push_i16(&mut self.utterance, &self.resampled);
        self.state = State::Speaking(Speech {
            voiced_ms: frame_ms,
            silence_ms: 0,
            total_ms: frame_ms.saturating_add(carried_ms as u32),
            last_voiced_len: self.utterance.len(),
            last_voiced_at: now,
            paused: None,
            verdict: None,
            carried,
        });
    }

    /// Downmixes `interleaved` into `self.mono`; returns the frame's RMS level.
    fn downmix(&mut self, interleaved: &[i16], channels: usize) -> f32 {
        self.mono.clear();
        let mut energy = 0f32;
        let scale = 1.0 / (f32::from(i16::MAX) * channels as f32);
        if channels == 2 {
            for pair in interleaved.chunks_exact(2) {
                let v = (i32::from(pair[0]) + i32::from(pair[1])) as f32 * scale;
                energy += v * v;
                self.mono.push(v);
            }
        } else {
            for frame in interleaved.chunks_exact(channels) {
                let sum: i32 = frame.iter().map(|&s| i32::from(s)).sum();
                let v = sum as f32 * scale;
                energy += v * v;
                self.mono.push(v);
            }
        }
        (energy / self.mono.len().max(1) as f32).sqrt()
    }

    /// Whether the frame just resampled is speech.
    fn is_voiced(&mut self, rms: f32) -> bool {
        let speaking = self.is_speaking();
        match &mut self.detector {
            Detector::Energy => rms >= self.cfg.threshold,
            Detector::Silero { stream, idle } => {
                if rms < self.cfg.gate {
                    // Digital silence or near it: no inference; start afresh after it.
                    if !*idle {
                        stream.reset();
                        *idle = true;
                    }
                    return false;
                }
                *idle = false;
                let p = stream.push(&self.resampled);
                let threshold = if speaking {
                    (self.cfg.vad_threshold - 0.15).max(0.01)
                } else {
                    self.cfg.vad_threshold
                };
                p >= threshold
            }
        }
    }

    /// One frame of an utterance in progress: count it, report a pause or a resumption,
    /// end the utterance when a rule says so.
    fn speaking(&mut self, voiced: bool, frame_ms: u32, now: Instant) -> Option<EndpointEvent> {
        let State::Speaking(Speech {
            voiced_ms,
            silence_ms,
            total_ms,
            last_voiced_len,
            last_voiced_at,
            paused,
            verdict,
            carried,
        }) = &mut self.state
        else {
            return None;
        };
        push_i16(&mut self.utterance, &self.resampled);
        *total_ms += frame_ms;
        let mut event = None;
        if voiced {
            *voiced_ms += frame_ms;
            *silence_ms = 0;
            *last_voiced_len = self.utterance.len();
            *last_voiced_at = now;
            if paused.take().is_some() {
                *verdict = None;
                event = Some(EndpointEvent::Resumed);
            }
            if let Some(c) = carried.as_mut().filter(|c| !c.confirmed) {
                if *voiced_ms >= self.cfg.min_voiced_ms {
                    c.confirmed = true;
                    event = Some(EndpointEvent::Continued { carried: c.samples });
                }
            }
        } else {
            *silence_ms += frame_ms;
        }
        let cfg = &self.cfg;
        let rule = if *total_ms >= cfg.max_ms {
            Some(EndRule::MaxLength)
        } else if voiced {
            None
        } else if !cfg.use_turn_model {
            (*silence_ms >= cfg.hangover_ms).then_some(EndRule::Silence)
        } else {
            let (limit, rule) = match verdict {
                Some(v) => v.rule(cfg),
                None => (
                    cfg.incomplete_ms,
                    EndRule::SilenceLimit {
                        probability: None,
                        unfinished_words: false,
                        unsure_last_word: None,
                    },
                ),
            };
            (*silence_ms >= limit).then_some(rule)
        };
        if let Some(rule) = rule {
            let State::Speaking(speech) = self.end_state() else {
                return None;
            };
            return Some(self.finish(speech, now, rule));
        }
        if !voiced && paused.is_none() && *silence_ms >= cfg.pause_ms {
            self.pauses = self.pauses.wrapping_add(1);
            *paused = Some(self.pauses);
            // Smart Turn was trained on turns as pipecat hands them over: ending 200 ms after
            // the VAD's end of speech. Pad the silence to that (the verdict is void anyway if
            // the speaker goes on); the transcription ignores the extra silence.
            let keep = (*last_voiced_len + TURN_TRAILING).min(self.utterance.len());
            let mut audio = Vec::with_capacity(*last_voiced_len + TURN_TRAILING);
            audio.extend_from_slice(&self.utterance[..keep]);
            audio.resize(*last_voiced_len + TURN_TRAILING, 0);
            return Some(EndpointEvent::Paused {
                pause: self.pauses,
                audio,
            });
        }
        event
    }

    /// Back to idle (the state it leaves); Silero starts afresh for the next utterance.
    fn end_state(&mut self) -> State {
        self.preroll.clear();
        if let Detector::Silero { stream, idle } = &mut self.detector {
            stream.reset();
            *idle = true;
        }
        std::mem::replace(&mut self.state, State::Idle)
    }

    /// The utterance `speech` ended at `now` by `end_rule`: dropped as noise, or handed over
    /// (and kept, when the speaker may go on with it).
    fn finish(&mut self, speech: Speech, now: Instant, end_rule: EndRule) -> EndpointEvent {
        let mut last_voiced_len = speech.last_voiced_len;
        // Speech too short to continue the previous utterance is on its own.
        let carried = match speech.carried {
            Some(c) if c.confirmed => Some(c),
            Some(c) => {
                self.utterance.drain(..c.samples.min(self.utterance.len()));
                last_voiced_len = last_voiced_len.saturating_sub(c.samples);
                None
            }
            None => None,
        };
        if speech.voiced_ms < self.cfg.min_voiced_ms {
            self.utterance.clear();
            return EndpointEvent::Dropped {
                voiced_ms: speech.voiced_ms,
            };
        }
        let keep = (last_voiced_len + TRAILING_KEEP).min(self.utterance.len());
        let mut samples = std::mem::take(&mut self.utterance);
        samples.truncate(keep);
        self.utterance = Vec::with_capacity(UTTERANCE_RATE as usize * 4);
        let voiced_ms = speech.voiced_ms + carried.map_or(0, |c| c.voiced_ms);
        let resumable =
            self.cfg.resume_ms > 0 && !matches!(end_rule, EndRule::MaxLength | EndRule::InputEnded);
        self.ended = resumable.then(|| Ended {
            samples: samples.clone(),
            voiced_ms,
            speech_end: speech.last_voiced_at,
        });
        EndpointEvent::Utterance(UtteranceAudio {
            samples,
            voiced_ms,
            speech_end: speech.last_voiced_at,
            endpoint_detected: now,
            truncated: end_rule == EndRule::MaxLength,
            end_rule,
            pause: speech.paused,
            continued: carried.map(|c| c.samples),
        })
    }

    /// Ends an utterance in progress (the speaker left, or the input ended).
    pub fn flush(&mut self, now: Instant) -> Option<EndpointEvent> {
        self.ended = None;
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Idle => None,
            State::Speaking(speech) => Some(self.finish(speech, now, EndRule::InputEnded)),
        }
    }
}

fn to_i16(v: f32) -> i16 {
    (v * f32::from(i16::MAX)).clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
}

fn push_i16(out: &mut Vec<i16>, samples: &[f32]) {
    out.extend(samples.iter().map(|&v| to_i16(v)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The energy gate and a fixed 500 ms silence (no turn model).
    fn cfg() -> EndpointConfig {
        EndpointConfig {
            use_turn_model: false,
            ..EndpointConfig::from(&PipelineConfig::default())
        }
    }

    fn verdict(probability: f32) -> Verdict {
        Verdict {
            probability,
            text: TextCue::Neutral,
            last_word: None,
        }
    }

    fn utterances(events: &[EndpointEvent]) -> Vec<&UtteranceAudio> {
        events
            .iter()
            .filter_map(|e| match e {
                EndpointEvent::Utterance(u) => Some(u),
                _ => None,
            })
            .collect()
    }

    /// 20 ms of 48 kHz stereo: a 300 Hz tone at `amp` (0 = silence).
    fn frame(amp: f32, phase: &mut f32) -> Vec<i16> {
        let mut out = Vec::with_capacity(1920);
        for _ in 0..960 {
            let v = (*phase).sin() * amp * 32767.0;
            *phase += std::f32::consts::TAU * 300.0 / 48_000.0;
            out.push(v as i16);
            out.push(v as i16);
        }
        out
    }

    thread_local! {
        /// The test's clock: one per test thread, going on across `feed` calls.
        static CLOCK: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    }

    fn feed(ep: &mut SpeakerEndpointer, pattern: &[(f32, usize)]) -> Vec<EndpointEvent> {
        let mut phase = 0.0;
        let mut now = CLOCK.get().unwrap_or_else(Instant::now);
        let mut events = Vec::new();
        for &(amp, n) in pattern {
            for _ in 0..n {
                now += Duration::from_millis(20);
                if let Some(e) = ep.push(&frame(amp, &mut phase), 2, 48_000, now) {
                    events.push(e);
                }
            }
        }
        CLOCK.set(Some(now));
        events
    }

    #[test]
    fn speech_then_silence_makes_one_utterance() {
        let mut ep = SpeakerEndpointer::new(cfg());
        // 0.5 s silence, 1 s tone, 1 s silence.
        let events = feed(&mut ep, &[(0.0, 25), (0.3, 50), (0.0, 50)]);
        assert!(matches!(events[0], EndpointEvent::SpeechStarted));
        assert!(matches!(events[1], EndpointEvent::Paused { pause: 1, .. }));
        let EndpointEvent::Utterance(u) = &events[2] else {
            panic!("expected an utterance, got {:?}", events[2]);
        };
        assert_eq!(events.len(), 3);
        assert_eq!(u.end_rule, EndRule::Silence);
        assert_eq!(u.pause, Some(1), "ended in the pause it reported");
        assert_eq!(u.voiced_ms, 1000);
        // 200 ms pre-roll + 1 s speech + 150 ms kept, at 16 kHz (resampler delay aside).
        let ms = u.duration_ms();
        assert!((1250..=1400).contains(&ms), "duration {ms} ms");
        let gap = u.endpoint_detected - u.speech_end;
        assert_eq!(gap, Duration::from_millis(500));
        assert!(!u.truncated);
    }

    #[test]
    fn short_blip_is_dropped() {
        let mut ep = SpeakerEndpointer::new(cfg());
        let events = feed(&mut ep, &[(0.3, 5), (0.0, 40)]);
        assert!(matches!(
            events.last(),
            Some(EndpointEvent::Dropped { voiced_ms: 100 })
        ));
    }

    #[test]
    fn short_pauses_do_not_split_an_utterance() {
        let mut ep = SpeakerEndpointer::new(cfg());
        let events = feed(&mut ep, &[(0.3, 20), (0.0, 15), (0.3, 20), (0.0, 40)]);
        assert_eq!(utterances(&events).len(), 1);
        // The 300 ms gap was a pause, and talking again voided it.
        assert!(events.iter().any(|e| matches!(e, EndpointEvent::Resumed)));
        assert_eq!(utterances(&events)[0].pause, Some(2));
    }

    #[test]
    fn a_complete_verdict_ends_the_turn_after_the_short_silence() {
        let c = EndpointConfig {
            use_turn_model: true,
            ..cfg()
        };
        let mut ep = SpeakerEndpointer::new(c);
        let mut events = feed(&mut ep, &[(0.3, 40), (0.0, 5)]);
        let pause = events.iter().find_map(|e| match e {
            EndpointEvent::Paused { pause, audio } => Some((*pause, audio.len())),
            _ => None,
        });
        let (pause, samples) = pause.expect("a pause after 100 ms of silence");
        assert!(samples >= 16 * 800, "the pause carries the speech so far");
        ep.set_verdict(pause, verdict(0.9));
        events.extend(feed(&mut ep, &[(0.0, 10)]));
        let u = utterances(&events);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].end_rule, EndRule::TurnComplete { probability: 0.9 });
        // Ended at the first frame past 250 ms of silence, not at 500 or 2000.
        let gap = u[0].endpoint_detected - u[0].speech_end;
        assert_eq!(gap, Duration::from_millis(260));
    }

    #[test]
    fn unfinished_words_overrule_a_complete_verdict() {
        let c = EndpointConfig {
            use_turn_model: true,
            ..cfg()
        };
        let mut ep = SpeakerEndpointer::new(c);
        let mut events = feed(&mut ep, &[(0.3, 40), (0.0, 5)]);
        ep.set_verdict(
            1,
            Verdict {
                probability: 0.95,
                text: TextCue::Unfinished,
                last_word: Some(0.99),
            },
        );
        events.extend(feed(&mut ep, &[(0.0, 30)]));
        assert!(
            utterances(&events).is_empty(),
            "still listening: {events:?}"
        );
        events.extend(feed(&mut ep, &[(0.0, 80)]));
        let u = utterances(&events);
        assert_eq!(u.len(), 1);
        assert!(u[0].end_rule.to_string().contains("mid-sentence"));
    }

    /// The turn model on, with the three silences 250 / 400 / 2000 ms.
    fn fused() -> EndpointConfig {
        EndpointConfig {
            use_turn_model: true,
            complete_ms: 250,
            text_complete_ms: 400,
            incomplete_ms: 2000,
            turn_threshold: 0.5,
            ..cfg()
        }
    }

    #[test]
    fn the_fused_rule_weighs_transcript_and_model() {
        let c = fused();
        let rule = |probability, text| {
            Verdict {
                probability,
                text,
                last_word: None,
            }
            .rule(&c)
        };
        // Words that stop mid-sentence outweigh any "complete" from the model.
        let (ms, r) = rule(0.99, TextCue::Unfinished);
        assert_eq!(ms, 2000);
        assert!(matches!(
            r,
            EndRule::SilenceLimit {
                unfinished_words: true,
                ..
            }
        ));
        // Both agree, or the model alone speaks: the short silence.
        assert_eq!(rule(0.9, TextCue::Finished).0, 250);
        assert_eq!(rule(0.9, TextCue::Neutral).0, 250);
        // A finished sentence against the model's "incomplete": the middle silence.
        let (ms, r) = rule(0.01, TextCue::Finished);
        assert_eq!((ms, r.label()), (400, "transcript_complete"));
        // Nothing says complete: the long silence.
        let (ms, r) = rule(0.2, TextCue::Neutral);
        assert_eq!((ms, r.label()), (2000, "silence_limit"));
        // At the threshold is not above it.
        assert_eq!(rule(0.5, TextCue::Neutral).0, 2000);
    }

    #[test]
    fn an_unsure_last_word_outweighs_the_models_complete_for_the_middle_silence() {
        let c = EndpointConfig {
            last_word_min_probability: 0.6,
            ..fused()
        };
        let rule = |probability, text, last_word| {
            Verdict {
                probability,
                text,
                last_word,
            }
            .rule(&c)
        };
        // "Could you tell me, Mur?": the model says complete, the sentence looks finished,
        // but the word that ends it is likely invented: the middle silence, not the short.
        let (ms, r) = rule(0.9, TextCue::Finished, Some(0.3));
        assert_eq!(ms, 400);
        assert_eq!(
            r,
            EndRule::LastWordUnsure {
                probability: 0.9,
                last_word: 0.3,
            }
        );
        assert_eq!(r.label(), "last_word_unsure");
        assert!(r.to_string().contains("last word unsure p=0.30"), "{r}");
        // Against the model's "incomplete", a sentence that ends with an unsure word still
        // ends: after the middle silence, as with a sure one (a misheard question must not
        // wait for the long silence).
        let (ms, r) = rule(0.1, TextCue::Finished, Some(0.5));
        assert_eq!((ms, r.label()), (400, "transcript_complete"));
        // Neither finished words nor the model: the long silence, and the rule says the word
        // was unsure.
        let (ms, r) = rule(0.1, TextCue::Neutral, Some(0.5));
        assert_eq!(ms, 2000);
        assert_eq!(
            r,
            EndRule::SilenceLimit {
                probability: Some(0.1),
                unfinished_words: false,
                unsure_last_word: Some(0.5),
            }
        );
        assert!(r.to_string().contains("last word is unsure p=0.50"), "{r}");
        // A sure last word, the minimum itself, or no word probability: the rule as before.
        assert_eq!(rule(0.9, TextCue::Finished, Some(0.95)).0, 250);
        assert_eq!(rule(0.9, TextCue::Finished, Some(0.6)).0, 250);
        assert_eq!(rule(0.9, TextCue::Neutral, None).0, 250);
        assert_eq!(rule(0.1, TextCue::Finished, None).0, 400);
        // Words that stop mid-sentence wait for the long silence whatever the last word's
        // probability.
        let (ms, r) = rule(0.9, TextCue::Unfinished, Some(0.2));
        assert_eq!(ms, 2000);
        assert!(matches!(
            r,
            EndRule::SilenceLimit {
                unfinished_words: true,
                unsure_last_word: Some(_),
                ..
            }
        ));
        // A minimum of 0 turns the cue off.
        let off = EndpointConfig {
            last_word_min_probability: 0.0,
            ..c
        };
        let v = Verdict {
            probability: 0.9,
            text: TextCue::Finished,
            last_word: Some(0.01),
        };
        assert_eq!(v.rule(&off).0, 250);
    }

    #[test]
    fn a_finished_transcript_ends_the_turn_against_the_model() {
        let c = EndpointConfig {
            use_turn_model: true,
            text_complete_ms: 400,
            ..cfg()
        };
        let mut ep = SpeakerEndpointer::new(c);
        let mut events = feed(&mut ep, &[(0.3, 40), (0.0, 5)]);
        ep.set_verdict(
            1,
            Verdict {
                probability: 0.02,
                text: TextCue::Finished,
                last_word: Some(0.97),
            },
        );
        events.extend(feed(&mut ep, &[(0.0, 40)]));
        let u = utterances(&events);
        assert_eq!(u.len(), 1, "{events:?}");
        assert_eq!(
            u[0].end_rule,
            EndRule::TranscriptComplete { probability: 0.02 }
        );
        assert_eq!(
            u[0].endpoint_detected - u[0].speech_end,
            Duration::from_millis(400)
        );
    }

    #[test]
    fn an_incomplete_verdict_waits_for_the_long_silence() {
        let c = EndpointConfig {
            use_turn_model: true,
            ..cfg()
        };
        let mut ep = SpeakerEndpointer::new(c);
        let mut events = feed(&mut ep, &[(0.3, 40), (0.0, 5)]);
        ep.set_verdict(1, verdict(0.1));
        // A 1 s gap, then more speech: still one turn.
        events.extend(feed(&mut ep, &[(0.0, 45), (0.3, 30), (0.0, 5)]));
        assert!(utterances(&events).is_empty(), "{events:?}");
        // A stale verdict (for the first pause) is ignored.
        ep.set_verdict(1, verdict(0.99));
        events.extend(feed(&mut ep, &[(0.0, 100)]));
        let u = utterances(&events);
        assert_eq!(u.len(), 1, "{events:?}");
        assert_eq!(
            u[0].end_rule,
            EndRule::SilenceLimit {
                probability: None,
                unfinished_words: false,
                unsure_last_word: None,
            }
        );
        assert_eq!(
            u[0].endpoint_detected - u[0].speech_end,
            Duration::from_millis(2000)
        );
        assert_eq!(u[0].voiced_ms, 1400);
    }

    #[test]
    fn going_on_soon_after_the_end_continues_the_utterance() {
        let mut ep = SpeakerEndpointer::new(cfg());
        // 1 s of speech, 800 ms of silence (the turn ends at 500), 1 s of speech.
        let events = feed(&mut ep, &[(0.3, 50), (0.0, 40), (0.3, 50), (0.0, 40)]);
        let u = utterances(&events);
        assert_eq!(u.len(), 2, "{events:?}");
        assert_eq!(u[0].continued, None);
        let carried = u[0].samples.len();
        let continued = events
            .iter()
            .position(|e| matches!(e, EndpointEvent::Continued { carried: c } if *c == carried));
        let second = events
            .iter()
            .rposition(|e| matches!(e, EndpointEvent::Utterance(_)));
        assert!(
            continued < second,
            "Continued comes before the utterance: {events:?}"
        );
        assert_eq!(u[1].continued, Some(carried));
        assert_eq!(
            &u[1].samples[..carried],
            &u[0].samples[..],
            "it starts with the first"
        );
        assert_eq!(u[1].voiced_ms, 2_000, "both parts' speech");
        assert_eq!(u[1].end_rule, EndRule::Silence);
    }

    #[test]
    fn a_blip_after_the_end_or_speech_after_the_window_is_on_its_own() {
        let mut ep = SpeakerEndpointer::new(cfg());
        // 1 s of speech, 700 ms of silence, a 100 ms click (too short to continue it; dropped),
        // 600 ms of silence, 1 s of speech: 1.42 s after the first ended, past the 1.2 s.
        let events = feed(
            &mut ep,
            &[
                (0.3, 50),
                (0.0, 35),
                (0.3, 5),
                (0.0, 30),
                (0.3, 50),
                (0.0, 40),
            ],
        );
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, EndpointEvent::Continued { .. })),
            "{events:?}"
        );
        assert!(events
            .iter()
            .any(|e| matches!(e, EndpointEvent::Dropped { voiced_ms: 100 })));
        let u = utterances(&events);
        assert_eq!(u.len(), 2);
        assert_eq!(u[1].continued, None);
        assert_eq!(u[1].voiced_ms, 1_000);
    }

    #[test]
    fn a_click_within_the_window_leaves_the_continuation_open() {
        let mut c = cfg();
        c.resume_ms = 2_000;
        let mut ep = SpeakerEndpointer::new(c);
        // A click 600 ms after the end of speech is dropped; speech 1.32 s after the end
        // continues the utterance.
        let events = feed(
            &mut ep,
            &[
                (0.3, 50),
                (0.0, 30),
                (0.3, 5),
                (0.0, 30),
                (0.3, 50),
                (0.0, 40),
            ],
        );
        let u = utterances(&events);
        assert_eq!(u.len(), 2, "{events:?}");
        assert_eq!(u[1].continued, Some(u[0].samples.len()));
        assert_eq!(u[1].voiced_ms, 2_000, "the click is not counted");
    }

    #[test]
    fn no_continuation_when_off_or_after_the_length_cap() {
        let mut c = cfg();
        c.resume_ms = 0;
        let mut ep = SpeakerEndpointer::new(c);
        let events = feed(&mut ep, &[(0.3, 50), (0.0, 30), (0.3, 50), (0.0, 40)]);
        assert!(utterances(&events).iter().all(|u| u.continued.is_none()));
        let mut c = cfg();
        c.max_ms = 1_000;
        let mut ep = SpeakerEndpointer::new(c);
        let events = feed(&mut ep, &[(0.3, 50), (0.0, 10), (0.3, 20), (0.0, 40)]);
        let u = utterances(&events);
        assert!(u[0].truncated, "{events:?}");
        assert!(u.iter().all(|u| u.continued.is_none()), "{events:?}");
    }

    #[test]
    fn long_speech_is_cut_at_the_cap() {
        let mut c = cfg();
        c.max_ms = 2_000;
        let mut ep = SpeakerEndpointer::new(c);
        let events = feed(&mut ep, &[(0.3, 150), (0.0, 40)]);
        let cut: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                EndpointEvent::Utterance(u) => Some(u),
                _ => None,
            })
            .collect();
        assert!(cut.len() >= 2);
        assert!(cut[0].truncated);
    }

    #[test]
    fn quiet_noise_stays_idle() {
        let mut ep = SpeakerEndpointer::new(cfg());
        // -60 dBFS is below the -45 dBFS default threshold.
        let events = feed(&mut ep, &[(0.001, 100)]);
        assert!(events.is_empty());
        assert!(!ep.is_speaking());
    }

    #[test]
    fn sixteen_khz_mono_passes_through() {
        let mut ep = SpeakerEndpointer::new(cfg());
        let now = Instant::now();
        let tone: Vec<i16> = (0..320)
            .map(|i| ((i as f32 * 0.2).sin() * 10_000.0) as i16)
            .collect();
        assert!(matches!(
            ep.push(&tone, 1, 16_000, now),
            Some(EndpointEvent::SpeechStarted)
        ));
        let e = ep.flush(now).unwrap();
        assert!(matches!(e, EndpointEvent::Dropped { voiced_ms: 20 }));
    }
}
