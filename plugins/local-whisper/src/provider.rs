//! The speech-to-text provider: one loaded whisper.cpp model, a pool of decoder states, and
//! the transcription path (silence check, decoding, hallucination guard, transcript).

use std::collections::HashMap;
use std::ffi::c_int;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use plugin_api::prelude::*;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperState};

use crate::guard::{self, Evidence};
use crate::model;
use crate::pool::Pool;
use crate::settings::{self, Settings};
use crate::whisper_log;
use crate::words::{Piece, WordBuilder};

/// Utterances shorter than this are padded with silence: whisper.cpp skips anything under
/// 100 ms, and the padding costs nothing (the encoder window is padded anyway).
const MIN_SAMPLES: usize = STT_SAMPLE_RATE as usize;

/// Decoding parameters that do not change between calls. whisper-rs copies a language into a
/// C string it never frees, so parameters are built once per language and cloned per call.
type Template = FullParams<'static, 'static>;

/// The speech-to-text provider: a loaded model and a pool of decoder states (one made at
/// load, more as calls overlap, up to `pool_size`).
pub struct LocalWhisper {
    settings: Settings,
    model_path: PathBuf,
    context: WhisperContext,
    states: Pool<WhisperState>,
    multilingual: bool,
    /// Parameters for the configured language.
    template: Template,
    /// Parameters for languages asked for per call, `auto` for detection (multilingual models
    /// only).
    other_languages: Mutex<HashMap<&'static str, Template>>,
    /// The configured `initial_prompt`, tokenized.
    prompt_tokens: Vec<c_int>,
}

impl LocalWhisper {
    /// Parses `settings`, loads the model and makes the decoder states.
    pub fn new(settings: &str) -> Result<Self, PluginError> {
        Self::from_settings(Settings::parse(settings)?)
    }

    /// Loads the model named by checked settings (what the plugin's definition does).
    pub fn from_settings(settings: Settings) -> Result<Self, PluginError> {
        whisper_log::install();
        let model_path = settings.model_path();
        let started = Instant::now();
        let context = model::load(&model_path, &settings.fetch_name())?;
        let multilingual = context.is_multilingual();
        if !multilingual && settings.language != "en" {
            return Err(PluginError::config(format!(
                "the model {} is English-only, but language is `{}` (`auto` too needs a \
                 multilingual model: one without `.en` in its name); use one or set \
                 language = \"en\"",
                model_path.display(),
                settings.language
            )));
        }
        // One state now, so that a failure shows at load; more only when calls overlap.
        let first_state = context.create_state().map_err(|e| {
            PluginError::internal(format!(
                "whisper.cpp could not make a decoder state for {}: {e}",
                model_path.display()
            ))
        })?;
        let pool_size = usize::try_from(settings.pool_size).unwrap_or(1);
        let language = match settings.forced_language() {
            _ if !multilingual => Some("en"),
            None => None,
            Some(code) => Some(static_language(code)?),
        };
        let prompt_tokens = match settings.initial_prompt.as_deref() {
            Some(prompt) => tokenize(&context, prompt)
                .map_err(|e| PluginError::config(format!("initial_prompt: {}", e.message())))?,
            None => Vec::new(),
        };
        let provider = LocalWhisper {
            template: template(&settings, language),
            other_languages: Mutex::new(HashMap::new()),
            prompt_tokens,
            states: Pool::new(
                first_state,
                pool_size,
                Duration::from_millis(u64::from(settings.pool_grow_after_ms)),
            ),
            settings,
            model_path,
            context,
            multilingual,
        };
        log::info!(
            "loaded {} (1 decoder state, up to {} as calls overlap; {} threads each) in {} ms",
            provider.model_path.display(),
            provider.states.limit(),
            provider.settings.threads,
            started.elapsed().as_millis()
        );
        Ok(provider)
    }

