//! ONNX Runtime for OpenClaw Voice and its plugins: finds the `libonnxruntime` shared library
//! and opens it once per process (the `ort` crate's `load-dynamic`), loads a model file with
//! its input names, element types and shapes checked against what the caller will feed it,
//! and runs it (on one thread unless told otherwise). Every error names the file concerned; callers add the setting.
//!
//! The library comes from the PyPI `onnxruntime` wheel (`make model` puts it beside the models
//! as `libonnxruntime.so`); nothing is linked at build time, so a build needs no C++ and a host
//! without the library still runs (without the models). The host's Silero VAD and Smart Turn,
//! and the Piper TTS plugin, go through this crate.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::{TensorElementType, TensorRef, ValueType};

/// Environment variable naming the ONNX Runtime library (`libonnxruntime.so[.1.N]`).
pub const RUNTIME_ENV: &str = "OPENCLAW_ONNXRUNTIME";
/// Environment variable naming the directory `make model` fills (models and runtime).
pub const MODELS_DIR_ENV: &str = "OPENCLAW_MODELS_DIR";
/// File name of the runtime library inside the models directory.
pub const RUNTIME_FILE: &str = "libonnxruntime.so";

/// Something went wrong with the runtime or a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    /// No runtime library was found where it was looked for.
    #[error("no ONNX Runtime library found (looked for {looked}); run `make model` to fetch it")]
    RuntimeMissing {
        /// The places looked at.
        looked: String,
    },
    /// The runtime library exists but could not be opened or is too old.
    #[error("cannot open the ONNX Runtime library {path}: {reason}")]
    Runtime {
        /// The library.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The model file does not exist.
    #[error("model file {path} does not exist")]
    ModelMissing {
        /// The file.
        path: PathBuf,
    },
    /// The file exists but is not a model ONNX Runtime can load (corrupt, truncated, not ONNX).
    #[error("model file {path} cannot be loaded (corrupt or not an ONNX model?): {reason}")]
    ModelLoad {
        /// The file.
        path: PathBuf,
        /// ONNX Runtime's message.
        reason: String,
    },
    /// The model loads, but its inputs or outputs are not those expected.
    #[error("model file {path} is not the expected model: {reason}")]
    ModelShape {
        /// The file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// Inference failed.
    #[error("inference with {path} failed: {reason}")]
    Run {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The directory `make model` fills: `$OPENCLAW_MODELS_DIR`, else
/// `$XDG_CACHE_HOME/openclaw-voice/models`, else `~/.cache/openclaw-voice/models`.
pub fn models_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var(MODELS_DIR_ENV) {
        return Some(PathBuf::from(dir));
    }
    let cache = var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("openclaw-voice").join("models"))
}

/// Where the runtime library is: `configured` if given (it must exist), else
/// `$OPENCLAW_ONNXRUNTIME`, `$ORT_DYLIB_PATH`, then `libonnxruntime.so` in [`models_dir`].
pub fn find_runtime(configured: Option<&Path>) -> Result<PathBuf, OnnxError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(path) = configured {
        candidates.push(path.to_path_buf());
    } else {
        for var in [RUNTIME_ENV, "ORT_DYLIB_PATH"] {
            if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
                candidates.push(PathBuf::from(v));
            }
        }
        if let Some(dir) = models_dir() {
            candidates.push(dir.join(RUNTIME_FILE));
        }
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| OnnxError::RuntimeMissing {
            looked: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

static RUNTIME: OnceLock<Result<PathBuf, OnnxError>> = OnceLock::new();

/// Opens the runtime library at `path`, once per process. Later calls return the first
/// call's result (a process has one ONNX Runtime), whatever path they name.
pub fn init(path: &Path) -> Result<PathBuf, OnnxError> {
    RUNTIME
        .get_or_init(|| {
            let opened = std::panic::catch_unwind(|| {
                ort::init_from(path).map(|env| env.with_name("openclaw-voice").commit())
            });
            match opened {
                Ok(Ok(_)) => Ok(path.to_path_buf()),
                Ok(Err(e)) => Err(OnnxError::Runtime {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                }),
                Err(_) => Err(OnnxError::Runtime {
                    path: path.to_path_buf(),
                    reason: "ONNX Runtime panicked while loading".into(),
                }),
            }
        })
        .clone()
}

/// Element type of a tensor input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    /// `float`.
    F32,
    /// `int64`.
    I64,
}

/// One input a model must have: name, element type and shape (`-1`: any size; the model's
/// own dynamic dimensions match anything).
#[derive(Debug, Clone, Copy)]
pub struct InputSpec {
    /// Input name.
    pub name: &'static str,
    /// Element type.
    pub element: Element,
    /// Dimensions.
    pub dims: &'static [i64],
}

/// The turn-taking models' signatures as this project runs them, for [`Model::load_with`]: the
/// host loads Silero VAD and Smart Turn with these, and the memory examples measure them so.
pub mod signatures {
    use super::{Element, InputSpec};

    /// Silero VAD v6 (16 kHz branch): `input` [B, 576], `state` [2, B, 128], `sr` scalar.
    pub const SILERO_INPUTS: [InputSpec; 3] = [
        InputSpec {
            name: "input",
            element: Element::F32,
            dims: &[-1, -1],
        },
        InputSpec {
            name: "state",
            element: Element::F32,
            dims: &[2, -1, 128],
        },
        InputSpec {
            name: "sr",
            element: Element::I64,
            dims: &[],
        },
    ];
    /// Silero VAD's outputs: the speech probability and the next state.
    pub const SILERO_OUTPUTS: [&str; 2] = ["output", "stateN"];
    /// Smart Turn v3.2: `input_features` [B, 80, 800] (Whisper log-mel).
    pub const SMART_TURN_INPUTS: [InputSpec; 1] = [InputSpec {
        name: "input_features",
        element: Element::F32,
        dims: &[-1, 80, 800],
    }];
    /// Smart Turn's output: `logits` [B, 1].
    pub const SMART_TURN_OUTPUTS: [&str; 1] = ["logits"];
}

/// One input value for [`Model::run`].
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// `float` data in row-major order, with its shape.
    F32(&'a [usize], &'a [f32]),
    /// `int64` data in row-major order, with its shape (`&[]` for a scalar).
    I64(&'a [usize], &'a [i64]),
}

