//! The hallucination guard: pure functions that decide whether audio is worth transcribing and
//! whether what Whisper made of it is speech or one of its well-known inventions.
//!
//! Whisper was trained on subtitled video, so on silence or noise it tends to "hear" closing
//! credits ("Thanks for watching!", "Subtitles by the Amara.org community"), sound tags
//! (`[BLANK_AUDIO]`, `(silence)`, `[Music]`, `♪`), a lone "you", bare punctuation, or one
//! phrase looped until the token budget runs out. A voice assistant must treat all of those as
//! "nobody said anything". The rules, in order:
//!
//! 1. [`is_silent`]: audio whose RMS level is below a threshold is empty without running the
//!    model at all.
//! 2. [`clean_segment`]: per segment, sound tags are removed, and a segment that is then empty,
//!    only punctuation, a credit line or a loop is dropped.
//! 3. [`judge_transcript`]: on the joined text, the same checks again, the short phrases that
//!    are both real answers and common inventions ("Thank you.", "Bye.") only when Whisper
//!    itself doubted there was speech, and Whisper's own no-speech probability combined with a
//!    low token confidence.

use std::fmt;

/// Why a text was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Nothing but whitespace.
    Empty,
    /// Only punctuation or symbols, no letters or digits.
    PunctuationOnly,
    /// Only sound tags such as `[BLANK_AUDIO]`, `(silence)` or `♪`.
    SoundTag,
    /// A known closing-credits phrase ("Thanks for watching!", "Subtitles by…", "you").
    KnownPhrase,
    /// The same phrase looped many times.
    Repetition,
    /// Whisper's no-speech probability was high and its confidence low.
    NoSpeech,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Empty => "empty",
            Reason::PunctuationOnly => "punctuation only",
            Reason::SoundTag => "sound tag only",
            Reason::KnownPhrase => "known hallucination",
            Reason::Repetition => "repetition loop",
            Reason::NoSpeech => "no speech",
        })
    }
}

/// What Whisper reported about a transcription, beside its text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// Whisper's probability that the window holds no speech (0 to 1).
    pub no_speech_prob: f32,
    /// Mean probability of the text tokens (0 to 1), if any tokens were decoded.
    pub confidence: Option<f32>,
}

/// Below this mean token probability, a high no-speech probability wins.
const LOW_CONFIDENCE: f32 = 0.5;

/// Whole texts (after [`normalize`]) that are always inventions.
const ALWAYS_DROPPED: &[&str] = &[
    "you",
    "thank you for watching",
    "thanks for watching",
    "thank you so much for watching",
    "thank you very much for watching",
    "thank you for watching and see you next time",
    "thanks for watching and see you next time",
    "thank you for watching please subscribe",
    "please subscribe",
    "please subscribe to my channel",
    "subscribe to my channel",
    "like and subscribe",
    "please like and subscribe",
    "dont forget to like and subscribe",
    "see you in the next video",
    "ill see you in the next video",
    "see you next time",
    "blank audio",
];

/// Beginnings (after [`normalize`]) of credit lines, which are always inventions.
const CREDIT_PREFIXES: &[&str] = &[
    "subtitles by",
    "subtitled by",
    "subtitles made by",
    "subtitling by",
    "captions by",
    "captioned by",
    "captioning by",
    "closed captioning by",
    "transcribed by",
    "transcription by",
    "transcript by",
    "translated by",
    "translation by",
    "english subtitles by",
];

/// Fragments (after [`normalize`]) that only credit lines contain.
const CREDIT_FRAGMENTS: &[&str] = &["amara org", "www mooji org"];

/// Short answers that people do say, but that Whisper also invents on noise: dropped only when
/// Whisper itself doubted there was speech.
const DOUBTFUL: &[&str] = &[
    "thank you",
    "thank you very much",
    "thank you so much",
    "thanks",
    "thanks for listening",
    "thank you for listening",
    "bye",
    "bye bye",
    "okay",
    "oh",
    "so",
    "uh",
    "um",
    "hmm",
    "mm",
    "the end",
];

