//! Descriptors on shapes whose answers are known, and images without a readable particle.

use super::*;
use image::Rgb;

/// A white shape on black: `inside(x, y)` in a `size` x `size` image, coordinates centred.
fn shape(size: u32, inside: impl Fn(f64, f64) -> bool) -> RgbImage {
    let c = size as f64 / 2.0;
    RgbImage::from_fn(size, size, |x, y| {
        if inside(x as f64 + 0.5 - c, y as f64 + 0.5 - c) {
            Rgb([230, 230, 230])
        } else {
            Rgb([10, 10, 10])
        }
    })
}

fn disc(r: f64) -> impl Fn(f64, f64) -> bool {
    move |x, y| x.hypot(y) <= r
}

/// A regular hexagon of circumradius `r` (a point is inside when it is inside all six
/// half-planes of the edges).
fn hexagon(r: f64) -> impl Fn(f64, f64) -> bool {
    move |x, y| {
        (0..6).all(|k| {
            let a = std::f64::consts::PI / 3.0 * k as f64 + std::f64::consts::PI / 6.0;
            x * a.cos() + y * a.sin() <= r * (3f64).sqrt() / 2.0
        })
    }
}

/// Six thin arms of length `r` from the centre.
fn star(r: f64) -> impl Fn(f64, f64) -> bool {
    move |x, y| {
        let d = x.hypot(y);
        d <= r
            && (0..6).any(|k| {
                let a = std::f64::consts::PI / 3.0 * k as f64;
                let along = x * a.cos() + y * a.sin();
                let across = -x * a.sin() + y * a.cos();
                along >= 0.0 && across.abs() <= 2.5
            })
    }
}

fn t(image: &RgbImage, name: &str) -> f32 {
    measure(image, 1.0).get(name).unwrap()
}

#[test]
fn a_disc_is_round_solid_and_its_area_is_pi_r_squared() {
    let image = shape(200, disc(60.0));
    let area = t(&image, "area");
    let expected = std::f32::consts::PI * 3600.0;
    assert!((area - expected).abs() / expected < 0.01, "area {area}");
    assert!((t(&image, "max_dimension") - 120.0).abs() < 3.0);
    assert!(t(&image, "solidity") > 0.97);
    assert!(
        t(&image, "circularity") > 0.9,
        "{}",
        t(&image, "circularity")
    );
    assert!(t(&image, "aspect_ratio") > 0.98);
    assert!(t(&image, "radial_variation") < 0.03);
    assert!(t(&image, "roughness") < 1.1);
    assert_eq!(t(&image, "particles"), 1.0);
    assert!(t(&image, "transparency") < 0.001);
    assert!((t(&image, "contrast") - 220.0 / 255.0).abs() < 0.01);
}

#[test]
fn a_hexagon_has_sixfold_symmetry_and_stays_convex() {
    let image = shape(200, hexagon(70.0));
    assert!(t(&image, "solidity") > 0.97);
    let sixfold = t(&image, "sixfold_symmetry");
    assert!(
        sixfold > 0.5,
        "a hexagon's outline varies with period 60 degrees: {sixfold}"
    );
    let disc_sixfold = t(&shape(200, disc(60.0)), "sixfold_symmetry");
    assert!(sixfold > disc_sixfold);
}

#[test]
fn a_six_armed_star_is_sixfold_not_solid_and_rough() {
    let image = shape(240, star(100.0));
    let sixfold = t(&image, "sixfold_symmetry");
    assert!(sixfold > 0.5, "{sixfold}");
    assert!(t(&image, "solidity") < 0.3, "{}", t(&image, "solidity"));
    assert!(t(&image, "circularity") < 0.2);
    assert!(t(&image, "radial_variation") > 0.5);
    assert!(t(&image, "roughness") > 1.5);
}

#[test]
fn a_needle_is_long_and_thin() {
    let image = shape(200, |x, y| x.abs() <= 80.0 && y.abs() <= 3.0);
    assert!(
        t(&image, "aspect_ratio") < 0.06,
        "{}",
        t(&image, "aspect_ratio")
    );
    assert!((t(&image, "max_dimension") - 160.0).abs() < 3.0);
    assert!(t(&image, "solidity") > 0.95);
}

#[test]
fn dark_on_bright_is_segmented_like_bright_on_dark() {
    let bright = shape(120, hexagon(40.0));
    let mut dark = bright.clone();
    dark.pixels_mut().for_each(|p| p.0 = p.0.map(|v| 255 - v));
    let (a, b) = (measure(&bright, 1.0), measure(&dark, 1.0));
    assert_eq!(a.get("area"), b.get("area"));
    assert_eq!(a.get("solidity"), b.get("solidity"));
}