    /// The language to decode in: the call's, else the settings'; `None` to detect it.
    fn language(&self, options: &TranscribeOptions) -> Result<Option<&'static str>, PluginError> {
        if !self.multilingual {
            // English-only models have no language token: English or nothing, never a
            // silent English transcription of another language.
            return match options.language() {
                None | Some("en") => Ok(Some("en")),
                Some(other) => Err(PluginError::invalid_input(format!(
                    "language `{other}` was asked for, but the model {} is English-only; \
                     configure a multilingual model (one without `.en` in its name)",
                    self.model_path.display()
                ))),
            };
        }
        match options.language() {
            Some("auto") => Ok(None),
            Some(code) => static_language(code)
                .map(Some)
                .map_err(|e| PluginError::invalid_input(e.message().to_string())),
            None => match self.settings.forced_language() {
                Some(code) => static_language(code).map(Some),
                None => Ok(None),
            },
        }
    }

    /// Parameters for `language`: the template when it is the configured one.
    fn params_for(&self, language: Option<&'static str>) -> Template {
        let configured = match self.settings.forced_language() {
            _ if !self.multilingual => Some("en"),
            other => other,
        };
        if configured == language {
            return self.template.clone();
        }
        let mut cache = self
            .other_languages
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Detection asked for per call while the settings force a language: its own template.
        cache
            .entry(language.unwrap_or("auto"))
            .or_insert_with(|| template(&self.settings, language))
            .clone()
    }

    /// Runs whisper.cpp on `samples` in `language` (`None`: detect it) with the call's prompt
    /// tokens, else the configured ones; the kept segments and the language decoded in.
    fn decode(
        &self,
        samples: &[i16],
        language: Option<&'static str>,
        call_prompt: Option<&[c_int]>,
        duration_ms: u64,
    ) -> Result<(Decoded, &'static str), PluginError> {
        let mut pcm: Vec<f32> = samples.iter().map(|&s| f32::from(s) / 32768.0).collect();
        if pcm.len() < MIN_SAMPLES {
            pcm.resize(MIN_SAMPLES, 0.0);
        }
        let mut params: FullParams<'static, '_> = self.params_for(language);
        params.set_audio_ctx(audio_ctx(&self.settings, pcm.len()));
        params.set_max_tokens(max_tokens(pcm.len()));
        match call_prompt {
            Some(tokens) => params.set_tokens(tokens),
            None if !self.prompt_tokens.is_empty() => params.set_tokens(&self.prompt_tokens),
            None => {}
        }
        let waited = Instant::now();
        let mut state = self.states.get(|| {
            self.context.create_state().map_err(|e| {
                format!(
                    "whisper.cpp could not make another decoder state for {}: {e}",
                    self.model_path.display()
                )
            })
        });
        let started = Instant::now();
        state
            .full(params, &pcm)
            .map_err(|e| PluginError::internal(format!("whisper.cpp failed: {e}")))?;
        let language = match language {
            Some(code) => code,
            None => whisper_rs::get_lang_str(state.full_lang_id_from_state()).unwrap_or("en"),
        };
        let decoded = self.collect(&state, duration_ms);
        drop(state);
        log::debug!(
            "decoded {duration_ms} ms in {} ms (waited {} ms for a state)",
            started.elapsed().as_millis(),
            started.duration_since(waited).as_millis()
        );
        Ok((decoded, language))
    }

    /// The transcript of `decoded` with its words, or an empty one when the guard judges it
    /// not speech.
    fn transcript(&self, decoded: Decoded, language: &str) -> DetailedTranscript {
        let text = decoded
            .segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let confidence =
            (decoded.tokens > 0).then(|| (decoded.probability_sum / decoded.tokens as f64) as f32);
        let evidence = Evidence {
            no_speech_prob: decoded.no_speech_prob,
            confidence,
        };
        if let Some(reason) =
            guard::judge_transcript(&text, &evidence, self.settings.no_speech_threshold)
        {
            log::debug!("dropped transcript {text:?} ({reason}; {evidence:?})");
            return DetailedTranscript::from(Transcript::empty());
        }
        let mut transcript = Transcript::new(text.trim())
            .with_language(language)
            .with_segments(decoded.segments);
        if let Some(confidence) = confidence {
            transcript = transcript.with_confidence(confidence.clamp(0.0, 1.0));
        }
        DetailedTranscript::from(transcript).with_words(decoded.words)
    }

    /// Reads the segments out of `state` after `full`, dropping those the guard refuses.
    fn collect(&self, state: &WhisperState, duration_ms: u64) -> Decoded {
        let limit_ms = u32::try_from(duration_ms).unwrap_or(u32::MAX);
        let eot = self.context.token_eot();
        let mut decoded = Decoded {
            segments: Vec::new(),
            probability_sum: 0.0,
            tokens: 0,
            no_speech_prob: 0.0,
            words: Vec::new(),
        };
        let mut words = WordBuilder::new();
        for segment in state.as_iter() {
            decoded.no_speech_prob = decoded.no_speech_prob.max(segment.no_speech_probability());
            let raw = match segment.to_str_lossy() {
                Ok(text) => text.into_owned(),
                Err(e) => {
                    log::debug!("skipping a segment whisper.cpp gave no text for: {e}");
                    continue;
                }
            };
            let text = match guard::clean_segment(&raw) {
                Ok(text) => text,
                Err(reason) => {
                    log::debug!("dropped segment {raw:?}: {reason}");
                    continue;
                }
            };
            // whisper.cpp times are centiseconds from the start of the (padded) audio.
            let to_ms = |cs: i64| u32::try_from(cs.max(0).saturating_mul(10)).unwrap_or(u32::MAX);
            let start_ms = to_ms(segment.start_timestamp()).min(limit_ms);
            let end_ms = to_ms(segment.end_timestamp()).clamp(start_ms, limit_ms);
            for i in 0..segment.n_tokens() {
                let Some(token) = segment.get_token(i) else {
                    continue;
                };
                // Ids from end-of-text up are special and timestamp tokens.
                if token.token_id() >= eot {
                    continue;
                }
                let probability = token.token_probability();
                decoded.probability_sum += f64::from(probability);
                decoded.tokens += 1;
                let data = token.token_data();
                let centiseconds =
                    (data.t0 >= 0 && data.t1 >= data.t0).then_some((data.t0, data.t1));
                if let Ok(bytes) = token.to_bytes() {
                    let piece = Piece {
                        bytes,
                        probability,
                        centiseconds,
                    };
                    words.push(piece, (start_ms, end_ms));
                }
            }
            words.finish_word();
            decoded.segments.push(Segment {
                start_ms,
                end_ms,
                text: text.into(),
            });
        }
        decoded.words = words.into_words();
        decoded
    }
}

