//! The voice's VITS model on ONNX Runtime (through `openclaw-onnx`, which finds and opens
//! `libonnxruntime.so` once in this library's own copy of `ort`): phoneme ids in, one
//! sentence of audio out, peak-normalized to 16-bit PCM as piper-tts does.

use std::path::Path;

use openclaw_onnx::{Element, Input, InputSpec, Model, OnnxError};
use plugin_api::abi::PluginError;

use crate::voice::Scales;

const INPUTS: [InputSpec; 3] = [
    InputSpec {
        name: "input",
        element: Element::I64,
        dims: &[1, -1],
    },
    InputSpec {
        name: "input_lengths",
        element: Element::I64,
        dims: &[1],
    },
    InputSpec {
        name: "scales",
        element: Element::F32,
        dims: &[3],
    },
];

const SPEAKER: InputSpec = InputSpec {
    name: "sid",
    element: Element::I64,
    dims: &[1],
};

/// A loaded Piper voice model.
#[derive(Debug)]
pub struct VoiceModel {
    model: Model,
    multi_speaker: bool,
}

/// An `openclaw-onnx` error as the host sees it: a missing or bad file or runtime is the
/// configuration's fault; a failed run is not.
pub fn plugin_error(error: OnnxError) -> PluginError {
    match error {
        OnnxError::Run { .. } => PluginError::internal(error.to_string()),
        other => PluginError::config(other.to_string()),
    }
}

impl VoiceModel {
    /// Opens the runtime (`runtime`, else the usual places) and loads `path`, which must take
    /// a `sid` input exactly when the voice has several speakers.
    pub fn load(
        path: &Path,
        runtime: Option<&Path>,
        multi_speaker: bool,
        threads: usize,
    ) -> Result<VoiceModel, PluginError> {
        let library = openclaw_onnx::find_runtime(runtime).map_err(|e| {
            PluginError::config(format!("{e} (or set `onnxruntime` to the library's path)"))
        })?;
        openclaw_onnx::init(&library).map_err(plugin_error)?;
        let mut inputs = INPUTS.to_vec();
        if multi_speaker {
            inputs.push(SPEAKER);
        }
        let model =
            Model::load_with_threads(path, &inputs, &["output"], threads).map_err(plugin_error)?;
        Ok(VoiceModel {
            model,
            multi_speaker,
        })
    }

    /// One sentence: its phoneme ids to samples in [-1, 1], not normalized.
    pub fn infer(
        &self,
        ids: &[i64],
        scales: Scales,
        speaker: Option<i64>,
    ) -> Result<Vec<f32>, PluginError> {
        let shape = [1, ids.len()];
        let lengths = [ids.len() as i64];
        let scales = [scales.noise_scale, scales.length_scale, scales.noise_w];
        let sid = [speaker.unwrap_or(0)];
        let mut inputs = vec![
            ("input", Input::I64(&shape, ids)),
            ("input_lengths", Input::I64(&[1], &lengths)),
            ("scales", Input::F32(&[3], &scales)),
        ];
        if self.multi_speaker {
            inputs.push(("sid", Input::I64(&[1], &sid)));
        }
        let mut outputs = self.model.run(&inputs).map_err(plugin_error)?;
        Ok(outputs.pop().map(|o| o.data).unwrap_or_default())
    }
}

/// Peak-normalizes `audio` (piper-tts `normalize_audio`) and converts it to 16-bit PCM
/// (`np.clip(audio * 32767, -32768, 32767)`, truncated).
pub fn to_pcm(audio: &[f32]) -> Vec<i16> {
    let peak = audio.iter().fold(0f32, |m, s| m.max(s.abs()));
    if peak < 1e-8 {
        return vec![0; audio.len()];
    }
    audio
        .iter()
        .map(|s| ((s / peak).clamp(-1.0, 1.0) * 32767.0) as i16)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_is_peak_normalized() {
        assert_eq!(to_pcm(&[0.0, 0.25, -0.5]), [0, 16383, -32767]);
        assert_eq!(to_pcm(&[0.0, 1e-9]), [0, 0]);
    }
}
