//! NaN-aware statistics with torch's semantics (`nansum`, `nanmean`, TRL's `nanstd`).
//!
//! Element-wise steps happen in `T`, reductions accumulate in `f64` and are rounded to `T`
//! once, where torch would produce its own (vectorised, few-ulp) `T` reduction.

use crate::real::Real;

/// `f64` sum and count of the non-NaN values of a contiguous slice.
///
/// Eight independent lanes so the loop vectorises; with `f64` accumulators for `f32` or `f64`
/// data the lane order does not change the rounded `T` result in practice.
#[inline(always)]
pub(crate) fn nansum_count<T: Real>(xs: &[T]) -> (f64, usize) {
    // Fast path: a plain sum, in the same lanes and order. Without NaN it is exactly the
    // NaN-aware sum, and the count is the length; a NaN anywhere makes it NaN, and only then
    // are the values filtered and counted.
    let sum = lane_sum(xs, |x| x.to_f64());
    if !sum.is_nan() {
        return (sum, xs.len());
    }
    let sum = lane_sum(xs, |x| if x.is_nan() { 0.0 } else { x.to_f64() });
    let nans = xs.iter().fold(0u32, |n, x| n + u32::from(x.is_nan()));
    (sum, xs.len() - nans as usize)
}

/// `f64` sum of `f(x)` over `xs` in eight independent lanes, combined pairwise, then the tail.
#[inline(always)]
fn lane_sum<T: Real>(xs: &[T], f: impl Fn(T) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for j in 0..8 {
            acc[j] += f(c[j]);
        }
    }
    let mut sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for &x in chunks.remainder() {
        sum += f(x);
    }
    sum
}

/// `torch.nanmean` from a sum and a count: `T(nansum) / T(count)`, NaN when `count == 0`.
#[inline(always)]
pub(crate) fn mean_from<T: Real>(sum: f64, count: usize) -> T {
    T::from_f64(sum) / T::from_count(count)
}

/// `f64` sum of `(x - mean)^2` (computed in `T`) over the non-NaN values.
#[inline]
pub(crate) fn nansum_sq_dev<T: Real>(xs: &[T], mean: T) -> f64 {
    nansum_sq_dev_known(xs, mean, false)
}

/// [`nansum_sq_dev`] when the caller already knows whether `xs` holds a NaN (`has_nan`): then
/// the filtering pass runs directly instead of after a failed plain pass.
#[inline(always)]
pub(crate) fn nansum_sq_dev_known<T: Real>(xs: &[T], mean: T, has_nan: bool) -> f64 {
    let sq = |x: T| {
        let d = x - mean;
        (d * d).to_f64()
    };
    // same fast path as `nansum_count`: filter NaNs only when there are some
    if !has_nan {
        let sum = lane_sum(xs, sq);
        if !sum.is_nan() {
            return sum;
        }
    }
    lane_sum(xs, |x| {
        let v = sq(x);
        if v.is_nan() {
            0.0
        } else {
            v
        }
    })
}

/// TRL's `nanstd` given the `nanmean` and the non-NaN count: the mean of squared deviations
/// times `f32(n)/f32(n-1)`, square-rooted; NaN when fewer than two values are present.
#[inline]
pub(crate) fn std_from<T: Real>(sum_sq: f64, count: usize) -> T {
    let var = T::from_f64(sum_sq) / T::from_count(count);
    let corr = if count > 1 { T::bessel(count) } else { T::NAN };
    (var * corr).sqrt()
}

/// `(nanmean, nanstd)` of a contiguous slice, TRL style.
#[inline]
pub(crate) fn nanmean_std<T: Real>(xs: &[T]) -> (T, T) {
    let (sum, count) = nansum_count(xs);
    let mean = mean_from::<T>(sum, count);
    let std = std_from::<T>(nansum_sq_dev(xs, mean), count);
    (mean, std)
}

/// `(nanmean, nanstd)` of every column of a row-major `(n, k)` matrix, TRL style.
///
/// Two passes over the matrix; each column keeps four accumulators (rows `4i..4i+3` go to
/// different lanes) so the `f64` additions do not form one long dependency chain.
pub(crate) fn column_nanmean_std<T: Real>(m: &[T], k: usize) -> Vec<(T, T)> {
    match k {
        1 => vec![nanmean_std(m)],
        2 => columns_k::<T, 2>(m, k),
        3 => columns_k::<T, 3>(m, k),
        4 => columns_k::<T, 4>(m, k),
        _ => columns_k::<T, 0>(m, k),
    }
}

