//! Splits text into sentences, so the first one can be spoken while the rest are synthesized.
//!
//! A sentence ends at `.`, `!`, `?`, `;` or `…` (a run of them, plus closing quotes and
//! brackets) followed by white space or the end of the text, and at a line break. A period
//! does not end a sentence when:
//!
//! - it is followed by something other than white space (`3.5`, `example.com`, the first dot
//!   of `e.g.`);
//! - it ends a known abbreviation (`Dr.`, `Mr.`, `etc.`, `approx.`), a dotted abbreviation
//!   (`e.g.`, `i.e.`, `U.S.`) or a single-letter initial (`J. Smith`);
//! - the next word starts with a lower-case letter (`approx. five`, `Wait... what`).
//!
//! A line break inside a paragraph (the next line starting lower-case) is a space, and a piece
//! with no letters in it (a list number such as `1.`) is joined to the next one. Splitting
//! too little is harmless (a longer first sentence); splitting too much only adds a pause.

/// Words that are followed by a period without ending a sentence (compared lower-case,
/// without the period).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "mx", "dr", "prof", "sr", "jr", "st", "mt", "ft", "rev", "gen", "col", "lt",
    "sgt", "capt", "gov", "sen", "rep", "pres", "vs", "etc", "approx", "cf", "al", "inc", "ltd",
    "corp", "dept", "univ",
];

/// Abbreviations that only count before a number (`No. 5`, `Jan. 3`, `p. 12`), because the
/// same letters often end a sentence ("The answer is no.").
const NUMBER_ABBREVIATIONS: &[&str] = &[
    "no", "nos", "nr", "vol", "p", "pp", "ch", "sec", "fig", "figs", "eq", "art", "jan", "feb",
    "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "ca",
];

/// Closing characters that belong to the sentence before them (`He said "hi."`).
fn is_closer(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | ')' | ']' | '}' | '\u{201D}' | '\u{2019}' | '\u{00BB}' | '*' | '_'
    )
}

fn is_terminator(c: char) -> bool {
    matches!(
        c,
        '.' | '!' | '?' | ';' | '\u{2026}' | '\u{3002}' | '\u{FF01}' | '\u{FF1F}' | '\u{FF1B}'
    )
}

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
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut sentences: Vec<String> = Vec::new();
    let mut start = 0usize; // byte offset where the current piece starts
    let mut i = 0usize; // index into `chars`

    while i < chars.len() {
        let (pos, c) = chars[i];
        if c == '\n' || c == '\r' {
            if !newline_is_space(&chars, i) {
                push(&mut sentences, &text[start..pos]);
                start = pos + c.len_utf8();
            }
            i += 1;
            continue;
        }
        if !is_terminator(c) {
            i += 1;
            continue;
        }
        // A run of terminators, then closing quotes and brackets.
        let run_start = i;
        let mut j = i;
        while j < chars.len() && is_terminator(chars[j].1) {
            j += 1;
        }
        while j < chars.len() && is_closer(chars[j].1) {
            j += 1;
        }
        let end = chars.get(j).map_or(text.len(), |&(p, _)| p);
        let at_end = j == chars.len();
        let followed_by_space = chars.get(j).is_some_and(|&(_, c)| c.is_whitespace());
        let split = (at_end || followed_by_space)
            && !is_false_stop(text, &chars, start, run_start, j)
            && has_letters(&text[start..end]);
        if split {
            push(&mut sentences, &text[start..end]);
            start = end;
        }
        i = j.max(i + 1);
    }
    push(&mut sentences, &text[start..]);
    sentences
}

/// Adds `piece` as a sentence, or appends it to the previous one if it has nothing to speak.
fn push(sentences: &mut Vec<String>, piece: &str) {
    let piece = piece.trim();
    if has_content(piece) {
        sentences.push(collapse_whitespace(piece));
    } else if !piece.is_empty() {
        // Trailing punctuation ("...", ")"): keep it with the sentence before.
        if let Some(last) = sentences.last_mut() {
            last.push_str(piece);
        }
    }
}

