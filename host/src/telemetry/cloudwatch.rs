//! The CloudWatch Logs sink (`[logging.cloudwatch]`): every log line, already scrubbed like on
//! stderr, also goes to a log stream through `PutLogEvents` of the official AWS SDK.
//!
//! - **Never blocks a turn.** [`push`] is a `try_send` into a bounded channel
//!   (`buffer_events`); when it is full the line is dropped and counted
//!   (`log_events_dropped_total`). Everything else happens on the sink's own thread, with its
//!   own single-threaded tokio runtime.
//! - **Within the service's limits.** [`Batcher`] cuts batches at 10,000 events, 1,048,576
//!   bytes (each event's UTF-8 size plus 26 bytes) and a 24-hour span, and sorts each batch
//!   chronologically; a line longer than an event may be is truncated.
//! - **Retries with backoff**: the SDK's standard retry strategy (exponential backoff with
//!   jitter, `max_retries` + 1 attempts), plus one retry after creating a missing stream. A
//!   batch that still fails, and events the service rejects, are counted as dropped.
//! - **Flushed on shutdown** within the deadline given to [`shutdown`]; what could not be sent
//!   by then is counted as dropped, and a summary line goes to stderr.
//! - Credentials, region and endpoint come from the standard AWS chain and variables
//!   (`AWS_ENDPOINT_URL` included), never from the configuration files.
//!
//! Lines logged by the sink's own thread (its warnings, the SDK's events) go to stderr only,
//! so a failing endpoint cannot feed the sink with its own errors.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_sdk_cloudwatchlogs::Client;
use tokio::sync::mpsc;

use crate::config::CloudWatchConfig;

/// Most events in one `PutLogEvents` call.
pub(crate) const MAX_BATCH_EVENTS: usize = 10_000;
/// Most bytes in one call: the messages' UTF-8 bytes plus [`EVENT_OVERHEAD`] per event.
pub(crate) const MAX_BATCH_BYTES: usize = 1_048_576;
/// Bytes the service adds to each event when it counts a batch's size.
pub(crate) const EVENT_OVERHEAD: usize = 26;
/// Most bytes of one event (message plus overhead).
pub(crate) const MAX_EVENT_BYTES: usize = 262_144;
/// Longest time between a batch's first and last event.
pub(crate) const MAX_BATCH_SPAN_MS: i64 = 24 * 3600 * 1000;

static SENT: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static SINK: OnceLock<Sink> = OnceLock::new();

thread_local! {
    /// Set on the sink's own threads: their lines stay off the sink.
    static SINK_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// One log line with its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The scrubbed line, without its newline.
    pub message: String,
}

impl Event {
    /// The size the service counts for this event.
    pub fn size(&self) -> usize {
        self.message.len() + EVENT_OVERHEAD
    }
}

/// Events sent and dropped since the process started: `(sent, dropped)`.
pub fn counters() -> (u64, u64) {
    (
        SENT.load(Ordering::Relaxed),
        DROPPED.load(Ordering::Relaxed),
    )
}

/// Whether the sink is installed.
pub fn installed() -> bool {
    SINK.get().is_some()
}

/// The stream name for this process.
pub(crate) fn stream_name(template: &str, env: &str, shards: Option<&str>) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    template
        .replace("{host}", &host)
        .replace("{shards}", shards.unwrap_or("all"))
        .replace("{env}", env)
        .replace("{pid}", &std::process::id().to_string())
        .replace([':', '*'], "_")
}

/// The sink's settings, resolved from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Log group.
    pub log_group: String,
    /// Log stream (the template filled in).
    pub log_stream: String,
    /// Region, when the configuration names one.
    pub region: Option<String>,
    /// Time between sends.
    pub flush_interval: Duration,
    /// Channel capacity.
    pub buffer_events: usize,
    /// Retries of a failed call.
    pub max_retries: u32,
    /// Create a missing log group.
    pub create_log_group: bool,
}

