//! Scripts loaded recently, so a hot script is not downloaded for every execution.
//!
//! Keyed by location, each script with the redirects that loading it followed (a tier is served
//! it only if its own rules accept every one of them; see [`Script::hops`]), bounded in bytes (least recently used first out), each entry kept with
//! its validator (the HTTP ETag, or the store's ETag) and when it was last checked: within the
//! TTL it is used as is; after it, the loader revalidates with a conditional request and only
//! downloads again when the script changed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hashlink::LruCache;

use super::rules::Location;

/// A loaded script.
#[derive(Debug)]
pub struct Script {
    pub code: Arc<str>,
    /// Its SHA-256 digest, for `sha256` pins.
    pub digest: [u8; 32],
    /// The validator for conditional requests, if the server gave one.
    pub etag: Option<String>,
    /// Every location a redirect led to while loading it, in order (none for a direct load).
    /// A tier may take the script from the cache only if its rules accept each of them, as
    /// its own load would have required.
    pub hops: Vec<Location>,
}

struct Entry {
    script: Arc<Script>,
    checked: Instant,
}

/// What the cache holds for a location.
pub enum Lookup {
    /// Checked within the TTL.
    Fresh(Arc<Script>),
    /// Older than the TTL: revalidate before use.
    Stale(Arc<Script>),
    Missing,
}

/// The cache; `capacity` 0 keeps nothing.
pub struct Cache {
    entries: Mutex<Entries>,
    capacity: usize,
    ttl: Duration,
}

struct Entries {
    map: LruCache<String, Entry>,
    bytes: usize,
}

impl Cache {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(Entries {
                map: LruCache::new_unbounded(),
                bytes: 0,
            }),
            capacity,
            ttl,
        }
    }

    pub fn get(&self, key: &str) -> Lookup {
        let mut entries = self
            .entries
            .lock()
            .expect("the cache lock is never poisoned");
        match entries.map.get(key) {
            None => Lookup::Missing,
            Some(entry) if entry.checked.elapsed() < self.ttl => {
                Lookup::Fresh(entry.script.clone())
            }
            Some(entry) => Lookup::Stale(entry.script.clone()),
        }
    }

    /// Keeps `script` under `key` as checked now, evicting the least recently used entries
    /// past the capacity; a script larger than the whole cache is not kept.
    pub fn put(&self, key: String, script: Arc<Script>) {
        let size = key.len() + script.code.len();
        let mut entries = self
            .entries
            .lock()
            .expect("the cache lock is never poisoned");
        if let Some(old) = entries.map.remove(&key) {
            entries.bytes -= key.len() + old.script.code.len();
        }
        if size > self.capacity {
            return;
        }
        entries.bytes += size;
        entries.map.insert(
            key,
            Entry {
                script,
                checked: Instant::now(),
            },
        );
        while entries.bytes > self.capacity {
            let Some((key, old)) = entries.map.remove_lru() else {
                break;
            };
            entries.bytes -= key.len() + old.script.code.len();
        }
    }

    /// Bytes held (keys and scripts).
    pub fn bytes(&self) -> usize {
        self.entries
            .lock()
            .expect("the cache lock is never poisoned")
            .bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(code: &str) -> Arc<Script> {
        Arc::new(Script {
            code: Arc::from(code),
            digest: [0; 32],
            etag: None,
            hops: Vec::new(),
        })
    }

    #[test]
    fn the_cache_stays_within_its_bytes_and_drops_the_least_recently_used() {
        let cache = Cache::new(10, Duration::from_secs(60));
        cache.put("a".into(), script("1234"));
        cache.put("b".into(), script("1234"));
        assert!(matches!(cache.get("a"), Lookup::Fresh(_)));
        cache.put("c".into(), script("1234"));
        assert_eq!(cache.bytes(), 10);
        assert!(matches!(cache.get("b"), Lookup::Missing));
        assert!(matches!(cache.get("a"), Lookup::Fresh(_)));
        cache.put("d".into(), script(&"x".repeat(20)));
        assert!(matches!(cache.get("d"), Lookup::Missing));
        cache.put("a".into(), script("12"));
        assert_eq!(cache.bytes(), 8);
    }

    #[test]
    fn entries_go_stale_after_the_ttl() {
        let cache = Cache::new(100, Duration::ZERO);
        cache.put("a".into(), script("1"));
        assert!(matches!(cache.get("a"), Lookup::Stale(_)));
    }
}
