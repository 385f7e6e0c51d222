//! HTTP plumbing shared by the cloud speech plugins (`openai-whisper`, `elevenlabs`,
//! `openai-tts`): one client with connect and read timeouts, the API key, retries with jittered
//! exponential backoff that honour `Retry-After`, and the mapping of HTTP failures to
//! [`PluginError`] kinds carrying the API's own error text, never the key.
//!
//! Requests go through a [`Pool`] of endpoints: one `base_url`, or several `base_urls` with
//! balancing, a breaker per endpoint and failover between them (see `pool.rs`).
//!
//! Each `cdylib` links its own copy (statics included), as with every dependency of a plugin.
//!
//! | HTTP answer | kind | retried here |
//! |---|---|---|
//! | 401, 402, 403 | `Auth` (not retryable) | no |
//! | 400, 413, 415, 422, other 4xx | `InvalidInput` | no |
//! | 404 | `Config` (wrong `base_url` or model) | no |
//! | 408 | `Timeout` | no |
//! | 429 | `RateLimited`, with the delay the API asked for | yes, unless it is a quota |
//! | 5xx | `Unavailable` | yes |
//! | cannot connect | `Unavailable` | yes |
//! | no answer in time | `Timeout` | no (the time is spent) |

use std::fmt;
use std::io::Read;
use std::time::{Duration, Instant, SystemTime};

use plugin_api::prelude::*;

/// How long a health check's request to one endpoint may take.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use secrecy::{ExposeSecret, SecretString};

use crate::pool::{BreakerSettings, Lease, Pool};

/// Longest piece of an API's error text kept in a message, in characters.
const MAX_ERROR_TEXT: usize = 400;
/// Most of an error response's body that is read.
const MAX_ERROR_BODY: u64 = 64 * 1024;
/// What replaces a key, or anything that looks like one, in a message.
const REDACTED: &str = "[redacted]";

/// An API key read from the environment (a `secrecy` secret, zeroed when dropped). `Debug`
/// shows the variable's name, never the value.
#[derive(Clone)]
pub struct ApiKey {
    value: SecretString,
    var: String,
}

impl ApiKey {
    /// Reads the key for `plugin` from the variable `var`: an `Auth` error naming both when it is
    /// not set.
    pub fn from_env(plugin: &str, var: &str) -> Result<Self, PluginError> {
        let value = secret_from_env(plugin, var)?;
        Ok(ApiKey {
            value: value.trim().into(),
            var: var.to_string(),
        })
    }

    /// The environment variable it came from.
    pub fn var(&self) -> &str {
        &self.var
    }

    /// `text` with every occurrence of the key replaced.
    pub fn redact(&self, text: &str) -> String {
        text.replace(self.value.expose_secret(), REDACTED)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey(from {})", self.var)
    }
}

/// How an API wants its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// `Authorization: Bearer <key>` (OpenAI and compatible servers).
    Bearer,
    /// The key alone in the named header (`xi-api-key` for ElevenLabs).
    Header(&'static str),
}

/// When and how often a failed request is tried again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Backoff before the first retry; it doubles for each further one.
    pub backoff_initial: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
    /// Longest `Retry-After` waited for; when the API asks for more, the error is returned at
    /// once (with the delay) so the host can fail over instead.
    pub max_retry_wait: Duration,
}

impl RetryPolicy {
    /// Backoff before retry number `retry` (0 for the first): exponential and capped, with "equal
    /// jitter" (half fixed, half random, `unit` in `0..1`) so that clients that failed together
    /// do not all come back together.
    pub fn backoff(&self, retry: u32, unit: f64) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(16));
        let full = self
            .backoff_initial
            .saturating_mul(factor)
            .min(self.backoff_max);
        full / 2 + full.mul_f64(unit.clamp(0.0, 1.0) / 2.0)
    }

    /// How long to wait before trying `failure` again after `retries` retries; `None` when it
    /// must not be retried.
    pub fn wait_before_retry(
        &self,
        failure: &Failure,
        retries: u32,
        unit: f64,
    ) -> Option<Duration> {
        if !failure.retry || retries >= self.max_retries {
            return None;
        }
        match failure.error.retry_after() {
            Some(after) if after > self.max_retry_wait => None,
            // Never sooner than asked; a little later, so that waiting clients spread out.
            Some(after) => {
                Some(after + after.min(Duration::from_millis(2_500)).mul_f64(unit / 10.0))
            }
            None => Some(self.backoff(retries, unit)),
        }
    }
}

