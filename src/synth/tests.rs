use super::*;

/// Small pictures keep the tests fast: lattice radius 29 at 96 px.
const SIZE: u32 = 96;

/// Axial rotation by 60 degrees: cube (x, y, z) -> (-z, -x, -y).
fn rotate60(q: i32, r: i32) -> (i32, i32) {
    (-r, q + r)
}

/// Whether every ice cell's 60-degree image froze at the same step.
fn is_six_fold(c: &Crystal) -> bool {
    (0..c.frozen_at.len()).all(|i| {
        let (q, r) = c.coord(i);
        let (rq, rr) = rotate60(q, r);
        match c.index(rq, rr) {
            Some(j) => c.frozen_at[i] == c.frozen_at[j],
            None => !c.is_ice(i),
        }
    })
}

fn grown(m: Morphology, seed: u64) -> Grown {
    Grown::new(m, seed, SIZE)
}

#[test]
fn same_seed_same_bytes() {
    let a = encode_png(&grow_and_render(Morphology::StellarDendrite, 11, SIZE)).unwrap();
    let b = encode_png(&grow_and_render(Morphology::StellarDendrite, 11, SIZE)).unwrap();
    let c = encode_png(&grow_and_render(Morphology::StellarDendrite, 12, SIZE)).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn symmetric_habits_grow_six_fold() {
    let symmetric = Morphology::COMMON.iter().chain(&[
        Morphology::TwelveBranched,
        Morphology::Aggregate,
        Morphology::Column,
    ]);
    for &m in symmetric {
        let g = grown(m, 3);
        for c in &g.crystals {
            assert!(c.ice_count() > 50, "{m:?} did not grow");
            assert!(is_six_fold(c), "{m:?} is not 6-fold symmetric");
        }
    }
}

#[test]
fn broken_arm_and_gradient_break_symmetry() {
    for m in [
        Morphology::BrokenArm,
        Morphology::AsymmetricGrowth,
        Morphology::Triangular,
    ] {
        let g = grown(m, 5);
        assert!(
            !is_six_fold(&g.crystals[0]),
            "{m:?} is still 6-fold symmetric"
        );
    }
}

#[test]
fn rare_count_rule() {
    assert_eq!(rare_count(180, 0.03), 5);
    assert_eq!(
        rare_count(10, 0.01),
        1,
        "a positive fraction gives at least one"
    );
    assert_eq!(rare_count(10, 0.0), 0);
    assert_eq!(rare_count(4, 1.0), 4);
    assert_eq!(rare_count(0, 0.5), 0);
}

#[test]
fn crystal_is_bright_on_dark_background() {
    for m in Morphology::COMMON {
        let img = grow_and_render(m, 21, SIZE);
        let mean = |x0: u32, y0: u32, w: u32| {
            let mut sum = 0u64;
            for y in y0..y0 + w {
                for x in x0..x0 + w {
                    sum += img.get_pixel(x, y).0.iter().map(|&v| v as u64).sum::<u64>();
                }
            }
            sum as f64 / (3 * w * w) as f64
        };
        let k = SIZE / 8;
        let centre = mean(SIZE / 2 - k / 2, SIZE / 2 - k / 2, k);
        let corners = [
            mean(0, 0, k),
            mean(SIZE - k, 0, k),
            mean(0, SIZE - k, k),
            mean(SIZE - k, SIZE - k, k),
        ];
        let corner = corners.iter().sum::<f64>() / 4.0;
        assert!(
            centre > corner + 60.0,
            "{m:?}: centre {centre:.0} vs corners {corner:.0}"
        );
        assert!(corner < 60.0, "{m:?}: background too bright ({corner:.0})");
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("snowscope-synth-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn small_config(out: PathBuf) -> SynthConfig {
    SynthConfig {
        crystals: 12,
        seed: 9,
        rare_fraction: 0.2,
        size: 48,
        out,
        duplicates: 2,
        near_duplicates: 1,
    }
}

#[test]
fn generate_writes_a_consistent_set() {
    let cfg = small_config(temp_dir("set"));
    let calls = AtomicUsize::new(0);
    let manifest = generate(&cfg, &|_, total| {
        assert_eq!(total, 15);
        calls.fetch_add(1, Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(calls.into_inner(), 15);
    assert_eq!(manifest.images.len(), 15);
    assert_eq!(
        manifest.images.iter().filter(|e| e.rare).count(),
        rare_count(12, 0.2)
    );
    for e in &manifest.images {
        assert_eq!(
            e.rare,
            e.morphology != "stellar_dendrite"
                && !e.morphology.contains("plate")
                && e.morphology != "fernlike_dendrite"
        );
        if let Some(of) = &e.duplicate_of {
            let a = std::fs::read(cfg.out.join(&e.file)).unwrap();
            assert_eq!(
                a,
                std::fs::read(cfg.out.join(of)).unwrap(),
                "duplicate is not byte-identical"
            );
            assert!(!e.rare);
        }
        if let Some(of) = &e.near_duplicate_of {
            let a = std::fs::read(cfg.out.join(&e.file)).unwrap();
            assert_ne!(a, std::fs::read(cfg.out.join(of)).unwrap());
        }
    }
    assert_eq!(
        manifest
            .images
            .iter()
            .filter(|e| e.duplicate_of.is_some())
            .count(),
        2
    );
    assert_eq!(
        manifest
            .images
            .iter()
            .filter(|e| e.near_duplicate_of.is_some())
            .count(),
        1
    );
    let json: Manifest =
        serde_json::from_slice(&std::fs::read(cfg.out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(json.images.len(), 15);
    std::fs::remove_dir_all(&cfg.out).unwrap();
}

#[test]
fn output_does_not_depend_on_thread_count() {
    let one = small_config(temp_dir("one"));
    let many = small_config(temp_dir("many"));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let a = pool.install(|| generate(&one, &|_, _| {})).unwrap();
    let b = generate(&many, &|_, _| {}).unwrap();
    for (x, y) in a.images.iter().zip(&b.images) {
        assert_eq!(x.file, y.file);
        assert_eq!(
            std::fs::read(one.out.join(&x.file)).unwrap(),
            std::fs::read(many.out.join(&y.file)).unwrap()
        );
    }
    std::fs::remove_dir_all(&one.out).unwrap();
    std::fs::remove_dir_all(&many.out).unwrap();
}

#[test]
fn bad_rare_fraction_is_an_error() {
    let mut cfg = small_config(temp_dir("bad"));
    cfg.rare_fraction = 1.5;
    assert!(matches!(
        generate(&cfg, &|_, _| {}),
        Err(SynthError::Config(_))
    ));
}
