//! A fixed pool of decoder states shared by concurrent transcriptions.
//!
//! A whisper.cpp context (the weights) can be shared by threads, but each transcription needs
//! a state of its own (KV caches and compute buffers, ~30 MB for tiny.en). The pool holds
//! `pool_size` states made up front; [`Pool::get`] blocks until one is free and the returned
//! [`Lease`] puts it back when dropped, even when the transcription panics.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard};

/// A fixed set of reusable values, handed out one caller at a time.
pub struct Pool<T> {
    free: Mutex<Vec<T>>,
    returned: Condvar,
    size: usize,
}

impl<T> Pool<T> {
    /// A pool holding `items`.
    pub fn new(items: Vec<T>) -> Self {
        Pool {
            size: items.len(),
            free: Mutex::new(items),
            returned: Condvar::new(),
        }
    }

    /// How many items the pool holds in all.
    pub fn size(&self) -> usize {
        self.size
    }

    /// How many items are free now.
    pub fn available(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        // The vector is consistent even if a holder panicked: no invariant spans the lock.
        self.free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a free item, waiting for one to be returned if all are in use. Returns `None`
    /// only for an empty pool.
    pub fn get(&self) -> Option<Lease<'_, T>> {
        if self.size == 0 {
            return None;
        }
        let mut free = self.lock();
        loop {
            if let Some(item) = free.pop() {
                return Some(Lease {
                    pool: self,
                    item: Some(item),
                });
            }
            free = self
                .returned
                .wait(free)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn put_back(&self, item: T) {
        self.lock().push(item);
        self.returned.notify_one();
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn lease_returns_item_on_drop() {
        let pool = Pool::new(vec![1, 2]);
        let a = pool.get().unwrap();
        assert_eq!(pool.available(), 1);
        let b = pool.get().unwrap();
        assert_eq!(*a + *b, 3);
        assert_eq!(pool.available(), 0);
        drop(a);
        assert_eq!(pool.available(), 1);
        drop(b);
        assert_eq!(pool.available(), 2);
        assert_eq!(pool.size(), 2);
    }

    #[test]
    fn empty_pool_gives_nothing() {
        assert!(Pool::<u8>::new(Vec::new()).get().is_none());
    }

    #[test]
    fn never_more_holders_than_items() {
        let pool = Arc::new(Pool::new(vec![(), ()]));
        let holders = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (pool, holders, peak) = (pool.clone(), holders.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        let _lease = pool.get().unwrap();
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
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn item_comes_back_after_a_panic() {
        let pool = Pool::new(vec![7]);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _lease = pool.get().unwrap();
            panic!("transcription blew up");
        }));
        assert!(result.is_err());
        assert_eq!(*pool.get().unwrap(), 7);
    }
}
