//! Scripts compiled once per worker: the bytecode QuickJS's own compiler wrote for a script,
//! kept by the SHA-256 of the JavaScript compiled, its name and compile options, so that a later
//! execution of the same script loads it into its fresh runtime instead of parsing again.
//!
//! - Only the engine's compiler fills the cache ([`crate::execution`]): the key is a hash of
//!   the source, so nothing a client sends can choose what bytecode is loaded.
//! - A TypeScript script's bytecode is kept under the key of the JavaScript stripped from it:
//!   that JavaScript (under the same name) and every TypeScript source that strips to it (one
//!   that differs only in its types) share one entry. A small map from the TypeScript's own
//!   key to that key ([`BytecodeCache::stripped`]) lets a repeated TypeScript script find its
//!   bytecode without being stripped again; its entries count in the same byte budget.
//! - Bounded in bytes, not entries ([`BytecodeCache::new`]): the least recently used scripts are
//!   dropped first, and a script's bytecode larger than the whole budget is not kept.
//! - Filled only by executions that ended without an engine fault (see [`crate::fault`]), and
//!   emptied by its owner after one ([`BytecodeCache::clear`]): bytecode written by a runtime
//!   whose heap may be corrupt is never loaded again.

use std::{cell::RefCell, rc::Rc};

use hashlink::LinkedHashMap;
use sha2::{Digest, Sha256};

use crate::Language;

/// SHA-256 of a script's compile options, language, name and source.
pub type Key = [u8; 32];

/// Bytes an entry costs beyond its bytecode: the key, the map's links and the allocation's
/// header, rounded up. A remembered TypeScript script ([`BytecodeCache::stripped`]), two keys
/// and the links, costs no more.
const ENTRY_OVERHEAD: usize = 128;

/// Most TypeScript scripts whose stripped JavaScript's key is remembered at once.
const MAX_STRIPPED: usize = 1024;

/// What one execution offers the cache when it ends without an engine fault
/// ([`BytecodeCache::keep`]).
#[derive(Debug, Default)]
pub struct Compiled {
    /// The bytecode it compiled, and the key of the JavaScript it compiled it from.
    pub bytecode: Option<(Key, Vec<u8>)>,
    /// For a TypeScript script it stripped: the TypeScript's key, and its JavaScript's.
    pub stripped: Option<(Key, Key)>,
}

/// Compiled scripts of one worker, least recently used first.
#[derive(Debug)]
pub struct BytecodeCache {
    inner: RefCell<Entries>,
}

#[derive(Debug)]
struct Entries {
    by_key: LinkedHashMap<Key, Rc<[u8]>>,
    /// A TypeScript script's key → the key of the JavaScript stripped from it.
    stripped: LinkedHashMap<Key, Key>,
    bytes: usize,
    capacity: usize,
}

