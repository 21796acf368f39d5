//! Model outputs kept in memory between queries, bounded in bytes.
//!
//! Image AI work repeats itself: the same photos go through the same model
//! with another filter, heads share a backbone, a search runs again. One
//! [`ModelCache`] per database keeps each model's raw output vector per
//! image, keyed by what determines it: the model file (checksum), the read
//! format its input was built under, the table's identity and the image id.
//! A table identity changes when a table is dropped and created again, so a
//! new table of the same name never sees old entries, while an append keeps
//! the old rows' entries valid (ids are never reused).
//!
//! Entries are weighed by their real size (moka evicts by weight, with
//! TinyLFU admission); concurrent misses of one key are computed once:
//! the first caller claims the key, later ones wait for its result.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use moka::notification::RemovalCause;
use moka::sync::Cache;

use crate::error::{Error, Result};
use crate::read_format::space::ReadFormat;

/// The default bound, `SET spectradb.cache_size` changes it.
pub const DEFAULT_CACHE_BYTES: u64 = 256 << 20;

/// Bookkeeping bytes counted per entry on top of its values.
const ENTRY_OVERHEAD: usize = 96;

/// What one cached output belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutputKey {
    /// SHA-256 of the model file.
    pub model: Arc<str>,
    /// The read format the input was built under (`None`: the model's default).
    pub format: Option<ReadFormat>,
    /// The image table's identity (see `TableEntry::uid`).
    pub table: u64,
    /// The image's row id.
    pub id: u64,
}

/// A model's raw output vector for one image.
pub type Output = Arc<[f32]>;

/// Counters of one kind of entry, for `spectradb_cache`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStats {
    pub kind: &'static str,
    pub entries: u64,
    pub bytes: u64,
    pub capacity: u64,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

/// A key some caller is computing.
#[derive(Default)]
struct Pending {
    /// `Some(None)`: the computing caller failed; waiters compute it themselves.
    result: Mutex<Option<Option<Output>>>,
    ready: Condvar,
}

impl Pending {
    fn finish(&self, value: Option<Output>) {
        *self.result.lock().expect("pending lock") = Some(value);
        self.ready.notify_all();
    }

    fn wait(&self) -> Option<Output> {
        let mut guard = self.result.lock().expect("pending lock");
        loop {
            if let Some(v) = guard.as_ref() {
                return v.clone();
            }
            guard = self.ready.wait(guard).expect("pending lock");
        }
    }
}

/// Where each requested output came from, for EXPLAIN ANALYZE.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Lookup {
    pub hits: u64,
    pub misses: u64,
}

/// The cache of one database.
pub struct ModelCache {
    outputs: RwLock<Option<Cache<OutputKey, Output>>>,
    capacity: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: Arc<AtomicU64>,
    in_flight: Mutex<HashMap<OutputKey, Arc<Pending>>>,
}

impl std::fmt::Debug for ModelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ModelCache({} bytes)", self.capacity())
    }
}

impl Default for ModelCache {
    fn default() -> Self {
        ModelCache::new(DEFAULT_CACHE_BYTES)
    }
}