/// Root-mean-square level of 16-bit samples in dBFS (0 is full scale); `-inf` for silence or
/// no samples.
pub fn rms_dbfs(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return f32::NEG_INFINITY;
    }
    let sum: f64 = samples
        .iter()
        .map(|&s| {
            let x = f64::from(s) / 32768.0;
            x * x
        })
        .sum();
    let rms = (sum / samples.len() as f64).sqrt();
    if rms == 0.0 {
        f32::NEG_INFINITY
    } else {
        (20.0 * rms.log10()) as f32
    }
}

/// Whether audio is too quiet to hold speech: its RMS level is below `threshold_dbfs`.
pub fn is_silent(samples: &[i16], threshold_dbfs: f32) -> bool {
    rms_dbfs(samples) < threshold_dbfs
}

/// Lower-case words of `text`, with apostrophes removed (`don't` → `dont`) and every other
/// non-alphanumeric character treated as a space, joined by single spaces.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.extend(c.to_lowercase());
        } else if matches!(c, '\'' | '’' | '‘') {
            // Keep words whole.
        } else {
            pending_space = true;
        }
    }
    out
}

/// Removes sound tags: text in `[…]`, `(…)` or `*…*`, and music symbols. An unclosed bracket
/// removes the rest of the text (Whisper was cut off inside a tag).
pub fn strip_sound_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut closing: Option<char> = None;
    for c in text.chars() {
        match closing {
            Some(end) => {
                if c == end {
                    closing = None;
                }
            }
            None => match c {
                '[' => closing = Some(']'),
                '(' => closing = Some(')'),
                '*' => closing = Some('*'),
                '♪' | '♫' | '♬' | '♩' => {}
                _ => out.push(c),
            },
        }
    }
    collapse_spaces(&out)
}

