//! The GRPO loss family of TRL 1.16.0 (`GRPOTrainer._compute_loss`), fused: one kernel returns
//! the loss, its gradient with respect to `per_token_logps` and the metrics TRL logs, reading
//! each input once per sequence and writing only the gradient (no `(B, T)` temporaries).
//!
//! Per token (TRL's order, spec §5.2): `log_ratio = logp − old`; the importance weight
//! `coef = exp(log_w)` with `log_w = log_ratio` ("token"), the masked mean of the sequence's
//! log-ratios ("sequence", GSPO) or that mean with the token's own gradient ("sequence_token",
//! GSPO-token); the per-token loss of the `loss_type`; times the off-policy mask, the entropy
//! mask and the vLLM IS ratio; plus `beta·k3` (optionally `× coef`); aggregated with the loss
//! type's normaliser. Element-wise steps are done in the input's float type with TRL's constants
//! (Python floats rounded to that type; `torch.where` scalars rounded to `f32` first), sums
//! accumulate in `f64`.
//!
//! Gradient: `∂loss/∂logp_t = W·m_t·(gd_t + gc_t·∂coef/∂logp_t)` where `gd` is the direct part
//! (cispo, vespo, KL) and `gc` the part through `coef`. For "sequence" the weight's derivative
//! couples a sequence's tokens (`∂coef/∂logp_s = coef·m_s/max(Σm, 1)`), which a second pass over
//! the (cache-resident) sequence adds. Ties of `min(coef·A, clip(coef)·A)` split the gradient in
//! half, as torch's `minimum` does.

use crate::error::{ensure, Result};
use crate::ratios::{count_total, for_row_blocks, mask_count, masked_diff_sum_count, Float, Layout, MaskValue};
use crate::real::Real;

/// TRL 1.16 `loss_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossType {
    Grpo,
    Bnpo,
    DrGrpo,
    Dapo,
    Cispo,
    Sapo,
    Luspo,
    Vespo,
}

impl LossType {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "grpo" => LossType::Grpo,
            "bnpo" => LossType::Bnpo,
            "dr_grpo" => LossType::DrGrpo,
            "dapo" => LossType::Dapo,
            "cispo" => LossType::Cispo,
            "sapo" => LossType::Sapo,
            "luspo" => LossType::Luspo,
            "vespo" => LossType::Vespo,
            _ => {
                return Err(crate::Error::new(
                    "loss_type",
                    format!(
                    "expected one of 'grpo', 'bnpo', 'dr_grpo', 'dapo', 'cispo', 'sapo', 'luspo', 'vespo', got {s:?}"
                ),
                ))
            }
        })
    }
    fn is_ppo(self) -> bool {
        matches!(self, LossType::Grpo | LossType::Bnpo | LossType::DrGrpo | LossType::Dapo | LossType::Luspo)
    }
}

/// `importance_sampling_level`: TRL's "token" and "sequence" (GSPO), and GSPO-token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Token,
    Sequence,
    SequenceToken,
}

impl Level {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "token" => Level::Token,
            "sequence" => Level::Sequence,
            "sequence_token" => Level::SequenceToken,
            _ => {
                return Err(crate::Error::new(
                    "importance_sampling_level",
                    format!("expected 'token', 'sequence' or 'sequence_token', got {s:?}"),
                ))
            }
        })
    }
}

/// Scalar parameters of [`grpo_loss`] (TRL's `GRPOConfig` names).
#[derive(Debug, Clone, Copy)]
pub struct GrpoParams {
    pub loss_type: LossType,
    pub level: Level,
    pub epsilon_low: f64,
    pub epsilon_high: f64,
    pub delta: Option<f64>,
    pub beta: f64,
    pub use_bias_correction_kl: bool,
    pub off_policy_mask_threshold: Option<f64>,
    pub sapo_temperature_pos: f64,
    pub sapo_temperature_neg: f64,
    pub vespo_k_pos: f64,
    pub vespo_lambda_pos: f64,
    pub vespo_k_neg: f64,
    pub vespo_lambda_neg: f64,
    /// `current_gradient_accumulation_steps` in train, 1 in eval.
    pub grad_accum: f64,
    /// `max_completion_length` (dr_grpo).
    pub max_completion_length: Option<f64>,
    /// dapo/cispo/vespo denominator (`num_items_in_batch.clamp(1)/P·GA/spg`, computed by the
    /// caller in `f32` as torch does); `None`: the batch's mask sum, clamped to 1.
    pub token_denominator: Option<f64>,
}

/// Array inputs of [`grpo_loss`]. Per-token arrays follow the layout; `advantages` and
/// `importance_sampling_ratio` have one value per sequence or per token.
pub struct GrpoInputs<'a, T, M> {
    pub logps: &'a [T],
    pub old_logps: Option<&'a [T]>,
    pub advantages: &'a [T],
    pub mask: &'a [M],
    pub ref_logps: Option<&'a [T]>,
    pub importance_sampling_ratio: Option<&'a [T]>,
    pub sampling_logps: Option<&'a [T]>,
    pub entropy_mask: Option<&'a [bool]>,
}

