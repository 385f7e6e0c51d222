//! Plain-Rust ways in and out of the ABI types: every constructor takes `String`s, `Vec`s and
//! iterators, every accessor returns `&str`, `&[T]` or `Option`, so plugin code never names an
//! abi_stable type (`RString`, `RVec`, `ROption`). The conversions happen here, once.
//!
//! ```
//! use plugin_api::prelude::*;
//!
//! let caps = Capabilities::new()
//!     .streaming(true)
//!     .sample_rates([16_000, 24_000])
//!     .voices(["low", "high"])
//!     .languages(["en"]);
//! assert_eq!(caps.voice_ids(), vec!["low", "high"]);
//!
//! let chunk = AudioChunk::new(vec![0; 1_600], 16_000);
//! assert_eq!(chunk.samples(), &[0; 1_600][..]);
//! assert_eq!(chunk.duration_ms(), 100);
//!
//! let transcript = Transcript::new("hello").with_language("en");
//! assert_eq!((transcript.text(), transcript.language_code()), ("hello", Some("en")));
//! ```

use abi_stable::std_types::{ROption, RString, RVec};

use crate::abi::{
    AudioChunk, Capabilities, DetailedTranscript, PartialTranscript, PluginError, PluginInfo, Role,
    Segment, SynthesisOptions, TranscribeOptions, Transcript, Voice, Word,
};

fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> RVec<RString> {
    items.into_iter().map(|s| RString::from(s.into())).collect()
}

impl Capabilities {
    /// Nothing declared: no languages (meaning any), not streaming, no rates or voices.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether results stream (TTS audio arrives in several chunks).
    pub fn streaming(mut self, streaming: bool) -> Self {
        self.streaming = streaming;
        self
    }

    /// The sample rates the provider produces (TTS) or accepts natively (STT).
    pub fn sample_rates(mut self, rates: impl IntoIterator<Item = u32>) -> Self {
        self.sample_rates = rates.into_iter().collect();
        self
    }

    /// Voice ids known without a network call.
    pub fn voices<S: Into<String>>(mut self, ids: impl IntoIterator<Item = S>) -> Self {
        self.voices = strings(ids);
        self
    }

    /// Language codes (`en`, `de`) handled; none means any or unknown.
    pub fn languages<S: Into<String>>(mut self, codes: impl IntoIterator<Item = S>) -> Self {
        self.languages = strings(codes);
        self
    }

    /// The voice ids, as `&str`s.
    pub fn voice_ids(&self) -> Vec<&str> {
        self.voices.iter().map(RString::as_str).collect()
    }

    /// The language codes, as `&str`s.
    pub fn language_codes(&self) -> Vec<&str> {
        self.languages.iter().map(RString::as_str).collect()
    }

    /// The sample rates.
    pub fn rates(&self) -> &[u32] {
        self.sample_rates.as_slice()
    }
}

impl PluginInfo {
    /// The roles the plugin fills, as a slice.
    pub fn roles(&self) -> &[Role] {
        self.provides.as_slice()
    }
}

impl Transcript {
    /// The text.
    pub fn text(&self) -> &str {
        self.text.as_str()
    }

    /// The detected or configured language, if any.
    pub fn language_code(&self) -> Option<&str> {
        self.language.as_ref().map(RString::as_str).into_option()
    }

    /// The timed segments.
    pub fn segments(&self) -> &[Segment] {
        self.segments.as_slice()
    }

    /// The confidence, where the provider reports one.
    pub fn confidence_score(&self) -> Option<f32> {
        self.confidence.into_option()
    }
}

impl Segment {
    /// A segment of `text` from `start_ms` to `end_ms`.
    pub fn new(start_ms: u32, end_ms: u32, text: impl Into<String>) -> Self {
        Segment {
            start_ms,
            end_ms,
            text: RString::from(text.into()),
        }
    }
}

impl Word {
    /// A word from `start_ms` to `end_ms`, with the model's probability where it says.
    pub fn new(
        start_ms: u32,
        end_ms: u32,
        text: impl Into<String>,
        probability: Option<f32>,
    ) -> Self {
        Word {
            start_ms,
            end_ms,
            text: RString::from(text.into()),
            probability: ROption::from(probability),
        }
    }
}

