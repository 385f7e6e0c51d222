//! Out-of-process providers (`isolation = "process"`): the host side of a plugin worker.
//!
//! A [`Worker`] starts `openclaw-voice plugin-worker` (the same binary), hands it the library
//! and settings, and then forwards each provider call as a frame ([`protocol`]); replies are
//! routed back to the waiting call by request id by one reader thread. A worker that dies
//! (segfault, abort, stack overflow, out of memory) or hangs past a call's deadline (it is then
//! killed) fails the calls in flight with a typed `Unavailable`/`Timeout` error, which the
//! breaker counts and the failover loop acts on, and is restarted in the background with
//! exponential backoff; calls made while it is down fail at once, so turns move to the next
//! provider instead of waiting.
//!
//! **Architecture Invariant:** the host never loads a process-isolated plugin's library
//! itself; only the worker does, through the same verified loader.

pub(crate) mod protocol;
pub mod serve;

use std::collections::HashMap;
use std::io::{BufReader, BufWriter};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use plugin_api::abi::PluginError;

pub(crate) use protocol::{Reply, Request, Setup};

/// First restart delay after a worker died; doubled after each failed start, up to the max.
const RESTART_MIN: Duration = Duration::from_millis(50);
const RESTART_MAX: Duration = Duration::from_secs(10);

/// Gives the heap's free pages back to the system (glibc's `malloc_trim`). Loading a model
/// frees its parse and read buffers, and glibc keeps such pages resident until something
/// reuses them: called once a worker's provider is built and after the host's turn models
/// load (docs/BENCHMARKS.md, "Turn taking" → "Memory"). A no-op off glibc.
pub(crate) fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes a plain integer and only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How to start workers: the program (this binary, or another path in tests) and limits.
#[derive(Debug, Clone)]
pub struct WorkerLauncher {
    /// The `openclaw-voice` executable that serves `plugin-worker`.
    pub program: PathBuf,
}

impl WorkerLauncher {
    /// Workers run this very executable.
    pub fn current_exe() -> std::io::Result<WorkerLauncher> {
        Ok(WorkerLauncher {
            program: std::env::current_exe()?,
        })
    }
}

/// What a worker needs to start; kept for restarts.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSpec {
    pub launcher: WorkerLauncher,
    pub setup: Setup,
    pub setup_timeout: Duration,
    pub memory_limit_mb: Option<u64>,
}

/// What the plugin said of itself when its worker came up.
pub(crate) type WorkerInfo = super::loader::PluginDescription;

type Pending = Arc<Mutex<HashMap<u64, Sender<Reply>>>>;

/// One running worker process.
struct Live {
    child: Arc<Mutex<Child>>,
    stdin: Arc<Mutex<BufWriter<ChildStdin>>>,
    pending: Pending,
    pid: u32,
}

enum State {
    Live(Arc<Live>),
    /// Down since the reason; a restart is scheduled.
    Down(String),
}

/// A plugin worker process and its restarts.
pub(crate) struct Worker {
    spec: WorkerSpec,
    state: Mutex<State>,
    next_id: AtomicU64,
    backoff: Mutex<Duration>,
    restarts: AtomicU64,
    closed: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Worker {
    /// Starts the worker and waits for the provider to be built (within the setup timeout).
    pub(crate) fn start(spec: WorkerSpec) -> Result<(Arc<Worker>, WorkerInfo), PluginError> {
        let worker = Arc::new(Worker {
            spec,
            state: Mutex::new(State::Down("starting".into())),
            next_id: AtomicU64::new(1),
            backoff: Mutex::new(RESTART_MIN),
            restarts: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let (live, info) = spawn(&worker)?;
        *lock(&worker.state) = State::Live(live);
        Ok((worker, info))
    }

    fn provider(&self) -> &str {
        &self.spec.setup.provider
    }

    /// How many times the worker was restarted.
    pub(crate) fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The worker's process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        match &*lock(&self.state) {
            State::Live(live) => Some(live.pid),
            State::Down(_) => None,
        }
    }

    fn live(&self) -> Result<Arc<Live>, PluginError> {
        match &*lock(&self.state) {
            State::Live(live) => Ok(live.clone()),
            State::Down(reason) => Err(PluginError::unavailable(format!(
                "its worker process is down ({reason}); it is being restarted"
            ))),
        }
    }

    /// Sends `request` under a new id; replies arrive on the returned channel.
    pub(crate) fn open(self: &Arc<Self>, request: &Request) -> Result<Channel, PluginError> {
        let live = self.live()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        lock(&live.pending).insert(id, tx);
        let channel = Channel {
            worker: self.clone(),
            live,
            id,
            rx: Mutex::new(rx),
        };
        channel.send(request)?;
        Ok(channel)
    }

    /// One request, one reply, by `deadline` (the worker is killed if it misses it).
    pub(crate) fn call(
        self: &Arc<Self>,
        request: &Request,
        deadline: Instant,
    ) -> Result<Reply, PluginError> {
        let channel = self.open(request)?;
        channel.recv(deadline)
    }

    /// Kills the running worker (it hung); the reader thread then fails its calls and
    /// schedules the restart.
    fn kill(&self, live: &Live, why: &str) {
        tracing::warn!(
            provider = %self.provider(),
            pid = live.pid,
            "provider `{}`: {why}; killing its worker process and restarting it",
            self.provider()
        );
        let _ = lock(&live.child).kill();
    }

    /// Stops the worker for good (no restart); used at shutdown.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let State::Live(live) = &*lock(&self.state) {
            let _ = lock(&live.child).kill();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.close();
    }
}