/// A failed attempt: the error to report and whether trying again may help.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The error, its message ready for the host (no secret in it).
    pub error: PluginError,
    /// Whether this module may retry it.
    pub retry: bool,
}

/// Everything [`Api::new`] needs.
#[derive(Debug, Clone)]
pub struct ApiSettings<'a> {
    /// The plugin's name, for messages (`openai-whisper`).
    pub plugin: &'static str,
    /// The servers, without `/v1` (`https://api.openai.com`): one, or a pool.
    pub base_urls: Vec<&'a str>,
    /// The variable holding the key; `None` sends no key (local servers).
    pub api_key_env: Option<&'a str>,
    /// How the key is sent.
    pub auth: AuthScheme,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Time allowed for the response to start, and for each read of its body.
    pub timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Each endpoint's breaker, in a pool of several.
    pub breaker: BreakerSettings,
}

impl<'a> ApiSettings<'a> {
    /// Spreads requests over `base_urls` instead, when it lists any.
    pub fn pool(mut self, base_urls: &'a [String], breaker: BreakerSettings) -> Self {
        if !base_urls.is_empty() {
            self.base_urls = base_urls.iter().map(String::as_str).collect();
        }
        self.breaker = breaker;
        self
    }
}

/// One configured API: the client, where it is, and how to authenticate.
pub struct Api {
    plugin: &'static str,
    pool: Pool,
    key: Option<ApiKey>,
    auth: AuthScheme,
    timeout: Duration,
    retry: RetryPolicy,
    client: Client,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("plugin", &self.plugin)
            .field("endpoints", &self.pool.endpoints().len())
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// Reads the key and builds the client. Makes no request.
    pub fn new(settings: ApiSettings<'_>) -> Result<Self, PluginError> {
        let key = no_key_if_empty(settings.api_key_env)
            .map(|var| ApiKey::from_env(settings.plugin, var))
            .transpose()?;
        let client = Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .user_agent(format!(
                "openclaw-voice-{}/{}",
                settings.plugin,
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| {
                PluginError::internal(format!(
                    "{}: cannot set up the HTTP client: {}",
                    settings.plugin,
                    error_chain(&e)
                ))
            })?;
        Ok(Api {
            plugin: settings.plugin,
            pool: Pool::new(settings.plugin, &settings.base_urls, settings.breaker),
            key,
            auth: settings.auth,
            timeout: settings.timeout,
            retry: settings.retry,
            client,
        })
    }

    /// The pool of endpoints.
    // Read by the plugins' tests and health.
    #[allow(dead_code)]
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The plugin's name.
    // Used by `pcm_stream.rs`, which the speech-to-text plugin does not compile in.
    #[allow(dead_code)]
    pub fn plugin(&self) -> &'static str {
        self.plugin
    }

    /// Sends the request `build` makes for the URL of `path` (which starts with `/v1/`) on
    /// the endpoint the pool picks, once per attempt, with the key, retrying as the policy
    /// allows (on another endpoint at once when there is one, else after the backoff);
    /// returns the first successful (2xx) answer. `cancel` stops the waits between attempts.
    pub fn call(
        &self,
        what: &str,
        cancel: Option<&CancelToken>,
        path: &str,
        build: impl Fn(&Client, &str) -> Result<RequestBuilder, PluginError>,
    ) -> Result<Answer, PluginError> {
        let mut retries = 0;
        let mut tried = Vec::new();
        loop {
            self.pool.report(Instant::now(), crate::pool::REPORT_EVERY);
            let mut lease = self.pool.acquire(&tried, Instant::now())?;
            let url = format!("{}{path}", lease.base_url());
            let request = self.authorize(build(&self.client, &url)?)?;
            let failure = match request.send() {
                Ok(response) if response.status().is_success() => {
                    return Ok(Answer { response, lease })
                }
                Ok(response) => self.status_failure(what, response),
                Err(e) => self.transport_failure(what, &e, lease.base_url()),
            };
            // The request's own faults are no sign of a failing server.
            let blame = failure.error.kind != ErrorKind::InvalidInput;
            lease.fail(blame, Instant::now());
            tried.push(lease.index());
            drop(lease);
            // Another endpoint takes a retry at once, whatever this one asked to wait.
            let elsewhere = failure.retry
                && retries < self.retry.max_retries
                && self.pool.has_untried(&tried, Instant::now());
            let wait = match self
                .retry
                .wait_before_retry(&failure, retries, fastrand::f64())
            {
                _ if elsewhere => Duration::ZERO,
                Some(wait) => wait,
                None => return Err(failure.error),
            };
            retries += 1;
            log::debug!(
                "{}; retry {retries} of {} {}",
                failure.error.message(),
                self.retry.max_retries,
                if elsewhere {
                    "on another endpoint now".to_string()
                } else {
                    format!("in {} ms", wait.as_millis())
                }
            );
            if !elsewhere && !sleep(wait, cancel) {
                return Err(cancelled(self.plugin));
            }
        }
    }

