//! Token packing: TRL's best-fit-decreasing (exact bin order and tie-breaking), its split and
//! wrapped variants, first-fit-decreasing, the gather of packed token buffers, padding-free
//! attention metadata and Karmarkar–Karp balancing.
//!
//! # TRL 1.16.0's `_pack_bfd`, restated
//!
//! Within one window (one `datasets.map` batch):
//! 1. rows of length 0 are dropped; the others are truncated to `seq_length` ("bfd") or cut
//!    into `ceil(L / S)` consecutive fragments, all of length `S` but the last ("bfd_split");
//! 2. the items (rows or fragments, numbered in row order) are visited by length descending,
//!    ties in ascending item number (a stable sort);
//! 3. each item goes to the open bin with the *smallest* remaining space that still holds it;
//!    among bins with exactly that space, the one that reached it *first* (FIFO); a new bin is
//!    opened when none fits;
//! 4. bins are emitted in creation order, each with its items in insertion order.
//!
//! Here step 3 runs on a hierarchical bitset of the remaining spaces (find the next set bit at
//! or after `len` in a few word operations) with one FIFO list of bins per space, and step 2 is a
//! counting sort when `seq_length` is small against the number of items: the index step is
//! O(n + S) (or O(n log n) with a B-tree for very large `S`), and the output is identical to
//! TRL's segment tree + `defaultdict(deque)`.

mod balance;
mod gather;
mod plan;
mod seqlens;
#[cfg(test)]
mod testing;

pub use balance::{balance_partitions, balance_partitions_refined, group_by_part};
pub use gather::gather;
pub use plan::{pack_plan, Plan, Strategy};
pub use seqlens::{cu_seqlens, position_ids};

use crate::error::{Error, Result};

/// "No item" in the `u32` index arrays (so at most `u32::MAX - 1` items or pieces).
const NONE: u32 = u32::MAX;

fn check_lengths(lengths: &[i64]) -> Result<()> {
    if let Some((i, &l)) = lengths.iter().enumerate().find(|(_, &l)| l < 0) {
        return Err(Error::new("lengths", format!("must be >= 0, got {l} at index {i}")));
    }
    Ok(())
}

fn check_named(lengths: &[i64], name: &'static str) -> Result<()> {
    check_lengths(lengths).map_err(|e| Error::new(name, e.message))
}