impl BytecodeCache {
    /// An empty cache that holds at most `capacity` bytes of bytecode and bookkeeping.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: RefCell::new(Entries {
                by_key: LinkedHashMap::new(),
                stripped: LinkedHashMap::new(),
                bytes: 0,
                capacity,
            }),
        }
    }

    /// The key of `source`, written in `language`, compiled as a script named `name` with
    /// QuickJS's eval `flags`. Bytecode is kept under a JavaScript key (for TypeScript, its
    /// stripped JavaScript's); a TypeScript key only finds that key ([`BytecodeCache::stripped`]).
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

    /// The key of the JavaScript stripped from the TypeScript script of key `typescript`, if
    /// remembered; it becomes the most recently used.
    pub fn stripped(&self, typescript: &Key) -> Option<Key> {
        let mut entries = self.inner.borrow_mut();
        let javascript = *entries.stripped.get(typescript)?;
        entries.stripped.to_back(typescript);
        Some(javascript)
    }

    /// Keeps what an execution compiled: its bytecode, and which JavaScript its TypeScript
    /// stripped to.
    pub fn keep(&self, compiled: Compiled) {
        if let Some((key, bytecode)) = compiled.bytecode {
            self.insert(key, bytecode);
        }
        if let Some((typescript, javascript)) = compiled.stripped {
            self.remember_stripped(typescript, javascript);
        }
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
        entries.make_room(cost);
        entries.bytes += cost;
        entries.by_key.insert(key, Rc::from(bytecode));
    }

    /// Remembers that the TypeScript of key `typescript` strips to the JavaScript of key
    /// `javascript`, dropping the least recently used entries to make room.
    fn remember_stripped(&self, typescript: Key, javascript: Key) {
        let mut entries = self.inner.borrow_mut();
        if ENTRY_OVERHEAD > entries.capacity {
            return;
        }
        if entries.stripped.remove(&typescript).is_some() {
            entries.bytes -= ENTRY_OVERHEAD;
        } else if entries.stripped.len() >= MAX_STRIPPED {
            entries.stripped.pop_front();
            entries.bytes -= ENTRY_OVERHEAD;
        }
        entries.make_room(ENTRY_OVERHEAD);
        entries.bytes += ENTRY_OVERHEAD;
        entries.stripped.insert(typescript, javascript);
    }

    /// Drops every entry.
    pub fn clear(&self) {
        let mut entries = self.inner.borrow_mut();
        entries.by_key.clear();
        entries.stripped.clear();
        entries.bytes = 0;
    }

    /// Bytes held now, bookkeeping included.
    pub fn bytes(&self) -> usize {
        self.inner.borrow().bytes
    }

    /// Scripts whose bytecode is held now.
    pub fn len(&self) -> usize {
        self.inner.borrow().by_key.len()
    }

    /// True when no script's bytecode is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Entries {
    /// Drops the least recently used bytecode, then the least recently used TypeScript
    /// scripts remembered, until `cost` more bytes fit.
    fn make_room(&mut self, cost: usize) {
        while self.bytes + cost > self.capacity {
            let freed = match self.by_key.pop_front() {
                Some((_, dropped)) => dropped.len() + ENTRY_OVERHEAD,
                None if self.stripped.pop_front().is_some() => ENTRY_OVERHEAD,
                None => break,
            };
            self.bytes -= freed;
        }
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

    fn stripped(typescript: Key, javascript: Key) -> Compiled {
        Compiled {
            bytecode: None,
            stripped: Some((typescript, javascript)),
        }
    }

    #[test]
    fn a_remembered_typescript_script_counts_in_the_budget_after_bytecode() {
        let cache = BytecodeCache::new(100 + 2 * ENTRY_OVERHEAD);
        cache.insert(key(1), vec![1; 100]);
        cache.keep(stripped(key(10), key(1)));
        assert_eq!(cache.stripped(&key(10)), Some(key(1)));
        assert_eq!(cache.bytes(), 100 + 2 * ENTRY_OVERHEAD);
        cache.keep(stripped(key(11), key(2)));
        assert!(cache.get(&key(1)).is_none(), "bytecode makes room first");
        assert_eq!(cache.stripped(&key(10)), Some(key(1)));
        assert_eq!(cache.stripped(&key(11)), Some(key(2)));
        assert_eq!(cache.bytes(), 2 * ENTRY_OVERHEAD);
        cache.insert(key(3), vec![3; 100]);
        assert_eq!(
            cache.stripped(&key(10)),
            None,
            "then the least recently used TypeScript script"
        );
        assert_eq!(cache.stripped(&key(11)), Some(key(2)));
    }

    #[test]
    fn only_so_many_typescript_scripts_are_remembered() {
        let cache = BytecodeCache::new(usize::MAX / 2);
        for n in 0..=MAX_STRIPPED as u64 {
            let mut typescript = [0; 32];
            typescript[..8].copy_from_slice(&n.to_le_bytes());
            cache.keep(stripped(typescript, key(1)));
        }
        assert_eq!(cache.stripped(&[0; 32]), None, "the oldest is forgotten");
        assert_eq!(cache.bytes(), MAX_STRIPPED * ENTRY_OVERHEAD);
    }

    #[test]
    fn clearing_drops_everything() {
        let cache = BytecodeCache::new(10_000);
        cache.keep(Compiled {
            bytecode: Some((key(1), vec![0; 10])),
            stripped: Some((key(2), key(1))),
        });
        cache.clear();
        assert!(cache.is_empty());
        assert_eq!(cache.stripped(&key(2)), None);
        assert_eq!(cache.bytes(), 0);
    }
}