/// What TRL logs from `_compute_loss` (means as `global_masked_mean` on one process; `0.0`
/// where the metric does not apply, e.g. `kl` with `beta == 0`). `clip_low_min`/`clip_high_max`
/// are NaN when no sequence has a token (TRL's `nanmin` of all-NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrpoMetrics {
    pub clip_low_mean: f64,
    pub clip_high_mean: f64,
    pub clip_region_mean: f64,
    pub clip_low_min: f64,
    pub clip_high_max: f64,
    pub cispo_clip_ratio: f64,
    pub kl: f64,
    pub phi_seq_mean: f64,
}

/// `2^n · p` exponential accurate to about 1e-10 relative, computed in `f64`: loops over it
/// vectorise (libm's `expf` does not) and its `f32` rounding is within an ulp of torch's.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let xd = f64::from(x);
    let xc = xd.clamp(-110.0, 100.0); // NaN stays NaN (fixed at the end)
                                      // round to nearest by the 1.5·2^52 trick (branch-free, vectorises; |x·log2 e| < 2^51):
                                      // `big`'s low mantissa bits hold n, so 2^n is built with integer adds and a shift
    const MAGIC: f64 = 6755399441055744.0;
    let big = xc * std::f64::consts::LOG2_E + MAGIC;
    let n = big - MAGIC;
    let r = xc - n * std::f64::consts::LN_2;
    // e^r, |r| <= 0.35: a degree-7 polynomial (least squares on Chebyshev nodes, relative
    // error < 5e-11, under 1/1000 of an f32 ulp), evaluated by Estrin's scheme: dependency
    // chains of 6 operations instead of Horner's 14 (the dapo kernel: 520 -> 464 us at 64 x 4096)
    let r2 = r * r;
    let r4 = r2 * r2;
    let q01 = 1.0000000002582838 * r + 0.9999999999619137;
    let q23 = 0.16666665023178906 * r + 0.5000000104201605;
    let q45 = 0.008333578387840563 * r + 0.041666226135738324;
    let q67 = 0.00019766904081779357 * r + 0.0013948145825644221;
    let p = (q23 * r2 + q01) + (q67 * r2 + q45) * r4;
    let scale = f64::from_bits(big.to_bits().wrapping_sub(MAGIC.to_bits()).wrapping_add(1023) << 52);
    let y = (p * scale) as f32;
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// The exponential the kernels use: [`exp_f32`] for `f32`, libm for `f64`.
pub trait KernelFloat: Float {
    fn kexp(self) -> Self;
}
impl KernelFloat for f32 {
    #[inline(always)]
    fn kexp(self) -> Self {
        exp_f32(self)
    }
}
impl KernelFloat for f64 {
    #[inline(always)]
    fn kexp(self) -> Self {
        self.exp()
    }
}

/// Round through `f32` (torch.where with Python scalars makes `float32` tensors).
fn f32r<T: Real>(x: f64) -> T {
    T::from_f64(f64::from(x as f32))
}

/// Constants in the value type, rounded as torch rounds them.
#[derive(Clone, Copy)]
struct Consts<T> {
    lo: T,
    hi: T,
    delta: Option<T>,
    cispo_cap: T,
    beta: T,
    tau_pos: T,
    tau_neg: T,
    k_pos: T,
    k_neg: T,
    lam_pos: T,
    lam_neg: T,
    log_lo: T,
    opsm_thr: Option<T>,
}

/// Per-block partial results (merged in block order).
#[derive(Clone, Copy)]
struct Partial {
    loss: f64,
    tok: f64,
    low: f64,
    high: f64,
    region: f64,
    cispo: f64,
    kl: f64,
    rows_low: f64,
    rows_high: f64,
    rows_region: f64,
    rows_cispo: f64,
    rows_kl: f64,
    phi_rows: f64,
    phi_tok: f64,
    low_min: f64,
    high_max: f64,
}

impl Partial {
    const EMPTY: Partial = Partial {
        loss: 0.0,
        tok: 0.0,
        low: 0.0,
        high: 0.0,
        region: 0.0,
        cispo: 0.0,
        kl: 0.0,
        rows_low: 0.0,
        rows_high: 0.0,
        rows_region: 0.0,
        rows_cispo: 0.0,
        rows_kl: 0.0,
        phi_rows: 0.0,
        phi_tok: 0.0,
        low_min: f64::NAN,
        high_max: f64::NAN,
    };
}

fn nanmin(a: f64, b: f64) -> f64 {
    if a.is_nan() {
        b
    } else if b.is_nan() || a <= b {
        a
    } else {
        b
    }
}

fn nanmax(a: f64, b: f64) -> f64 {
    if a.is_nan() {
        b
    } else if b.is_nan() || a >= b {
        a
    } else {
        b
    }
}

