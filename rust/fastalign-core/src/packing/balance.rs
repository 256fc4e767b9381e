//! Karmarkar–Karp balancing of sequences into parts (ranks, micro-batches), and its refinement.

use super::{check_named, NONE};
use crate::error::{ensure, Error, Result};

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
    let worst = rebalance(weights, k, equal_size, cap, part);
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
    use super::super::testing::Lcg;
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
}
