//! Whisper's log-mel front end, as Smart Turn v3 was trained with it: 8 s of 16 kHz audio in,
//! 80 mel bands × 800 frames out (`transformers.WhisperFeatureExtractor(chunk_length=8)`, and
//! pipecat's numpy port of it).
//!
//! Steps: keep the last 8 s or left-pad with zeros to 128 000 samples; normalise to zero mean
//! and unit variance over all of them; centred STFT (`n_fft` 400, hop 160, periodic Hann,
//! 200 samples of reflect padding: 801 frames) of power `|X|²`; 80 Slaney mel filters over
//! 0–8 kHz; `log10(max(mel, 1e-10))`; drop the last frame; clamp to `max − 8`; `(x + 4) / 4`.
//! Checked against reference values from the Python code in `tests/fixtures/turn/`.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

/// Samples the model looks at: 8 s at 16 kHz.
pub(crate) const WINDOW_SAMPLES: usize = 128_000;
/// Mel bands.
pub(crate) const N_MELS: usize = 80;
/// Frames kept.
pub(crate) const N_FRAMES: usize = 800;
const N_FFT: usize = 400;
const HOP: usize = 160;
const N_BINS: usize = N_FFT / 2 + 1;

/// One mel filter: the first FFT bin it covers and its weights from there.
struct Filter {
    start: usize,
    weights: Vec<f32>,
}

/// The feature extractor: FFT plan, window and filter bank, made once and reused.
pub(crate) struct LogMel {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    filters: Vec<Filter>,
}

impl Default for LogMel {
    fn default() -> Self {
        Self::new()
    }
}

fn hz_to_mel(f: f64) -> f64 {
    if f >= 1000.0 {
        15.0 + (f / 1000.0).ln() * 27.0 / 6.4f64.ln()
    } else {
        3.0 * f / 200.0
    }
}

fn mel_to_hz(m: f64) -> f64 {
    if m >= 15.0 {
        1000.0 * (6.4f64.ln() / 27.0 * (m - 15.0)).exp()
    } else {
        200.0 * m / 3.0
    }
}

/// Slaney-scale, Slaney-normalised triangular filters over 0–8 kHz (librosa's `htk=False`).
fn filter_bank() -> Vec<Filter> {
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(8000.0));
    let points: Vec<f64> = (0..N_MELS + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (N_MELS + 1) as f64))
        .collect();
    let bin_hz = |k: usize| 8000.0 * k as f64 / (N_BINS - 1) as f64;
    (0..N_MELS)
        .map(|m| {
            let (left, centre, right) = (points[m], points[m + 1], points[m + 2]);
            let norm = 2.0 / (right - left);
            let weights: Vec<(usize, f32)> = (0..N_BINS)
                .filter_map(|k| {
                    let f = bin_hz(k);
                    let down = (f - left) / (centre - left);
                    let up = (right - f) / (right - centre);
                    let w = down.min(up).max(0.0) * norm;
                    (w > 0.0).then_some((k, w as f32))
                })
                .collect();
            let start = weights.first().map_or(0, |(k, _)| *k);
            let end = weights.last().map_or(0, |(k, _)| *k + 1);
            let mut dense = vec![0f32; end.saturating_sub(start)];
            for (k, w) in weights {
                dense[k - start] = w;
            }
            Filter {
                start,
                weights: dense,
            }
        })
        .collect()
}

impl LogMel {
    /// Plans the FFT and builds the filter bank.
    pub fn new() -> LogMel {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        let window = (0..N_FFT)
            .map(|n| {
                let x = std::f64::consts::TAU * n as f64 / N_FFT as f64;
                (0.5 - 0.5 * x.cos()) as f32
            })
            .collect();
        LogMel {
            fft,
            window,
            filters: filter_bank(),
        }
    }