    /// The health check: one authorized `GET` of `path` (a cheap endpoint such as the model
    /// or voice list) on every endpoint, no retries, each within [`HEALTH_TIMEOUT`]; healthy
    /// when at least one answers 2xx. A refused key, a server error or no answer is named in
    /// the detail (never the key), with the pool's figures when there is a pool.
    pub fn probe(&self, path: &str) -> HealthReport {
        let mut answered = false;
        let mut lines = Vec::new();
        for endpoint in self.pool.stats() {
            // An endpoint out of rotation gets its probe from the pool's breaker, not here.
            if endpoint.state == "open" {
                lines.push(format!(
                    "{}: out of rotation, not probed",
                    endpoint.base_url
                ));
                continue;
            }
            let (ok, line) = self.probe_one(&endpoint.base_url, path);
            answered |= ok;
            lines.push(line);
        }
        let (_, pool) = self.pool.describe();
        let detail = format!("{}; endpoints: {pool}", lines.join("; "));
        if answered {
            HealthReport::healthy(detail)
        } else {
            HealthReport::unhealthy(detail)
        }
    }

    fn probe_one(&self, base_url: &str, path: &str) -> (bool, String) {
        let started = Instant::now();
        let what = format!("health check (GET {path})");
        let request = self.client.get(format!("{base_url}{path}"));
        let request = match self.authorize(request.timeout(HEALTH_TIMEOUT)) {
            Ok(request) => request,
            Err(e) => return (false, e.message().to_string()),
        };
        match request.send() {
            Ok(response) if response.status().is_success() => (
                true,
                format!(
                    "GET {base_url}{path} answered {} in {} ms",
                    response.status().as_u16(),
                    started.elapsed().as_millis()
                ),
            ),
            Ok(response) => (
                false,
                self.status_failure(&what, response)
                    .error
                    .message()
                    .to_string(),
            ),
            Err(e) => (
                false,
                self.transport_failure(&what, &e, base_url)
                    .error
                    .message()
                    .to_string(),
            ),
        }
    }

    fn authorize(&self, request: RequestBuilder) -> Result<RequestBuilder, PluginError> {
        let Some(key) = &self.key else {
            return Ok(request);
        };
        let (name, text) = match self.auth {
            AuthScheme::Bearer => (
                AUTHORIZATION,
                format!("Bearer {}", key.value.expose_secret()),
            ),
            AuthScheme::Header(name) => (
                HeaderName::from_static(name),
                key.value.expose_secret().to_string(),
            ),
        };
        let mut value = HeaderValue::from_str(&text).map_err(|_| {
            PluginError::config(format!(
                "{}: the value of {} cannot be sent in an HTTP header (it holds a line break or \
                 a non-ASCII character)",
                self.plugin, key.var
            ))
            .with_retryable(false)
        })?;
        value.set_sensitive(true);
        Ok(request.header(name, value))
    }

    fn status_failure(&self, what: &str, response: Response) -> Failure {
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers(), SystemTime::now());
        let mut body = String::new();
        // The body only adds detail; a body that cannot be read leaves the status to speak.
        let _ = response.take(MAX_ERROR_BODY).read_to_string(&mut body);
        classify_status(
            self.plugin,
            what,
            status,
            retry_after,
            &body,
            self.key.as_ref(),
        )
    }

    fn transport_failure(&self, what: &str, e: &reqwest::Error, base_url: &str) -> Failure {
        let detail = self.clean(&error_chain(e));
        if e.is_timeout() {
            Failure {
                error: PluginError::timeout(format!(
                    "{}: {what}: no answer from {} within {} ms ({detail})",
                    self.plugin,
                    base_url,
                    self.timeout.as_millis()
                )),
                retry: false,
            }
        } else if e.is_connect() {
            Failure {
                error: PluginError::unavailable(format!(
                    "{}: {what}: cannot connect to {}: {detail}",
                    self.plugin, base_url
                )),
                retry: true,
            }
        } else {
            Failure {
                error: PluginError::unavailable(format!(
                    "{}: {what}: the request to {} failed: {detail}",
                    self.plugin, base_url
                )),
                retry: false,
            }
        }
    }

    /// The error for a failed read of a response body (a stream that stalls or breaks off).
    pub fn read_error(&self, what: &str, e: &std::io::Error) -> PluginError {
        let inner = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<reqwest::Error>());
        let timed_out =
            e.kind() == std::io::ErrorKind::TimedOut || inner.is_some_and(|e| e.is_timeout());
        let detail = self.clean(&match inner {
            Some(inner) => error_chain(inner),
            None => e.to_string(),
        });
        if timed_out {
            PluginError::timeout(format!(
                "{}: {what}: the server sent nothing for {} ms ({detail})",
                self.plugin,
                self.timeout.as_millis()
            ))
        } else {
            PluginError::unavailable(format!(
                "{}: {what}: the response broke off: {detail}",
                self.plugin
            ))
        }
    }

    /// `text` with the key, and anything that looks like a key, removed.
    pub fn clean(&self, text: &str) -> String {
        clean_text(text, self.key.as_ref())
    }
}

