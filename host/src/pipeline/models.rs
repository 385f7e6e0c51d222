//! The turn-taking models: Silero VAD (speech probability per 32 ms window, state carried per
//! speaker) and Smart Turn v3.2 (is this a finished turn?), on ONNX Runtime through
//! `openclaw-onnx`; and [`TurnModels::load`], which finds them from `[pipeline]`, falls back
//! to the energy gate and a fixed silence when they are not installed (one warning), and
//! turns a missing, corrupt or wrong model that was asked for into an error naming the file
//! and the setting. Inference times go to two process-wide histograms for `/metrics`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use openclaw_onnx::signatures::{
    SILERO_INPUTS, SILERO_OUTPUTS, SMART_TURN_INPUTS, SMART_TURN_OUTPUTS,
};
use openclaw_onnx::{Input, Model, ModelOptions, OnnxError};

use super::mel::LogMel;
use crate::config::{PipelineConfig, TurnModelKind, VadKind};

/// Samples per Silero window at 16 kHz (32 ms).
pub(crate) const VAD_WINDOW: usize = 512;
const VAD_CONTEXT: usize = 64;
const VAD_STATE: usize = 2 * 128;
/// File name of the Silero model in the models directory.
pub(crate) const SILERO_FILE: &str = "silero_vad.onnx";
/// File name of the Smart Turn model in the models directory.
pub(crate) const SMART_TURN_FILE: &str = "smart-turn-v3.2-cpu.onnx";

/// `vad_inference_seconds`: one Silero window.
pub(crate) static VAD_SECONDS: LazyLock<prometheus::Histogram> = LazyLock::new(|| {
    histogram(
        "vad_inference_seconds",
        "Silero VAD inference time per 32 ms window",
        vec![0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05],
    )
});

/// `turn_model_inference_seconds`: one Smart Turn call, features included.
pub(crate) static TURN_MODEL_SECONDS: LazyLock<prometheus::Histogram> = LazyLock::new(|| {
    histogram(
        "turn_model_inference_seconds",
        "Smart Turn inference time per call, log-mel features included",
        vec![0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0],
    )
});

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> prometheus::Histogram {
    let opts = prometheus::HistogramOpts::new(name, help).buckets(buckets);
    match prometheus::Histogram::with_opts(opts) {
        Ok(h) => h,
        // The options are constants; fall back to default buckets rather than panic.
        Err(_) => prometheus::Histogram::with_opts(prometheus::HistogramOpts::new(name, help))
            .unwrap_or_else(|_| unreachable!("a histogram with default buckets")),
    }
}

/// A model that could not be used, with the setting that chose it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{setting}`: {source}")]
pub struct ModelError {
    /// The `[pipeline]` key (`pipeline.silero_model`…).
    pub setting: &'static str,
    /// What went wrong, naming the file.
    pub source: OnnxError,
}

/// Silero VAD v6 (16 kHz branch), shared by every speaker; state lives in [`VadStream`].
#[derive(Debug)]
pub struct Silero {
    model: Model,
}

impl Silero {
    /// Loads and checks the model (`input` [B, 576], `state` [2, B, 128], `sr` scalar).
    pub fn load(path: &Path) -> Result<Silero, OnnxError> {
        let model = Model::load_with(path, &SILERO_INPUTS, &SILERO_OUTPUTS, ModelOptions::lean())?;
        Ok(Silero { model })
    }

    /// Speech probability of one window (`context` + 512 new samples); updates `state`.
    fn infer(&self, window: &[f32], state: &mut [f32]) -> Result<f32, OnnxError> {
        let started = Instant::now();
        let outputs = self.model.run(&[
            ("input", Input::F32(&[1, VAD_CONTEXT + VAD_WINDOW], window)),
            ("state", Input::F32(&[2, 1, 128], state)),
            ("sr", Input::I64(&[], &[16_000])),
        ])?;
        VAD_SECONDS.observe(started.elapsed().as_secs_f64());
        let bad = |what: &str| OnnxError::Run {
            path: self.model.path().to_path_buf(),
            reason: format!("unexpected {what}"),
        };
        let prob = *outputs[0].data.first().ok_or_else(|| bad("output"))?;
        if outputs[1].data.len() != VAD_STATE {
            return Err(bad("state size"));
        }
        state.copy_from_slice(&outputs[1].data);
        Ok(prob)
    }
}

/// One speaker's Silero state: the recurrent state, the last 64 samples as context, and the
/// samples waiting for a full window.
pub(crate) struct VadStream {
    model: Arc<Silero>,
    state: Vec<f32>,
    window: Vec<f32>,
    pending: Vec<f32>,
    prob: f32,
    failed: bool,
}

