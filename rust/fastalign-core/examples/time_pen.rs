use fastalign_core::rewards::SoftOverlong;
use std::time::Instant;
fn main() {
    let s = SoftOverlong::new(4096, 1024).unwrap();
    let mut x: u64 = 1;
    let l: Vec<i64> = (0..8192)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            ((x >> 33) % 4096) as i64
        })
        .collect();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..20000 {
            std::hint::black_box(s.penalties_vec::<i64, f64>(std::hint::black_box(&l)).unwrap());
        }
        println!("{:.2} us", t.elapsed().as_secs_f64() / 20000.0 * 1e6);
    }
}
