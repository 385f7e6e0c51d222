//! The synthesis worker: one thread per synthesis runs espeak-ng once per sentence and feeds
//! the audio to a [`ChannelStream`] as it is decoded, so the host plays sentence 1 while
//! sentence 2 is made.
//!
//! Starting espeak-ng costs about 8 ms (exec, loading its phoneme data and voice), more than
//! synthesizing a sentence. espeak-ng does all of that before it reads its input, so a process
//! can be started ahead of time and left waiting on stdin: the worker starts the process for
//! sentence N+1 while sentence N is being read, and a [`Standby`] process with the provider's
//! default voice waits for the next synthesis. The first chunk then arrives in about 1 ms
//! instead of 8 (see `docs/BENCHMARKS.md`).
//!
//! Within a sentence, audio is handed over in pieces of at most `chunk_ms` as espeak-ng writes
//! it; the end of each sentence flushes what is left. Silence is trimmed on the way
//! (see [`Shaper`]). The worker checks the [`CancelToken`] every few milliseconds, while it
//! waits for espeak-ng and while it waits for room in the channel, and kills the running
//! espeak-ng when the synthesis is cancelled or the stream is dropped.

use std::cell::Cell;
use std::io::Read;
use std::process::Child;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Mutex, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use plugin_api::prelude::*;

use crate::engine::{self, EngineError, Espeak, Prosody, VoiceOrigin};
use crate::wav::WavDecoder;

/// How often a waiting worker looks at the cancel token.
const POLL: Duration = Duration::from_millis(5);
/// espeak-ng writing nothing for this long is a hang (it makes minutes of audio per second).
const STALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Samples at or below this magnitude count as silence (espeak-ng's silence is exact zeros).
const SILENCE_THRESHOLD: i16 = 8;

/// What the worker should make.
#[derive(Debug)]
pub struct Job {
    /// The program.
    pub engine: Espeak,
    /// Voice and prosody.
    pub prosody: Prosody,
    /// Who chose the voice (for the error kind if espeak-ng refuses it).
    pub voice_origin: VoiceOrigin,
    /// The sentences, in order.
    pub sentences: Vec<String>,
    /// Longest chunk in milliseconds.
    pub chunk_ms: u32,
    /// Replace espeak-ng's pause between sentences by this many milliseconds of silence.
    pub gap_ms: Option<u32>,
    /// Drop leading silence and the last sentence's trailing silence.
    pub trim_silence: bool,
    /// Start each sentence's espeak-ng while the previous sentence is read, and use (then
    /// refill) the provider's standby process; `None` starts every process on demand.
    pub standby: Option<Weak<Standby>>,
}

/// How a worker ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every sentence was synthesized and handed over.
    Completed,
    /// The synthesis was cancelled or the stream dropped; espeak-ng was killed.
    Stopped,
    /// A sentence failed; the error was handed to the stream.
    Failed,
}

/// Starts the worker thread and returns the stream it feeds, plus its handle (tests join it).
pub fn start(
    job: Job,
    cancel: CancelToken,
) -> Result<(ChannelStream, JoinHandle<Outcome>), PluginError> {
    let (sender, stream) = ChannelStream::new(cancel.clone());
    let handle = thread::Builder::new()
        .name("espeak-synth".into())
        .spawn(move || run(&job, Output { sender, cancel }))
        .map_err(|e| PluginError::internal(format!("could not start the synthesis thread: {e}")))?;
    Ok((stream, handle))
}

/// An espeak-ng process, started and waiting for its text on stdin. Killed when dropped.
#[derive(Debug)]
pub struct Spawned {
    prosody: Prosody,
    child: Option<Child>,
}

impl Spawned {
    /// Starts espeak-ng with `prosody`.
    pub fn start(engine: &Espeak, prosody: &Prosody) -> Result<Self, EngineError> {
        let child = engine
            .synthesis_command(prosody)
            .spawn()
            .map_err(|e| engine.spawn_error(e))?;
        Ok(Spawned {
            prosody: prosody.clone(),
            child: Some(child),
        })
    }

    /// Whether the process is still running (a waiting process can be killed by others).
    fn is_waiting(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            engine::kill(child);
        }
    }
}

