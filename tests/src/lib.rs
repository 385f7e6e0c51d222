//! Shared support for OpenClaw Voice's integration tests and benchmarks.
//!
//! The tests drive what users run: the real `openclaw-voice` binary and real plugin libraries
//! (`cdylib`s) loaded from disk. `cargo test` does not build the `cdylib`s of other workspace
//! members, so the project's test command is `cargo build --workspace && cargo test
//! --workspace`; the helpers here find the build outputs next to the test executable (in
//! `target/<profile>`) and fail with a message saying what to build when one is missing.
//!
//! - [`profile_dir`], [`library`], [`binary`]: where the build outputs are.
//! - [`PluginDir`]: a temporary plugin directory holding copies of chosen libraries and bad
//!   files.
//! - [`ConfigDir`]: a temporary configuration directory.
//! - [`openclaw_voice`]: runs the binary with a clean environment and captures its output.
//! - [`fake_cloud`]: local fake servers for the cloud speech APIs (OpenAI, ElevenLabs).
//! - [`fake_discord`]: a local fake Discord (REST, gateway, voice gateway over TLS, RTP over
//!   UDP) that the real bot connects to.
//! - [`Running`]: the binary started in the background (a server), its output collected as it
//!   comes, signals sent with `kill`.
//! - [`http_get`]: a minimal HTTP/1.1 client for the ops endpoints (loopback only).
//! - [`moto`]: moto_server, the local CloudWatch Logs API, and reading a log stream back.
//! - [`wyoming`]: the real wyoming-faster-whisper server and the `wyoming` client's Python.

pub mod fake_cloud;
pub mod fake_discord;
pub mod moto;
pub mod wer;
pub mod wyoming;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Library name of the `fault` test plugin (`tests/plugins/fault`).
pub const FAULT: &str = "openclaw_test_plugin_fault";
/// Library name of the `stall` test plugin (`tests/plugins/stall`): misbehaves while loading.
pub const STALL: &str = "openclaw_test_plugin_stall";
/// Library name of the `tone` example plugin (`examples/tone-tts`).
pub const TONE: &str = "openclaw_plugin_tone";
/// Library name of the library that is not a plugin (`tests/plugins/not-a-plugin`).
pub const NOT_A_PLUGIN: &str = "openclaw_test_not_a_plugin";
/// Library name of the `openai-whisper` plugin (`plugins/openai-whisper`).
pub const OPENAI_WHISPER: &str = "openclaw_plugin_openai_whisper";
/// Library name of the `elevenlabs` plugin (`plugins/elevenlabs`).
pub const ELEVENLABS: &str = "openclaw_plugin_elevenlabs";
/// Library name of the `wyoming` plugin (`plugins/wyoming`).
pub const WYOMING: &str = "openclaw_plugin_wyoming";
/// Library name of the `piper` plugin (`plugins/piper`).
pub const PIPER: &str = "openclaw_plugin_piper";
/// Library name of the `local-whisper` plugin (`plugins/local-whisper`).
pub const LOCAL_WHISPER: &str = "openclaw_plugin_local_whisper";
/// Library name of the `espeak` plugin (`plugins/espeak`).
pub const ESPEAK: &str = "openclaw_plugin_espeak";
/// Library name of the `openai-tts` plugin (`plugins/openai-tts`).
pub const OPENAI_TTS: &str = "openclaw_plugin_openai_tts";

/// The workspace root (the directory holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives one level below the workspace root")
        .to_path_buf()
}

/// The build directory of the running test or benchmark: `target/debug` under `cargo test`,
/// `target/release` under `cargo bench`. Found from the executable's own path
/// (`target/<profile>/deps/<name>-<hash>`), which honours `CARGO_TARGET_DIR` and profiles.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the path of the running test executable");
    let deps = exe
        .parent()
        .expect("the test executable lives in a directory");
    if deps.file_name() == Some(OsStr::new("deps")) {
        if let Some(dir) = deps.parent() {
            return dir.to_path_buf();
        }
    }
    // Not run by cargo from target/<profile>/deps: fall back to the default layout.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("debug")
}

/// The profile's name (`debug`, `release`) as cargo spells it in build commands.
fn build_hint(dir: &Path) -> String {
    match dir.file_name().and_then(OsStr::to_str) {
        Some("debug") | None => "cargo build --workspace".to_string(),
        Some("release") => "cargo build --release --workspace".to_string(),
        Some(other) => format!("cargo build --profile {other} --workspace"),
    }
}

/// The built `cdylib` `lib<name>.so` (platform naming) in [`profile_dir`].
///
/// # Panics
///
/// When it has not been built, with the command that builds it.
pub fn library(name: &str) -> PathBuf {
    let dir = profile_dir();
    let file = format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let path = dir.join(&file);
    assert!(
        path.is_file(),
        "{} is missing: `cargo test` does not build plugin libraries; run `{}` first",
        path.display(),
        build_hint(&dir)
    );
    path
}

