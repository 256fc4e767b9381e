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

use std::collections::{BTreeMap, VecDeque};

use rayon::prelude::*;

use crate::error::{ensure, Error, Result};
use crate::memcopy;
use crate::par;

/// How rows longer than `seq_length` (and rows in general) are packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Best fit decreasing; overflow truncated (TRL `"bfd"`).
    Bfd,
    /// Best fit decreasing; overflow split into fragments (TRL `"bfd_split"`).
    BfdSplit,
    /// Concatenate the window's rows and cut every `seq_length` tokens (TRL `"wrapped"`).
    Wrapped,
    /// First fit decreasing, overflow truncated (not in TRL).
    Ffd,
    /// First fit decreasing, overflow split (not in TRL).
    FfdSplit,
}

impl Strategy {
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "bfd" => Self::Bfd,
            "bfd_split" => Self::BfdSplit,
            "wrapped" => Self::Wrapped,
            "ffd" => Self::Ffd,
            "ffd_split" => Self::FfdSplit,
            other => {
                return Err(Error::new(
                    "strategy",
                    format!("expected one of 'bfd', 'bfd_split', 'wrapped', 'ffd', 'ffd_split', got {other:?}"),
                ))
            }
        })
    }

    fn splits(self) -> bool {
        matches!(self, Self::BfdSplit | Self::FfdSplit)
    }
}

/// A packing plan: which piece of which row goes where.
///
/// The output is a list of *pieces* in output order; piece `p` is the tokens
/// `[piece_skip[p], piece_skip[p] + piece_len[p])` of row `piece_row[p]`. Output row `r` holds
/// the tokens `[out_offsets[r], out_offsets[r + 1])` of the concatenation of all pieces. For the
/// bin strategies `bin_bounds` gives the pieces of output row `r`
/// (`[bin_bounds[r], bin_bounds[r + 1])`), so `piece_len` over that range is TRL's
/// `seq_lengths`; for `Wrapped` it is `None` (pieces and rows do not align).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub piece_row: Vec<i64>,
    pub piece_skip: Vec<i64>,
    pub piece_len: Vec<i64>,
    pub out_offsets: Vec<i64>,
    pub bin_bounds: Option<Vec<i64>>,
    /// Tokens dropped by truncation.
    pub tokens_truncated: i64,
    /// Rows cut into more than one fragment.
    pub rows_split: i64,
    /// Rows of length 0 (dropped by the bin strategies, contributing nothing to wrapped).
    pub rows_empty: i64,
}

const NONE: u32 = u32::MAX;
/// Above this `seq_length` the remaining spaces live in a B-tree instead of dense arrays.
const DENSE_MAX: i64 = 1 << 22;

/// A hierarchical bitset over `0..n`: set, clear and "first set bit at or after x".
#[derive(Debug, Clone, Default)]
struct BitTree {
    levels: Vec<Vec<u64>>,
}

impl BitTree {
    fn new(n: usize) -> Self {
        let mut levels = Vec::new();
        let mut words = n.div_ceil(64).max(1);
        loop {
            levels.push(vec![0u64; words]);
            if words == 1 {
                break;
            }
            words = words.div_ceil(64);
        }
        Self { levels }
    }

    fn set(&mut self, mut x: usize) {
        for level in &mut self.levels {
            let w = x >> 6;
            let was_empty = level[w] == 0;
            level[w] |= 1u64 << (x & 63);
            if !was_empty {
                return;
            }
            x = w;
        }
    }

    fn clear(&mut self, mut x: usize) {
        for level in &mut self.levels {
            let w = x >> 6;
            level[w] &= !(1u64 << (x & 63));
            if level[w] != 0 {
                return;
            }
            x = w;
        }
    }

    fn next_at_or_after(&self, x: usize) -> Option<usize> {
        let mut pos = x;
        let mut lvl = 0;
        loop {
            let level = self.levels.get(lvl)?;
            let w = pos >> 6;
            if w >= level.len() {
                return None;
            }
            let bits = level[w] & (!0u64 << (pos & 63));
            if bits != 0 {
                pos = (w << 6) | bits.trailing_zeros() as usize;
                break;
            }
            pos = w + 1;
            lvl += 1;
        }
        while lvl > 0 {
            lvl -= 1;
            pos = (pos << 6) | self.levels[lvl][pos].trailing_zeros() as usize;
        }
        Some(pos)
    }
}

/// Open bins by remaining space, FIFO within one space.
trait FreeSpaces {
    /// The smallest remaining space `>= len` among open bins (always `< S`), if any.
    fn best_fit(&self, len: i64) -> Option<i64>;
    fn pop_front(&mut self, space: i64) -> u32;
    fn push_back(&mut self, space: i64, bin: u32);
    /// Forget everything (the caller lists the spaces that may still hold bins).
    fn reset(&mut self, spaces: impl Iterator<Item = i64>);
}

/// Dense form for `S <= DENSE_MAX`: a bitset of non-empty spaces and intrusive FIFO lists.
struct DenseSpaces {
    present: BitTree,
    head: Vec<u32>,
    tail: Vec<u32>,
    next: Vec<u32>,
}

impl DenseSpaces {
    fn new(seq_length: i64) -> Self {
        let n = seq_length as usize + 1;
        Self { present: BitTree::new(n), head: vec![NONE; n], tail: vec![NONE; n], next: Vec::new() }
    }
}

impl FreeSpaces for DenseSpaces {
    #[inline]
    fn best_fit(&self, len: i64) -> Option<i64> {
        self.present.next_at_or_after(len as usize).map(|s| s as i64)
    }

    #[inline]
    fn pop_front(&mut self, space: i64) -> u32 {
        let s = space as usize;
        let bin = self.head[s];
        let nxt = self.next[bin as usize];
        self.head[s] = nxt;
        if nxt == NONE {
            self.present.clear(s);
        }
        bin
    }

    #[inline]
    fn push_back(&mut self, space: i64, bin: u32) {
        let s = space as usize;
        let b = bin as usize;
        if self.next.len() <= b {
            self.next.resize(b + 1, NONE);
        }
        self.next[b] = NONE;
        if self.head[s] == NONE {
            self.head[s] = bin;
            self.present.set(s);
        } else {
            self.next[self.tail[s] as usize] = bin;
        }
        self.tail[s] = bin;
    }

    fn reset(&mut self, spaces: impl Iterator<Item = i64>) {
        for s in spaces {
            let s = s as usize;
            if self.head[s] != NONE {
                self.head[s] = NONE;
                self.present.clear(s);
            }
        }
    }
}

/// Sparse form for huge `S`: a B-tree from space to a FIFO of bins.
#[derive(Default)]
struct SparseSpaces {
    map: BTreeMap<i64, VecDeque<u32>>,
}

impl FreeSpaces for SparseSpaces {
    fn best_fit(&self, len: i64) -> Option<i64> {
        self.map.range(len..).next().map(|(&s, _)| s)
    }

    fn pop_front(&mut self, space: i64) -> u32 {
        let q = self.map.get_mut(&space).expect("best_fit returned a present space");
        let bin = q.pop_front().expect("queues in the map are never empty");
        if q.is_empty() {
            self.map.remove(&space);
        }
        bin
    }

    fn push_back(&mut self, space: i64, bin: u32) {
        self.map.entry(space).or_default().push_back(bin);
    }

    fn reset(&mut self, _spaces: impl Iterator<Item = i64>) {
        self.map.clear();
    }
}

/// One window's items (rows, or fragments of rows), as parallel arrays.
#[derive(Default)]
struct Items {
    row: Vec<u32>,
    /// Offset of the fragment inside its row (only filled when splitting).
    skip: Vec<i64>,
    len: Vec<i64>,
}

impl Items {
    fn clear(&mut self) {
        self.row.clear();
        self.skip.clear();
        self.len.clear();
    }
}

/// Per-thread scratch reused across windows.
struct Scratch {
    dense: Option<DenseSpaces>,
    sparse: SparseSpaces,
    counts: Vec<u32>,
    remaining: Vec<i64>,
    bin_of: Vec<u32>,
    items: Items,
    sorted: Items,
}

impl Scratch {
    fn new(seq_length: i64) -> Self {
        Self {
            dense: (seq_length <= DENSE_MAX).then(|| DenseSpaces::new(seq_length)),
            sparse: SparseSpaces::default(),
            counts: Vec::new(),
            remaining: Vec::new(),
            bin_of: Vec::new(),
            items: Items::default(),
            sorted: Items::default(),
        }
    }
}

/// The items by length descending, ties in item order (a stable descending sort), copied with
/// their rows and skips, so that the packing loops and the output pass read everything
/// sequentially (a random read per item costs a cache miss on large windows). Lengths are in
/// `1..=seq_length`.
fn sort_desc_stable(items: &Items, seq_length: i64, counts: &mut Vec<u32>, out: &mut Items) {
    let n = items.len.len();
    let split = !items.skip.is_empty();
    out.clear();
    out.len.reserve(n);
    out.row.reserve(n);
    if seq_length <= DENSE_MAX && (seq_length as usize) <= 4 * n + 64 {
        // counting sort on `S - len`
        let s = seq_length as usize;
        counts.clear();
        counts.resize(s + 1, 0);
        for &l in &items.len {
            counts[s - l as usize] += 1;
        }
        let mut acc = 0u32;
        for (k, c) in counts.iter_mut().enumerate() {
            let here = *c;
            *c = acc;
            acc += here;
            out.len.extend(std::iter::repeat_n((s - k) as i64, here as usize));
        }
        out.row.resize(n, 0);
        if split {
            out.skip.resize(n, 0);
        }
        for (i, &l) in items.len.iter().enumerate() {
            let k = s - l as usize;
            let pos = counts[k] as usize;
            counts[k] += 1;
            out.row[pos] = items.row[i];
            if split {
                out.skip[pos] = items.skip[i];
            }
        }
    } else {
        // keys `(S - len) << 32 | item` (items < 2^32); 128-bit where `S - len` needs > 32 bits
        let order: Vec<usize> = if seq_length <= u32::MAX as i64 {
            let mut keys: Vec<u64> =
                items.len.iter().enumerate().map(|(i, &l)| ((seq_length - l) as u64) << 32 | i as u64).collect();
            if seq_length < 1 << 24 && n >= 256 {
                // LSD radix on `S - len` (< 2^24: at most 2 passes of <= 12 bits); the item
                // numbers start out ascending and stay so within equal lengths (stable)
                radix_sort_high(&mut keys, 64 - (seq_length as u64).leading_zeros());
            } else {
                keys.sort_unstable();
            }
            keys.iter().map(|&k| (k & 0xffff_ffff) as usize).collect()
        } else {
            let mut keys: Vec<u128> =
                items.len.iter().enumerate().map(|(i, &l)| ((seq_length - l) as u128) << 32 | i as u128).collect();
            keys.sort_unstable();
            keys.iter().map(|&k| (k & 0xffff_ffff) as usize).collect()
        };
        for i in order {
            out.row.push(items.row[i]);
            out.len.push(items.len[i]);
            if split {
                out.skip.push(items.skip[i]);
            }
        }
    }
}