/// One espeak-ng process with the provider's default voice, started before it is needed.
#[derive(Debug)]
pub struct Standby {
    engine: Espeak,
    prosody: Prosody,
    slot: Mutex<Option<Spawned>>,
}

impl Standby {
    /// A standby for `prosody`, with a process started at once (if it can be).
    pub fn new(engine: Espeak, prosody: Prosody) -> Self {
        let standby = Standby {
            engine,
            prosody,
            slot: Mutex::new(None),
        };
        standby.refill();
        standby
    }

    /// The waiting process, if it speaks with `prosody` and is still alive.
    fn take(&self, prosody: &Prosody) -> Option<Spawned> {
        if *prosody != self.prosody {
            return None;
        }
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        let mut spawned = slot.take()?;
        spawned.is_waiting().then_some(spawned)
    }

    /// Whether a process is started and waiting.
    pub fn is_ready(&self) -> bool {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_mut().is_some_and(Spawned::is_waiting)
    }

    /// Starts a process if none is waiting.
    fn refill(&self) {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_mut().is_some_and(Spawned::is_waiting) {
            return;
        }
        *slot = Spawned::start(&self.engine, &self.prosody)
            .map_err(|e| log::debug!("no standby espeak-ng: {e}"))
            .ok();
    }
}

/// The sending end, with the cancel token.
struct Output {
    sender: SyncSender<Result<AudioChunk, PluginError>>,
    cancel: CancelToken,
}

/// The stream was cancelled or dropped: stop working.
struct Stop;

impl Output {
    /// Sends `item`, waiting for room while watching the cancel token.
    fn send(&self, item: Result<AudioChunk, PluginError>) -> Result<(), Stop> {
        let mut item = item;
        loop {
            if self.cancel.is_cancelled() {
                return Err(Stop);
            }
            match self.sender.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(back)) => {
                    item = back;
                    thread::sleep(POLL);
                }
                Err(TrySendError::Disconnected(_)) => return Err(Stop),
            }
        }
    }
}

fn run(job: &Job, output: Output) -> Outcome {
    let started = Instant::now();
    let standby = job.standby.as_ref().and_then(Weak::upgrade);
    let prefetch = job.standby.is_some();
    let mut next = standby.as_ref().and_then(|s| s.take(&job.prosody));
    let warm = next.is_some();
    let mut shaper = Shaper::new(job.chunk_ms, job.trim_silence);
    let count = job.sentences.len();
    let mut outcome = Outcome::Completed;
    for (index, sentence) in job.sentences.iter().enumerate() {
        let last = index + 1 == count;
        let result = synthesize_sentence(
            job,
            sentence,
            next.take(),
            (prefetch && !last).then_some(&mut next),
            &mut shaper,
            &output,
        )
        .and_then(|()| {
            shaper
                .end_sentence(last, job.gap_ms, &mut |chunk| output.send(Ok(chunk)))
                .map_err(SentenceError::from)
        });
        match result {
            Ok(()) => {}
            Err(SentenceError::Stop) => {
                log::debug!("synthesis stopped at sentence {}/{count}", index + 1);
                outcome = Outcome::Stopped;
                break;
            }
            Err(SentenceError::Engine(e)) => {
                log::warn!("espeak-ng failed on sentence {}/{count}: {e}", index + 1);
                // If the stream is gone there is nobody to tell.
                let _ = output.send(Err(e.into_plugin_error(job.voice_origin)));
                outcome = Outcome::Failed;
                break;
            }
        }
    }
    // End the stream before refilling the standby, which takes a few milliseconds.
    drop(output);
    drop(next);
    if outcome == Outcome::Completed {
        log::debug!(
            "synthesized {count} sentences in {} ms (standby process: {warm})",
            started.elapsed().as_millis()
        );
    }
    if let Some(standby) = standby {
        standby.refill();
    }
    outcome
}

enum SentenceError {
    Stop,
    Engine(EngineError),
}

impl From<Stop> for SentenceError {
    fn from(_: Stop) -> Self {
        SentenceError::Stop
    }
}

impl From<EngineError> for SentenceError {
    fn from(e: EngineError) -> Self {
        SentenceError::Engine(e)
    }
}

