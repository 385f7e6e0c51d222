//! Sentence streaming: cuts an agent's token stream into sentences as they complete, so the
//! first sentence can be spoken while the rest is still being written.

const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "approx", "no",
    "fig", "inc", "ltd", "co", "mt", "u.s",
];

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
        let mut out = Vec::new();
        while let Some(end) = find_boundary(&self.buf) {
            let sentence: String = self.buf[..end].trim().to_string();
            self.buf.drain(..end);
            if !sentence.is_empty() {
                out.push(sentence);
            }
        }
        out
    }

    /// The rest of the text, once the stream has ended.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_string())
    }
}

/// Byte index just past the first sentence end in `text` that is followed by whitespace.
fn find_boundary(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\n' {
            return Some(i + 1);
        }
        if matches!(c, b'.' | b'!' | b'?') {
            // Include closing quotes/brackets and repeated punctuation ("?!", "...").
            let mut j = i + 1;
            while j < bytes.len() && matches!(bytes[j], b'.' | b'!' | b'?' | b'"' | b'\'' | b')') {
                j += 1;
            }
            if j >= bytes.len() {
                return None; // wait: the next token decides.
            }
            if bytes[j].is_ascii_whitespace() && !(c == b'.' && is_abbreviation(&text[..i])) {
                return Some(j);
            }
            i = j;
            continue;
        }
        i += 1;
    }
    None
}

fn is_abbreviation(before: &str) -> bool {
    let word = before
        .rsplit(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if word.len() == 1 && word.chars().all(|c| c.is_ascii_alphabetic()) {
        return true; // an initial: "J. R. R. Tolkien"
    }
    ABBREVIATIONS.contains(&word.as_str())
}

/// Removes markdown and other marks that text-to-speech would read aloud.
pub fn speakable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' | '_' | '`' | '#' | '~' | '>' => {}
            '[' => {
                // [label](url) → label
                let mut label = String::new();
                for n in chars.by_ref() {
                    if n == ']' {
                        break;
                    }
                    label.push(n);
                }
                if chars.peek() == Some(&'(') {
                    for n in chars.by_ref() {
                        if n == ')' {
                            break;
                        }
                    }
                }
                out.push_str(&label);
            }
            _ => out.push(c),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Words an English sentence hardly ever ends on: articles, most prepositions and
/// conjunctions, possessive determiners. A transcript that stops on one was cut mid-sentence.
const UNFINISHED_ENDINGS: &[&str] = &[
    "a", "an", "the", "of", "in", "into", "on", "onto", "at", "to", "for", "from", "with", "by",
    "about", "than", "and", "or", "but", "nor", "because", "if", "my", "your", "his", "her", "our",
    "their", "its", "this", "these", "those", "very", "some", "every", "between", "during",
    "through", "until", "whether", "although", "unless",
];

/// Whether `transcript` (English) stops on a word that cannot end a sentence, such as
/// "How many minutes are there in". Used to overrule a "complete" turn-model verdict.
pub fn ends_mid_sentence(transcript: &str) -> bool {
    let last = transcript
        .split_whitespace()
        .next_back()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
                .to_lowercase()
        })
        .unwrap_or_default();
    UNFINISHED_ENDINGS.contains(&last.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_sentences_are_recognised() {
        assert!(ends_mid_sentence("How many minutes are there in?"));
        assert!(ends_mid_sentence("  Could you tell me the"));
        assert!(ends_mid_sentence("What is the capital of..."));
        assert!(!ends_mid_sentence(
            "How many minutes are there in a full week?"
        ));
        assert!(!ends_mid_sentence("Thank you."));
        assert!(!ends_mid_sentence(""));
    }

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
        assert_eq!(s.push(" How are"), vec!["Hello there."]);
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
    fn ellipsis_quotes_and_newlines() {
        let out = split_all(&["Well... maybe. He said \"no.\" Then\nNew line"]);
        assert_eq!(
            out,
            vec!["Well...", "maybe.", "He said \"no.\"", "Then", "New line"]
        );
    }

    #[test]
    fn markdown_is_not_spoken() {
        assert_eq!(
            speakable("**Bold** and `code` see [the docs](https://x.y) # now"),
            "Bold and code see the docs now"
        );
    }
}
