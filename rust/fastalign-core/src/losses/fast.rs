//! The common case of [`super::grpo_loss`] in vectorised passes: a PPO-family loss with one
//! advantage per sequence and nothing else per token. Same arithmetic as [`super::general`].

use super::*;

/// Whether a sequence can take [`row_fast`]: a PPO-family loss with one advantage per sequence
/// and nothing else per token (no IS ratio, off-policy or entropy mask, KL).
#[inline(always)]
pub(super) fn fast_path_applies<T, M>(
    inp: &GrpoInputs<'_, T, M>,
    p: &GrpoParams,
    adv_tok: bool,
    single_col: bool,
) -> bool {
    p.loss_type.is_ppo()
        && !adv_tok
        && !single_col
        && inp.importance_sampling_ratio.is_none()
        && p.off_policy_mask_threshold.is_none()
        && inp.entropy_mask.is_none()
        && (p.beta == 0.0 || inp.ref_logps.is_none())
}

/// `-min(c1·A, clip(coef)·A)` and its derivative with respect to `coef` (torch's `minimum`
/// splits ties), plus the clip flags, for one importance weight.
#[inline(always)]
fn ppo_token<T: Real>(coef: T, a: T, c: &Consts<T>) -> (T, T, bool, bool) {
    let c2 = coef.clamp_to(c.lo, c.hi);
    let dc2 = if coef >= c.lo && coef <= c.hi { T::ONE } else { T::ZERO };
    let (c1, dc1) = match c.delta {
        Some(d) => (coef.min_to(d), if coef <= d { T::ONE } else { T::ZERO }),
        None => (coef, T::ONE),
    };
    let (x1, x2) = (c1 * a, c2 * a);
    let pl = T::ZERO - if x2 < x1 || x1.is_nan() { x2 } else { x1 };
    let half = T::from_f64(0.5);
    let d = if x1 < x2 {
        dc1
    } else if x2 < x1 {
        dc2
    } else {
        (dc1 + dc2) * half
    };
    (pl, T::ZERO - a * d, c1 < c.lo && a < T::ZERO, c1 > c.hi && a > T::ZERO)
}

/// One sequence as the fast path reads it: its log-probs, old log-probs (or the log-probs
/// again), mask and advantage.
#[derive(Clone, Copy)]
pub(super) struct FastRow<'r, T, M> {
    pub lp: &'r [T],
    pub old: &'r [T],
    pub m: &'r [M],
    pub a: T,
}

/// The common case in one (token level) or two (sequence levels) vectorised passes over a
/// sequence: see [`fast_path_applies`]. Same arithmetic as the general path.
#[inline(always)]
pub(super) fn row_fast<T: Real, M: MaskValue>(
    seq: FastRow<'_, T, M>,
    level: Level,
    c: &Consts<T>,
    cfg: RowCfg,
    g: &mut [T],
    acc: &mut Partial,
) {
    match level {
        Level::Token => row_fast_token(seq, c, cfg, g, acc),
        _ => row_fast_seq(seq, level, c, cfg, g, acc),
    }
}

/// The per-sequence constants of one token's step in [`row_fast_token`].
#[derive(Clone, Copy)]
struct Lane<T> {
    /// the sequence's advantage
    a: T,
    /// its aggregation weight
    wt: T,
    lo: T,
    hi: T,
    /// `delta`, +inf without one
    dl: T,
    half: T,
}

