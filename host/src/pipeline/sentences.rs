//! Reply text for speech: sentence streaming (the agent's token stream cut into sentences as
//! they complete, so the first can be spoken while the rest is written: `openclaw-text`'s
//! [`SentenceSplitter`], Unicode sentence boundaries shared with the plugins), markdown
//! removed, and the check for a transcript cut mid-sentence.

pub use openclaw_text::SentenceSplitter;

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

    #[test]
    fn replies_stream_sentence_by_sentence_in_any_script() {
        let mut s = SentenceSplitter::new();
        assert!(s.push("Dr. Smith is in").is_empty());
        assert_eq!(s.push(". ¿Y tú? 好"), vec!["Dr. Smith is in.", "¿Y tú?"]);
        assert_eq!(s.finish().as_deref(), Some("好"));
    }

    #[test]
    fn markdown_is_not_spoken() {
        assert_eq!(
            speakable("**Bold** and `code` see [the docs](https://x.y) # now"),
            "Bold and code see the docs now"
        );
    }
}
