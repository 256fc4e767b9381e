//! Per-group selection: GFPO's "keep the k best completions of each group".

use multiversion::multiversion;

use crate::error::{ensure, Result};
use crate::numeric::Real;

/// Which end of the scores to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The `k` largest scores (e.g. reward per token).
    Largest,
    /// The `k` smallest scores (e.g. completion length).
    Smallest,
}

impl Keep {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "largest" => Ok(Self::Largest),
            "smallest" => Ok(Self::Smallest),
            other => Err(crate::Error::new("keep", format!("expected 'largest' or 'smallest', got {other:?}"))),
        }
    }
}

/// Row indices of the `k` best scores in each contiguous group of `g`, in their original order.
///
/// The output holds `n / g * k` global row indices, group after group, each group's rows
/// ascending. A NaN score ranks below every number (it is kept only when fewer than `k` rows
/// have a score); ties (including -0.0 against 0.0) go to the earlier row, so the result is
/// deterministic.
/// Groups up to this size rank their rows by counting (g^2 comparisons, no sort).
const RANK_MAX_G: usize = 32;

/// Pushes `base + i` for each row `i < g` of the group whose rank is below `k`. The rank counts
/// the rows with a smaller key, or an equal key and a smaller row number, over all `W` slots
/// (`bits[g..]` is padding of `u64::MAX`, which never counts: it is not smaller than any key,
/// and equals only NaN's key from a later slot). A fixed `W` lets the count unroll into vector
/// compares; kept rows are written unconditionally and counted only if kept, so there is no
/// data-dependent branch (on fresh scores a branch on the rank mispredicts half the time).
#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
fn keep_by_rank<const W: usize>(bits: &[u64; W], g: usize, k: usize, base: usize, out: &mut Vec<i64>) {
    // ranks of all W slots at once: one pass per row j, each an elementwise update over i
    let mut rank = [0u64; W];
    for (j, &bj) in bits.iter().enumerate() {
        for (i, (r, &bi)) in rank.iter_mut().zip(bits.iter()).enumerate() {
            *r += u64::from((bj < bi) | ((bj == bi) & (j < i)));
        }
    }
    let mut kept = [0i64; W];
    let mut n = 0usize;
    for (i, &r) in rank.iter().enumerate().take(g) {
        kept[n] = (base + i) as i64; // n <= i < W
        n += usize::from((r as usize) < k);
    }
    out.extend_from_slice(&kept[..n]);
}

/// [`keep_by_rank`] for groups of up to `W` rows: the keys of each group padded to `W`.
fn rank_groups<T: Real, const W: usize>(scores: &[T], g: usize, k: usize, key: impl Fn(T) -> u64, out: &mut Vec<i64>) {
    let mut bits = [u64::MAX; W];
    for (gi, group) in scores.chunks_exact(g).enumerate() {
        for (b, &x) in bits.iter_mut().zip(group) {
            *b = key(x);
        }
        keep_by_rank(&bits, g, k, gi * g, out);
    }
}

