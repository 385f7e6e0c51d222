//! The pipeline's audio into a songbird call: each finished chunk becomes an in-memory input
//! queued on the call's track queue.
//!
//! **Architecture Invariant:** nothing here blocks the caller or songbird's mixer thread.
//! `enqueue` converts the samples to interleaved f32 LE (what songbird's `RawAdapter` reads)
//! and hands them to a player task; the player parses the input (off the mixer, so a track
//! is ready to play when queued) and queues it under the call's lock. `stop` clears the
//! queue the same way.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Instant;

use songbird::input::codecs::{get_codec_registry, get_probe};
use songbird::input::{Input, RawAdapter};
use songbird::tracks::Track;
use songbird::Call;
use tokio::sync::{mpsc, Mutex};

use crate::pipeline::AudioOutput;
use crate::plugins::Audio;

enum PlayerCommand {
    /// f32 LE bytes, mono, at this rate.
    Play(Vec<u8>, u32),
    Stop,
}

/// A call's audio output for [`crate::pipeline::Playback`].
pub(crate) struct CallOutput {
    commands: mpsc::UnboundedSender<PlayerCommand>,
}

impl CallOutput {
    /// An output playing on `call`; the player task ends when the output is dropped.
    pub fn new(call: Arc<Mutex<Call>>) -> CallOutput {
        let (commands, rx) = mpsc::unbounded_channel();
        tokio::spawn(player(call, rx));
        CallOutput { commands }
    }
}

impl AudioOutput for CallOutput {
    fn enqueue(&self, audio: &Audio, _start_at: Instant) {
        if audio.samples.is_empty() || audio.sample_rate == 0 {
            return;
        }
        let mut bytes = Vec::with_capacity(audio.samples.len() * 4);
        for &s in &audio.samples {
            bytes.extend_from_slice(&(f32::from(s) / 32_768.0).to_le_bytes());
        }
        let _ = self
            .commands
            .send(PlayerCommand::Play(bytes, audio.sample_rate));
    }

    fn stop(&self, _at: Instant) {
        let _ = self.commands.send(PlayerCommand::Stop);
    }
}

async fn player(call: Arc<Mutex<Call>>, mut rx: mpsc::UnboundedReceiver<PlayerCommand>) {
    while let Some(command) = rx.recv().await {
        match command {
            PlayerCommand::Play(bytes, rate) => {
                let input: Input = RawAdapter::new(Cursor::new(bytes), rate, 1).into();
                let input = match input
                    .make_playable_async(get_codec_registry(), get_probe())
                    .await
                {
                    Ok(input) => input,
                    Err(e) => {
                        tracing::warn!("cannot prepare reply audio for playback: {e}");
                        continue;
                    }
                };
                // Without preload: the next chunk is queued already parsed.
                call.lock()
                    .await
                    .enqueue_with_preload(Track::from(input), None);
            }
            PlayerCommand::Stop => call.lock().await.queue().stop(),
        }
    }
}