impl VadStream {
    /// A fresh stream on `model`.
    pub fn new(model: Arc<Silero>) -> VadStream {
        VadStream {
            model,
            state: vec![0.0; VAD_STATE],
            window: vec![0.0; VAD_CONTEXT + VAD_WINDOW],
            pending: Vec::with_capacity(VAD_WINDOW * 2),
            prob: 0.0,
            failed: false,
        }
    }

    /// Feeds 16 kHz samples; returns the probability of the latest full window (the previous
    /// one when no window completed).
    pub fn push(&mut self, samples: &[f32]) -> f32 {
        self.pending.extend_from_slice(samples);
        let mut start = 0;
        while self.pending.len() - start >= VAD_WINDOW {
            self.window
                .copy_within(VAD_WINDOW..VAD_WINDOW + VAD_CONTEXT, 0);
            self.window[VAD_CONTEXT..].copy_from_slice(&self.pending[start..start + VAD_WINDOW]);
            start += VAD_WINDOW;
            match self.model.infer(&self.window, &mut self.state) {
                Ok(p) => self.prob = p,
                Err(e) => {
                    if !self.failed {
                        tracing::error!("Silero VAD failed, treating the audio as silence: {e}");
                        self.failed = true;
                    }
                    self.prob = 0.0;
                }
            }
        }
        self.pending.drain(..start);
        self.prob
    }

    /// Forgets the state (after silence, as upstream does, so it does not drift).
    pub fn reset(&mut self) {
        self.state.fill(0.0);
        self.window.fill(0.0);
        self.pending.clear();
        self.prob = 0.0;
    }
}

/// Smart Turn v3.2: the last 8 s of a turn in, the probability that it is complete out.
pub struct SmartTurn {
    model: Model,
    mel: LogMel,
}

impl std::fmt::Debug for SmartTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmartTurn")
            .field("path", &self.model.path())
            .finish()
    }
}

impl SmartTurn {
    /// Loads and checks the model (`input_features` [B, 80, 800] → `logits` [B, 1]).
    pub fn load(path: &Path) -> Result<SmartTurn, OnnxError> {
        let model = Model::load_with(
            path,
            &SMART_TURN_INPUTS,
            &SMART_TURN_OUTPUTS,
            ModelOptions::lean(),
        )?;
        Ok(SmartTurn {
            model,
            mel: LogMel::new(),
        })
    }

    /// Probability (0..1) that `audio` (16 kHz) ends a finished turn.
    pub(crate) fn predict(&self, audio: &[i16]) -> Result<f32, OnnxError> {
        let started = Instant::now();
        let samples: Vec<f32> = audio.iter().map(|&s| f32::from(s) / 32768.0).collect();
        let features = self.mel.features(&samples);
        let outputs = self.model.run(&[(
            "input_features",
            Input::F32(&[1, super::mel::N_MELS, super::mel::N_FRAMES], &features),
        )])?;
        TURN_MODEL_SECONDS.observe(started.elapsed().as_secs_f64());
        // The graph ends in a Sigmoid: the "logits" output is already a probability.
        outputs[0]
            .data
            .first()
            .copied()
            .ok_or_else(|| OnnxError::Run {
                path: self.model.path().to_path_buf(),
                reason: "empty output".into(),
            })
    }
}

/// The models a session uses; `None` where the energy gate or the fixed silence runs.
#[derive(Debug, Clone, Default)]
pub struct TurnModels {
    /// Silero VAD, when `vad = "silero"` and it loaded.
    pub vad: Option<Arc<Silero>>,
    /// Smart Turn, when `turn_model = "smart-turn"` and it loaded.
    pub turn: Option<Arc<SmartTurn>>,
    /// Set when a default-located model or the runtime was not found: the one warning.
    pub warning: Option<String>,
}

impl TurnModels {
    /// Whether a model `[pipeline]` asks for (or ONNX Runtime) was not installed, so the
    /// energy gate or the fixed silence runs instead: exactly when there is a warning.
    pub fn is_fallback(&self) -> bool {
        self.warning.is_some()
    }
}

/// A model file: the configured path (must exist) or the default one (may be absent).
fn model_path(configured: &Option<String>, file: &str) -> (Option<PathBuf>, bool) {
    match configured {
        Some(p) => (Some(PathBuf::from(p)), true),
        None => (openclaw_onnx::models_dir().map(|d| d.join(file)), false),
    }
}