/// The GRPO-family loss (TRL 1.16 `_compute_loss`), its gradient with respect to `logps` into
/// `grad` (skipped when `grad` is empty) and the metrics TRL logs.
///
/// Errors name the argument: lengths that do not match the layout, NaN in `logps`, `old_logps`
/// or `ref_logps`, `beta != 0` without `ref_logps`, dr_grpo without `max_completion_length`,
/// vespo with a per-sequence IS ratio.
pub fn grpo_loss<T: KernelFloat, M: MaskValue>(
    inp: &GrpoInputs<'_, T, M>,
    layout: &Layout<'_>,
    p: &GrpoParams,
    grad: &mut [T],
) -> Result<(f64, GrpoMetrics)> {
    let n = layout.tokens();
    let b = layout.rows();
    let check = |len: usize, name: &'static str| -> Result<()> {
        ensure!(len == n, name, "has {len} values, expected {n} (one per token)");
        Ok(())
    };
    check(inp.logps.len(), "per_token_logps")?;
    check(inp.mask.len(), "mask")?;
    if let Some(x) = inp.old_logps {
        check(x.len(), "old_per_token_logps")?;
    }
    if let Some(x) = inp.ref_logps {
        check(x.len(), "ref_per_token_logps")?;
    }
    if let Some(x) = inp.sampling_logps {
        check(x.len(), "sampling_per_token_logps")?;
    }
    if let Some(x) = inp.entropy_mask {
        check(x.len(), "entropy_mask")?;
    }
    ensure!(grad.is_empty() || grad.len() == n, "grad", "has {} values, expected {n}", grad.len());
    ensure!(
        inp.advantages.len() == b || inp.advantages.len() == n,
        "advantages",
        "has {} values, expected {b} (one per sequence) or {n} (one per token)",
        inp.advantages.len()
    );
    // one value per token unless there is one per sequence (T == 1 makes them the same)
    let adv_tok = inp.advantages.len() != b;
    let is_tok = match inp.importance_sampling_ratio {
        None => false,
        Some(x) => {
            ensure!(
                x.len() == b || x.len() == n,
                "importance_sampling_ratio",
                "has {} values, expected {b} (one per sequence) or {n} (one per token)",
                x.len()
            );
            x.len() != b
        }
    };
    let beta_on = p.beta != 0.0;
    ensure!(!beta_on || inp.ref_logps.is_some(), "ref_per_token_logps", "is required when beta != 0");
    ensure!(
        !(p.loss_type == LossType::Vespo && inp.importance_sampling_ratio.is_some() && !is_tok && n != b),
        "importance_sampling_ratio",
        "vespo needs a per-token ratio (a token_* vLLM IS mode), got one per sequence"
    );
    let dr_len = match (p.loss_type, p.max_completion_length) {
        (LossType::DrGrpo, None) => {
            return Err(crate::Error::new("max_completion_length", "is required for loss_type='dr_grpo'"))
        }
        (_, l) => l.unwrap_or(1.0),
    };
    if p.grad_accum.is_nan() || p.grad_accum <= 0.0 {
        return Err(crate::Error::new("gradient_accumulation_steps", format!("must be > 0, got {}", p.grad_accum)));
    }

    let c = Consts::<T> {
        lo: T::from_f64(1.0 - p.epsilon_low),
        hi: T::from_f64(1.0 + p.epsilon_high),
        delta: p.delta.map(T::from_f64),
        cispo_cap: T::from_f64(p.epsilon_high),
        beta: T::from_f64(p.beta),
        tau_pos: f32r(p.sapo_temperature_pos),
        tau_neg: f32r(p.sapo_temperature_neg),
        k_pos: f32r(p.vespo_k_pos),
        k_neg: f32r(p.vespo_k_neg),
        lam_pos: {
            let l: T = f32r(p.vespo_lambda_pos);
            let m: T = f32r(1e-4);
            if l < m {
                m
            } else {
                l
            }
        },
        lam_neg: {
            let l: T = f32r(p.vespo_lambda_neg);
            let m: T = f32r(1e-4);
            if l < m {
                m
            } else {
                l
            }
        },
        log_lo: T::from_f64(1e-8f64.ln()),
        opsm_thr: p.off_policy_mask_threshold.map(T::from_f64),
    };

    // Global mask sum, in a pass of its own only where the aggregation weight needs it before
    // the main pass (bnpo's normaliser, the default token denominator); the metrics' counts
    // use the main pass's sum of the same weights.
    let need_total = match p.loss_type {
        LossType::Bnpo => true,
        LossType::Dapo | LossType::Cispo | LossType::Vespo => p.token_denominator.is_none(),
        _ => false,
    };
    let total_m: f64 = if !need_total {
        f64::NAN
    } else {
        let parts = for_row_blocks(layout, &mut [] as &mut [u8], &mut [] as &mut [u8], n, |first, rows, _, _| {
            let s = layout.range(first).start;
            let e = layout.range(first + rows - 1).end;
            mask_count(&inp.mask[s..e])
        });
        parts.iter().sum()
    };
    let bf = b as f64;
    let ga = p.grad_accum;
    // Row-independent part of the aggregation weight W.
    let w_const = match p.loss_type {
        LossType::Grpo | LossType::Sapo => 1.0 / (bf * ga),
        LossType::Bnpo => 1.0 / (f64::from(total_m.max(1.0) as f32) * ga),
        LossType::DrGrpo => 1.0 / (bf * dr_len * ga),
        LossType::Dapo | LossType::Cispo | LossType::Vespo => {
            1.0 / p.token_denominator.unwrap_or_else(|| f64::from(total_m.max(1.0) as f32))
        }
        LossType::Luspo => 1.0 / (bf * ga),
    };
    let per_row_count = matches!(p.loss_type, LossType::Grpo | LossType::Sapo);

    let single_col = layout.is_single_column();
    let clip_row_mode = single_col || (p.level == Level::Sequence && !adv_tok);
    let phi_row_mode = single_col || !adv_tok;

    let want_grad = !grad.is_empty();
    // The per-token work here (exp, clipping, the gradient) costs several times a plain
    // reduction's, so it is counted 4x against the pool's threshold: a 64 x 4096 batch
    // already pays for waking the pool. The sequence levels' fast path is a masked sum and a
    // scaled copy of the mask (one exp per sequence): plain reduction work, counted 1x.
    let light = p.level != Level::Token && fast_path_applies(inp, p, adv_tok, single_col);
    let work = if light { n } else { n.saturating_mul(4) };
    let parts = for_row_blocks(layout, &mut [] as &mut [T], grad, work, |first, rows, _, g| {
        let mut acc = Partial::EMPTY;
        let base = layout.range(first).start;
        for j in first..first + rows {
            let r = layout.range(j);
            row(
                inp,
                p,
                &c,
                r.clone(),
                j,
                adv_tok,
                is_tok,
                want_grad,
                g_slice(g, &r, base),
                &mut acc,
                RowCfg { w_const, per_row_count, clip_row_mode, phi_row_mode, single_col },
            );
        }
        acc
    });
    let mut a = Partial::EMPTY;
    for q in &parts {
        a.loss += q.loss;
        a.tok += q.tok;
        a.low += q.low;
        a.high += q.high;
        a.region += q.region;
        a.cispo += q.cispo;
        a.kl += q.kl;
        a.rows_low += q.rows_low;
        a.rows_high += q.rows_high;
        a.rows_region += q.rows_region;
        a.rows_cispo += q.rows_cispo;
        a.rows_kl += q.rows_kl;
        a.phi_rows += q.phi_rows;
        a.phi_tok += q.phi_tok;
        a.low_min = nanmin(a.low_min, q.low_min);
        a.high_max = nanmax(a.high_max, q.high_max);
    }
    // NaN log-probs make the loss NaN (vespo's φ maps NaN to 0, so it is always scanned): then
    // find the first one and say where.
    if a.loss.is_nan() || p.loss_type == LossType::Vespo {
        for (name, x) in [
            ("per_token_logps", Some(inp.logps)),
            ("old_per_token_logps", inp.old_logps),
            ("ref_per_token_logps", inp.ref_logps),
        ] {
            if let Some(t) = x.and_then(|x| x.iter().position(|v| v.is_nan())) {
                return Err(crate::Error::new(name, format!("contains NaN (at flat token index {t})")));
            }
        }
    }
    let tokden = if need_total { total_m } else { a.tok }.max(1.0);
    let bden = bf.max(1.0);
    let (low, high, region, cispo) = if clip_row_mode {
        (a.rows_low / bden, a.rows_high / bden, a.rows_region / bden, a.rows_cispo / bden)
    } else {
        (a.low / tokden, a.high / tokden, a.region / tokden, a.cispo / tokden)
    };
    let kl = if !beta_on {
        0.0
    } else if single_col {
        a.rows_kl / bden
    } else {
        a.kl / tokden
    };
    let phi = if p.loss_type != LossType::Vespo {
        0.0
    } else if phi_row_mode {
        a.phi_rows / bden
    } else {
        a.phi_tok / tokden
    };
    Ok((
        a.loss,
        GrpoMetrics {
            clip_low_mean: low,
            clip_high_mean: high,
            clip_region_mean: region,
            clip_low_min: a.low_min,
            clip_high_max: a.high_max,
            cispo_clip_ratio: cispo,
            kl,
            phi_seq_mean: phi,
        },
    ))
}

