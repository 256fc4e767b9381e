//! Group-relative advantages: GRPO (all TRL 1.16 modes), RLOO, and zero-variance detection.
//!
//! Layout: `rewards` is an `(n, k)` row-major matrix (one column per reward function), rows in
//! contiguous groups of `num_generations` completions of the same prompt. NaN marks a reward
//! function that returned `None` for that completion.

use multiversion::multiversion;

use crate::error::{ensure, Result};
use crate::numeric::Real;
use crate::stats::{column_nanmean_std, is_close_zero, mean_from, nanmean_std, nansum_count, nansum_sq_dev, std_from};

/// How GRPO scales the centred rewards (`GRPOConfig.scale_rewards`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleRewards {
    /// Divide by the group's std (the default; legacy `True`).
    Group,
    /// Divide by the std of the whole batch (Lite PPO); the mean is still the group mean.
    Batch,
    /// Do not divide (Dr. GRPO; legacy `False`). The group std is still computed for logging.
    None,
}

impl ScaleRewards {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "group" => Ok(Self::Group),
            "batch" => Ok(Self::Batch),
            "none" => Ok(Self::None),
            other => Err(crate::Error::new(
                "scale_rewards",
                format!("expected 'group', 'batch' or 'none' (or True/False), got {other:?}"),
            )),
        }
    }
}

/// How several reward functions are combined (`GRPOConfig.multi_objective_aggregation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// Weighted NaN-sum of the raw rewards, then normalise.
    SumThenNormalize,
    /// Normalise each reward function within its group, weighted NaN-sum, then normalise over
    /// the batch (GDPO). `scale_rewards` is ignored, as in TRL.
    NormalizeThenSum,
}

impl Aggregation {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "sum_then_normalize" => Ok(Self::SumThenNormalize),
            "normalize_then_sum" => Ok(Self::NormalizeThenSum),
            other => Err(crate::Error::new(
                "multi_objective_aggregation",
                format!("expected 'sum_then_normalize' or 'normalize_then_sum', got {other:?}"),
            )),
        }
    }
}

/// Options of [`grpo_advantages`].
#[derive(Debug, Clone, Copy)]
pub struct GrpoParams {
    pub num_generations: usize,
    pub scale_rewards: ScaleRewards,
    pub aggregation: Aggregation,
    /// Added to the std before dividing (TRL: `1e-4`).
    pub eps: f64,
}

/// Everything GRPOTrainer computes (and logs) in its advantage step.
#[derive(Debug, Clone)]
pub struct AdvantageOutput<T> {
    /// `(n,)` advantages, NaN mapped to 0 and infinities to the finite extremes.
    pub advantages: Vec<T>,
    /// `(n,)` per-row flag: the std used for this row is zero (`torch.isclose(std, 0)`).
    pub std_is_zero: Vec<bool>,
    /// `(n,)` weighted NaN-sum of the raw rewards, NaN for unscorable rows (TRL logs its stats).
    pub rewards: Vec<T>,
    /// Fraction of rows whose std is zero (`frac_reward_zero_std`).
    pub frac_zero_std: f64,
}

/// `(nanmean, nanstd)` of every column of a row-major `(n, k)` matrix, TRL style: the
/// per-reward-function statistics GRPOTrainer logs (`rewards/{name}/mean`, `.../std`), and
/// with `k = 1` over the summed rewards, `reward` and `reward_std`.
pub fn column_stats<T: Real>(m: &[T], k: usize) -> Result<Vec<(f64, f64)>> {
    ensure!(k >= 1 && m.len() % k == 0, "values", "length {} is not a multiple of k={k}", m.len());
    Ok(column_nanmean_std(m, k).into_iter().map(|(a, b)| (a.to_f64(), b.to_f64())).collect())
}

/// Validate the `(n, k)` layout and grouping; return `n`.
fn check_layout<T>(rewards: &[T], k: usize, weights: &[T], num_generations: usize) -> Result<usize> {
    ensure!(k >= 1, "rewards", "needs at least one reward column, got shape (n, 0)");
    ensure!(rewards.len() % k == 0, "rewards", "length {} is not a multiple of k={k}", rewards.len());
    let n = rewards.len() / k;
    ensure!(n >= 1, "rewards", "is empty; expected at least one completion");
    ensure!(
        weights.len() == k,
        "reward_weights",
        "has {} entries but rewards has {k} columns (one weight per reward function)",
        weights.len()
    );
    ensure!(num_generations >= 1, "num_generations", "must be >= 1, got {num_generations}");
    ensure!(
        n % num_generations == 0,
        "num_generations",
        "{num_generations} does not divide the number of completions {n} (groups are contiguous blocks of num_generations rows)"
    );
    Ok(n)
}

