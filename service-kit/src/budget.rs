//! One memory budget per process, so that bytes held for requests are added up across all of
//! them instead of being bounded only one request at a time.
//!
//! A process learns how much memory it may use from its container ([`container_memory_limit`]:
//! the cgroup's limit, v2 or v1) or, where there is none, from a setting; it gives a documented
//! share of that to a [`MemoryBudget`]. Every byte a request makes the process hold is charged
//! to the budget *before* it is allocated ([`MemoryBudget::charge`], [`Charge::grow`]) and
//! released when the [`Charge`] is dropped, so an early return, an error or a cancelled request
//! gives its bytes back. A charge that does not fit is refused ([`OverBudget`]); the caller
//! answers 503 with `Retry-After`, or 413 when the request alone could never fit.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A cgroup "limit" at or above this is no limit at all: cgroup v1 writes unlimited as the
/// largest page-aligned `i64` (9223372036854771712).
const UNLIMITED_FROM: u64 = 1 << 62;

/// Bytes a process may hold for its requests at once; cheap to share (`Arc`).
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
}

/// Bytes charged to a budget, given back when dropped.
#[derive(Debug)]
#[must_use = "the bytes are released as soon as the charge is dropped"]
pub struct Charge {
    budget: Arc<MemoryBudget>,
    bytes: usize,
}

/// Why a charge was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OverBudget {
    /// More than the whole budget: this request can never fit (413).
    #[error("{wanted} bytes are more than the whole budget of {limit} bytes")]
    TooLarge { wanted: usize, limit: usize },
    /// It would fit an empty budget, but not beside what is held now (503, retry later).
    #[error("{wanted} bytes do not fit beside the {used} of {limit} bytes held now")]
    Full {
        wanted: usize,
        used: usize,
        limit: usize,
    },
}

impl MemoryBudget {
    /// A budget of `limit` bytes, nothing charged.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// The budget's size in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Charges `bytes`, or refuses them and charges nothing.
    pub fn charge(self: &Arc<Self>, bytes: usize) -> Result<Charge, OverBudget> {
        self.reserve(bytes)?;
        Ok(Charge {
            budget: self.clone(),
            bytes,
        })
    }

    fn reserve(&self, bytes: usize) -> Result<(), OverBudget> {
        if bytes > self.limit {
            return Err(OverBudget::TooLarge {
                wanted: bytes,
                limit: self.limit,
            });
        }
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .map(drop)
            .map_err(|used| OverBudget::Full {
                wanted: bytes,
                used,
                limit: self.limit,
            })
    }
}

impl Charge {
    /// Bytes this charge holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Charges `more` bytes to the same budget; on refusal this charge keeps what it had.
    pub fn grow(&mut self, more: usize) -> Result<(), OverBudget> {
        let wanted = self.bytes.saturating_add(more);
        if wanted > self.budget.limit {
            return Err(OverBudget::TooLarge {
                wanted,
                limit: self.budget.limit,
            });
        }
        self.budget.reserve(more)?;
        self.bytes = wanted;
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Where a process's memory limit came from, for its start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSource {
    /// cgroup v2's `memory.max`.
    CgroupV2,
    /// cgroup v1's `memory/memory.limit_in_bytes`.
    CgroupV1,
}

/// The memory limit of the container this process runs in: cgroup v2's `memory.max`, else
/// cgroup v1's `memory.limit_in_bytes`, under `/sys/fs/cgroup`; `None` when neither sets one.
pub fn container_memory_limit() -> Option<(u64, LimitSource)> {
    container_memory_limit_in(Path::new("/sys/fs/cgroup"))
}

/// [`container_memory_limit`] with the cgroup file system mounted at `root`.
pub fn container_memory_limit_in(root: &Path) -> Option<(u64, LimitSource)> {
    // v2 writes `max` for no limit, v1 a huge number; a file that says so ends the search.
    let parse = |text: String| {
        text.trim()
            .parse::<u64>()
            .ok()
            .filter(|bytes| *bytes < UNLIMITED_FROM)
    };
    if let Ok(text) = std::fs::read_to_string(root.join("memory.max")) {
        return parse(text).map(|bytes| (bytes, LimitSource::CgroupV2));
    }
    let text = std::fs::read_to_string(root.join("memory/memory.limit_in_bytes")).ok()?;
    parse(text).map(|bytes| (bytes, LimitSource::CgroupV1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_add_up_and_are_given_back_when_dropped() {
        let budget = MemoryBudget::new(100);
        let first = budget.charge(60).unwrap();
        assert_eq!(
            budget.charge(50).unwrap_err(),
            OverBudget::Full {
                wanted: 50,
                used: 60,
                limit: 100
            }
        );
        let mut second = budget.charge(40).unwrap();
        assert_eq!(budget.used(), 100);
        drop(first);
        assert_eq!(budget.used(), 40);
        second.grow(50).unwrap();
        assert_eq!((second.bytes(), budget.used()), (90, 90));
        let third = budget.charge(10).unwrap();
        assert!(matches!(second.grow(5), Err(OverBudget::Full { .. })));
        assert_eq!(
            second.bytes(),
            90,
            "a refused growth keeps what was charged"
        );
        drop((second, third));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_charge_larger_than_the_whole_budget_is_too_large_not_full() {
        let budget = MemoryBudget::new(100);
        assert_eq!(
            budget.charge(101).unwrap_err(),
            OverBudget::TooLarge {
                wanted: 101,
                limit: 100
            }
        );
        let mut charge = budget.charge(80).unwrap();
        assert!(matches!(charge.grow(21), Err(OverBudget::TooLarge { .. })));
        assert_eq!(budget.used(), 80);
    }

    #[test]
    fn the_limit_is_read_from_cgroup_v2_then_v1_and_unlimited_is_none() {
        let root = std::env::temp_dir().join(format!("budget-cgroup-{}", std::process::id()));
        let v1 = root.join("memory");
        std::fs::create_dir_all(&v1).unwrap();
        assert_eq!(container_memory_limit_in(&root), None);
        std::fs::write(v1.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        assert_eq!(container_memory_limit_in(&root), None, "v1's unlimited");
        std::fs::write(v1.join("memory.limit_in_bytes"), "268435456\n").unwrap();
        assert_eq!(
            container_memory_limit_in(&root),
            Some((268_435_456, LimitSource::CgroupV1))
        );
        std::fs::write(root.join("memory.max"), "max\n").unwrap();
        assert_eq!(
            container_memory_limit_in(&root),
            None,
            "v2's unlimited wins over v1"
        );
        std::fs::write(root.join("memory.max"), "1073741824\n").unwrap();
        assert_eq!(
            container_memory_limit_in(&root),
            Some((1 << 30, LimitSource::CgroupV2))
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
