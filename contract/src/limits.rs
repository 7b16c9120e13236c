//! The two limits a request may ask for and a tenant may be capped at, as types that cannot
//! hold a bad value: a [`TimeLimit`] is a [`Duration`] of at least 1 ms and a [`MemoryLimit`] a
//! number of bytes of at least 1 MiB. The request's parser ([`crate::request`]) and the tenant
//! header's ([`crate::tenant::Ceilings`]) make them from the whole numbers clients and
//! operators write (`timeoutMs`, `memoryLimitMb`, `timeout-ms`, `memory-mb`); from there on
//! the time limit stays a `Duration`, through the worker protocol to the engine.

use std::{num::NonZeroU64, time::Duration};

/// An execution's time limit: whole milliseconds, at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeLimit(Duration);

impl TimeLimit {
    /// `millis` milliseconds.
    pub const fn from_millis(millis: NonZeroU64) -> Self {
        Self(Duration::from_millis(millis.get()))
    }

    /// The limit as a duration.
    pub const fn duration(self) -> Duration {
        self.0
    }

    /// The limit in whole milliseconds, as clients write it.
    pub fn millis(self) -> u64 {
        // Made from whole milliseconds of a u64, so exact.
        self.0.as_millis() as u64
    }
}

/// A runtime's memory limit: whole MiB, at least one, held in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemoryLimit(u64);

impl MemoryLimit {
    const MIB: u64 = 1024 * 1024;

    /// `mebibytes` MiB. More than a u64 of bytes holds (16 EiB) is the most it holds: above
    /// any server's maximum either way.
    pub const fn from_mebibytes(mebibytes: NonZeroU64) -> Self {
        let most = u64::MAX / Self::MIB;
        let mebibytes = if mebibytes.get() > most {
            most
        } else {
            mebibytes.get()
        };
        Self(mebibytes * Self::MIB)
    }

    /// The limit in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// The limit in whole MiB, as clients write it.
    pub const fn mebibytes(self) -> u64 {
        self.0 / Self::MIB
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonzero(value: u64) -> NonZeroU64 {
        NonZeroU64::new(value).unwrap()
    }

    #[test]
    fn limits_keep_the_unit_clients_write_them_in() {
        let time = TimeLimit::from_millis(nonzero(1500));
        assert_eq!(time.duration(), Duration::from_millis(1500));
        assert_eq!(time.millis(), 1500);
        let memory = MemoryLimit::from_mebibytes(nonzero(64));
        assert_eq!(memory.bytes(), 64 << 20);
        assert_eq!(memory.mebibytes(), 64);
    }

    #[test]
    fn a_memory_limit_past_what_bytes_can_count_is_the_largest_one() {
        let huge = MemoryLimit::from_mebibytes(nonzero(u64::MAX));
        assert_eq!(huge.mebibytes(), u64::MAX >> 20);
        assert!(huge > MemoryLimit::from_mebibytes(nonzero(1 << 40)));
    }
}
