//! The local transport: WAV files in as speakers, the bot's audio recorded to a WAV file.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::pipeline::AudioOutput;
use crate::plugins::Audio;

/// Why a WAV file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    /// Not readable as WAV at all.
    #[error("{path}: not a readable WAV file: {reason}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A WAV, but in a format we do not take.
    #[error("{path}: unsupported WAV format: {reason}; convert it with `sox {path} -r 16000 -c 1 -b 16 out.wav`")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The data ends before the header says it should.
    #[error("{path}: the file is truncated ({reason})")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Detail.
        reason: String,
    },
    /// No audio in it.
    #[error("{path}: the file holds no audio")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Writing the output failed.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A WAV file's audio, as interleaved 16-bit samples.
#[derive(Debug, Clone)]
pub struct WavAudio {
    /// Interleaved samples.
    pub samples: Vec<i16>,
    /// Channel count (1 or 2).
    pub channels: u16,
    /// Samples per second per channel.
    pub sample_rate: u32,
}

impl WavAudio {
    /// Duration.
    pub fn duration(&self) -> Duration {
        let frames = self.samples.len() / usize::from(self.channels.max(1));
        Duration::from_micros(frames as u64 * 1_000_000 / u64::from(self.sample_rate.max(1)))
    }

    /// The `frame_ms` frame (interleaved) that starts `offset_ms` into the file, as a
    /// transport delivers it: past the end, the rest padded with silence in `scratch` (a
    /// speaker who stopped talking sends silence frames).
    pub(crate) fn frame_at<'a>(
        &'a self,
        offset_ms: u64,
        frame_ms: u64,
        scratch: &'a mut Vec<i16>,
    ) -> &'a [i16] {
        let channels = usize::from(self.channels.max(1));
        let rate = u64::from(self.sample_rate);
        let len = (rate * frame_ms / 1000) as usize * channels;
        let start = (offset_ms * rate / 1000) as usize * channels;
        if let Some(frame) = self.samples.get(start..start + len) {
            return frame;
        }
        scratch.clear();
        scratch.resize(len, 0);
        if let Some(rest) = self.samples.get(start..) {
            scratch[..rest.len()].copy_from_slice(rest);
        }
        scratch
    }
}

