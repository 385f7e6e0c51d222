//! Per-speaker endpointing: turns a speaker's PCM frames (any rate, any channel count) into
//! utterances of 16 kHz mono audio.
//!
//! Per frame: downmix to mono, measure RMS level, resample to 16 kHz (rubato, streaming), and
//! run the gate: a frame louder than the threshold is voiced; an utterance starts on a voiced
//! frame (with the pre-roll kept from before it), and ends after `silence_hangover_ms` of
//! unvoiced frames or at `max_utterance_ms`. Utterances with less than `min_utterance_ms` of
//! voiced audio are dropped as noise. This is the hot path: no allocation per frame once warm.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rubato::{FftFixedIn, Resampler};

use crate::config::PipelineConfig;

/// Sample rate of utterance audio.
pub const UTTERANCE_RATE: u32 = 16_000;

/// Trailing silence kept after the last voiced frame, in 16 kHz samples (150 ms).
const TRAILING_KEEP: usize = 2_400;

/// Endpointing parameters, derived from [`PipelineConfig`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointConfig {
    /// RMS level (linear, 0..1) above which a frame counts as speech.
    pub threshold: f32,
    /// Unvoiced time that ends an utterance.
    pub hangover_ms: u32,
    /// Minimum voiced time for an utterance to count.
    pub min_voiced_ms: u32,
    /// Maximum utterance length.
    pub max_ms: u32,
    /// Audio kept from before speech started.
    pub preroll_ms: u32,
}

impl From<&PipelineConfig> for EndpointConfig {
    fn from(c: &PipelineConfig) -> Self {
        EndpointConfig {
            threshold: 10f32.powf(c.speech_threshold_dbfs / 20.0),
            hangover_ms: c.silence_hangover_ms,
            min_voiced_ms: c.min_utterance_ms,
            max_ms: c.max_utterance_ms,
            preroll_ms: c.preroll_ms,
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
}

impl UtteranceAudio {
    /// Duration of the audio in ms.
    pub fn duration_ms(&self) -> u64 {
        self.samples.len() as u64 * 1000 / u64::from(UTTERANCE_RATE)
    }
}

/// What a frame changed.
#[derive(Debug)]
pub enum EndpointEvent {
    /// Speech started (first voiced frame of an utterance).
    SpeechStarted,
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
    Speaking {
        voiced_ms: u32,
        silence_ms: u32,
        total_ms: u32,
        last_voiced_len: usize,
        last_voiced_at: Instant,
    },
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
}

impl SpeakerEndpointer {
    /// A new endpointer.
    pub fn new(cfg: EndpointConfig) -> Self {
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
        }
    }

    /// Voiced time of the utterance in progress, 0 when idle.
    pub fn current_voiced_ms(&self) -> u32 {
        match self.state {
            State::Idle => 0,
            State::Speaking { voiced_ms, .. } => voiced_ms,
        }
    }

    /// Whether an utterance is in progress.
    pub fn is_speaking(&self) -> bool {
        matches!(self.state, State::Speaking { .. })
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

        // Downmix and measure.
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
        let rms = (energy / frames as f32).sqrt();
        let voiced = rms >= self.cfg.threshold;

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

        match &mut self.state {
            State::Idle => {
                if voiced {
                    self.utterance.clear();
                    self.utterance.extend(self.preroll.drain(..));
                    push_i16(&mut self.utterance, &self.resampled);
                    self.state = State::Speaking {
                        voiced_ms: frame_ms,
                        silence_ms: 0,
                        total_ms: frame_ms,
                        last_voiced_len: self.utterance.len(),
                        last_voiced_at: now,
                    };
                    Some(EndpointEvent::SpeechStarted)
                } else {
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
            State::Speaking {
                voiced_ms,
                silence_ms,
                total_ms,
                last_voiced_len,
                last_voiced_at,
            } => {
                push_i16(&mut self.utterance, &self.resampled);
                *total_ms += frame_ms;
                if voiced {
                    *voiced_ms += frame_ms;
                    *silence_ms = 0;
                    *last_voiced_len = self.utterance.len();
                    *last_voiced_at = now;
                } else {
                    *silence_ms += frame_ms;
                }
                let ended = *silence_ms >= self.cfg.hangover_ms;
                let capped = *total_ms >= self.cfg.max_ms;
                if ended || capped {
                    let (voiced_ms, keep, speech_end) =
                        (*voiced_ms, *last_voiced_len, *last_voiced_at);
                    self.state = State::Idle;
                    self.preroll.clear();
                    Some(self.finish(voiced_ms, keep, speech_end, now, capped && !ended))
                } else {
                    None
                }
            }
        }
    }

    fn finish(
        &mut self,
        voiced_ms: u32,
        last_voiced_len: usize,
        speech_end: Instant,
        now: Instant,
        truncated: bool,
    ) -> EndpointEvent {
        if voiced_ms < self.cfg.min_voiced_ms {
            self.utterance.clear();
            return EndpointEvent::Dropped { voiced_ms };
        }
        let keep = (last_voiced_len + TRAILING_KEEP).min(self.utterance.len());
        let mut samples = std::mem::take(&mut self.utterance);
        samples.truncate(keep);
        self.utterance = Vec::with_capacity(UTTERANCE_RATE as usize * 4);
        EndpointEvent::Utterance(UtteranceAudio {
            samples,
            voiced_ms,
            speech_end,
            endpoint_detected: now,
            truncated,
        })
    }

    /// Ends an utterance in progress (the speaker left, or the input ended).
    pub fn flush(&mut self, now: Instant) -> Option<EndpointEvent> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Idle => None,
            State::Speaking {
                voiced_ms,
                last_voiced_len,
                last_voiced_at,
                ..
            } => Some(self.finish(voiced_ms, last_voiced_len, last_voiced_at, now, false)),
        }
    }
}

fn to_i16(v: f32) -> i16 {
    (v * f32::from(i16::MAX)).clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
}

fn push_i16(out: &mut Vec<i16>, samples: &[f32]) {
    out.extend(samples.iter().map(|&v| to_i16(v)));
}

/// The time a frame of `frames` samples at `rate` lasts.
pub fn frame_duration(frames: usize, rate: u32) -> Duration {
    Duration::from_micros(frames as u64 * 1_000_000 / u64::from(rate.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> EndpointConfig {
        EndpointConfig::from(&PipelineConfig::default())
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

    fn feed(ep: &mut SpeakerEndpointer, pattern: &[(f32, usize)]) -> Vec<EndpointEvent> {
        let mut phase = 0.0;
        let mut now = Instant::now();
        let mut events = Vec::new();
        for &(amp, n) in pattern {
            for _ in 0..n {
                now += Duration::from_millis(20);
                if let Some(e) = ep.push(&frame(amp, &mut phase), 2, 48_000, now) {
                    events.push(e);
                }
            }
        }
        events
    }

    #[test]
    fn speech_then_silence_makes_one_utterance() {
        let mut ep = SpeakerEndpointer::new(cfg());
        // 0.5 s silence, 1 s tone, 1 s silence.
        let events = feed(&mut ep, &[(0.0, 25), (0.3, 50), (0.0, 50)]);
        assert!(matches!(events[0], EndpointEvent::SpeechStarted));
        let EndpointEvent::Utterance(u) = &events[1] else {
            panic!("expected an utterance, got {:?}", events[1]);
        };
        assert_eq!(events.len(), 2);
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
        let utterances = events
            .iter()
            .filter(|e| matches!(e, EndpointEvent::Utterance(_)))
            .count();
        assert_eq!(utterances, 1);
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
