//! Masked per-sequence reductions and importance-sampling ratios, over padded `(B, T)` rows or
//! packed tokens with `cu_seqlens`.
//!
//! * [`Layout`] says where each sequence's tokens are: row `i` of a padded `(B, T)` buffer, or
//!   `cu_seqlens[i]..cu_seqlens[i + 1]` of a packed 1-D buffer.
//! * [`masked_reduce`] / [`masked_reduce_backward`]: `sum` (`Σ m·x`), `mean` (`Σ m·x / max(Σ m, 1)`,
//!   TRL's `clamp(min=1)`), `max` (over tokens with `m != 0`, `-inf` for a sequence without any).
//!   Sums accumulate in `f64` and are rounded once to the value type.
//! * [`vllm_is_ratio`]: TRL 1.16's TIS/MIS ratio between the training engine's old log-probs and
//!   the sampler's, per token or per sequence, truncated or masked, with the statistics TRL logs.
//!
//! Work is split over whole sequences, so parallel results are bit-identical to serial ones.

use crate::error::{ensure, Result};
use crate::numeric::{Real, LANES};

/// A mask element: completion masks are `int64` in TRL, `int32`/`bool` elsewhere, and float
/// weights are multiplied like torch does (`x * mask`).
///
/// A mask's per-sequence count (`Σ m`, TRL's `mask.sum(-1)`) is exact: integer and bool masks
/// add in `i64` (wrapping on overflow, as torch's `int64` sum), float masks in `f64`.
pub trait MaskValue: Copy + Send + Sync + 'static {
    /// What [`MaskValue::count_into`] accumulates in: `i64` or `f64`.
    type Count: Copy + Send + Sync + 'static;
    /// The empty count.
    const COUNT_ZERO: Self::Count;
    /// The value as `T`, rounded once, as torch promotes the mask in `x * mask`.
    fn weight<T: Real>(self) -> T;
    /// `count + self`.
    fn count_into(self, count: Self::Count) -> Self::Count;
    /// `a + b` of two partial counts.
    fn merge(a: Self::Count, b: Self::Count) -> Self::Count;
    /// A count as `f64` (rounded beyond 2^53).
    fn count_f64(count: Self::Count) -> f64;
    fn on(self) -> bool;
}

macro_rules! impl_mask {
    ($t:ty, $count:ty, $zero:expr, |$x:ident| $weight:expr, |$y:ident| $as_count:expr) => {
        impl MaskValue for $t {
            type Count = $count;
            const COUNT_ZERO: $count = 0 as $count;
            #[inline(always)]
            fn weight<T: Real>(self) -> T {
                let $x = self;
                $weight
            }
            #[inline(always)]
            fn count_into(self, count: $count) -> $count {
                let $y = self;
                CountAdd::add(count, $as_count)
            }
            #[inline(always)]
            fn merge(a: $count, b: $count) -> $count {
                CountAdd::add(a, b)
            }
            #[inline(always)]
            fn count_f64(count: $count) -> f64 {
                count as f64
            }
            #[inline(always)]
            fn on(self) -> bool {
                self != $zero
            }
        }
    };
}

/// Addition of mask counts: wrapping for `i64` (as torch's `int64` sum), plain for `f64`.
trait CountAdd {
    fn add(self, other: Self) -> Self;
}
impl CountAdd for i64 {
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        self.wrapping_add(other)
    }
}
impl CountAdd for f64 {
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        self + other
    }
}
impl_mask!(bool, i64, false, |x| if x { T::ONE } else { T::ZERO }, |x| i64::from(x));
impl_mask!(i32, i64, 0, |x| T::from_i64(i64::from(x)), |x| i64::from(x));
impl_mask!(i64, i64, 0, |x| T::from_i64(x), |x| x);
impl_mask!(f32, f64, 0.0, |x| T::from_f32(x), |x| f64::from(x));
impl_mask!(f64, f64, 0.0, |x| T::from_f64(x), |x| x);

/// `Σ m` of one sequence (see [`MaskValue`]), in lanes.
#[inline(always)]
pub(crate) fn mask_count<M: MaskValue>(m: &[M]) -> f64 {
    let mut s = [M::COUNT_ZERO; LANES];
    let mut chunks = m.chunks_exact(LANES);
    for ch in &mut chunks {
        for k in 0..LANES {
            s[k] = ch[k].count_into(s[k]);
        }
    }
    s[0] = chunks.remainder().iter().fold(s[0], |c, &w| w.count_into(c));
    count_total::<M>(&s)
}