/// Runs espeak-ng on one sentence (in `process` if one was started for it), passing decoded
/// samples to `shaper` as they arrive. Once this sentence's first chunk is out, starts the
/// process for the next sentence into `prefetch`, if asked.
fn synthesize_sentence(
    job: &Job,
    sentence: &str,
    process: Option<Spawned>,
    prefetch: Option<&mut Option<Spawned>>,
    shaper: &mut Shaper,
    output: &Output,
) -> Result<(), SentenceError> {
    if output.cancel.is_cancelled() {
        return Err(SentenceError::Stop);
    }
    let engine = &job.engine;
    let mut process = ready_process(job, process)?;
    let Some(child) = process.child.as_mut() else {
        return Err(SentenceError::Stop);
    };
    engine::feed_stdin(child, sentence).map_err(|e| engine.io_error(e))?;
    let stderr = child.stderr.take().map(engine::read_stderr_in_thread);
    let bytes = match child.stdout.take() {
        Some(stdout) => read_stdout_in_thread(stdout).map_err(|e| engine.io_error(e))?,
        // No stdout to read: the loop below sees it closed at once.
        None => mpsc::channel().1,
    };
    // Start the next sentence's espeak-ng once this one's first chunk is out (starting a
    // process takes a few milliseconds, which the first chunk should not wait for).
    let mut prefetch = prefetch;
    let mut start_next = || {
        if let Some(slot) = prefetch.take() {
            // Failing here is not fatal: the next sentence tries again and reports the error.
            *slot = Spawned::start(engine, &job.prosody).ok();
        }
    };
    let mut decoder = WavDecoder::new();
    decode_until_closed(
        engine,
        &bytes,
        &mut decoder,
        shaper,
        output,
        &mut start_next,
    )?;
    start_next();
    // stdout closed: espeak-ng is exiting.
    let child = process.child.as_mut().ok_or(SentenceError::Stop)?;
    check_exit(job, child, stderr, &output.cancel)?;
    let mut samples = Vec::new();
    decoder
        .finish(&mut samples)
        .map_err(|source| wav_error(engine, source))?;
    if let Some(format) = decoder.format() {
        shaper.push(&samples, format.sample_rate, &mut |chunk| {
            output.send(Ok(chunk))
        })?;
    }
    Ok(())
}

/// `process` when it was started with the job's prosody and still waits; else a new one.
fn ready_process(job: &Job, process: Option<Spawned>) -> Result<Spawned, EngineError> {
    let ready = process
        .filter(|p| p.prosody == job.prosody)
        .and_then(|mut p| {
            // A waiting process can have been killed by someone else.
            p.is_waiting().then_some(p)
        });
    match ready {
        Some(p) => Ok(p),
        None => Spawned::start(&job.engine, &job.prosody),
    }
}

/// What espeak-ng writes, read in a thread of its own and handed over piece by piece.
type Bytes = mpsc::Receiver<std::io::Result<Vec<u8>>>;

fn read_stdout_in_thread(mut stdout: std::process::ChildStdout) -> std::io::Result<Bytes> {
    let (bytes_tx, bytes_rx) = mpsc::channel();
    thread::Builder::new()
        .name("espeak-read".into())
        .spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        if bytes_tx.send(Ok(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = bytes_tx.send(Err(e));
                        return;
                    }
                }
            }
        })?;
    Ok(bytes_rx)
}