impl TurnModels {
    /// Loads what `cfg` asks for. A model (or the runtime) that is not installed where it is
    /// looked for by default gives a fallback and a warning; one that was configured and is
    /// missing, or that is corrupt or not the expected model, is an error.
    pub fn load(cfg: &PipelineConfig) -> Result<TurnModels, ModelError> {
        let want_vad = cfg.vad == VadKind::Silero;
        let want_turn = cfg.turn_model == TurnModelKind::SmartTurn;
        let mut out = TurnModels::default();
        if !want_vad && !want_turn {
            return Ok(out);
        }
        let (silero, silero_set) = model_path(&cfg.silero_model, SILERO_FILE);
        let (turn, turn_set) = model_path(&cfg.smart_turn_model, SMART_TURN_FILE);
        let mut absent: Vec<String> = Vec::new();
        let mut usable = |path: &Option<PathBuf>, set: bool, setting| match path {
            Some(p) if p.is_file() => Ok(Some(p.clone())),
            Some(p) if set => Err(ModelError {
                setting,
                source: OnnxError::ModelMissing { path: p.clone() },
            }),
            Some(p) => {
                absent.push(p.display().to_string());
                Ok(None)
            }
            None => {
                absent.push(format!("{setting} (no models directory: HOME is not set)"));
                Ok(None)
            }
        };
        let silero = if want_vad {
            usable(&silero, silero_set, "pipeline.silero_model")?
        } else {
            None
        };
        let turn = if want_turn {
            usable(&turn, turn_set, "pipeline.smart_turn_model")?
        } else {
            None
        };
        if silero.is_some() || turn.is_some() {
            match open_runtime(cfg) {
                Ok(()) => {
                    out.vad = load_with(silero, "pipeline.silero_model", Silero::load)?;
                    out.turn = load_with(turn, "pipeline.smart_turn_model", SmartTurn::load)?;
                }
                Err(e)
                    if cfg.onnxruntime.is_none()
                        && matches!(e, OnnxError::RuntimeMissing { .. }) =>
                {
                    absent.push(e.to_string());
                }
                Err(source) => {
                    return Err(ModelError {
                        setting: "pipeline.onnxruntime",
                        source,
                    })
                }
            }
        }
        if (want_vad && out.vad.is_none()) || (want_turn && out.turn.is_none()) {
            out.warning = Some(fallback_warning(cfg, &absent, &out));
        }
        Ok(out)
    }
}

fn open_runtime(cfg: &PipelineConfig) -> Result<(), OnnxError> {
    let path = openclaw_onnx::find_runtime(cfg.onnxruntime.as_deref().map(Path::new))?;
    openclaw_onnx::init(&path).map(|_| ())
}

/// Loads the model at `path`, if any, then gives the heap's freed pages back: ONNX Runtime
/// frees the parsed file after building a session, 2-6 MB that would otherwise stay resident.
fn load_with<T>(
    path: Option<PathBuf>,
    setting: &'static str,
    load: fn(&Path) -> Result<T, OnnxError>,
) -> Result<Option<Arc<T>>, ModelError> {
    let model = path
        .map(|p| load(&p).map(Arc::new))
        .transpose()
        .map_err(|source| ModelError { setting, source })?;
    if model.is_some() {
        crate::plugins::worker::release_free_heap();
    }
    Ok(model)
}

