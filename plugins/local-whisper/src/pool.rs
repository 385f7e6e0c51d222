//! A lazily grown pool of decoder states shared by concurrent transcriptions.
//!
//! A whisper.cpp context (the weights) can be shared by threads, but each transcription needs
//! a state of its own (KV caches and compute buffers, ~23 MB for tiny.en). The pool starts with
//! one state, made at load so that a failure shows at start, and makes another only when a
//! call finds every state made so far busy, none comes back within a grace period
//! (`pool_grow_after_ms`, none by default), and fewer than the maximum (`pool_size`) exist: a
//! host whose calls never overlap never pays for a second state. [`Pool::get`] makes the new item
//! outside the lock; when making it fails, the caller logs a warning, the pool stops
//! growing at its current size (a state is only refused when memory is short, and retrying on
//! every overlap would spend the time and the memory again), and the caller waits for a busy
//! item instead. The returned [`Lease`] puts the item back when dropped, even when the
//! transcription panics.

use std::fmt::Display;
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A set of reusable values made on demand up to a maximum, handed out one caller at a time.
pub struct Pool<T> {
    inner: Mutex<Inner<T>>,
    returned: Condvar,
    /// How long a caller waits for a busy item before making one.
    grow_after: Duration,
}

/// The pool's state behind its lock.
struct Inner<T> {
    free: Vec<T>,
    /// Items made, plus those being made now (outside the lock).
    made: usize,
    /// The most items the pool will make: the configured maximum, lowered to `made` when
    /// making one fails.
    limit: usize,
}

/// What a caller of [`Pool::get`] does next, decided under the lock.
enum Next<T> {
    Take(T),
    Make,
}

impl<T> Pool<T> {
    /// A pool holding `first` that will make up to `max` items in all (at least one), each
    /// only after a caller has waited `grow_after` for a busy one in vain.
    pub fn new(first: T, max: usize, grow_after: Duration) -> Self {
        Pool {
            inner: Mutex::new(Inner {
                free: vec![first],
                made: 1,
                limit: max.max(1),
            }),
            returned: Condvar::new(),
            grow_after,
        }
    }

    /// How many items the pool has made (or is making) so far.
    pub fn size(&self) -> usize {
        self.lock().made
    }

    /// The most items the pool will make.
    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    /// How many items are free now.
    pub fn available(&self) -> usize {
        self.lock().free.len()
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // The fields are consistent even if a holder panicked: each update is one statement.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a free item; when all are in use, waits for one to be returned, and makes one
    /// with `make` instead if none is within the grace period and the pool may still grow. A
    /// `make` error is logged as a warning (it says what could not be made), and the caller
    /// waits instead.
    pub fn get<E: Display>(&self, make: impl FnOnce() -> Result<T, E>) -> Lease<'_, T> {
        match self.take_or_reserve() {
            Next::Take(item) => return self.lease(item),
            Next::Make => {}
        }
        let reservation = Reservation { pool: self };
        let started = Instant::now();
        match make() {
            Ok(item) => {
                reservation.keep();
                log::debug!(
                    "calls overlap: made pooled item {} of at most {} in {} ms",
                    self.size(),
                    self.limit(),
                    started.elapsed().as_millis()
                );
                self.lease(item)
            }
            Err(e) => {
                drop(reservation);
                log::warn!(
                    "{e}; waiting for a busy one instead, and the pool stays at {}",
                    self.size()
                );
                self.wait_for_free()
            }
        }
    }

