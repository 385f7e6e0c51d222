//! Reply text for speech: sentence streaming (the agent's token stream cut into sentences as
//! they complete, so the first can be spoken while the rest is written: `openclaw-text`'s
//! [`SentenceSplitter`], Unicode sentence boundaries shared with the plugins), markdown
//! removed, and the check for a transcript cut mid-sentence.

pub use openclaw_text::SentenceSplitter;

/// Removes markdown and other marks that text-to-speech would read aloud.
pub(crate) fn speakable(text: &str) -> String {
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
pub(crate) fn ends_mid_sentence(transcript: &str) -> bool {
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

/// What a speculative transcript says about whether its sentence is over: one of the cues of
/// the turn-end decision (ARCHITECTURE.md, "Turn taking").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TextCue {
    /// It stops on a word no sentence ends on ("… are there in") or trails off ("…", a comma,
    /// a colon, a semicolon, a dash): the speaker is not done.
    Unfinished,
    /// It ends a sentence: `.`, `?` or `!` after a word a sentence can end on.
    Finished,
    /// Neither (no punctuation, no words, or no transcript): it says nothing either way.
    Neutral,
}

/// The [`TextCue`] of `transcript` (English).
pub(crate) fn text_cue(transcript: &str) -> TextCue {
    let text = transcript.trim_end();
    if ends_mid_sentence(text) || text.ends_with("...") || text.ends_with('…') {
        return TextCue::Unfinished;
    }
    match text.chars().next_back() {
        Some(',' | ';' | ':' | '-' | '–' | '—') => TextCue::Unfinished,
        Some('.' | '?' | '!') if text.chars().any(char::is_alphanumeric) => TextCue::Finished,
        _ => TextCue::Neutral,
    }
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
    fn transcripts_give_their_cue() {
        assert_eq!(
            text_cue("How many minutes are there in?"),
            TextCue::Unfinished
        );
        assert_eq!(text_cue("So I was wondering..."), TextCue::Unfinished);
        assert_eq!(text_cue("Well, I think…"), TextCue::Unfinished);
        assert_eq!(text_cue("Tell me, "), TextCue::Unfinished);
        assert_eq!(text_cue("The list is:"), TextCue::Unfinished);
        assert_eq!(text_cue("What is two plus two?"), TextCue::Finished);
        assert_eq!(text_cue("Where are you from?"), TextCue::Unfinished);
        assert_eq!(text_cue("Turn off the lights! "), TextCue::Finished);
        assert_eq!(text_cue("Please play some jazz music"), TextCue::Neutral);
        assert_eq!(text_cue("?"), TextCue::Neutral);
        assert_eq!(text_cue(""), TextCue::Neutral);
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
