//! Text to Piper phonemes with the espeak-ng program (`espeak-ng -q --ipa -v <voice>`), kept
//! out of process so no GPL code is linked.
//!
//! The command-line program reads its input line by line and prints each clause's IPA on a
//! line of its own, without punctuation. So each of a sentence's clauses ([`crate::clauses`])
//! goes on its own line, followed by a blank line that comes back as an empty line, and
//! Piper's assembly is redone here (piper-tts `EspeakPhonemizer.phonemize`): language-switch
//! flags such as `(fr)` removed, the clause's terminator appended (followed by a space after
//! `,` `:` `;`), the whole sentence decomposed (NFD), one phoneme per codepoint. When the
//! output cannot be matched to the clauses (a clause that made no output), each clause is
//! phonemized alone.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::Duration;

use plugin_api::abi::PluginError;
use unicode_normalization::UnicodeNormalization;

use crate::clauses::{Clause, Sentence};

/// How long one espeak-ng run may take (it phonemizes thousands of words a second).
const TIMEOUT: Duration = Duration::from_secs(10);
/// espeak-ng reads lines into a 1000-byte buffer: longer clauses are cut at spaces below it.
const MAX_LINE_BYTES: usize = 900;
/// Processes kept waiting: a synthesis uses one for its first sentence and one for the rest.
const STANDBY: usize = 2;

/// A finished run's standard output and (the start of) its standard error.
type Captured = (Vec<u8>, Vec<u8>);

/// The espeak-ng program and the voice it phonemizes with.
#[derive(Debug)]
pub struct Phonemizer {
    program: PathBuf,
    name: String,
    voice: String,
    /// espeak-ng processes started ahead of time and waiting for their input: starting one
    /// (exec, loading its data and the voice) takes 8 to 20 ms, most of a short sentence's
    /// cost.
    standby: Standby,
}

/// Started processes nobody has written to yet; killed when the phonemizer is dropped.
#[derive(Debug, Default)]
struct Standby(Mutex<Vec<Child>>);