#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
fn row_fast_token<T: Real, M: MaskValue>(
    seq: FastRow<'_, T, M>,
    c: &Consts<T>,
    cfg: RowCfg,
    g: &mut [T],
    acc: &mut Partial,
) {
    let FastRow { lp, old, m, a } = seq;
    let want_grad = cfg.want_grad;
    let n = lp.len();
    // counts first when the weight depends on them (grpo's per-sequence mean)
    let cnt: f64 = if cfg.per_row_count { mask_count(m) } else { f64::NAN };
    let w_row = if cfg.per_row_count { cfg.w_const / cnt.max(1.0) } else { cfg.w_const };
    let wt = T::from_f64(w_row);
    // One sum of clipped weights: with one advantage per sequence a token can only be clipped
    // low (A < 0) or only high (A > 0), so the sequence's flags go to one side at the end.
    let (mut ls, mut cs, mut cl_s) = ([0.0f64; LANES], [M::COUNT_ZERO; LANES], [0.0f64; LANES]);
    // `delta = None` is a cap at +inf: the same values and derivatives, without a branch
    let dl = c.delta.unwrap_or(T::from_f64(f64::INFINITY));
    let (lo, hi, half) = (c.lo, c.hi, T::from_f64(0.5));
    let lanes = Lane { a, wt, lo, hi, dl, half };
    let full = n - n % LANES;
    let mut coef = [T::ZERO; LANES];
    let mut gl = [T::ZERO; LANES];
    // one token's clipped objective: (pl, d pl / d coef, c1) with TRL's min(coef·A, clip(coef)·A)
    // (selects only, so blocks vectorise)
    #[inline(always)]
    fn clip_terms<T: Real>(cf: T, k: Lane<T>) -> (T, T, T) {
        let Lane { a, lo, hi, dl, half, .. } = k;
        let c2 = cf.clamp_to(lo, hi);
        let dc2 = if cf >= lo && cf <= hi { T::ONE } else { T::ZERO };
        let c1 = cf.min_to(dl);
        let dc1 = if cf <= dl { T::ONE } else { T::ZERO };
        let (x1, x2) = (c1 * a, c2 * a);
        let pl = T::ZERO - if x2 < x1 { x2 } else { x1 };
        let d = if x1 < x2 {
            dc1
        } else if x2 < x1 {
            dc2
        } else {
            (dc1 + dc2) * half
        };
        (pl, T::ZERO - a * d, c1)
    }
    // one token of pass b, everything in the value type (w·pl, w·low, w·high, gradient)
    #[inline(always)]
    fn lane_t<T: Real>(cf: T, w: T, k: Lane<T>) -> (T, T, T, T) {
        let Lane { a, wt, lo, hi, .. } = k;
        let (pl, gc, c1) = clip_terms(cf, k);
        let low = if c1 < lo && a < T::ZERO { w } else { T::ZERO };
        let high = if c1 > hi && a > T::ZERO { w } else { T::ZERO };
        (pl * w, low, high, wt * w * (gc * cf))
    }
    // one token of pass b: loss, gradient and flags, the sums in f64
    #[inline(always)]
    fn lane<T: Real>(cf: T, w: T, k: Lane<T>) -> (f64, f64, f64, T) {
        let Lane { a, wt, lo, hi, .. } = k;
        let (pl, gc, c1) = clip_terms(cf, k);
        let wf = w.to_f64();
        let low = if c1 < lo && a < T::ZERO { wf } else { 0.0 };
        let high = if c1 > hi && a > T::ZERO { wf } else { 0.0 };
        ((pl * w).to_f64(), low, high, wt * w * (gc * cf))
    }
    let (mut wv, mut plv, mut clv) = ([T::ZERO; LANES], [T::ZERO; LANES], [T::ZERO; LANES]);
    let mut t = 0;
    while t < full {
        // pass a: the importance weights and mask weights of a block of tokens (fixed-size
        // views: no bounds checks inside the loops, so they vectorise)
        let (lpb, oldb, mb) = (block::<T>(lp, t), block::<T>(old, t), block::<M>(m, t));
        for k in 0..LANES {
            coef[k] = (lpb[k] - oldb[k]).kexp();
        }
        for k in 0..LANES {
            wv[k] = mb[k].weight();
        }
        // pass b: per-token values in the value type (simple loops over arrays vectorise)
        for k in 0..LANES {
            let (l, lw, hw, gv) = lane_t(coef[k], wv[k], lanes);
            plv[k] = l;
            clv[k] = lw + hw;
            gl[k] = gv;
        }
        // pass c: f64 accumulation
        for k in 0..LANES {
            ls[k] += plv[k].to_f64();
            cs[k] = mb[k].count_into(cs[k]);
            cl_s[k] += clv[k].to_f64();
        }
        if want_grad {
            g[t..t + LANES].copy_from_slice(&gl);
        }
        t += LANES;
    }
    for (k, t) in (full..n).enumerate() {
        let cf = (lp[t] - old[t]).kexp();
        let (l, lw, hw, gv) = lane(cf, m[t].weight(), lanes);
        ls[k] += l;
        cs[k] = m[t].count_into(cs[k]);
        cl_s[k] += lw + hw;
        if want_grad {
            g[t] = gv;
        }
    }
    let sum = |x: &[f64; LANES]| x.iter().sum::<f64>();
    let count = count_total::<M>(&cs);
    let (loss, clipped) = (sum(&ls), sum(&cl_s));
    let (low, high) = if a < T::ZERO { (clipped, 0.0) } else { (0.0, clipped) };
    acc.loss += loss * w_row;
    acc.tok += count;
    acc.low += low;
    acc.high += high;
    acc.region += low + high; // a token cannot be clipped low and high at once (A < 0 vs A > 0)
    acc.low_min = nanmin(acc.low_min, low / count);
    acc.high_max = nanmax(acc.high_max, high / count);
}

