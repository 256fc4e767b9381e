//! NaN-aware statistics with torch's semantics (`nansum`, `nanmean`, TRL's `nanstd`).
//!
//! Element-wise steps happen in `T`, reductions accumulate in `f64` and are rounded to `T`
//! once, where torch would produce its own (vectorised, few-ulp) `T` reduction.

use crate::numeric::Real;

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
/// Two passes over the matrix, each over the flat data in blocks of `8 * k` values with one
/// `f64` accumulator per position in the block (position `p` belongs to column `p % k`), so
/// the loads are contiguous and the accumulators fill whole vector registers; the positions
/// of a column are added together at the end.
pub(crate) fn column_nanmean_std<T: Real>(m: &[T], k: usize) -> Vec<(T, T)> {
    match k {
        1 => columns_k::<T, 1, 8>(m).to_vec(),
        2 => columns_k::<T, 2, 16>(m).to_vec(),
        3 => columns_k::<T, 3, 24>(m).to_vec(),
        4 => columns_k::<T, 4, 32>(m).to_vec(),
        _ => columns_dyn(m, k),
    }
}

/// [`column_nanmean_std`] for `K` columns, with `P = 8 * K` accumulators.
fn columns_k<T: Real, const K: usize, const P: usize>(m: &[T]) -> [(T, T); K] {
    let (sum, cnt) = block_sums::<T, P>(m);
    let mut csum = [0.0f64; K];
    let mut ccnt = [0.0f64; K];
    for p in 0..P {
        csum[p % K] += sum[p];
        ccnt[p % K] += f64::from(cnt[p]);
    }
    let tail = m.chunks_exact(P).remainder();
    for (i, &x) in tail.iter().enumerate() {
        if !x.is_nan() {
            csum[i % K] += x.to_f64();
            ccnt[i % K] += 1.0;
        }
    }
    let counts: [usize; K] = std::array::from_fn(|j| ccnt[j] as usize);
    let means: [T; K] = std::array::from_fn(|j| mean_from::<T>(csum[j], counts[j]));
    let pattern: [T; P] = std::array::from_fn(|p| means[p % K]);
    let sq = block_sq_devs::<T, P>(m, &pattern);
    let mut csq = [0.0f64; K];
    for p in 0..P {
        csq[p % K] += sq[p];
    }
    for (i, &x) in tail.iter().enumerate() {
        let d = x - means[i % K];
        let d2 = d * d;
        if !d2.is_nan() {
            csq[i % K] += d2.to_f64();
        }
    }
    std::array::from_fn(|j| (means[j], std_from::<T>(csq[j], counts[j])))
}

/// Per block position: `f64` sum and count of the non-NaN values, over whole blocks of `P`.
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
fn block_sums<T: Real, const P: usize>(m: &[T]) -> ([f64; P], [u32; P]) {
    // NaN is replaced by 0 and counted in `T`'s own lanes, before widening to f64
    let mut sum = [0.0f64; P];
    let mut cnt = [0u32; P];
    for b in m.chunks_exact(P) {
        for p in 0..P {
            let x = b[p];
            let ok = !x.is_nan();
            sum[p] += if ok { x } else { T::ZERO }.to_f64();
            cnt[p] += u32::from(ok);
        }
    }
    (sum, cnt)
}

/// Per block position: `f64` sum of the non-NaN `(x - mean)^2` (computed in `T`), over whole
/// blocks of `P`; `pattern[p]` is the mean of position `p`'s column.
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
fn block_sq_devs<T: Real, const P: usize>(m: &[T], pattern: &[T; P]) -> [f64; P] {
    let mut sq = [0.0f64; P];
    for b in m.chunks_exact(P) {
        for p in 0..P {
            let d = b[p] - pattern[p];
            let d2 = d * d;
            sq[p] += if d2.is_nan() { T::ZERO } else { d2 }.to_f64();
        }
    }
    sq
}

/// [`column_nanmean_std`] for any column count: two plain passes.
fn columns_dyn<T: Real>(m: &[T], k: usize) -> Vec<(T, T)> {
    let mut sum = vec![0.0f64; k];
    let mut cnt = vec![0usize; k];
    for row in m.chunks_exact(k) {
        for j in 0..k {
            if !row[j].is_nan() {
                sum[j] += row[j].to_f64();
                cnt[j] += 1;
            }
        }
    }
    let means: Vec<T> = (0..k).map(|j| mean_from::<T>(sum[j], cnt[j])).collect();
    let mut sq = vec![0.0f64; k];
    for row in m.chunks_exact(k) {
        for j in 0..k {
            let d = row[j] - means[j];
            let d2 = d * d;
            if !d2.is_nan() {
                sq[j] += d2.to_f64();
            }
        }
    }
    (0..k).map(|j| (means[j], std_from::<T>(sq[j], cnt[j]))).collect()
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