/// Weighted NaN-sum per row; rows where every input is NaN get `all_nan` (NaN marks a row
/// "unscorable" for the raw rewards).
///
/// The products are formed in `T` and added left to right in `T`, as torch's `nansum` over
/// a short inner dimension does. Common column counts get a specialised copy so the row
/// loop vectorises.
fn weighted_row_sums<T: Real>(rewards: &[T], k: usize, weights: &[T], all_nan: T) -> Vec<T> {
    let mut out = vec![T::ZERO; rewards.len() / k];
    weighted_row_sums_into(rewards, k, weights, all_nan, &mut out);
    out
}

/// [`weighted_row_sums`] into `out` (one value per row), in parallel blocks of rows for large
/// inputs.
fn weighted_row_sums_into<T: Real>(rewards: &[T], k: usize, weights: &[T], all_nan: T, out: &mut [T]) {
    let n = out.len();
    match crate::par::pool_for(rewards.len()) {
        None => row_sums_into(rewards, k, weights, all_nan, out),
        Some(pool) => {
            use rayon::prelude::*;
            let per = crate::par::units_per_task(n, pool);
            pool.install(|| {
                out.par_chunks_mut(per)
                    .zip(rewards.par_chunks(per * k))
                    .for_each(|(o, r)| row_sums_into(r, k, weights, all_nan, o));
            });
        }
    }
}

