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
                        assert!((fd - g[t]).abs() < 1e-6, "{lt:?} {level:?} beta={beta} t={t}: fd {fd} vs {}", g[t]);
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
