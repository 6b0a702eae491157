//! GFLOP/s of the CPU kernels on every EfficientNet-Lite0 layer shape (one image, one
//! thread), to see which shapes run far from the machine's peak. Medians of repeated runs.
//! `cargo bench --bench kernels` (`SNOWSCOPE_PRECISION=bf16` for the BF16 1x1 products)

use snowscope::model::efficientnet_lite::STAGES;
use snowscope::model::kernels::depthwise::DepthwiseConv;
use snowscope::model::kernels::gemm::PointwiseConv;
use snowscope::model::kernels::im2col;
use std::time::Instant;

fn median_secs(mut run: impl FnMut()) -> f64 {
    run();
    let start = Instant::now();
    let mut reps = 0;
    while start.elapsed().as_secs_f64() < 0.05 {
        run();
        reps += 1;
    }
    let per = (start.elapsed().as_secs_f64() / reps as f64).max(1e-7);
    let reps = ((0.02 / per) as usize).clamp(1, 1000);
    let mut times: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                run();
            }
            t.elapsed().as_secs_f64() / reps as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[3]
}

fn pointwise(name: &str, m: usize, k: usize, n: usize, residual: bool, total: &mut f64) {
    let w: Vec<f32> = (0..n * k).map(|i| (i % 7) as f32 * 0.01).collect();
    let mut conv = PointwiseConv::new(&w, &vec![0.1; n], k, true);
    // `SNOWSCOPE_PRECISION=bf16`: the BF16 product, where the CPU has an engine for it.
    if std::env::var("SNOWSCOPE_PRECISION").as_deref() == Ok("bf16") {
        conv = conv.in_bf16();
    }
    let a: Vec<f32> = (0..m * k).map(|i| (i % 5) as f32 * 0.1).collect();
    let r = vec![0.5f32; m * n];
    let mut out = vec![0f32; m * n];
    let t = median_secs(|| conv.apply(&a, m, residual.then_some(&r[..]), &mut out));
    *total += t;
    let gflops = 2.0 * (m * k * n) as f64 / t / 1e9;
    println!(
        "{name:<28} m={m:>5} k={k:>4} n={n:>4} {:>8.1} us {gflops:>6.1} GFLOP/s",
        t * 1e6
    );
}

fn depthwise(name: &str, h: usize, c: usize, k: usize, s: usize, total: &mut f64) {
    let w: Vec<f32> = (0..c * k * k).map(|i| (i % 7) as f32 * 0.01).collect();
    let conv = DepthwiseConv::new(&w, &vec![0.1; c], k, s);
    let x: Vec<f32> = (0..h * h * c).map(|i| (i % 5) as f32 * 0.1).collect();
    let (oh, ow) = conv.output_size(h, h);
    let mut out = vec![0f32; oh * ow * c];
    let t = median_secs(|| conv.apply(&x, h, h, &mut out));
    *total += t;
    let gflops = 2.0 * (oh * ow * c * k * k) as f64 / t / 1e9;
    println!(
        "{name:<28} {h:>3}x{h:<3} c={c:>4} k{k} s{s} {:>8.1} us {gflops:>6.1} GFLOP/s",
        t * 1e6
    );
}

fn main() {
    let (mut pw, mut dw) = (0.0, 0.0);
    let image: Vec<f32> = (0..3 * 224 * 224).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut cols = vec![0f32; 16 * 112 * 27];
    let t = median_secs(|| {
        for band in (0..112).step_by(16) {
            im2col::<3>(&image, (3, 224, 224), 2, band..band + 16, &mut cols);
        }
    });
    pw += t;
    println!("{:<28} {:>39.1} us", "stem im2col", t * 1e6);
    pointwise("stem (im2col)", 112 * 112, 27, 32, false, &mut pw);
    let mut hw = 112;
    for (stage, &(repeats, k, s, e, cin, cout)) in STAGES.iter().enumerate() {
        for r in 0..repeats {
            let (cin, s) = if r == 0 { (cin, s) } else { (cout, 1) };
            let mid = cin * e;
            let tag = format!("stage{} block{r}", stage + 1);
            if e != 1 {
                pointwise(&format!("{tag} expand"), hw * hw, cin, mid, false, &mut pw);
            }
            depthwise(&format!("{tag} depthwise"), hw, mid, k, s, &mut dw);
            hw = hw.div_ceil(s);
            pointwise(
                &format!("{tag} project"),
                hw * hw,
                mid,
                cout,
                s == 1 && cin == cout,
                &mut pw,
            );
        }
    }
    pointwise("head", 49, 320, 1280, false, &mut pw);
    println!(
        "total: 1x1/stem {:.2} ms, depthwise {:.2} ms per image",
        pw * 1e3,
        dw * 1e3
    );
}
