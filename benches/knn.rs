//! Exact all-vs-all k-NN (k = 3, 1280-d, uniform [0, 1) vectors) with the global thread
//! pool, at the sizes the explorer meets. The side-by-side comparison with FAISS is
//! `benches/knn_vs_faiss.sh`; this bench tracks regressions.

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use snowscope::neighbours::knn;
use snowscope::rng::Rng;
use std::time::Duration;

const DIM: usize = 1280;
const K: usize = 3;

fn all_vs_all(c: &mut Criterion) {
    let mut group = c.benchmark_group("knn");
    group.sample_size(10);
    // Flat sampling: 10 searches of about a second at 10k, not criterion's 55.
    group.sampling_mode(SamplingMode::Flat);
    for n in [2_000usize, 10_000] {
        let mut rng = Rng::new(n as u64);
        let data: Vec<f32> = (0..n * DIM).map(|_| rng.f32()).collect();
        let groups: Vec<u32> = (0..n as u32).collect();
        group.measurement_time(Duration::from_secs(if n > 5_000 { 10 } else { 3 }));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("d1280_k3", n), &data, |b, data| {
            b.iter(|| knn(data, DIM, K, &groups))
        });
    }
    group.finish();
}

criterion_group!(benches, all_vs_all);
criterion_main!(benches);
