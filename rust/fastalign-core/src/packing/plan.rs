//! Packing plans: TRL's best-fit-decreasing (exact bin order and tie-breaking), its split and
//! wrapped variants, and first-fit-decreasing, over windows of rows.

use std::collections::{BTreeMap, VecDeque};

use rayon::prelude::*;

use super::{check_lengths, NONE};
use crate::error::{ensure, Error, Result};
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

#[cfg(test)]
mod tests {
    use super::super::testing::Lcg;
    use super::*;
    use crate::packing::*;

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