impl Settings {
    /// Settings from `[logging.cloudwatch]`.
    pub fn from_config(c: &CloudWatchConfig, env: &str, shards: Option<&str>) -> Settings {
        Settings {
            log_group: c.log_group.clone(),
            log_stream: stream_name(&c.stream, env, shards),
            region: c.region.clone(),
            flush_interval: Duration::from_millis(c.flush_interval_ms),
            buffer_events: c.buffer_events,
            max_retries: c.max_retries,
            create_log_group: c.create_log_group,
        }
    }
}

enum Control {
    /// Send what is left before the deadline, then stop.
    Flush(Instant, std::sync::mpsc::Sender<()>),
}

struct Sink {
    events: mpsc::Sender<Event>,
    control: Mutex<Option<mpsc::UnboundedSender<Control>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Starts the sink (once per process; later calls are ignored). Returns an error only when
/// its thread cannot be started.
pub fn install(settings: Settings) -> std::io::Result<()> {
    if SINK.get().is_some() {
        return Ok(());
    }
    let (events, rx) = mpsc::channel(settings.buffer_events);
    let (control, control_rx) = mpsc::unbounded_channel();
    let thread = std::thread::Builder::new()
        .name("cloudwatch-logs".into())
        .spawn(move || run(settings, rx, control_rx))?;
    let _ = SINK.set(Sink {
        events,
        control: Mutex::new(Some(control)),
        thread: Mutex::new(Some(thread)),
    });
    Ok(())
}

/// Hands a scrubbed line to the sink, if installed, without ever waiting: a full buffer
/// drops the line and counts it. Lines from the sink's own threads are ignored.
pub fn push(line: &str) {
    let Some(sink) = SINK.get() else {
        return;
    };
    if SINK_THREAD.with(Cell::get) {
        return;
    }
    let message = strip_ansi(line.trim_end_matches(['\n', '\r']));
    if message.is_empty() {
        return;
    }
    let event = Event {
        timestamp_ms: now_ms(),
        message,
    };
    if sink.events.try_send(event).is_err() {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends what is buffered, waiting at most `timeout`, and stops the sink; prints a summary
/// (sent, dropped) on stderr. Returns whether everything was sent. Does nothing (`true`) when
/// the sink is not installed or already stopped.
pub fn shutdown(timeout: Duration) -> bool {
    let Some(sink) = SINK.get() else {
        return true;
    };
    let control = match sink.control.lock() {
        Ok(mut c) => c.take(),
        Err(p) => p.into_inner().take(),
    };
    let Some(control) = control else {
        return true;
    };
    let deadline = Instant::now() + timeout;
    let (done, done_rx) = std::sync::mpsc::channel();
    let _ = control.send(Control::Flush(deadline, done));
    // The sink keeps the deadline itself; this bound is a backstop. (A std channel: this may
    // run inside the async runtime, where tokio's blocking receive panics.)
    let acknowledged = done_rx
        .recv_timeout(timeout + Duration::from_millis(500))
        .is_ok();
    let thread = match sink.thread.lock() {
        Ok(mut t) => t.take(),
        Err(p) => p.into_inner().take(),
    };
    if let (true, Some(thread)) = (acknowledged, thread) {
        let _ = thread.join();
    }
    let (sent, dropped) = counters();
    eprintln!("cloudwatch logs: {sent} events sent, {dropped} dropped");
    dropped == 0
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `text` without ANSI escape sequences (the pretty format colours its lines).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Cuts events into `PutLogEvents` batches within the service's limits.
#[derive(Debug, Default)]
pub(crate) struct Batcher {
    current: Vec<Event>,
    bytes: usize,
    /// Earliest and latest timestamps of `current`.
    span: (i64, i64),
    ready: std::collections::VecDeque<Vec<Event>>,
}

impl Batcher {
    /// Adds an event, closing the current batch first when the event would break a limit.
    pub fn push(&mut self, mut event: Event) {
        if event.size() > MAX_EVENT_BYTES {
            let mut end = MAX_EVENT_BYTES - EVENT_OVERHEAD;
            while !event.message.is_char_boundary(end) {
                end -= 1;
            }
            event.message.truncate(end);
        }
        let (first, last) = self.span;
        let breaks_span = !self.current.is_empty()
            && (event.timestamp_ms.max(last) - event.timestamp_ms.min(first)) > MAX_BATCH_SPAN_MS;
        if self.current.len() == MAX_BATCH_EVENTS
            || self.bytes + event.size() > MAX_BATCH_BYTES
            || breaks_span
        {
            self.close();
        }
        self.span = if self.current.is_empty() {
            (event.timestamp_ms, event.timestamp_ms)
        } else {
            (first.min(event.timestamp_ms), last.max(event.timestamp_ms))
        };
        self.bytes += event.size();
        self.current.push(event);
    }

    /// Closes the current batch (if any) so that it is sent next.
    pub fn close(&mut self) {
        if self.current.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.current);
        self.bytes = 0;
        // Chronological, as the service requires; lines of the same millisecond keep their
        // order.
        batch.sort_by_key(|e| e.timestamp_ms);
        self.ready.push_back(batch);
    }

    /// The next batch to send.
    pub(crate) fn next_batch(&mut self) -> Option<Vec<Event>> {
        self.ready.pop_front()
    }

    /// Whether a full batch waits.
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Events held, in the current and the closed batches.
    pub fn len(&self) -> usize {
        self.current.len() + self.ready.iter().map(Vec::len).sum::<usize>()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The sink's thread: a runtime of its own, the client, then the batching loop.
fn run(
    settings: Settings,
    events: mpsc::Receiver<Event>,
    control: mpsc::UnboundedReceiver<Control>,
) {
    SINK_THREAD.with(|f| f.set(true));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(|| SINK_THREAD.with(|f| f.set(true)))
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(
                "cloudwatch logs: cannot start the sink's runtime: {e}; lines are dropped"
            );
            return;
        }
    };
    runtime.block_on(async move {
        let client = client(&settings).await;
        let mut shipper = Shipper {
            client,
            settings,
            stream_ready: false,
            failing: false,
        };
        shipper.ensure_stream().await;
        shipper.serve(events, control).await;
    });
}

async fn client(settings: &Settings) -> Client {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(settings.max_retries + 1)
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(5)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .build(),
        );
    if let Some(region) = &settings.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let config = loader.load().await;
    if config.region().is_none() {
        tracing::warn!(
            "cloudwatch logs: no AWS region (set logging.cloudwatch.region or AWS_REGION); \
             lines will be dropped"
        );
    }
    Client::new(&config)
}

struct Shipper {
    client: Client,
    settings: Settings,
    stream_ready: bool,
    failing: bool,
}

impl Shipper {
    /// Receives events, sends a batch when one is full or at each tick, until the flush.
    async fn serve(
        &mut self,
        mut events: mpsc::Receiver<Event>,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) {
        let mut batcher = Batcher::default();
        let mut tick = tokio::time::interval(self.settings.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => {
                        batcher.push(event);
                        while batcher.has_ready() {
                            self.send_next(&mut batcher, None).await;
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    batcher.close();
                    while !batcher.is_empty() {
                        self.send_next(&mut batcher, None).await;
                    }
                }
                message = control.recv() => {
                    if let Some(Control::Flush(deadline, done)) = message {
                        self.flush(&mut batcher, &mut events, deadline).await;
                        let _ = done.send(());
                    }
                    return;
                }
            }
        }
    }

    /// Takes in everything buffered and sends it before the deadline; the rest is dropped.
    async fn flush(
        &mut self,
        batcher: &mut Batcher,
        events: &mut mpsc::Receiver<Event>,
        deadline: Instant,
    ) {
        // No new line gets in from now on (`push` counts them as dropped).
        events.close();
        while let Ok(event) = events.try_recv() {
            batcher.push(event);
        }
        batcher.close();
        while !batcher.is_empty() {
            if Instant::now() >= deadline {
                DROPPED.fetch_add(batcher.len() as u64, Ordering::Relaxed);
                break;
            }
            self.send_next(batcher, Some(deadline)).await;
        }
    }

    /// Sends the next batch; counts it as sent or dropped.
    async fn send_next(&mut self, batcher: &mut Batcher, deadline: Option<Instant>) {
        let Some(batch) = batcher.next_batch() else {
            return;
        };
        let n = batch.len() as u64;
        let put = self.put(batch);
        let outcome = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                tokio::time::timeout(left, put)
                    .await
                    .unwrap_or_else(|_| Err("the shutdown deadline passed".into()))
            }
            None => put.await,
        };
        match outcome {
            Ok(rejected) => {
                SENT.fetch_add(n - rejected, Ordering::Relaxed);
                DROPPED.fetch_add(rejected, Ordering::Relaxed);
                if self.failing {
                    self.failing = false;
                    tracing::info!("cloudwatch logs: sending again");
                }
            }
            Err(reason) => {
                DROPPED.fetch_add(n, Ordering::Relaxed);
                if !self.failing {
                    self.failing = true;
                    tracing::warn!(
                        "cloudwatch logs: PutLogEvents to {}/{} failed: {reason}; \
                         dropping lines until it works (log_events_dropped_total)",
                        self.settings.log_group,
                        self.settings.log_stream
                    );
                }
            }
        }
    }