/// A successful answer, holding its endpoint's lease until the body is read: the request
/// counts as in flight (for balancing) until then, and its latency and outcome are the
/// endpoint's.
#[derive(Debug)]
pub struct Answer {
    response: Response,
    lease: Lease,
}

impl Answer {
    /// The body as text.
    // Each plugin uses the readers it needs.
    #[allow(dead_code)]
    pub fn text(self) -> Result<String, reqwest::Error> {
        let Answer {
            response,
            mut lease,
        } = self;
        let text = response.text();
        settle(&mut lease, text.is_ok());
        text
    }

    /// The body as JSON.
    #[allow(dead_code)]
    pub fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, reqwest::Error> {
        let Answer {
            response,
            mut lease,
        } = self;
        let value = response.json();
        settle(&mut lease, value.is_ok());
        value
    }
}

/// Records the end of a request on its endpoint.
fn settle(lease: &mut Lease, ok: bool) {
    if ok {
        lease.succeed(Instant::now());
    } else {
        lease.fail(true, Instant::now());
    }
}

impl Read for Answer {
    /// Reads the body; its end settles the request as a success, an error as a failure. An
    /// answer dropped before its end (a cancelled stream) settles nothing.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.response.read(buf);
        match &n {
            Ok(0) if !buf.is_empty() => settle(&mut self.lease, true),
            Err(_) => settle(&mut self.lease, false),
            Ok(_) => {}
        }
        n
    }
}

/// The error returned when a call is cancelled between attempts.
pub fn cancelled(plugin: &str) -> PluginError {
    PluginError::internal(format!("{plugin}: cancelled")).with_retryable(false)
}

