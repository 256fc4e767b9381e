use fastalign_core::advantages::*;
use fastalign_core::rewards::SoftOverlong;
use std::time::Instant;
fn main() {
    let n = 8192;
    let k = 3;
    let r: Vec<f32> = (0..n * k).map(|i| ((i * 2654435761usize) % 1000) as f32 / 1000.0).collect();
    let w = vec![1.0f32; k];
    let p = GrpoParams {
        num_generations: 16,
        scale_rewards: ScaleRewards::Group,
        aggregation: Aggregation::SumThenNormalize,
        eps: 1e-4,
    };
    for _ in 0..3 {
        let t = Instant::now();
        let mut acc = 0.0;
        for _ in 0..1000 {
            let o = grpo_advantages(&r, k, &w, &p).unwrap();
            acc += o.advantages[3];
        }
        println!("grpo {:?} per call {}", t.elapsed() / 1000, acc);
    }
    let lens: Vec<i64> = (0..n).map(|i| ((i * 2654435761usize) % 4097) as i64).collect();
    let s = SoftOverlong::new(4096, 1024).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let mut acc = 0.0;
        for _ in 0..1000 {
            let mut out = vec![0.0f64; n];
            s.penalties(&lens, &mut out).unwrap();
            acc += out[5];
        }
        println!("pen {:?} per call {}", t.elapsed() / 1000, acc);
    }
}