/// The total of per-lane partial counts, as `f64`.
#[inline(always)]
pub(crate) fn count_total<M: MaskValue>(lanes: &[M::Count]) -> f64 {
    M::count_f64(lanes.iter().fold(M::COUNT_ZERO, |a, &b| M::merge(a, b)))
}

/// Where each sequence's tokens lie in a flat buffer.
#[derive(Debug, Clone, Copy)]
pub enum Layout<'a> {
    /// `rows` sequences of `cols` tokens each (`(B, T)` row-major).
    Padded { rows: usize, cols: usize },
    /// Packed tokens; sequence `i` is `cu_seqlens[i]..cu_seqlens[i + 1]`.
    Packed { cu_seqlens: &'a [i64] },
}

impl<'a> Layout<'a> {
    /// A padded layout for `len` values of `rows` rows.
    pub fn padded(len: usize, rows: usize, argument: &'static str) -> Result<Self> {
        ensure!(rows == 0 || len % rows == 0, argument, "has {len} values, not a multiple of {rows} rows");
        ensure!(rows > 0 || len == 0, argument, "has {len} values for 0 rows");
        Ok(Layout::Padded { rows, cols: len.checked_div(rows).unwrap_or(0) })
    }

    /// A packed layout, checked against the number of tokens: `cu_seqlens` starts at 0, never
    /// decreases (empty sequences are allowed) and ends at `tokens`.
    pub fn packed(cu_seqlens: &'a [i64], tokens: usize) -> Result<Self> {
        ensure!(!cu_seqlens.is_empty(), "cu_seqlens", "must have at least one entry (0)");
        ensure!(cu_seqlens[0] == 0, "cu_seqlens", "must start at 0, got {}", cu_seqlens[0]);
        if let Some(i) = cu_seqlens.windows(2).position(|w| w[1] < w[0]) {
            return Err(crate::Error::new(
                "cu_seqlens",
                format!(
                    "must be non-decreasing, but entry {} ({}) < entry {} ({})",
                    i + 1,
                    cu_seqlens[i + 1],
                    i,
                    cu_seqlens[i]
                ),
            ));
        }
        let last = cu_seqlens[cu_seqlens.len() - 1];
        ensure!(
            usize::try_from(last).is_ok_and(|l| l == tokens),
            "cu_seqlens",
            "must end at the number of tokens {tokens}, got {last}"
        );
        Ok(Layout::Packed { cu_seqlens })
    }

    /// Number of sequences.
    pub fn rows(&self) -> usize {
        match *self {
            Layout::Padded { rows, .. } => rows,
            Layout::Packed { cu_seqlens } => cu_seqlens.len() - 1,
        }
    }

    /// Total number of tokens (padded: `rows * cols`).
    pub fn tokens(&self) -> usize {
        match *self {
            Layout::Padded { rows, cols } => rows * cols,
            Layout::Packed { cu_seqlens } => cu_seqlens[cu_seqlens.len() - 1] as usize,
        }
    }

    /// Token range of sequence `i`.
    #[inline(always)]
    pub fn range(&self, i: usize) -> std::ops::Range<usize> {
        match *self {
            Layout::Padded { cols, .. } => i * cols..(i + 1) * cols,
            Layout::Packed { cu_seqlens } => cu_seqlens[i] as usize..cu_seqlens[i + 1] as usize,
        }
    }

    /// Padded with a single column: TRL's metrics treat such `(B, 1)` tensors as per-sequence.
    pub fn is_single_column(&self) -> bool {
        matches!(*self, Layout::Padded { cols: 1, .. })
    }
}

