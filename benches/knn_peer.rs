//! All-vs-all exact k-NN (k = 3 neighbours besides self) on random 1280-d vectors, timed once
//! per size, for the side-by-side comparison with FAISS (`benches/knn_vs_faiss.sh`).
//! Usage: `THREADS=2 cargo bench --bench knn_peer -- [N ...]` (default 10000 50000; THREADS
//! sizes the rayon pool, default: rayon's own choice). Data: uniform [0, 1) from SplitMix64
//! with seed N, the same generator as `benches/faiss_knn.py`. One JSON line per N: wall
//! seconds, the process's CPU seconds during the search (a shared machine shows up as CPU
//! seconds well below threads x wall) and peak RSS.

use snowscope::neighbours::knn;
use snowscope::rng::Rng;
use std::time::Instant;

const DIM: usize = 1280;
const K: usize = 3;

fn uniform(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.f32()).collect()
}

/// A field of /proc/self/status in MB (peak RSS: VmHWM).
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// User + system CPU seconds of this process (fields 14 and 15 of /proc/self/stat, in
/// clock ticks of 1/100 s on Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; count from the closing parenthesis.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    ticks(11)
        .zip(ticks(12))
        .map_or(0.0, |(u, s)| (u + s) / 100.0)
}

fn run(n: usize) -> (f64, f64) {
    let data = uniform(n * DIM, n as u64);
    let groups: Vec<u32> = (0..n as u32).collect();
    let (cpu, started) = (cpu_seconds(), Instant::now());
    let result = knn(&data, DIM, K, &groups);
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(result.len(), n);
    (seconds, cpu_seconds() - cpu)
}

fn main() {
    if let Some(threads) = std::env::var("THREADS").ok().and_then(|t| t.parse().ok()) {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .expect("the global pool is configured once, first");
    }
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 50_000]
    } else {
        sizes
    };
    run(1000); // warm-up: threads started, code paged in
    for n in sizes {
        let (seconds, cpu) = run(n);
        println!(
            "{{\"impl\": \"snowscope\", \"n\": {n}, \"d\": {DIM}, \"k\": {K}, \"threads\": {}, \
             \"seconds\": {seconds:.3}, \"cpu_seconds\": {cpu:.2}, \"peak_rss_mb\": {:.0}}}",
            rayon::current_num_threads(),
            status_mb("VmHWM:")
        );
    }
}
