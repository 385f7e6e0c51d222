//! A pool of equivalent speech servers behind one provider (`base_urls`): each request goes
//! to the endpoint expected to answer first, failing endpoints are taken out by their own
//! circuit breaker, and each endpoint keeps its own figures for `health()` and the logs.
//!
//! - **Balancing: least outstanding requests, weighted by latency.** The score of an
//!   endpoint is `(requests in flight + 1) × its latency` (an exponentially weighted moving
//!   average of its recent requests, "peak EWMA"): with equal latencies this is plain
//!   least-outstanding-requests; with a fast and a slow server it sends the slow one work only
//!   when the fast one's queue would take longer. An endpoint with no latency yet counts as
//!   the fastest known one, so new and recovered endpoints get tried. Ties go to config order.
//! - **A circuit breaker per endpoint** (pools of two or more; a single server is left to the
//!   host's breaker): `endpoint_failures` failures in a row open it; an open endpoint gets
//!   **no request** until `endpoint_cooldown_ms` has passed, then exactly one probe; a probe
//!   that succeeds closes it, one that fails opens it again. Requests the server could not be
//!   blamed for (400-class input errors) do not count.
//! - **Failover inside the pool.** A failed attempt that may be retried (5xx, 429, refused
//!   connection) goes to another endpoint at once; only when none is left does it wait for
//!   the backoff. When every endpoint is open the call fails at once as `Unavailable`, so the
//!   host fails over to its next provider.
//!
//! Why in the plugin and not in the host: the endpoints are this plugin's HTTP servers (the
//! host knows providers, not URLs), and a pool stays one provider to the host, whose
//! failover and breaker see it fail only when every endpoint does. The plugin ABI has no
//! metrics channel (adding one is an ABI bump), so per-endpoint figures go out through
//! `health()`'s detail, a log line on every breaker change and, while the pool is in use, a
//! log line with every endpoint's figures each [`REPORT_EVERY`]; the host's per-provider
//! metrics cover the pool as a whole.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use plugin_api::prelude::*;

/// Weight of the newest latency in the moving average.
const EWMA_WEIGHT: f64 = 0.3;
/// How often a pool in use logs every endpoint's figures.
pub const REPORT_EVERY: Duration = Duration::from_secs(60);

/// When an endpoint's breaker takes it out of rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Failures in a row that open it.
    pub failures: u32,
    /// How long it stays open before one probe.
    pub cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failures: 3,
            cooldown: Duration::from_secs(10),
        }
    }
}

/// Checks the pool settings a plugin takes (`base_urls`, `endpoint_failures`,
/// `endpoint_cooldown_ms`), naming the key at fault. `check_url` checks one URL.
pub fn check_settings(
    base_urls: &[String],
    failures: u32,
    cooldown_ms: u64,
    check_url: impl Fn(&str) -> Result<(), PluginError>,
) -> Result<(), PluginError> {
    for (i, url) in base_urls.iter().enumerate() {
        check_url(url).map_err(|e| {
            PluginError::config(format!(
                "`base_urls` entry {}: {}",
                i + 1,
                e.message().replace("`base_url` ", "")
            ))
        })?;
        let norm = |u: &str| u.trim_end_matches('/').to_string();
        if base_urls[..i].iter().any(|u| norm(u) == norm(url)) {
            return Err(PluginError::config(format!(
                "`base_urls` lists {url} twice"
            )));
        }
    }
    if base_urls.len() > 64 {
        return Err(PluginError::config(
            "`base_urls` holds more than 64 endpoints",
        ));
    }
    if !(1..=100).contains(&failures) {
        return Err(PluginError::config(format!(
            "`endpoint_failures` must be between 1 and 100, got {failures}"
        )));
    }
    if !(100..=3_600_000).contains(&cooldown_ms) {
        return Err(PluginError::config(format!(
            "`endpoint_cooldown_ms` must be between 100 and 3600000, got {cooldown_ms}"
        )));
    }
    Ok(())
}

/// An endpoint's breaker state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// In rotation.
    Closed,
    /// Out of rotation until the instant.
    Open(Instant),
    /// The cooldown is over and one probe is in flight.
    Probing,
}