impl Standby {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Child>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self) -> Option<Child> {
        self.lock().pop()
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        let waiting = self.0.get_mut().unwrap_or_else(|p| p.into_inner());
        for mut child in waiting.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Phonemizer {
    /// Finds `binary` (a path, or a name on `PATH`) for `voice` (an espeak-ng voice).
    pub fn new(binary: &str, voice: &str) -> Result<Phonemizer, PluginError> {
        let program = plugin_api::sdk::find_program(binary).ok_or_else(|| {
            PluginError::config(format!(
                "the espeak-ng program `{binary}` (setting `espeak_binary`) was not found; \
                 install it (`apt-get install espeak-ng`) or give its full path"
            ))
        })?;
        Ok(Phonemizer {
            program,
            name: binary.to_string(),
            voice: voice.to_string(),
            standby: Standby::default(),
        })
    }

    /// Checks that espeak-ng runs and knows the voice: phonemizes one word.
    pub fn check(&self) -> Result<(), PluginError> {
        let out = self.run("a\n").map_err(|e| {
            PluginError::config(format!(
                "espeak-ng cannot phonemize with voice `{}` (the voice's `espeak.voice`): {}",
                self.voice,
                e.message()
            ))
        })?;
        if out.trim().is_empty() {
            return Err(PluginError::config(format!(
                "espeak-ng made no phonemes with voice `{}`",
                self.voice
            )));
        }
        Ok(())
    }

    /// The sentence's phonemes, one codepoint each, as piper-tts makes them.
    pub fn phonemize(&self, sentence: &Sentence) -> Result<Vec<String>, PluginError> {
        let mut all = self.phonemize_all(std::slice::from_ref(sentence))?;
        Ok(all.pop().unwrap_or_default())
    }

    /// Every sentence's phonemes, from one espeak-ng run.
    pub fn phonemize_all(&self, sentences: &[Sentence]) -> Result<Vec<Vec<String>>, PluginError> {
        let mut input = String::new();
        for clause in sentences.iter().flatten() {
            input.push_str(&clause_lines(&clause.text));
            input.push_str("\n\n");
        }
        let output = self.run(&input)?;
        let mut groups = group_lines(&output).into_iter();
        if groups.len() != sentences.iter().map(Vec::len).sum::<usize>() {
            // Some clause made no output: one run per clause keeps them apart.
            return sentences.iter().map(|s| self.phonemize_each(s)).collect();
        }
        Ok(sentences
            .iter()
            .map(|sentence| {
                let ipa: Vec<String> = groups.by_ref().take(sentence.len()).collect();
                assemble(sentence.iter().zip(ipa.iter().map(String::as_str)))
            })
            .collect())
    }

    /// One espeak-ng run per clause.
    fn phonemize_each(&self, sentence: &Sentence) -> Result<Vec<String>, PluginError> {
        let mut each = Vec::with_capacity(sentence.len());
        for clause in sentence {
            let out = self.run(&format!("{}\n", clause_lines(&clause.text)))?;
            each.push(group_lines(&out).join(" "));
        }
        Ok(assemble(
            sentence.iter().zip(each.iter().map(String::as_str)),
        ))
    }

    fn spawn(&self) -> Result<Child, PluginError> {
        Command::new(&self.program)
            .args(["-q", "--ipa", "-v", &self.voice])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                PluginError::unavailable(format!("cannot start `{}`: {e}", self.name))
                    .with_retryable(false)
            })
    }

    /// A standby process still waiting, else a new one.
    fn process(&self) -> Result<Child, PluginError> {
        while let Some(mut child) = self.standby.take() {
            match child.try_wait() {
                Ok(None) => return Ok(child),
                _ => {
                    let _ = child.wait();
                }
            }
        }
        self.spawn()
    }

    /// Starts standby processes until [`STANDBY`] wait: one for the first sentence of the next
    /// synthesis, one for the rest of it. Called when the machine is otherwise idle (after a
    /// synthesis), so their start-up does not compete with the model for the CPU.
    pub fn prepare(&self) {
        let mut waiting = self.standby.lock();
        while waiting.len() < STANDBY {
            match self.spawn() {
                Ok(child) => waiting.push(child),
                Err(_) => break,
            }
        }
    }

    /// Runs espeak-ng on `input`; returns its standard output.
    fn run(&self, input: &str) -> Result<String, PluginError> {
        let mut child = self.process()?;
        let (sender, receiver) = mpsc::channel();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let input = input.to_string();
        thread::spawn(move || {
            // Writing in its own thread: espeak-ng writes while it reads.
            if let Some(mut stdin) = stdin {
                let _ = stdin.write_all(input.as_bytes());
            }
        });
        thread::spawn(move || {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let read = stdout.map_or(Ok(0), |mut s| s.read_to_end(&mut out));
            if let Some(mut s) = stderr {
                let _ = s.by_ref().take(4096).read_to_end(&mut err);
            }
            let _ = sender.send(read.map(|_| (out, err)));
        });
        let result = receiver.recv_timeout(TIMEOUT);
        self.finish(&mut child, result)
    }

    fn finish(
        &self,
        child: &mut Child,
        result: Result<io::Result<Captured>, mpsc::RecvTimeoutError>,
    ) -> Result<String, PluginError> {
        let (out, err) = match result {
            Ok(Ok(both)) => both,
            Ok(Err(e)) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(PluginError::unavailable(format!(
                    "reading from `{}` failed: {e}",
                    self.name
                )));
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(PluginError::timeout(format!(
                    "`{}` did not finish phonemizing within {} s",
                    self.name,
                    TIMEOUT.as_secs()
                )));
            }
        };
        let status = child
            .wait()
            .map_err(|e| PluginError::unavailable(format!("`{}`: {e}", self.name)))?;
        if !status.success() {
            let err = String::from_utf8_lossy(&err);
            return Err(PluginError::unavailable(format!(
                "`{}` failed ({status}): {}",
                self.name,
                err.trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// A clause as input lines for espeak-ng: cut at spaces below its line buffer.
fn clause_lines(text: &str) -> String {
    let mut lines = String::new();
    let mut line_len = 0;
    for word in text.split_whitespace() {
        if line_len > 0 && line_len + word.len() + 1 > MAX_LINE_BYTES {
            lines.push('\n');
            line_len = 0;
        } else if line_len > 0 {
            lines.push(' ');
            line_len += 1;
        }
        lines.push_str(word);
        line_len += word.len();
    }
    lines
}

/// espeak-ng's output, one entry per clause: the lines between empty lines, joined by spaces.
fn group_lines(output: &str) -> Vec<String> {
    let mut groups = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in output.lines() {
        let line = line.trim();
        if line.is_empty() {
            groups.push(current.join(" "));
            current.clear();
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        groups.push(current.join(" "));
    }
    groups
}

/// Removes language-switch flags: `(en)`, `(fr)`.
fn strip_language_flags(ipa: &str) -> String {
    let mut out = String::with_capacity(ipa.len());
    let mut rest = ipa;
    while let Some(open) = rest.find('(') {
        match rest[open..].find(')') {
            Some(close) if close > 1 => {
                out.push_str(&rest[..open]);
                rest = &rest[open + close + 1..];
            }
            _ => break,
        }
    }
    out.push_str(rest);
    out
}

/// Piper's sentence phonemes from each clause and its IPA.
pub fn assemble<'a>(clauses: impl Iterator<Item = (&'a Clause, &'a str)>) -> Vec<String> {
    let mut text = String::new();
    for (clause, ipa) in clauses {
        text.push_str(&strip_language_flags(ipa));
        text.push_str(clause.terminator);
        if matches!(clause.terminator, "," | ":" | ";") {
            text.push(' ');
        }
    }
    text.nfd().map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clauses::split;

    fn espeak() -> Phonemizer {
        Phonemizer::new("espeak-ng", "en-us").expect("espeak-ng is installed (`make deps`)")
    }

    #[test]
    fn the_reference_sentence_matches_piper() {
        let sentences = split("Sure, I can help you with that.");
        let phonemes = espeak().phonemize(&sentences[0]).unwrap();
        // piper-tts, and docs in ../shared/notes/onnx-speech-models.md.
        let expected: Vec<String> = "ʃˈʊɹ, aɪ kæn hˈɛlp juː wɪð ðˈæt."
            .nfd()
            .map(String::from)
            .collect();
        assert_eq!(phonemes, expected);
    }

    #[test]
    fn a_clause_without_output_falls_back_to_one_run_each() {
        let clauses = vec![
            Clause {
                text: "Hello,".into(),
                terminator: ",",
            },
            // Makes an empty line, which would shift the grouping.
            Clause {
                text: "\u{2014}".into(),
                terminator: "",
            },
            Clause {
                text: "world.".into(),
                terminator: ".",
            },
        ];
        let phonemes: String = espeak().phonemize(&clauses).unwrap().concat();
        assert!(phonemes.starts_with("həlˈoʊ, "), "{phonemes}");
        assert!(phonemes.ends_with("wˈɜːld."), "{phonemes}");
    }

    #[test]
    fn long_clauses_are_cut_at_spaces_and_kept_together() {
        let text = "word ".repeat(400);
        let lines = clause_lines(&text);
        assert!(lines.lines().all(|l| l.len() <= MAX_LINE_BYTES));
        assert_eq!(lines.split_whitespace().count(), 400);
        let clause = Clause {
            text: text.trim().into(),
            terminator: ".",
        };
        let phonemes: String = espeak().phonemize(&vec![clause]).unwrap().concat();
        assert_eq!(phonemes.matches("wˈɜːd").count(), 400, "{phonemes}");
    }

    #[test]
    fn two_processes_wait_so_a_reply_starts_none_cold() {
        let espeak = espeak();
        espeak.prepare();
        assert_eq!(espeak.standby.lock().len(), STANDBY);
        let sentences = split("Sure. The train leaves at nine. It is on time.");
        espeak.phonemize(&sentences[0]).unwrap();
        espeak.phonemize_all(&sentences[1..]).unwrap();
        assert!(espeak.standby.lock().is_empty(), "both were used");
        espeak.prepare();
        assert_eq!(espeak.standby.lock().len(), STANDBY);
        // A waiting process that died is skipped, not used.
        for child in espeak.standby.lock().iter_mut() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        let phonemes: String = espeak.phonemize(&sentences[0]).unwrap().concat();
        assert_eq!(phonemes, "ʃˈʊɹ.".nfd().collect::<String>());
    }

    #[test]
    fn flags_are_removed_and_a_missing_program_is_a_config_error() {
        assert_eq!(strip_language_flags("(fr)bɔ̃ʒuːʁ(en) jes"), "bɔ̃ʒuːʁ jes");
        let e = Phonemizer::new("/nonexistent/espeak-ng", "en-us").unwrap_err();
        assert!(e.message().contains("espeak_binary"), "{}", e.message());
        let e = Phonemizer::new("espeak-ng", "xx-nope")
            .unwrap()
            .check()
            .unwrap_err();
        assert!(e.message().contains("xx-nope"), "{}", e.message());
    }
}