fn row_sums_into<T: Real>(rewards: &[T], k: usize, weights: &[T], all_nan: T, out: &mut [T]) {
    match k {
        1 => row_sums_k::<T, 1>(rewards, weights, all_nan, out),
        2 => row_sums_k::<T, 2>(rewards, weights, all_nan, out),
        3 => row_sums_k::<T, 3>(rewards, weights, all_nan, out),
        4 => row_sums_k::<T, 4>(rewards, weights, all_nan, out),
        _ => row_sums_dyn(rewards, k, weights, all_nan, out),
    }
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
fn row_sums_k<T: Real, const K: usize>(rewards: &[T], weights: &[T], all_nan: T, out: &mut [T]) {
    let mut w = [T::ZERO; K];
    w.copy_from_slice(&weights[..K]);
    // One branch-free pass: 0 + p0 + p1 + ... in order with NaN products replaced by 0 (torch's
    // `nansum`), and whether every input is NaN (an unscorable row). Rows are taken in blocks of
    // `B` and transposed into columns so the arithmetic runs across rows in vector lanes.
    const B: usize = 64;
    let mut blocks = rewards.chunks_exact(B * K);
    let mut outs = out.chunks_exact_mut(B);
    for (block, o) in (&mut blocks).zip(&mut outs) {
        let mut acc = [T::ZERO; B];
        let mut every_nan = [true; B];
        for j in 0..K {
            let mut col = [T::ZERO; B];
            for i in 0..B {
                col[i] = block[i * K + j];
            }
            for i in 0..B {
                let p = col[i] * w[j];
                acc[i] = acc[i] + if p.is_nan() { T::ZERO } else { p };
                every_nan[i] &= col[i].is_nan();
            }
        }
        for i in 0..B {
            o[i] = if every_nan[i] { all_nan } else { acc[i] };
        }
    }
    for (o, row) in outs.into_remainder().iter_mut().zip(blocks.remainder().chunks_exact(K)) {
        *o = row_nansum(row, &w, all_nan);
    }
}

/// The weighted NaN-sum of one row (see [`weighted_row_sums`]).
#[inline(always)]
fn row_nansum<T: Real>(row: &[T], w: &[T], all_nan: T) -> T {
    let mut acc = T::ZERO;
    let mut every_nan = true;
    for (&r, &w) in row.iter().zip(w) {
        every_nan &= r.is_nan();
        let p = r * w;
        acc = acc + if p.is_nan() { T::ZERO } else { p };
    }
    if every_nan {
        all_nan
    } else {
        acc
    }
}

fn row_sums_dyn<T: Real>(rewards: &[T], k: usize, weights: &[T], all_nan: T, out: &mut [T]) {
    for (o, row) in out.iter_mut().zip(rewards.chunks_exact(k)) {
        *o = row_nansum(row, weights, all_nan);
    }
}

/// Centre (and optionally scale) each group of `g` values of `s`; write the advantages and
/// the per-row "std is zero" flags, and return how many rows are flagged.
///
/// `batch_std`: use this std for every group (`scale_rewards="batch"`) instead of the group's.
fn normalize_groups<T: Real>(
    s: &[T],
    g: usize,
    batch_std: Option<T>,
    divide: bool,
    eps: T,
    adv: &mut [T],
    zero: &mut [bool],
) -> usize {
    // Groups are independent: large batches are split into blocks of whole groups over
    // fastalign's pool, each block computed exactly as the serial code does.
    match crate::par::pool_for(s.len()) {
        None => normalize_groups_into(s, g, batch_std, divide, eps, adv, zero),
        Some(pool) => {
            use rayon::prelude::*;
            let per = crate::par::units_per_task(s.len() / g, pool) * g;
            pool.install(|| {
                adv.par_chunks_mut(per)
                    .zip(zero.par_chunks_mut(per))
                    .zip(s.par_chunks(per))
                    .map(|((a, z), x)| normalize_groups_into(x, g, batch_std, divide, eps, a, z))
                    .sum()
            })
        }
    }
}

fn normalize_groups_into<T: Real>(
    s: &[T],
    g: usize,
    batch_std: Option<T>,
    divide: bool,
    eps: T,
    adv: &mut [T],
    zero: &mut [bool],
) -> usize {
    // Common group sizes get their own copy: with `g` a constant the per-group loops unroll
    // completely, which removes most of the per-group overhead (a group is only 8-64 values).
    match g {
        4 => normalize_groups_g::<T, 4>(s, g, batch_std, divide, eps, adv, zero),
        8 => normalize_groups_g::<T, 8>(s, g, batch_std, divide, eps, adv, zero),
        16 => normalize_groups_g::<T, 16>(s, g, batch_std, divide, eps, adv, zero),
        32 => normalize_groups_g::<T, 32>(s, g, batch_std, divide, eps, adv, zero),
        64 => normalize_groups_g::<T, 64>(s, g, batch_std, divide, eps, adv, zero),
        _ => normalize_groups_g::<T, 0>(s, g, batch_std, divide, eps, adv, zero),
    }
}

/// Groups handled per round of [`normalize_groups_g`]: its per-group scalars live in stack
/// arrays of this length.
const GROUPS_PER_ROUND: usize = 256;

/// [`normalize_groups`] for a group size known at compile time (`G > 0`) or not (`G == 0`).
///
/// Phase by phase over a round of groups rather than group by group: the group sums (and sums
/// of squared deviations) are reduced group by group in `f64` lanes, then the divisions and
/// square roots that turn them into means and stds run across groups in vector lanes instead
/// of one long latency chain per group. Every value is still computed exactly as in the scalar
/// formula. Returns the number of rows whose std is zero.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
fn normalize_groups_g<T: Real, const G: usize>(
    s: &[T],
    g: usize,
    batch_std: Option<T>,
    divide: bool,
    eps: T,
    adv: &mut [T],
    std_is_zero: &mut [bool],
) -> usize {
    const R: usize = GROUPS_PER_ROUND;
    let g = if G > 0 { G } else { g };
    let mut zero_rows = 0;
    for ((xs, adv), zero) in s.chunks(R * g).zip(adv.chunks_mut(R * g)).zip(std_is_zero.chunks_mut(R * g)) {
        let groups = xs.len() / g;
        // Group sums: each group is reduced to four f64 lanes in contiguous vector registers,
        // then the lanes of all groups are combined across groups. A group holding NaN (rare)
        // is redone NaN-aware out of line; that call also keeps the compiler from vectorising
        // the first loop across groups instead (strided gathers).
        let mut part = [[0.0f64; 4]; R];
        let mut count = [T::from_count(g); R];
        for ((grp, p), c) in xs.chunks_exact(g).zip(&mut part).zip(&mut count) {
            *p = lane_parts(grp, |x| x.to_f64());
            if p.iter().any(|v| v.is_nan()) {
                (*p, *c) = nan_group_sum(grp);
            }
        }
        let mut sum = [0.0f64; R];
        for (sm, p) in sum.iter_mut().zip(&part) {
            *sm = combine_lanes(*p);
        }
        let mut mean = [T::ZERO; R];
        for ((m, &sm), &c) in mean.iter_mut().zip(&sum).zip(&count).take(groups) {
            *m = T::from_f64(sm) / c;
        }
        let mut std = [T::ZERO; R];
        match batch_std {
            Some(b) => std.fill(b),
            None if g > 1 => {
                for ((grp, p), &m) in xs.chunks_exact(g).zip(&mut part).zip(&mean) {
                    *p = lane_parts(grp, |x| {
                        let d = x - m;
                        (d * d).to_f64()
                    });
                    if p.iter().any(|v| v.is_nan()) {
                        *p = nan_group_sq_dev(grp, m);
                    }
                }
                let mut sq = [0.0f64; R];
                for (q, p) in sq.iter_mut().zip(&part) {
                    *q = combine_lanes(*p);
                }
                // TRL's nanstd: (mean of squared deviations) * f32(c)/f32(c-1), NaN below 2 values
                for ((sd, &q), &c) in std.iter_mut().zip(&sq).zip(&count).take(groups) {
                    let bessel = if c > T::ONE { T::bessel_of(c) } else { T::NAN };
                    *sd = ((T::from_f64(q) / c) * bessel).sqrt();
                }
            }
            None => {}
        }
        for (((grp, out), z), (&mean, &std)) in
            xs.chunks_exact(g).zip(adv.chunks_exact_mut(g)).zip(zero.chunks_exact_mut(g)).zip(mean.iter().zip(&std))
        {
            let denom = std + eps;
            if divide {
                for (o, &x) in out.iter_mut().zip(grp) {
                    *o = ((x - mean) / denom).nan_to_num();
                }
            } else {
                for (o, &x) in out.iter_mut().zip(grp) {
                    *o = (x - mean).nan_to_num();
                }
            }
            let flag = is_close_zero(std);
            z.fill(flag);
            zero_rows += usize::from(flag) * g;
        }
    }
    zero_rows
}

/// `(nansum, count)` of a group holding NaN, as lanes for [`combine_lanes`].
#[cold]
#[inline(never)]
fn nan_group_sum<T: Real>(grp: &[T]) -> ([f64; 4], T) {
    let sum = lane_parts(grp, |x| if x.is_nan() { 0.0 } else { x.to_f64() });
    (sum, T::from_count(grp.iter().filter(|x| !x.is_nan()).count()))
}

/// The sum of squared deviations from `mean` over the non-NaN values of a group, as lanes.
#[cold]
#[inline(never)]
fn nan_group_sq_dev<T: Real>(grp: &[T], mean: T) -> [f64; 4] {
    lane_parts(grp, |x| {
        let d = x - mean;
        let v = (d * d).to_f64();
        if v.is_nan() {
            0.0
        } else {
            v
        }
    })
}

/// `f64` partial sums of `f(x)` over a group in four lanes: two 4-lane accumulators over
/// blocks of 8, a block of 4 into the first, added lane-wise; a tail of fewer than 4 values
/// goes into lane 0 in order. [`combine_lanes`] finishes the sum. Starts from `+0`, as torch's
/// sum does (so the result is never `-0`).
#[inline(always)]
fn lane_parts<T: Real>(xs: &[T], f: impl Fn(T) -> f64 + Copy) -> [f64; 4] {
    #[inline(always)]
    fn map4<T: Copy>(c: &[T], f: impl Fn(T) -> f64) -> [f64; 4] {
        [f(c[0]), f(c[1]), f(c[2]), f(c[3])]
    }
    let (mut a, mut b) = ([0.0f64; 4], [0.0f64; 4]);
    let mut c8 = xs.chunks_exact(8);
    for c in &mut c8 {
        a = add4(a, map4(&c[..4], f));
        b = add4(b, map4(&c[4..], f));
    }
    let mut c4 = c8.remainder().chunks_exact(4);
    for c in &mut c4 {
        a = add4(a, map4(c, f));
    }
    let mut v = add4(a, b);
    for &x in c4.remainder() {
        v[0] += f(x);
    }
    v
}

#[inline(always)]
fn add4(a: [f64; 4], b: [f64; 4]) -> [f64; 4] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]]
}

