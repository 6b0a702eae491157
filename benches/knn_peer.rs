//! All-vs-all exact k-NN (k = 3 neighbours besides self) on random 1280-d vectors, timed once
//! per size, for the side-by-side comparison with FAISS (`benches/knn_vs_faiss.sh`).
//! Usage: `cargo bench --bench knn_peer -- [N ...]` (default 10000 50000). Data: uniform
//! [0, 1) from SplitMix64 with seed N, the same generator as `benches/faiss_knn.py`.

use snowscope::neighbours::knn;
use snowscope::rng::Rng;
use std::time::Instant;

const DIM: usize = 1280;
const K: usize = 3;

fn uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.f32()).collect()
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 50_000]
    } else {
        sizes
    };
    knn(
        &uniform(1000 * DIM, 1),
        DIM,
        K,
        &(0..1000).collect::<Vec<u32>>(),
    ); // warm-up
    for n in sizes {
        let data = uniform(n * DIM, n as u64);
        let groups: Vec<u32> = (0..n as u32).collect();
        let started = Instant::now();
        let result = knn(&data, DIM, K, &groups);
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(result.len(), n);
        println!(
            "{{\"impl\": \"snowscope\", \"n\": {n}, \"d\": {DIM}, \"k\": {K}, \"seconds\": {seconds:.3}, \"peak_rss_mb\": {:.0}}}",
            peak_rss_mb()
        );
    }
}