/// Run `f(first_row, num_rows, rows_block, token_block)` over blocks of whole sequences, in
/// parallel for large inputs (`work` = elements touched). `per_token` is split at the blocks'
/// token boundaries and `per_row` at row boundaries; either may be empty (then every block gets
/// an empty slice). One result per block, in order.
pub(crate) fn for_row_blocks<A: Send, B: Send, R: Send>(
    layout: &Layout<'_>,
    per_row: &mut [A],
    per_token: &mut [B],
    work: usize,
    f: impl Fn(usize, usize, &mut [A], &mut [B]) -> R + Sync,
) -> Vec<R> {
    let n = layout.rows();
    if n == 0 {
        return Vec::new();
    }
    let pool = crate::par::pool_for(work);
    let per = match pool {
        Some(p) => crate::par::units_per_task(n, p),
        None => n,
    };
    let mut blocks = Vec::with_capacity(n.div_ceil(per));
    let (mut rows_rest, mut toks_rest) = (per_row, per_token);
    let mut start = 0;
    while start < n {
        let end = (start + per).min(n);
        let take_rows = if rows_rest.is_empty() { 0 } else { end - start };
        let (r, rr) = std::mem::take(&mut rows_rest).split_at_mut(take_rows);
        let ntok = layout.range(end - 1).end - layout.range(start).start;
        let take_toks = if toks_rest.is_empty() { 0 } else { ntok };
        let (t, tr) = std::mem::take(&mut toks_rest).split_at_mut(take_toks);
        blocks.push((start, end - start, r, t));
        rows_rest = rr;
        toks_rest = tr;
        start = end;
    }
    match pool {
        Some(pool) if blocks.len() > 1 => {
            use rayon::prelude::*;
            pool.install(|| blocks.into_par_iter().map(|(s, k, r, t)| f(s, k, r, t)).collect())
        }
        _ => blocks.into_iter().map(|(s, k, r, t)| f(s, k, r, t)).collect(),
    }
}

/// Which reduction [`masked_reduce`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    Sum,
    Mean,
    Max,
}

impl Reduction {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "sum" => Reduction::Sum,
            "mean" => Reduction::Mean,
            "max" => Reduction::Max,
            _ => return Err(crate::Error::new("reduction", format!("expected 'sum', 'mean' or 'max', got {s:?}"))),
        })
    }
}

fn check_lengths(n: usize, layout: &Layout<'_>, name: &'static str) -> Result<()> {
    ensure!(n == layout.tokens(), name, "has {n} values, expected {} (the layout's token count)", layout.tokens());
    Ok(())
}

/// `(Σ m·x, Σ m)` over one sequence, accumulated in `f64` lanes (vectorises).
#[cfg(test)]
fn masked_sum_count<T: Real, M: MaskValue>(x: &[T], m: Option<&[M]>) -> (f64, f64) {
    masked_diff_sum_count(x, None, m)
}

/// `(Σ m·(x − y), Σ m)` with the difference rounded to `T` first (as torch's `x - y`), in `f64`
/// lanes; `y = None` sums `m·x`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
pub(crate) fn masked_diff_sum_count<T: Real, M: MaskValue>(x: &[T], y: Option<&[T]>, m: Option<&[M]>) -> (f64, f64) {
    let n = x.len();
    let full = n - n % LANES;
    let (mut s, mut c) = ([0.0f64; LANES], [M::COUNT_ZERO; LANES]);
    // full blocks through fixed-size views (no bounds checks in the loops, so they vectorise),
    // each step a plain loop over the block (LLVM keeps the accumulators in registers)
    let blk = |v: &[T], t: usize| -> [T; LANES] { v[t..t + LANES].try_into().expect("a full block") };
    let mut t = 0;
    while t < full {
        let mut v = blk(x, t);
        if let Some(y) = y {
            let yb = blk(y, t);
            for k in 0..LANES {
                v[k] = v[k] - yb[k];
            }
        }
        if let Some(m) = m {
            let mb: &[M; LANES] = m[t..t + LANES].try_into().expect("a full block");
            let mut w = [T::ZERO; LANES];
            for k in 0..LANES {
                w[k] = mb[k].weight();
            }
            for k in 0..LANES {
                v[k] = v[k] * w[k];
            }
            for k in 0..LANES {
                c[k] = mb[k].count_into(c[k]);
            }
        }
        for k in 0..LANES {
            s[k] += v[k].to_f64();
        }
        t += LANES;
    }
    for (k, t) in (full..n).enumerate() {
        let v = match y {
            Some(y) => x[t] - y[t],
            None => x[t],
        };
        match m {
            Some(m) => {
                s[k] += (v * m[t].weight()).to_f64();
                c[k] = m[t].count_into(c[k]);
            }
            None => s[k] += v.to_f64(),
        }
    }
    let count = if m.is_some() { count_total::<M>(&c) } else { n as f64 };
    (s.iter().sum(), count)
}

