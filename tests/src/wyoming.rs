//! Real Wyoming peers from PyPI, installed by `make wyoming` into `target/wyoming-venv`:
//! the wyoming-faster-whisper server (with faster-whisper's tiny.en from the models cache) on
//! a loopback port, and the venv's Python for scripts using the `wyoming` client library.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The venv `make wyoming` makes.
pub fn venv() -> PathBuf {
    let venv = crate::workspace_root().join("target/wyoming-venv");
    assert!(
        venv.join("bin/wyoming-faster-whisper").is_file(),
        "{} has no wyoming-faster-whisper: run `make wyoming`",
        venv.display()
    );
    venv
}

/// faster-whisper's tiny.en, from `make wyoming`.
pub fn faster_whisper_model() -> PathBuf {
    let dir = std::env::var_os("OPENCLAW_MODELS_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/openclaw-voice/models"))
        })
        .expect("HOME is set")
        .join("faster-whisper-tiny.en");
    assert!(
        dir.join("model.bin").is_file(),
        "{} is missing: run `make wyoming`",
        dir.display()
    );
    dir
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A running wyoming-faster-whisper, killed on drop.
pub struct FasterWhisper {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub address: String,
}

impl FasterWhisper {
    /// Starts the server and waits (90 s at most: it loads the model) until it says it is
    /// ready and accepts a connection.
    pub fn start() -> FasterWhisper {
        let port = free_port();
        let model = faster_whisper_model();
        let mut child = Command::new(venv().join("bin/wyoming-faster-whisper"))
            .arg("--uri")
            .arg(format!("tcp://127.0.0.1:{port}"))
            .arg("--model")
            .arg(&model)
            .arg("--data-dir")
            .arg(model.parent().expect("the models cache"))
            .args(["--local-files-only", "--language", "en", "--beam-size", "1"])
            .args(["--cpu-threads", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wyoming-faster-whisper");
        let stderr = child.stderr.take().expect("stderr");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Ready") {
                    let _ = ready_tx.send(());
                }
            }
        });
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(90);
        let ready = ready_rx.recv_timeout(Duration::from_secs(90)).is_ok();
        while ready && Instant::now() < deadline && TcpStream::connect(&address).is_err() {
            std::thread::sleep(Duration::from_millis(50));
        }
        if !ready {
            let _ = child.kill();
            panic!("wyoming-faster-whisper did not become ready within 90 s");
        }
        FasterWhisper { child, address }
    }
}

impl Drop for FasterWhisper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