/// Sleeps for `duration`, waking early when `cancel` is set; returns whether it slept in full.
fn sleep(duration: Duration, cancel: Option<&CancelToken>) -> bool {
    let Some(cancel) = cancel else {
        std::thread::sleep(duration);
        return true;
    };
    let end = Instant::now() + duration;
    loop {
        if cancel.is_cancelled() {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

/// Maps an HTTP error status and its body to a [`Failure`]. Pure, so every row of the table in
/// the module docs is tested.
pub fn classify_status(
    plugin: &str,
    what: &str,
    status: u16,
    retry_after: Option<Duration>,
    body: &str,
    key: Option<&ApiKey>,
) -> Failure {
    let api = ApiErrorText::parse(body);
    let text = clean_text(&api.message, key);
    let text = if text.is_empty() {
        "(no error text)".to_string()
    } else {
        text
    };
    let fail = |error: PluginError, retry: bool| Failure { error, retry };
    match status {
        401..=403 => fail(refused(plugin, what, status, key, &text), false),
        404 => fail(
            PluginError::config(format!(
                "{plugin}: {what}: not found (HTTP 404); check `base_url` and the model: {text}"
            ))
            .with_retryable(false),
            false,
        ),
        408 => fail(
            PluginError::timeout(format!(
                "{plugin}: {what}: the server timed out (HTTP 408): {text}"
            )),
            false,
        ),
        429 => {
            // A spent quota does not come back by waiting a second.
            let retry = !api.code.contains("quota");
            fail(rate_limited(plugin, what, retry_after, &text, retry), retry)
        }
        500..=599 => fail(
            PluginError::unavailable(format!(
                "{plugin}: {what}: the API is failing (HTTP {status}): {text}"
            ))
            .with_retry_after(retry_after.map(|d| d.as_millis() as u64)),
            true,
        ),
        400..=499 => fail(
            PluginError::invalid_input(format!(
                "{plugin}: {what}: the API refused the request (HTTP {status}): {text}"
            )),
            false,
        ),
        _ => fail(
            PluginError::new(
                ErrorKind::Internal,
                format!("{plugin}: {what}: unexpected HTTP {status}: {text}"),
            )
            .with_retryable(false),
            false,
        ),
    }
}

/// A 401-403: the key was refused, or none was sent.
fn refused(plugin: &str, what: &str, status: u16, key: Option<&ApiKey>, text: &str) -> PluginError {
    let why = match key {
        Some(key) => format!("the API did not accept the key in {}", key.var()),
        None => "no key was sent; set `api_key_env` to the variable holding one".into(),
    };
    PluginError::auth(format!(
        "{plugin}: {what} was refused (HTTP {status}): {why}: {text}"
    ))
    .with_retryable(false)
}

/// A 429, retryable unless `retry` says the quota is spent.
fn rate_limited(
    plugin: &str,
    what: &str,
    retry_after: Option<Duration>,
    text: &str,
    retry: bool,
) -> PluginError {
    let after = retry_after
        .map(|d| format!(", retry after {} ms", d.as_millis()))
        .unwrap_or_default();
    PluginError::rate_limited(
        format!("{plugin}: {what}: rate limited (HTTP 429{after}): {text}"),
        retry_after.map(|d| d.as_millis() as u64),
    )
    .with_retryable(retry)
}

/// The human part of an API's error body, and its machine code where it has one.
#[derive(Debug, Default, PartialEq)]
pub struct ApiErrorText {
    /// The message (possibly several joined), unredacted.
    pub message: String,
    /// `error.code` / `error.type` (OpenAI) or `detail.status` (ElevenLabs), lower case.
    pub code: String,
}

impl ApiErrorText {
    /// Reads the error shapes the supported APIs use:
    ///
    /// - OpenAI: `{"error": {"message": …, "type": …, "code": …}}`, or `{"error": "…"}`;
    /// - ElevenLabs: `{"detail": {"status": …, "message": …}}`;
    /// - FastAPI validation (ElevenLabs 422, speaches): `{"detail": [{"loc": […], "msg": …}]}`,
    ///   or `{"detail": "…"}`;
    /// - anything else: `{"message": …}`, or the body as text.
    pub fn parse(body: &str) -> Self {
        let Ok(json) = serde_json::from_str::<serde_json::Value>(body) else {
            return ApiErrorText {
                message: body.trim().to_string(),
                code: String::new(),
            };
        };
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        let mut out = ApiErrorText::default();
        if let Some(error) = json.get("error") {
            if let Some(s) = error.as_str() {
                out.message = s.to_string();
            } else {
                out.message = text(&error["message"]);
                out.code = [text(&error["code"]), text(&error["type"])]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
            }
        } else if let Some(detail) = json.get("detail") {
            match detail {
                serde_json::Value::String(s) => out.message = s.clone(),
                serde_json::Value::Array(items) => {
                    out.message = items
                        .iter()
                        .map(|item| {
                            let loc: Vec<String> = item["loc"]
                                .as_array()
                                .map(|parts| {
                                    parts
                                        .iter()
                                        .map(|p| match p {
                                            serde_json::Value::String(s) => s.clone(),
                                            other => other.to_string(),
                                        })
                                        .collect()
                                })
                                .unwrap_or_default();
                            if loc.is_empty() {
                                text(&item["msg"])
                            } else {
                                format!("{}: {}", loc.join("."), text(&item["msg"]))
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("; ");
                }
                other => {
                    out.message = text(&other["message"]);
                    out.code = text(&other["status"]);
                    if !out.code.is_empty() {
                        out.message = format!("{} ({})", out.message, out.code);
                    }
                }
            }
        } else if let Some(message) = json.get("message") {
            out.message = text(message);
        } else {
            out.message = body.trim().to_string();
        }
        out.code = out.code.to_ascii_lowercase();
        out
    }
}

/// `text` on one line, shortened, without the key or anything that looks like one: OpenAI's
/// 401 message repeats part of the key it was given (`sk-ab***…wxyz`).
pub fn clean_text(text: &str, key: Option<&ApiKey>) -> String {
    let text = match key {
        Some(key) => key.redact(text),
        None => text.to_string(),
    };
    let words: Vec<&str> = text
        .split_whitespace()
        .map(|word| if looks_like_key(word) { REDACTED } else { word })
        .collect();
    let mut line = words.join(" ");
    if line.chars().count() > MAX_ERROR_TEXT {
        line = line.chars().take(MAX_ERROR_TEXT).collect::<String>() + "…";
    }
    line
}

fn looks_like_key(word: &str) -> bool {
    let word = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '*');
    word.contains("**") || ((word.starts_with("sk-") || word.starts_with("sk_")) && word.len() > 12)
}

/// The delay a response asks for: `retry-after-ms` (OpenAI), else `Retry-After` in seconds or
/// as an HTTP date.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let value = header("retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::from_secs_f64(seconds.min(86_400.0)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An error and its causes on one line, without repeats.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// Checks a `base_url` setting: `http(s)://host[:port][/prefix]`, without `/v1` (the plugin
/// adds it), a query or a fragment. Returns why not.
pub fn check_base_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("must start with http:// or https://, got `{url}`"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("has no host, got `{url}`"));
    }
    if rest.contains(['?', '#', ' ']) {
        return Err(format!(
            "must not hold a query, fragment or space, got `{url}`"
        ));
    }
    if url.trim_end_matches('/').ends_with("/v1") {
        return Err(format!(
            "must not end with /v1 (the plugin adds it): use `{}`",
            url.trim_end_matches('/').trim_end_matches("/v1")
        ));
    }
    Ok(())
}

/// `api_key_env`, where `""` says "no key" just as leaving it out does (so a layer can unset
/// the key a lower layer names, for a local server without auth).
pub fn no_key_if_empty(api_key_env: Option<&str>) -> Option<&str> {
    api_key_env.filter(|var| !var.trim().is_empty())
}

/// Whether `url` points at `host` (any scheme and port).
pub fn is_host(url: &str, host: &str) -> bool {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or_default();
    authority.split(':').next() == Some(host)
}

/// Checks `base_url` and `api_key_env`: a URL that can be called, and a key variable wherever
/// the official `host` is used (`example_var` is shown as the usual name).
pub fn check_endpoint(
    base_url: &str,
    api_key_env: Option<&str>,
    host: &str,
    example_var: &str,
) -> Result<(), PluginError> {
    check_base_url(base_url).map_err(|why| PluginError::config(format!("`base_url` {why}")))?;
    match no_key_if_empty(api_key_env) {
        None if is_host(base_url, host) => Err(PluginError::config(format!(
            "{host} needs a key: set `api_key_env` to the environment variable that holds it \
             (api_key_env = \"{example_var}\")"
        ))),
        Some(var) if var.contains(['=', '\0']) => Err(PluginError::config(
            "`api_key_env` must name an environment variable",
        )),
        _ => Ok(()),
    }
}

/// A settings check's error as a [`SettingsError`] naming its key (the checks here start
/// their messages with the key in backticks: `` `timeout_ms` must be … ``), so that the host
/// can say which file or variable set it.
pub fn settings_error(error: PluginError) -> SettingsError {
    let message = error.message();
    if let Some((key, why)) = message
        .strip_prefix('`')
        .and_then(|rest| rest.split_once('`'))
    {
        if !key.is_empty() && !key.contains(char::is_whitespace) {
            return SettingsError::new(key, why.trim_start());
        }
    }
    SettingsError::whole(message)
}

crate::with_timing_fields! {
    /// The timeout and retry settings every cloud plugin has, in milliseconds as configured.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct TimingSettings {}
}

impl TimingSettings {
    /// The defaults every bundled cloud plugin uses.
    pub const DEFAULT: TimingSettings = TimingSettings {
        connect_timeout_ms: 3_000,
        timeout_ms: 10_000,
        max_retries: 2,
        backoff_initial_ms: 200,
        backoff_max_ms: 2_000,
        max_retry_wait_ms: 3_000,
    };

    /// Checks each value's range, naming the key at fault.
    pub fn check(&self) -> Result<(), PluginError> {
        check_range("connect_timeout_ms", self.connect_timeout_ms, 100..=60_000)?;
        check_range("timeout_ms", self.timeout_ms, 100..=600_000)?;
        check_range("max_retries", self.max_retries, 0..=10)?;
        check_range("backoff_initial_ms", self.backoff_initial_ms, 1..=60_000)?;
        check_range(
            "backoff_max_ms",
            self.backoff_max_ms,
            self.backoff_initial_ms..=600_000,
        )?;
        check_range("max_retry_wait_ms", self.max_retry_wait_ms, 0..=600_000)
    }

    /// The settings [`Api::new`] takes.
    pub fn api<'a>(
        &self,
        plugin: &'static str,
        base_url: &'a str,
        api_key_env: Option<&'a str>,
        auth: AuthScheme,
    ) -> ApiSettings<'a> {
        ApiSettings {
            plugin,
            base_urls: vec![base_url],
            api_key_env,
            auth,
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            timeout: Duration::from_millis(self.timeout_ms),
            retry: RetryPolicy {
                max_retries: self.max_retries,
                backoff_initial: Duration::from_millis(self.backoff_initial_ms),
                backoff_max: Duration::from_millis(self.backoff_max_ms),
                max_retry_wait: Duration::from_millis(self.max_retry_wait_ms),
            },
            breaker: BreakerSettings::default(),
        }
    }
}

/// Checks that `value` of `key` lies in `range`, with an error naming both.
pub fn check_range<T: PartialOrd + fmt::Display + Copy>(
    key: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<(), PluginError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(PluginError::config(format!(
            "`{key}` must be between {} and {}, got {value}",
            range.start(),
            range.end()
        )))
    }
}

