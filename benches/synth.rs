//! Time to grow and render one synthetic crystal at the bundled set's size.
//! Run with `cargo bench --bench synth`.

use criterion::{Criterion, criterion_group, criterion_main};
use snowscope::synth::{Morphology, grow_and_render};
use std::hint::black_box;

fn grow_and_render_common(c: &mut Criterion) {
    let mut group = c.benchmark_group("synth_grow_and_render_256px");
    group.sample_size(10);
    for m in Morphology::COMMON {
        group.bench_function(m.name(), |b| {
            b.iter(|| grow_and_render(black_box(m), black_box(2026), 256))
        });
    }
    group.finish();
}

criterion_group!(benches, grow_and_render_common);
criterion_main!(benches);