/// The built `openclaw-voice` binary in [`profile_dir`].
///
/// # Panics
///
/// When it has not been built, with the command that builds it.
pub fn binary() -> PathBuf {
    let dir = profile_dir();
    let path = dir.join(format!("openclaw-voice{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing; run `{}` first",
        path.display(),
        build_hint(&dir)
    );
    path
}

/// A temporary plugin directory, removed when dropped.
pub struct PluginDir {
    dir: tempfile::TempDir,
}

impl PluginDir {
    /// An empty directory.
    pub fn new() -> Self {
        PluginDir {
            dir: tempfile::Builder::new()
                .prefix("ocv-plugins-")
                .tempdir()
                .expect("create a temporary plugin directory"),
        }
    }

    /// A directory holding copies of the built libraries `names` (see [`library`]).
    pub fn with(names: &[&str]) -> Self {
        let dir = Self::new();
        for name in names {
            dir.add(name);
        }
        dir
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Copies the built library `name` in, under its own file name; returns the copy's path.
    pub fn add(&self, name: &str) -> PathBuf {
        let source = library(name);
        let file = source.file_name().expect("a library has a file name");
        self.add_as(&source, file)
    }

    /// Copies `source` in as `file_name`; returns the copy's path.
    pub fn add_as(&self, source: &Path, file_name: impl AsRef<OsStr>) -> PathBuf {
        let target = self.dir.path().join(file_name.as_ref());
        std::fs::copy(source, &target)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", source.display(), target.display()));
        target
    }

    /// Writes a file with `bytes` (a bad "library"); returns its path.
    pub fn write(&self, file_name: &str, bytes: &[u8]) -> PathBuf {
        let target = self.dir.path().join(file_name);
        std::fs::write(&target, bytes)
            .unwrap_or_else(|e| panic!("write {}: {e}", target.display()));
        target
    }
}

impl Default for PluginDir {
    fn default() -> Self {
        Self::new()
    }
}

/// A temporary configuration directory (`--config-dir`), removed when dropped.
pub struct ConfigDir {
    dir: tempfile::TempDir,
}

impl ConfigDir {
    /// An empty directory.
    pub fn new() -> Self {
        ConfigDir {
            dir: tempfile::Builder::new()
                .prefix("ocv-config-")
                .tempdir()
                .expect("create a temporary config directory"),
        }
    }

    /// A directory whose `default.toml` turns the turn-taking models off (the loudness gate
    /// and a fixed silence, `silence_hangover_ms`): for tests about something else whose
    /// input is a tone (not speech to Silero VAD), whose pause must not end a turn, or that
    /// count speech-to-text calls (speculative transcription calls the provider at each
    /// pause). Their own `test.toml` goes on top.
    pub fn energy_endpointing() -> Self {
        let dir = Self::new();
        dir.write(
            "default.toml",
            "[pipeline]\nvad = \"energy\"\nturn_model = \"none\"\n",
        );
        dir
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `<name>` (e.g. `default.toml`, `test.toml`) with `text`; returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

impl Default for ConfigDir {
    fn default() -> Self {
        Self::new()
    }
}

/// Quotes a path for a TOML basic string.
pub fn toml_path(path: &Path) -> String {
    let text = path.display().to_string();
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// What a run of the binary did.
#[derive(Debug)]
pub struct Run {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

impl Run {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout and stderr together, for searching.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the `openclaw-voice` binary with `args` and the extra environment `env`, in a clean
/// environment: every `OPENCLAW*` variable and `LOG_LEVEL` of the caller is removed, so the
/// developer's shell cannot change the result.
pub fn openclaw_voice<I, S>(args: I, env: &[(&str, &str)]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = command(args, env)
        .output()
        .expect("run the openclaw-voice binary");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The binary with `args`, in a clean environment (see [`openclaw_voice`]) plus `env`.
fn command<I, S>(args: I, env: &[(&str, &str)]) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(binary());
    command.args(args);
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("OPENCLAW")
            || name == "LOG_LEVEL"
            || name.starts_with("SENTRY_")
            || name.eq_ignore_ascii_case("http_proxy")
            || name.eq_ignore_ascii_case("https_proxy")
        {
            command.env_remove(&key);
        }
    }
    command.envs(env.iter().copied());
    command
}

/// The binary running in the background, its stdout and stderr collected as they come.
/// Killed when dropped if it is still running.
pub struct Running {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn collect(
    stream: impl Read + Send + 'static,
    into: Arc<Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            into.lock().expect("output buffer").push_str(&line);
            line.clear();
        }
    })
}

impl Running {
    /// Starts the binary with `args` and the extra environment `env` (clean otherwise).
    pub fn spawn<I, S>(args: I, env: &[(&str, &str)]) -> Running
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = command(args, env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the openclaw-voice binary");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().expect("piped stdout"), stdout.clone()),
            collect(child.stderr.take().expect("piped stderr"), stderr.clone()),
        ];
        Running {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("output buffer").clone()
    }

    /// stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("output buffer").clone()
    }

    /// Waits until stderr contains `needle`; false when `timeout` passes or the process
    /// exits first.
    pub fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.stderr().contains(needle) {
                return true;
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                // Let the readers drain what it wrote last.
                std::thread::sleep(Duration::from_millis(50));
                return self.stderr().contains(needle);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The ops server's address, from the line the binary prints when it starts listening.
    ///
    /// # Panics
    ///
    /// When no such line comes within `timeout`, with the output so far.
    pub fn ops_addr(&mut self, timeout: Duration) -> SocketAddr {
        const PLAIN: &str = "ops server listening on http://";
        const JSON: &str = "\"ops_addr\":\"";
        let end = Instant::now() + timeout;
        loop {
            let stderr = self.stderr();
            for line in stderr.lines() {
                let rest = line
                    .split_once(PLAIN)
                    .or_else(|| line.split_once(JSON))
                    .map(|(_, rest)| rest);
                if let Some(addr) = rest
                    .and_then(|r| r.split(|c: char| c.is_whitespace() || c == '"').next())
                    .and_then(|a| a.parse().ok())
                {
                    return addr;
                }
            }
            let exited = matches!(self.child.try_wait(), Ok(Some(_)));
            assert!(
                Instant::now() < end && !exited,
                "no ops server address on stderr (exited: {exited})\n--- stdout ---\n{}--- stderr ---\n{}",
                self.stdout(),
                stderr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (`TERM`, `INT`) with `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {}", self.pid());
    }

    /// Waits for the exit at most `timeout`; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Option<i32>> {
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code());
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the exit (killing it after `timeout`) and returns what it did.
    pub fn finish(mut self, timeout: Duration) -> Run {
        let code = match self.wait_timeout(timeout) {
            Some(code) => code,
            None => {
                let _ = self.child.kill();
                self.child.wait().ok().and_then(|s| s.code())
            }
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Run {
            code,
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// The header block, as received.
    pub headers: String,
    /// The body (chunked encoding undone).
    pub body: String,
}

/// `GET path` from `addr`, with `Authorization: Bearer <token>` when given. Loopback only;
/// every read and write is bounded by a 10 s timeout.
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let bad = |what: &str| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what}: {text}"))
    };
    let (headers, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let status = headers
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let body = if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(HttpResponse {
        status,
        headers: headers.to_string(),
        body,
    })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The Whisper test model: `OPENCLAW_TEST_MODEL`, else `models/` (from `make model`), else the
/// shared mirror beside the checkout.
///
/// # Panics
///
/// When none is there, saying how to get one.
pub fn whisper_model() -> PathBuf {
    let root = workspace_root();
    [
        std::env::var_os("OPENCLAW_TEST_MODEL").map(PathBuf::from),
        Some(root.join("models/ggml-tiny.en.bin")),
        Some(root.join("../shared/models/ggml-tiny.en.bin")),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.is_file())
    .expect("the tiny.en model: run `make model` (or set OPENCLAW_TEST_MODEL)")
}

/// Speech for `text` made by espeak-ng (22050 Hz mono WAV), written to `dir/name`.
///
/// # Panics
///
/// When espeak-ng is missing or fails.
pub fn espeak_speech(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new("espeak-ng")
        .args(["-s", "165", "-w"])
        .arg(&path)
        .arg(text)
        .status()
        .expect("espeak-ng is installed (`make deps`)");
    assert!(status.success(), "espeak-ng failed for {text:?}");
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_says_what_to_build() {
        let panic = std::panic::catch_unwind(|| library("openclaw_no_such_plugin"))
            .expect_err("a missing library panics");
        let message = panic.downcast_ref::<String>().expect("a formatted message");
        assert!(
            message.contains("libopenclaw_no_such_plugin.so is missing"),
            "{message}"
        );
        let hint = format!("run `{}` first", build_hint(&profile_dir()));
        assert!(message.contains(&hint), "{message}");
        if profile_dir().ends_with("debug") {
            assert!(
                message.contains("run `cargo build --workspace` first"),
                "{message}"
            );
        }
    }

    #[test]
    fn build_outputs_are_found_next_to_the_test_executable() {
        let dir = profile_dir();
        let exe = std::env::current_exe().expect("the test executable");
        assert!(
            exe.starts_with(dir.join("deps")),
            "{} in {}",
            exe.display(),
            dir.display()
        );
        assert!(binary().starts_with(&dir));
    }
}