/// What an endpoint has done, under its lock.
#[derive(Debug)]
struct Record {
    state: State,
    failures_in_row: u32,
    requests: u64,
    failed: u64,
    latency_ms: Option<f64>,
}

/// One server of the pool.
#[derive(Debug)]
pub struct Endpoint {
    /// Its base URL, as configured (without a trailing `/`).
    pub base_url: String,
    /// Its position in `base_urls` (0-based).
    pub index: usize,
    in_flight: AtomicUsize,
    record: Mutex<Record>,
}

impl Endpoint {
    fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A snapshot of one endpoint, for health and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointStats {
    /// Base URL.
    pub base_url: String,
    /// `closed`, `open` or `probing`.
    pub state: &'static str,
    /// Requests in flight now.
    pub in_flight: usize,
    /// Requests sent.
    pub requests: u64,
    /// Of which failed.
    pub failed: u64,
    /// Moving average latency, ms.
    pub latency_ms: Option<f64>,
}

/// The pool.
#[derive(Debug)]
pub struct Pool {
    plugin: &'static str,
    endpoints: Vec<Arc<Endpoint>>,
    breaker: BreakerSettings,
    last_report: Mutex<Option<Instant>>,
}

impl Pool {
    /// A pool over `base_urls` (at least one).
    pub fn new(plugin: &'static str, base_urls: &[&str], breaker: BreakerSettings) -> Pool {
        let endpoints = base_urls
            .iter()
            .enumerate()
            .map(|(index, url)| {
                Arc::new(Endpoint {
                    base_url: url.trim_end_matches('/').to_string(),
                    index,
                    in_flight: AtomicUsize::new(0),
                    record: Mutex::new(Record {
                        state: State::Closed,
                        failures_in_row: 0,
                        requests: 0,
                        failed: 0,
                        latency_ms: None,
                    }),
                })
            })
            .collect();
        Pool {
            plugin,
            endpoints,
            breaker,
            last_report: Mutex::new(None),
        }
    }

    /// The endpoints, in config order.
    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// Whether breakers apply (two endpoints or more).
    fn breakers(&self) -> bool {
        self.endpoints.len() > 1
    }

    /// Picks the endpoint for the next attempt, skipping those in `tried` while any other can
    /// take it, and takes a lease on it. `Err` when every endpoint's breaker is open.
    pub fn acquire(&self, tried: &[usize], now: Instant) -> Result<Lease, PluginError> {
        let fastest_known = self
            .endpoints
            .iter()
            .filter_map(|e| e.record().latency_ms)
            .fold(None, |min: Option<f64>, l| {
                Some(min.map_or(l, |m| m.min(l)))
            });
        let mut best: Option<(f64, bool, &Arc<Endpoint>)> = None;
        for pass_tried in [false, true] {
            for e in &self.endpoints {
                if tried.contains(&e.index) != pass_tried {
                    continue;
                }
                let record = e.record();
                let probe = match record.state {
                    State::Closed => false,
                    _ if !self.breakers() => false,
                    State::Open(until) if now >= until => true,
                    State::Open(_) | State::Probing => continue,
                };
                let latency = record
                    .latency_ms
                    .or(fastest_known)
                    .unwrap_or(1.0)
                    .max(0.001);
                let score = (e.in_flight.load(Ordering::Relaxed) + 1) as f64 * latency;
                if best.is_none_or(|(s, _, _)| score < s) {
                    best = Some((score, probe, e));
                }
            }
            if best.is_some() {
                break;
            }
        }
        let Some((_, probe, endpoint)) = best else {
            return Err(self.all_open(now));
        };
        if probe {
            let mut record = endpoint.record();
            // Another thread may have started the probe since.
            if !matches!(record.state, State::Open(until) if now >= until) {
                drop(record);
                return self.acquire(&[tried, &[endpoint.index]].concat(), now);
            }
            record.state = State::Probing;
        }
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        endpoint.record().requests += 1;
        Ok(Lease {
            endpoint: endpoint.clone(),
            plugin: self.plugin,
            breaker: self.breaker,
            breakers: self.breakers(),
            started: now,
            probe,
            settled: false,
        })
    }

