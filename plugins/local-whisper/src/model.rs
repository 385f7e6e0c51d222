//! The model file: checking that it is there and looks like a whisper.cpp ggml model (cheap,
//! for `validate_config`), and loading it into a [`WhisperContext`].
//!
//! Every failure is a [`ModelError`] that names the path and says how to fetch the model, and
//! becomes a `Config` [`PluginError`] for the host.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use plugin_api::prelude::*;
use whisper_rs::{WhisperContext, WhisperContextParameters};

/// The first four bytes of a whisper.cpp model: `0x67676d6c` ("ggml") as a little-endian u32.
pub const GGML_MAGIC: [u8; 4] = *b"lmgg";

/// Why a model file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// No file at the path.
    #[error("the Whisper model file {path} does not exist; {hint}", path = .path.display(), hint = fetch_hint(.name))]
    Missing {
        /// Where the model was looked for.
        path: PathBuf,
        /// The model's name, for the hint.
        name: String,
    },
    /// Something is there but it is not a readable file.
    #[error("the Whisper model file {path} cannot be read ({source}); {hint}", path = .path.display(), hint = fetch_hint(.name))]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// The model's name, for the hint.
        name: String,
        /// What the OS said.
        source: io::Error,
    },
    /// The file is not a ggml model (wrong magic, or too short).
    #[error("{path} is not a whisper.cpp ggml model ({detail}); it may be truncated or corrupt: delete it and {hint}", path = .path.display(), hint = fetch_hint(.name))]
    NotAModel {
        /// The path.
        path: PathBuf,
        /// The model's name, for the hint.
        name: String,
        /// What is wrong with it.
        detail: String,
    },
    /// whisper.cpp refused to load it (a corrupt or unsupported model).
    #[error("whisper.cpp could not load the model {path} ({detail}); it may be corrupt or of an unsupported kind: delete it and {hint}", path = .path.display(), hint = fetch_hint(.name))]
    LoadFailed {
        /// The path.
        path: PathBuf,
        /// The model's name, for the hint.
        name: String,
        /// What whisper-rs said.
        detail: String,
    },
}

impl From<ModelError> for PluginError {
    fn from(error: ModelError) -> Self {
        PluginError::config(error.to_string()).with_retryable(false)
    }
}

fn fetch_hint(name: &str) -> String {
    if name.is_empty() {
        // `model` names a file whose name says nothing of the model it should hold.
        return "set `model` to the path of a ggml Whisper model (`scripts/fetch-model tiny.en` \
                fetches one into models/)"
            .into();
    }
    format!(
        "fetch it with `make model` or `scripts/fetch-model {name}` (from the project root), \
         or set `model` to the path of a ggml model"
    )
}

/// What the header of a model file says, once its whole layout has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// File size in bytes.
    pub bytes: u64,
    /// Vocabulary size (51864 for English-only models, 51865 or more for multilingual ones).
    pub n_vocab: i32,
    /// Encoder layers (4 for tiny, 6 base, 12 small, 24 medium, 32 large).
    pub n_audio_layer: i32,
    /// Weight type code (0 f32, 1 f16, 7 q8_0, ...).
    pub ftype: i32,
    /// Number of tensors.
    pub tensors: usize,
}

/// Checks that `path` is a readable file laid out like a whisper.cpp ggml model (magic,
/// hyper-parameters, mel filters, vocabulary, then tensor records that end exactly at the end
/// of the file), without reading the weights. `name` is the model's name for the hint.
///
/// whisper.cpp trusts its input: a bad weight type aborts the process, a bad dimension count
/// overflows a stack buffer, and a truncated file loads with garbage weights. So everything it
/// would trust is checked here first.
pub fn check_file(path: &Path, name: &str) -> Result<ModelInfo, ModelError> {
    let unreadable = |source: io::Error| ModelError::Unreadable {
        path: path.to_path_buf(),
        name: name.to_string(),
        source,
    };
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ModelError::Missing {
                path: path.to_path_buf(),
                name: name.to_string(),
            })
        }
        Err(e) => return Err(unreadable(e)),
    };
    if !metadata.is_file() {
        return Err(unreadable(io::Error::other("it is not a regular file")));
    }
    let file = File::open(path).map_err(unreadable)?;
    let mut reader = LayoutReader {
        inner: BufReader::with_capacity(1 << 16, file),
        position: 0,
        len: metadata.len(),
    };
    match read_layout(&mut reader) {
        Ok(info) => Ok(info),
        Err(LayoutError::Io(e)) => Err(unreadable(e)),
        Err(LayoutError::Bad(detail)) => Err(ModelError::NotAModel {
            path: path.to_path_buf(),
            name: name.to_string(),
            detail,
        }),
    }
}