/// What one whisper.cpp run produced, after the per-segment guard.
struct Decoded {
    segments: Vec<Segment>,
    /// Sum of the text tokens' probabilities in the kept segments, and their count.
    probability_sum: f64,
    tokens: usize,
    no_speech_prob: f32,
    /// The kept segments' words.
    words: Vec<Word>,
}

/// Whisper's own `'static` spelling of a language code, or a config error.
fn static_language(code: &str) -> Result<&'static str, PluginError> {
    settings::check_language(code)?;
    whisper_rs::get_lang_id(code)
        .and_then(whisper_rs::get_lang_str)
        .ok_or_else(|| PluginError::config(format!("language `{code}` is not one Whisper knows")))
}

/// Tokenizes a prompt (NUL characters removed).
fn tokenize(context: &WhisperContext, prompt: &str) -> Result<Vec<c_int>, PluginError> {
    let prompt = prompt.replace('\0', " ");
    // A token is at least one byte, so this many always suffice (whisper-rs mishandles a
    // too-small buffer).
    let max_tokens = prompt.len() + 16;
    context
        .tokenize(&prompt, max_tokens)
        .map_err(|e| PluginError::invalid_input(format!("the prompt cannot be tokenized: {e}")))
}

/// A cap on decoded tokens per window for `n_samples` of audio: 32, plus 8 per second (about
/// twice the rate of fast speech). It bounds the time Whisper can spend looping on noise
/// (each temperature fallback decodes up to the cap) without cutting real speech short.
fn max_tokens(n_samples: usize) -> c_int {
    let seconds = n_samples.div_ceil(STT_SAMPLE_RATE as usize).min(30);
    c_int::try_from(32 + 8 * seconds).unwrap_or(0)
}