/// The replies to one request (one, or a stream of them).
pub(crate) struct Channel {
    worker: Arc<Worker>,
    live: Arc<Live>,
    id: u64,
    rx: Mutex<Receiver<Reply>>,
}

impl Channel {
    /// Sends a follow-up frame under this channel's id (a push, a cancel).
    pub(crate) fn send(&self, request: &Request) -> Result<(), PluginError> {
        let mut stdin = lock(&self.live.stdin);
        protocol::write_request(&mut *stdin, self.id, request)
            .map_err(|e| PluginError::unavailable(format!("cannot reach its worker process: {e}")))
    }

    /// The next reply by `deadline`; past it the worker is killed and this is a `Timeout`.
    pub(crate) fn recv(&self, deadline: Instant) -> Result<Reply, PluginError> {
        let wait = deadline.saturating_duration_since(Instant::now());
        let answer = lock(&self.rx).recv_timeout(wait);
        match answer {
            Ok(Reply::Error(e)) => Err(e),
            Ok(reply) => Ok(reply),
            Err(RecvTimeoutError::Timeout) => {
                self.worker.kill(
                    &self.live,
                    &format!("a call got no answer within {} ms", wait.as_millis()),
                );
                Err(PluginError::timeout(format!(
                    "no answer from its worker process within {} ms (the worker was killed)",
                    wait.as_millis()
                )))
            }
            Err(RecvTimeoutError::Disconnected) => Err(PluginError::unavailable(
                "its worker process went away during the call",
            )),
        }
    }

    /// Asks the worker to cancel what this channel started.
    pub(crate) fn cancel(&self) {
        let _ = self.send(&Request::Cancel);
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        lock(&self.live.pending).remove(&self.id);
    }
}

type SpawnRequest = (Command, Sender<std::io::Result<Child>>);