    /// Logs every endpoint's figures when the last report is `every` old (the first call
    /// only starts the clock); returns whether it logged. Pools of one endpoint never do.
    pub fn report(&self, now: Instant, every: Duration) -> bool {
        if !self.breakers() {
            return false;
        }
        let mut last = self.last_report.lock().unwrap_or_else(|p| p.into_inner());
        match *last {
            Some(at) if now.saturating_duration_since(at) < every => false,
            None => {
                *last = Some(now);
                false
            }
            Some(_) => {
                *last = Some(now);
                drop(last);
                log::info!("{}: {}", self.plugin, self.describe().1);
                true
            }
        }
    }

    /// Whether an endpoint outside `tried` could take a request now.
    pub fn has_untried(&self, tried: &[usize], now: Instant) -> bool {
        self.endpoints.iter().any(|e| {
            !tried.contains(&e.index)
                && match e.record().state {
                    State::Closed => true,
                    State::Open(until) => now >= until || !self.breakers(),
                    State::Probing => !self.breakers(),
                }
        })
    }

    fn all_open(&self, now: Instant) -> PluginError {
        let next = self
            .endpoints
            .iter()
            .filter_map(|e| match e.record().state {
                State::Open(until) => Some(until.saturating_duration_since(now)),
                _ => None,
            })
            .min()
            .unwrap_or_default();
        PluginError::unavailable(format!(
            "{}: every endpoint of the pool is failing (circuit open): {}; the next probe is \
             in {} ms",
            self.plugin,
            self.endpoints
                .iter()
                .map(|e| e.base_url.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            next.as_millis()
        ))
        .with_retry_after(Some(next.as_millis() as u64))
    }

    /// Every endpoint's figures, in config order.
    pub fn stats(&self) -> Vec<EndpointStats> {
        self.endpoints
            .iter()
            .map(|e| {
                let r = e.record();
                EndpointStats {
                    base_url: e.base_url.clone(),
                    state: match r.state {
                        State::Closed => "closed",
                        State::Open(_) => "open",
                        State::Probing => "probing",
                    },
                    in_flight: e.in_flight.load(Ordering::Relaxed),
                    requests: r.requests,
                    failed: r.failed,
                    latency_ms: r.latency_ms,
                }
            })
            .collect()
    }

    /// One line for `health()`: the endpoint alone, or each endpoint with its figures; and
    /// whether any endpoint is in rotation.
    pub fn describe(&self) -> (bool, String) {
        if !self.breakers() {
            return (true, self.endpoints[0].base_url.clone());
        }
        let stats = self.stats();
        let mut text = format!("a pool of {} endpoints:", stats.len());
        for (i, s) in stats.iter().enumerate() {
            let _ = write!(
                text,
                "{} {} ({}, {} in flight, {} requests, {} failed{})",
                if i == 0 { "" } else { ";" },
                s.base_url,
                s.state,
                s.in_flight,
                s.requests,
                s.failed,
                s.latency_ms
                    .map(|l| format!(", ~{l:.0} ms"))
                    .unwrap_or_default()
            );
        }
        (stats.iter().any(|s| s.state != "open"), text)
    }
}

/// A request's hold on an endpoint: counted in flight until it is settled or dropped.
#[derive(Debug)]
pub struct Lease {
    endpoint: Arc<Endpoint>,
    plugin: &'static str,
    breaker: BreakerSettings,
    breakers: bool,
    started: Instant,
    probe: bool,
    settled: bool,
}

impl Lease {
    /// The endpoint's base URL.
    pub fn base_url(&self) -> &str {
        &self.endpoint.base_url
    }

    /// Its index in the pool.
    pub fn index(&self) -> usize {
        self.endpoint.index
    }

    /// The request succeeded (its whole answer is in).
    pub fn succeed(&mut self, now: Instant) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let elapsed = now.saturating_duration_since(self.started).as_secs_f64() * 1000.0;
        let mut r = self.endpoint.record();
        r.latency_ms = Some(match r.latency_ms {
            Some(avg) => avg + EWMA_WEIGHT * (elapsed - avg),
            None => elapsed,
        });
        r.failures_in_row = 0;
        if r.state != State::Closed {
            r.state = State::Closed;
            log::info!(
                "{}: endpoint {} is back in rotation (circuit closed)",
                self.plugin,
                self.endpoint.base_url
            );
        }
    }