/// Per-sequence `sum` / `mean` / `max` of `values` (or of `values − minus`, rounded to `T`
/// per token as torch's subtraction, without materialising it) under `mask` (all ones when
/// `None`).
pub fn masked_reduce<T: Real, M: MaskValue>(
    values: &[T],
    minus: Option<&[T]>,
    mask: Option<&[M]>,
    layout: &Layout<'_>,
    reduction: Reduction,
    out: &mut [T],
) -> Result<()> {
    check_lengths(values.len(), layout, "values")?;
    if let Some(y) = minus {
        check_lengths(y.len(), layout, "minus")?;
    }
    if let Some(m) = mask {
        check_lengths(m.len(), layout, "mask")?;
    }
    ensure!(out.len() == layout.rows(), "out", "has {} values for {} sequences", out.len(), layout.rows());
    for_row_blocks(layout, out, &mut [] as &mut [T], values.len(), |first, _, o, _| {
        for (j, o) in o.iter_mut().enumerate() {
            let r = layout.range(first + j);
            let x = &values[r.clone()];
            let y = minus.map(|y| &y[r.clone()]);
            let m = mask.map(|m| &m[r]);
            let sum_count = || masked_diff_sum_count(x, y, m);
            *o = match reduction {
                Reduction::Sum => T::from_f64(sum_count().0),
                Reduction::Mean => {
                    let (s, c) = sum_count();
                    T::from_f64(s / c.max(1.0))
                }
                Reduction::Max => {
                    let mut best = f64::NEG_INFINITY;
                    for (i, &v) in x.iter().enumerate() {
                        if m.is_none_or(|m| m[i].on()) {
                            let v = y.map_or(v, |y| v - y[i]).to_f64();
                            if v.is_nan() || v > best {
                                best = v;
                                if v.is_nan() {
                                    break;
                                }
                            }
                        }
                    }
                    T::from_f64(best)
                }
            };
        }
    });
    Ok(())
}

#[allow(clippy::needless_range_loop)]
/// Gradient of [`masked_reduce`] (`sum` or `mean`) with respect to `values`: `g_i·m_t`, divided by
/// `max(Σ m, 1)` for `mean`.
pub fn masked_reduce_backward<T: Real, M: MaskValue>(
    grad: &[T],
    mask: Option<&[M]>,
    layout: &Layout<'_>,
    reduction: Reduction,
    out: &mut [T],
) -> Result<()> {
    ensure!(grad.len() == layout.rows(), "grad", "has {} values for {} sequences", grad.len(), layout.rows());
    check_lengths(out.len(), layout, "out")?;
    if let Some(m) = mask {
        check_lengths(m.len(), layout, "mask")?;
    }
    ensure!(reduction != Reduction::Max, "reduction", "the backward of 'max' is computed by the caller");
    for_row_blocks(layout, &mut [] as &mut [T], out, grad.len() + out.len(), |first, rows, _, o| {
        let base = layout.range(first).start;
        for j in first..first + rows {
            let r = layout.range(j);
            let ob = &mut o[r.start - base..r.end - base];
            let m = mask.map(|m| &m[r.clone()]);
            let g = match reduction {
                Reduction::Mean => {
                    let c = m.map_or(ob.len() as f64, mask_count);
                    T::from_f64(grad[j].to_f64() / c.max(1.0))
                }
                _ => grad[j],
            };
            match m {
                Some(m) => ob.iter_mut().zip(m).for_each(|(o, &w)| *o = g * w.weight()),
                None => ob.iter_mut().for_each(|o| *o = g),
            }
        }
    });
    Ok(())
}

/// `vllm_importance_sampling_mode` of TRL 1.16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsMode {
    pub sequence: bool,
    pub truncate: bool,
}

impl IsMode {
    pub fn parse(s: &str) -> Result<Self> {
        let (sequence, truncate) = match s {
            "token_truncate" => (false, true),
            "token_mask" => (false, false),
            "sequence_truncate" => (true, true),
            "sequence_mask" => (true, false),
            _ => {
                return Err(crate::Error::new(
                    "mode",
                    format!(
                        "expected 'token_truncate', 'token_mask', 'sequence_truncate' or 'sequence_mask', got {s:?}"
                    ),
                ))
            }
        };
        Ok(IsMode { sequence, truncate })
    }
}