/// Stable LSD radix sort of `keys` on their bits `32..32 + bits` (the low 32 bits, already in
/// order, keep their order among equal high parts), in passes of at most 12 bits.
fn radix_sort_high(keys: &mut Vec<u64>, bits: u32) {
    let passes = bits.div_ceil(12).max(1);
    let digit = bits.div_ceil(passes).max(1);
    let mask = (1u64 << digit) - 1;
    let mut tmp = vec![0u64; keys.len()];
    let mut counts = vec![0u32; 1 << digit];
    for pass in 0..passes {
        let shift = 32 + pass * digit;
        counts.iter_mut().for_each(|c| *c = 0);
        for &key in keys.iter() {
            counts[((key >> shift) & mask) as usize] += 1;
        }
        let mut acc = 0u32;
        for c in counts.iter_mut() {
            let here = *c;
            *c = acc;
            acc += here;
        }
        for &key in keys.iter() {
            let d = ((key >> shift) & mask) as usize;
            tmp[counts[d] as usize] = key;
            counts[d] += 1;
        }
        std::mem::swap(keys, &mut tmp);
    }
}

/// Best fit decreasing over lengths already in visiting order, TRL's exact rule: `bin_of[k]` is
/// the bin of the `k`-th item, `remaining` the room left in each bin (bins in creation order).
fn bfd_bins<F: FreeSpaces>(
    free: &mut F,
    sorted_lens: &[i64],
    seq_length: i64,
    remaining: &mut Vec<i64>,
    bin_of: &mut Vec<u32>,
) {
    remaining.clear();
    bin_of.clear();
    for &len in sorted_lens {
        let bin = match free.best_fit(len) {
            Some(space) if space < seq_length => free.pop_front(space),
            _ => {
                remaining.push(seq_length);
                (remaining.len() - 1) as u32
            }
        };
        let space = remaining[bin as usize] - len;
        remaining[bin as usize] = space;
        if space > 0 {
            free.push_back(space, bin);
        }
        bin_of.push(bin);
    }
    free.reset(remaining.iter().copied().filter(|&s| s > 0 && s < seq_length));
}

/// First fit decreasing: each item goes to the lowest-numbered bin with enough room, found by
/// descending a max segment tree over the bins' remaining space (O(log n) per item).
fn ffd_bins(sorted_lens: &[i64], seq_length: i64, remaining: &mut Vec<i64>, bin_of: &mut Vec<u32>) {
    remaining.clear();
    bin_of.clear();
    let cap = sorted_lens.len().next_power_of_two().max(1);
    // tree[cap + b] = remaining space of bin b (0 for bins not opened yet)
    let mut tree = vec![0i64; 2 * cap];
    for &len in sorted_lens {
        let bin = if tree[1] >= len {
            let mut i = 1;
            while i < cap {
                i = if tree[2 * i] >= len { 2 * i } else { 2 * i + 1 };
            }
            i - cap
        } else {
            remaining.push(seq_length);
            remaining.len() - 1
        };
        remaining[bin] -= len;
        let mut i = cap + bin;
        tree[i] = remaining[bin];
        while i > 1 {
            i >>= 1;
            tree[i] = tree[2 * i].max(tree[2 * i + 1]);
        }
        bin_of.push(bin as u32);
    }
}

fn check_lengths(lengths: &[i64]) -> Result<()> {
    if let Some((i, &l)) = lengths.iter().enumerate().find(|(_, &l)| l < 0) {
        return Err(Error::new("lengths", format!("must be >= 0, got {l} at index {i}")));
    }
    Ok(())
}

/// Pack one window `[start, end)` of rows into `plan` (appending).
fn pack_window(
    lengths: &[i64],
    start: usize,
    end: usize,
    seq_length: i64,
    strategy: Strategy,
    scratch: &mut Scratch,
    plan: &mut Plan,
) {
    let rows = &lengths[start..end];
    if plan.out_offsets.is_empty() {
        plan.out_offsets.push(0);
    }
    let token_base = *plan.out_offsets.last().unwrap_or(&0);
    if strategy == Strategy::Wrapped {
        let mut total = 0i64;
        for (i, &l) in rows.iter().enumerate() {
            if l == 0 {
                plan.rows_empty += 1;
                continue;
            }
            plan.piece_row.push((start + i) as i64);
            plan.piece_skip.push(0);
            plan.piece_len.push(l);
            total += l;
        }
        let mut cut = seq_length;
        while cut < total {
            plan.out_offsets.push(token_base + cut);
            let Some(next) = cut.checked_add(seq_length) else { break };
            cut = next;
        }
        if total > 0 {
            plan.out_offsets.push(token_base + total);
        }
        return;
    }
    // items: (row, skip, len) in row order, empty rows dropped
    let Scratch { dense, sparse, counts, remaining, bin_of, items, sorted } = scratch;
    items.clear();
    let split = strategy.splits();
    items.row.reserve(rows.len());
    items.len.reserve(rows.len());
    for (i, &l) in rows.iter().enumerate() {
        if l == 0 {
            plan.rows_empty += 1;
        } else if l <= seq_length {
            items.row.push(i as u32);
            items.len.push(l);
            if split {
                items.skip.push(0);
            }
        } else if split {
            plan.rows_split += 1;
            let mut skip = 0;
            while skip < l {
                items.row.push(i as u32);
                items.skip.push(skip);
                items.len.push((l - skip).min(seq_length));
                let Some(next) = skip.checked_add(seq_length) else { break };
                skip = next;
            }
        } else {
            plan.tokens_truncated += l - seq_length;
            items.row.push(i as u32);
            items.len.push(seq_length);
        }
    }
    sort_desc_stable(items, seq_length, counts, sorted);
    match (strategy, dense.as_mut()) {
        (Strategy::Bfd | Strategy::BfdSplit, Some(d)) => bfd_bins(d, &sorted.len, seq_length, remaining, bin_of),
        (Strategy::Bfd | Strategy::BfdSplit, None) => bfd_bins(sparse, &sorted.len, seq_length, remaining, bin_of),
        _ => ffd_bins(&sorted.len, seq_length, remaining, bin_of),
    }
    // scatter the visited items to their bins: bins in creation order, items in visiting order
    let nbins = remaining.len();
    counts.clear();
    counts.resize(nbins, 0);
    for &b in bin_of.iter() {
        counts[b as usize] += 1;
    }
    let bounds = plan.bin_bounds.get_or_insert_with(|| vec![0]);
    let piece_base = *bounds.last().unwrap_or(&0);
    let mut acc = 0u32;
    let mut tokens = token_base;
    for (b, c) in counts.iter_mut().enumerate() {
        let here = *c;
        *c = acc;
        acc += here;
        bounds.push(piece_base + acc as i64);
        tokens += seq_length - remaining[b];
        plan.out_offsets.push(tokens);
    }
    let base = plan.piece_len.len();
    let n = sorted.len.len();
    plan.piece_row.resize(base + n, 0);
    plan.piece_skip.resize(base + n, 0);
    plan.piece_len.resize(base + n, 0);
    for (k, &b) in bin_of.iter().enumerate().take(n) {
        let b = b as usize;
        let pos = base + counts[b] as usize;
        counts[b] += 1;
        plan.piece_row[pos] = (start + sorted.row[k] as usize) as i64;
        plan.piece_len[pos] = sorted.len[k];
        if split {
            plan.piece_skip[pos] = sorted.skip[k];
        }
    }
}

/// Concatenate window plans (each computed from offset 0) into one.
fn concat_plans(parts: Vec<Plan>, binned: bool) -> Plan {
    let mut out = Plan { out_offsets: vec![0], bin_bounds: binned.then(|| vec![0]), ..Plan::default() };
    for p in parts {
        let tok = *out.out_offsets.last().unwrap_or(&0);
        let pieces = out.piece_len.len() as i64;
        out.out_offsets.extend(p.out_offsets.iter().skip(1).map(|&o| o + tok));
        if let (Some(dst), Some(src)) = (out.bin_bounds.as_mut(), p.bin_bounds.as_ref()) {
            dst.extend(src.iter().skip(1).map(|&b| b + pieces));
        }
        out.piece_row.extend_from_slice(&p.piece_row);
        out.piece_skip.extend_from_slice(&p.piece_skip);
        out.piece_len.extend_from_slice(&p.piece_len);
        out.tokens_truncated += p.tokens_truncated;
        out.rows_split += p.rows_split;
        out.rows_empty += p.rows_empty;
    }
    out
}

