//! Running the `espeak-ng` command-line program: finding it, building its arguments, the
//! short commands (`--version`, `--voices`, a voice check) and parsing their output.
//!
//! Text never goes on the command line: it is written to the child's stdin (`--stdin`, read
//! at once until end of file), so text starting with `-` cannot be taken for an option and
//! long text is not limited by the argument size or split at espeak-ng's 1000-byte line
//! buffer.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use plugin_api::prelude::*;

use crate::wav::WavError;

/// How long the short commands (`--version`, `--voices`, a voice check) may take.
pub const SHORT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this much of the child's stderr is kept for error messages.
const STDERR_LIMIT: u64 = 4096;

/// Errors from running espeak-ng.
#[derive(Debug)]
pub enum EngineError {
    /// The program could not be started.
    Spawn {
        /// The program, as configured.
        binary: String,
        /// Why it could not start.
        source: io::Error,
    },
    /// It exited with a failure status.
    Failed {
        /// The program, as configured.
        binary: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it wrote on stderr (trimmed, possibly cut).
        stderr: String,
    },
    /// It refused the voice.
    UnknownVoice {
        /// The voice asked for.
        voice: String,
    },
    /// It did not finish, or wrote nothing, for too long.
    Timeout {
        /// The program, as configured.
        binary: String,
        /// The limit that ran out.
        after: Duration,
    },
    /// Talking to it through its pipes failed.
    Io {
        /// The program, as configured.
        binary: String,
        /// The I/O error.
        source: io::Error,
    },
    /// Its audio output could not be decoded.
    Wav {
        /// The program, as configured.
        binary: String,
        /// The decoding error.
        source: WavError,
    },
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Spawn { binary, source } if source.kind() == io::ErrorKind::NotFound => {
                write!(
                    f,
                    "the espeak-ng program `{binary}` was not found; install it \
                     (`apt-get install espeak-ng`) or set `binary` to its full path"
                )
            }
            EngineError::Spawn { binary, source } => {
                write!(f, "could not start `{binary}`: {source}")
            }
            EngineError::Failed {
                binary,
                status,
                stderr,
            } => {
                write!(f, "`{binary}` failed ({status})")?;
                if !stderr.is_empty() {
                    write!(f, ": {stderr}")?;
                }
                Ok(())
            }
            EngineError::UnknownVoice { voice } => write!(
                f,
                "espeak-ng has no voice `{voice}`; `espeak-ng --voices` lists them \
                 (e.g. `en-us`, `en-gb`, `de`, `en-us+f3`)"
            ),
            EngineError::Timeout { binary, after } => {
                write!(
                    f,
                    "`{binary}` did not answer within {} ms",
                    after.as_millis()
                )
            }
            EngineError::Io { binary, source } => {
                write!(f, "I/O error talking to `{binary}`: {source}")
            }
            EngineError::Wav { binary, source } => {
                write!(f, "`{binary}` wrote unreadable audio: {source}")
            }
        }
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EngineError::Spawn { source, .. } | EngineError::Io { source, .. } => Some(source),
            EngineError::Wav { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Who chose the voice: decides whether an unknown voice is a config or an input error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceOrigin {
    /// The provider's settings.
    Settings,
    /// The caller's [`SynthesisOptions`].
    Request,
}

impl EngineError {
    /// The plugin error the host sees.
    pub fn into_plugin_error(self, origin: VoiceOrigin) -> PluginError {
        let message = self.to_string();
        match self {
            EngineError::Spawn { .. } => PluginError::unavailable(message).with_retryable(false),
            EngineError::UnknownVoice { .. } => match origin {
                VoiceOrigin::Settings => PluginError::config(message),
                VoiceOrigin::Request => PluginError::invalid_input(message),
            },
            EngineError::Timeout { .. } => PluginError::timeout(message),
            EngineError::Failed { .. } | EngineError::Io { .. } | EngineError::Wav { .. } => {
                PluginError::unavailable(message)
            }
        }
    }
}

/// Finds `binary` the way a shell would: a name with a `/` is a path, anything else is looked
/// up on `PATH`. Returns the executable's path.
pub fn resolve_binary(binary: &str) -> Result<PathBuf, PluginError> {
    if binary.is_empty() {
        return Err(PluginError::config("`binary` must not be empty"));
    }
    if let Some(path) = plugin_api::sdk::find_program(binary) {
        return Ok(path);
    }
    if binary.contains('/') {
        return Err(PluginError::config(format!(
            "the espeak-ng program `{binary}` (setting `binary`) does not exist or is not \
             executable; install it with `apt-get install espeak-ng`"
        )));
    }
    Err(PluginError::config(format!(
        "the espeak-ng program `{binary}` (setting `binary`) was not found on PATH; install \
         it with `apt-get install espeak-ng` or set `binary` to its full path"
    )))
}

/// How to speak: the voice and prosody passed to espeak-ng.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prosody {
    /// Voice name (`-v`).
    pub voice: String,
    /// Words per minute (`-s`).
    pub rate: u32,
    /// Pitch, 0 to 99 (`-p`).
    pub pitch: u32,
    /// Amplitude, 0 to 200 (`-a`).
    pub amplitude: u32,
}

