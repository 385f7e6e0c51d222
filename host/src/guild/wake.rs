//! Wake names: whether an utterance addresses the bot ("Claw, what time is it?", "hey claw
//! …", "okay open claw …"), matched loosely because speech-to-text spells names its own way
//! ("Clor", "Claws", "Open Claw"), and the text with the name taken out for the agent.
//!
//! The name must come within the first [`LEAD_WORDS`] words, after greetings and fillers
//! only ("hey", "ok", "um"…), so "I told Claw yesterday" does not wake the bot.

/// How many words may come before the name (greetings and fillers only).
pub(crate) const LEAD_WORDS: usize = 3;

/// Words that may come before a wake name.
const LEADS: [&str; 14] = [
    "hey", "hi", "hello", "ok", "okay", "yo", "so", "um", "uh", "oh", "please", "excuse", "me",
    "and",
];

/// An utterance that addresses the bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakeMatch {
    /// The wake name it matched (as configured).
    pub name: String,
    /// The utterance without the greeting and the name: what the agent sees.
    pub text: String,
}

/// A word of the transcript: its lowercase letters and digits, and where it ends.
struct Word {
    norm: String,
    end: usize,
}

fn words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut current = String::new();
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() || c == '\'' {
            current.extend(c.to_lowercase().filter(|c| *c != '\''));
        } else if !current.is_empty() {
            out.push(Word {
                norm: std::mem::take(&mut current),
                end: i,
            });
        }
    }
    if !current.is_empty() {
        out.push(Word {
            norm: current,
            end: text.len(),
        });
    }
    out
}

/// Levenshtein distance over chars.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Whether `heard` is close enough to `name` (both lowercase, without spaces): one edit per
/// four letters of the name, none for names under three letters.
fn sounds_like(heard: &str, name: &str) -> bool {
    let allowed = name.chars().count() / 4;
    heard == name || (allowed > 0 && distance(heard, name) <= allowed)
}

/// The wake name that `transcript` opens with, and the text after it; `None` when it does
/// not address the bot. `names` are lowercase (a name may have several words).
pub fn addressed(transcript: &str, names: &[String]) -> Option<WakeMatch> {
    let words = words(transcript);
    for start in 0..=LEAD_WORDS.min(words.len()) {
        for name in names {
            let wanted: String = name.chars().filter(|c| c.is_alphanumeric()).collect();
            if wanted.is_empty() {
                continue;
            }
            let spoken = name.split_whitespace().count();
            // "open claw", "openclaw" and "open-claw" all match either spelling of the name.
            for len in 1..=(spoken + 1).min(words.len() - start) {
                let heard: String = words[start..start + len]
                    .iter()
                    .map(|w| w.norm.as_str())
                    .collect();
                if sounds_like(&heard, &wanted) {
                    let end = words[start + len - 1].end;
                    return Some(WakeMatch {
                        name: name.clone(),
                        text: strip_lead(&transcript[end..]),
                    });
                }
            }
        }
        match words.get(start) {
            Some(w) if LEADS.contains(&w.norm.as_str()) => continue,
            _ => return None,
        }
    }
    None
}

/// The rest of the utterance after the name: leading punctuation and spaces removed, the
/// first letter capitalised as a sentence's.
fn strip_lead(rest: &str) -> String {
    let rest = rest.trim_start_matches(|c: char| !c.is_alphanumeric());
    let mut chars = rest.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars)
            .collect::<String>()
            .trim_end()
            .to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["claw".into(), "openclaw".into()]
    }

    fn stripped(text: &str) -> Option<String> {
        addressed(text, &names()).map(|m| m.text)
    }

    #[test]
    fn a_name_at_the_start_wakes_the_bot_and_is_stripped() {
        assert_eq!(
            stripped("Claw, what time is it?").as_deref(),
            Some("What time is it?")
        );
        assert_eq!(stripped("Hey claw what's up").as_deref(), Some("What's up"));
        assert_eq!(
            stripped("okay, Open Claw: lights off.").as_deref(),
            Some("Lights off.")
        );
        assert_eq!(
            stripped("OpenClaw tell me a joke").as_deref(),
            Some("Tell me a joke")
        );
    }

    #[test]
    fn transcription_spellings_still_match() {
        assert_eq!(stripped("Claws, help me").as_deref(), Some("Help me"));
        assert_eq!(stripped("hey Clow, help").as_deref(), Some("Help"));
        assert_eq!(
            stripped("Open claws, are you there").as_deref(),
            Some("Are you there")
        );
    }

    #[test]
    fn other_speech_does_not_wake_the_bot() {
        assert_eq!(stripped("I told Claw yesterday"), None);
        assert_eq!(stripped("what do you think about this"), None);
        assert_eq!(stripped("clean the kitchen"), None);
        assert_eq!(stripped("the claw machine was rigged"), None);
        assert_eq!(stripped(""), None);
    }

    #[test]
    fn a_name_alone_is_an_empty_request() {
        assert_eq!(stripped("Claw?").as_deref(), Some(""));
    }

    #[test]
    fn short_names_must_match_exactly() {
        let names = vec!["al".to_string()];
        assert!(addressed("Al, hi", &names).is_some());
        assert!(addressed("Ed, hi", &names).is_none());
    }
}