    /// Features of the last 8 s of `audio` (16 kHz, -1..1), `[mel][frame]` row-major:
    /// `N_MELS * N_FRAMES` values.
    pub fn features(&self, audio: &[f32]) -> Vec<f32> {
        let x = normalised_window(audio);
        let mut padded = Vec::with_capacity(WINDOW_SAMPLES + N_FFT);
        let pad = N_FFT / 2;
        // Reflect padding (numpy `mode="reflect"`: the edge sample is not repeated).
        padded.extend((1..=pad).rev().map(|i| x[i]));
        padded.extend_from_slice(&x);
        padded.extend((0..pad).map(|i| x[WINDOW_SAMPLES - 2 - i]));

        let mut frame = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; N_BINS];
        let mut out = vec![0f32; N_MELS * N_FRAMES];
        for t in 0..N_FRAMES {
            let start = t * HOP;
            for (i, v) in frame.iter_mut().enumerate() {
                *v = padded[start + i] * self.window[i];
            }
            if self
                .fft
                .process_with_scratch(&mut frame, &mut spectrum, &mut scratch)
                .is_err()
            {
                // Only possible with wrongly sized buffers, which are made by the plan itself.
                continue;
            }
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for (m, filter) in self.filters.iter().enumerate() {
                let bins = &power[filter.start..filter.start + filter.weights.len()];
                let e: f32 = bins.iter().zip(&filter.weights).map(|(p, w)| p * w).sum();
                out[m * N_FRAMES + t] = e.max(1e-10).log10();
            }
        }
        let max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for v in &mut out {
            *v = (v.max(max - 8.0) + 4.0) / 4.0;
        }
        out
    }
}

/// The last 8 s, left-padded with zeros, normalised to zero mean and unit variance.
fn normalised_window(audio: &[f32]) -> Vec<f32> {
    let tail = &audio[audio.len().saturating_sub(WINDOW_SAMPLES)..];
    let mut x = vec![0f32; WINDOW_SAMPLES - tail.len()];
    x.extend_from_slice(tail);
    let n = WINDOW_SAMPLES as f64;
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = x
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    let scale = 1.0 / (var + 1e-7).sqrt();
    for v in &mut x {
        *v = ((f64::from(*v) - mean) * scale) as f32;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn fixture() -> serde_json::Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/turn/reference.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    pub(crate) fn clip() -> Vec<f32> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/turn/clip.wav");
        let mut r = hound::WavReader::open(path).unwrap();
        r.samples::<i16>()
            .map(|s| f32::from(s.unwrap()) / 32768.0)
            .collect()
    }

    fn close(a: f32, b: f64, tol: f64, what: &str) {
        assert!(
            (f64::from(a) - b).abs() <= tol,
            "{what}: {a} vs reference {b}"
        );
    }

    fn stats(f: &[f32]) -> (f32, f32, f64) {
        let min = f.iter().copied().fold(f32::INFINITY, f32::min);
        let max = f.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mean = f.iter().map(|&v| f64::from(v)).sum::<f64>() / f.len() as f64;
        (min, max, mean)
    }

    #[test]
    fn speech_features_match_the_reference() {
        let reference = fixture();
        let feats = LogMel::new().features(&clip());
        assert_eq!(feats.len(), N_MELS * N_FRAMES);
        let r = &reference["features"];
        let frames = r["frames"].as_array().unwrap();
        let values = r["values"].as_array().unwrap();
        for (frame, column) in frames.iter().zip(values) {
            let t = frame.as_u64().unwrap() as usize;
            for (m, v) in column.as_array().unwrap().iter().enumerate() {
                close(
                    feats[m * N_FRAMES + t],
                    v.as_f64().unwrap(),
                    2e-4,
                    &format!("mel {m} frame {t}"),
                );
            }
        }
        let (min, max, mean) = stats(&feats);
        close(min, r["min"].as_f64().unwrap(), 2e-4, "min");
        close(max, r["max"].as_f64().unwrap(), 2e-4, "max");
        assert!(
            (mean - r["mean"].as_f64().unwrap()).abs() < 1e-4,
            "mean {mean}"
        );
    }

    #[test]
    fn tone_features_match_the_reference() {
        let reference = fixture();
        let tone: Vec<f32> = (0..32_000)
            .map(|n| 0.5 * (std::f32::consts::TAU * 440.0 * n as f32 / 16_000.0).sin())
            .collect();
        let feats = LogMel::new().features(&tone);
        let r = &reference["tone"];
        for (m, v) in r["frame_700"].as_array().unwrap().iter().enumerate() {
            close(
                feats[m * N_FRAMES + 700],
                v.as_f64().unwrap(),
                2e-4,
                &format!("tone mel {m}"),
            );
        }
        let (min, max, _) = stats(&feats);
        close(min, r["min"].as_f64().unwrap(), 2e-4, "min");
        close(max, r["max"].as_f64().unwrap(), 2e-4, "max");
    }

    #[test]
    fn longer_audio_keeps_the_last_eight_seconds() {
        let mel = LogMel::new();
        let speech = clip();
        let mut long = vec![0.3f32; 200_000];
        long.extend_from_slice(&speech);
        let a = mel.features(&long);
        let mut exact = vec![0.3f32; WINDOW_SAMPLES - speech.len()];
        exact.extend_from_slice(&speech);
        assert_eq!(a, mel.features(&exact));
    }
}