fn g_slice<'s, T>(g: &'s mut [T], r: &std::ops::Range<usize>, base: usize) -> &'s mut [T] {
    if g.is_empty() {
        g
    } else {
        &mut g[r.start - base..r.end - base]
    }
}

#[derive(Clone, Copy)]
struct RowCfg {
    w_const: f64,
    per_row_count: bool,
    clip_row_mode: bool,
    phi_row_mode: bool,
    single_col: bool,
}

/// VESPO's φ for one sequence's `log_w` and an advantage (TRL `get_gamma_weights`).
#[inline(always)]
fn vespo_phi<T: KernelFloat>(c: &Consts<T>, log_w: T, w: T, a: T) -> T {
    let nonneg = a >= T::ZERO;
    let (k, lam) = if nonneg { (c.k_pos, c.lam_pos) } else { (c.k_neg, c.lam_neg) };
    let phi = (lam + k * log_w - lam * w).kexp();
    if phi.is_nan() || phi.is_infinite() {
        T::ZERO
    } else {
        phi
    }
}

/// One sequence: loss contribution, gradient, metrics.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn row<T: KernelFloat, M: MaskValue>(
    inp: &GrpoInputs<'_, T, M>,
    p: &GrpoParams,
    c: &Consts<T>,
    r: std::ops::Range<usize>,
    j: usize,
    adv_tok: bool,
    is_tok: bool,
    want_grad: bool,
    g: &mut [T],
    acc: &mut Partial,
    cfg: RowCfg,
) {
    let lp = &inp.logps[r.clone()];
    let m = &inp.mask[r.clone()];
    let old = inp.old_logps.map(|o| &o[r.clone()]);
    let reff = inp.ref_logps.map(|o| &o[r.clone()]);
    let ent = inp.entropy_mask.map(|o| &o[r.clone()]);
    let adv_t = if adv_tok { Some(&inp.advantages[r.clone()]) } else { None };
    let a_row = if adv_tok { T::ZERO } else { inp.advantages[j] };
    let (is_row, is_t) = match inp.importance_sampling_ratio {
        Some(x) if is_tok => (T::ONE, Some(&x[r.clone()])),
        Some(x) => (x[j], None),
        None => (T::ONE, None),
    };
    let apply_is = inp.importance_sampling_ratio.is_some() && p.loss_type != LossType::Vespo;
    let seq = p.level != Level::Token;
    let vespo = p.loss_type == LossType::Vespo;
    let opsm = c.opsm_thr.is_some();
    let len = lp.len();

    if fast_path_applies(inp, p, adv_tok, cfg.single_col) {
        return row_fast(lp, old.unwrap_or(lp), m, a_row, p.level, c, cfg, want_grad, g, acc);
    }

    // Pre-pass: what the sequence's tokens need to know about the whole sequence.
    let need_pre = cfg.per_row_count || seq || opsm || vespo;
    let (mut lr_sum, mut opsm_sum, mut vespo_sum) = (0.0f64, 0.0f64, 0.0f64);
    let mut cnt_c = M::COUNT_ZERO;
    if need_pre {
        for t in 0..len {
            let w: T = m[t].weight();
            cnt_c = m[t].count_into(cnt_c);
            let lr = old.map_or(T::ZERO, |o| lp[t] - o[t]);
            if seq {
                lr_sum += (lr * w).to_f64();
            }
            if opsm {
                let s = inp.sampling_logps.map(|s| s[r.start + t]).or(old.map(|o| o[t])).unwrap_or(lp[t]);
                opsm_sum += ((s - lp[t]).nan_to_num() * w).to_f64();
            }
            if vespo {
                let lrc = lr.clamp_to(T::from_f64(-20.0), T::from_f64(20.0));
                vespo_sum += (lrc * w).to_f64();
                if let Some(is) = is_t {
                    vespo_sum += is[t].ln().clamp_to(c.log_lo, T::from_f64(20.0)).to_f64();
                }
            }
        }
    }
    if vespo && inp.importance_sampling_ratio.is_some() && !is_tok {
        // one ratio per sequence (only accepted when every sequence is one position, T == 1):
        // TRL's sum over the (B, 1) ratio's last dimension is that value
        vespo_sum += is_row.ln().clamp_to(c.log_lo, T::from_f64(20.0)).to_f64();
    }
    // the count, when the pre-pass took it (else the main loop does, and nothing before it
    // reads `cnt1`)
    let cnt1 = M::count_f64(cnt_c).max(1.0);
    let seq_lw = T::from_f64(lr_sum / cnt1);
    let coef_row = if seq { seq_lw.kexp() } else { T::ONE };
    let opsm_avg = T::from_f64(opsm_sum / cnt1);
    let (v_logw, v_w) = if vespo {
        let lw = T::from_f64(vespo_sum).clamp_to(c.log_lo, T::from_f64(20.0));
        (lw, lw.kexp())
    } else {
        (T::ZERO, T::ZERO)
    };
    let w_row = if cfg.per_row_count { cfg.w_const / cnt1 } else { cfg.w_const };
    let wt = T::from_f64(w_row);

    // Per-token evaluation: (loss_t before mask, direct grad, grad through coef, coef value,
    // clip flags low/high/cispo, kl value, phi)
    let eval = |t: usize| {
        let a = adv_t.map_or(a_row, |x| x[t]);
        let lr = old.map_or(T::ZERO, |o| lp[t] - o[t]);
        let coef = match p.level {
            Level::Token => lr.kexp(),
            _ => coef_row,
        };
        let (mut pl, mut gd, mut gc, coef_after, low, high, cis, phi);
        match p.loss_type {
            LossType::Cispo => {
                let cc = coef.min_to(c.cispo_cap);
                pl = T::ZERO - cc * a * lp[t];
                gd = T::ZERO - cc * a;
                gc = T::ZERO;
                coef_after = coef;
                low = false;
                high = false;
                cis = coef > c.cispo_cap && a > T::ZERO;
                phi = T::ZERO;
            }
            LossType::Sapo => {
                let tau = if a > T::ZERO { c.tau_pos } else { c.tau_neg };
                let z = tau * (coef - T::ONE);
                let s = T::ONE / (T::ONE + (T::ZERO - z).kexp());
                let four = T::from_f64(4.0);
                pl = T::ZERO - s * four / tau * a;
                gd = T::ZERO;
                gc = T::ZERO - a * four / tau * (s * (T::ONE - s)) * tau;
                coef_after = coef;
                low = false;
                high = false;
                cis = false;
                phi = T::ZERO;
            }
            LossType::Vespo => {
                let ph = vespo_phi(c, v_logw, v_w, a);
                pl = T::ZERO - ph * a * lp[t];
                gd = T::ZERO - ph * a;
                gc = T::ZERO;
                coef_after = coef;
                low = false;
                high = false;
                cis = false;
                phi = ph;
            }
            _ => {
                let c2 = coef.clamp_to(c.lo, c.hi);
                let dc2 = if coef >= c.lo && coef <= c.hi { T::ONE } else { T::ZERO };
                let (c1, dc1) = match c.delta {
                    Some(d) => (coef.min_to(d), if coef <= d { T::ONE } else { T::ZERO }),
                    None => (coef, T::ONE),
                };
                let (x1, x2) = (c1 * a, c2 * a);
                pl = T::ZERO - if x2 < x1 || x1.is_nan() { x2 } else { x1 };
                // torch.minimum: ties split the gradient, NaN goes to the NaN side
                let d = if x1 < x2 {
                    dc1
                } else if x2 < x1 {
                    dc2
                } else {
                    (dc1 + dc2) * T::from_f64(0.5)
                };
                gc = T::ZERO - a * d;
                gd = T::ZERO;
                coef_after = c1;
                low = c1 < c.lo && a < T::ZERO;
                high = c1 > c.hi && a > T::ZERO;
                cis = false;
                phi = T::ZERO;
            }
        }
        // multiplicative masks
        let mut f = T::ONE;
        if opsm {
            let keep = a >= T::ZERO || opsm_avg <= c.opsm_thr.unwrap_or(T::ZERO);
            if !keep {
                f = T::ZERO;
            }
        }
        if let Some(e) = ent {
            if !e[t] {
                f = f * T::ZERO;
            }
        }
        if apply_is {
            f = f * is_t.map_or(is_row, |x| x[t]);
        }
        if opsm || ent.is_some() || apply_is {
            pl = pl * f;
            gd = gd * f;
            gc = gc * f;
        }
        let mut klv = T::ZERO;
        if let Some(rf) = reff {
            if p.beta != 0.0 {
                let d = rf[t] - lp[t];
                let e = d.kexp();
                let kl = e - d - T::ONE;
                let dkl = T::ONE - e;
                if p.use_bias_correction_kl {
                    klv = kl * coef;
                    gd = gd + c.beta * coef * dkl;
                    gc = gc + c.beta * kl;
                } else {
                    klv = kl;
                    gd = gd + c.beta * dkl;
                }
                pl = pl + c.beta * klv;
            }
        }
        (pl, gd, gc, coef, coef_after, low, high, cis, klv, phi)
    };

    let mut row_loss = 0.0f64;
    let mut g_coef = 0.0f64; // Σ m·gc, "sequence" level
    let (mut low_s, mut high_s, mut reg_s, mut cis_s, mut kl_s, mut phi_s) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for t in 0..len {
        let (pl, gd, gc, coef, _ca, low, high, cis, klv, phi) = eval(t);
        let w: T = m[t].weight();
        row_loss += (pl * w).to_f64();
        if want_grad {
            g[t] = match p.level {
                Level::Sequence => {
                    g_coef += (gc * w).to_f64();
                    wt * w * gd
                }
                _ => wt * w * (gd + gc * coef),
            };
        }
        let wf = w.to_f64();
        if !need_pre {
            cnt_c = m[t].count_into(cnt_c);
        }
        low_s += wf * f64::from(u8::from(low));
        high_s += wf * f64::from(u8::from(high));
        reg_s += wf * f64::from(u8::from(low || high));
        cis_s += wf * f64::from(u8::from(cis));
        kl_s += (klv * w).to_f64();
        phi_s += (phi * w).to_f64();
        if cfg.single_col {
            acc.rows_kl += klv.to_f64();
        }
    }
    if want_grad && p.level == Level::Sequence {
        let k = T::from_f64(w_row * g_coef) * coef_row * T::from_f64(1.0 / cnt1);
        for t in 0..len {
            let w: T = m[t].weight();
            g[t] = g[t] + k * w;
        }
    }
    let cnt = M::count_f64(cnt_c);
    acc.loss += row_loss * w_row;
    acc.tok += cnt;
    acc.low += low_s;
    acc.high += high_s;
    acc.region += reg_s;
    acc.cispo += cis_s;
    acc.kl += kl_s;
    acc.phi_tok += phi_s;

    // Per-sequence clip values (masked_seq_mean) and row-mode metrics.
    if cfg.clip_row_mode {
        // One value per sequence: the (B, 1) quantities, or the single token when T == 1.
        let (low, high, cis) = if cfg.single_col && len == 1 {
            let (_, _, _, _, _, low, high, cis, _, _) = eval(0);
            (low, high, cis)
        } else {
            let a = a_row;
            let coef = coef_row;
            let ca = match c.delta {
                Some(d) if p.loss_type.is_ppo() => coef.min_to(d),
                _ => coef,
            };
            (
                p.loss_type.is_ppo() && ca < c.lo && a < T::ZERO,
                p.loss_type.is_ppo() && ca > c.hi && a > T::ZERO,
                p.loss_type == LossType::Cispo && coef > c.cispo_cap && a > T::ZERO,
            )
        };
        let (l, h, ci) = (f64::from(u8::from(low)), f64::from(u8::from(high)), f64::from(u8::from(cis)));
        acc.rows_low += l;
        acc.rows_high += h;
        acc.rows_region += f64::from(u8::from(low || high));
        acc.rows_cispo += ci;
        acc.low_min = nanmin(acc.low_min, l);
        acc.high_max = nanmax(acc.high_max, h);
    } else {
        // 0/0 = NaN for a sequence without tokens, which nanmin/nanmax skip
        acc.low_min = nanmin(acc.low_min, low_s / cnt);
        acc.high_max = nanmax(acc.high_max, high_s / cnt);
    }
    if vespo && cfg.phi_row_mode {
        // adv_tok implies more than one column, so a_row is this sequence's advantage here
        acc.phi_rows += vespo_phi(c, v_logw, v_w, a_row).to_f64();
    }
}

