//! Audio for the simulated users and the bot: speech made by espeak-ng, 48 kHz mono PCM cut
//! into 20 ms Opus frames, and the decoder that turns the bot's Opus back into PCM.

use std::path::Path;
use std::process::Command;

/// Discord's sample rate.
pub const RATE: u32 = 48_000;
/// Samples in a 20 ms frame at 48 kHz.
pub const FRAME: usize = 960;

/// `text` spoken by espeak-ng, as 48 kHz mono samples, followed by `pad_ms` of silence.
///
/// # Panics
///
/// When espeak-ng is not installed or fails.
pub fn speech(text: &str, pad_ms: u32) -> Vec<i16> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("speech.wav");
    let status = Command::new("espeak-ng")
        .args(["-s", "165", "-w"])
        .arg(&path)
        .arg(text)
        .status()
        .expect("espeak-ng is installed (`make deps`)");
    assert!(status.success(), "espeak-ng failed for {text:?}");
    let mut samples = read_mono_48k(&path);
    samples.extend(std::iter::repeat_n(0, (RATE * pad_ms / 1000) as usize));
    samples
}

/// A WAV file as 48 kHz mono.
pub fn read_mono_48k(path: &Path) -> Vec<i16> {
    let mut reader = hound::WavReader::open(path).expect("a readable WAV");
    let spec = reader.spec();
    let raw: Vec<i16> = reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .expect("16-bit samples");
    let channels = usize::from(spec.channels.max(1));
    let mono: Vec<i16> = raw
        .chunks(channels)
        .map(|c| (c.iter().map(|&s| i32::from(s)).sum::<i32>() / c.len() as i32) as i16)
        .collect();
    resample(&mono, spec.sample_rate, RATE)
}

/// Linear-interpolation resampling.
pub fn resample(samples: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || samples.is_empty() {
        return samples.to_vec();
    }
    let n = (samples.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let step = f64::from(from) / f64::from(to);
    (0..n)
        .map(|i| {
            let pos = i as f64 * step;
            let idx = pos as usize;
            let frac = pos - idx as f64;
            let a = f64::from(samples[idx.min(samples.len() - 1)]);
            let b = f64::from(samples[(idx + 1).min(samples.len() - 1)]);
            (a + (b - a) * frac) as i16
        })
        .collect()
}

/// 48 kHz mono PCM as 20 ms Opus frames (the last one padded with silence).
pub fn opus_frames(samples: &[i16]) -> Vec<Vec<u8>> {
    let mut encoder = opus2::Encoder::new(RATE, opus2::Channels::Mono, opus2::Application::Voip)
        .expect("an Opus encoder");
    let mut frames = Vec::with_capacity(samples.len() / FRAME + 1);
    let mut out = [0u8; 1500];
    for chunk in samples.chunks(FRAME) {
        let mut frame = [0i16; FRAME];
        frame[..chunk.len()].copy_from_slice(chunk);
        let n = encoder.encode(&frame, &mut out).expect("Opus encoding");
        frames.push(out[..n].to_vec());
    }
    frames
}

/// Decodes one SSRC's Opus stream (stereo, as Discord sends) into 48 kHz mono.
pub struct OpusStream {
    decoder: opus2::Decoder,
    pcm: Vec<i16>,
}

impl OpusStream {
    /// A fresh decoder.
    pub fn new() -> OpusStream {
        OpusStream {
            decoder: opus2::Decoder::new(RATE, opus2::Channels::Stereo).expect("an Opus decoder"),
            pcm: Vec::new(),
        }
    }

    /// Decodes one packet and appends its audio.
    pub fn push(&mut self, payload: &[u8]) -> bool {
        let mut out = [0i16; FRAME * 6 * 2];
        match self.decoder.decode(payload, &mut out, false) {
            Ok(n) => {
                self.pcm.extend(
                    out[..n * 2]
                        .chunks(2)
                        .map(|lr| ((i32::from(lr[0]) + i32::from(lr[1])) / 2) as i16),
                );
                true
            }
            Err(_) => false,
        }
    }

    /// The audio so far.
    pub fn pcm(&self) -> &[i16] {
        &self.pcm
    }
}

impl Default for OpusStream {
    fn default() -> Self {
        Self::new()
    }
}

/// RMS level of `samples`, 0 to 1.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt() / 32768.0
}