/// The sum of the four lanes of [`lane_parts`].
#[inline(always)]
fn combine_lanes(v: [f64; 4]) -> f64 {
    (v[0] + v[2]) + (v[1] + v[3])
}

fn frac_true(flags: &[bool]) -> f64 {
    // bytes summed in blocks small enough for a u8 accumulator, so the count vectorises
    let c: usize = flags.chunks(255).map(|b| usize::from(b.iter().fold(0u8, |a, &f| a + u8::from(f)))).sum();
    f64::from(c as f32 / flags.len() as f32)
}

/// GRPO advantages exactly as `GRPOTrainer._generate_and_score_completions` (TRL 1.16.0).
pub fn grpo_advantages<T: Real>(
    rewards: &[T],
    k: usize,
    weights: &[T],
    params: &GrpoParams,
) -> Result<AdvantageOutput<T>> {
    let n = rewards.len().checked_div(k).unwrap_or(0);
    let mut out = AdvantageOutput {
        advantages: vec![T::ZERO; n],
        std_is_zero: vec![false; n],
        rewards: vec![T::ZERO; n],
        frac_zero_std: 0.0,
    };
    out.frac_zero_std = grpo_advantages_into(
        rewards,
        k,
        weights,
        params,
        GrpoOutputs { advantages: &mut out.advantages, std_is_zero: &mut out.std_is_zero, rewards: &mut out.rewards },
    )?;
    Ok(out)
}