/// Whether the terminator run `chars[run_start..run_end]` only looks like a sentence end.
fn is_false_stop(
    text: &str,
    chars: &[(usize, char)],
    piece_start: usize,
    run_start: usize,
    run_end: usize,
) -> bool {
    let run: String = chars[run_start..run_end].iter().map(|&(_, c)| c).collect();
    let period_like = run
        .chars()
        .all(|c| c == '.' || c == '\u{2026}' || is_closer(c));
    if !period_like {
        // `!`, `?` and `;` always end a sentence.
        return false;
    }
    // The next word starting lower-case continues the sentence.
    let next = chars[run_end..]
        .iter()
        .map(|&(_, c)| c)
        .find(|c| !c.is_whitespace());
    if next.is_some_and(char::is_lowercase) {
        return true;
    }
    // An ellipsis ("...", "…") before a capital ends the sentence.
    if run.starts_with("..") || run.starts_with('\u{2026}') {
        return false;
    }
    // The word before the period.
    let run_pos = chars[run_start].0;
    let before = &text[piece_start..run_pos];
    let word = before
        .rsplit(char::is_whitespace)
        .next()
        .unwrap_or_default()
        .trim_start_matches(|c: char| !c.is_alphanumeric());
    if word.is_empty() {
        return false;
    }
    if word.contains('.') {
        return true; // e.g. / i.e. / U.S.
    }
    let mut letters = word.chars();
    if let (Some(first), None) = (letters.next(), letters.next()) {
        if first.is_uppercase() {
            return true; // an initial: "J. Smith"
        }
    }
    let lower = word.to_lowercase();
    ABBREVIATIONS.contains(&lower.as_str())
        || (next.is_some_and(|c| c.is_ascii_digit())
            && NUMBER_ABBREVIATIONS.contains(&lower.as_str()))
}

/// A line break continues the sentence when the line before does not end with a terminator
/// and the next line starts lower-case (hard-wrapped prose).
fn newline_is_space(chars: &[(usize, char)], i: usize) -> bool {
    let prev = chars[..i]
        .iter()
        .rev()
        .map(|&(_, c)| c)
        .find(|c| *c != '\r' && *c != ' ' && *c != '\t');
    let next = chars[i + 1..]
        .iter()
        .map(|&(_, c)| c)
        .find(|c| !c.is_whitespace() || *c == '\n');
    match (prev, next) {
        (Some(p), Some(n)) => (p.is_alphanumeric() || p == ',') && n.is_lowercase(),
        _ => false,
    }
}

fn has_letters(piece: &str) -> bool {
    piece.chars().any(char::is_alphabetic)
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
                "Good;",
                "thanks."
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
            ["See No. 5 and p. 12.", "The answer is no.", "Sorry."]
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
            ["Well...", "I guess so.", "Wait\u{2026}", "Really?!", "Yes."]
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
    fn newlines_split_lines_but_not_wrapped_prose() {
        assert_eq!(
            split("Shopping list\nEggs\n\nMilk"),
            ["Shopping list", "Eggs", "Milk"]
        );
        assert_eq!(
            split("This sentence is wrapped\nacross two lines. Next."),
            ["This sentence is wrapped across two lines.", "Next."]
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
        assert_eq!(split("Hi. ..."), ["Hi...."]);
        // espeak-ng reads emoji by name, so they count as content.
        assert_eq!(split("\u{1F44D}"), ["\u{1F44D}"]);
    }

    #[test]
    fn leading_dash_and_odd_input_survive() {
        assert_eq!(
            split("-v is not an option. --help neither."),
            ["-v is not an option.", "--help neither."]
        );
        assert_eq!(split("a.b.c.d"), ["a.b.c.d"]);
        assert_eq!(split("?"), Vec::<String>::new());
        assert_eq!(
            split("Ünïcödé ist schön. Ja!"),
            ["Ünïcödé ist schön.", "Ja!"]
        );
    }
}
