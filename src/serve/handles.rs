//! What the server keeps between calls, under random handles: planned
//! queries between `GetFlightInfo` and `DoGet`, prepared statements until
//! they are closed. Anything unused for the idle timeout is dropped, so a
//! client that plans and never fetches holds nothing for long.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tonic::Status;

/// Items of one kind by handle, each dropped after `ttl` unused.
pub(super) struct Handles<T> {
    kind: &'static str,
    ttl: Duration,
    items: Mutex<HashMap<String, (T, Instant)>>,
}

impl<T> Handles<T> {
    pub(super) fn new(kind: &'static str, ttl: Duration) -> Self {
        Handles {
            kind,
            ttl,
            items: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (T, Instant)>> {
        let mut items = self.items.lock().expect("handles lock");
        let now = Instant::now();
        items.retain(|_, (_, used)| now.duration_since(*used) < self.ttl);
        items
    }

    /// Keeps `item` and returns its new handle (random, unguessable).
    pub(super) fn insert(&self, item: T) -> String {
        let handle = uuid::Uuid::new_v4().to_string();
        self.lock().insert(handle.clone(), (item, Instant::now()));
        handle
    }

    /// Removes and returns the item of `handle`.
    #[allow(clippy::result_large_err)]
    pub(super) fn take(&self, handle: &[u8]) -> Result<T, Status> {
        let key = String::from_utf8_lossy(handle);
        self.lock()
            .remove(key.as_ref())
            .map(|(item, _)| item)
            .ok_or_else(|| self.not_found())
    }

    /// Runs `f` on the item of `handle`, marking it used.
    #[allow(clippy::result_large_err)]
    pub(super) fn with<R>(&self, handle: &[u8], f: impl FnOnce(&mut T) -> R) -> Result<R, Status> {
        let key = String::from_utf8_lossy(handle);
        let mut items = self.lock();
        let (item, used) = items
            .get_mut(key.as_ref())
            .ok_or_else(|| self.not_found())?;
        *used = Instant::now();
        Ok(f(item))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn not_found(&self) -> Status {
        Status::not_found(format!(
            "no {} with this handle: it was used, closed, or unused for longer than the server's idle timeout ({} s)",
            self.kind,
            self.ttl.as_secs()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_taken_once_and_expire() {
        let h = Handles::new("planned query", Duration::from_secs(60));
        let a = h.insert(1);
        assert_eq!(h.with(a.as_bytes(), |v| *v).unwrap(), 1);
        assert_eq!(h.take(a.as_bytes()).unwrap(), 1);
        let again = h.take(a.as_bytes()).unwrap_err();
        assert_eq!(again.code(), tonic::Code::NotFound);
        assert!(again.message().contains("planned query"));
        let short = Handles::new("x", Duration::from_millis(1));
        let b = short.insert(2);
        std::thread::sleep(Duration::from_millis(5));
        assert!(short.take(b.as_bytes()).is_err());
        assert_eq!(short.len(), 0);
    }
}