/// Reads a WAV file: 8/16/24/32-bit integer or 32-bit float PCM, mono or stereo, 8–48 kHz.
pub fn read_wav(path: &Path) -> Result<WavAudio, WavError> {
    let p = || path.to_path_buf();
    let reader = hound::WavReader::open(path).map_err(|e| WavError::Open {
        path: p(),
        reason: e.to_string(),
    })?;
    let spec = reader.spec();
    if !(1..=2).contains(&spec.channels) {
        return Err(WavError::Format {
            path: p(),
            reason: format!("{} channels (1 or 2 supported)", spec.channels),
        });
    }
    if !(8_000..=48_000).contains(&spec.sample_rate) {
        return Err(WavError::Format {
            path: p(),
            reason: format!("{} Hz (8000 to 48000 Hz supported)", spec.sample_rate),
        });
    }
    let expected = reader.len() as usize;
    let truncated = |e: hound::Error| match e {
        hound::Error::IoError(io) => WavError::Truncated {
            path: p(),
            reason: io.to_string(),
        },
        other => WavError::Format {
            path: p(),
            reason: other.to_string(),
        },
    };
    let samples: Vec<i16> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, 16) => reader
            .into_samples::<i16>()
            .collect::<Result<_, _>>()
            .map_err(truncated)?,
        (hound::SampleFormat::Int, bits @ (8 | 24 | 32)) => {
            let shift = i32::from(bits) - 16;
            reader
                .into_samples::<i32>()
                .map(|s| {
                    s.map(|v| {
                        if shift >= 0 {
                            (v >> shift) as i16
                        } else {
                            (v << -shift) as i16
                        }
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(truncated)?
        }
        (hound::SampleFormat::Float, 32) => reader
            .into_samples::<f32>()
            .map(|s| s.map(|v| (v.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16))
            .collect::<Result<_, _>>()
            .map_err(truncated)?,
        (format, bits) => {
            return Err(WavError::Format {
                path: p(),
                reason: format!("{bits}-bit {format:?} samples"),
            })
        }
    };
    if samples.len() < expected {
        return Err(WavError::Truncated {
            path: p(),
            reason: format!("{} of {} samples present", samples.len(), expected),
        });
    }
    if samples.is_empty() {
        return Err(WavError::Empty { path: p() });
    }
    Ok(WavAudio {
        samples,
        channels: spec.channels,
        sample_rate: spec.sample_rate,
    })
}

/// Writes mono 16-bit audio to a WAV file.
pub(crate) fn write_wav(path: &Path, samples: &[i16], sample_rate: u32) -> Result<(), WavError> {
    let err = |e: hound::Error| WavError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(err)?;
    for &s in samples {
        writer.write_sample(s).map_err(err)?;
    }
    writer.finalize().map_err(err)
}

struct Scheduled {
    start: Instant,
    samples: Vec<i16>,
}

/// Records what the bot says, as it would have been heard: audio stopped by a barge-in is cut
/// where it stopped.
pub(crate) struct WavRecorder {
    rate: u32,
    chunks: Mutex<Vec<Scheduled>>,
}

impl WavRecorder {
    /// A recorder at `rate` Hz mono.
    pub fn new(rate: u32) -> Self {
        WavRecorder {
            rate,
            chunks: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Scheduled>> {
        match self.chunks.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Everything recorded, with 300 ms of silence between separate stretches of speech.
    pub fn samples(&self) -> Vec<i16> {
        let chunks = self.lock();
        let gap = vec![0i16; self.rate as usize * 3 / 10];
        let mut out = Vec::new();
        let mut last_end: Option<Instant> = None;
        for c in chunks.iter() {
            if let Some(end) = last_end {
                if c.start > end + Duration::from_millis(50) {
                    out.extend_from_slice(&gap);
                }
            }
            out.extend_from_slice(&c.samples);
            last_end = Some(c.start + self.duration_of(c.samples.len()));
        }
        out
    }

    fn duration_of(&self, samples: usize) -> Duration {
        Duration::from_micros(samples as u64 * 1_000_000 / u64::from(self.rate))
    }

    /// Writes the recording.
    pub fn write(&self, path: &Path) -> Result<Duration, WavError> {
        let samples = self.samples();
        write_wav(path, &samples, self.rate)?;
        Ok(self.duration_of(samples.len()))
    }
}

impl AudioOutput for WavRecorder {
    fn enqueue(&self, audio: &Audio, start_at: Instant) {
        let samples = resample_linear(&audio.samples, audio.sample_rate, self.rate);
        self.lock().push(Scheduled {
            start: start_at,
            samples,
        });
    }

    fn stop(&self, at: Instant) {
        let rate = self.rate;
        let mut chunks = self.lock();
        chunks.retain(|c| c.start < at);
        for c in chunks.iter_mut() {
            let played = at.saturating_duration_since(c.start);
            let keep = (played.as_micros() as u64 * u64::from(rate) / 1_000_000) as usize;
            c.samples.truncate(keep);
        }
    }
}

/// Linear-interpolation resampling; good enough for a recording of speech.
pub fn resample_linear(samples: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || samples.is_empty() || from == 0 {
        return samples.to_vec();
    }
    let out_len = (samples.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let step = f64::from(from) / f64::from(to);
    (0..out_len)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_cut_in_time_and_padded_past_the_end() {
        let wav = WavAudio {
            samples: (0..100).collect(),
            channels: 2,
            sample_rate: 1000,
        };
        let mut scratch = Vec::new();
        assert_eq!(
            wav.frame_at(0, 20, &mut scratch),
            &(0..40).collect::<Vec<_>>()[..]
        );
        assert_eq!(
            wav.frame_at(20, 20, &mut scratch),
            &(40..80).collect::<Vec<_>>()[..]
        );
        let mut tail: Vec<i16> = (80..100).collect();
        tail.resize(40, 0);
        assert_eq!(wav.frame_at(40, 20, &mut scratch), &tail[..]);
        assert_eq!(wav.frame_at(60, 20, &mut scratch), &[0; 40][..]);
    }

    #[test]
    fn stop_cuts_what_was_not_played() {
        let rec = WavRecorder::new(1000);
        let t0 = Instant::now();
        let audio = Audio {
            samples: vec![1; 1000],
            sample_rate: 1000,
        };
        rec.enqueue(&audio, t0);
        rec.enqueue(&audio, t0 + Duration::from_secs(1));
        rec.stop(t0 + Duration::from_millis(400));
        assert_eq!(rec.samples().len(), 400);
    }

    #[test]
    fn bad_files_give_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.wav");
        std::fs::write(&junk, b"hello, not audio").unwrap();
        let e = read_wav(&junk).unwrap_err().to_string();
        assert!(
            e.contains("junk.wav") && e.contains("not a readable WAV"),
            "{e}"
        );

        let empty = dir.path().join("empty.wav");
        write_wav(&empty, &[], 16_000).unwrap();
        assert!(matches!(read_wav(&empty), Err(WavError::Empty { .. })));

        let cut = dir.path().join("cut.wav");
        write_wav(&cut, &vec![100; 16_000], 16_000).unwrap();
        let bytes = std::fs::read(&cut).unwrap();
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = read_wav(&cut).unwrap_err();
        assert!(matches!(e, WavError::Truncated { .. }), "{e}");
    }

    #[test]
    fn resampling_keeps_duration() {
        let out = resample_linear(&vec![0; 22_050], 22_050, 24_000);
        assert_eq!(out.len(), 24_000);
    }
}