#[cfg(test)]
mod http_tests {
    use super::*;

    fn key(value: &str) -> ApiKey {
        ApiKey {
            value: value.into(),
            var: "TEST_KEY_VAR".into(),
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 2,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
            max_retry_wait: Duration::from_secs(2),
        }
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered_within_half() {
        let p = policy();
        assert_eq!(p.backoff(0, 0.0), Duration::from_millis(50));
        assert_eq!(p.backoff(0, 1.0), Duration::from_millis(100));
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(100));
        assert_eq!(p.backoff(1, 1.0), Duration::from_millis(200));
        assert_eq!(p.backoff(5, 1.0), Duration::from_millis(300));
        assert_eq!(p.backoff(40, 0.5), Duration::from_millis(225));
    }

    #[test]
    fn retry_waits_honour_retry_after_and_limits() {
        let p = policy();
        let rate_limited = |after: Option<u64>| Failure {
            error: PluginError::rate_limited("slow down", after),
            retry: true,
        };
        let wait = p
            .wait_before_retry(&rate_limited(Some(1_000)), 0, 1.0)
            .unwrap();
        assert!(wait >= Duration::from_millis(1_000) && wait <= Duration::from_millis(1_100));
        assert_eq!(
            p.wait_before_retry(&rate_limited(Some(1_000)), 2, 0.0),
            None
        );
        assert_eq!(
            p.wait_before_retry(&rate_limited(Some(5_000)), 0, 0.0),
            None
        );
        assert_eq!(
            p.wait_before_retry(&rate_limited(None), 1, 0.0),
            Some(Duration::from_millis(100))
        );
        let auth = Failure {
            error: PluginError::auth("no"),
            retry: false,
        };
        assert_eq!(p.wait_before_retry(&auth, 0, 0.0), None);
    }

