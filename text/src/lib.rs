//! Sentences for speech, shared by the host (replies streamed from the agent) and plugins that
//! need to cut text the same way: Unicode sentence boundaries (UAX #29, from the maintained
//! `unicode-segmentation` crate: `.` `!` `?` and their full-width and other-script forms such
//! as `。` `！` `？` `।` `؟`, closing quotes, decimals, a lower-case next word), then two
//! corrections UAX #29 leaves to the caller: a period after a known abbreviation or an
//! initial (`Dr. Smith`, `J. R. R. Tolkien`, `e.g. Rust`) does not end a sentence, and a line
//! break always does.
//!
//! [`SentenceSplitter`] takes text as it arrives and yields a sentence only once the text
//! after it has begun, since the next character decides (`3.` + `5`, `Dr.` + ` Smith`).

use unicode_segmentation::UnicodeSegmentation;

/// Words a period follows without ending a sentence (lower-case, without the period).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "mx", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "e.g", "i.e",
    "approx", "no", "fig", "inc", "ltd", "co", "u.s", "cf", "dept", "gen", "col", "lt", "sgt",
    "capt", "gov", "sen", "rep",
];

/// Byte offsets just past each sentence end in `text` that is certain: followed by text that
/// has begun (a non-space character) or by a line break. The text's own end is not included.
pub fn sentence_ends(text: &str) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut last_cut = 0;
    for (start, piece) in text.split_sentence_bound_indices() {
        let end = start + piece.len();
        if end >= text.len() {
            break;
        }
        let body = piece.trim_end();
        let by_line = piece.trim_end_matches([' ', '\t']).ends_with(['\n', '\r']);
        let decided = text[end..].chars().any(|c| !c.is_whitespace());
        if !by_line && (!decided || ends_with_abbreviation(&text[last_cut..start + body.len()])) {
            continue;
        }
        ends.push(end);
        last_cut = end;
    }
    ends
}

/// Whether `sentence` ends with a period after an abbreviation or a single-letter initial.
fn ends_with_abbreviation(sentence: &str) -> bool {
    let trimmed = sentence.trim_end_matches(['"', '\'', ')', '\u{201D}', '\u{2019}']);
    let Some(before) = trimmed.strip_suffix('.') else {
        return false;
    };
    if before.ends_with('.') {
        return false; // an ellipsis
    }
    let word = before
        .rsplit(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .to_lowercase();
    let mut letters = word.chars();
    if let (Some(c), None) = (letters.next(), letters.next()) {
        return c.is_alphabetic(); // an initial: "J."
    }
    ABBREVIATIONS.contains(&word.as_str())
}

/// Splits a whole text into trimmed sentences.
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut splitter = SentenceSplitter::new();
    let mut out = splitter.push(text);
    out.extend(splitter.finish());
    out
}

/// Accumulates text and yields complete sentences.
#[derive(Debug, Default)]
pub struct SentenceSplitter {
    buf: String,
}

impl SentenceSplitter {
    /// A new, empty splitter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a piece of text; returns the sentences it completed, in order.
    pub fn push(&mut self, delta: &str) -> Vec<String> {
        self.buf.push_str(delta);
        let ends = sentence_ends(&self.buf);
        let Some(&last) = ends.last() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut start = 0;
        for end in ends {
            let sentence = self.buf[start..end].trim();
            if !sentence.is_empty() {
                out.push(sentence.to_string());
            }
            start = end;
        }
        self.buf.drain(..last);
        out
    }

    /// The rest of the text, once the stream has ended.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(deltas: &[&str]) -> Vec<String> {
        let mut s = SentenceSplitter::new();
        let mut out = Vec::new();
        for d in deltas {
            out.extend(s.push(d));
        }
        out.extend(s.finish());
        out
    }

    #[test]
    fn sentences_complete_as_tokens_arrive() {
        let mut s = SentenceSplitter::new();
        assert!(s.push("Hello there").is_empty());
        assert!(s.push(".").is_empty(), "waits for the next token");
        assert!(
            s.push(" ").is_empty(),
            "still waits: `. e.g.` would not end it"
        );
        assert_eq!(s.push("How are"), vec!["Hello there."]);
        assert!(s.push(" you?").is_empty());
        assert_eq!(s.finish().as_deref(), Some("How are you?"));
    }

    #[test]
    fn abbreviations_decimals_and_initials_do_not_split() {
        let out =
            split_all(&["Dr. Smith paid 3.50 dollars, e.g. today. J. R. R. Tolkien wrote it! Ok"]);
        assert_eq!(
            out,
            vec![
                "Dr. Smith paid 3.50 dollars, e.g. today.",
                "J. R. R. Tolkien wrote it!",
                "Ok"
            ]
        );
    }

    #[test]
    fn quotes_newlines_and_a_lower_case_next_word() {
        assert_eq!(
            split_all(&["Well... maybe. He said \"no.\" Then\nNew line"]),
            vec!["Well... maybe.", "He said \"no.\"", "Then", "New line"]
        );
    }

    #[test]
    fn other_scripts_end_sentences_too() {
        assert_eq!(
            split_sentences("你好。今天天气很好！你呢？"),
            vec!["你好。", "今天天气很好！", "你呢？"]
        );
        assert_eq!(
            split_sentences("¿Qué tal? ¡Muy bien! Gracias."),
            vec!["¿Qué tal?", "¡Muy bien!", "Gracias."]
        );
        assert_eq!(
            split_sentences("C'est « génial ». Et toi ?"),
            vec!["C'est « génial ».", "Et toi ?"]
        );
        assert_eq!(split_sentences("नमस्ते। आप कैसे हैं?"), vec!["नमस्ते।", "आप कैसे हैं?"]);
    }
}