/// [`column_nanmean_std`] with the column count a constant (`K > 0`), so the accumulators
/// live in registers, or dynamic (`K == 0`).
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
fn columns_k<T: Real, const K: usize>(m: &[T], k: usize) -> Vec<(T, T)> {
    let k = if K > 0 { K } else { k };
    let mut sum = vec![[0.0f64; 4]; k];
    let mut cnt = vec![[0usize; 4]; k];
    let mut blocks = m.chunks_exact(4 * k);
    for b in &mut blocks {
        for j in 0..k {
            for l in 0..4 {
                let x = b[l * k + j];
                let ok = !x.is_nan();
                sum[j][l] += if ok { x.to_f64() } else { 0.0 };
                cnt[j][l] += usize::from(ok);
            }
        }
    }
    let mut means = Vec::with_capacity(k);
    let mut counts = Vec::with_capacity(k);
    for j in 0..k {
        let (mut s, mut c) = ((sum[j][0] + sum[j][1]) + (sum[j][2] + sum[j][3]), cnt[j].iter().sum::<usize>());
        for row in blocks.remainder().chunks_exact(k) {
            if !row[j].is_nan() {
                s += row[j].to_f64();
                c += 1;
            }
        }
        means.push(mean_from::<T>(s, c));
        counts.push(c);
    }
    let mut sq = vec![[0.0f64; 4]; k];
    let mut blocks = m.chunks_exact(4 * k);
    for b in &mut blocks {
        for j in 0..k {
            for l in 0..4 {
                let d = b[l * k + j] - means[j];
                let d2 = d * d;
                sq[j][l] += if d2.is_nan() { 0.0 } else { d2.to_f64() };
            }
        }
    }
    (0..k)
        .map(|j| {
            let mut s = (sq[j][0] + sq[j][1]) + (sq[j][2] + sq[j][3]);
            for row in blocks.remainder().chunks_exact(k) {
                let d = row[j] - means[j];
                let d2 = d * d;
                if !d2.is_nan() {
                    s += d2.to_f64();
                }
            }
            (means[j], std_from::<T>(s, counts[j]))
        })
        .collect()
}

/// `torch.isclose(x, 0)` with its default tolerances: `|x| <= f(1e-8)`, false for NaN.
#[inline(always)]
pub(crate) fn is_close_zero<T: Real>(x: T) -> bool {
    x.abs() <= T::from_f64(1e-8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn std_matches_bessel_definition() {
        let xs = [1.0f64, 2.0, 3.0, 4.0, f64::NAN];
        let (m, s) = nanmean_std(&xs);
        assert_eq!(m, 2.5);
        // sample std of 1..4 = sqrt(5/3); TRL applies the correction as f32(4)/f32(3).
        let expect = (1.25f64 * f64::from(4.0f32 / 3.0f32)).sqrt();
        assert_eq!(s, expect);
    }

    #[test]
    fn fewer_than_two_values_is_nan() {
        assert!(nanmean_std(&[1.0f32]).1.is_nan());
        let (m, s) = nanmean_std(&[f32::NAN, f32::NAN]);
        assert!(m.is_nan() && s.is_nan());
        let (m, s) = nanmean_std::<f32>(&[]);
        assert!(m.is_nan() && s.is_nan());
    }

    #[test]
    fn columns_equal_contiguous() {
        // 9 rows x 2 columns: exercises the 4-row blocks and the remainder.
        let c0 = [1.0f32, 2.0, f32::NAN, 4.0, 5.5, 6.0, 7.0, 8.0, 9.0];
        let c1 = [10.0f32, 20.0, 30.0, 40.0, f32::NAN, 60.0, 70.0, 80.0, 90.0];
        let m: Vec<f32> = c0.iter().zip(&c1).flat_map(|(&a, &b)| [a, b]).collect();
        let cols = column_nanmean_std(&m, 2);
        assert_eq!(cols[0], nanmean_std(&c0));
        assert_eq!(cols[1], nanmean_std(&c1));
    }

    #[test]
    fn isclose_zero() {
        assert!(is_close_zero(0.0f32));
        assert!(is_close_zero(-1e-9f64));
        assert!(!is_close_zero(1e-7f32));
        assert!(!is_close_zero(f32::NAN));
    }
}