enum LayoutError {
    Io(io::Error),
    Bad(String),
}

impl From<io::Error> for LayoutError {
    fn from(e: io::Error) -> Self {
        LayoutError::Io(e)
    }
}

fn bad<T>(detail: impl Into<String>) -> Result<T, LayoutError> {
    Err(LayoutError::Bad(detail.into()))
}

/// A reader that knows where it is and how long the file is, so that nothing reads or skips
/// past the end.
struct LayoutReader<R> {
    inner: R,
    position: u64,
    len: u64,
}

impl<R: Read + Seek> LayoutReader<R> {
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.position)
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], LayoutError> {
        if self.remaining() < N as u64 {
            return bad(format!(
                "the file ends at byte {} inside {what}: it is truncated",
                self.len
            ));
        }
        let mut buf = [0u8; N];
        self.inner.read_exact(&mut buf)?;
        self.position += N as u64;
        Ok(buf)
    }

    fn i32(&mut self, what: &str) -> Result<i32, LayoutError> {
        self.bytes::<4>(what).map(i32::from_le_bytes)
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), LayoutError> {
        if self.remaining() < n {
            return bad(format!(
                "{what} needs {n} bytes but only {} are left: the file is truncated",
                self.remaining()
            ));
        }
        let step =
            i64::try_from(n).map_err(|_| LayoutError::Bad(format!("{what} is too large")))?;
        self.inner.seek_relative(step)?;
        self.position += n;
        Ok(())
    }
}

/// `value` if it lies in `range`, else a layout error naming it.
fn within(
    value: i32,
    range: std::ops::RangeInclusive<i32>,
    what: &str,
) -> Result<i32, LayoutError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        bad(format!(
            "{what} is {value}, outside {}..={}",
            range.start(),
            range.end()
        ))
    }
}

/// Block size and bytes per block of the ggml tensor types whisper models use.
fn type_layout(ttype: i32) -> Option<(u64, u64)> {
    Some(match ttype {
        0 => (1, 4),      // f32
        1 => (1, 2),      // f16
        2 => (32, 18),    // q4_0
        3 => (32, 20),    // q4_1
        6 => (32, 22),    // q5_0
        7 => (32, 24),    // q5_1
        8 => (32, 34),    // q8_0
        10 => (256, 84),  // q2_k
        11 => (256, 110), // q3_k
        12 => (256, 144), // q4_k
        13 => (256, 176), // q5_k
        14 => (256, 210), // q6_k
        30 => (1, 2),     // bf16
        _ => return None,
    })
}

/// Weight types (`ftype % 1000`) that whisper.cpp maps to a tensor type without aborting.
const SUPPORTED_FTYPES: &[i32] = &[0, 1, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 24];

fn read_layout<R: Read + Seek>(r: &mut LayoutReader<R>) -> Result<ModelInfo, LayoutError> {
    if r.len < 4 {
        return bad("the file is shorter than a header");
    }
    let magic = r.bytes::<4>("the magic")?;
    if magic != GGML_MAGIC {
        return bad(format!(
            "it starts with bytes {magic:02x?}, not the ggml magic {GGML_MAGIC:02x?}"
        ));
    }
    let header = read_hyperparameters(r)?;
    skip_mel_filters(r)?;
    skip_vocabulary(r, header.n_vocab)?;
    let tensors = count_tensors(r)?;
    Ok(ModelInfo {
        bytes: r.len,
        n_vocab: header.n_vocab,
        n_audio_layer: header.n_audio_layer,
        ftype: header.ftype,
        tensors,
    })
}

/// What the hyper-parameters say that the rest of the check and the caller need.
struct Hyperparameters {
    n_vocab: i32,
    n_audio_layer: i32,
    ftype: i32,
}