/// Pack rows of the given lengths window by window, as TRL's `pack_dataset` does per `map`
/// batch.
///
/// * `lengths`: tokens per row (`>= 0`);
/// * `window_starts`/`window_ends`: the windows, half-open row ranges in increasing order that
///   do not overlap (rows outside every window are dropped, as `drop_last_batch` does);
/// * `seq_length >= 1`.
///
/// Windows are packed independently (in parallel when there is enough work); the result is the
/// concatenation of their plans in window order.
pub fn pack_plan(
    lengths: &[i64],
    window_starts: &[i64],
    window_ends: &[i64],
    seq_length: i64,
    strategy: Strategy,
) -> Result<Plan> {
    ensure!(seq_length >= 1, "seq_length", "must be >= 1, got {seq_length}");
    ensure!(
        window_starts.len() == window_ends.len(),
        "windows",
        "{} starts but {} ends",
        window_starts.len(),
        window_ends.len()
    );
    check_lengths(lengths)?;
    ensure!(
        lengths.iter().try_fold(0i64, |acc, &l| acc.checked_add(l)).is_some(),
        "lengths",
        "the total number of tokens overflows int64"
    );
    let n = lengths.len() as i64;
    let mut prev_end = 0i64;
    for (w, (&s, &e)) in window_starts.iter().zip(window_ends).enumerate() {
        ensure!(
            prev_end <= s && s <= e && e <= n,
            "windows",
            "window {w} = [{s}, {e}) is not an increasing, non-overlapping range within the {n} rows"
        );
        prev_end = e;
    }
    let items_max: i64 = window_starts
        .iter()
        .zip(window_ends)
        .map(|(&s, &e)| {
            let rows = &lengths[s as usize..e as usize];
            // (sums bounded by the total, checked above)
            let pieces = |l: i64| l / seq_length + i64::from(l % seq_length != 0);
            match strategy {
                _ if strategy.splits() => rows.iter().map(|&l| pieces(l)).sum::<i64>(),
                // wrapped: the output rows of the window
                Strategy::Wrapped => (e - s).max(pieces(rows.iter().sum())),
                _ => e - s,
            }
        })
        .max()
        .unwrap_or(0);
    ensure!(items_max < NONE as i64, "lengths", "a window holds {items_max} pieces, more than 2^32 - 1");
    let binned = strategy != Strategy::Wrapped;
    let windows: Vec<(usize, usize)> =
        window_starts.iter().zip(window_ends).map(|(&s, &e)| (s as usize, e as usize)).collect();
    let work: usize = windows.iter().map(|&(s, e)| e - s).sum();
    let run_range = |ws: &[(usize, usize)]| -> Plan {
        let mut scratch = Scratch::new(if binned { seq_length } else { 1 });
        let mut plan = Plan { out_offsets: vec![0], bin_bounds: binned.then(|| vec![0]), ..Plan::default() };
        if !strategy.splits() {
            let rows: usize = ws.iter().map(|&(s, e)| e - s).sum();
            plan.piece_row.reserve(rows);
            plan.piece_skip.reserve(rows);
            plan.piece_len.reserve(rows);
        }
        for &(s, e) in ws {
            pack_window(lengths, s, e, seq_length, strategy, &mut scratch, &mut plan);
        }
        plan
    };
    match par::pool_for(work * 8) {
        Some(pool) if windows.len() > 1 => {
            let per = windows.len().div_ceil(4 * pool.current_num_threads()).max(1);
            let parts: Vec<Plan> = pool.install(|| windows.par_chunks(per).map(run_range).collect());
            Ok(concat_plans(parts, binned))
        }
        _ => Ok(run_range(&windows)),
    }
}

/// Copy the planned pieces of one column into `out` (which must hold exactly the planned tokens).
///
/// The column's values are `chunks` (one slice per Arrow chunk) seen as one virtual array in
/// which chunk `c` starts at `chunk_bases[c]` (increasing, `chunk_bases[0] == 0`); row `r`
/// starts at `row_starts[r]` in it. Every piece must lie inside one chunk.
///
/// The output is cut into tasks of about equal token counts at piece boundaries (one per thread
/// share when the pool is used, else one); each task copies its pieces in *row* order, not in
/// output order: the reads then walk the values forward (the rows' values are usually in row
/// order) and only the writes jump, which costs less than jumping reads on large plans (a
/// bin of a global best fit takes its rows from anywhere in the dataset). When the tasks' rows
/// would each span most of the dataset (one global window), the tasks are cut from the pieces
/// in row order instead, each reading a compact range of rows and writing its pieces wherever
/// their bins are (disjoint ranges of `out`, through [`memcopy::Scatter`]). The result does not
/// depend on the order.
pub fn gather<T: Copy + Send + Sync>(
    chunks: &[&[T]],
    chunk_bases: &[i64],
    row_starts: &[i64],
    plan_rows: &[i64],
    plan_skips: &[i64],
    plan_lens: &[i64],
    out: &mut [T],
) -> Result<()> {
    ensure!(
        chunks.len() == chunk_bases.len(),
        "chunk_bases",
        "{} bases for {} chunks",
        chunk_bases.len(),
        chunks.len()
    );
    ensure!(
        plan_rows.len() == plan_skips.len() && plan_rows.len() == plan_lens.len(),
        "plan",
        "rows, skips and lengths differ in length ({}, {}, {})",
        plan_rows.len(),
        plan_skips.len(),
        plan_lens.len()
    );
    let mut total: i64 = 0;
    for (i, &l) in plan_lens.iter().enumerate() {
        ensure!(l >= 0, "plan", "piece {i} has negative length {l}");
        total = total.saturating_add(l);
    }
    ensure!(total as usize == out.len(), "out", "holds {} values, the plan moves {total}", out.len());
    let pieces = plan_lens.len();
    ensure!(pieces < NONE as usize, "plan", "{pieces} pieces, more than 2^32 - 1");
    let nrows = row_starts.len();
    for (p, &row) in plan_rows.iter().enumerate() {
        ensure!(row >= 0 && (row as usize) < nrows, "plan", "piece {p}: row {row} out of range");
    }
    let elem = std::mem::size_of::<T>().max(1);
    let reorder = out.len() * elem >= pieces * REORDER_MIN_PIECE_BYTES && pieces > 1;
    // tasks: contiguous ranges of pieces (and so of the output), about equal in tokens
    let ranges_for = |n_tasks: usize| -> Vec<(usize, usize, usize)> {
        let target = (out.len() / n_tasks).max(1);
        let mut ranges = Vec::with_capacity(n_tasks + 1);
        let (mut p0, mut acc) = (0usize, 0usize);
        for (p, &l) in plan_lens.iter().enumerate() {
            acc += l as usize;
            if acc >= target || p + 1 == pieces {
                ranges.push((p0, p + 1, acc));
                p0 = p + 1;
                acc = 0;
            }
        }
        ranges
    };
    let pool = par::pool_for(out.len() * elem / 8).filter(|_| pieces > 1);
    let mut scatter = false;
    let ranges = ranges_for(pool.map_or(1, |p| 4 * p.current_num_threads()));
    if reorder && pool.is_some() {
        // Tasks by output range read compact ranges of rows in TRL's windows; when every such
        // task would read rows from all over the values (one global window), their read
        // streams compete (measured: 100k rows of ~400 int64 tokens, 2 threads ~25% slower than
        // 1), so the tasks are cut by row range instead and scatter their writes (2 threads:
        // gather + plan 50 -> 42 ms there).
        let span: u64 = ranges
            .iter()
            .map(|&(p0, p1, _)| {
                let rows = &plan_rows[p0..p1];
                let lo = rows.iter().copied().min().unwrap_or(0);
                let hi = rows.iter().copied().max().unwrap_or(0);
                (hi - lo) as u64 + 1
            })
            .sum();
        if span > 2 * nrows as u64 {
            scatter = true;
        }
    }
    // the source values of piece `p`
    let source = |p: usize| -> Result<&[T]> {
        let src = row_starts[plan_rows[p] as usize] + plan_skips[p];
        let len = plan_lens[p] as usize;
        let c = chunk_bases.partition_point(|&b| b <= src);
        ensure!(c > 0 && src >= 0, "row_starts", "piece {p} starts at {src}, before the first chunk");
        let local = (src - chunk_bases[c - 1]) as usize;
        let chunk = chunks[c - 1];
        ensure!(
            local + len <= chunk.len(),
            "row_starts",
            "piece {p} ([{src}, {}) ) crosses the end of its chunk",
            src + len as i64
        );
        Ok(&chunk[local..local + len])
    };
    if let (true, Some(pool)) = (scatter, pool) {
        // Every task reads a compact range of rows (runs of the pieces in row order, about
        // equal in tokens) and writes each piece to its place in the output, wherever its bin is.
        let mut place = Vec::with_capacity(pieces);
        let mut acc = 0usize;
        for &l in plan_lens {
            place.push(acc);
            acc += l as usize;
        }
        let by_row = pieces_by_row(plan_rows, nrows);
        let n_tasks = 4 * pool.current_num_threads();
        let target = (out.len() / n_tasks).max(1);
        let mut cuts = vec![0usize];
        let mut tokens = 0usize;
        for (i, &p) in by_row.iter().enumerate() {
            tokens += plan_lens[p as usize] as usize;
            if tokens >= target || i + 1 == pieces {
                cuts.push(i + 1);
                tokens = 0;
            }
        }
        let out = memcopy::Scatter::new(out);
        return pool.install(|| {
            cuts.par_windows(2).try_for_each(|w| {
                for &p in &by_row[w[0]..w[1]] {
                    let p = p as usize;
                    let src = source(p)?;
                    // SAFETY: piece `p` goes to `place[p]..place[p] + plan_lens[p]`; `place`
                    // is the running sum of the (checked non-negative) piece lengths, so the
                    // ranges of distinct pieces do not overlap, and `by_row` holds every piece
                    // exactly once (a counting sort of `0..pieces`), split into disjoint runs.
                    #[allow(unsafe_code)]
                    unsafe {
                        out.write(place[p], src)
                    };
                }
                Ok(())
            })
        });
    }
    let mut jobs: Vec<(usize, usize, &mut [T])> = Vec::with_capacity(ranges.len());
    {
        let mut rest: &mut [T] = out;
        for &(p0, p1, tokens) in &ranges {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(tokens);
            jobs.push((p0, p1, head));
            rest = tail;
        }
    }
    // with `reorder`: the pieces of each task in row order (`order[p0..p1]` for the task of
    // pieces `p0..p1`; a counting sort on the row, then a stable split by task) and each
    // piece's offset in its task's output
    let (order, dst_at) = if reorder {
        let by_row = pieces_by_row(plan_rows, nrows);
        let mut fill: Vec<usize> = jobs.iter().map(|j| j.0).collect();
        let ends: Vec<usize> = jobs.iter().map(|j| j.1).collect();
        let mut order = vec![0u32; pieces];
        for &p in &by_row {
            let t = ends.partition_point(|&e| e <= p as usize);
            order[fill[t]] = p;
            fill[t] += 1;
        }
        drop(by_row);
        let mut dst_at = vec![0usize; pieces];
        for &(p0, p1, _) in &jobs {
            let mut tok = 0usize;
            for p in p0..p1 {
                dst_at[p] = tok;
                tok += plan_lens[p] as usize;
            }
        }
        (order, dst_at)
    } else {
        (Vec::new(), Vec::new())
    };
    let copy_piece = |p: usize, dst: &mut [T], d: usize| -> Result<()> {
        let src = source(p)?;
        dst[d..d + src.len()].copy_from_slice(src);
        Ok(())
    };
    let copy_task = |(p0, p1, dst): (usize, usize, &mut [T])| -> Result<()> {
        if reorder {
            for &p in &order[p0..p1] {
                copy_piece(p as usize, dst, dst_at[p as usize])?;
            }
        } else {
            let mut d = 0usize;
            for (p, &len) in plan_lens.iter().enumerate().take(p1).skip(p0) {
                copy_piece(p, dst, d)?;
                d += len as usize;
            }
        }
        Ok(())
    };
    match pool {
        Some(pool) => pool.install(|| jobs.into_par_iter().try_for_each(copy_task)),
        None => jobs.into_iter().try_for_each(copy_task),
    }
}

