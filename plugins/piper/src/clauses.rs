//! Splits text into sentences of clauses the way espeak-ng does when Piper phonemizes it
//! (`espeak_TextToPhonemesWithTerminator`, one clause per call), so that each sentence is one
//! model call and each clause keeps the punctuation Piper puts among its phonemes:
//!
//! - a clause ends at `.`, `?`, `!`, `,`, `:` or `;` (the first of a run of them, closing
//!   quotes and brackets after it belonging to the clause) followed by white space or the end;
//!   a `.` before a word that starts lower-case ends nothing (`wait. e.g. this`);
//! - `.`, `?` and `!` also end the sentence; `...` and `…` end a clause with no terminator;
//! - a blank line ends the sentence with no terminator, a single line break is a space;
//! - the text's end ends the last clause and sentence, with no terminator.
//!
//! Checked against piper-tts 1.8's `espeakbridge.get_phonemes` in the tests.

/// One clause: its text (punctuation kept, white space collapsed) and the terminator Piper
/// appends to its phonemes (`.`, `?`, `!`, `,`, `:`, `;` or nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// The clause's text, as espeak-ng reads it.
    pub text: String,
    /// The terminator, `""` for none.
    pub terminator: &'static str,
}

/// A sentence: the clauses one model call speaks.
pub type Sentence = Vec<Clause>;

fn is_closer(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | ')' | ']' | '}' | '\u{201D}' | '\u{2019}' | '\u{00BB}'
    )
}

fn terminator_of(c: char) -> Option<&'static str> {
    Some(match c {
        '.' => ".",
        '?' => "?",
        '!' => "!",
        ',' => ",",
        ':' => ":",
        ';' => ";",
        '\u{2026}' => "",
        _ => return None,
    })
}

/// Whether a clause has anything espeak-ng would speak.
fn speakable(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_alphanumeric() || !(c.is_whitespace() || c.is_ascii_punctuation()))
}

/// Splits `text` into sentences of clauses, dropping clauses with nothing to speak.
pub fn split(text: &str) -> Vec<Sentence> {
    let chars: Vec<char> = text.chars().collect();
    let mut sentences: Vec<Sentence> = Vec::new();
    let mut current: Sentence = Vec::new();
    let mut piece = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' && blank_line_follows(&chars, i) {
            close(&mut current, &mut piece, "");
            end_sentence(&mut sentences, &mut current);
            i += 1;
            continue;
        }
        let Some(mut terminator) = terminator_of(c) else {
            piece.push(c);
            i += 1;
            continue;
        };
        // The run of punctuation, then closers.
        let mut j = i;
        while j < chars.len() && terminator_of(chars[j]).is_some() {
            j += 1;
        }
        let run: String = chars[i..j].iter().collect();
        while j < chars.len() && is_closer(chars[j]) {
            j += 1;
        }
        let ends = j == chars.len() || chars[j].is_whitespace();
        let next_word = chars[j..].iter().find(|c| !c.is_whitespace());
        let ellipsis = run.starts_with("..") || c == '\u{2026}';
        if ellipsis {
            terminator = "";
        }
        let lower_next = next_word.is_some_and(|c| c.is_lowercase());
        if !ends || (terminator == "." && !ellipsis && lower_next) {
            piece.extend(&chars[i..j]);
            i = j;
            continue;
        }
        piece.extend(&chars[i..j]);
        close(&mut current, &mut piece, terminator);
        if matches!(terminator, "." | "?" | "!") {
            end_sentence(&mut sentences, &mut current);
        }
        i = j;
    }
    close(&mut current, &mut piece, "");
    end_sentence(&mut sentences, &mut current);
    sentences
}

/// Whether the line break at `i` is followed by another before any text.
fn blank_line_follows(chars: &[char], i: usize) -> bool {
    chars[i + 1..]
        .iter()
        .take_while(|c| c.is_whitespace())
        .any(|&c| c == '\n')
}

fn close(current: &mut Sentence, piece: &mut String, terminator: &'static str) {
    let text = piece.split_whitespace().collect::<Vec<_>>().join(" ");
    piece.clear();
    if speakable(&text) {
        current.push(Clause { text, terminator });
    } else if let Some(last) = current.last_mut() {
        // Punctuation only: it ends the clause before.
        if last.terminator.is_empty() {
            last.terminator = terminator;
        }
    }
}

fn end_sentence(sentences: &mut Vec<Sentence>, current: &mut Sentence) {
    if !current.is_empty() {
        sentences.push(std::mem::take(current));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each sentence as `text|terminator` clauses.
    fn show(text: &str) -> Vec<Vec<String>> {
        split(text)
            .into_iter()
            .map(|s| {
                s.into_iter()
                    .map(|c| format!("{}|{}", c.text, c.terminator))
                    .collect()
            })
            .collect()
    }

    // The expectations are piper-tts 1.8's `espeakbridge.get_phonemes` clause and sentence
    // boundaries for the same texts.
    #[test]
    fn clauses_and_sentences_as_espeak_ng_cuts_them() {
        assert_eq!(
            show("Sure, I can help you with that."),
            [vec!["Sure,|,", "I can help you with that.|."]]
        );
        assert_eq!(
            show("Well... I guess so. Wait: really? Yes! Dr. Smith paid 3.5 dollars; fine"),
            [
                vec!["Well...|", "I guess so.|."],
                vec!["Wait:|:", "really?|?"],
                vec!["Yes!|!"],
                vec!["Dr.|."],
                vec!["Smith paid 3.5 dollars;|;", "fine|"],
            ]
        );
        assert_eq!(
            show("He said \"stop.\" Then left. (It was late.) OK?! wait. e.g. this"),
            [
                vec!["He said \"stop.\"|."],
                vec!["Then left.|."],
                vec!["(It was late.)|."],
                vec!["OK?!|?"],
                vec!["wait. e.g. this|"],
            ]
        );
        assert_eq!(
            show("Shopping list\nEggs\n\nMilk"),
            [vec!["Shopping list Eggs|"], vec!["Milk|"]]
        );
        assert_eq!(show("A; b: c,d"), [vec!["A;|;", "b:|:", "c,d|"]]);
        assert_eq!(show("Hmm..."), [vec!["Hmm...|"]]);
    }

    #[test]
    fn nothing_to_speak() {
        assert!(split("").is_empty());
        assert!(split(" ... !? \n\n ,").is_empty());
        assert_eq!(show("Hi. ..."), [vec!["Hi.|."]]);
    }
}
