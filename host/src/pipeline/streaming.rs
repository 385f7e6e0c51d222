//! Streaming speech-to-text in the turn loop: when the speaker's provider streams
//! (`SttProvider::start_stream`, plugin-api 0.1.1), the speculative path pushes each pause's
//! new audio to one stream per utterance instead of transcribing the whole utterance again at
//! every pause; the end of the turn pushes the rest and finishes the stream. Nothing is thrown
//! away when the speaker goes on after a pause: the stream just keeps receiving audio. A
//! stream that fails falls back to an ordinary transcription with failover, so no turn is
//! lost to it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plugin_api::abi::TranscribeOptions;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::endpoint::TURN_TRAILING;
use crate::plugins::breaker::CircuitState;
use crate::plugins::failover::{self, Transcribed};
use crate::plugins::{ProviderError, SpeechToTextProvider, TranscriptionStream};

/// What a speculative transcription heard, for the turn-end decision.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpeculativeText {
    /// The transcript (a stream's partial one).
    pub text: String,
    /// Its last word's probability, where the provider reports one (a partial has none).
    pub last_word: Option<f32>,
}

/// What a turn's transcription gives: the transcript (with who made it) or every error.
pub(crate) type SttResult = Result<Transcribed, Vec<ProviderError>>;

/// One speaker's stream for the utterance in progress.
pub(crate) struct SpeakerStream {
    stream: Arc<TranscriptionStream>,
    provider: String,
    /// Samples of the utterance pushed so far.
    pushed: usize,
    /// The last samples pushed: the next pause's audio must continue them (else it is another
    /// utterance, and this stream is dropped).
    tail: Vec<i16>,
    /// The last push, which the next one waits for (pushes stay in order).
    last: Option<JoinHandle<()>>,
    partials: Arc<AtomicU32>,
}

/// The streams of every speaker who paused, and the providers known not to stream.
#[derive(Default)]
pub(crate) struct SpeakerStreams {
    by_speaker: HashMap<String, SpeakerStream>,
    not_streaming: HashSet<String>,
}

impl SpeakerStreams {
    /// Whether a stream serves `speaker` now, opening one at the first pause of an utterance
    /// when the provider that would transcribe now streams.
    pub(crate) async fn ready(
        &mut self,
        providers: &[Arc<SpeechToTextProvider>],
        options: &TranscribeOptions,
        speaker: &str,
        audio: &[i16],
    ) -> bool {
        let voiced = &audio[..audio.len().saturating_sub(TURN_TRAILING)];
        match self.by_speaker.get(speaker) {
            Some(state) if state.continued_by(voiced) => return true,
            // Another utterance (the last one ended without a turn, too short): start over.
            Some(_) => drop(self.by_speaker.remove(speaker)),
            None => {}
        }
        self.open(providers, options, speaker).await
    }