    #[test]
    fn statuses_map_to_kinds() {
        let cases = [
            (401, ErrorKind::Auth, false),
            (402, ErrorKind::Auth, false),
            (403, ErrorKind::Auth, false),
            (400, ErrorKind::InvalidInput, false),
            (413, ErrorKind::InvalidInput, false),
            (415, ErrorKind::InvalidInput, false),
            (422, ErrorKind::InvalidInput, false),
            (404, ErrorKind::Config, false),
            (408, ErrorKind::Timeout, false),
            (429, ErrorKind::RateLimited, true),
            (500, ErrorKind::Unavailable, true),
            (503, ErrorKind::Unavailable, true),
        ];
        for (status, kind, retry) in cases {
            let f = classify_status("p", "x", status, None, "{}", None);
            assert_eq!((f.error.kind, f.retry), (kind, retry), "HTTP {status}");
        }
    }

    #[test]
    fn auth_errors_name_the_variable_and_hide_the_key() {
        let k = key("sk-test-abcdefghijklmnop1234");
        let body = r#"{"error":{"message":"Incorrect API key provided: sk-te************************1234. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        let f = classify_status("openai-whisper", "transcription", 401, None, body, Some(&k));
        let m = f.error.message();
        assert!(
            m.contains("openai-whisper") && m.contains("TEST_KEY_VAR"),
            "{m}"
        );
        assert!(m.contains("Incorrect API key provided"), "{m}");
        assert!(!m.contains("1234.") && !m.contains("sk-te*"), "{m}");
        assert!(!f.error.retryable);
        let f = classify_status("p", "x", 401, None, "{}", None);
        assert!(
            f.error.message().contains("api_key_env"),
            "{}",
            f.error.message()
        );
    }