/// `vllm_importance_sampling_min` / `_max`: bounds of the IS ratio, either optional.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClipRange {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// Statistics of a vLLM IS ratio call, as TRL logs them (`sampling/...`), plus the raw ratio
/// before truncation/masking. `(min, mean, max)` are over the ratios TRL reduces: every
/// sequence's value in sequence modes, the tokens with `m != 0` in token modes; `0.0` when
/// there are none (as TRL). `logp_diff` is `|old − sampling|` over `m != 0`, NaN excluded.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IsStats {
    pub logp_diff_mean: f64,
    pub logp_diff_max: f64,
    pub ratio_min: f64,
    pub ratio_mean: f64,
    pub ratio_max: f64,
    pub raw_min: f64,
    pub raw_mean: f64,
    pub raw_max: f64,
}

#[derive(Clone, Copy)]
struct Acc {
    n: f64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Acc {
    const EMPTY: Acc = Acc { n: 0.0, sum: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY };
    #[inline(always)]
    fn push(&mut self, v: f64) {
        self.n += 1.0;
        self.sum += v;
        // torch.min/max propagate NaN
        if v.is_nan() || v < self.min {
            self.min = if self.min.is_nan() { self.min } else { v };
        }
        if v.is_nan() || v > self.max {
            self.max = if self.max.is_nan() { self.max } else { v };
        }
    }
    fn merge(&mut self, o: &Acc) {
        self.n += o.n;
        self.sum += o.sum;
        self.min = if self.min.is_nan() || o.min.is_nan() { f64::NAN } else { self.min.min(o.min) };
        self.max = if self.max.is_nan() || o.max.is_nan() { f64::NAN } else { self.max.max(o.max) };
    }
    fn stats(&self) -> (f64, f64, f64) {
        if self.n == 0.0 {
            (0.0, 0.0, 0.0)
        } else {
            (self.min, self.sum / self.n, self.max)
        }
    }
}

#[allow(clippy::needless_range_loop)]
/// TRL 1.16's vLLM importance-sampling ratio (grpo_trainer.py, `_generate_and_score_completions`):
/// `d = nan_to_num((old − sampling)·m)`, `ratio = exp(d)` per token or `exp(Σ_t d)` per sequence
/// (a sum, i.e. the product of token ratios), then `*_truncate`: `clamp(min=clip.min, max=clip.max)`,
/// `*_mask`: set to 0 where `ratio < clip.min` or `ratio > clip.max`. `out` has one value per token
/// (token modes) or per sequence (sequence modes).
pub fn vllm_is_ratio<T: Real, M: MaskValue>(
    old: &[T],
    sampling: &[T],
    mask: &[M],
    layout: &Layout<'_>,
    mode: IsMode,
    clip: ClipRange,
    out: &mut [T],
) -> Result<IsStats> {
    let ClipRange { min: clip_min, max: clip_max } = clip;
    check_lengths(old.len(), layout, "old_per_token_logps")?;
    check_lengths(sampling.len(), layout, "sampling_per_token_logps")?;
    check_lengths(mask.len(), layout, "mask")?;
    let want = if mode.sequence { layout.rows() } else { layout.tokens() };
    ensure!(out.len() == want, "out", "has {} values, expected {want}", out.len());
    if let (Some(lo), Some(hi)) = (clip_min, clip_max) {
        if lo.is_nan() || hi.is_nan() || lo >= hi {
            return Err(crate::Error::new("clip_min", format!("must be < clip_max, got {lo} >= {hi}")));
        }
    }
    ensure!(
        !(mode.truncate && clip_min.is_none() && clip_max.is_none()),
        "clip_max",
        "a *_truncate mode needs clip_min or clip_max"
    );
    // torch casts the Python-float bounds to the tensor's dtype for clamp and comparisons
    let lo = clip_min.map(T::from_f64);
    let hi = clip_max.map(T::from_f64);
    let finish = move |r: T| -> T {
        if mode.truncate {
            let r = match lo {
                Some(lo) if r < lo => lo,
                _ => r,
            };
            match hi {
                Some(hi) if r > hi => hi,
                _ => r,
            }
        } else if lo.is_some_and(|lo| r < lo) || hi.is_some_and(|hi| r > hi) {
            T::ZERO
        } else {
            r
        }
    };
    let (seq_out, tok_out): (&mut [T], &mut [T]) = if mode.sequence { (out, &mut []) } else { (&mut [], out) };
    let parts = for_row_blocks(layout, seq_out, tok_out, old.len(), |first, rows, so, to| {
        let (mut diff, mut ratio, mut raw) = (Acc::EMPTY, Acc::EMPTY, Acc::EMPTY);
        let base = layout.range(first).start;
        for j in 0..rows {
            let r = layout.range(first + j);
            let mut s = 0.0f64;
            for t in r.clone() {
                let m = mask[t];
                let dd = old[t] - sampling[t];
                if m.on() && !dd.is_nan() {
                    diff.push(dd.abs().to_f64());
                }
                let d = (dd * m.weight()).nan_to_num();
                if mode.sequence {
                    s += d.to_f64();
                } else {
                    let e = d.exp();
                    let v = finish(e);
                    to[t - base] = v;
                    if m.on() {
                        raw.push(e.to_f64());
                        ratio.push(v.to_f64());
                    }
                }
            }
            if mode.sequence {
                let e = T::from_f64(s).exp();
                let v = finish(e);
                so[j] = v;
                raw.push(e.to_f64());
                ratio.push(v.to_f64());
            }
        }
        (diff, ratio, raw)
    });
    let (mut diff, mut ratio, mut raw) = (Acc::EMPTY, Acc::EMPTY, Acc::EMPTY);
    for (d, r, w) in &parts {
        diff.merge(d);
        ratio.merge(r);
        raw.merge(w);
    }
    let (_, dmean, dmax) = diff.stats();
    let (rmin, rmean, rmax) = ratio.stats();
    let (wmin, wmean, wmax) = raw.stats();
    Ok(IsStats {
        logp_diff_mean: dmean,
        logp_diff_max: dmax,
        ratio_min: rmin,
        ratio_mean: rmean,
        ratio_max: rmax,
        raw_min: wmin,
        raw_mean: wmean,
        raw_max: wmax,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_counts_are_exact_like_torchs_integer_sum() {
        // 2^24 + 1 is not a float32: the count must not go through the weight's rounding
        let big = (1i64 << 24) + 1;
        for len in [1usize, 15, 16, 17, 40] {
            let m = vec![big; len];
            let want = (big * len as i64) as f64;
            assert_eq!(mask_count(&m), want);
            let x = vec![1.0f32; len];
            assert_eq!(masked_sum_count(&x, Some(&m)).1, want);
            let m32: Vec<i32> = m.iter().map(|&v| v as i32).collect();
            assert_eq!(mask_count(&m32), want);
        }
        // int64 overflow wraps, as torch's int64 sum does
        assert_eq!(mask_count(&[i64::MAX, 1]), i64::MIN as f64);
        let b: Vec<bool> = (0..37).map(|i| i % 3 == 0).collect();
        assert_eq!(mask_count(&b), 13.0);
        let f = vec![0.5f32; 33];
        assert_eq!(mask_count(&f), 16.5);
        // the weight itself is rounded once, as torch's int64 -> float32 cast
        assert_eq!(big.weight::<f32>(), (1u32 << 24) as f32);
        assert_eq!(((1i64 << 54) + (1 << 30) + 1).weight::<f32>(), ((1i64 << 54) + (1 << 30) + 1) as f32);
    }

    #[test]
    fn reductions_padded_and_packed_agree() {
        let x: Vec<f64> = (0..12).map(|i| i as f64 - 3.5).collect();
        let m: Vec<i64> = vec![1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1];
        let pad = Layout::padded(12, 3, "values").unwrap();
        let cu = [0i64, 4, 8, 12];
        let packed = Layout::packed(&cu, 12).unwrap();
        for red in [Reduction::Sum, Reduction::Mean, Reduction::Max] {
            let (mut a, mut b) = (vec![0.0; 3], vec![0.0; 3]);
            masked_reduce(&x, None, Some(&m), &pad, red, &mut a).unwrap();
            masked_reduce(&x, None, Some(&m), &packed, red, &mut b).unwrap();
            assert_eq!(a, b);
        }
        let mut s = vec![0.0; 3];
        masked_reduce(&x, None, Some(&m), &pad, Reduction::Sum, &mut s).unwrap();
        assert_eq!(s, vec![-3.5 + -2.5, 0.0, 4.5 + 6.5 + 7.5]);
        masked_reduce(&x, None, Some(&m), &pad, Reduction::Mean, &mut s).unwrap();
        assert_eq!(s, vec![-3.0, 0.0, 18.5 / 3.0]);
        masked_reduce(&x, None, Some(&m), &pad, Reduction::Max, &mut s).unwrap();
        assert_eq!(s, vec![-2.5, f64::NEG_INFINITY, 7.5]);
    }

    #[test]
    fn backward_of_mean_divides_by_clamped_count() {
        let m: Vec<bool> = vec![true, false, false, false, true, true];
        let pad = Layout::padded(6, 3, "values").unwrap();
        let mut g = vec![9.0f32; 6];
        masked_reduce_backward(&[2.0f32, 3.0, 4.0], Some(&m), &pad, Reduction::Mean, &mut g).unwrap();
        assert_eq!(g, vec![2.0, 0.0, 0.0, 0.0, 2.0, 2.0]);
    }

    #[test]
    fn packed_layout_is_validated() {
        assert!(Layout::packed(&[0, 2, 1], 1).is_err());
        assert!(Layout::packed(&[1, 2], 2).is_err());
        assert!(Layout::packed(&[0, 2, 3], 4).is_err());
        assert!(Layout::packed(&[], 0).is_err());
        assert!(Layout::packed(&[0, 0, 3], 3).is_ok());
        assert!(Layout::padded(7, 2, "values").is_err());
    }

    #[test]
    fn parallel_blocks_equal_serial() {
        // large enough to use the pool
        let (b, t) = (300, 4096);
        let x: Vec<f32> = (0..b * t).map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5).collect();
        let m: Vec<i64> = (0..b * t).map(|i| i64::from(i % t < (i / t) % t + 1)).collect();
        let lay = Layout::padded(b * t, b, "values").unwrap();
        let mut par = vec![0.0f32; b];
        masked_reduce(&x, None, Some(&m), &lay, Reduction::Mean, &mut par).unwrap();
        for i in 0..b {
            let (s, c) = masked_sum_count(&x[i * t..(i + 1) * t], Some(&m[i * t..(i + 1) * t]));
            assert_eq!(par[i], (s / c.max(1.0)) as f32);
        }
        let mut g = vec![0.0f32; b * t];
        masked_reduce_backward(&par, Some(&m), &lay, Reduction::Sum, &mut g).unwrap();
        for (i, gi) in g.iter().enumerate() {
            assert_eq!(*gi, par[i / t] * m[i] as f32);
        }
    }

    #[test]
    fn is_ratio_modes() {
        let old = [0.0f64, -1.0, -2.0, 0.0];
        let samp = [0.0f64, -2.0, -1.0, f64::NAN];
        let m = [1i64, 1, 1, 0];
        let lay = Layout::padded(4, 2, "old").unwrap();
        let mut tok = [0.0; 4];
        let clip = ClipRange { min: None, max: Some(2.0) };
        let st =
            vllm_is_ratio(&old, &samp, &m, &lay, IsMode::parse("token_truncate").unwrap(), clip, &mut tok).unwrap();
        assert_eq!(tok, [1.0, 2.0, (-1.0f64).exp(), 1.0]);
        assert_eq!(st.raw_max, 1f64.exp());
        assert_eq!(st.logp_diff_max, 1.0);
        let mut seq = [0.0; 2];
        vllm_is_ratio(&old, &samp, &m, &lay, IsMode::parse("sequence_mask").unwrap(), clip, &mut seq).unwrap();
        assert_eq!(seq, [0.0, (-1.0f64).exp()]);
        assert!(IsMode::parse("token").is_err());
        let unbounded = ClipRange::default();
        assert!(vllm_is_ratio(&old, &samp, &m, &lay, IsMode::parse("token_truncate").unwrap(), unbounded, &mut tok)
            .is_err());
    }
}