    /// One `PutLogEvents` (the SDK retries), creating the stream once if it is missing.
    /// Returns how many events the service rejected.
    async fn put(&mut self, batch: Vec<Event>) -> Result<u64, String> {
        let events: Vec<InputLogEvent> = batch
            .into_iter()
            .filter_map(|e| {
                InputLogEvent::builder()
                    .timestamp(e.timestamp_ms)
                    .message(e.message)
                    .build()
                    .ok()
            })
            .collect();
        let n = events.len() as i64;
        for attempt in 0..2 {
            if !self.stream_ready {
                self.ensure_stream().await;
            }
            let result = self
                .client
                .put_log_events()
                .log_group_name(&self.settings.log_group)
                .log_stream_name(&self.settings.log_stream)
                .set_log_events(Some(events.clone()))
                .send()
                .await;
            match result {
                Ok(out) => return Ok(rejected(out.rejected_log_events_info(), n)),
                Err(e) if attempt == 0 && e.code() == Some("ResourceNotFoundException") => {
                    self.stream_ready = false;
                }
                Err(e) => return Err(describe(&e)),
            }
        }
        Err("the log stream could not be created".into())
    }

    /// Creates the log stream (and the group when allowed); "already exists" is fine.
    async fn ensure_stream(&mut self) {
        let s = &self.settings;
        if s.create_log_group {
            let r = self
                .client
                .create_log_group()
                .log_group_name(&s.log_group)
                .send()
                .await;
            if let Err(e) = r {
                if e.code() != Some("ResourceAlreadyExistsException") {
                    tracing::warn!(
                        "cloudwatch logs: cannot create log group {}: {}",
                        s.log_group,
                        describe(&e)
                    );
                }
            }
        }
        let r = self
            .client
            .create_log_stream()
            .log_group_name(&s.log_group)
            .log_stream_name(&s.log_stream)
            .send()
            .await;
        match r {
            Ok(_) => self.stream_ready = true,
            Err(e) if e.code() == Some("ResourceAlreadyExistsException") => {
                self.stream_ready = true
            }
            Err(e) => {
                if !self.failing {
                    tracing::warn!(
                        "cloudwatch logs: cannot create log stream {}/{}: {}",
                        s.log_group,
                        s.log_stream,
                        describe(&e)
                    );
                }
            }
        }
    }
}

