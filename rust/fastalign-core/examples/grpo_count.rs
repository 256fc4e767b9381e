use fastalign_core::advantages::*;
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
    let mut acc = 0.0;
    for _ in 0..100 {
        let o = grpo_advantages(&r, k, &w, &p).unwrap();
        acc += o.advantages[3];
    }
    println!("{acc}");
}