/// One output of [`Model::run`]: shape and `float` data.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Dimensions.
    pub shape: Vec<i64>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

/// How a model's session uses memory. [`ModelOptions::default`] is ONNX Runtime's own
/// behaviour (what [`Model::load`] uses); [`ModelOptions::lean`] trades a little speed for
/// a smaller resident set, for models that stay loaded in a long-running process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelOptions {
    /// The CPU memory arena: freed tensors are kept for reuse instead of returned to the
    /// system allocator. Default: on.
    pub arena: bool,
    /// Memory pattern planning: one block sized for the whole graph's intermediates, worked
    /// out on the first run of each input shape. Default: on.
    pub memory_pattern: bool,
    /// Weight pre-packing: kernels copy weights into their own layouts at load (faster
    /// matrix products, a second copy of those weights). Default: on.
    pub prepacking: bool,
    /// Threads for each operator (`0` counts as one). Default: 1.
    pub threads: usize,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            arena: true,
            memory_pattern: true,
            prepacking: true,
            threads: 1,
        }
    }
}

impl ModelOptions {
    /// No memory pattern and no pre-packing (the arena stays: without it glibc keeps the
    /// freed blocks anyway, and the resident set grows): about 12 MB less for Smart Turn,
    /// measured in docs/BENCHMARKS.md ("Turn taking").
    pub fn lean() -> Self {
        ModelOptions {
            arena: true,
            memory_pattern: false,
            prepacking: false,
            threads: 1,
        }
    }
}

/// A loaded model. Runs one call at a time (a `Mutex` around the session) on one thread.
pub struct Model {
    session: Mutex<Session>,
    path: PathBuf,
    outputs: Vec<String>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("path", &self.path).finish()
    }
}

impl Model {
    /// Loads `path` with the runtime opened by [`init`], and checks that it has `inputs`
    /// (and no other input) and the `outputs` named, all of them `float`.
    pub fn load(path: &Path, inputs: &[InputSpec], outputs: &[&str]) -> Result<Model, OnnxError> {
        Model::load_with(path, inputs, outputs, ModelOptions::default())
    }

    /// [`Model::load`] with `threads` threads for each operator (`0` counts as one): a larger
    /// model such as a Piper voice can use more than one core per call.
    pub fn load_with_threads(
        path: &Path,
        inputs: &[InputSpec],
        outputs: &[&str],
        threads: usize,
    ) -> Result<Model, OnnxError> {
        let options = ModelOptions {
            threads,
            ..ModelOptions::default()
        };
        Model::load_with(path, inputs, outputs, options)
    }