/// Where [`grpo_advantages_into`] writes its `(n,)` outputs (e.g. arrays numpy allocated).
pub struct GrpoOutputs<'a, T> {
    pub advantages: &'a mut [T],
    pub std_is_zero: &'a mut [bool],
    /// The weighted NaN-sum of the raw rewards, NaN for unscorable rows.
    pub rewards: &'a mut [T],
}

/// [`grpo_advantages`] writing into caller-provided buffers; returns `frac_reward_zero_std`.
pub fn grpo_advantages_into<T: Real>(
    rewards: &[T],
    k: usize,
    weights: &[T],
    params: &GrpoParams,
    out: GrpoOutputs<'_, T>,
) -> Result<f64> {
    let g = params.num_generations;
    let n = check_layout(rewards, k, weights, g)?;
    ensure!(params.eps.is_finite() && params.eps >= 0.0, "eps", "must be finite and >= 0, got {}", params.eps);
    for (len, name) in [
        (out.advantages.len(), "advantages"),
        (out.std_is_zero.len(), "std_is_zero"),
        (out.rewards.len(), "rewards_out"),
    ] {
        ensure!(len == n, name, "output has {len} entries, expected {n}");
    }
    let eps = T::from_f64(params.eps);
    let GrpoOutputs { advantages: adv, std_is_zero, rewards: s } = out;
    weighted_row_sums_into(rewards, k, weights, T::NAN, s);

    match params.aggregation {
        Aggregation::SumThenNormalize => {
            let batch_std = match params.scale_rewards {
                ScaleRewards::Batch => Some(if n > 1 { nanmean_std(s).1 } else { T::ZERO }),
                _ => None,
            };
            let divide = params.scale_rewards != ScaleRewards::None;
            let zero_rows = normalize_groups(s, g, batch_std, divide, eps, adv, std_is_zero);
            Ok(f64::from(zero_rows as f32 / n as f32))
        }
        Aggregation::NormalizeThenSum => {
            // z-score every reward column inside its group, then weighted NaN-sum per row.
            let mut z = vec![T::ZERO; n * k];
            let mut col = vec![T::ZERO; g];
            for (grp, zgrp) in rewards.chunks_exact(g * k).zip(z.chunks_exact_mut(g * k)) {
                for j in 0..k {
                    for (c, row) in col.iter_mut().zip(grp.chunks_exact(k)) {
                        *c = row[j];
                    }
                    let (mean, std) = if g > 1 { nanmean_std(&col) } else { (nanmean_std(&col).0, T::ZERO) };
                    let denom = std + eps;
                    for (i, &c) in col.iter().enumerate() {
                        zgrp[i * k + j] = (c - mean) / denom;
                    }
                }
            }
            // Rows whose z-scores are all NaN sum to 0 (`nansum`); only rows whose *raw*
            // rewards are all NaN are unscorable.
            let mut zs = weighted_row_sums(&z, k, weights, T::ZERO);
            for (v, row) in zs.iter_mut().zip(rewards.chunks_exact(k)) {
                if row.iter().all(|r| r.is_nan()) {
                    *v = T::NAN;
                }
            }
            let (mean, std) = nanmean_std(&zs);
            let std = if n > 1 { std } else { T::ZERO };
            let denom = std + eps;
            for (a, &x) in adv.iter_mut().zip(&zs) {
                *a = ((x - mean) / denom).nan_to_num();
            }
            std_is_zero.fill(is_close_zero(std));
            Ok(frac_true(std_is_zero))
        }
    }
}