/// Decodes `bytes` into `shaper` until espeak-ng closes its stdout; calls `after_first`
/// once a chunk is out (and on every later piece: it runs once).
fn decode_until_closed(
    engine: &Espeak,
    bytes: &Bytes,
    decoder: &mut WavDecoder,
    shaper: &mut Shaper,
    output: &Output,
    after_first: &mut dyn FnMut(),
) -> Result<(), SentenceError> {
    let sent = Cell::new(0usize);
    let mut emit = |chunk: AudioChunk| {
        sent.set(sent.get() + 1);
        output.send(Ok(chunk))
    };
    let mut samples = Vec::new();
    let mut last_data = Instant::now();
    loop {
        if sent.get() > 0 {
            after_first();
        }
        if output.cancel.is_cancelled() {
            return Err(SentenceError::Stop); // dropping the process kills espeak-ng
        }
        match bytes.recv_timeout(POLL) {
            Ok(Ok(piece)) => {
                last_data = Instant::now();
                decoder
                    .push(&piece, &mut samples)
                    .map_err(|source| wav_error(engine, source))?;
                if let Some(format) = decoder.format() {
                    shaper.push(&samples, format.sample_rate, &mut emit)?;
                }
                samples.clear();
            }
            Ok(Err(e)) => return Err(engine.io_error(e).into()),
            Err(RecvTimeoutError::Timeout) if last_data.elapsed() > STALL_TIMEOUT => {
                return Err(stalled(engine).into());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}

fn stalled(engine: &Espeak) -> EngineError {
    EngineError::Timeout {
        binary: engine.name().to_string(),
        after: STALL_TIMEOUT,
    }
}

/// Waits for espeak-ng to exit; its failure, with what it wrote on stderr, is an error.
fn check_exit(
    job: &Job,
    child: &mut Child,
    stderr: Option<JoinHandle<String>>,
    cancel: &CancelToken,
) -> Result<(), SentenceError> {
    let engine = &job.engine;
    let status = match wait_with_cancel(child, cancel) {
        Ok(Wait::Exited(status)) => status,
        Ok(Wait::Cancelled) => return Err(SentenceError::Stop),
        Ok(Wait::TimedOut) => return Err(stalled(engine).into()),
        Err(e) => return Err(engine.io_error(e).into()),
    };
    let stderr = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    if !status.success() {
        let failure = EngineError::Failed {
            binary: engine.name().to_string(),
            status,
            stderr,
        };
        return Err(engine::classify_failure(failure, &job.prosody.voice).into());
    }
    Ok(())
}

fn wav_error(engine: &Espeak, source: crate::wav::WavError) -> EngineError {
    EngineError::Wav {
        binary: engine.name().to_string(),
        source,
    }
}

enum Wait {
    Exited(std::process::ExitStatus),
    Cancelled,
    TimedOut,
}

/// Waits for `child` to exit (it closed its stdout, so it is about to); kills it if the
/// synthesis is cancelled first or it takes too long.
fn wait_with_cancel(child: &mut Child, cancel: &CancelToken) -> std::io::Result<Wait> {
    let deadline = Instant::now() + STALL_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Wait::Exited(status));
        }
        if cancel.is_cancelled() {
            engine::kill(child);
            return Ok(Wait::Cancelled);
        }
        if Instant::now() > deadline {
            engine::kill(child);
            return Ok(Wait::TimedOut);
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Cuts the decoded samples into chunks and trims silence.
///
/// - Leading silence of every sentence is dropped (espeak-ng starts each run with 12 ms of
///   zeros), when trimming.
/// - Silence after the last loud sample is held back: if more speech follows in the same
///   sentence it is kept (pauses at commas); at the end of a sentence it is the pause before
///   the next one (kept, or replaced by `gap_ms`), and after the last sentence it is dropped,
///   when trimming.
#[derive(Debug)]
pub struct Shaper {
    chunk_ms: u32,
    trim: bool,
    sample_rate: u32,
    pending: Vec<i16>,
    held_silence: usize,
    in_speech: bool,
}

impl Shaper {
    /// A shaper emitting chunks of at most `chunk_ms`.
    pub fn new(chunk_ms: u32, trim: bool) -> Self {
        Shaper {
            chunk_ms,
            trim,
            sample_rate: 0,
            pending: Vec::new(),
            held_silence: 0,
            in_speech: false,
        }
    }

    fn chunk_samples(&self) -> usize {
        (self.sample_rate as usize * self.chunk_ms as usize / 1000).max(1)
    }

    /// Adds decoded samples at `sample_rate`, emitting every full chunk.
    pub fn push<E>(
        &mut self,
        samples: &[i16],
        sample_rate: u32,
        emit: &mut impl FnMut(AudioChunk) -> Result<(), E>,
    ) -> Result<(), E> {
        if sample_rate != self.sample_rate && !self.pending.is_empty() {
            self.flush(emit)?;
        }
        self.sample_rate = sample_rate;
        for &sample in samples {
            let silent = sample.unsigned_abs() <= SILENCE_THRESHOLD.unsigned_abs();
            if silent {
                if self.in_speech || !self.trim {
                    self.held_silence += 1;
                }
                continue;
            }
            self.in_speech = true;
            self.pending.extend(std::iter::repeat_n(
                0,
                std::mem::take(&mut self.held_silence),
            ));
            self.pending.push(sample);
        }
        // Held silence is not pending yet: it may turn out to be the sentence's tail.
        let size = self.chunk_samples();
        while self.pending.len() >= size {
            let rest = self.pending.split_off(size);
            let chunk = std::mem::replace(&mut self.pending, rest);
            emit(AudioChunk::new(chunk, self.sample_rate))?;
        }
        Ok(())
    }

    /// Ends a sentence: settles its trailing silence and flushes what is pending.
    pub fn end_sentence<E>(
        &mut self,
        last: bool,
        gap_ms: Option<u32>,
        emit: &mut impl FnMut(AudioChunk) -> Result<(), E>,
    ) -> Result<(), E> {
        let trailing = std::mem::take(&mut self.held_silence);
        let silence = if !self.in_speech && self.trim {
            0 // nothing was said: add no pause either
        } else if last {
            if self.trim {
                0
            } else {
                trailing
            }
        } else {
            match gap_ms {
                Some(ms) => self.sample_rate as usize * ms as usize / 1000,
                None => trailing,
            }
        };
        self.pending.extend(std::iter::repeat_n(0, silence));
        self.in_speech = false;
        self.flush(emit)
    }

    fn flush<E>(&mut self, emit: &mut impl FnMut(AudioChunk) -> Result<(), E>) -> Result<(), E> {
        let size = self.chunk_samples();
        while !self.pending.is_empty() {
            let rest = if self.pending.len() > size {
                self.pending.split_off(size)
            } else {
                Vec::new()
            };
            let chunk = std::mem::replace(&mut self.pending, rest);
            emit(AudioChunk::new(chunk, self.sample_rate))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(
        shaper: &mut Shaper,
        input: &[&[i16]],
        last: bool,
        gap: Option<u32>,
    ) -> Vec<Vec<i16>> {
        let mut out = Vec::new();
        let mut emit = |c: AudioChunk| -> Result<(), ()> {
            out.push(c.samples.into_vec());
            Ok(())
        };
        for piece in input {
            shaper.push(piece, 1000, &mut emit).unwrap();
        }
        shaper.end_sentence(last, gap, &mut emit).unwrap();
        out
    }

    #[test]
    fn trims_leading_and_final_silence_but_keeps_inner_pauses() {
        let mut shaper = Shaper::new(1000, true);
        let chunks = collect(
            &mut shaper,
            &[&[0, 0, 0, 5, 100], &[0, 0, 200, 0, 0, 0]],
            true,
            None,
        );
        assert_eq!(chunks, vec![vec![100, 0, 0, 200]]);
    }

    #[test]
    fn keeps_the_natural_pause_between_sentences_or_uses_gap_ms() {
        let mut shaper = Shaper::new(1000, true);
        let first = collect(&mut shaper, &[&[0, 100, 0, 0, 0]], false, None);
        assert_eq!(first, vec![vec![100, 0, 0, 0]]);
        let second = collect(&mut shaper, &[&[0, 0, 100, 0]], false, Some(5));
        assert_eq!(second, vec![vec![100, 0, 0, 0, 0, 0]]);
    }

    #[test]
    fn without_trimming_everything_passes() {
        let mut shaper = Shaper::new(1000, false);
        let chunks = collect(&mut shaper, &[&[0, 0, 100, 0]], true, None);
        assert_eq!(chunks, vec![vec![0, 0, 100, 0]]);
    }

    #[test]
    fn cuts_chunks_of_chunk_ms() {
        // 10 ms at 1000 Hz = 10 samples per chunk.
        let mut shaper = Shaper::new(10, true);
        let loud: Vec<i16> = vec![1000; 25];
        let chunks = collect(&mut shaper, &[&loud], true, None);
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5]);
    }

    #[test]
    fn a_silent_sentence_yields_nothing() {
        let mut shaper = Shaper::new(1000, true);
        assert!(collect(&mut shaper, &[&[0; 50]], false, Some(100)).is_empty());
    }
}