/// The pieces' numbers in row order (a stable counting sort on each piece's row).
fn pieces_by_row(plan_rows: &[i64], nrows: usize) -> Vec<u32> {
    let mut at = vec![0u32; nrows + 1];
    for &row in plan_rows {
        at[row as usize + 1] += 1;
    }
    for r in 0..nrows {
        at[r + 1] += at[r];
    }
    let mut by_row = vec![0u32; plan_rows.len()];
    for (p, &row) in plan_rows.iter().enumerate() {
        let slot = &mut at[row as usize];
        by_row[*slot as usize] = p as u32;
        *slot += 1;
    }
    by_row
}

/// [`gather`] copies in row order when the pieces average at least this many bytes: below it,
/// a piece is a cache line or two whichever way it is visited, and the reordering would cost
/// more (time, and index memory per piece) than it saves.
const REORDER_MIN_PIECE_BYTES: usize = 512;

/// Position ids for padding-free attention: `0..L` for each sequence length `L`, concatenated.
pub fn position_ids(seq_lengths: &[i64]) -> Result<Vec<i64>> {
    check_named(seq_lengths, "seq_lengths")?;
    let total = seq_lengths.iter().try_fold(0i64, |acc, &l| acc.checked_add(l));
    let Some(total) = total else {
        return Err(Error::new("seq_lengths", "the total length overflows int64"));
    };
    let mut out = Vec::new();
    out.try_reserve_exact(total as usize).map_err(|_| {
        Error::new(
            "seq_lengths",
            format!("{total} position ids ({} bytes) cannot be allocated", (total as u64).saturating_mul(8)),
        )
    })?;
    for &l in seq_lengths {
        out.extend(0..l);
    }
    Ok(out)
}

/// `cu_seqlens` (flash-attn's meaning): `[0, L0, L0 + L1, ...]`, as `i32` like TRL's collator.
pub fn cu_seqlens(seq_lengths: &[i64]) -> Result<Vec<i32>> {
    check_named(seq_lengths, "seq_lengths")?;
    let mut out = Vec::with_capacity(seq_lengths.len() + 1);
    let mut acc = 0i64;
    out.push(0);
    for &l in seq_lengths {
        acc = acc.saturating_add(l);
        ensure!(acc <= i32::MAX as i64, "seq_lengths", "the total {acc} overflows int32 cu_seqlens");
        out.push(acc as i32);
    }
    Ok(out)
}

fn check_named(lengths: &[i64], name: &'static str) -> Result<()> {
    check_lengths(lengths).map_err(|e| Error::new(name, e.message))
}

/// One set of a Karmarkar–Karp partial solution: its sum, its size and its first item `head`,
/// which stands for the set (the other items reach it through `parent`, see
/// [`balance_partitions`]).
#[derive(Debug, Clone, Copy)]
struct KkSet {
    sum: i64,
    size: u32,
    head: u32,
}

impl KkSet {
    /// Sets are ordered by sum, then size, descending; ties (only possible between sets of equal
    /// sum and size) by first item ascending. Sums are `>= 0`, so the order is that of this key,
    /// descending.
    #[inline]
    fn key(&self) -> u128 {
        ((self.sum as u64 as u128) << 64) | ((self.size as u128) << 32) | (!self.head) as u128
    }
}

/// A partial solution: its non-empty sets, sorted by [`KkSet::key`] descending, then (implied,
/// not stored) `k - sets.len()` empty sets, which sort after every non-empty set.
struct KkState {
    sets: Vec<KkSet>,
}

impl KkState {
    /// Heap priority: largest spread first, then the larger top set (sum, size), then the older
    /// state.
    #[inline]
    fn priority(&self, k: usize, id: u32) -> (i64, i64, u32, std::cmp::Reverse<u32>) {
        let top = self.sets[0];
        let bottom = if self.sets.len() == k { self.sets[k - 1].sum } else { 0 };
        (top.sum - bottom, top.sum, top.size, std::cmp::Reverse(id))
    }
}

/// Karmarkar–Karp (largest differencing method) partition of items with the given non-negative
/// weights into `k` parts, as verl's `karmarkar_karp`: items sorted ascending; with
/// `equal_size` every run of `k` consecutive items seeds one state (one item per set, so every
/// part gets `n / k` items; `n % k == 0` required), otherwise each item seeds its own state;
/// then the two states with the largest spread are merged (largest set with smallest) until one
/// remains. Returns the part of each item (parts numbered by decreasing sum).
///
/// `max_tokens`, if given, is a cap on every part's sum: after KK, items are moved (or, with
/// `equal_size`, swapped) out of parts over the cap while that lowers the largest sum; an error
/// names the cap if no partition within it was found.
///
/// Cost: O(n log n) for the initial sort plus O(k log k) per merge on only the non-empty sets,
/// in one flat buffer per state (no per-merge allocation once the buffers have grown).
pub fn balance_partitions(weights: &[i64], k: usize, equal_size: bool, max_tokens: Option<i64>) -> Result<Vec<u32>> {
    ensure!(k >= 1, "k", "must be >= 1, got {k}");
    check_named(weights, "lengths")?;
    let n = weights.len();
    ensure!(n >= k, "k", "{k} partitions for {n} items: every partition needs at least one item");
    ensure!(n < NONE as usize, "lengths", "too many items ({n})");
    if equal_size {
        ensure!(n % k == 0, "k", "equal_size needs the number of items ({n}) to be a multiple of k = {k}");
    }
    let total = weights.iter().try_fold(0i64, |acc, &w| acc.checked_add(w));
    ensure!(total.is_some(), "lengths", "the total weight overflows int64");
    if let Some(cap) = max_tokens {
        ensure!(cap >= 0, "max_tokens", "must be >= 0, got {cap}");
        if let Some((i, &w)) = weights.iter().enumerate().find(|(_, &w)| w > cap) {
            return Err(Error::new("max_tokens", format!("item {i} alone has {w} tokens, more than the cap {cap}")));
        }
        let total = total.unwrap_or(i64::MAX);
        ensure!(
            total <= cap.saturating_mul(k as i64),
            "max_tokens",
            "{total} tokens cannot fit in {k} partitions of at most {cap}"
        );
    }
    let sorted = sort_by_weight(weights);
    // Membership is a forest over the items, logged as it grows: when a set absorbs another,
    // the pair (absorbed head, absorbing head) is appended (a sequential write). The final sets'
    // heads are the roots; labels then flow from them down the log in reverse, one pass of
    // independent accesses instead of a pointer chase through linked lists.
    let mut absorbed: Vec<(u32, u32)> = Vec::with_capacity(n);
    let mut sorter = SetSorter::new(n);
    let item_set = |i: u32| KkSet { sum: weights[i as usize], size: 1, head: i };
    let mut slots: Vec<KkState> = if equal_size {
        sorted
            .chunks(k)
            .map(|seed| {
                // the seed is ascending by (weight, item): reversed, it is descending by weight
                // with equal weights in descending item order, which each run then undoes
                let mut sets: Vec<KkSet> = seed.iter().rev().map(|&i| item_set(i)).collect();
                for run in sets.chunk_by_mut(|x, y| x.sum == y.sum) {
                    run.reverse();
                }
                KkState { sets }
            })
            .collect()
    } else {
        sorted.iter().map(|&i| KkState { sets: vec![item_set(i)] }).collect()
    };
    use std::collections::BinaryHeap;
    let mut heap: BinaryHeap<_> = slots.iter().enumerate().map(|(i, st)| st.priority(k, i as u32)).collect();
    let mut merged: Vec<KkSet> = Vec::with_capacity(k);
    while heap.len() > 1 {
        let a = heap.pop().expect("len > 1").3 .0 as usize;
        let b = heap.pop().expect("len > 1").3 .0 as usize;
        let s1 = std::mem::take(&mut slots[b].sets);
        let s0 = &mut slots[a].sets;
        // set i of the first state takes set k-1-i of the second; only positions where either
        // is non-empty produce a set
        let (la, lb) = (s0.len(), s1.len());
        merged.clear();
        if la == k && lb == k {
            // both states full (always, with equal_size): set i takes set k-1-i, no gaps
            for (&x, y) in s0.iter().zip(s1.iter().rev()) {
                absorbed.push((y.head, x.head));
                merged.push(KkSet { sum: x.sum + y.sum, size: x.size + y.size, head: x.head });
            }
            sorter.sort(&mut merged);
            std::mem::swap(s0, &mut merged);
            heap.push(slots[a].priority(k, a as u32));
            continue;
        }
        for i in (0..k).filter(|&i| i < la || k - 1 - i < lb) {
            let j = k - 1 - i;
            let set = match (s0.get(i), s1.get(j)) {
                (Some(&x), Some(y)) => {
                    absorbed.push((y.head, x.head));
                    KkSet { sum: x.sum + y.sum, size: x.size + y.size, head: x.head }
                }
                (Some(&x), None) => x,
                (None, Some(&y)) => y,
                (None, None) => unreachable!("filtered"),
            };
            merged.push(set);
        }
        sorter.sort(&mut merged);
        std::mem::swap(s0, &mut merged);
        heap.push(slots[a].priority(k, a as u32));
    }
    let last = heap.pop().map(|t| t.3 .0 as usize).unwrap_or(0);
    let mut part = vec![0u32; n];
    for (p, set) in slots[last].sets.iter().enumerate() {
        part[set.head as usize] = p as u32;
    }
    for &(y, x) in absorbed.iter().rev() {
        part[y as usize] = part[x as usize];
    }
    if let Some(cap) = max_tokens {
        enforce_cap(weights, k, equal_size, cap, &mut part)?;
    }
    Ok(part)
}

/// [`balance_partitions`], then improved by local search: while moving one item (or, with
/// `equal_size`, swapping two) between the largest and the smallest part lowers the larger of
/// the two, the best such change is made. Karmarkar–Karp's equal-size seeds pair items of
/// neighbouring weights, so one long outlier leaves a gap that no later merge can close (on a
/// long-tail batch of 32 sequences into 2 parts: ~1,100 tokens of ~9,000); a few swaps close
/// most of it. Parts are renumbered by decreasing sum.
pub fn balance_partitions_refined(
    weights: &[i64],
    k: usize,
    equal_size: bool,
    max_tokens: Option<i64>,
) -> Result<Vec<u32>> {
    let mut part = balance_partitions(weights, k, equal_size, max_tokens)?;
    rebalance(weights, k, equal_size, i64::MIN, &mut part);
    let mut sums = vec![0i64; k];
    for (i, &p) in part.iter().enumerate() {
        sums[p as usize] += weights[i];
    }
    let mut order: Vec<u32> = (0..k as u32).collect();
    order.sort_by_key(|&p| (std::cmp::Reverse(sums[p as usize]), p));
    let mut label = vec![0u32; k];
    for (new, &old) in order.iter().enumerate() {
        label[old as usize] = new as u32;
    }
    part.iter_mut().for_each(|p| *p = label[*p as usize]);
    Ok(part)
}