/// Options of [`rloo_advantages`].
#[derive(Debug, Clone, Copy)]
pub struct RlooParams {
    pub num_generations: usize,
    /// `RLOOConfig.reward_clip_range`: clamp the summed reward (NaN stays NaN).
    pub reward_clip_range: Option<(f64, f64)>,
    /// `RLOOConfig.beta`: the KL coefficient folded into the reward (`r - beta * kl`).
    pub beta: f64,
    /// `RLOOConfig.normalize_advantages`: z-score the advantages over the batch.
    pub normalize_advantages: bool,
    pub eps: f64,
}

/// RLOO advantages exactly as `RLOOTrainer._generate_and_score_completions` (TRL 1.16.0).
///
/// `kl` is the per-sequence KL (`sum_t (old - ref) * mask`, gathered), required when
/// `beta != 0` and ignored otherwise.
pub fn rloo_advantages<T: Real>(
    rewards: &[T],
    k: usize,
    weights: &[T],
    kl: Option<&[T]>,
    params: &RlooParams,
) -> Result<AdvantageOutput<T>> {
    let g = params.num_generations;
    let n = check_layout(rewards, k, weights, g)?;
    ensure!(params.eps.is_finite() && params.eps >= 0.0, "eps", "must be finite and >= 0, got {}", params.eps);
    ensure!(params.beta.is_finite(), "beta", "must be finite, got {}", params.beta);
    if let Some((lo, hi)) = params.reward_clip_range {
        ensure!(
            lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Greater),
            "reward_clip_range",
            "lower bound {lo} is above upper bound {hi}"
        );
    }
    let eps = T::from_f64(params.eps);

    let mut s = weighted_row_sums(rewards, k, weights, T::NAN);
    let logged = s.clone();
    if let Some((lo, hi)) = params.reward_clip_range {
        let (lo, hi) = (T::from_f64(lo), T::from_f64(hi));
        for v in s.iter_mut() {
            // torch.clamp: NaN stays NaN
            if *v < lo {
                *v = lo;
            } else if *v > hi {
                *v = hi;
            }
        }
    }
    if params.beta != 0.0 {
        let kl = match kl {
            Some(kl) => kl,
            None => return Err(crate::Error::new("kl", "is required when beta != 0")),
        };
        ensure!(kl.len() == n, "kl", "has {} entries, expected one per completion ({n})", kl.len());
        let beta = T::from_f64(params.beta);
        for (v, &d) in s.iter_mut().zip(kl) {
            *v = *v - beta * d;
        }
    }

    let mut adv = vec![T::ZERO; n];
    let mut std_is_zero = vec![false; n];
    for ((xs, out), zero) in s.chunks_exact(g).zip(adv.chunks_exact_mut(g)).zip(std_is_zero.chunks_exact_mut(g)) {
        let (sum, count) = nansum_count(xs);
        let std = if g > 1 { std_from::<T>(nansum_sq_dev(xs, mean_from(sum, count)), count) } else { T::ZERO };
        zero.fill(is_close_zero(std));
        if g > 1 {
            let total = T::from_f64(sum);
            // (n_s - 1) is an int64 tensor in TRL; it becomes T in the division.
            let others = T::from_f64(count as f64 - 1.0);
            for (o, &x) in out.iter_mut().zip(xs) {
                *o = x - (total - x) / others;
            }
        } else {
            out.fill(T::ZERO);
        }
    }
    if params.normalize_advantages {
        let (mean, std) = nanmean_std(&adv);
        let denom = std + eps;
        for a in adv.iter_mut() {
            *a = (*a - mean) / denom;
        }
    }
    for a in adv.iter_mut() {
        *a = a.nan_to_num();
    }

    Ok(AdvantageOutput { frac_zero_std: frac_true(&std_is_zero), advantages: adv, std_is_zero, rewards: logged })
}