    /// At a pause: pushes what is new in `audio` (the utterance so far, with the pause's
    /// padding of silence, which is not pushed: the utterance goes on from its voiced part) to
    /// the speaker's stream (see [`ready`](Self::ready)); `text` gets the partial transcript.
    pub(crate) fn push(
        &mut self,
        speaker: &str,
        audio: Arc<[i16]>,
        text: Option<oneshot::Sender<SpeculativeText>>,
    ) {
        let Some(state) = self.by_speaker.get_mut(speaker) else {
            return;
        };
        let voiced = &audio[..audio.len().saturating_sub(TURN_TRAILING)];
        if !state.continued_by(voiced) {
            self.by_speaker.remove(speaker);
            return;
        }
        let delta: Arc<[i16]> = Arc::from(&voiced[state.pushed..]);
        state.pushed = voiced.len();
        state.tail = voiced[voiced.len().saturating_sub(TAIL)..].to_vec();
        let (stream, previous) = (state.stream.clone(), state.last.take());
        let partials = state.partials.clone();
        state.last = Some(tokio::spawn(async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            if let Ok(Some(partial)) = stream.push(delta).await {
                partials.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(partial = %partial.text, audio_ms = partial.audio_ms, "partial transcript");
                if let Some(tx) = text {
                    let _ = tx.send(SpeculativeText {
                        text: partial.text.to_string(),
                        last_word: None,
                    });
                }
            }
        }));
    }

    /// Opens a stream for `speaker` on the first provider, if it streams and its circuit is
    /// closed. Otherwise turns take the ordinary path, whose failover also probes a provider
    /// whose circuit is half-open: a stream on another provider would keep that probe from
    /// ever happening (and the circuit from ever closing).
    async fn open(
        &mut self,
        providers: &[Arc<SpeechToTextProvider>],
        options: &TranscribeOptions,
        speaker: &str,
    ) -> bool {
        let Some(provider) = providers.first() else {
            return false;
        };
        if provider.stats().circuit().state != CircuitState::Closed {
            return false;
        }
        if self.not_streaming.contains(&provider.id) {
            return false;
        }
        match provider.start_stream(options.clone()).await {
            Ok(Some(stream)) => {
                self.by_speaker.insert(
                    speaker.to_string(),
                    SpeakerStream {
                        stream: Arc::new(stream),
                        provider: provider.id.clone(),
                        pushed: 0,
                        tail: Vec::new(),
                        last: None,
                        partials: Arc::default(),
                    },
                );
                true
            }
            Ok(None) => {
                self.not_streaming.insert(provider.id.clone());
                false
            }
            Err(e) => {
                tracing::debug!(provider = %provider.id, "no stream: {e}");
                false
            }
        }
    }

    /// The speaker's stream, if one runs (the utterance ended).
    pub(crate) fn take(&mut self, speaker: &str) -> Option<SpeakerStream> {
        self.by_speaker.remove(speaker)
    }
}

/// Samples kept to recognise the utterance a stream belongs to.
const TAIL: usize = 64;

impl SpeakerStream {
    /// Whether `audio` (an utterance so far) starts with what this stream was given.
    fn continued_by(&self, audio: &[i16]) -> bool {
        audio.len() >= self.pushed
            && audio[self.pushed - self.tail.len()..self.pushed] == self.tail[..]
    }

    /// Pushes the rest of `audio` (the whole utterance) and finishes the stream; on any
    /// failure, transcribes `audio` with failover as if there had been no stream.
    pub(crate) fn finish(
        self,
        audio: Arc<[i16]>,
        providers: Vec<Arc<SpeechToTextProvider>>,
        options: TranscribeOptions,
        budget: Duration,
    ) -> JoinHandle<(SttResult, Instant)> {
        tokio::spawn(async move {
            let mut me = self;
            if let Some(previous) = me.last.take() {
                let _ = previous.await;
            }
            let this = me;
            let partials = this.partials.load(Ordering::Relaxed);
            tracing::debug!(provider = %this.provider, partials, "finishing the transcription stream");
            let streamed = async {
                if !this.continued_by(&audio) {
                    return Err(None);
                }
                let rest: Arc<[i16]> = Arc::from(&audio[this.pushed..]);
                this.stream.push(rest).await.map_err(Some)?;
                this.stream.finish().await.map_err(Some)
            };
            let errors = match streamed.await {
                Ok(done) => {
                    let transcribed = Transcribed {
                        transcript: done.transcript,
                        words: done.words.into_vec(),
                        provider: this.provider.clone(),
                        errors: Vec::new(),
                    };
                    return (Ok(transcribed), Instant::now());
                }
                Err(e) => e.into_iter().collect::<Vec<_>>(),
            };
            let result = match failover::transcribe(&providers, audio, options, budget).await {
                Ok(mut t) => {
                    t.errors.splice(0..0, errors);
                    Ok(t)
                }
                Err(mut all) => {
                    all.splice(0..0, errors);
                    Err(all)
                }
            };
            (result, Instant::now())
        })
    }
}