/// Local search between the largest and the smallest part until the largest is at most
/// `stop_at` or no move (swap, with `equal_size`) lowers the larger of the two; returns the
/// largest part sum. A swap's best partner is found by binary search over the smaller part's
/// sorted weights, so a round costs O(m log m) for parts of m items.
fn rebalance(weights: &[i64], k: usize, equal_size: bool, stop_at: i64, part: &mut [u32]) -> i64 {
    let mut sums = vec![0i64; k];
    for (i, &p) in part.iter().enumerate() {
        sums[p as usize] += weights[i];
    }
    let max_rounds = 8 * k + 64;
    for _ in 0..max_rounds {
        let (hi, &hsum) = sums.iter().enumerate().max_by_key(|(i, &s)| (s, std::cmp::Reverse(*i))).expect("k >= 1");
        if hsum <= stop_at {
            break;
        }
        let (lo, &lsum) = sums.iter().enumerate().min_by_key(|(i, &s)| (s, *i)).expect("k >= 1");
        let gap = hsum - lsum;
        if lo == hi || gap <= 1 {
            break;
        }
        // moving d from hi to lo leaves max(hsum - d, lsum + d) = hsum - gain(d): best near gap / 2
        let gain = |d: i64| if d > 0 && d < gap { d.min(gap - d) } else { 0 };
        // (gain, item leaving hi, item leaving lo)
        let mut best: (i64, usize, Option<usize>) = (0, 0, None);
        if !equal_size {
            for i in (0..part.len()).filter(|&i| part[i] as usize == hi) {
                if gain(weights[i]) > best.0 {
                    best = (gain(weights[i]), i, None);
                }
            }
        } else {
            let mut los: Vec<(i64, usize)> =
                (0..part.len()).filter(|&j| part[j] as usize == lo).map(|j| (weights[j], j)).collect();
            los.sort_unstable();
            for i in (0..part.len()).filter(|&i| part[i] as usize == hi) {
                let w = weights[i];
                let at = los.partition_point(|&(x, _)| x < w - gap / 2);
                for &(x, j) in los[at.saturating_sub(1)..(at + 1).min(los.len())].iter() {
                    if gain(w - x) > best.0 {
                        best = (gain(w - x), i, Some(j));
                    }
                }
            }
        }
        let (g, i, swap) = best;
        if g == 0 {
            break;
        }
        part[i] = lo as u32;
        sums[hi] -= weights[i];
        sums[lo] += weights[i];
        if let Some(j) = swap {
            part[j] = hi as u32;
            sums[lo] -= weights[j];
            sums[hi] += weights[j];
        }
    }
    sums.iter().max().copied().unwrap_or(0)
}

/// Sorts a state's sets by [`KkSet::key`] descending. Within one state the sums and sizes
/// span small ranges, so a set usually fits in one `u64` that orders like its key: the sum below
/// the state's largest, the size below its largest, the head (`head_bits` wide), from high bits
/// to low. Those are sorted as plain integers and decoded back into sets; states whose ranges do
/// not fit take the comparison sort on the full key.
struct SetSorter {
    keys: Vec<u64>,
    head_bits: u32,
}

impl SetSorter {
    fn new(n: usize) -> Self {
        Self { keys: Vec::new(), head_bits: usize::BITS - n.saturating_sub(1).leading_zeros() }
    }

    fn sort(&mut self, sets: &mut Vec<KkSet>) {
        if sets.len() < 2 {
            return;
        }
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        let (mut small, mut large) = (u32::MAX, 0u32);
        for s in sets.iter() {
            lo = lo.min(s.sum);
            hi = hi.max(s.sum);
            small = small.min(s.size);
            large = large.max(s.size);
        }
        let sum_bits = u64::BITS - ((hi - lo) as u64).leading_zeros();
        let size_bits = u32::BITS - (large - small).leading_zeros();
        let hb = self.head_bits;
        if sum_bits + size_bits + hb > 64 {
            sets.sort_unstable_by_key(|s| std::cmp::Reverse(s.key()));
            return;
        }
        let sum_shift = size_bits + hb;
        let head_mask = (1u64 << hb) - 1;
        let size_mask = (1u64 << size_bits) - 1;
        self.keys.clear();
        self.keys.extend(sets.iter().map(|s| {
            // a sum equal to the largest contributes 0 even where the shift would be 64
            ((hi - s.sum) as u64).checked_shl(sum_shift).unwrap_or(0) | ((large - s.size) as u64) << hb | s.head as u64
        }));
        self.keys.sort_unstable();
        sets.clear();
        sets.extend(self.keys.iter().map(|&key| KkSet {
            sum: hi - key.checked_shr(sum_shift).unwrap_or(0) as i64,
            size: large - ((key >> hb) & size_mask) as u32,
            head: (key & head_mask) as u32,
        }));
    }
}

/// Item indices ordered by (weight, index) ascending (weights are `>= 0`). When the weights fit
/// in 32 bits: an LSD radix sort of `weight << 32 | index` keys on the weights' significant
/// bits (stable, so the indices stay ascending within a weight).
fn sort_by_weight(weights: &[i64]) -> Vec<u32> {
    let n = weights.len();
    let max = weights.iter().copied().max().unwrap_or(0) as u64;
    if n < 256 || max >> 32 != 0 {
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_unstable_by_key(|&i| (weights[i as usize], i));
        return order;
    }
    let bits = (64 - max.leading_zeros()) as usize;
    // digits of up to log2(n) bits (8 to 16): the counts stay smaller than the data
    let widest = (usize::BITS - n.leading_zeros() - 1).clamp(8, 16) as usize;
    let passes = bits.div_ceil(widest).max(1);
    let digit = bits.div_ceil(passes).max(1);
    let mut keys: Vec<u64> = weights.iter().enumerate().map(|(i, &w)| (w as u64) << 32 | i as u64).collect();
    let mut tmp = vec![0u64; n];
    let mut counts = vec![0u32; 1 << digit];
    let mask = (1u64 << digit) - 1;
    for pass in 0..passes {
        let shift = 32 + pass * digit;
        counts.iter_mut().for_each(|c| *c = 0);
        for &key in &keys {
            counts[((key >> shift) & mask) as usize] += 1;
        }
        let mut acc = 0u32;
        for c in counts.iter_mut() {
            let here = *c;
            *c = acc;
            acc += here;
        }
        for &key in &keys {
            let d = ((key >> shift) & mask) as usize;
            tmp[counts[d] as usize] = key;
            counts[d] += 1;
        }
        std::mem::swap(&mut keys, &mut tmp);
    }
    keys.into_iter().map(|key| key as u32).collect()
}

/// The items of each part, ascending, parts one after another: `(items, bounds)` with part `p`
/// holding `items[bounds[p]..bounds[p + 1]]` (a counting sort of `part`, which must be `< k`).
pub fn group_by_part(part: &[u32], k: usize) -> (Vec<u32>, Vec<i64>) {
    let mut bounds = vec![0i64; k + 1];
    for &p in part {
        bounds[p as usize + 1] += 1;
    }
    for p in 0..k {
        bounds[p + 1] += bounds[p];
    }
    let mut at: Vec<i64> = bounds[..k].to_vec();
    let mut items = vec![0u32; part.len()];
    for (i, &p) in part.iter().enumerate() {
        items[at[p as usize] as usize] = i as u32;
        at[p as usize] += 1;
    }
    (items, bounds)
}

