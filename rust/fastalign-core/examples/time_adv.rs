use fastalign_core::advantages::*;
use std::time::Instant;
fn main() {
    let n = 8192usize;
    let k = 3usize;
    let mut x: u64 = 12345;
    let mut r = vec![0f32; n * k];
    for v in r.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let u = (x >> 40) as f32 / (1u64 << 24) as f32;
        *v = if (x & 0xff) < 13 { f32::NAN } else { u };
    }
    let w = vec![1f32; k];
    let p = GrpoParams {
        num_generations: 16,
        scale_rewards: ScaleRewards::Group,
        aggregation: Aggregation::SumThenNormalize,
        eps: 1e-4,
    };
    let (mut a, mut z, mut s) = (vec![0f32; n], vec![false; n], vec![0f32; n]);
    for _ in 0..std::env::var("REPS").ok().and_then(|s| s.parse().ok()).unwrap_or(5) {
        let t = Instant::now();
        let iters: u32 = std::env::var("ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(20000);
        for _ in 0..iters {
            std::hint::black_box(
                grpo_advantages_into(
                    &r,
                    k,
                    &w,
                    &p,
                    GrpoOutputs { advantages: &mut a, std_is_zero: &mut z, rewards: &mut s },
                )
                .unwrap(),
            );
        }
        println!("{:.2} us", t.elapsed().as_secs_f64() / iters as f64 * 1e6);
    }
}
