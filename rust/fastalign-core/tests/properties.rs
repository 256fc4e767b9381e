//! Property tests (proptest) of the packer and the segment reductions: whatever the input, the
//! kernels return a result or a named error (never a panic), and the results keep their
//! invariants. `PROPTEST_CASES=100000 cargo test -p fastalign-core --test properties` runs a long
//! campaign; the default is proptest's 256 cases per property.

use fastalign_core::packing::{cu_seqlens, pack_plan, position_ids, Plan, Strategy};
use fastalign_core::ratios::{masked_reduce, Layout, Reduction};
use fastalign_core::rewards::SoftOverlong;
use proptest::prelude::*;

const STRATEGIES: [Strategy; 5] =
    [Strategy::Bfd, Strategy::BfdSplit, Strategy::Wrapped, Strategy::Ffd, Strategy::FfdSplit];

/// Each row's pieces, as (skip, len) in plan order.
fn pieces_by_row(plan: &Plan, rows: usize) -> Vec<Vec<(i64, i64)>> {
    let mut by_row = vec![Vec::new(); rows];
    for ((&r, &s), &l) in plan.piece_row.iter().zip(&plan.piece_skip).zip(&plan.piece_len) {
        by_row[r as usize].push((s, l));
    }
    by_row
}

proptest! {
    #[test]
    fn packing_keeps_every_token_exactly_once_within_seq_length(
        lengths in prop::collection::vec(0i64..300, 0..120),
        seq_length in 1i64..200,
        strategy_index in 0usize..5,
        window in 1usize..50,
    ) {
        let strategy = STRATEGIES[strategy_index];
        let n = lengths.len() as i64;
        let starts: Vec<i64> = (0..n).step_by(window).collect();
        let ends: Vec<i64> = starts.iter().map(|&s| (s + window as i64).min(n)).collect();
        let plan = pack_plan(&lengths, &starts, &ends, seq_length, strategy).unwrap();

        // output rows are contiguous, non-empty ranges within seq_length
        prop_assert_eq!(plan.out_offsets[0], 0);
        for w in plan.out_offsets.windows(2) {
            prop_assert!(w[0] < w[1] && w[1] - w[0] <= seq_length, "row {:?} vs seq_length {}", w, seq_length);
        }
        let total: i64 = plan.piece_len.iter().sum();
        prop_assert_eq!(*plan.out_offsets.last().unwrap(), total);
        if let Some(bounds) = &plan.bin_bounds {
            prop_assert_eq!(bounds.len(), plan.out_offsets.len());
            for (b, w) in bounds.windows(2).zip(plan.out_offsets.windows(2)) {
                let tokens: i64 = plan.piece_len[b[0] as usize..b[1] as usize].iter().sum();
                prop_assert_eq!(tokens, w[1] - w[0]);
            }
        }

        let splits = matches!(strategy, Strategy::BfdSplit | Strategy::FfdSplit | Strategy::Wrapped);
        let mut truncated = 0;
        for (row, mut pieces) in pieces_by_row(&plan, lengths.len()).into_iter().enumerate() {
            let len = lengths[row];
            if splits {
                // the row's pieces tile [0, len) exactly: nothing lost, nothing twice
                pieces.sort_unstable();
                let mut at = 0;
                for (skip, l) in pieces {
                    prop_assert!(l > 0 || len == 0);
                    prop_assert_eq!(skip, at);
                    at += l;
                }
                prop_assert_eq!(at, len);
            } else if len == 0 {
                prop_assert!(pieces.is_empty());
            } else {
                // truncation: one piece, the row's first min(len, seq_length) tokens
                prop_assert_eq!(pieces, vec![(0, len.min(seq_length))]);
                truncated += (len - seq_length).max(0);
            }
        }
        if !splits {
            prop_assert_eq!(plan.tokens_truncated, truncated);
        }
    }

    #[test]
    fn packing_refuses_bad_input_by_name(
        lengths in prop::collection::vec(-5i64..50, 1..20),
        seq_length in -3i64..20,
    ) {
        let n = lengths.len() as i64;
        match pack_plan(&lengths, &[0], &[n], seq_length, Strategy::Bfd) {
            Ok(_) => prop_assert!(seq_length >= 1 && lengths.iter().all(|&l| l >= 0)),
            Err(e) => prop_assert!(e.argument == "seq_length" || e.argument == "lengths", "{}", e),
        }
    }

    #[test]
    fn position_ids_restart_at_each_sequence(lengths in prop::collection::vec(0i64..40, 0..30)) {
        let pos = position_ids(&lengths).unwrap();
        let cu = cu_seqlens(&lengths).unwrap();
        prop_assert_eq!(pos.len() as i64, lengths.iter().sum::<i64>());
        prop_assert_eq!(cu.len(), lengths.len() + 1);
        for (i, &l) in lengths.iter().enumerate() {
            let (s, e) = (cu[i] as usize, cu[i + 1] as usize);
            prop_assert_eq!((e - s) as i64, l);
            prop_assert!(pos[s..e].iter().enumerate().all(|(j, &p)| p == j as i64));
        }
    }

    #[test]
    fn packed_reductions_equal_padded_ones(
        rows in 1usize..12,
        cols in 1usize..40,
        seed in any::<u64>(),
        reduction_index in 0usize..3,
    ) {
        let reduction = [Reduction::Sum, Reduction::Mean, Reduction::Max][reduction_index];
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let values: Vec<f64> = (0..rows * cols).map(|_| (next() % 2001) as f64 / 100.0 - 10.0).collect();
        let mask: Vec<i64> = (0..rows * cols).map(|_| i64::from(next() % 4 != 0)).collect();
        let mut padded = vec![0.0f64; rows];
        masked_reduce(&values, None, Some(&mask), &Layout::Padded { rows, cols }, reduction, &mut padded).unwrap();
        // the same tokens packed back to back, masked tokens dropped
        let mut kept = Vec::new();
        let mut cu = vec![0i64];
        for r in 0..rows {
            for c in 0..cols {
                if mask[r * cols + c] == 1 {
                    kept.push(values[r * cols + c]);
                }
            }
            cu.push(kept.len() as i64);
        }
        let mut packed = vec![0.0f64; rows];
        let layout = Layout::Packed { cu_seqlens: &cu };
        masked_reduce::<f64, i64>(&kept, None, None, &layout, reduction, &mut packed).unwrap();
        for (a, b) in padded.iter().zip(&packed) {
            prop_assert!(a == b || (a - b).abs() <= 1e-12 * a.abs().max(1.0) || (a.is_nan() && b.is_nan()), "{} vs {}", a, b);
        }
    }

    #[test]
    fn soft_overlong_vector_kernel_equals_exact_division(
        max in 1i64..=(1i64 << 53),
        cache_frac in 0.0f64..=1.0,
        seed in any::<u64>(),
    ) {
        // the vector kernel's FMA quotient is bit-identical to the scalar division (TRL's
        // Python `int / int`) on lengths spread over the ramp and its edges
        let cache = ((max as f64 * cache_frac) as i64).clamp(0, max);
        let s = SoftOverlong::new(max, cache).unwrap();
        let mut state = seed | 1;
        let lo = max - cache;
        let lengths: Vec<i64> = (0..257)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                match i {
                    0 => lo,
                    1 => lo + 1,
                    2 => max,
                    3 => max + 1,
                    _ => (lo - 1 + (state % (cache as u64 + 3)) as i64).max(0),
                }
            })
            .collect();
        let got: Vec<f64> = s.penalties_vec(&lengths).unwrap();
        for (&l, &g) in lengths.iter().zip(&got) {
            prop_assert_eq!(g.to_bits(), s.penalty(l).to_bits(), "max={} cache={} len={}", max, cache, l);
        }
    }
}
