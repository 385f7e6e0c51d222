//! Splits text into sentences, so the first one can be spoken while the rest are synthesized.
//!
//! The sentences are the host's, from `openclaw-text` (Unicode sentence boundaries with
//! abbreviations, initials, decimals and line breaks; one splitter for the whole project);
//! on top of them, what espeak-ng needs: a piece with nothing to speak (only punctuation, such
//! as a trailing `...`) joins the sentence before it, a piece with no letters (a list number
//! such as `1.`) joins the one after it, and white space is collapsed.

/// Whether `piece` has anything worth speaking: a letter, digit or other symbol (espeak-ng
/// reads emoji out by name), not only punctuation and white space.
pub fn has_content(piece: &str) -> bool {
    piece.chars().any(|c| {
        c.is_alphanumeric()
            || !(c.is_whitespace() || c.is_ascii_punctuation() || is_unicode_punctuation(c))
    })
}

fn is_unicode_punctuation(c: char) -> bool {
    matches!(
        c,
        '\u{2010}'..='\u{2027}' | '\u{3001}'..='\u{3003}' | '\u{00A1}' | '\u{00BF}' | '\u{00AB}'
            | '\u{00BB}' | '\u{FF01}' | '\u{FF1F}' | '\u{FF1B}' | '\u{FF0C}'
    )
}

/// Splits `text` into trimmed sentences, in order, dropping pieces with nothing to speak.
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut sentences: Vec<String> = Vec::new();
    // A piece without letters, waiting to be joined to the next one.
    let mut pending = String::new();
    for piece in openclaw_text::split_sentences(text) {
        let piece = collapse_whitespace(&piece);
        if !has_content(&piece) {
            match sentences.last_mut() {
                Some(last) => last.push_str(&piece),
                None => pending.push_str(&piece),
            }
            continue;
        }
        if !pending.is_empty() {
            pending.push(' ');
        }
        pending.push_str(&piece);
        if piece.chars().any(char::is_alphabetic) {
            sentences.push(std::mem::take(&mut pending));
        }
    }
    if has_content(&pending) {
        sentences.push(pending);
    }
    sentences
}

fn collapse_whitespace(piece: &str) -> String {
    piece.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<String> {
        split_sentences(text)
    }

    #[test]
    fn splits_on_terminal_punctuation() {
        assert_eq!(
            split("Hello there. How are you? I am fine! Good; thanks."),
            [
                "Hello there.",
                "How are you?",
                "I am fine!",
                "Good; thanks."
            ]
        );
    }

    #[test]
    fn abbreviations_do_not_split() {
        assert_eq!(
            split("Dr. Smith met Mr. Jones at St. Mary's. They talked."),
            ["Dr. Smith met Mr. Jones at St. Mary's.", "They talked."]
        );
        assert_eq!(
            split("Bring fruit, e.g. apples, i.e. the red ones. Then leave."),
            [
                "Bring fruit, e.g. apples, i.e. the red ones.",
                "Then leave."
            ]
        );
        assert_eq!(
            split("Use tools, e.g. Rust. Or not."),
            ["Use tools, e.g. Rust.", "Or not."]
        );
        assert_eq!(
            split("J. R. R. Tolkien wrote it. Read it."),
            ["J. R. R. Tolkien wrote it.", "Read it."]
        );
        assert_eq!(
            split("See No. 5 and p. 12. The answer is no. Sorry."),
            // "no." is an abbreviation to the host's splitter: one sentence too few costs
            // nothing but a later first audio.
            ["See No. 5 and p. 12.", "The answer is no. Sorry."]
        );
        assert_eq!(
            split("It costs approx. five dollars. Fine."),
            ["It costs approx. five dollars.", "Fine."]
        );
    }

    #[test]
    fn decimals_versions_and_urls_do_not_split() {
        assert_eq!(
            split("Pi is about 3.14 and the rate is 3.5 percent. Version 1.2.3 is out."),
            [
                "Pi is about 3.14 and the rate is 3.5 percent.",
                "Version 1.2.3 is out."
            ]
        );
        assert_eq!(
            split("See example.com for details. Bye."),
            ["See example.com for details.", "Bye."]
        );
        assert_eq!(
            split("It happened in 2024. Then it stopped."),
            ["It happened in 2024.", "Then it stopped."]
        );
    }

    #[test]
    fn ellipsis() {
        assert_eq!(
            split("Well... I guess so. Wait\u{2026} Really?! Yes."),
            ["Well...", "I guess so.", "Wait\u{2026} Really?!", "Yes."]
        );
        assert_eq!(split("Wait... what happened?"), ["Wait... what happened?"]);
        assert_eq!(split("Hmm..."), ["Hmm..."]);
    }

    #[test]
    fn no_terminal_punctuation() {
        assert_eq!(split("just some words"), ["just some words"]);
        assert_eq!(
            split("First sentence. and a trailing fragment"),
            ["First sentence. and a trailing fragment"]
        );
        assert_eq!(
            split("First sentence. Trailing fragment"),
            ["First sentence.", "Trailing fragment"]
        );
    }

    #[test]
    fn newlines_split_lines() {
        assert_eq!(
            split("Shopping list\nEggs\n\nMilk"),
            ["Shopping list", "Eggs", "Milk"]
        );
        assert_eq!(
            split("This sentence is wrapped\nacross two lines. Next."),
            ["This sentence is wrapped", "across two lines.", "Next."]
        );
        assert_eq!(split("Line one\r\nLine two"), ["Line one", "Line two"]);
    }

    #[test]
    fn quotes_and_brackets_stay_with_their_sentence() {
        assert_eq!(
            split("He said \"stop.\" Then he left. (It was late.) OK."),
            [
                "He said \"stop.\"",
                "Then he left.",
                "(It was late.)",
                "OK."
            ]
        );
    }

    #[test]
    fn list_numbers_join_the_next_item() {
        assert_eq!(
            split("1. Buy milk.\n2. Call mom."),
            ["1. Buy milk.", "2. Call mom."]
        );
    }

    #[test]
    fn empty_and_punctuation_only() {
        assert!(split("").is_empty());
        assert!(split("   \n\t ").is_empty());
        assert!(split("... !!! ;").is_empty());
        assert_eq!(split("Hi. ..."), ["Hi. ..."]);
        // espeak-ng reads emoji by name, so they count as content.
        assert_eq!(split("\u{1F44D}"), ["\u{1F44D}"]);
    }

    #[test]
    fn leading_dash_and_odd_input_survive() {
        assert_eq!(
            split("-v is not an option. Nor is --help."),
            ["-v is not an option.", "Nor is --help."]
        );
        assert_eq!(split("a.b.c.d"), ["a.b.c.d"]);
        assert_eq!(split("?"), Vec::<String>::new());
        assert_eq!(
            split("Ünïcödé ist schön. Ja!"),
            ["Ünïcödé ist schön.", "Ja!"]
        );
    }
}
