//! Scripts compiled once per worker: the bytecode QuickJS's own compiler wrote for a script,
//! kept by the SHA-256 of the script's source, language and compile options, so that a later execution
//! of the same script loads it into its fresh runtime instead of parsing again.
//!
//! - Only the engine's compiler fills the cache ([`crate::execution`]): the key is a hash of
//!   the source, so nothing a client sends can choose what bytecode is loaded.
//! - Bounded in bytes, not entries ([`BytecodeCache::new`]): the least recently used scripts are
//!   dropped first, and a script's bytecode larger than the whole budget is not kept.
//! - Filled only by executions that ended without an engine fault (see [`crate::fault`]), and
//!   emptied by its owner after one ([`BytecodeCache::clear`]): bytecode written by a runtime
//!   whose heap may be corrupt is never loaded again.

use std::{cell::RefCell, rc::Rc};

use hashlink::LinkedHashMap;
use sha2::{Digest, Sha256};

use crate::Language;

/// SHA-256 of a script's compile options, language and source.
pub type Key = [u8; 32];

/// Bytes an entry costs beyond its bytecode: the key, the map's links and the allocation's
/// header, rounded up.
const ENTRY_OVERHEAD: usize = 128;

/// Compiled scripts of one worker, least recently used first.
#[derive(Debug)]
pub struct BytecodeCache {
    inner: RefCell<Entries>,
}

#[derive(Debug)]
struct Entries {
    by_key: LinkedHashMap<Key, Rc<[u8]>>,
    bytes: usize,
    capacity: usize,
}

impl BytecodeCache {
    /// An empty cache that holds at most `capacity` bytes of bytecode and bookkeeping.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: RefCell::new(Entries {
                by_key: LinkedHashMap::new(),
                bytes: 0,
                capacity,
            }),
        }
    }

    /// The key of `source`, written in `language`, compiled as a script named `name` with
    /// QuickJS's eval `flags`.
    pub fn key(name: &str, flags: i32, language: Language, source: &str) -> Key {
        let mut hash = Sha256::new();
        hash.update(flags.to_le_bytes());
        hash.update([language as u8]);
        hash.update((name.len() as u64).to_le_bytes());
        hash.update(name.as_bytes());
        hash.update(source.as_bytes());
        hash.finalize().into()
    }

    /// The bytecode kept for `key`, which becomes the most recently used.
    pub fn get(&self, key: &Key) -> Option<Rc<[u8]>> {
        let mut entries = self.inner.borrow_mut();
        let bytecode = entries.by_key.get(key)?.clone();
        entries.by_key.to_back(key);
        Some(bytecode)
    }

    /// Keeps `bytecode` for `key`, dropping the least recently used entries to make room.
    pub fn insert(&self, key: Key, bytecode: Vec<u8>) {
        let cost = bytecode.len() + ENTRY_OVERHEAD;
        let mut entries = self.inner.borrow_mut();
        if cost > entries.capacity {
            return;
        }
        if let Some(old) = entries.by_key.remove(&key) {
            entries.bytes -= old.len() + ENTRY_OVERHEAD;
        }
        while entries.bytes + cost > entries.capacity {
            let Some((_, dropped)) = entries.by_key.pop_front() else {
                break;
            };
            entries.bytes -= dropped.len() + ENTRY_OVERHEAD;
        }
        entries.bytes += cost;
        entries.by_key.insert(key, Rc::from(bytecode));
    }

    /// Drops every entry.
    pub fn clear(&self) {
        let mut entries = self.inner.borrow_mut();
        entries.by_key.clear();
        entries.bytes = 0;
    }

    /// Bytes held now, bookkeeping included.
    pub fn bytes(&self) -> usize {
        self.inner.borrow().bytes
    }

    /// Scripts held now.
    pub fn len(&self) -> usize {
        self.inner.borrow().by_key.len()
    }

    /// True when no script is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        [n; 32]
    }

    #[test]
    fn the_least_recently_used_script_is_dropped_when_the_bytes_run_out() {
        let cache = BytecodeCache::new(3 * (100 + ENTRY_OVERHEAD));
        cache.insert(key(1), vec![1; 100]);
        cache.insert(key(2), vec![2; 100]);
        cache.insert(key(3), vec![3; 100]);
        assert!(cache.get(&key(1)).is_some());
        cache.insert(key(4), vec![4; 100]);
        assert!(
            cache.get(&key(2)).is_none(),
            "the oldest unused entry goes first"
        );
        assert!(cache.get(&key(1)).is_some());
        assert_eq!(cache.bytes(), 3 * (100 + ENTRY_OVERHEAD));
    }

    #[test]
    fn bytecode_larger_than_the_whole_budget_is_not_kept() {
        let cache = BytecodeCache::new(1000);
        cache.insert(key(1), vec![0; 10]);
        cache.insert(key(2), vec![0; 2000]);
        assert!(cache.get(&key(2)).is_none());
        assert!(cache.get(&key(1)).is_some(), "nothing was evicted for it");
    }

    #[test]
    fn keys_differ_by_name_options_language_and_source() {
        use Language::{JavaScript, TypeScript};
        let base = BytecodeCache::key("a.js", 0, JavaScript, "1 + 2");
        assert_ne!(base, BytecodeCache::key("b.js", 0, JavaScript, "1 + 2"));
        assert_ne!(base, BytecodeCache::key("a.js", 1, JavaScript, "1 + 2"));
        assert_ne!(base, BytecodeCache::key("a.js", 0, TypeScript, "1 + 2"));
        assert_ne!(base, BytecodeCache::key("a.js", 0, JavaScript, "1 + 3"));
        assert_ne!(
            BytecodeCache::key("ab", 0, JavaScript, "c"),
            BytecodeCache::key("a", 0, JavaScript, "bc")
        );
    }

    #[test]
    fn clearing_drops_everything() {
        let cache = BytecodeCache::new(10_000);
        cache.insert(key(1), vec![0; 10]);
        cache.clear();
        assert!(cache.is_empty());
        assert_eq!(cache.bytes(), 0);
    }
}