    /// A free item, or after the grace period a reserved place for a new one (counted in
    /// `made` before it exists).
    fn take_or_reserve(&self) -> Next<T> {
        let deadline = Instant::now() + self.grow_after;
        let mut inner = self.lock();
        loop {
            if let Some(item) = inner.free.pop() {
                return Next::Take(item);
            }
            if inner.made >= inner.limit {
                inner = self
                    .returned
                    .wait(inner)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                inner.made += 1;
                return Next::Make;
            }
            inner = match self.returned.wait_timeout(inner, left) {
                Ok((inner, _)) => inner,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Waits until an item is returned and takes it.
    fn wait_for_free(&self) -> Lease<'_, T> {
        let mut inner = self.lock();
        loop {
            if let Some(item) = inner.free.pop() {
                drop(inner);
                return self.lease(item);
            }
            inner = self
                .returned
                .wait(inner)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn lease(&self, item: T) -> Lease<'_, T> {
        Lease {
            pool: self,
            item: Some(item),
        }
    }

    fn put_back(&self, item: T) {
        self.lock().free.push(item);
        self.returned.notify_one();
    }
}

/// A place reserved in [`Pool::take_or_reserve`] for an item being made; dropped (the item
/// could not be made, or its maker panicked) it gives the place back and stops the growth.
struct Reservation<'a, T> {
    pool: &'a Pool<T>,
}

impl<T> Reservation<'_, T> {
    /// The item was made: the place stays taken.
    fn keep(self) {
        std::mem::forget(self);
    }
}

impl<T> Drop for Reservation<'_, T> {
    fn drop(&mut self) {
        let mut inner = self.pool.lock();
        inner.made -= 1;
        inner.limit = inner.made;
    }
}

/// An item taken from a [`Pool`]; it goes back when the lease is dropped.
pub struct Lease<'a, T> {
    pool: &'a Pool<T>,
    // Always `Some` until `drop`.
    item: Option<T>,
}

impl<T> Deref for Lease<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.item {
            Some(item) => item,
            None => unreachable!("a lease holds its item until dropped"),
        }
    }
}

impl<T> DerefMut for Lease<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.item {
            Some(item) => item,
            None => unreachable!("a lease holds its item until dropped"),
        }
    }
}

