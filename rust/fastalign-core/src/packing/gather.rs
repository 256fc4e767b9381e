//! Gathering packed token buffers: the plan's pieces copied out of the dataset's chunks.

use rayon::prelude::*;

use super::NONE;
use crate::error::{ensure, Result};
use crate::memcopy;
use crate::par;

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

#[cfg(test)]
mod tests {
    use super::super::testing::Lcg;
    use super::*;

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
}
