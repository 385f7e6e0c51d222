//! The synthesis worker: one thread per synthesis speaks one sentence at a time and hands its
//! audio to a [`ChannelStream`] in chunks, so the host plays the first sentence while the next
//! is made. The first sentence is phonemized alone; the rest in one espeak-ng run on a second
//! thread while the model speaks the first. The [`CancelToken`] is checked before each
//! sentence and each chunk; a dropped stream stops the worker at its next send.

use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use plugin_api::abi::{AudioChunk, PluginError};
use plugin_api::sdk::{CancelToken, ChannelStream};

use crate::clauses::Sentence;
use crate::model::{to_pcm, VoiceModel};
use crate::phonemize::Phonemizer;
use crate::voice::{Scales, VoiceConfig};

/// What one synthesis needs, shared with the provider.
#[derive(Debug)]
pub struct Engine {
    /// The voice's configuration.
    pub voice: VoiceConfig,
    /// Its model.
    pub model: VoiceModel,
    /// espeak-ng.
    pub phonemizer: Phonemizer,
}

/// One synthesis.
#[derive(Debug)]
pub struct Job {
    /// The sentences, in order.
    pub sentences: Vec<Sentence>,
    /// Scales for the model.
    pub scales: Scales,
    /// Speaker id (multi-speaker voices).
    pub speaker: Option<i64>,
    /// Longest chunk, in samples.
    pub chunk_samples: usize,
    /// Silence after each sentence but the last, in samples.
    pub silence_samples: usize,
}

/// How a worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every sentence was spoken and handed over.
    Completed,
    /// Cancelled, or the stream was dropped.
    Stopped,
    /// A sentence failed; the error went to the stream.
    Failed,
}

/// Starts the worker; returns the stream it feeds and its handle (tests join it).
pub fn start(
    engine: Arc<Engine>,
    job: Job,
    cancel: CancelToken,
) -> Result<(ChannelStream, JoinHandle<Outcome>), PluginError> {
    let (sender, stream) = ChannelStream::new(cancel.clone());
    let handle = thread::Builder::new()
        .name("piper-synth".into())
        .spawn(move || {
            let outcome = run(&engine, &job, &sender, &cancel);
            // The stream ends here; the standby processes start after it, off its time.
            drop(sender);
            engine.phonemizer.prepare();
            outcome
        })
        .map_err(|e| PluginError::internal(format!("could not start the synthesis thread: {e}")))?;
    Ok((stream, handle))
}

fn run(
    engine: &Engine,
    job: &Job,
    sender: &SyncSender<Result<AudioChunk, PluginError>>,
    cancel: &CancelToken,
) -> Outcome {
    let Some((first, rest)) = job.sentences.split_first() else {
        return Outcome::Completed;
    };
    // The first sentence alone, so its audio comes first; the rest in one espeak-ng run (a
    // process already waiting) on another thread while the model speaks the first.
    let first = engine.phonemizer.phonemize(first);
    thread::scope(|scope| {
        let later =
            (!rest.is_empty()).then(|| scope.spawn(|| engine.phonemizer.phonemize_all(rest)));
        let outcome = say(engine, job, first, later.is_some(), sender, cancel);
        match later {
            Some(later) if outcome == Outcome::Completed => {
                say_rest(engine, job, later.join(), sender, cancel)
            }
            _ => outcome,
        }
    })
}

/// Speaks the later sentences from their phonemes (or the error phonemizing them).
fn say_rest(
    engine: &Engine,
    job: &Job,
    phonemes: thread::Result<Result<Vec<Vec<String>>, PluginError>>,
    sender: &SyncSender<Result<AudioChunk, PluginError>>,
    cancel: &CancelToken,
) -> Outcome {
    let all = match phonemes {
        Ok(Ok(all)) => all,
        Ok(Err(e)) => {
            let _ = sender.send(Err(e));
            return Outcome::Failed;
        }
        Err(_) => {
            let _ = sender.send(Err(PluginError::internal("phonemizing the reply panicked")));
            return Outcome::Failed;
        }
    };
    let count = all.len();
    let mut outcome = Outcome::Completed;
    for (index, phonemes) in all.into_iter().enumerate() {
        outcome = say(engine, job, Ok(phonemes), index + 1 < count, sender, cancel);
        if outcome != Outcome::Completed {
            break;
        }
    }
    outcome
}

/// Speaks one sentence's phonemes and hands the audio over in chunks, with the silence after
/// it when `more` sentences follow.
fn say(
    engine: &Engine,
    job: &Job,
    phonemes: Result<Vec<String>, PluginError>,
    more: bool,
    sender: &SyncSender<Result<AudioChunk, PluginError>>,
    cancel: &CancelToken,
) -> Outcome {
    if cancel.is_cancelled() {
        return Outcome::Stopped;
    }
    let mut samples = match phonemes.and_then(|p| speak(engine, job, &p)) {
        Ok(samples) => samples,
        Err(e) => {
            let _ = sender.send(Err(e));
            return Outcome::Failed;
        }
    };
    if more {
        samples.resize(samples.len() + job.silence_samples, 0);
    }
    let rate = engine.voice.sample_rate;
    for piece in samples.chunks(job.chunk_samples.max(1)) {
        if cancel.is_cancelled()
            || sender
                .send(Ok(AudioChunk::new(piece.to_vec(), rate)))
                .is_err()
        {
            return Outcome::Stopped;
        }
    }
    Outcome::Completed
}

/// One sentence: ids, model, 16-bit PCM.
fn speak(engine: &Engine, job: &Job, phonemes: &[String]) -> Result<Vec<i16>, PluginError> {
    let ids = engine
        .voice
        .phoneme_ids(phonemes.iter().map(String::as_str));
    let audio = engine.model.infer(&ids, job.scales, job.speaker)?;
    Ok(to_pcm(&audio))
}