/// The espeak-ng program, found and ready to run.
#[derive(Debug, Clone)]
pub struct Espeak {
    /// The executable's path.
    path: PathBuf,
    /// The name as configured, for messages.
    name: String,
}

impl Espeak {
    /// Finds `binary` (see [`resolve_binary`]).
    pub fn locate(binary: &str) -> Result<Self, PluginError> {
        Ok(Espeak {
            path: resolve_binary(binary)?,
            name: binary.to_string(),
        })
    }

    /// The name as configured.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that reads text on stdin and writes a WAV stream on stdout.
    pub fn synthesis_command(&self, prosody: &Prosody) -> Command {
        let mut command = Command::new(&self.path);
        command
            .arg("-v")
            .arg(&prosody.voice)
            .arg("-s")
            .arg(prosody.rate.to_string())
            .arg("-p")
            .arg(prosody.pitch.to_string())
            .arg("-a")
            .arg(prosody.amplitude.to_string())
            .args(["-b", "1", "--stdin", "--stdout"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// `espeak-ng --version`: its first line, e.g. `eSpeak NG text-to-speech: 1.51 ...`.
    pub fn version(&self) -> Result<String, EngineError> {
        let output = self.run(&["--version"], SHORT_COMMAND_TIMEOUT)?;
        Ok(String::from_utf8_lossy(&output)
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "))
    }

    /// `espeak-ng --voices`, parsed.
    pub fn voices(&self) -> Result<Vec<Voice>, EngineError> {
        let output = self.run(&["--voices"], SHORT_COMMAND_TIMEOUT)?;
        Ok(parse_voices(&String::from_utf8_lossy(&output)))
    }

    /// Checks that espeak-ng accepts `voice`, without synthesizing anything.
    pub fn check_voice(&self, voice: &str) -> Result<(), EngineError> {
        // `-q` makes no sound; the empty text argument keeps it from reading stdin.
        self.run(&["-q", "-v", voice, ""], SHORT_COMMAND_TIMEOUT)
            .map(|_| ())
            .map_err(|e| classify_failure(e, voice))
    }

    /// Runs espeak-ng with `args` and no input; returns its stdout.
    fn run(&self, args: &[&str], timeout: Duration) -> Result<Vec<u8>, EngineError> {
        let mut child = Command::new(&self.path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| self.spawn_error(source))?;
        let stdout = child.stdout.take().map(read_all_in_thread);
        let stderr = child.stderr.take().map(read_stderr_in_thread);
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    kill(&mut child);
                    return Err(EngineError::Timeout {
                        binary: self.name.clone(),
                        after: timeout,
                    });
                }
                Ok(None) => thread::sleep(Duration::from_millis(2)),
                Err(source) => {
                    kill(&mut child);
                    return Err(self.io_error(source));
                }
            }
        };
        let stdout = match stdout.map(|h| h.join()) {
            Some(Ok(Ok(bytes))) => bytes,
            Some(Ok(Err(source))) => return Err(self.io_error(source)),
            _ => Vec::new(),
        };
        let stderr = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
        if status.success() {
            Ok(stdout)
        } else {
            Err(EngineError::Failed {
                binary: self.name.clone(),
                status,
                stderr,
            })
        }
    }

    /// An [`EngineError::Spawn`] for this program.
    pub fn spawn_error(&self, source: io::Error) -> EngineError {
        EngineError::Spawn {
            binary: self.name.clone(),
            source,
        }
    }

    /// An [`EngineError::Io`] for this program.
    pub fn io_error(&self, source: io::Error) -> EngineError {
        EngineError::Io {
            binary: self.name.clone(),
            source,
        }
    }
}

/// Turns a failure that says the voice does not exist into [`EngineError::UnknownVoice`].
pub fn classify_failure(error: EngineError, voice: &str) -> EngineError {
    match error {
        EngineError::Failed { ref stderr, .. } if stderr.to_lowercase().contains("voice") => {
            EngineError::UnknownVoice {
                voice: voice.to_string(),
            }
        }
        other => other,
    }
}

/// Kills and reaps `child`, ignoring errors (it may have exited already).
pub fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Writes `text` to the child's stdin and closes it. espeak-ng with `--stdin` reads all input
/// before writing any output, so this cannot deadlock against a full stdout pipe.
pub fn feed_stdin(child: &mut Child, text: &str) -> io::Result<()> {
    let Some(mut stdin) = child.stdin.take() else {
        return Ok(());
    };
    let result = stdin
        .write_all(text.as_bytes())
        .and_then(|()| stdin.write_all(b"\n"));
    match result {
        // The child exited early (a bad voice): its exit status tells why.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn read_all_in_thread(
    mut pipe: impl Read + Send + 'static,
) -> thread::JoinHandle<io::Result<Vec<u8>>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        pipe.read_to_end(&mut bytes)?;
        Ok(bytes)
    })
}

