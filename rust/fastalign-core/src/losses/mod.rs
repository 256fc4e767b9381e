//! The GRPO loss family of TRL 1.16.0 (`GRPOTrainer._compute_loss`), fused: one kernel returns
//! the loss, its gradient with respect to `per_token_logps` and the metrics TRL logs, reading
//! each input once per sequence and writing only the gradient (no `(B, T)` temporaries).
//!
//! Per token, in TRL's order: `log_ratio = logp − old`; the importance weight
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
use crate::numeric::{Real, LANES};
use crate::ratios::{count_total, for_row_blocks, mask_count, masked_diff_sum_count, Layout, MaskValue};

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
pub fn grpo_loss<T: Real, M: MaskValue>(
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
    let cfg = RowCfg { w_const, per_row_count, clip_row_mode, phi_row_mode, single_col, adv_tok, is_tok, want_grad };
    let call = Call { inp, p, c, cfg };
    let parts = for_row_blocks(layout, &mut [] as &mut [T], grad, work, |first, rows, _, g| {
        let mut acc = Partial::EMPTY;
        let base = layout.range(first).start;
        for j in first..first + rows {
            let r = layout.range(j);
            row(&call, r.clone(), j, g_slice(g, &r, base), &mut acc);
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

mod fast;
mod general;
#[cfg(test)]
mod tests;

use fast::{fast_path_applies, row_fast, FastRow};
use general::row;

fn g_slice<'s, T>(g: &'s mut [T], r: &std::ops::Range<usize>, base: usize) -> &'s mut [T] {
    if g.is_empty() {
        g
    } else {
        &mut g[r.start - base..r.end - base]
    }
}

/// The layout-dependent choices of one call, the same for every sequence.
#[derive(Clone, Copy)]
struct RowCfg {
    w_const: f64,
    per_row_count: bool,
    clip_row_mode: bool,
    phi_row_mode: bool,
    single_col: bool,
    /// one advantage per token (else one per sequence)
    adv_tok: bool,
    /// one IS ratio per token (else one per sequence, or none)
    is_tok: bool,
    want_grad: bool,
}

/// What every sequence of one [`grpo_loss`] call reads.
struct Call<'a, 'i, T, M> {
    inp: &'a GrpoInputs<'i, T, M>,
    p: &'a GrpoParams,
    c: Consts<T>,
    cfg: RowCfg,
}