/// Which groups carry no learning signal: every scorable reward of the group lies within
/// `atol + rtol * max|r|` of the others (`max - min`), or fewer than two rewards are scorable.
///
/// The rewards are first combined like GRPO does (weighted NaN-sum, all-NaN rows unscorable).
/// Unlike `std == 0`, the test is robust to the last-bit noise of float reductions.
pub fn zero_variance_groups<T: Real>(
    rewards: &[T],
    k: usize,
    weights: &[T],
    num_generations: usize,
    atol: f64,
    rtol: f64,
) -> Result<Vec<bool>> {
    check_layout(rewards, k, weights, num_generations)?;
    ensure!(atol.is_finite() && atol >= 0.0, "atol", "must be finite and >= 0, got {atol}");
    ensure!(rtol.is_finite() && rtol >= 0.0, "rtol", "must be finite and >= 0, got {rtol}");
    let s = weighted_row_sums(rewards, k, weights, T::NAN);
    Ok(s.chunks_exact(num_generations)
        .map(|xs| {
            let mut lo = f64::INFINITY;
            let mut hi = f64::NEG_INFINITY;
            let mut count = 0usize;
            for &x in xs {
                if !x.is_nan() {
                    let v = x.to_f64();
                    lo = lo.min(v);
                    hi = hi.max(v);
                    count += 1;
                }
            }
            if count < 2 {
                return true;
            }
            if lo == hi {
                return true; // also covers a group of equal infinities
            }
            let scale = lo.abs().max(hi.abs());
            hi - lo <= atol + rtol * scale
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(g: usize, scale: ScaleRewards) -> GrpoParams {
        GrpoParams { num_generations: g, scale_rewards: scale, aggregation: Aggregation::SumThenNormalize, eps: 1e-4 }
    }

    /// The blocked, constant-K row sums equal the plain per-row NaN-sum, bit for bit, for every
    /// row count around the block size and inputs mixing NaN, infinities and signed zeros.
    #[test]
    fn blocked_row_sums_equal_per_row_sums() {
        let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0, 1.5, -2.25, 1e30];
        let mut state = 0x9e37_79b9_u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        for k in 1..=4 {
            for n in [0, 1, 5, 15, 16, 17, 31, 32, 33, 47, 100] {
                let r: Vec<f32> = (0..n * k)
                    .map(|_| {
                        let u = next();
                        if u % 4 == 0 {
                            specials[(u / 4) as usize % specials.len()]
                        } else {
                            (u % 1000) as f32 / 7.0
                        }
                    })
                    .collect();
                let w: Vec<f32> = (0..k).map(|j| [1.0, 0.5, 0.0, -3.0][j]).collect();
                let mut blocked = vec![0.0f32; n];
                row_sums_into(&r, k, &w, f32::NAN, &mut blocked);
                let mut plain = vec![0.0f32; n];
                row_sums_dyn(&r, k, &w, f32::NAN, &mut plain);
                let bits =
                    |v: &[f32]| v.iter().map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() }).collect::<Vec<_>>();
                assert_eq!(bits(&blocked), bits(&plain), "k={k} n={n}");
            }
        }
    }

    #[test]
    fn group_scaling_matches_hand_computation() {
        let r = [1.0f64, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0];
        let out = grpo_advantages(&r, 1, &[1.0], &params(4, ScaleRewards::Group)).unwrap();
        let mean = 0.25;
        let std = (0.1875f64 * f64::from(4.0f32 / 3.0f32)).sqrt();
        assert_eq!(out.advantages[0], (1.0 - mean) / (std + 1e-4));
        assert_eq!(out.advantages[1], (0.0 - mean) / (std + 1e-4));
        assert_eq!(&out.advantages[4..], &[0.0; 4]);
        assert_eq!(out.std_is_zero, vec![false, false, false, false, true, true, true, true]);
        assert_eq!(out.frac_zero_std, 0.5);
    }

    #[test]
    fn unscorable_rows_are_excluded_and_zeroed() {
        let nan = f32::NAN;
        // 2 functions; row 1 is all-NaN, row 2 partially NaN (its other reward counts alone).
        let r = [1.0f32, 1.0, nan, nan, 3.0, nan, 0.0, 0.0];
        let out = grpo_advantages(&r, 2, &[1.0, 1.0], &params(4, ScaleRewards::Group)).unwrap();
        assert_eq!(out.advantages[1], 0.0);
        assert!(out.rewards[1].is_nan());
        assert_eq!(out.rewards[2], 3.0);
        // mean over 3 scorable rows: (2 + 3 + 0) / 3
        let mean = 5.0f32 / 3.0;
        assert_eq!(column_stats(&out.rewards, 1).unwrap()[0].0, f64::from(mean));
    }

    #[test]
    fn none_and_batch_modes() {
        let r = [1.0f64, 3.0, 10.0, 30.0];
        let none = grpo_advantages(&r, 1, &[1.0], &params(2, ScaleRewards::None)).unwrap();
        assert_eq!(none.advantages, vec![-1.0, 1.0, -10.0, 10.0]);
        let batch = grpo_advantages(&r, 1, &[1.0], &params(2, ScaleRewards::Batch)).unwrap();
        let (_, bstd) = nanmean_std(&r);
        assert_eq!(batch.advantages[0], -1.0 / (bstd + 1e-4));
    }

    #[test]
    fn single_generation_gives_zero() {
        let out = grpo_advantages(&[1.0f32, 2.0], 1, &[1.0], &params(1, ScaleRewards::Group)).unwrap();
        assert_eq!(out.advantages, vec![0.0, 0.0]);
        assert!(out.std_is_zero.iter().all(|&b| b));
    }

    #[test]
    fn bad_layouts_are_errors() {
        let e = grpo_advantages(&[1.0f32; 6], 1, &[1.0], &params(4, ScaleRewards::Group)).unwrap_err();
        assert_eq!(e.argument, "num_generations");
        let e = grpo_advantages::<f32>(&[], 1, &[1.0], &params(1, ScaleRewards::Group)).unwrap_err();
        assert_eq!(e.argument, "rewards");
        let e = grpo_advantages(&[1.0f32; 4], 2, &[1.0], &params(1, ScaleRewards::Group)).unwrap_err();
        assert_eq!(e.argument, "reward_weights");
        let e = grpo_advantages(&[1.0f32; 4], 1, &[1.0], &params(0, ScaleRewards::Group)).unwrap_err();
        assert_eq!(e.argument, "num_generations");
    }

    #[test]
    fn rloo_leave_one_out() {
        let r = [1.0f64, 2.0, 3.0, f64::NAN];
        let p = RlooParams {
            num_generations: 4,
            reward_clip_range: None,
            beta: 0.0,
            normalize_advantages: false,
            eps: 1e-4,
        };
        let out = rloo_advantages(&r, 1, &[1.0], None, &p).unwrap();
        assert_eq!(out.advantages, vec![1.0 - 2.5, 2.0 - 2.0, 3.0 - 1.5, 0.0]);
    }

    #[test]
    fn parallel_blocks_equal_serial() {
        // 2^20 rows x 2 columns with NaNs: above the parallel threshold
        let n = 1 << 20;
        let mut x = 99u64;
        let r: Vec<f32> = (0..2 * n)
            .map(|i| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                if i % 97 == 0 {
                    f32::NAN
                } else {
                    ((x >> 40) as f32) / 16777216.0
                }
            })
            .collect();
        let w = [1.0f32, 0.5];
        for scale in [ScaleRewards::Group, ScaleRewards::Batch, ScaleRewards::None] {
            let out = grpo_advantages(&r, 2, &w, &params(16, scale)).unwrap();
            let mut s = vec![0.0f32; n];
            row_sums_into(&r, 2, &w, f32::NAN, &mut s);
            assert_eq!(
                out.rewards.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                s.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
            let batch = if scale == ScaleRewards::Batch { Some(nanmean_std(&s).1) } else { None };
            let (mut adv, mut zero) = (vec![0.0f32; n], vec![false; n]);
            normalize_groups_into(&s, 16, batch, scale != ScaleRewards::None, 1e-4, &mut adv, &mut zero);
            // and the parallel split of the same function
            let (mut adv_p, mut zero_p) = (vec![0.0f32; n], vec![false; n]);
            normalize_groups(&s, 16, batch, scale != ScaleRewards::None, 1e-4, &mut adv_p, &mut zero_p);
            assert!(adv.iter().zip(&adv_p).all(|(a, b)| a.to_bits() == b.to_bits()) && zero == zero_p);
            assert!(out.advantages.iter().zip(&adv).all(|(a, b)| a.to_bits() == b.to_bits()));
            assert_eq!(out.std_is_zero, zero);
        }
    }

    #[test]
    fn zero_variance() {
        let r = [0.1f32, 0.1, 0.1, 0.1, 0.0, 1.0, 0.0, 0.0, 5.0, f32::NAN, f32::NAN, f32::NAN];
        let z = zero_variance_groups(&r, 1, &[1.0], 4, 1e-6, 0.0).unwrap();
        assert_eq!(z, vec![true, false, true]);
    }
}