/// Reads a child's stderr to its end in a thread, keeping the first [`STDERR_LIMIT`] bytes.
pub fn read_stderr_in_thread(pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut pipe = pipe;
        let mut kept = Vec::new();
        let _ = (&mut pipe).take(STDERR_LIMIT).read_to_end(&mut kept);
        // Drain the rest so the child never blocks on a full pipe.
        let _ = io::copy(&mut pipe, &mut io::sink());
        String::from_utf8_lossy(&kept)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// Parses the table `espeak-ng --voices` prints:
///
/// ```text
/// Pty Language       Age/Gender VoiceName          File                 Other Languages
///  2  en-us           --/M      English_(America)  gmw/en-US            (en 3)
/// ```
///
/// Each voice's id is its language code (what `-v` takes); duplicates keep the first.
pub fn parse_voices(table: &str) -> Vec<Voice> {
    let mut voices: Vec<Voice> = Vec::new();
    for line in table.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [priority, language, _age_gender, name, ..] = fields[..] else {
            continue;
        };
        if priority.parse::<u32>().is_err() {
            continue; // the header line
        }
        if voices.iter().any(|v| v.id.as_str() == language) {
            continue;
        }
        voices.push(Voice::new(language, name.replace('_', " ")).with_language(language));
    }
    voices
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_voice_table() {
        let table = "\
Pty Language       Age/Gender VoiceName          File                 Other Languages
 5  af              --/M      Afrikaans          gmw/af
 2  en-us           --/M      English_(America)  gmw/en-US            (en 3)
 5  en-us-nyc       --/M      English_(America,_New_York_City) gmw/en-US-nyc
 5  en-us           --/F      Duplicate          x/y
garbage line
";
        let voices = parse_voices(table);
        let ids: Vec<&str> = voices.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, ["af", "en-us", "en-us-nyc"]);
        assert_eq!(voices[1].name.as_str(), "English (America)");
        assert_eq!(
            voices[2]
                .language
                .as_ref()
                .map(|l| l.as_str())
                .into_option(),
            Some("en-us-nyc")
        );
    }

    #[test]
    fn missing_binary_is_a_config_error_that_says_how_to_install() {
        let err = resolve_binary("espeak-ng-definitely-not-installed").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(err.message().contains("espeak-ng-definitely-not-installed"));
        assert!(err.message().contains("apt-get install espeak-ng"));
        let err = resolve_binary("/nonexistent/espeak-ng").unwrap_err();
        assert!(err.message().contains("/nonexistent/espeak-ng"));
    }

    #[test]
    fn real_espeak_reports_version_and_voices() {
        let espeak = Espeak::locate("espeak-ng").unwrap();
        assert!(espeak.version().unwrap().contains("eSpeak NG"));
        let voices = espeak.voices().unwrap();
        assert!(
            voices.iter().any(|v| v.id.as_str() == "en-us"),
            "{voices:?}"
        );
        espeak.check_voice("en-us").unwrap();
        espeak.check_voice("en-us+f3").unwrap();
        assert!(matches!(
            espeak.check_voice("xx-nope"),
            Err(EngineError::UnknownVoice { .. })
        ));
    }
}
