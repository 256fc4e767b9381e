//! Rust-only timings of the two smallest hot kernels, without Python in the way:
//! `cargo run --release -p fastalign-core --example time_kernels`.
//!
//! GRPO advantages at N=8192, K=3, G=16 with 5% NaN entries (the benchmark's shape) and the
//! soft overlong penalty of 8192 int64 lengths. Prints the best of five rounds per kernel.
//! The figures that count are the side-by-side ratios in `benches/`; this is for profiling.

use std::hint::black_box;
use std::time::Instant;

use fastalign_core::advantages::{grpo_advantages_into, Aggregation, GrpoOutputs, GrpoParams, ScaleRewards};
use fastalign_core::rewards::SoftOverlong;

fn best_of(rounds: usize, iters: u32, mut f: impl FnMut()) -> f64 {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_secs_f64() / f64::from(iters) * 1e6
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };

    let (n, k) = (8192usize, 3usize);
    let rewards: Vec<f32> = (0..n * k)
        .map(|_| {
            let x = next();
            if x % 100 < 5 {
                f32::NAN
            } else {
                (x >> 40) as f32 / (1u64 << 24) as f32
            }
        })
        .collect();
    let weights = vec![1.0f32; k];
    let params = GrpoParams {
        num_generations: 16,
        scale_rewards: ScaleRewards::Group,
        aggregation: Aggregation::SumThenNormalize,
        eps: 1e-4,
    };
    let (mut adv, mut zero, mut sums) = (vec![0f32; n], vec![false; n], vec![0f32; n]);
    let us = best_of(5, 20_000, || {
        let out = GrpoOutputs { advantages: &mut adv, std_is_zero: &mut zero, rewards: &mut sums };
        black_box(grpo_advantages_into(black_box(&rewards), k, &weights, &params, out).unwrap());
    });
    println!("grpo_advantages N={n} K={k} G=16: {us:.2} us");

    let soft = SoftOverlong::new(4096, 1024).unwrap();
    let lengths: Vec<i64> = (0..8192).map(|_| (next() % 4096) as i64).collect();
    let us = best_of(5, 20_000, || {
        black_box(soft.penalties_vec::<i64, f64>(black_box(&lengths)).unwrap());
    });
    println!("soft overlong penalty, 8192 lengths: {us:.2} us");
}