fn fallback_warning(cfg: &PipelineConfig, absent: &[String], models: &TurnModels) -> String {
    let mut instead = Vec::new();
    if cfg.vad == VadKind::Silero && models.vad.is_none() {
        instead.push(format!(
            "the energy gate ({} dBFS) instead of Silero VAD",
            cfg.speech_threshold_dbfs
        ));
    }
    if cfg.turn_model == TurnModelKind::SmartTurn && models.turn.is_none() {
        instead.push(format!(
            "a fixed {} ms silence instead of Smart Turn",
            cfg.silence_hangover_ms
        ));
    }
    format!(
        "turn-taking models not installed (not found: {}); using {}. Run \
         scripts/fetch-turn-models [DIR] (`make model` in a checkout; docs/MODELS.md) to \
         fetch them, or set pipeline.vad = \"energy\" and pipeline.turn_model = \"none\" to \
         choose this on purpose",
        absent.join(", "),
        instead.join(" and ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The models directory `make model` fills; the tests need it.
    fn models() -> PathBuf {
        let dir = openclaw_onnx::models_dir().expect("HOME is set");
        assert!(
            dir.join(SILERO_FILE).is_file() && dir.join(SMART_TURN_FILE).is_file(),
            "the turn-taking models are not in {}: run `make model`",
            dir.display()
        );
        dir
    }

    fn fixture() -> (serde_json::Value, Vec<i16>) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/turn");
        let json = std::fs::read_to_string(format!("{dir}/reference.json")).unwrap();
        let mut wav = hound::WavReader::open(format!("{dir}/clip.wav")).unwrap();
        let pcm = wav.samples::<i16>().map(|s| s.unwrap()).collect();
        (serde_json::from_str(&json).unwrap(), pcm)
    }

    fn config() -> PipelineConfig {
        models();
        PipelineConfig {
            vad: VadKind::Silero,
            turn_model: TurnModelKind::SmartTurn,
            ..PipelineConfig::default()
        }
    }

    #[test]
    fn smart_turn_matches_onnx_runtime_in_python() {
        let models = TurnModels::load(&config()).unwrap();
        assert!(models.warning.is_none(), "{:?}", models.warning);
        let turn = models.turn.expect("Smart Turn loaded");
        let (reference, pcm) = fixture();
        let p = turn.predict(&pcm).unwrap();
        let want = reference["smart_turn_probability"].as_f64().unwrap();
        assert!((f64::from(p) - want).abs() < 2e-3, "{p} vs {want}");
        assert!(p > 0.5, "a finished question is complete");
        let tone: Vec<i16> = (0..32_000)
            .map(|n| {
                let v = 0.5 * (std::f32::consts::TAU * 440.0 * n as f32 / 16_000.0).sin();
                (v * 32768.0) as i16
            })
            .collect();
        let p = turn.predict(&tone).unwrap();
        let want = reference["tone"]["smart_turn_probability"]
            .as_f64()
            .unwrap();
        assert!((f64::from(p) - want).abs() < 5e-3, "{p} vs {want}");
    }

    #[test]
    fn silero_matches_onnx_runtime_in_python() {
        let models = TurnModels::load(&config()).unwrap();
        let mut stream = VadStream::new(models.vad.expect("Silero loaded"));
        let (reference, pcm) = fixture();
        let want: Vec<f64> = reference["silero_window_probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let audio: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
        for (n, window) in audio.chunks_exact(VAD_WINDOW).enumerate() {
            let p = stream.push(window);
            assert!(
                (f64::from(p) - want[n]).abs() < 1e-3,
                "window {n}: {p} vs {}",
                want[n]
            );
        }
    }

    #[test]
    fn a_wrong_missing_or_corrupt_model_is_an_error_naming_file_and_setting() {
        let dir = models();
        let silero = dir.join(SILERO_FILE).display().to_string();
        let wrong = PipelineConfig {
            smart_turn_model: Some(silero.clone()),
            ..config()
        };
        let e = TurnModels::load(&wrong).unwrap_err().to_string();
        assert!(e.contains("pipeline.smart_turn_model"), "{e}");
        assert!(e.contains(&silero) && e.contains("input_features"), "{e}");

        let missing = PipelineConfig {
            silero_model: Some("/nonexistent/silero_vad.onnx".into()),
            ..config()
        };
        let e = TurnModels::load(&missing).unwrap_err().to_string();
        assert!(e.contains("pipeline.silero_model"), "{e}");
        assert!(e.contains("/nonexistent/silero_vad.onnx"), "{e}");

        let scratch = tempfile::tempdir().unwrap();
        let corrupt = scratch.path().join("smart-turn.onnx");
        let bytes = std::fs::read(dir.join(SMART_TURN_FILE)).unwrap();
        std::fs::write(&corrupt, &bytes[..bytes.len() / 3]).unwrap();
        let cfg = PipelineConfig {
            smart_turn_model: Some(corrupt.display().to_string()),
            ..config()
        };
        let e = TurnModels::load(&cfg).unwrap_err().to_string();
        assert!(e.contains("pipeline.smart_turn_model"), "{e}");
        assert!(
            e.contains("smart-turn.onnx") && e.contains("cannot be loaded"),
            "{e}"
        );
    }

    #[test]
    fn energy_and_no_turn_model_load_nothing() {
        let cfg = PipelineConfig {
            vad: VadKind::Energy,
            turn_model: TurnModelKind::None,
            silero_model: Some("/nonexistent/is-not-read.onnx".into()),
            ..PipelineConfig::default()
        };
        let models = TurnModels::load(&cfg).unwrap();
        assert!(models.vad.is_none() && models.turn.is_none() && models.warning.is_none());
    }
}