/// The hyper-parameters, in file order, each within whisper.cpp's limits.
fn read_hyperparameters<R: Read + Seek>(
    r: &mut LayoutReader<R>,
) -> Result<Hyperparameters, LayoutError> {
    let n_vocab = within(r.i32("n_vocab")?, 51_864..=52_000, "n_vocab")?;
    within(r.i32("n_audio_ctx")?, 1..=6_000, "n_audio_ctx")?;
    let n_audio_state = within(r.i32("n_audio_state")?, 1..=8_192, "n_audio_state")?;
    let n_audio_head = within(r.i32("n_audio_head")?, 1..=256, "n_audio_head")?;
    let n_audio_layer = within(r.i32("n_audio_layer")?, 1..=128, "n_audio_layer")?;
    within(r.i32("n_text_ctx")?, 1..=4_096, "n_text_ctx")?;
    let n_text_state = within(r.i32("n_text_state")?, 1..=8_192, "n_text_state")?;
    let n_text_head = within(r.i32("n_text_head")?, 1..=256, "n_text_head")?;
    within(r.i32("n_text_layer")?, 1..=128, "n_text_layer")?;
    let n_mels = r.i32("n_mels")?;
    if n_mels != 80 && n_mels != 128 {
        return bad(format!("n_mels is {n_mels}, not 80 or 128"));
    }
    let ftype = within(r.i32("ftype")?, 0..=i32::MAX, "ftype")?;
    if !SUPPORTED_FTYPES.contains(&(ftype % 1000)) {
        return bad(format!("weight type {} is not supported", ftype % 1000));
    }
    if n_audio_state != n_text_state
        || n_audio_state % n_audio_head != 0
        || n_text_state % n_text_head != 0
    {
        return bad("the encoder and decoder sizes do not fit together");
    }
    Ok(Hyperparameters {
        n_vocab,
        n_audio_layer,
        ftype,
    })
}

fn skip_mel_filters<R: Read + Seek>(r: &mut LayoutReader<R>) -> Result<(), LayoutError> {
    let n_mel = within(
        r.i32("the mel filter count")?,
        1..=512,
        "the mel filter count",
    )?;
    let n_fft = within(r.i32("the FFT size")?, 1..=4_096, "the FFT size")?;
    r.skip(n_mel as u64 * n_fft as u64 * 4, "the mel filters")
}

fn skip_vocabulary<R: Read + Seek>(
    r: &mut LayoutReader<R>,
    n_vocab: i32,
) -> Result<(), LayoutError> {
    let words = within(
        r.i32("the vocabulary size")?,
        0..=n_vocab,
        "the vocabulary size",
    )?;
    for _ in 0..words {
        let len = u32::from_le_bytes(r.bytes::<4>("the vocabulary")?);
        if len > 1_024 {
            return bad(format!("a vocabulary entry claims {len} bytes"));
        }
        r.skip(u64::from(len), "the vocabulary")?;
    }
    Ok(())
}

/// The tensors, until the file ends exactly after one; how many.
fn count_tensors<R: Read + Seek>(r: &mut LayoutReader<R>) -> Result<usize, LayoutError> {
    let mut tensors = 0;
    while r.remaining() > 0 {
        skip_tensor(r, tensors)?;
        tensors += 1;
    }
    if tensors == 0 {
        return bad("it holds no tensors");
    }
    Ok(tensors)
}

/// Tensor number `index`: its header checked, its data skipped.
fn skip_tensor<R: Read + Seek>(r: &mut LayoutReader<R>, index: usize) -> Result<(), LayoutError> {
    let what = format!("tensor header {index}");
    let n_dims = within(r.i32(&what)?, 1..=4, "a tensor's dimension count")?;
    let name_len = within(r.i32(&what)?, 1..=256, "a tensor's name length")?;
    let ttype = r.i32(&what)?;
    let Some((block, block_bytes)) = type_layout(ttype) else {
        return bad(format!("tensor {index} has unknown type {ttype}"));
    };
    let mut elements: u64 = 1;
    let mut first_dim = 0;
    for d in 0..n_dims {
        let ne = within(r.i32(&what)?, 1..=i32::MAX, "a tensor dimension")?;
        if d == 0 {
            first_dim = ne as u64;
        }
        elements = elements.saturating_mul(ne as u64);
    }
    if elements > i32::MAX as u64 {
        return bad(format!("tensor {index} is too large"));
    }
    if first_dim % block != 0 {
        return bad(format!(
            "tensor {index}'s rows do not fill whole blocks of its type"
        ));
    }
    r.skip(name_len as u64, &what)?;
    r.skip(
        elements / block * block_bytes,
        &format!("tensor {index}'s data"),
    )
}