/// How many events of `n` the service refused (too old, too new, expired).
fn rejected(info: Option<&aws_sdk_cloudwatchlogs::types::RejectedLogEventsInfo>, n: i64) -> u64 {
    let Some(info) = info else {
        return 0;
    };
    let mut refused = 0i64;
    if let Some(start) = info.too_new_log_event_start_index() {
        refused += n - i64::from(start);
    }
    let old = info
        .too_old_log_event_end_index()
        .max(info.expired_log_event_end_index());
    if let Some(end) = old {
        refused += i64::from(end) + 1;
    }
    refused.clamp(0, n) as u64
}

/// A one-line description of an SDK error: its code and message, or its source chain.
fn describe<E: std::error::Error + ProvideErrorMetadata>(e: &E) -> String {
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => super::with_sources(e.to_string(), e.source()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ts: i64, message: &str) -> Event {
        Event {
            timestamp_ms: ts,
            message: message.into(),
        }
    }

    fn drain(b: &mut Batcher) -> Vec<Vec<Event>> {
        b.close();
        std::iter::from_fn(|| b.next_batch()).collect()
    }

    #[test]
    fn batches_hold_at_most_10000_events() {
        let mut b = Batcher::default();
        for i in 0..10_001 {
            b.push(event(i, "x"));
        }
        let batches = drain(&mut b);
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [10_000, 1]
        );
    }

    #[test]
    fn batches_count_26_bytes_per_event_up_to_1_mib() {
        let mut b = Batcher::default();
        // 1000-byte messages count 1026 bytes: 1022 fit in 1,048,576, the 1023rd does not.
        let line = "a".repeat(1000);
        for i in 0..1023 {
            b.push(event(i, &line));
        }
        let batches = drain(&mut b);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [1022, 1]);
        let size: usize = batches[0].iter().map(Event::size).sum();
        assert!(size <= MAX_BATCH_BYTES, "{size}");
    }

    #[test]
    fn a_batch_spans_at_most_24_hours_and_is_chronological() {
        let mut b = Batcher::default();
        b.push(event(1_000, "b"));
        b.push(event(999, "a"));
        b.push(event(1_000, "c"));
        b.push(event(1_000 + MAX_BATCH_SPAN_MS + 1, "next day"));
        let batches = drain(&mut b);
        let texts: Vec<Vec<&str>> = batches
            .iter()
            .map(|batch| batch.iter().map(|e| e.message.as_str()).collect())
            .collect();
        assert_eq!(texts, [vec!["a", "b", "c"], vec!["next day"]]);
    }

    #[test]
    fn an_oversized_line_is_truncated_to_the_event_limit() {
        let mut b = Batcher::default();
        b.push(event(1, &"é".repeat(MAX_EVENT_BYTES)));
        let batches = drain(&mut b);
        let e = &batches[0][0];
        assert!(e.size() <= MAX_EVENT_BYTES, "{}", e.size());
        assert!(e.size() > MAX_EVENT_BYTES - 4);
    }

    #[test]
    fn stream_templates_are_checked_and_filled() {
        assert!(crate::config::check_stream_template("{host}/{shards}").is_ok());
        assert!(crate::config::check_stream_template("{env}-{pid}").is_ok());
        assert!(crate::config::check_stream_template("{hostname}")
            .unwrap_err()
            .contains("{hostname}"));
        assert!(crate::config::check_stream_template("a:b").is_err());
        assert!(crate::config::check_stream_template("{host").is_err());
        assert!(crate::config::check_stream_template("").is_err());
        let name = stream_name("{env}/{shards}/{pid}", "production", Some("0-3/16"));
        assert_eq!(name, format!("production/0-3/16/{}", std::process::id()));
        assert!(stream_name("{host}", "x", None).chars().all(|c| c != ':'));
        assert!(stream_name("{shards}", "x", None) == "all");
    }

    #[test]
    fn colour_codes_are_removed() {
        assert_eq!(
            strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m hello"),
            "2026  INFO hello"
        );
    }

    #[test]
    fn rejected_events_are_counted() {
        use aws_sdk_cloudwatchlogs::types::RejectedLogEventsInfo;
        let info = RejectedLogEventsInfo::builder()
            .too_old_log_event_end_index(1)
            .too_new_log_event_start_index(8)
            .build();
        assert_eq!(rejected(Some(&info), 10), 4);
        assert_eq!(rejected(None, 10), 0);
    }
}
