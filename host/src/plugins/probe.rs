//! `plugins list`: every library in a directory is inspected in a child process of its own
//! (`openclaw-voice plugin-worker --probe FILE`), under a time limit, so that a truncated,
//! malicious or hanging library is reported as a failure instead of crashing or hanging the
//! command.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::loader::{self, LoadError, LoadFailure, PluginDescription};
use super::worker::{describe_exit, WorkerLauncher};
use super::ScanError;

/// How long one library may take to be inspected.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A library that was inspected successfully.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ProbedPlugin {
    /// The file.
    pub path: PathBuf,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// What the plugin says of itself.
    pub info: PluginDescription,
}

/// Every library in a directory, inspected.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    /// Plugins that answered, by name.
    pub plugins: BTreeMap<String, ProbedPlugin>,
    /// Files that could not be inspected, with reasons.
    pub failures: Vec<LoadFailure>,
}

/// Inspects every library in `dir`, each in its own child process.
pub(crate) fn probe_dir(dir: &Path, launcher: &WorkerLauncher) -> Result<Probe, ScanError> {
    let files = loader::plugin_files(dir).map_err(|e| ScanError {
        dir: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut probe = Probe::default();
    for path in files {
        match probe_file(&path, launcher) {
            Ok(plugin) => match probe.plugins.get(&plugin.info.name) {
                Some(existing) => probe.failures.push(LoadFailure {
                    path,
                    error: LoadError::DuplicateName {
                        name: plugin.info.name.clone(),
                        other: existing.path.clone(),
                    },
                }),
                None => {
                    probe.plugins.insert(plugin.info.name.clone(), plugin);
                }
            },
            Err(error) => probe.failures.push(LoadFailure { path, error }),
        }
    }
    Ok(probe)
}

/// Inspects one library in a child process.
fn probe_file(path: &Path, launcher: &WorkerLauncher) -> Result<ProbedPlugin, LoadError> {
    let mut child = Command::new(&launcher.program)
        .arg("plugin-worker")
        .arg("--probe")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| LoadError::Io(format!("cannot start a child to inspect it: {e}")))?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LoadError::Info(format!(
                    "it did not finish loading within {} s (inspected in a child process, \
                     which was killed)",
                    PROBE_TIMEOUT.as_secs()
                )));
            }
            Err(e) => return Err(LoadError::Io(e.to_string())),
        }
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    match serde_json::from_str::<ProbeAnswer>(out.trim()) {
        Ok(ProbeAnswer::Plugin(plugin)) => Ok(*plugin),
        Ok(ProbeAnswer::Error(message)) => Err(LoadError::Probe(message)),
        Err(_) => Err(LoadError::Probe(format!(
            "loading it crashed the child process that inspected it: it {}",
            describe_exit(status)
        ))),
    }
}

/// What `plugin-worker --probe` prints: one JSON line.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ProbeAnswer {
    /// It loaded.
    Plugin(Box<ProbedPlugin>),
    /// It did not; the reason.
    Error(String),
}

/// The child's side: loads `path` with the verified loader and prints a [`ProbeAnswer`].
pub fn answer(path: &Path) -> i32 {
    let (answer, code) = match loader::load_plugin(path, None, loader::quiet_host_context()) {
        Ok(plugin) => (
            ProbeAnswer::Plugin(Box::new(ProbedPlugin {
                path: path.to_path_buf(),
                sha256: plugin.sha256.clone(),
                info: plugin.info.clone(),
            })),
            0,
        ),
        Err(e) => (ProbeAnswer::Error(e.to_string()), 1),
    };
    match serde_json::to_string(&answer) {
        Ok(line) => println!("{line}"),
        Err(e) => eprintln!("cannot print the probe answer: {e}"),
    }
    code
}