/// `x[t..t + LANES]` as an array reference (`t + LANES <= x.len()` is the caller's loop bound).
#[inline(always)]
fn block<T>(x: &[T], t: usize) -> &[T; LANES] {
    x[t..t + LANES].try_into().expect("a full block")
}

#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
fn row_fast_seq<T: Real, M: MaskValue>(
    seq: FastRow<'_, T, M>,
    level: Level,
    c: &Consts<T>,
    cfg: RowCfg,
    g: &mut [T],
    acc: &mut Partial,
) {
    let FastRow { lp, old, m, a } = seq;
    let want_grad = cfg.want_grad;
    // pass 1: Σ m·(logp − old) and Σ m (the same sums as `sequence_log_ratio`)
    let (lr_sum, cnt) = masked_diff_sum_count(lp, Some(old), Some(m));
    let cnt1 = cnt.max(1.0);
    let coef = T::from_f64(lr_sum / cnt1).kexp();
    let (pl, gc, low, high) = ppo_token(coef, a, c);
    let w_row = if cfg.per_row_count { cfg.w_const / cnt1 } else { cfg.w_const };
    // every token has the same loss: Σ m·pl = pl·Σ m (rounded like the per-token sum)
    acc.loss += (pl.to_f64() * cnt) * w_row;
    acc.tok += cnt;
    // pass 2: the gradient, k·m_t
    if want_grad {
        let k = match level {
            // ∂coef/∂logp_t = coef·m_t/max(Σm, 1), through every token's loss
            Level::Sequence => T::from_f64(w_row * (gc.to_f64() * cnt)) * coef * T::from_f64(1.0 / cnt1),
            // GSPO-token: each token's own gradient, coef_t = coef
            _ => T::from_f64(w_row) * (gc * coef),
        };
        for (gt, &w) in g.iter_mut().zip(m) {
            *gt = k * w.weight::<T>();
        }
    }
    let (l, h) = (f64::from(u8::from(low)), f64::from(u8::from(high)));
    if cfg.clip_row_mode {
        acc.rows_low += l;
        acc.rows_high += h;
        acc.rows_region += f64::from(u8::from(low || high));
        acc.low_min = nanmin(acc.low_min, l);
        acc.high_max = nanmax(acc.high_max, h);
    } else {
        // GSPO-token: per-token flags (all equal within the sequence)
        acc.low += l * cnt;
        acc.high += h * cnt;
        acc.region += f64::from(u8::from(low || high)) * cnt;
        acc.low_min = nanmin(acc.low_min, l * cnt / cnt);
        acc.high_max = nanmax(acc.high_max, h * cnt / cnt);
    }
}
