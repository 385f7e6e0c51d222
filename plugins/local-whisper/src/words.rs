//! Words from whisper.cpp's tokens: tokens merge into a word until the next one that starts
//! with a space; a word's probability is its least sure token's (one invented piece makes an
//! invented word) among those that hold a letter or digit (punctuation says how sure the
//! model is that a sentence ends, not of the word: tiny.en ends real questions with a `.`
//! of p = 0.4), its times those of its tokens, else its segment's.

use plugin_api::prelude::Word;

/// One text token of a decoded segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Piece<'a> {
    /// The token's bytes (a token may hold part of a UTF-8 character).
    pub bytes: &'a [u8],
    /// The model's probability of the token.
    pub probability: f32,
    /// whisper.cpp's token times in centiseconds, when it computed them (`t0 <= t1`, both
    /// non-negative); else `None`.
    pub centiseconds: Option<(i64, i64)>,
}

/// Builds words out of one segment's text tokens, timed within `[start_ms, end_ms]` (the
/// segment's bounds, used where a token has no time of its own).
#[derive(Debug)]
pub(crate) struct WordBuilder {
    words: Vec<Word>,
    current: Option<Partial>,
}

#[derive(Debug)]
struct Partial {
    bytes: Vec<u8>,
    /// The least sure token holding a letter or digit, if any.
    probability: Option<f32>,
    /// The least sure token of any kind (a word of punctuation alone).
    any_probability: f32,
    start_ms: u32,
    end_ms: u32,
}

impl WordBuilder {
    pub(crate) fn new() -> Self {
        WordBuilder {
            words: Vec::new(),
            current: None,
        }
    }

    /// Adds one token of a segment spanning `bounds` (ms).
    pub(crate) fn push(&mut self, piece: Piece<'_>, bounds: (u32, u32)) {
        let (lo, hi) = bounds;
        let (start_ms, end_ms) = match piece.centiseconds {
            Some((t0, t1)) => {
                let ms = |cs: i64| u32::try_from(cs.max(0).saturating_mul(10)).unwrap_or(u32::MAX);
                let start = ms(t0).clamp(lo, hi);
                (start, ms(t1).clamp(start, hi))
            }
            None => (lo, hi),
        };
        let starts_word = piece.bytes.first().is_some_and(u8::is_ascii_whitespace);
        // Bytes of a split multi-byte character count as letters.
        let wordy = piece
            .bytes
            .iter()
            .any(|b| b.is_ascii_alphanumeric() || !b.is_ascii());
        let probability = wordy.then_some(piece.probability);
        match &mut self.current {
            Some(word) if !starts_word => {
                word.bytes.extend_from_slice(piece.bytes);
                word.probability = match (word.probability, probability) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                word.any_probability = word.any_probability.min(piece.probability);
                word.end_ms = word.end_ms.max(end_ms);
            }
            _ => {
                self.finish_word();
                self.current = Some(Partial {
                    bytes: piece.bytes.to_vec(),
                    probability,
                    any_probability: piece.probability,
                    start_ms,
                    end_ms,
                });
            }
        }
    }

    /// Ends the word in progress (a segment ended: the next one starts a new word).
    pub(crate) fn finish_word(&mut self) {
        if let Some(word) = self.current.take() {
            let text = String::from_utf8_lossy(&word.bytes).trim().to_string();
            if !text.is_empty() {
                let probability = word
                    .probability
                    .unwrap_or(word.any_probability)
                    .clamp(0.0, 1.0);
                self.words.push(Word::new(
                    word.start_ms,
                    word.end_ms,
                    text,
                    Some(probability),
                ));
            }
        }
    }

    /// The words built.
    pub(crate) fn into_words(mut self) -> Vec<Word> {
        self.finish_word();
        self.words
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(text: &str, probability: f32, cs: Option<(i64, i64)>) -> Piece<'_> {
        Piece {
            bytes: text.as_bytes(),
            probability,
            centiseconds: cs,
        }
    }

    fn texts(words: &[Word]) -> Vec<(&str, f32)> {
        words
            .iter()
            .map(|w| (w.text.as_str(), w.probability.into_option().unwrap_or(-1.0)))
            .collect()
    }

    #[test]
    fn tokens_merge_at_leading_spaces_with_their_least_sure_letters_probability() {
        let mut b = WordBuilder::new();
        for p in [
            piece(" Could", 0.99, Some((0, 20))),
            piece(" you", 0.98, Some((20, 40))),
            piece(" tell", 0.97, Some((40, 60))),
            piece(" me", 0.96, Some((60, 70))),
            piece(",", 0.5, Some((70, 70))),
            piece(" M", 0.4, Some((70, 80))),
            piece("ur", 0.3, Some((80, 95))),
            piece("?", 0.2, Some((95, 100))),
            piece(" ...", 0.1, Some((100, 100))),
        ] {
            b.push(p, (0, 2000));
        }
        let words = b.into_words();
        assert_eq!(
            texts(&words),
            [
                ("Could", 0.99),
                ("you", 0.98),
                ("tell", 0.97),
                ("me,", 0.96),
                ("Mur?", 0.3),
                ("...", 0.1)
            ]
        );
        assert_eq!((words[4].start_ms, words[4].end_ms), (700, 1000));
    }

    #[test]
    fn tokens_without_times_take_the_segment_bounds_and_segments_split_words() {
        let mut b = WordBuilder::new();
        b.push(piece("Hello", 0.9, None), (100, 900));
        b.finish_word();
        b.push(piece("world", 0.8, Some((-1, 5000))), (900, 1500));
        let words = b.into_words();
        assert_eq!(texts(&words), [("Hello", 0.9), ("world", 0.8)]);
        assert_eq!((words[0].start_ms, words[0].end_ms), (100, 900));
        // A time outside the segment is clamped into it.
        assert_eq!((words[1].start_ms, words[1].end_ms), (900, 1500));
    }

    #[test]
    fn a_character_split_across_tokens_is_whole_and_blank_words_are_dropped() {
        let bytes = "é".as_bytes();
        let mut b = WordBuilder::new();
        b.push(
            Piece {
                bytes: b" caf",
                probability: 0.9,
                centiseconds: None,
            },
            (0, 10),
        );
        b.push(
            Piece {
                bytes: &bytes[..1],
                probability: 0.7,
                centiseconds: None,
            },
            (0, 10),
        );
        b.push(
            Piece {
                bytes: &bytes[1..],
                probability: 0.8,
                centiseconds: None,
            },
            (0, 10),
        );
        b.push(piece("  ", 0.1, None), (0, 10));
        assert_eq!(texts(&b.into_words()), [("café", 0.7)]);
    }
}