pub fn top_k_per_group<T: Real>(scores: &[T], g: usize, k: usize, keep: Keep) -> Result<Vec<i64>> {
    ensure!(g >= 1, "num_generations", "must be >= 1, got {g}");
    ensure!(
        scores.len() % g == 0,
        "num_generations",
        "{g} does not divide the number of completions {} (groups are contiguous blocks of num_generations rows)",
        scores.len()
    );
    ensure!((1..=g).contains(&k), "k", "must be between 1 and num_generations ({g}), got {k}");
    let mut out = Vec::with_capacity(scores.len() / g * k);
    // One sortable key per row: the score's order-preserving bits (better first, NaN last), then
    // the row index, so every key is distinct and the ranking is deterministic (ties go to the
    // earlier row) without a stable sort.
    let key = |x: T, i: usize| -> (u64, usize) {
        if x.is_nan() {
            return (u64::MAX, i);
        }
        let v = x.to_f64();
        // `+ 0.0` makes -0.0 and 0.0 one value, so they tie (as `torch.sort` has it)
        let v = if keep == Keep::Largest { -v + 0.0 } else { v + 0.0 };
        let b = v.to_bits();
        (if b >> 63 == 1 { !b } else { b | 1 << 63 }, i)
    };
    // Small groups: each row's rank is counted over its group (g^2 comparisons); rows of rank
    // < k are kept, walked in row order, so no selection and no sort are needed.
    let bits_of = |x: T| key(x, 0).0;
    match g {
        0..=8 => rank_groups::<T, 8>(scores, g, k, bits_of, &mut out),
        9..=16 => rank_groups::<T, 16>(scores, g, k, bits_of, &mut out),
        17..=RANK_MAX_G => rank_groups::<T, RANK_MAX_G>(scores, g, k, bits_of, &mut out),
        _ => {
            // larger groups: a selection of the k best keys, then those in row order
            let mut keys: Vec<(u64, usize)> = Vec::with_capacity(g);
            for (gi, group) in scores.chunks_exact(g).enumerate() {
                keys.clear();
                keys.extend(group.iter().enumerate().map(|(i, &x)| key(x, i)));
                if k < g {
                    keys.select_nth_unstable(k - 1);
                }
                let kept = &mut keys[..k];
                kept.sort_unstable_by_key(|&(_, i)| i);
                out.extend(kept.iter().map(|&(_, i)| (gi * g + i) as i64));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_best_in_original_order_with_stable_ties_and_nan_last() {
        let s = [3.0f32, 1.0, 2.0, 1.0, f32::NAN, 5.0, 5.0, 0.0];
        assert_eq!(top_k_per_group(&s, 4, 2, Keep::Largest).unwrap(), vec![0, 2, 5, 6]);
        assert_eq!(top_k_per_group(&s, 4, 2, Keep::Smallest).unwrap(), vec![1, 3, 5, 7]);
        assert_eq!(top_k_per_group(&s, 4, 4, Keep::Smallest).unwrap(), vec![0, 1, 2, 3, 4, 5, 6, 7]);
        // -0.0 and 0.0 are equal: the tie goes to the earlier row
        assert_eq!(top_k_per_group(&[0.0f64, -0.0], 2, 1, Keep::Smallest).unwrap(), vec![0]);
        assert_eq!(top_k_per_group(&[-0.0f64, 0.0], 2, 1, Keep::Largest).unwrap(), vec![0]);
    }

    #[test]
    fn counted_ranks_equal_the_selection_for_small_groups() {
        // groups of up to RANK_MAX_G rows take the counting path; a copy of each group padded
        // past RANK_MAX_G rows with scores that rank last takes the selection path
        let mut x = 99u64;
        let mut next = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            x >> 33
        };
        for case in 0..3000 {
            let g = 1 + (next() as usize) % RANK_MAX_G;
            let k = 1 + (next() as usize) % g;
            let keep = if case % 2 == 0 { Keep::Largest } else { Keep::Smallest };
            let worst = if keep == Keep::Largest { f64::NEG_INFINITY } else { f64::INFINITY };
            let groups = 1 + (next() as usize) % 4;
            let pool = [0.0, -0.0, 1.0, -1.0, 2.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e-300];
            let s: Vec<f64> = (0..g * groups)
                .map(|_| if next() % 3 == 0 { pool[next() as usize % pool.len()] } else { (next() % 7) as f64 * 0.5 })
                .collect();
            let got = top_k_per_group(&s, g, k, keep).unwrap();
            // the padded rows rank below every real row except NaN ones: use them only where
            // the group has no NaN (else the check would compare different problems)
            if s.iter().any(|v| v.is_nan()) || s.contains(&worst) {
                let want: Vec<i64> = s
                    .chunks_exact(g)
                    .enumerate()
                    .flat_map(|(gi, grp)| {
                        let mut idx: Vec<usize> = (0..g).collect();
                        // NaN after every number (even the worst infinity), then the score
                        let rank = |v: f64| {
                            if v.is_nan() {
                                (true, 0.0)
                            } else if keep == Keep::Largest {
                                (false, -v + 0.0)
                            } else {
                                (false, v + 0.0)
                            }
                        };
                        idx.sort_by(|&a, &b| rank(grp[a]).partial_cmp(&rank(grp[b])).unwrap().then(a.cmp(&b)));
                        let mut kept: Vec<usize> = idx[..k].to_vec();
                        kept.sort_unstable();
                        kept.into_iter().map(move |i| (gi * g + i) as i64)
                    })
                    .collect();
                assert_eq!(got, want, "case {case}: {s:?} g={g} k={k}");
                continue;
            }
            let wide = RANK_MAX_G + 1;
            let padded: Vec<f64> = s
                .chunks_exact(g)
                .flat_map(|grp| grp.iter().copied().chain(std::iter::repeat_n(worst, wide - g)))
                .collect();
            let want: Vec<i64> = top_k_per_group(&padded, wide, k, keep)
                .unwrap()
                .into_iter()
                .map(|i| ((i as usize / wide) * g + i as usize % wide) as i64)
                .collect();
            assert_eq!(got, want, "case {case}: {s:?} g={g} k={k}");
        }
    }

    #[test]
    fn errors_name_the_argument() {
        assert_eq!(top_k_per_group(&[1.0f32; 6], 4, 2, Keep::Largest).unwrap_err().argument, "num_generations");
        assert_eq!(top_k_per_group(&[1.0f32; 8], 4, 0, Keep::Largest).unwrap_err().argument, "k");
        assert_eq!(top_k_per_group(&[1.0f32; 8], 4, 5, Keep::Largest).unwrap_err().argument, "k");
        assert_eq!(Keep::parse("max").unwrap_err().argument, "keep");
    }
}