impl<T> Drop for Lease<'_, T> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            self.pool.put_back(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    /// A maker that counts its calls and gives out 1, 2, 3… (the first item is 0).
    fn counting(calls: &AtomicUsize) -> impl FnOnce() -> Result<usize, Infallible> + '_ {
        move || Ok(calls.fetch_add(1, Ordering::SeqCst) + 1)
    }

    #[test]
    fn lease_returns_item_on_drop() {
        let pool = Pool::new(1, 2, Duration::ZERO);
        let calls = AtomicUsize::new(0);
        let a = pool.get(counting(&calls));
        assert_eq!(pool.available(), 0);
        let b = pool.get(counting(&calls));
        assert_eq!(*a + *b, 2, "the first item, then a made one");
        drop(a);
        assert_eq!(pool.available(), 1);
        drop(b);
        assert_eq!(pool.available(), 2);
        assert_eq!(pool.size(), 2);
    }

    #[test]
    fn grows_only_when_calls_overlap() {
        let pool = Pool::new(0, 4, Duration::ZERO);
        let calls = AtomicUsize::new(0);
        for _ in 0..10 {
            let lease = pool.get(counting(&calls));
            assert_eq!(*lease, 0);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 0, "no call overlapped");
        assert_eq!((pool.size(), pool.limit()), (1, 4));
    }

    #[test]
    fn a_brief_overlap_waits_for_the_busy_item_instead_of_growing() {
        let pool = Arc::new(Pool::new(0, 2, Duration::from_secs(5)));
        let calls = Arc::new(AtomicUsize::new(0));
        let held = pool.get(counting(&calls));
        let waiter = {
            let (pool, calls) = (pool.clone(), calls.clone());
            std::thread::spawn(move || *pool.get(counting(&calls)))
        };
        std::thread::sleep(Duration::from_millis(50));
        drop(held);
        assert_eq!(waiter.join().unwrap(), 0, "the first item, returned");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!(pool.size(), 1);
    }

    #[test]
    fn grows_once_the_grace_period_passes() {
        let grace = Duration::from_millis(50);
        let pool = Arc::new(Pool::new(0, 2, grace));
        let calls = Arc::new(AtomicUsize::new(0));
        let _held = pool.get(counting(&calls));
        let waiter = {
            let (pool, calls) = (pool.clone(), calls.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let item = *pool.get(counting(&calls));
                (item, started.elapsed())
            })
        };
        let (item, waited) = waiter.join().unwrap();
        assert_eq!(item, 1, "a made item");
        assert!(waited >= grace, "made after {waited:?}");
        assert_eq!((calls.load(Ordering::SeqCst), pool.size()), (1, 2));
    }

    #[test]
    fn growth_stops_at_the_maximum() {
        let pool = Arc::new(Pool::new(0, 3, Duration::ZERO));
        let calls = Arc::new(AtomicUsize::new(0));
        let held: Vec<_> = (0..3).map(|_| pool.get(counting(&calls))).collect();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(pool.size(), 3);
        let (tx, rx) = mpsc::channel();
        let waiter = {
            let (pool, calls) = (pool.clone(), calls.clone());
            std::thread::spawn(move || {
                let lease = pool.get(counting(&calls));
                tx.send(*lease).unwrap();
            })
        };
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "a fourth caller must wait, not make a fourth item"
        );
        let mut held = held;
        let returned = held.remove(1);
        let value = *returned;
        drop(returned);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), value);
        drop(held);
        waiter.join().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(pool.size(), 3);
    }

    #[test]
    fn concurrency_peaks_at_the_maximum() {
        let pool = Arc::new(Pool::new(0, 2, Duration::ZERO));
        let calls = Arc::new(AtomicUsize::new(0));
        let holders = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (pool, calls) = (pool.clone(), calls.clone());
                let (holders, peak) = (holders.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        let _lease = pool.get(counting(&calls));
                        let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(2));
                        holders.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one item made beside the first"
        );
        assert_eq!((pool.size(), pool.available()), (2, 2));
    }

    #[test]
    fn a_failing_maker_makes_the_caller_wait_and_stops_growth() {
        let pool = Arc::new(Pool::new(7, 4, Duration::ZERO));
        let held = pool.get(|| Err::<u32, _>("unexpected call"));
        let attempts = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let waiter = {
            let (pool, attempts) = (pool.clone(), attempts.clone());
            std::thread::spawn(move || {
                let lease = pool.get(|| {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    Err("out of memory")
                });
                tx.send(*lease).unwrap();
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while attempts.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            attempts.load(Ordering::SeqCst),
            1,
            "the caller tried to grow"
        );
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "the caller whose item could not be made waits for the busy one"
        );
        drop(held);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 7);
        waiter.join().unwrap();
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        assert_eq!((pool.size(), pool.limit()), (1, 1));
        // Later overlaps wait rather than try again.
        let held = pool.get(|| Err::<u32, _>("unexpected call"));
        let (later, later_attempts) = (pool.clone(), attempts.clone());
        let again = std::thread::spawn(move || {
            *later.get(|| {
                later_attempts.fetch_add(1, Ordering::SeqCst);
                Err("growth should have stopped")
            })
        });
        std::thread::sleep(Duration::from_millis(20));
        drop(held);
        assert_eq!(again.join().unwrap(), 7);
        assert_eq!(attempts.load(Ordering::SeqCst), 1, "no second attempt");
    }

    #[test]
    fn a_panicking_maker_gives_its_place_back() {
        let pool = Pool::new(1, 2, Duration::ZERO);
        let held = pool.get(|| Err::<u32, _>("unexpected call"));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.get(|| -> Result<u32, Infallible> { panic!("maker blew up") })
        }));
        assert!(result.is_err());
        assert_eq!((pool.size(), pool.limit()), (1, 1));
        drop(held);
        assert_eq!(*pool.get(|| Err::<u32, _>("unexpected call")), 1);
    }

    #[test]
    fn item_comes_back_after_a_panic() {
        let pool = Pool::new(7, 1, Duration::ZERO);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _lease = pool.get(|| Err::<u32, _>("unexpected call"));
            panic!("transcription blew up");
        }));
        assert!(result.is_err());
        assert_eq!(*pool.get(|| Err::<u32, _>("unexpected call")), 7);
    }
}