/// The `audio_ctx` for `n_samples` of audio under the configured policy.
fn audio_ctx(settings: &Settings, n_samples: usize) -> c_int {
    let duration_ms = n_samples as u64 * 1000 / u64::from(STT_SAMPLE_RATE);
    c_int::try_from(settings.audio_ctx.frames(duration_ms)).unwrap_or(0)
}

/// Decoding parameters for `language` (`None`: detect it) under `settings`.
fn template(settings: &Settings, language: Option<&'static str>) -> Template {
    let strategy = match settings.beam_size {
        0 => SamplingStrategy::Greedy { best_of: 5 },
        n => SamplingStrategy::BeamSearch {
            beam_size: c_int::try_from(n).unwrap_or(5),
            patience: -1.0,
        },
    };
    let mut params = FullParams::new(strategy);
    params.set_n_threads(c_int::try_from(settings.threads).unwrap_or(1));
    params.set_translate(false);
    // Every utterance stands alone: no text carried over from the previous call.
    params.set_no_context(true);
    params.set_print_special(false);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_timestamps(false);
    // Token times for the words (computed after decoding: the text does not change).
    params.set_token_timestamps(true);
    params.set_suppress_blank(true);
    // Suppress non-speech tokens ("[Music]", "♪"…), as OpenAI's and faster-whisper's
    // defaults do.
    params.set_suppress_nst(true);
    params.set_no_speech_thold(settings.no_speech_threshold);
    match language {
        // whisper.cpp's default language is "en"; leaving it avoids a C string allocation.
        Some("en") => {}
        Some(code) => params.set_language(Some(code)),
        None => {
            params.set_language(None);
            params.set_detect_language(false);
        }
    }
    params
}

impl SpeechToText for LocalWhisper {
    fn transcribe(
        &self,
        audio: Pcm16kMono<'_>,
        options: &TranscribeOptions,
    ) -> Result<Transcript, PluginError> {
        self.transcribe_detailed(audio, options)
            .map(|detailed| detailed.transcript)
    }

    /// The transcript with its words: each word's probability is its least sure letter token's.
    fn transcribe_detailed(
        &self,
        audio: Pcm16kMono<'_>,
        options: &TranscribeOptions,
    ) -> Result<DetailedTranscript, PluginError> {
        let samples = audio.as_slice();
        if samples.is_empty() {
            return Err(PluginError::invalid_input("the utterance has no samples"));
        }
        // A language the model cannot do is refused even for silence.
        let language = self.language(options)?;
        let duration_ms = audio.duration_ms();
        if guard::is_silent(samples, self.settings.silence_threshold_dbfs) {
            log::debug!(
                "{duration_ms} ms at {:.1} dBFS is below {} dBFS: empty",
                guard::rms_dbfs(samples),
                self.settings.silence_threshold_dbfs
            );
            return Ok(DetailedTranscript::from(Transcript::empty()));
        }
        let call_prompt = match options.prompt().filter(|p| !p.trim().is_empty()) {
            Some(prompt) => Some(tokenize(&self.context, prompt)?),
            None => None,
        };
        let (decoded, language) =
            self.decode(samples, language, call_prompt.as_deref(), duration_ms)?;
        Ok(self.transcript(decoded, language))
    }

    fn health(&self) -> Result<HealthReport, PluginError> {
        Ok(HealthReport::healthy(format!(
            "model {} loaded; {} of {} decoder states free (at most {})",
            self.model_path.display(),
            self.states.available(),
            self.states.size(),
            self.states.limit()
        )))
    }
}