fn collapse_spaces(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether some phrase of words repeats back to back so often that it makes up most of the
/// text: at least 4 times (3 for phrases of 3 or more words), covering 60% of the words.
pub fn is_repetition_loop(normalized: &str) -> bool {
    let words: Vec<&str> = normalized.split_whitespace().collect();
    let n = words.len();
    if n < 4 {
        return false;
    }
    let mut longest_run = 0;
    for len in 1..=(n / 3).min(12) {
        for start in 0..len {
            // Walk the text in steps of `len` from `start`, counting equal neighbours.
            let mut reps = 1;
            let mut pos = start;
            while pos + 2 * len <= n {
                if words[pos..pos + len] == words[pos + len..pos + 2 * len] {
                    reps += 1;
                } else {
                    reps = 1;
                }
                let enough = reps >= 4 || (reps >= 3 && len >= 3);
                if enough {
                    longest_run = longest_run.max(reps * len);
                }
                pos += len;
            }
        }
    }
    longest_run * 10 >= n * 6
}

/// Why a piece of text (already stripped of sound tags) is not speech, by the rules that hold
/// whatever Whisper's probabilities say; `None` if it may be speech.
fn strong_reason(stripped: &str, had_tags: bool) -> Option<Reason> {
    if stripped.trim().is_empty() {
        return Some(if had_tags {
            Reason::SoundTag
        } else {
            Reason::Empty
        });
    }
    let normalized = normalize(stripped);
    if normalized.is_empty() {
        return Some(Reason::PunctuationOnly);
    }
    if ALWAYS_DROPPED.contains(&normalized.as_str())
        || CREDIT_PREFIXES.iter().any(|p| {
            normalized
                .strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
        })
        || CREDIT_FRAGMENTS.iter().any(|f| normalized.contains(f))
    {
        return Some(Reason::KnownPhrase);
    }
    if is_repetition_loop(&normalized) {
        return Some(Reason::Repetition);
    }
    None
}

/// Cleans one segment's text: removes sound tags and trims it, or says why the whole segment
/// is not speech.
pub fn clean_segment(text: &str) -> Result<String, Reason> {
    let stripped = strip_sound_tags(text);
    let had_tags = stripped.len() < collapse_spaces(text).len();
    match strong_reason(&stripped, had_tags) {
        Some(reason) => Err(reason),
        None => Ok(stripped),
    }
}

/// Decides on a whole transcript (the kept segments joined): `None` keeps it, `Some` says why
/// it is dropped. `no_speech_threshold` is the probability above which Whisper's no-speech
/// estimate counts, if the decoded tokens were not confident.
pub fn judge_transcript(
    text: &str,
    evidence: &Evidence,
    no_speech_threshold: f32,
) -> Option<Reason> {
    if let Err(reason) = clean_segment(text) {
        return Some(reason);
    }
    let unsure = evidence.confidence.is_none_or(|c| c < LOW_CONFIDENCE);
    if evidence.no_speech_prob > no_speech_threshold && unsure {
        return Some(Reason::NoSpeech);
    }
    // The phrases people do say are dropped when Whisper had half the doubt it needs above.
    let doubtful = evidence.no_speech_prob > no_speech_threshold / 2.0 || unsure;
    if doubtful && DOUBTFUL.contains(&normalize(text).as_str()) {
        return Some(Reason::KnownPhrase);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SURE: Evidence = Evidence {
        no_speech_prob: 0.01,
        confidence: Some(0.9),
    };
    const DOUBT: Evidence = Evidence {
        no_speech_prob: 0.45,
        confidence: Some(0.7),
    };

    fn dropped(text: &str) -> Option<Reason> {
        judge_transcript(text, &SURE, 0.6)
    }

    #[test]
    fn rms_of_silence_and_full_scale() {
        assert_eq!(rms_dbfs(&[]), f32::NEG_INFINITY);
        assert_eq!(rms_dbfs(&[0; 1600]), f32::NEG_INFINITY);
        let square: Vec<i16> = (0..1600)
            .map(|i| if i % 2 == 0 { i16::MAX } else { i16::MIN + 1 })
            .collect();
        assert!(rms_dbfs(&square).abs() < 0.01, "{}", rms_dbfs(&square));
        // A sine at half scale is about -9 dBFS.
        let sine: Vec<i16> = (0..16_000)
            .map(|i| ((i as f32 * 0.1).sin() * 16384.0) as i16)
            .collect();
        assert!((rms_dbfs(&sine) + 9.03).abs() < 0.1, "{}", rms_dbfs(&sine));
    }

    #[test]
    fn silence_and_dither_are_silent_speech_is_not() {
        assert!(is_silent(&[0; 16_000], -60.0));
        assert!(is_silent(&[], -60.0));
        let dither: Vec<i16> = (0..16_000).map(|i| [1, -1, 2, 0][i % 4]).collect();
        assert!(is_silent(&dither, -60.0));
        let tone: Vec<i16> = (0..16_000)
            .map(|i| ((i as f32 * 0.05).sin() * 3000.0) as i16)
            .collect();
        assert!(!is_silent(&tone, -60.0));
    }

    #[test]
    fn normalize_lowercases_and_drops_punctuation() {
        assert_eq!(normalize("  Thanks for watching!  "), "thanks for watching");
        assert_eq!(normalize("Don't forget—to LIKE."), "dont forget to like");
        assert_eq!(normalize("It’s 5 o'clock"), "its 5 oclock");
        assert_eq!(normalize("..."), "");
    }

    #[test]
    fn strip_sound_tags_removes_brackets_and_music() {
        assert_eq!(strip_sound_tags("[BLANK_AUDIO]"), "");
        assert_eq!(strip_sound_tags(" (silence) "), "");
        assert_eq!(strip_sound_tags("♪ ♪"), "");
        assert_eq!(strip_sound_tags("[Music] Hello there."), "Hello there.");
        assert_eq!(strip_sound_tags("*sigh* okay (laughs) fine"), "okay fine");
        assert_eq!(strip_sound_tags("Hello [inaudible"), "Hello");
    }

    #[test]
    fn known_hallucinations_are_dropped() {
        for text in [
            " Thank you for watching.",
            "Thanks for watching!",
            "THANKS FOR WATCHING",
            " you",
            "You.",
            "Subtitles by the Amara.org community",
            "Subtitles by: Someone",
            "Translated by Jane Doe",
            "Please subscribe.",
            "I'll see you in the next video.",
        ] {
            assert_eq!(dropped(text), Some(Reason::KnownPhrase), "{text}");
        }
    }

    #[test]
    fn sound_tags_and_punctuation_are_dropped() {
        for text in [
            "[BLANK_AUDIO]",
            "(silence)",
            "[Music]",
            " [ Silence ] ",
            "♪",
        ] {
            assert_eq!(dropped(text), Some(Reason::SoundTag), "{text}");
        }
        for text in ["...", " ?", "-", "!!"] {
            assert_eq!(dropped(text), Some(Reason::PunctuationOnly), "{text}");
        }
        assert_eq!(dropped(""), Some(Reason::Empty));
        assert_eq!(dropped("   "), Some(Reason::Empty));
    }

    #[test]
    fn loops_are_dropped() {
        for text in [
            "you you you you you",
            "Thank you. Thank you. Thank you. Thank you.",
            "I'm going to go. I'm going to go. I'm going to go.",
            "so so so so so so so so so so so so",
            "And then. The the the the the the the the.",
        ] {
            assert_eq!(dropped(text), Some(Reason::Repetition), "{text}");
        }
    }

    #[test]
    fn real_speech_is_kept() {
        for text in [
            "What is the weather like in Paris today?",
            "Set a timer for five minutes.",
            "Turn off the lights in the kitchen.",
            "Subtitles are hard to read on this TV.",
            "Did you watch the game?",
            "No, no, no.",
            "Thank you for the help with my homework.",
            "One, two, three, four.",
            "It is very very very good.",
            "You did it.",
        ] {
            assert_eq!(dropped(text), None, "{text}");
        }
    }

    #[test]
    fn doubtful_phrases_depend_on_evidence() {
        assert_eq!(judge_transcript("Thank you.", &SURE, 0.6), None);
        assert_eq!(judge_transcript("Bye.", &SURE, 0.6), None);
        assert_eq!(
            judge_transcript("Thank you.", &DOUBT, 0.6),
            Some(Reason::KnownPhrase)
        );
        let unsure = Evidence {
            no_speech_prob: 0.05,
            confidence: Some(0.3),
        };
        assert_eq!(
            judge_transcript("Okay.", &unsure, 0.6),
            Some(Reason::KnownPhrase)
        );
        // A longer sentence survives the same doubt.
        assert_eq!(
            judge_transcript("Thank you, see you tomorrow.", &DOUBT, 0.6),
            None
        );
    }

    #[test]
    fn no_speech_needs_low_confidence_too() {
        let silent = Evidence {
            no_speech_prob: 0.8,
            confidence: Some(0.3),
        };
        assert_eq!(
            judge_transcript("The quick brown fox.", &silent, 0.6),
            Some(Reason::NoSpeech)
        );
        let confident = Evidence {
            no_speech_prob: 0.8,
            confidence: Some(0.9),
        };
        assert_eq!(
            judge_transcript("The quick brown fox.", &confident, 0.6),
            None
        );
        let no_tokens = Evidence {
            no_speech_prob: 0.7,
            confidence: None,
        };
        assert_eq!(
            judge_transcript("Hello.", &no_tokens, 0.6),
            Some(Reason::NoSpeech)
        );
    }

    #[test]
    fn clean_segment_keeps_words_around_tags() {
        assert_eq!(
            clean_segment(" [Music] What time is it? "),
            Ok("What time is it?".to_string())
        );
        assert_eq!(clean_segment("(upbeat music)"), Err(Reason::SoundTag));
        assert_eq!(
            clean_segment("Thanks for watching!"),
            Err(Reason::KnownPhrase)
        );
    }
}