#[test]
fn sizes_are_in_original_pixels() {
    // The same disc decoded at half size (scale 2) or measured after the internal shrink
    // of a large image reports the same area in original pixels.
    let small = shape(100, disc(30.0));
    let full = shape(200, disc(60.0));
    let large = shape(1000, disc(300.0));
    let a_small = t(&small, "area");
    let a_scaled = measure(&small, 2.0).get("area").unwrap();
    assert!((a_scaled - 4.0 * a_small).abs() < 1.0);
    assert!((a_scaled - t(&full, "area")).abs() / t(&full, "area") < 0.02);
    let a_large = t(&large, "area");
    let expected = std::f32::consts::PI * 90_000.0;
    assert!((a_large - expected).abs() / expected < 0.02, "{a_large}");
}

#[test]
fn holes_count_as_transparency_and_particles_are_counted() {
    let ring = shape(200, |x, y| (40.0..=70.0).contains(&x.hypot(y)));
    let tr = t(&ring, "transparency");
    let expected = 1600.0 / 4900.0;
    assert!((tr - expected).abs() < 0.03, "{tr}");
    let pair = shape(200, |x, y| {
        (x - 40.0).hypot(y) < 20.0 || (x + 50.0).hypot(y) < 15.0
    });
    assert_eq!(t(&pair, "particles"), 2.0);
}

#[test]
fn images_without_a_particle_get_defined_traits() {
    let uniform = RgbImage::from_pixel(50, 40, Rgb([128, 128, 128]));
    let one = RgbImage::from_pixel(1, 1, Rgb([200, 10, 10]));
    let everything = shape(64, |_, _| true);
    let touching = shape(64, |x, y| x.abs() < 30.0 || y.abs() < 30.0);
    let mut rng = crate::rng::Rng::new(3);
    let noise = RgbImage::from_fn(97, 61, |_, _| {
        Rgb([
            rng.below(256) as u8,
            rng.below(256) as u8,
            rng.below(256) as u8,
        ])
    });
    for image in [&uniform, &one, &everything, &touching, &noise] {
        let traits = measure(image, 1.0);
        assert!(traits.values.iter().all(|v| v.is_finite()), "{traits:?}");
    }
    assert_eq!(measure(&uniform, 1.0).values, [0.0; COUNT]);
    assert_eq!(measure(&one, 1.0).values, [0.0; COUNT]);
    assert_eq!(measure(&everything, 1.0).values, [0.0; COUNT]);
}

#[test]
fn standardised_traits_are_finite_and_constant_columns_are_zero() {
    let mut rows = Vec::new();
    for i in 0..10 {
        let mut v = [1.0; COUNT];
        v[0] = if i == 9 { 1e30 } else { 100.0 + i as f32 };
        v[3] = if i == 9 { 0.9 } else { 0.5 };
        rows.extend_from_slice(&v);
    }
    let z = standardise(&rows);
    assert!(z.iter().all(|v| v.is_finite() && v.abs() <= 6.0));
    assert!(
        z.chunks(COUNT).all(|r| r[1] == 0.0),
        "a constant column says nothing"
    );
    assert_eq!(z[9 * COUNT], 6.0, "the extreme value is clipped");
    assert!(z[0] < 0.0 && z[COUNT] < z[2 * COUNT]);
    // A column whose MAD is 0 falls back to the standard deviation.
    assert!(z[9 * COUNT + 3] > 2.5 && z[3] == 0.0);
}

#[test]
fn hue_variation_tells_one_tint_from_many_colours() {
    let blue = |v: u8| Rgb([v / 4, v / 2, v]);
    let tinted = RgbImage::from_fn(64, 64, |x, _| blue(100 + 2 * x as u8));
    let gray = shape(64, disc(20.0));
    let colours = RgbImage::from_fn(64, 64, |x, y| match (x < 32, y < 32) {
        (true, true) => Rgb([220, 40, 40]),
        (false, true) => Rgb([40, 200, 40]),
        (true, false) => Rgb([40, 40, 220]),
        (false, false) => Rgb([230, 220, 30]),
    });
    assert_eq!(t(&gray, "hue_variation"), 0.0);
    assert!(t(&tinted, "hue_variation") < 0.01);
    assert!(t(&colours, "hue_variation") > 0.5);
}
