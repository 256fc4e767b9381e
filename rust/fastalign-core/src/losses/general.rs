//! The general per-sequence step of [`super::grpo_loss`]: every loss type, level, mask and
//! correction, one token at a time.

use super::*;

/// VESPO's φ for one sequence's `log_w` and an advantage (TRL `get_gamma_weights`).
#[inline(always)]
fn vespo_phi<T: Real>(c: &Consts<T>, log_w: T, w: T, a: T) -> T {
    let nonneg = a >= T::ZERO;
    let (k, lam) = if nonneg { (c.k_pos, c.lam_pos) } else { (c.k_neg, c.lam_neg) };
    let phi = (lam + k * log_w - lam * w).kexp();
    if phi.is_nan() || phi.is_infinite() {
        T::ZERO
    } else {
        phi
    }
}

/// Sequence `j` (tokens `r`): loss contribution, gradient, metrics.
#[inline(always)]
pub(super) fn row<T: Real, M: MaskValue>(
    call: &Call<'_, '_, T, M>,
    r: std::ops::Range<usize>,
    j: usize,
    g: &mut [T],
    acc: &mut Partial,
) {
    let (inp, p, c, cfg) = (call.inp, call.p, &call.c, call.cfg);
    let RowCfg { adv_tok, is_tok, want_grad, .. } = cfg;
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
        let seq = FastRow { lp, old: old.unwrap_or(lp), m, a: a_row };
        return row_fast(seq, p.level, c, cfg, g, acc);
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