/// Whether a sequence can take [`row_fast`]: a PPO-family loss with one advantage per sequence
/// and nothing else per token (no IS ratio, off-policy or entropy mask, KL).
#[inline(always)]
fn fast_path_applies<T, M>(inp: &GrpoInputs<'_, T, M>, p: &GrpoParams, adv_tok: bool, single_col: bool) -> bool {
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
fn ppo_token<T: KernelFloat>(coef: T, a: T, c: &Consts<T>) -> (T, T, bool, bool) {
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

const LANES: usize = 16;

/// The common case in one (token level) or two (sequence levels) vectorised passes over a
/// sequence: see [`fast_path_applies`]. Same arithmetic as the general path.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn row_fast<T: KernelFloat, M: MaskValue>(
    lp: &[T],
    old: &[T],
    m: &[M],
    a: T,
    level: Level,
    c: &Consts<T>,
    cfg: RowCfg,
    want_grad: bool,
    g: &mut [T],
    acc: &mut Partial,
) {
    match level {
        Level::Token => row_fast_token(lp, old, m, a, c, cfg, want_grad, g, acc),
        _ => row_fast_seq(lp, old, m, a, level, c, cfg, want_grad, g, acc),
    }
}

#[allow(clippy::too_many_arguments)]
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
fn row_fast_token<T: KernelFloat, M: MaskValue>(
    lp: &[T],
    old: &[T],
    m: &[M],
    a: T,
    c: &Consts<T>,
    cfg: RowCfg,
    want_grad: bool,
    g: &mut [T],
    acc: &mut Partial,
) {
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
    let full = n - n % LANES;
    let mut coef = [T::ZERO; LANES];
    let mut gl = [T::ZERO; LANES];
    // one token's clipped objective: (pl, d pl / d coef, c1) with TRL's min(coef·A, clip(coef)·A)
    // (selects only, so blocks vectorise)
    #[inline(always)]
    fn clip_terms<T: KernelFloat>(cf: T, a: T, lo: T, hi: T, dl: T, half: T) -> (T, T, T) {
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
    #[allow(clippy::too_many_arguments)]
    fn lane_t<T: KernelFloat>(cf: T, w: T, a: T, wt: T, lo: T, hi: T, dl: T, half: T) -> (T, T, T, T) {
        let (pl, gc, c1) = clip_terms(cf, a, lo, hi, dl, half);
        let low = if c1 < lo && a < T::ZERO { w } else { T::ZERO };
        let high = if c1 > hi && a > T::ZERO { w } else { T::ZERO };
        (pl * w, low, high, wt * w * (gc * cf))
    }
    // one token of pass b: loss, gradient and flags, the sums in f64
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn lane<T: KernelFloat>(cf: T, w: T, a: T, wt: T, lo: T, hi: T, dl: T, half: T) -> (f64, f64, f64, T) {
        let (pl, gc, c1) = clip_terms(cf, a, lo, hi, dl, half);
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
            let (l, lw, hw, gv) = lane_t(coef[k], wv[k], a, wt, lo, hi, dl, half);
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
        let (l, lw, hw, gv) = lane(cf, m[t].weight(), a, wt, lo, hi, dl, half);
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

#[allow(clippy::too_many_arguments)]
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
fn row_fast_seq<T: KernelFloat, M: MaskValue>(
    lp: &[T],
    old: &[T],
    m: &[M],
    a: T,
    level: Level,
    c: &Consts<T>,
    cfg: RowCfg,
    want_grad: bool,
    g: &mut [T],
    acc: &mut Partial,
) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn params(loss_type: LossType, level: Level) -> GrpoParams {
        GrpoParams {
            loss_type,
            level,
            epsilon_low: 0.2,
            epsilon_high: 0.28,
            delta: None,
            beta: 0.0,
            use_bias_correction_kl: true,
            off_policy_mask_threshold: None,
            sapo_temperature_pos: 1.0,
            sapo_temperature_neg: 1.05,
            vespo_k_pos: 2.0,
            vespo_lambda_pos: 3.0,
            vespo_k_neg: 3.0,
            vespo_lambda_neg: 2.0,
            grad_accum: 1.0,
            max_completion_length: Some(4.0),
            token_denominator: None,
        }
    }

    #[allow(clippy::type_complexity)]
    fn batch() -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<i64>, Vec<f64>) {
        let lp = vec![-0.5, -1.0, -0.2, -3.0, -0.1, -0.7, -2.0, -0.4];
        let old = vec![-0.6, -0.8, -0.2, -3.0, -0.5, -0.7, -1.0, -0.4];
        let adv = vec![1.0, -0.5];
        let m = vec![1, 1, 1, 0, 1, 1, 0, 0];
        let rf = vec![-0.4, -1.1, -0.3, -3.0, -0.2, -0.6, -2.0, -0.4];
        (lp, old, adv, m, rf)
    }

    /// Loss as a function of logps, for finite differences.
    fn loss_of(lp: &[f64], p: &GrpoParams) -> f64 {
        let (_, old, adv, m, rf) = batch();
        let inp = GrpoInputs {
            logps: lp,
            old_logps: Some(&old),
            advantages: &adv,
            mask: &m,
            ref_logps: Some(&rf),
            importance_sampling_ratio: None,
            sampling_logps: None,
            entropy_mask: None,
        };
        let lay = Layout::padded(8, 2, "per_token_logps").unwrap();
        grpo_loss(&inp, &lay, p, &mut []).unwrap().0
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let types = [
            LossType::Grpo,
            LossType::Bnpo,
            LossType::DrGrpo,
            LossType::Dapo,
            LossType::Cispo,
            LossType::Sapo,
            LossType::Luspo,
            LossType::Vespo,
        ];
        for lt in types {
            for level in [Level::Token, Level::Sequence, Level::SequenceToken] {
                for beta in [0.0, 0.1] {
                    let mut p = params(lt, level);
                    p.beta = beta;
                    let (lp, old, adv, m, rf) = batch();
                    let inp = GrpoInputs {
                        logps: &lp[..],
                        old_logps: Some(&old),
                        advantages: &adv,
                        mask: &m,
                        ref_logps: Some(&rf),
                        importance_sampling_ratio: None,
                        sampling_logps: None,
                        entropy_mask: None,
                    };
                    let lay = Layout::padded(8, 2, "per_token_logps").unwrap();
                    let mut g = vec![0.0; 8];
                    grpo_loss(&inp, &lay, &p, &mut g).unwrap();
                    for t in 0..8 {
                        let h = 1e-6;
                        let (mut a, mut b) = (lp.clone(), lp.clone());
                        a[t] += h;
                        b[t] -= h;
                        let fd = (loss_of(&a, &p) - loss_of(&b, &p)) / (2.0 * h);
                        // SequenceToken differs from the true derivative of its value by design;
                        // cispo's clipped ratio and vespo's φ are detached in TRL (no gradient)
                        if level != Level::SequenceToken && !matches!(lt, LossType::Cispo | LossType::Vespo) {
                            assert!(
                                (fd - g[t]).abs() < 1e-6,
                                "{lt:?} {level:?} beta={beta} t={t}: fd {fd} vs {}",
                                g[t]
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn nan_and_lengths_are_errors() {
        let (mut lp, old, adv, m, _) = batch();
        lp[2] = f64::NAN;
        let inp = GrpoInputs {
            logps: &lp[..],
            old_logps: Some(&old),
            advantages: &adv,
            mask: &m,
            ref_logps: None,
            importance_sampling_ratio: None,
            sampling_logps: None,
            entropy_mask: None,
        };
        let lay = Layout::padded(8, 2, "per_token_logps").unwrap();
        let e = grpo_loss(&inp, &lay, &params(LossType::Dapo, Level::Token), &mut []).unwrap_err();
        assert_eq!(e.argument, "per_token_logps");
        let lay3 = Layout::padded(9, 3, "x").unwrap();
        assert!(grpo_loss(&inp, &lay3, &params(LossType::Dapo, Level::Token), &mut []).is_err());
        let mut p = params(LossType::Dapo, Level::Token);
        p.beta = 0.1;
        let (lp, ..) = batch();
        let inp = GrpoInputs { logps: &lp[..], ..inp };
        assert_eq!(grpo_loss(&inp, &lay, &p, &mut []).unwrap_err().argument, "ref_per_token_logps");
    }

    #[test]
    fn fast_exp_is_within_an_ulp() {
        let mut x = -104.0f32;
        while x < 89.0 {
            let (a, b) = (exp_f32(x), x.exp());
            let ulp = (b.to_bits() as i64 - a.to_bits() as i64).abs();
            assert!(ulp <= 1, "x={x}: {a} vs {b}");
            x += 0.0137;
        }
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(0.0), 1.0);
    }
}
