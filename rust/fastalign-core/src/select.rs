//! Per-group selection: GFPO's "keep the k best completions of each group".

use crate::error::{ensure, Result};
use crate::real::Real;

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
    fn errors_name_the_argument() {
        assert_eq!(top_k_per_group(&[1.0f32; 6], 4, 2, Keep::Largest).unwrap_err().argument, "num_generations");
        assert_eq!(top_k_per_group(&[1.0f32; 8], 4, 0, Keep::Largest).unwrap_err().argument, "k");
        assert_eq!(top_k_per_group(&[1.0f32; 8], 4, 5, Keep::Largest).unwrap_err().argument, "k");
        assert_eq!(Keep::parse("max").unwrap_err().argument, "keep");
    }
}