/// Checks and loads the model at `path`, for the CPU.
///
/// Flash attention stays off: with it, whisper.cpp's decoder attends over `audio_ctx` rounded
/// up to 256 encoder frames of its cross-attention cache, and the rows past `audio_ctx` hold
/// whatever an earlier call with a larger `audio_ctx` left there (words of a previous
/// utterance). It was no faster here anyway (see docs/BENCHMARKS.md).
pub fn load(path: &Path, name: &str) -> Result<WhisperContext, ModelError> {
    check_file(path, name)?;
    let mut params = WhisperContextParameters::default();
    params.use_gpu(false).flash_attn(false);
    WhisperContext::new_with_params(path, params).map_err(|e| ModelError::LoadFailed {
        path: path.to_path_buf(),
        name: name.to_string(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn missing_file_names_path_and_fetch_command() {
        let err = check_file(Path::new("/nonexistent/ggml-tiny.en.bin"), "tiny.en").unwrap_err();
        assert!(matches!(err, ModelError::Missing { .. }));
        let message = PluginError::from(err).message().to_string();
        assert!(
            message.contains("/nonexistent/ggml-tiny.en.bin"),
            "{message}"
        );
        assert!(message.contains("scripts/fetch-model tiny.en"), "{message}");
        assert!(message.contains("make model"), "{message}");
    }

    #[test]
    fn wrong_magic_is_not_a_model() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"<html>404 Not Found</html>").unwrap();
        let err = check_file(file.path(), "base.en").unwrap_err();
        assert!(matches!(err, ModelError::NotAModel { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains(&file.path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("ggml magic"), "{message}");
        assert!(message.contains("scripts/fetch-model base.en"), "{message}");
    }

    #[test]
    fn garbage_after_the_magic_is_not_a_model() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&GGML_MAGIC).unwrap();
        file.write_all(&[0xAB; 4096]).unwrap();
        let err = check_file(file.path(), "tiny.en").unwrap_err();
        assert!(err.to_string().contains("n_vocab"), "{err}");
        let empty = tempfile::NamedTempFile::new().unwrap();
        let err = check_file(empty.path(), "tiny.en").unwrap_err();
        assert!(err.to_string().contains("shorter than a header"), "{err}");
    }

    #[test]
    fn a_directory_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_file(dir.path(), "tiny.en").unwrap_err();
        assert!(matches!(err, ModelError::Unreadable { .. }), "{err}");
    }

    fn real_model() -> Vec<u8> {
        std::fs::read(crate::tests::model_path()).unwrap()
    }

    fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    #[test]
    fn the_test_model_passes() {
        let info = check_file(&crate::tests::model_path(), "tiny.en").unwrap();
        assert_eq!(info.n_vocab, 51_864);
        assert_eq!(info.n_audio_layer, 4);
        assert_eq!(info.ftype, 1);
        assert!(info.tensors > 100, "{info:?}");
    }

    #[test]
    fn every_truncation_is_caught() {
        let model = real_model();
        // In the header, the mel filters, the vocabulary, a tensor header, tensor data, and
        // one byte short of the end.
        for cut in [10, 60, 80_000, 300_000, 3 << 20, model.len() - 1] {
            let file = write_temp(&model[..cut]);
            let err = check_file(file.path(), "tiny.en").unwrap_err();
            assert!(matches!(err, ModelError::NotAModel { .. }), "{cut}: {err}");
            assert!(err.to_string().contains("truncated"), "{cut}: {err}");
        }
    }

    #[test]
    fn a_bad_weight_type_is_caught_before_whisper_cpp_aborts() {
        let mut model = real_model();
        // ftype is the 11th i32 after the magic.
        model[44..48].copy_from_slice(&99i32.to_le_bytes());
        let file = write_temp(&model);
        let err = check_file(file.path(), "tiny.en").unwrap_err();
        assert!(err.to_string().contains("weight type 99"), "{err}");
    }

    #[test]
    fn an_unknown_tensor_fails_to_load_with_a_config_error() {
        let mut model = real_model();
        let name = b"decoder.token_embedding.weight";
        let at = model
            .windows(name.len())
            .position(|w| w == name)
            .expect("the tensor name is in the model");
        model[at + name.len() - 1] = b'X';
        let file = write_temp(&model);
        check_file(file.path(), "tiny.en").unwrap();
        crate::whisper_log::install();
        let err = load(file.path(), "tiny.en").unwrap_err();
        assert!(matches!(err, ModelError::LoadFailed { .. }), "{err}");
        let plugin_error = PluginError::from(err);
        assert_eq!(plugin_error.kind, ErrorKind::Config);
        assert!(plugin_error
            .message()
            .contains(&file.path().display().to_string()));
    }
}