/// Starts `command` from one long-lived thread. A worker asks the kernel to kill it when its
/// parent dies (`PR_SET_PDEATHSIG`), and "parent" there means the *thread* that forked it: a
/// worker started from a thread that later ends (a reader thread restarting its worker) would
/// be killed with it. This thread never ends.
fn spawn_child(command: Command) -> std::io::Result<Child> {
    static SPAWNER: std::sync::OnceLock<Mutex<Sender<SpawnRequest>>> = std::sync::OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        let started = std::thread::Builder::new()
            .name("worker-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            });
        if let Err(e) = started {
            tracing::error!("cannot start the worker spawner thread: {e}");
        }
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    let sent = lock(spawner).send((command, tx));
    sent.map_err(|_| std::io::Error::other("the worker spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("the worker spawner thread is gone"))?
}

/// Starts a worker process and waits for its `Ready`.
fn spawn(worker: &Arc<Worker>) -> Result<(Arc<Live>, WorkerInfo), PluginError> {
    let spec = &worker.spec;
    let mut command = Command::new(&spec.launcher.program);
    command
        .arg("plugin-worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(mb) = spec.memory_limit_mb {
        command.arg("--memory-limit-mb").arg(mb.to_string());
    }
    let mut child = spawn_child(command).map_err(|e| {
        PluginError::internal(format!(
            "cannot start a worker process ({} plugin-worker): {e}",
            spec.launcher.program.display()
        ))
    })?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        return Err(PluginError::internal("worker process without pipes"));
    };
    let live = Arc::new(Live {
        pid: child.id(),
        child: Arc::new(Mutex::new(child)),
        stdin: Arc::new(Mutex::new(BufWriter::new(stdin))),
        pending: Arc::new(Mutex::new(HashMap::new())),
    });
    let (ready_tx, ready_rx) = mpsc::channel();
    lock(&live.pending).insert(0, ready_tx);
    let reader_live = live.clone();
    let weak = Arc::downgrade(worker);
    let provider = spec.setup.provider.clone();
    std::thread::Builder::new()
        .name(format!("worker-{provider}"))
        .spawn(move || read_replies(stdout, reader_live, weak, provider))
        .map_err(|e| PluginError::internal(format!("cannot start a reader thread: {e}")))?;
    {
        let mut stdin = lock(&live.stdin);
        protocol::write_request(&mut *stdin, 0, &Request::Setup(spec.setup.clone()))
            .map_err(|e| PluginError::unavailable(format!("worker process: {e}")))?;
    }
    let answer = ready_rx.recv_timeout(spec.setup_timeout);
    lock(&live.pending).remove(&0);
    match answer {
        Ok(Reply::Ready(info)) => match serde_json::from_str::<WorkerInfo>(&info) {
            Ok(info) => Ok((live, info)),
            Err(e) => {
                let _ = lock(&live.child).kill();
                Err(PluginError::internal(format!(
                    "worker described the plugin unreadably: {e}"
                )))
            }
        },
        Ok(Reply::Error(e)) => Err(e),
        Ok(other) => Err(PluginError::internal(format!(
            "worker answered its setup with {other:?}"
        ))),
        Err(RecvTimeoutError::Timeout) => {
            let _ = lock(&live.child).kill();
            Err(PluginError::timeout(format!(
                "loading the plugin and building the provider did not finish within {} s",
                spec.setup_timeout.as_secs_f64()
            )))
        }
        Err(RecvTimeoutError::Disconnected) => Err(PluginError::unavailable(format!(
            "its worker process died while loading the plugin ({})",
            exit_reason(&live.child)
        ))),
    }
}

/// The reader thread: routes replies by id; when the worker's output ends, fails what is in
/// flight, says why the worker ended, and restarts it.
fn read_replies(stdout: ChildStdout, live: Arc<Live>, worker: Weak<Worker>, provider: String) {
    let mut input = BufReader::new(stdout);
    loop {
        match protocol::read_reply(&mut input) {
            Ok(Some((0, Reply::Log(level, target, message)))) => {
                log_record(&provider, level, &target, &message)
            }
            Ok(Some((id, reply))) => {
                let tx = lock(&live.pending).get(&id).cloned();
                if let Some(tx) = tx {
                    let _ = tx.send(reply);
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(provider = %provider, "bad frame from its worker process: {e}");
                let _ = lock(&live.child).kill();
                break;
            }
        }
    }
    let reason = exit_reason(&live.child);
    let failed: Vec<Sender<Reply>> = lock(&live.pending).drain().map(|(_, tx)| tx).collect();
    for tx in failed {
        let _ = tx.send(Reply::Error(PluginError::unavailable(format!(
            "its worker process {reason} during the call"
        ))));
    }
    if let Some(worker) = worker.upgrade() {
        restart(&worker, &live, reason);
    }
}

/// Marks the worker down and starts a new one after the backoff (in this thread).
fn restart(worker: &Arc<Worker>, dead: &Arc<Live>, reason: String) {
    {
        let mut state = lock(&worker.state);
        match &*state {
            State::Live(current) if Arc::ptr_eq(current, dead) => {
                *state = State::Down(reason.clone());
            }
            _ => return,
        }
    }
    if worker.closed.load(Ordering::SeqCst) {
        return;
    }
    tracing::error!(
        provider = %worker.provider(),
        pid = dead.pid,
        "provider `{}`: its worker process {reason}; restarting it",
        worker.provider()
    );
    loop {
        let delay = *lock(&worker.backoff);
        std::thread::sleep(delay);
        if worker.closed.load(Ordering::SeqCst) {
            return;
        }
        match spawn(worker) {
            Ok((live, _)) => {
                worker.restarts.fetch_add(1, Ordering::Relaxed);
                *lock(&worker.backoff) = RESTART_MIN;
                tracing::info!(provider = %worker.provider(), pid = live.pid, "provider `{}`: worker process restarted", worker.provider());
                *lock(&worker.state) = State::Live(live);
                return;
            }
            Err(e) => {
                let mut backoff = lock(&worker.backoff);
                *backoff = (*backoff * 2).min(RESTART_MAX);
                tracing::warn!(provider = %worker.provider(), "provider `{}`: restarting its worker failed: {e}; next try in {} ms", worker.provider(), backoff.as_millis());
                *lock(&worker.state) = State::Down(format!("restart failed: {e}"));
            }
        }
    }
}

/// Waits briefly for the child to end and says how it ended.
fn exit_reason(child: &Mutex<Child>) -> String {
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        let status = lock(child).try_wait();
        match status {
            Ok(Some(status)) => return describe_exit(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let mut child = lock(child);
                let _ = child.kill();
                return match child.wait() {
                    Ok(status) => describe_exit(status),
                    Err(e) => format!("stopped answering ({e})"),
                };
            }
            Err(e) => return format!("ended ({e})"),
        }
    }
}

/// How a child process ended, in words (with the signal's meaning).
pub(crate) fn describe_exit(status: std::process::ExitStatus) -> String {
    if let Some(signal) = status.signal() {
        let name = match signal {
            libc::SIGSEGV => " (SIGSEGV: invalid memory access)",
            libc::SIGABRT => " (SIGABRT: abort, e.g. out of memory or a stack overflow)",
            libc::SIGBUS => " (SIGBUS)",
            libc::SIGKILL => " (SIGKILL)",
            libc::SIGILL => " (SIGILL)",
            libc::SIGFPE => " (SIGFPE)",
            _ => "",
        };
        format!("was killed by signal {signal}{name}")
    } else {
        match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => "ended".into(),
        }
    }
}

fn log_record(provider: &str, level: u8, target: &str, message: &str) {
    super::loader::emit_plugin_log(protocol::level_from(level), provider, target, message);
}
