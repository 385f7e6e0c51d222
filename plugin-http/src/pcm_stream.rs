//! Streaming synthesis shared by the cloud text-to-speech plugins (`elevenlabs`, `openai-tts`):
//! a worker thread sends the request, then reads the response body (raw 16-bit little-endian
//! mono PCM) and hands each piece to the host as an [`AudioChunk`] the moment it arrives, so
//! the first audio plays while the server is still sending the rest.

use std::io::Read;
use std::sync::Arc;

use crate::http::{Answer, Api};
use plugin_api::prelude::*;

/// Bytes read from the response at a time: at most ~85 ms of 24 kHz audio per chunk, and
/// whatever has arrived sooner.
const READ_BYTES: usize = 4_096;

/// Starts a synthesis: `open` (run on the worker thread) sends the request and returns the
/// response; its body is streamed as `sample_rate` audio into the returned stream. Errors
/// before or during the body become the stream's error; cancelling stops the worker at the
/// next piece.
pub fn start(
    api: Arc<Api>,
    sample_rate: u32,
    cancel: CancelToken,
    open: impl FnOnce(&Api, &CancelToken) -> Result<Answer, PluginError> + Send + 'static,
) -> Result<ChannelStream, PluginError> {
    let (tx, stream) = ChannelStream::new(cancel.clone());
    let name = format!("{}-audio", api.plugin());
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let result = open(&api, &cancel)
                .and_then(|response| pump(&api, response, sample_rate, &cancel, &tx));
            if let Err(e) = result {
                if !cancel.is_cancelled() {
                    // The host may have dropped the stream already; nobody is left to tell.
                    let _ = tx.send(Err(e));
                }
            }
        })
        .map_err(|e| PluginError::internal(format!("cannot start the audio worker thread: {e}")))?;
    Ok(stream)
}

/// Reads `response` to its end, sending audio as it comes.
fn pump(
    api: &Api,
    mut response: Answer,
    sample_rate: u32,
    cancel: &CancelToken,
    tx: &std::sync::mpsc::SyncSender<Result<AudioChunk, PluginError>>,
) -> Result<(), PluginError> {
    let mut buf = vec![0u8; READ_BYTES];
    let mut decoder = PcmDecoder::default();
    let mut samples_sent = 0usize;
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let n = match response.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return Err(api.read_error("synthesis", &e)),
        };
        let samples = decoder.push(&buf[..n]);
        if samples.is_empty() {
            continue;
        }
        samples_sent += samples.len();
        if tx.send(Ok(AudioChunk::new(samples, sample_rate))).is_err() {
            // The host dropped the stream.
            return Ok(());
        }
    }
    if samples_sent == 0 {
        return Err(PluginError::unavailable(format!(
            "{}: synthesis: the API answered without any audio",
            api.plugin()
        )));
    }
    log::debug!(
        "synthesis done: {} ms of audio",
        samples_sent as u64 * 1000 / u64::from(sample_rate.max(1))
    );
    Ok(())
}

/// Turns bytes of 16-bit little-endian PCM into samples, keeping an odd byte for the next
/// piece (the network splits the stream anywhere).
#[derive(Debug, Default)]
pub struct PcmDecoder {
    pending: Option<u8>,
}

impl PcmDecoder {
    /// The whole samples in `bytes` and in the byte held back from the last call.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<i16> {
        let mut out = Vec::with_capacity(bytes.len() / 2 + 1);
        let mut rest = bytes;
        if let Some(low) = self.pending.take() {
            match rest.split_first() {
                Some((&high, tail)) => {
                    out.push(i16::from_le_bytes([low, high]));
                    rest = tail;
                }
                None => {
                    self.pending = Some(low);
                    return out;
                }
            }
        }
        let mut pairs = rest.chunks_exact(2);
        out.extend(pairs.by_ref().map(|p| i16::from_le_bytes([p[0], p[1]])));
        self.pending = pairs.remainder().first().copied();
        out
    }
}

#[cfg(test)]
mod pcm_tests {
    use super::*;

    #[test]
    fn samples_split_across_pieces_are_joined() {
        let samples: Vec<i16> = vec![1, -2, 300, -32768, 32767];
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        for split in [
            vec![1, 2, 3, 4],
            vec![3, 1, 5, 1],
            vec![10],
            vec![0, 1, 0, 1, 1],
        ] {
            let mut decoder = PcmDecoder::default();
            let mut out = Vec::new();
            let mut rest = bytes.as_slice();
            for n in split {
                let n = n.min(rest.len());
                out.extend(decoder.push(&rest[..n]));
                rest = &rest[n..];
            }
            out.extend(decoder.push(rest));
            assert_eq!(out, samples);
        }
    }
}