    /// The request failed; `blame` says whether the endpoint is at fault (it counts towards
    /// its breaker).
    pub fn fail(&mut self, blame: bool, now: Instant) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let mut r = self.endpoint.record();
        r.failed += 1;
        if !blame {
            if self.probe {
                // Not an answer either way: let another request probe.
                r.state = State::Open(now);
            }
            return;
        }
        r.failures_in_row += 1;
        if self.breakers && (self.probe || r.failures_in_row >= self.breaker.failures) {
            r.state = State::Open(now + self.breaker.cooldown);
            log::warn!(
                "{}: endpoint {} taken out of rotation for {} ms after {} failure(s) in a row \
                 (circuit open{})",
                self.plugin,
                self.endpoint.base_url,
                self.breaker.cooldown.as_millis(),
                r.failures_in_row,
                if self.probe { ", the probe failed" } else { "" }
            );
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.settled && self.probe {
            // Cancelled mid-probe: neither outcome; the next request may probe.
            let mut r = self.endpoint.record();
            if r.state == State::Probing {
                r.state = State::Open(Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod pool_tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn pool(n: usize) -> Pool {
        let urls: Vec<String> = (0..n).map(|i| format!("http://s{i}")).collect();
        let refs: Vec<&str> = urls.iter().map(String::as_str).collect();
        Pool::new(
            "test",
            &refs,
            BreakerSettings {
                failures: 2,
                cooldown: 100 * MS,
            },
        )
    }

    fn served(p: &Pool, latency: Duration, t: Instant) -> usize {
        let mut lease = p.acquire(&[], t).unwrap();
        let i = lease.index();
        lease.succeed(t + latency);
        i
    }

    #[test]
    fn least_outstanding_with_equal_latency_then_weighted_by_latency() {
        let p = pool(3);
        let t = Instant::now();
        // Nothing known: in flight decides, ties in config order.
        let a = p.acquire(&[], t).unwrap();
        let b = p.acquire(&[], t).unwrap();
        let c = p.acquire(&[], t).unwrap();
        assert_eq!((a.index(), b.index(), c.index()), (0, 1, 2));
        let d = p.acquire(&[], t).unwrap();
        assert_eq!(d.index(), 0);
        drop((a, b, c, d));
        // s0 answers in 100 ms, s1 in 200, s2 in 400.
        let p = pool(3);
        for (i, ms) in [(0, 100), (1, 200), (2, 400)] {
            let mut l = p.acquire(&[0, 1, 2][..i], t).unwrap();
            assert_eq!(l.index(), i);
            l.succeed(t + ms * MS);
        }
        // Idle: the fastest. With one in flight there (score 200), s1 (200) ties and the
        // config order keeps s0; with two (300), s1 (200) wins.
        let l0 = p.acquire(&[], t).unwrap();
        assert_eq!(l0.index(), 0);
        let l1 = p.acquire(&[], t).unwrap();
        assert_eq!(l1.index(), 0);
        let l2 = p.acquire(&[], t).unwrap();
        assert_eq!(l2.index(), 1);
        // s0 at 3 × 100 still beats s1 at 2 × 200 and s2 at 1 × 400.
        assert_eq!(served(&p, 10 * MS, t), 0);
        drop((l0, l1, l2));
    }

    #[test]
    fn an_open_endpoint_gets_no_request_until_its_probe() {
        let p = pool(2);
        let t = Instant::now();
        served(&p, 10 * MS, t);
        for _ in 0..2 {
            let mut l = p.acquire(&[1], t).unwrap();
            assert_eq!(l.index(), 0);
            l.fail(true, t);
        }
        assert_eq!(p.stats()[0].state, "open");
        // Open: every request goes to s1, even when s1 is busy.
        let busy: Vec<Lease> = (0..5)
            .map(|_| p.acquire(&[], t + 50 * MS).unwrap())
            .collect();
        assert!(busy.iter().all(|l| l.index() == 1));
        // A retry that already tried s1 still may not go to s0.
        assert_eq!(p.acquire(&[1], t + 50 * MS).unwrap().index(), 1);
        assert!(!p.has_untried(&[1], t + 50 * MS));
        // After the cooldown: exactly one probe.
        let mut probe = p.acquire(&[], t + 101 * MS).unwrap();
        assert_eq!(probe.index(), 0);
        assert_eq!(p.stats()[0].state, "probing");
        assert_eq!(p.acquire(&[], t + 102 * MS).unwrap().index(), 1);
        // A failed probe opens it again at once; a good one closes it.
        probe.fail(true, t + 110 * MS);
        assert_eq!(p.stats()[0].state, "open");
        assert_eq!(p.acquire(&[], t + 150 * MS).unwrap().index(), 1);
        let mut probe = p.acquire(&[1], t + 211 * MS).unwrap();
        assert_eq!(probe.index(), 0);
        probe.succeed(t + 220 * MS);
        assert_eq!(p.stats()[0].state, "closed");
        drop(busy);
        let (healthy, text) = p.describe();
        assert!(healthy && text.contains("http://s0 (closed"), "{text}");
        // The figures are logged once a minute while the pool is used.
        assert!(!p.report(t, 60_000 * MS));
        assert!(!p.report(t + 59_000 * MS, 60_000 * MS));
        assert!(p.report(t + 60_000 * MS, 60_000 * MS));
        assert!(!pool(1).report(t + 120_000 * MS, MS));
    }

    #[test]
    fn input_errors_do_not_count_and_all_open_fails_fast() {
        let p = pool(2);
        let t = Instant::now();
        for _ in 0..5 {
            p.acquire(&[], t).unwrap().fail(false, t);
        }
        assert!(p.stats().iter().all(|s| s.state == "closed"));
        for _ in 0..4 {
            p.acquire(&[], t).unwrap().fail(true, t);
        }
        assert!(p.stats().iter().all(|s| s.state == "open"));
        let e = p.acquire(&[], t + 10 * MS).unwrap_err();
        assert!(e.message().contains("every endpoint"), "{}", e.message());
        assert!(!p.describe().0);
        // A single endpoint has no breaker here: the host's handles it.
        let one = pool(1);
        for _ in 0..5 {
            one.acquire(&[], t).unwrap().fail(true, t);
        }
        assert_eq!(one.acquire(&[0], t).unwrap().index(), 0);
    }

    #[test]
    fn a_cancelled_probe_lets_the_next_request_probe() {
        let p = pool(2);
        let t = Instant::now();
        for _ in 0..2 {
            p.acquire(&[1], t).unwrap().fail(true, t);
        }
        let probe = p.acquire(&[1], t + 200 * MS).unwrap();
        assert_eq!(probe.index(), 0);
        drop(probe);
        assert_eq!(p.acquire(&[1], t + 200 * MS).unwrap().index(), 0);
        assert_eq!(p.stats()[0].in_flight, 0);
    }

    #[test]
    fn settings_are_checked_with_their_keys() {
        let ok = |_: &str| Ok(());
        let urls = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        check_settings(&urls(&["http://a", "http://b"]), 3, 10_000, ok).unwrap();
        for (u, f, c, key) in [
            (urls(&["http://a", "http://a/"]), 3, 10_000, "twice"),
            (urls(&["http://a"]), 0, 10_000, "endpoint_failures"),
            (urls(&["http://a"]), 3, 5, "endpoint_cooldown_ms"),
        ] {
            let e = check_settings(&u, f, c, ok).unwrap_err();
            assert!(e.message().contains(key), "{}", e.message());
        }
        let e = check_settings(&urls(&["http://a", "ftp://b"]), 3, 10_000, |u| {
            if u.starts_with("http") {
                Ok(())
            } else {
                Err(PluginError::config("`base_url` must start with http://"))
            }
        })
        .unwrap_err();
        assert!(
            e.message().contains("`base_urls` entry 2"),
            "{}",
            e.message()
        );
    }
}