    /// [`Model::load`] with the session's threads and memory behaviour chosen by `options`.
    pub fn load_with(
        path: &Path,
        inputs: &[InputSpec],
        outputs: &[&str],
        options: ModelOptions,
    ) -> Result<Model, OnnxError> {
        let Some(Ok(_)) = RUNTIME.get() else {
            return Err(OnnxError::Runtime {
                path: PathBuf::new(),
                reason: "the runtime was not opened (call openclaw_onnx::init first)".into(),
            });
        };
        if !path.is_file() {
            return Err(OnnxError::ModelMissing {
                path: path.to_path_buf(),
            });
        }
        let load_err = |e: ort::Error| OnnxError::ModelLoad {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let session = std::panic::catch_unwind(|| open_session(path, options))
            .map_err(|_| OnnxError::ModelLoad {
                path: path.to_path_buf(),
                reason: "ONNX Runtime panicked while loading it".into(),
            })?
            .map_err(load_err)?;
        check_signature(&session, inputs, outputs).map_err(|reason| OnnxError::ModelShape {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(Model {
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            session: Mutex::new(session),
            path: path.to_path_buf(),
        })
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs the model on named inputs; returns the outputs named at [`Model::load`], in that
    /// order.
    pub fn run(&self, inputs: &[(&str, Input<'_>)]) -> Result<Vec<Output>, OnnxError> {
        let err = |reason: String| OnnxError::Run {
            path: self.path.clone(),
            reason,
        };
        let mut values: Vec<(&str, SessionInputValue<'_>)> = Vec::with_capacity(inputs.len());
        for (name, input) in inputs {
            let value: SessionInputValue<'_> = match *input {
                Input::F32(shape, data) => TensorRef::from_array_view((shape, data))
                    .map_err(|e| err(e.to_string()))?
                    .into(),
                Input::I64(shape, data) => TensorRef::from_array_view((shape, data))
                    .map_err(|e| err(e.to_string()))?
                    .into(),
            };
            values.push((name, value));
        }
        let mut session = match self.session.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let outputs = session.run(values).map_err(|e| err(e.to_string()))?;
        self.outputs
            .iter()
            .map(|name| {
                let value = outputs
                    .get(name.as_str())
                    .ok_or_else(|| err(format!("no output `{name}`")))?;
                let (shape, data) = value
                    .try_extract_tensor::<f32>()
                    .map_err(|e| err(format!("output `{name}`: {e}")))?;
                Ok(Output {
                    shape: shape.iter().copied().collect(),
                    data: data.to_vec(),
                })
            })
            .collect()
    }
}

/// A session with every graph optimisation, its threads and memory as `options` say.
fn open_session(path: &Path, options: ModelOptions) -> Result<Session, ort::Error> {
    let cpu = ort::ep::CPU::default()
        .with_arena_allocator(options.arena)
        .build();
    let mut builder = Session::builder()?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(options.threads.max(1))?
        .with_inter_threads(1)?
        .with_memory_pattern(options.memory_pattern)?
        .with_prepacking(options.prepacking)?
        .with_execution_providers([cpu])?;
    builder.commit_from_file(path)
}

fn element_name(t: TensorElementType) -> String {
    format!("{t:?}").to_lowercase()
}

/// Checks the model's inputs and outputs against the expected ones; says what differs.
fn check_signature(
    session: &Session,
    inputs: &[InputSpec],
    outputs: &[&str],
) -> Result<(), String> {
    for spec in inputs {
        let Some(input) = session.inputs().iter().find(|i| i.name() == spec.name) else {
            let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
            return Err(format!(
                "it has no input `{}` (its inputs: {})",
                spec.name,
                names.join(", ")
            ));
        };
        let ValueType::Tensor { ty, shape, .. } = input.dtype() else {
            return Err(format!("input `{}` is not a tensor", spec.name));
        };
        let want = match spec.element {
            Element::F32 => TensorElementType::Float32,
            Element::I64 => TensorElementType::Int64,
        };
        if *ty != want {
            return Err(format!(
                "input `{}` holds {}, not {}",
                spec.name,
                element_name(*ty),
                element_name(want)
            ));
        }
        let dims: Vec<i64> = shape.iter().copied().collect();
        let fits = dims.len() == spec.dims.len()
            && dims
                .iter()
                .zip(spec.dims)
                .all(|(&have, &want)| have < 0 || want < 0 || have == want);
        // A scalar input may be declared `[1]` by some exports.
        let scalar_ok = spec.dims.is_empty() && dims.len() == 1 && dims[0] <= 1;
        if !fits && !scalar_ok {
            return Err(format!(
                "input `{}` has shape {:?}, expected {:?} (-1: any)",
                spec.name, dims, spec.dims
            ));
        }
    }
    if let Some(extra) = session
        .inputs()
        .iter()
        .find(|i| !inputs.iter().any(|s| s.name == i.name()))
    {
        return Err(format!("it has an unexpected input `{}`", extra.name()));
    }
    for name in outputs {
        if !session.outputs().iter().any(|o| o.name() == *name) {
            let names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
            return Err(format!(
                "it has no output `{name}` (its outputs: {})",
                names.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_runtime_that_is_missing_is_named() {
        let e = find_runtime(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("/nonexistent/libonnxruntime.so"), "{text}");
        assert!(text.contains("make model"), "{text}");
    }

    #[test]
    fn a_library_that_is_not_onnx_runtime_is_refused() {
        let dir = std::env::temp_dir().join(format!("ocv-onnx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("libonnxruntime.so");
        std::fs::write(&fake, b"not a library").unwrap();
        let e = init(&fake).unwrap_err();
        assert!(e.to_string().contains("libonnxruntime.so"), "{e}");
        // Loading a model afterwards says the runtime is not open, and does not panic.
        let e = Model::load(&dir.join("m.onnx"), &[], &[]).unwrap_err();
        assert!(matches!(e, OnnxError::Runtime { .. }), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