impl DetailedTranscript {
    /// Adds word timings.
    pub fn with_words(mut self, words: Vec<Word>) -> Self {
        self.words = RVec::from(words);
        self
    }

    /// The words with their timings.
    pub fn word_list(&self) -> &[Word] {
        self.words.as_slice()
    }
}

impl PartialTranscript {
    /// The text so far, covering the first `audio_ms` of the stream.
    pub fn new(text: impl Into<String>, audio_ms: u32) -> Self {
        PartialTranscript {
            text: RString::from(text.into()),
            audio_ms,
        }
    }
}

impl AudioChunk {
    /// The mono samples.
    pub fn samples(&self) -> &[i16] {
        self.samples.as_slice()
    }

    /// The samples, owned.
    pub fn into_samples(self) -> Vec<i16> {
        self.samples.into_vec()
    }
}

impl Voice {
    /// Sets the voice's language code.
    pub fn with_language(mut self, language: impl Into<String>) -> Self {
        self.language = ROption::RSome(RString::from(language.into()));
        self
    }
}

impl SynthesisOptions {
    /// Options for one synthesis with nothing set: the provider's configured voice.
    ///
    /// ```
    /// use plugin_api::prelude::*;
    /// let options = SynthesisOptions::new().with_voice("high").with_language("en");
    /// assert_eq!((options.voice(), options.language()), (Some("high"), Some("en")));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks for the voice `id`.
    pub fn with_voice(mut self, id: impl Into<String>) -> Self {
        self.voice = ROption::RSome(RString::from(id.into()));
        self
    }

    /// Says the text's language.
    pub fn with_language(mut self, code: impl Into<String>) -> Self {
        self.language = ROption::RSome(RString::from(code.into()));
        self
    }

    /// Says the sample rate the host would prefer.
    pub fn with_preferred_sample_rate(mut self, rate: u32) -> Self {
        self.preferred_sample_rate = ROption::RSome(rate);
        self
    }

    /// The voice the host asked for, checked by `check` (which says why not), or `default`
    /// when it asked for none (or for `""`). A refused voice is `InvalidInput`.
    ///
    /// ```
    /// use plugin_api::prelude::*;
    /// let known = |v: &str| if v == "low" || v == "high" { Ok(()) } else { Err(format!("\"{v}\" is unknown")) };
    /// assert_eq!(SynthesisOptions::new().voice_or("low", known).unwrap(), "low");
    /// let high = SynthesisOptions::new().with_voice("high");
    /// assert_eq!(high.voice_or("low", known).unwrap(), "high");
    /// let err = SynthesisOptions::new().with_voice("loud").voice_or("low", known).unwrap_err();
    /// assert_eq!(err.kind, ErrorKind::InvalidInput);
    /// assert_eq!(err.message(), "voice \"loud\" is unknown");
    /// ```
    pub fn voice_or<'a>(
        &'a self,
        default: &'a str,
        check: impl FnOnce(&str) -> Result<(), String>,
    ) -> Result<&'a str, PluginError> {
        match self.voice().filter(|v| !v.is_empty()) {
            Some(voice) => {
                check(voice).map_err(|why| PluginError::invalid_input(format!("voice {why}")))?;
                Ok(voice)
            }
            None => Ok(default),
        }
    }
}

impl TranscribeOptions {
    /// Options for one transcription with nothing set.
    ///
    /// ```
    /// use plugin_api::prelude::*;
    /// let options = TranscribeOptions::new().with_language("de").with_prompt("Grüezi");
    /// assert_eq!((options.language(), options.prompt()), (Some("de"), Some("Grüezi")));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Says the expected language.
    pub fn with_language(mut self, code: impl Into<String>) -> Self {
        self.language = ROption::RSome(RString::from(code.into()));
        self
    }

    /// Primes the model with `prompt`.
    pub fn with_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompt = ROption::RSome(RString::from(prompt.into()));
        self
    }
}