/// Repair a partition whose largest part exceeds `cap`: repeatedly move the item of the largest
/// part to the smallest part (or, with `equal_size`, swap a pair of items between them) that
/// most lowers the larger of the two sums; fail if the cap is still exceeded.
fn enforce_cap(weights: &[i64], k: usize, equal_size: bool, cap: i64, part: &mut [u32]) -> Result<()> {
    let mut sums = vec![0i64; k];
    for (i, &p) in part.iter().enumerate() {
        sums[p as usize] += weights[i];
    }
    let max_rounds = 8 * k + 64;
    for _ in 0..max_rounds {
        let (hi, &hsum) = sums.iter().enumerate().max_by_key(|(i, &s)| (s, std::cmp::Reverse(*i))).expect("k >= 1");
        if hsum <= cap {
            return Ok(());
        }
        let (lo, &lsum) = sums.iter().enumerate().min_by_key(|(i, &s)| (s, *i)).expect("k >= 1");
        if lo == hi {
            break;
        }
        let his: Vec<usize> = (0..part.len()).filter(|&i| part[i] as usize == hi).collect();
        let los: Vec<usize> = (0..part.len()).filter(|&i| part[i] as usize == lo).collect();
        // (new max of the pair, item leaving hi, item leaving lo)
        let mut best: Option<(i64, usize, Option<usize>)> = None;
        for &i in &his {
            let w = weights[i];
            if !equal_size {
                let m = (hsum - w).max(lsum + w);
                if m < hsum && best.is_none_or(|b| m < b.0) {
                    best = Some((m, i, None));
                }
            } else {
                for &j in &los {
                    let d = w - weights[j];
                    if d <= 0 {
                        continue;
                    }
                    let m = (hsum - d).max(lsum + d);
                    if m < hsum && best.is_none_or(|b| m < b.0) {
                        best = Some((m, i, Some(j)));
                    }
                }
            }
        }
        let Some((_, i, swap)) = best else { break };
        part[i] = lo as u32;
        sums[hi] -= weights[i];
        sums[lo] += weights[i];
        if let Some(j) = swap {
            part[j] = hi as u32;
            sums[lo] -= weights[j];
            sums[hi] += weights[j];
        }
    }
    let worst = sums.iter().max().copied().unwrap_or(0);
    if worst <= cap {
        return Ok(());
    }
    Err(Error::new(
        "max_tokens",
        format!("no partition within the cap {cap} was found (the best has a part of {worst} tokens)"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Karmarkar–Karp implementation before the flat-buffer rewrite, kept as the oracle the
    // rewrite must equal item for item.
    /// One partial solution of the Karmarkar–Karp differencing method: `k` sets, kept sorted by
    /// (sum, size) descending; the items of each set are a linked list in `next`.
    struct RefState {
        sums: Vec<i64>,
        sizes: Vec<u32>,
        heads: Vec<u32>,
        tails: Vec<u32>,
    }

    impl RefState {
        fn spread(&self) -> i64 {
            self.sums[0] - self.sums[self.sums.len() - 1]
        }

        fn sort(&mut self) {
            let k = self.sums.len();
            let mut idx: Vec<usize> = (0..k).collect();
            idx.sort_by(|&a, &b| {
                (self.sums[b], self.sizes[b], std::cmp::Reverse(self.heads[b])).cmp(&(
                    self.sums[a],
                    self.sizes[a],
                    std::cmp::Reverse(self.heads[a]),
                ))
            });
            self.sums = idx.iter().map(|&i| self.sums[i]).collect();
            self.sizes = idx.iter().map(|&i| self.sizes[i]).collect();
            self.heads = idx.iter().map(|&i| self.heads[i]).collect();
            self.tails = idx.iter().map(|&i| self.tails[i]).collect();
        }
    }

    /// Karmarkar–Karp (largest differencing method) partition of items with the given non-negative
    /// weights into `k` parts, as verl's `karmarkar_karp`: items sorted ascending; with
    /// `equal_size` every run of `k` consecutive items seeds one state (one item per set, so every
    /// part gets `n / k` items; `n % k == 0` required), otherwise each item seeds its own state;
    /// then the two states with the largest spread are merged (largest set with smallest) until one
    /// remains. Returns the part of each item (parts numbered by decreasing sum).
    ///
    /// `max_tokens`, if given, is a cap on every part's sum: after KK, items are moved (or, with
    /// `equal_size`, swapped) out of parts over the cap while that lowers the largest sum; an error
    /// names the cap if no partition within it was found.
    fn kk_reference(weights: &[i64], k: usize, equal_size: bool, max_tokens: Option<i64>) -> Result<Vec<u32>> {
        ensure!(k >= 1, "k", "must be >= 1, got {k}");
        check_named(weights, "lengths")?;
        let n = weights.len();
        ensure!(n >= k, "k", "{k} partitions for {n} items: every partition needs at least one item");
        ensure!(n < NONE as usize, "lengths", "too many items ({n})");
        if equal_size {
            ensure!(n % k == 0, "k", "equal_size needs the number of items ({n}) to be a multiple of k = {k}");
        }
        if let Some(cap) = max_tokens {
            ensure!(cap >= 0, "max_tokens", "must be >= 0, got {cap}");
            if let Some((i, &w)) = weights.iter().enumerate().find(|(_, &w)| w > cap) {
                return Err(Error::new(
                    "max_tokens",
                    format!("item {i} alone has {w} tokens, more than the cap {cap}"),
                ));
            }
            let total: i64 = weights.iter().sum();
            ensure!(
                total <= cap.saturating_mul(k as i64),
                "max_tokens",
                "{total} tokens cannot fit in {k} partitions of at most {cap}"
            );
        }
        let mut sorted: Vec<u32> = (0..n as u32).collect();
        sorted.sort_by_key(|&i| (weights[i as usize], i));
        let mut next = vec![NONE; n];
        let empty =
            |k: usize| RefState { sums: vec![0; k], sizes: vec![0; k], heads: vec![NONE; k], tails: vec![NONE; k] };
        let mut states: Vec<RefState> = Vec::new();
        let seeds: Vec<&[u32]> = if equal_size { sorted.chunks(k).collect() } else { sorted.chunks(1).collect() };
        for seed in seeds {
            let mut st = empty(k);
            for (j, &item) in seed.iter().enumerate() {
                st.sums[j] = weights[item as usize];
                st.sizes[j] = 1;
                st.heads[j] = item;
                st.tails[j] = item;
            }
            st.sort();
            states.push(st);
        }
        // max-heap on (spread, largest set's (sum, size)), ties by state number (older first)
        use std::collections::BinaryHeap;
        let key = |st: &RefState, id: usize| (st.spread(), st.sums[0], st.sizes[0], std::cmp::Reverse(id));
        let mut heap: BinaryHeap<(i64, i64, u32, std::cmp::Reverse<usize>)> =
            states.iter().enumerate().map(|(i, st)| key(st, i)).collect();
        let mut slots: Vec<Option<RefState>> = states.into_iter().map(Some).collect();
        while heap.len() > 1 {
            let a = heap.pop().expect("len > 1").3 .0;
            let b = heap.pop().expect("len > 1").3 .0;
            let mut s0 = slots[a].take().expect("live state");
            let s1 = slots[b].take().expect("live state");
            for i in 0..k {
                let j = k - 1 - i;
                if s1.heads[j] == NONE {
                    continue;
                }
                if s0.heads[i] == NONE {
                    s0.heads[i] = s1.heads[j];
                } else {
                    next[s0.tails[i] as usize] = s1.heads[j];
                }
                s0.tails[i] = s1.tails[j];
                s0.sums[i] += s1.sums[j];
                s0.sizes[i] += s1.sizes[j];
            }
            s0.sort();
            heap.push(key(&s0, a));
            slots[a] = Some(s0);
        }
        let last = heap.pop().map(|t| t.3 .0).unwrap_or(0);
        let fin = slots[last].take().expect("final state");
        let mut part = vec![0u32; n];
        for (p, &h) in fin.heads.iter().enumerate() {
            let mut it = h;
            while it != NONE {
                part[it as usize] = p as u32;
                it = next[it as usize];
            }
        }
        if let Some(cap) = max_tokens {
            enforce_cap(weights, k, equal_size, cap, &mut part)?;
        }
        Ok(part)
    }

    /// TRL's `_pack_bfd` index step restated literally (segment tree, dict of deques): the oracle.
    fn trl_bfd(lens: &[i64], s: i64) -> Vec<Vec<usize>> {
        let tree_size = 1usize << (64 - ((s - 1) as u64).leading_zeros());
        let tree_size = if s == 1 { 1 } else { tree_size };
        let mut tree = vec![0i64; 2 * tree_size];
        let upd = |tree: &mut Vec<i64>, v: i64, on: bool| {
            let mut i = tree_size + v as usize - 1;
            tree[i] = if on { v } else { 0 };
            while i > 1 {
                i >>= 1;
                tree[i] = tree[2 * i].max(tree[2 * i + 1]);
            }
        };
        let search = |tree: &Vec<i64>, v: i64| {
            let mut i = 1;
            while i < tree_size {
                i = if tree[2 * i] >= v { 2 * i } else { 2 * i + 1 };
            }
            tree[i]
        };
        upd(&mut tree, s, true);
        let mut ids: Vec<usize> = (0..lens.len()).collect();
        ids.sort_by_key(|&i| std::cmp::Reverse(lens[i])); // stable
        let mut queues: std::collections::HashMap<i64, VecDeque<usize>> = Default::default();
        let mut bins: Vec<(Vec<usize>, i64)> = Vec::new();
        for id in ids {
            let len = lens[id];
            let mut space = search(&tree, len);
            let b = if space < s {
                queues.get_mut(&space).unwrap().pop_front().unwrap()
            } else {
                bins.push((Vec::new(), 0));
                bins.len() - 1
            };
            bins[b].0.push(id);
            bins[b].1 += len;
            if space < s && queues[&space].is_empty() {
                upd(&mut tree, space, false);
            }
            space -= len;
            queues.entry(space).or_default().push_back(b);
            if space > 0 {
                upd(&mut tree, space, true);
            }
        }
        bins.into_iter().map(|b| b.0).collect()
    }

    fn bins_of(plan: &Plan) -> Vec<Vec<usize>> {
        let b = plan.bin_bounds.as_ref().unwrap();
        b.windows(2).map(|w| (w[0]..w[1]).map(|p| plan.piece_row[p as usize] as usize).collect()).collect()
    }

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    #[test]
    fn trl_docstring_examples() {
        let lens = [5, 2, 3, 1];
        let p = pack_plan(&lens, &[0], &[4], 4, Strategy::Bfd).unwrap();
        assert_eq!(bins_of(&p), vec![vec![0], vec![2, 3], vec![1]]);
        assert_eq!(p.piece_len, vec![4, 3, 1, 2]);
        assert_eq!(p.out_offsets, vec![0, 4, 8, 10]);
        assert_eq!(p.tokens_truncated, 1);
        let p = pack_plan(&lens, &[0], &[4], 4, Strategy::BfdSplit).unwrap();
        assert_eq!(bins_of(&p), vec![vec![0], vec![2, 0], vec![1, 3]]);
        assert_eq!(p.piece_skip, vec![0, 0, 4, 0, 0]);
        assert_eq!(p.piece_len, vec![4, 3, 1, 2, 1]);
        let p = pack_plan(&lens, &[0], &[4], 4, Strategy::Wrapped).unwrap();
        assert_eq!(p.out_offsets, vec![0, 4, 8, 11]);
        assert_eq!(p.bin_bounds, None);
    }

    #[test]
    fn fifo_among_equal_spaces() {
        let p = pack_plan(&[3, 3, 2, 2, 1, 1], &[0], &[6], 4, Strategy::Bfd).unwrap();
        assert_eq!(bins_of(&p), vec![vec![0, 4], vec![1, 5], vec![2, 3]]);
    }

    #[test]
    fn matches_trl_segment_tree_on_random_inputs() {
        let mut rng = Lcg(7);
        for case in 0..400 {
            let s = 1 + (rng.next() % 70) as i64;
            let n = (rng.next() % 120) as usize;
            let lens: Vec<i64> = (0..n).map(|_| (rng.next() % (s as u64 + 1)) as i64).collect();
            let kept: Vec<usize> = (0..n).filter(|&i| lens[i] > 0).collect();
            let kept_lens: Vec<i64> = kept.iter().map(|&i| lens[i]).collect();
            let want: Vec<Vec<usize>> =
                trl_bfd(&kept_lens, s).into_iter().map(|b| b.into_iter().map(|j| kept[j]).collect()).collect();
            let got = bins_of(&pack_plan(&lens, &[0], &[n as i64], s, Strategy::Bfd).unwrap());
            assert_eq!(got, want, "case {case}: s={s} lens={lens:?}");
        }
    }

    #[test]
    fn radix_visiting_order_matches_trl() {
        // S > 4n + 64 and n >= 256: the radix path of the visiting order (TRL's default windows
        // of 1,000 rows at S=4096 take it), many equal lengths
        let mut rng = Lcg(29);
        for case in 0..12 {
            let s = [4096i64, 5000, 70_000, (1 << 20) - 1][case % 4];
            let n = 256 + (rng.next() % 700) as usize;
            let top = if case % 3 == 0 { 40 } else { 2 * s as u64 };
            let lens: Vec<i64> = (0..n).map(|_| (rng.next() % top) as i64).collect();
            let kept: Vec<usize> = (0..n).filter(|&i| lens[i] > 0).collect();
            let kept_lens: Vec<i64> = kept.iter().map(|&i| lens[i].min(s)).collect();
            let want: Vec<Vec<usize>> =
                trl_bfd(&kept_lens, s).into_iter().map(|b| b.into_iter().map(|j| kept[j]).collect()).collect();
            let got = bins_of(&pack_plan(&lens, &[0], &[n as i64], s, Strategy::Bfd).unwrap());
            assert_eq!(got, want, "case {case}: s={s}");
        }
    }

    #[test]
    fn dense_and_sparse_spaces_agree() {
        let mut rng = Lcg(11);
        for _ in 0..100 {
            let s = 1 + (rng.next() % 40) as i64;
            let n = (rng.next() % 200) as usize;
            let lens: Vec<i64> = (0..n).map(|_| (rng.next() % (2 * s as u64)) as i64).collect();
            for strat in [Strategy::Bfd, Strategy::BfdSplit] {
                let mut a = Scratch::new(s);
                let mut b = Scratch::new(s);
                b.dense = None;
                let (mut pa, mut pb) = (Plan::default(), Plan::default());
                pack_window(&lens, 0, n, s, strat, &mut a, &mut pa);
                pack_window(&lens, 0, n, s, strat, &mut b, &mut pb);
                assert_eq!(pa, pb);
                // reusing the scratch (a second window) gives the same again
                let mut pc = Plan::default();
                pack_window(&lens, 0, n, s, strat, &mut a, &mut pc);
                assert_eq!(pa, pc);
            }
        }
    }

    #[test]
    fn bit_tree_next() {
        let mut t = BitTree::new(300_000);
        assert_eq!(t.next_at_or_after(0), None);
        for x in [5, 64, 4095, 4096, 262_143, 299_999] {
            t.set(x);
        }
        assert_eq!(t.next_at_or_after(0), Some(5));
        assert_eq!(t.next_at_or_after(6), Some(64));
        assert_eq!(t.next_at_or_after(65), Some(4095));
        assert_eq!(t.next_at_or_after(4097), Some(262_143));
        t.clear(262_143);
        assert_eq!(t.next_at_or_after(4097), Some(299_999));
        assert_eq!(t.next_at_or_after(300_000), None);
    }

    #[test]
    fn windows_are_independent_and_concatenated() {
        let lens = [3i64, 1, 2, 2, 0, 4, 1];
        let whole = pack_plan(&lens, &[0, 3], &[3, 7], 4, Strategy::Bfd).unwrap();
        let a = pack_plan(&lens[..3], &[0], &[3], 4, Strategy::Bfd).unwrap();
        let b = pack_plan(&lens[3..], &[0], &[4], 4, Strategy::Bfd).unwrap();
        let mut rows: Vec<i64> = a.piece_row.clone();
        rows.extend(b.piece_row.iter().map(|r| r + 3));
        assert_eq!(whole.piece_row, rows);
        assert_eq!(whole.out_offsets.len(), a.out_offsets.len() + b.out_offsets.len() - 1);
        assert_eq!(whole.rows_empty, 1);
        // a window may leave rows out (drop_last_batch)
        let part = pack_plan(&lens, &[0], &[3], 4, Strategy::Wrapped).unwrap();
        assert_eq!(part.out_offsets, vec![0, 4, 6]);
    }

    #[test]
    fn split_and_wrapped_keep_every_token_once() {
        let mut rng = Lcg(3);
        for _ in 0..200 {
            let s = 1 + (rng.next() % 17) as i64;
            let n = (rng.next() % 50) as usize;
            let lens: Vec<i64> = (0..n).map(|_| (rng.next() % 60) as i64).collect();
            for strat in [Strategy::BfdSplit, Strategy::FfdSplit, Strategy::Wrapped] {
                let p = pack_plan(&lens, &[0], &[n as i64], s, strat).unwrap();
                let mut seen: Vec<Vec<bool>> = lens.iter().map(|&l| vec![false; l as usize]).collect();
                for i in 0..p.piece_row.len() {
                    for t in p.piece_skip[i]..p.piece_skip[i] + p.piece_len[i] {
                        let cell = &mut seen[p.piece_row[i] as usize][t as usize];
                        assert!(!*cell);
                        *cell = true;
                    }
                }
                assert!(seen.iter().flatten().all(|&x| x));
                assert!(p.out_offsets.windows(2).all(|w| w[1] - w[0] <= s && w[1] > w[0]));
            }
        }
    }

    #[test]
    fn ffd_is_first_fit() {
        // sorted: 5,4,3,3,2 into S=7: bins [5,2] [4,3] [3]
        let p = pack_plan(&[3, 5, 2, 4, 3], &[0], &[5], 7, Strategy::Ffd).unwrap();
        assert_eq!(bins_of(&p), vec![vec![1, 2], vec![3, 0], vec![4]]);
        // BFD would put the 2 into the tightest bin: 5 (space 2)
        let p = pack_plan(&[6, 5, 1], &[0], &[3], 7, Strategy::Ffd).unwrap();
        assert_eq!(bins_of(&p), vec![vec![0, 2], vec![1]]);
        let p = pack_plan(&[6, 5, 1], &[0], &[3], 7, Strategy::Bfd).unwrap();
        assert_eq!(bins_of(&p), vec![vec![0, 2], vec![1]]);
        let p = pack_plan(&[5, 6, 1], &[0], &[3], 7, Strategy::Ffd).unwrap();
        assert_eq!(bins_of(&p), vec![vec![1, 2], vec![0]]);
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert_eq!(pack_plan(&[1], &[0], &[1], 0, Strategy::Bfd).unwrap_err().argument, "seq_length");
        assert_eq!(pack_plan(&[-1], &[0], &[1], 3, Strategy::Bfd).unwrap_err().argument, "lengths");
        assert_eq!(pack_plan(&[1], &[0], &[2], 3, Strategy::Bfd).unwrap_err().argument, "windows");
        assert_eq!(pack_plan(&[1, 1], &[0, 0], &[1, 2], 3, Strategy::Bfd).unwrap_err().argument, "windows");
        assert!(Strategy::parse("bfd-requeue").is_err());
        let mut out = vec![0u8; 3];
        let err = gather::<u8>(&[&[1, 2]], &[0], &[0], &[0], &[0], &[3], &mut out).unwrap_err();
        assert_eq!(err.argument, "row_starts");
    }

    #[test]
    fn gather_across_chunks() {
        let c0 = [10u16, 11, 12];
        let c1 = [20u16, 21, 22, 23];
        // rows: [10,11] [12] [20,21,22] [23]
        let starts = [0i64, 2, 3, 6];
        let mut out = vec![0u16; 5];
        gather(&[&c0, &c1], &[0, 3], &starts, &[2, 0, 3], &[1, 0, 0], &[2, 2, 1], &mut out).unwrap();
        assert_eq!(out, vec![21, 22, 10, 11, 23]);
    }

    #[test]
    fn gather_in_row_order_equals_the_plain_copy() {
        // pieces long enough for the row-order path, rows repeated (fragments), two chunks
        let mut rng = Lcg(23);
        for case in 0..40 {
            let nrows = 1 + (rng.next() % 60) as usize;
            let lens: Vec<usize> = (0..nrows).map(|_| (rng.next() % 3000) as usize).collect();
            let split_at = (rng.next() as usize) % (nrows + 1);
            let c0: Vec<u8> = (0..lens[..split_at].iter().sum::<usize>()).map(|_| rng.next() as u8).collect();
            let c1: Vec<u8> = (0..lens[split_at..].iter().sum::<usize>()).map(|_| rng.next() as u8).collect();
            let mut starts = Vec::new();
            let mut at = 0i64;
            for (r, &l) in lens.iter().enumerate() {
                if r == split_at {
                    at = c0.len() as i64;
                }
                starts.push(at);
                at += l as i64;
            }
            let (mut rows, mut skips, mut plens) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..(rng.next() % 80) {
                let r = (rng.next() as usize) % nrows;
                let skip = (rng.next() as usize) % (lens[r] + 1);
                let len = (rng.next() as usize) % (lens[r] - skip + 1);
                rows.push(r as i64);
                skips.push(skip as i64);
                plens.push(len as i64);
            }
            let all: Vec<u8> = c0.iter().chain(&c1).copied().collect();
            let mut want = Vec::new();
            for p in 0..rows.len() {
                let s = starts[rows[p] as usize] as usize + skips[p] as usize;
                want.extend_from_slice(&all[s..s + plens[p] as usize]);
            }
            let mut got = vec![0u8; want.len()];
            gather(&[&c0, &c1], &[0, c0.len() as i64], &starts, &rows, &skips, &plens, &mut got).unwrap();
            assert_eq!(got, want, "case {case}");
        }
    }

    #[test]
    fn gather_large_plans_local_and_global() {
        // large enough for the pool (when there is one): pieces in row order within windows
        // (tasks by output range) and rows from anywhere, whole or in two pieces each (tasks by
        // row range, scattered writes), all equal to the plain copy
        let mut rng = Lcg(31);
        let nrows = 3000usize;
        let lens: Vec<usize> = (0..nrows).map(|_| 1000 + (rng.next() % 4000) as usize).collect();
        let values: Vec<u8> = (0..lens.iter().sum::<usize>()).map(|_| rng.next() as u8).collect();
        let mut starts = Vec::with_capacity(nrows);
        let mut at = 0i64;
        for &l in &lens {
            starts.push(at);
            at += l as i64;
        }
        let mut local: Vec<i64> = (0..nrows as i64).collect();
        for w in local.chunks_mut(100) {
            w.reverse();
        }
        let mut global: Vec<i64> = (0..nrows as i64).collect();
        for i in (1..nrows).rev() {
            global.swap(i, (rng.next() as usize) % (i + 1));
        }
        // every row cut in two pieces (as fragments of a split are), all pieces shuffled
        let mut halves: Vec<(i64, i64, i64)> = (0..nrows)
            .flat_map(|r| {
                let h = (lens[r] / 2) as i64;
                [(r as i64, 0, h), (r as i64, h, lens[r] as i64 - h)]
            })
            .collect();
        for i in (1..halves.len()).rev() {
            halves.swap(i, (rng.next() as usize) % (i + 1));
        }
        let third = |r: i64| (lens[r as usize] / 3) as i64;
        let rest = |r: i64| (lens[r as usize] - lens[r as usize] / 3) as i64;
        let plans: [(Vec<i64>, Vec<i64>, Vec<i64>); 3] = [
            (
                local.clone(),
                local.iter().map(|&r| third(r)).collect::<Vec<_>>(),
                local.iter().map(|&r| rest(r)).collect(),
            ),
            (global.clone(), global.iter().map(|&r| third(r)).collect(), global.iter().map(|&r| rest(r)).collect()),
            (
                halves.iter().map(|h| h.0).collect(),
                halves.iter().map(|h| h.1).collect(),
                halves.iter().map(|h| h.2).collect(),
            ),
        ];
        for (rows, skips, plens) in plans {
            let mut want = Vec::new();
            for p in 0..rows.len() {
                let s = (starts[rows[p] as usize] + skips[p]) as usize;
                want.extend_from_slice(&values[s..s + plens[p] as usize]);
            }
            let mut got = vec![0u8; want.len()];
            gather(&[&values], &[0], &starts, &rows, &skips, &plens, &mut got).unwrap();
            assert!(got == want);
        }
    }

    #[test]
    fn position_ids_and_cu_seqlens() {
        assert_eq!(position_ids(&[3, 0, 2]).unwrap(), vec![0, 1, 2, 0, 1]);
        assert_eq!(cu_seqlens(&[3, 0, 2]).unwrap(), vec![0, 3, 3, 5]);
        assert!(cu_seqlens(&[-1]).is_err());
    }

    #[test]
    fn sums_that_overflow_are_refused_or_handled() {
        const MAX: i64 = i64::MAX;
        assert_eq!(cu_seqlens(&[1, MAX]).unwrap_err().argument, "seq_lengths");
        assert_eq!(position_ids(&[MAX, 1]).unwrap_err().argument, "seq_lengths");
        assert_eq!(position_ids(&[1 << 60]).unwrap_err().argument, "seq_lengths");
        assert_eq!(pack_plan(&[MAX, 1], &[0], &[2], 4, Strategy::Bfd).unwrap_err().argument, "lengths");
        // a fragment end beyond int64: two fragments, no wrap-around
        let p = pack_plan(&[MAX], &[0], &[1], 1 << 62, Strategy::BfdSplit).unwrap();
        assert_eq!(p.piece_len, vec![1 << 62, MAX - (1 << 62)]);
        let p = pack_plan(&[MAX], &[0], &[1], 1 << 62, Strategy::Wrapped).unwrap();
        assert_eq!(p.out_offsets, vec![0, 1 << 62, MAX]);
        // bin capacities beyond 2^32: the descending order still holds
        let p = pack_plan(&[5, (1 << 32) + 5], &[0], &[2], 1 << 34, Strategy::Bfd).unwrap();
        assert_eq!(p.piece_row, vec![1, 0]);
        // too many output rows for a plan
        assert_eq!(pack_plan(&[1 << 40], &[0], &[1], 1, Strategy::Wrapped).unwrap_err().argument, "lengths");
    }

    #[test]
    fn kk_partitions() {
        let w: Vec<i64> = (1..=64).collect();
        for eq in [true, false] {
            let part = balance_partitions(&w, 4, eq, None).unwrap();
            let mut sums = [0i64; 4];
            let mut counts = [0; 4];
            for (i, &p) in part.iter().enumerate() {
                sums[p as usize] += w[i];
                counts[p as usize] += 1;
            }
            assert!(sums.iter().max().unwrap() - sums.iter().min().unwrap() <= 1, "{sums:?}");
            if eq {
                assert_eq!(counts, [16; 4]);
            }
        }
        assert_eq!(balance_partitions(&w, 5, true, None).unwrap_err().argument, "k");
        assert_eq!(balance_partitions(&w[..3], 4, false, None).unwrap_err().argument, "k");
        assert_eq!(balance_partitions(&w, 4, false, Some(10)).unwrap_err().argument, "max_tokens");
    }

    #[test]
    fn kk_equals_the_reference_implementation() {
        let mut rng = Lcg(17);
        for case in 0..300 {
            let k = 1 + (rng.next() % 9) as usize;
            let per = 1 + (rng.next() % 12) as usize;
            let n = k * per + if case % 2 == 0 { 0 } else { (rng.next() % k as u64) as usize };
            // small ranges give many ties (equal sums and sizes); zeros give empty-sum sets
            let range = [3u64, 50, 1 << 20, 1 << 40][case % 4];
            let w: Vec<i64> = (0..n).map(|_| (rng.next() % range) as i64).collect();
            for eq in [true, false] {
                if eq && n % k != 0 {
                    continue;
                }
                let got = balance_partitions(&w, k, eq, None).unwrap();
                assert_eq!(got, kk_reference(&w, k, eq, None).unwrap(), "case {case}: k={k} eq={eq} w={w:?}");
            }
        }
        // the radix sort's multi-pass path (n >= 64, weights of many bits)
        let w: Vec<i64> = (0..640).map(|_| (rng.next() << 20 | rng.next()) as i64 % (1 << 50)).collect();
        for eq in [true, false] {
            assert_eq!(balance_partitions(&w, 64, eq, None).unwrap(), kk_reference(&w, 64, eq, None).unwrap());
        }
    }

    #[test]
    fn kk_sort_and_grouping() {
        let w = [5i64, 0, 5, 3, 1 << 40, 3, 0];
        let mut want: Vec<u32> = (0..7).collect();
        want.sort_by_key(|&i| (w[i as usize], i));
        assert_eq!(sort_by_weight(&w), want);
        let big: Vec<i64> = (0..300).map(|i| ((i * 7919) % 1000) as i64 * 1_000_003).collect();
        let mut want: Vec<u32> = (0..300).collect();
        want.sort_by_key(|&i| (big[i as usize], i));
        assert_eq!(sort_by_weight(&big), want);
        let (items, bounds) = group_by_part(&[1, 0, 1, 2, 0], 3);
        assert_eq!(items, vec![1, 4, 0, 2, 3]);
        assert_eq!(bounds, vec![0, 2, 4, 5]);
        assert_eq!(balance_partitions(&[i64::MAX, 1], 2, false, None).unwrap_err().argument, "lengths");
    }

    #[test]
    fn kk_cap_is_enforced_by_repair() {
        // KK on [1,1,1,1,2,2,2,2,2,2] k=2 unequal gives 8/8; cap 8 holds
        let w = [1i64, 1, 1, 1, 2, 2, 2, 2, 2, 2];
        let part = balance_partitions(&w, 2, false, Some(8)).unwrap();
        let mut sums = [0i64; 2];
        for (i, &p) in part.iter().enumerate() {
            sums[p as usize] += w[i];
        }
        assert!(sums.iter().all(|&s| s <= 8));
        // a cap below the best possible is an error
        assert!(balance_partitions(&[3, 3, 3], 2, false, Some(5)).is_err());
    }

    fn part_sums(w: &[i64], part: &[u32], k: usize) -> (Vec<i64>, Vec<usize>) {
        let (mut sums, mut sizes) = (vec![0i64; k], vec![0usize; k]);
        for (i, &p) in part.iter().enumerate() {
            sums[p as usize] += w[i];
            sizes[p as usize] += 1;
        }
        (sums, sizes)
    }

    #[test]
    fn refined_partitions_close_the_outlier_gap() {
        // equal-size KK seeds pair the outlier 100 with 10, a gap of 90 that the other pairs'
        // differences (4 in all) cannot offset; swaps between the parts narrow it
        let w = [100i64, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1];
        let kk = balance_partitions(&w, 2, true, None).unwrap();
        let refined = balance_partitions_refined(&w, 2, true, None).unwrap();
        let (kk_sums, _) = part_sums(&w, &kk, 2);
        let (sums, sizes) = part_sums(&w, &refined, 2);
        assert_eq!(sizes, vec![6, 6]);
        assert!(sums[0] >= sums[1], "renumbered by decreasing sum: {sums:?}");
        assert!(sums[0] < *kk_sums.iter().max().unwrap(), "{sums:?} vs KK {kk_sums:?}");
        assert_eq!(sums.iter().sum::<i64>(), w.iter().sum::<i64>());
    }

    #[test]
    fn refined_partitions_are_never_worse_and_keep_sizes() {
        let mut x = 7u64;
        for trial in 0..200 {
            let n = 8 * (1 + trial % 6);
            let w: Vec<i64> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let u = (x >> 33) as f64 / (1u64 << 31) as f64;
                    (200.0 * (0.9 * 3.0 * (u - 0.5)).exp()) as i64 + 16 // a skewed spread
                })
                .collect();
            for k in [2usize, 4, 8] {
                for equal in [true, false] {
                    let kk = balance_partitions(&w, k, equal, None).unwrap();
                    let refined = balance_partitions_refined(&w, k, equal, None).unwrap();
                    let (a, _) = part_sums(&w, &kk, k);
                    let (b, sizes) = part_sums(&w, &refined, k);
                    assert!(b.iter().max() <= a.iter().max(), "trial {trial} k {k}: {b:?} vs {a:?}");
                    assert!(b.windows(2).all(|p| p[0] >= p[1]));
                    if equal {
                        assert!(sizes.iter().all(|&m| m == n / k));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// `cargo test --release -p fastalign-core time_kk -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn time_kk() {
        let mut x = 12345u64;
        let w: Vec<i64> = (0..16_384)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                64 + ((x >> 33) % 8128) as i64
            })
            .collect();
        if let Ok(reps) = std::env::var("KK_REPS") {
            let eq = std::env::var("KK_EQ").as_deref() == Ok("1");
            let reps: usize = reps.parse().unwrap();
            let t = std::time::Instant::now();
            let mut acc = 0u64;
            for _ in 0..reps {
                acc += balance_partitions(&w, 64, eq, None).unwrap()[0] as u64;
            }
            eprintln!("eq={eq} {reps} reps: {:?} per call ({acc})", t.elapsed() / reps.max(1) as u32);
            return;
        }
        let modes: Vec<bool> = match std::env::var("KK_EQ").as_deref() {
            Ok("1") => vec![true; 40],
            Ok("0") => vec![false; 10],
            _ => vec![true, false],
        };
        for eq in modes {
            for _ in 0..5 {
                let t = std::time::Instant::now();
                let s = sort_by_weight(&w);
                let t1 = t.elapsed();
                let p = balance_partitions(&w, 64, eq, None).unwrap();
                let t2 = t.elapsed();
                let g = group_by_part(&p, 64);
                eprintln!("eq={eq} sort {t1:?} kk {:?} group {:?} {}", t2 - t1, t.elapsed() - t2, s.len() + g.0.len());
            }
        }
    }

    /// `cargo test --release -p fastalign-core time_index_step -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn time_index_step() {
        let mut x = 12345u64;
        let lens: Vec<i64> = (0..1_000_000)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                1 + ((x >> 33) % 1200) as i64
            })
            .collect();
        for _ in 0..8 {
            let t = std::time::Instant::now();
            let p = pack_plan(&lens, &[0], &[lens.len() as i64], 4096, Strategy::Bfd).unwrap();
            eprintln!("pack_plan {:?} bins {}", t.elapsed(), p.out_offsets.len() - 1);
        }
    }
}