    #[test]
    fn quota_is_not_retried_but_a_busy_server_is() {
        let body = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        let f = classify_status("p", "x", 429, None, body, None);
        assert_eq!(
            (f.error.kind, f.retry, f.error.retryable),
            (ErrorKind::RateLimited, false, false)
        );
        let f = classify_status("p", "x", 429, Some(Duration::from_secs(2)), "{}", None);
        assert!(f.retry);
        assert_eq!(f.error.retry_after(), Some(Duration::from_secs(2)));
        assert!(
            f.error.message().contains("retry after 2000 ms"),
            "{}",
            f.error.message()
        );
    }

    #[test]
    fn error_shapes_of_each_api_are_read() {
        let openai = ApiErrorText::parse(
            r#"{"error":{"message":"bad file","type":"invalid_request_error","param":"file","code":null}}"#,
        );
        assert_eq!(openai.message, "bad file");
        assert_eq!(openai.code, "invalid_request_error");
        let eleven = ApiErrorText::parse(
            r#"{"detail":{"status":"quota_exceeded","message":"This request exceeds your quota of 10000."}}"#,
        );
        assert_eq!(
            eleven.message,
            "This request exceeds your quota of 10000. (quota_exceeded)"
        );
        assert_eq!(eleven.code, "quota_exceeded");
        let validation = ApiErrorText::parse(
            r#"{"detail":[{"loc":["body","voice_settings","stability"],"msg":"ensure this value is less than or equal to 1.0","type":"value_error"}]}"#,
        );
        assert_eq!(
            validation.message,
            "body.voice_settings.stability: ensure this value is less than or equal to 1.0"
        );
        assert_eq!(
            ApiErrorText::parse(r#"{"detail":"Not Found"}"#).message,
            "Not Found"
        );
        assert_eq!(
            ApiErrorText::parse("upstream connect error").message,
            "upstream connect error"
        );
        assert_eq!(
            ApiErrorText::parse(r#"{"error":"model busy"}"#).message,
            "model busy"
        );
    }

    #[test]
    fn an_empty_key_variable_means_no_key() {
        assert_eq!(
            check_endpoint("http://127.0.0.1:8000", Some(""), "api.openai.com", "K"),
            Ok(())
        );
        let e =
            check_endpoint("https://api.openai.com", Some(" "), "api.openai.com", "K").unwrap_err();
        assert!(e.message().contains("needs a key"), "{}", e.message());
        let timing = TimingSettings {
            connect_timeout_ms: 100,
            timeout_ms: 100,
            max_retries: 0,
            backoff_initial_ms: 1,
            backoff_max_ms: 1,
            max_retry_wait_ms: 0,
        };
        let api = Api::new(timing.api("p", "http://127.0.0.1:9", Some(""), AuthScheme::Bearer))
            .expect("no variable is read for an empty api_key_env");
        assert!(api.key.is_none());
    }

    #[test]
    fn text_is_cleaned_of_keys_and_shortened() {
        let k = key("secret-value-42");
        assert_eq!(
            clean_text("key secret-value-42 refused,\n try\tagain", Some(&k)),
            "key [redacted] refused, try again"
        );
        assert_eq!(
            clean_text("got sk-proj-abcdefghijkl1234.", None),
            "got [redacted]"
        );
        assert_eq!(
            clean_text("got sk-ab**********wxyz", None),
            "got [redacted]"
        );
        assert_eq!(clean_text("ask-me is fine", None), "ask-me is fine");
        let long = "x".repeat(1_000);
        assert_eq!(clean_text(&long, None).chars().count(), MAX_ERROR_TEXT + 1);
        assert_eq!(format!("{k:?}"), "ApiKey(from TEST_KEY_VAR)");
    }

    #[test]
    fn retry_after_reads_every_form() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2")]), now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "0.5")]), now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after-ms", "250"), ("retry-after", "9")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:03 GMT")]),
                now
            ),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Wed, 21 Oct 2015 07:27:00 GMT")]),
                now
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[]), now), None);
    }

    #[test]
    fn base_urls_are_checked() {
        check_base_url("https://api.openai.com").unwrap();
        check_base_url("http://127.0.0.1:8080/").unwrap();
        check_base_url("https://api.groq.com/openai").unwrap();
        assert!(check_base_url("api.openai.com")
            .unwrap_err()
            .contains("http://"));
        assert!(check_base_url("https://api.openai.com/v1")
            .unwrap_err()
            .contains("`https://api.openai.com`"));
        assert!(check_base_url("https://").is_err());
        assert!(check_base_url("https://x/?a=b").is_err());
        assert!(is_host("https://api.openai.com:443/x", "api.openai.com"));
        assert!(!is_host("http://127.0.0.1:9", "api.openai.com"));
    }
}