fn weigh(key: &OutputKey, value: &Output) -> u32 {
    let bytes = value.len() * 4 + key.model.len() + ENTRY_OVERHEAD;
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

impl ModelCache {
    /// A cache holding at most `capacity` bytes (0: off).
    pub fn new(capacity: u64) -> Self {
        let cache = ModelCache {
            outputs: RwLock::new(None),
            capacity: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: Arc::new(AtomicU64::new(0)),
            in_flight: Mutex::new(HashMap::new()),
        };
        cache.resize(capacity);
        cache
    }

    /// The bound in bytes (0: the cache is off).
    pub fn capacity(&self) -> u64 {
        self.capacity.load(Ordering::Relaxed)
    }

    pub fn enabled(&self) -> bool {
        self.capacity() > 0
    }

    /// Changes the bound. The entries are dropped (a new size is a new cache).
    pub fn resize(&self, capacity: u64) {
        if self.capacity() == capacity && self.outputs.read().expect("cache lock").is_some() {
            return;
        }
        let evictions = self.evictions.clone();
        let cache = (capacity > 0).then(|| {
            Cache::builder()
                .max_capacity(capacity)
                .weigher(weigh)
                .eviction_listener(move |_k, _v, cause| {
                    if cause == RemovalCause::Size {
                        evictions.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .build()
        });
        *self.outputs.write().expect("cache lock") = cache;
        self.capacity.store(capacity, Ordering::Relaxed);
    }

    /// Drops every entry (the counters stay).
    pub fn clear(&self) {
        if let Some(c) = self.outputs.read().expect("cache lock").as_ref() {
            c.invalidate_all();
            c.run_pending_tasks();
        }
    }

    fn cache(&self) -> Option<Cache<OutputKey, Output>> {
        self.outputs.read().expect("cache lock").clone()
    }

    /// The cached output of `key`, counting a hit or a miss.
    pub fn get(&self, key: &OutputKey) -> Option<Output> {
        let cache = self.cache()?;
        let v = cache.get(key);
        let counter = if v.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        v
    }

    /// Like [`ModelCache::get`], counting only a hit: a scan checking
    /// whether it may skip an image's bands (on a miss the model function
    /// looks again, and counts the miss).
    pub fn peek(&self, key: &OutputKey) -> Option<Output> {
        let v = self.cache()?.get(key);
        if v.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        v
    }

    pub fn insert(&self, key: OutputKey, value: Output) {
        if let Some(c) = self.cache() {
            c.insert(key, value);
        }
    }

    /// The outputs of `keys`: cached ones, ones another caller is computing
    /// (waited for), and the rest from `compute`, which gets the indices of
    /// the keys this caller claimed and returns their outputs in order.
    /// Each key is computed once however many callers miss it at once.
    pub fn get_or_compute(
        &self,
        keys: &[OutputKey],
        mut compute: impl FnMut(&[usize]) -> Result<Vec<Output>>,
    ) -> Result<(Vec<Output>, Lookup)> {
        let mut out: Vec<Option<Output>> = vec![None; keys.len()];
        let mut lookup = Lookup::default();
        let Some(cache) = self.cache() else {
            let all: Vec<usize> = (0..keys.len()).collect();
            lookup.misses = keys.len() as u64;
            return Ok((compute(&all)?, lookup));
        };
        let mut mine = Vec::new();
        let mut waiting = Vec::new();
        {
            let mut in_flight = self.in_flight.lock().expect("in-flight lock");
            for (i, key) in keys.iter().enumerate() {
                if let Some(v) = cache.get(key) {
                    out[i] = Some(v);
                    lookup.hits += 1;
                    continue;
                }
                lookup.misses += 1;
                match in_flight.get(key) {
                    Some(p) => waiting.push((i, p.clone())),
                    None => {
                        if mine.iter().any(|&j: &usize| keys[j] == *key) {
                            // The same key twice in one call: computed once, copied below.
                            continue;
                        }
                        in_flight.insert(key.clone(), Arc::new(Pending::default()));
                        mine.push(i);
                    }
                }
            }
        }
        self.hits.fetch_add(lookup.hits, Ordering::Relaxed);
        self.misses.fetch_add(lookup.misses, Ordering::Relaxed);
        let computed = if mine.is_empty() {
            Ok(Vec::new())
        } else {
            compute(&mine).and_then(|v| {
                if v.len() == mine.len() {
                    Ok(v)
                } else {
                    Err(Error::Internal(format!(
                        "computed {} outputs for {} images",
                        v.len(),
                        mine.len()
                    )))
                }
            })
        };
        // Publish (or give up) the claimed keys before waiting on others:
        // no caller waits while holding a claim, so none can deadlock.
        {
            let mut in_flight = self.in_flight.lock().expect("in-flight lock");
            for (n, &i) in mine.iter().enumerate() {
                let value = computed.as_ref().ok().map(|v| v[n].clone());
                if let Some(v) = &value {
                    cache.insert(keys[i].clone(), v.clone());
                    out[i] = Some(v.clone());
                }
                if let Some(p) = in_flight.remove(&keys[i]) {
                    p.finish(value);
                }
            }
        }
        let computed = computed?;
        drop(computed);
        for (i, key) in keys.iter().enumerate() {
            if out[i].is_none() {
                if let Some(&j) = mine.iter().find(|&&j| keys[j] == *key) {
                    out[i] = out[j].clone();
                }
            }
        }
        let mut retry = Vec::new();
        for (i, pending) in waiting {
            match pending.wait() {
                Some(v) => out[i] = Some(v),
                None => retry.push(i),
            }
        }
        if !retry.is_empty() {
            // The caller computing them failed: compute them here.
            for (n, v) in compute(&retry)?.into_iter().enumerate() {
                cache.insert(keys[retry[n]].clone(), v.clone());
                out[retry[n]] = Some(v);
            }
        }
        let out = out
            .into_iter()
            .map(|v| v.ok_or_else(|| Error::Internal("a cached output went missing".into())))
            .collect::<Result<Vec<_>>>()?;
        Ok((out, lookup))
    }

    /// Counters per kind of entry.
    pub fn stats(&self) -> Vec<CacheStats> {
        let (entries, bytes) = match self.cache() {
            Some(c) => {
                c.run_pending_tasks();
                (c.entry_count(), c.weighted_size())
            }
            None => (0, 0),
        };
        vec![CacheStats {
            kind: "model_output",
            entries,
            bytes,
            capacity: self.capacity(),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }]
    }
}

/// Parses a cache size: bytes, or a number with KB/MB/GB (powers of 1000)
/// or KiB/MiB/GiB (powers of 1024); `0` turns the cache off.
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => u64::MAX,
    };
    let value: Option<f64> = num.parse().ok();
    match value {
        Some(v) if mult != u64::MAX && v >= 0.0 && v * (mult as f64) < 1e15 => {
            Ok((v * mult as f64) as u64)
        }
        _ => Err(Error::InvalidArgument(format!(
            "spectradb.cache_size = '{text}': expected a size such as 268435456, '256MiB' or '1GB' (0 turns the cache off)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn key(id: u64) -> OutputKey {
        OutputKey {
            model: "abc".into(),
            format: None,
            table: 7,
            id,
        }
    }

    fn out(v: f32) -> Output {
        vec![v; 4].into()
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size(" 2 gb ").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("1.5KiB").unwrap(), 1536);
        for bad in ["", "lots", "-1", "5 parsecs"] {
            let e = parse_size(bad).unwrap_err().to_string();
            assert!(e.contains("cache_size"), "{bad}: {e}");
        }
    }

    #[test]
    fn computes_only_misses_and_counts_them() {
        let cache = ModelCache::new(1 << 20);
        cache.insert(key(1), out(1.0));
        let (got, lookup) = cache
            .get_or_compute(&[key(1), key(2), key(2)], |rows| {
                assert_eq!(rows, &[1]);
                Ok(vec![out(2.0)])
            })
            .unwrap();
        assert_eq!(got[0][0], 1.0);
        assert_eq!((got[1][0], got[2][0]), (2.0, 2.0));
        assert_eq!((lookup.hits, lookup.misses), (1, 2));
        assert_eq!(cache.get(&key(2)).unwrap()[0], 2.0);
    }

    #[test]
    fn stays_within_its_capacity() {
        let cache = ModelCache::new(20_000);
        for id in 0..1000 {
            cache.insert(key(id), vec![0.0; 250].into());
        }
        let s = &cache.stats()[0];
        assert!(s.bytes <= 20_000, "{s:?}");
        assert!(s.entries < 1000 && s.entries > 0, "{s:?}");
        assert!(s.evictions > 0, "{s:?}");
    }

    #[test]
    fn size_zero_is_off() {
        let cache = ModelCache::new(0);
        cache.insert(key(1), out(1.0));
        assert!(cache.get(&key(1)).is_none());
        let (_, lookup) = cache
            .get_or_compute(&[key(1)], |rows| {
                Ok(rows.iter().map(|_| out(3.0)).collect())
            })
            .unwrap();
        assert_eq!(lookup.misses, 1);
        assert!(cache.peek(&key(1)).is_none());
    }

    #[test]
    fn concurrent_misses_of_one_key_compute_once() {
        let cache = Arc::new(ModelCache::new(1 << 20));
        let runs = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (cache, runs) = (cache.clone(), runs.clone());
                std::thread::spawn(move || {
                    let keys: Vec<OutputKey> = (0..16).map(key).collect();
                    let (got, _) = cache
                        .get_or_compute(&keys, |rows| {
                            runs.fetch_add(rows.len(), Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            Ok(rows.iter().map(|&r| out(r as f32)).collect())
                        })
                        .unwrap();
                    for (i, v) in got.iter().enumerate() {
                        assert_eq!(v[0], i as f32);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 16);
    }

    #[test]
    fn a_failed_computation_is_retried_by_waiters() {
        let cache = Arc::new(ModelCache::new(1 << 20));
        let first = std::sync::Barrier::new(2);
        let first = Arc::new(first);
        let c2 = cache.clone();
        let f2 = first.clone();
        let failing = std::thread::spawn(move || {
            c2.get_or_compute(&[key(5)], |_| {
                f2.wait();
                std::thread::sleep(std::time::Duration::from_millis(30));
                Err(Error::Model("boom".into()))
            })
        });
        first.wait();
        let (got, _) = cache
            .get_or_compute(&[key(5)], |rows| {
                Ok(rows.iter().map(|_| out(9.0)).collect())
            })
            .unwrap();
        assert_eq!(got[0][0], 9.0);
        assert!(failing.join().unwrap().is_err());
    }
}
