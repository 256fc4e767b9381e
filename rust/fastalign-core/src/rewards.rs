//! Length-based rewards. DAPO's soft overlong punishment (TRL's `get_soft_overlong_punishment`).

use multiversion::multiversion;

use crate::error::{ensure, Error, Result};
use crate::real::Real;

/// DAPO eq. 13 with `L_max = max_completion_len` and `L_cache = soft_punish_cache`:
/// 0 up to `L_max - L_cache`, then `(L_max - L_cache - L) / L_cache` down to -1 at `L_max`,
/// and -1 beyond.
#[derive(Debug, Clone, PartialEq)]
pub struct SoftOverlong {
    max_completion_len: i64,
    soft_punish_cache: i64,
    /// `table[j]` is the penalty of length `L_max - L_cache + j - 1` clamped to the three
    /// pieces: `table[0] = 0`, `table[1..=L_cache]` the ramp, `table[L_cache + 1] = -1`.
    /// Built once, so evaluating many lengths is a clamp and a load, with no division.
    /// Empty for very long ramps, which are evaluated by division instead.
    table: Vec<f64>,
}

/// Longest ramp that gets a lookup table (512 KiB of `f64`).
const TABLE_MAX: i64 = 1 << 16;

impl SoftOverlong {
    pub fn new(max_completion_len: i64, soft_punish_cache: i64) -> Result<Self> {
        ensure!(max_completion_len >= 1, "max_completion_len", "must be >= 1, got {max_completion_len}");
        ensure!(soft_punish_cache >= 0, "soft_punish_cache", "must be >= 0, got {soft_punish_cache}");
        ensure!(
            soft_punish_cache <= max_completion_len,
            "soft_punish_cache",
            "({soft_punish_cache}) must not exceed max_completion_len ({max_completion_len})"
        );
        let mut s = Self { max_completion_len, soft_punish_cache, table: Vec::new() };
        if soft_punish_cache <= TABLE_MAX {
            let lo = max_completion_len - soft_punish_cache;
            s.table = (0..soft_punish_cache + 2).map(|j| s.penalty(lo + j)).collect();
        }
        Ok(s)
    }

    pub fn max_completion_len(&self) -> i64 {
        self.max_completion_len
    }

    pub fn soft_punish_cache(&self) -> i64 {
        self.soft_punish_cache
    }

    /// The penalty for one completion length, bit-identical to TRL's Python arithmetic: the
    /// numerator is an exact integer and `f64` division of integers below 2^53 is correctly
    /// rounded, as Python's `int / int` is.
    #[inline(always)]
    pub fn penalty(&self, len: i64) -> f64 {
        let lo = self.max_completion_len - self.soft_punish_cache;
        if len <= lo {
            0.0
        } else if len <= self.max_completion_len {
            (lo - len) as f64 / self.soft_punish_cache as f64
        } else {
            -1.0
        }
    }

    /// Vectorised form over an array of lengths. Negative lengths are an error.
    pub fn penalties<I: Copy + Into<i64> + Send + Sync, T: Real>(&self, lengths: &[I], out: &mut [T]) -> Result<()> {
        ensure!(out.len() == lengths.len(), "out", "has {} entries, expected {}", out.len(), lengths.len());
        let min = if self.table.is_empty() {
            let mut min = 0i64;
            for (o, &l) in out.iter_mut().zip(lengths) {
                let l: i64 = l.into();
                min = min.min(l);
                *o = T::from_f64(self.penalty(l));
            }
            min
        } else {
            lookup_kernel(&self.table, self.max_completion_len - self.soft_punish_cache, lengths, out)
        };
        if min < 0 {
            let i = lengths.iter().position(|&l| l.into() < 0).unwrap_or(0);
            let l: i64 = lengths[i].into();
            return Err(Error::new("lengths", format!("must be >= 0, found {l} at index {i}")));
        }
        Ok(())
    }
}

/// `out[i] = table[clamp(len_i - lo, 0, table.len() - 1)]`: a clamp and a gather per length.
/// Returns the smallest length seen (and 0 at most), so negative lengths cost no extra pass.
#[multiversion(targets("x86_64+avx512f+avx512dq+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn lookup_kernel<I: Copy + Into<i64>, T: Real>(table: &[f64], lo: i64, lengths: &[I], out: &mut [T]) -> i64 {
    let last = table.len() as i64 - 1;
    let mut min = 0i64;
    for (o, &l) in out.iter_mut().zip(lengths) {
        let l: i64 = l.into();
        min = min.min(l);
        let j = (l - lo).clamp(0, last) as usize;
        // `get` instead of indexing: no panic path, so the loop vectorises to a gather
        // (`j` is always in range, the fallback is never taken).
        *o = T::from_f64(table.get(j).copied().unwrap_or(0.0));
    }
    min
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        let s = SoftOverlong::new(100, 20).unwrap();
        assert_eq!(s.penalty(0), 0.0);
        assert_eq!(s.penalty(80), 0.0);
        assert_eq!(s.penalty(81), -1.0 / 20.0);
        assert_eq!(s.penalty(90), -0.5);
        assert_eq!(s.penalty(100), -1.0);
        assert_eq!(s.penalty(101), -1.0);
        let z = SoftOverlong::new(100, 0).unwrap();
        assert_eq!(z.penalty(100), 0.0);
        assert_eq!(z.penalty(101), -1.0);
    }

    #[test]
    fn vectorised_and_errors() {
        let s = SoftOverlong::new(10, 4).unwrap();
        let mut out = [0.0f32; 4];
        s.penalties(&[0i32, 7, 9, 12], &mut out).unwrap();
        assert_eq!(out, [0.0, -0.25, -0.75, -1.0]);
        let e = s.penalties(&[3i64, -2], &mut [0.0f64; 2]).unwrap_err();
        assert_eq!(e.argument, "lengths");
        assert!(e.message.contains("index 1"));
        assert_eq!(SoftOverlong::new(10, 11).unwrap_err().argument, "soft_punish_cache");
        assert_eq!(SoftOverlong::new(0, 0).unwrap_err().argument, "max_completion_len");
    }
}
