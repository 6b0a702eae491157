//! Explanations end to end: a snowflake with a pasted patch, among bundled snowflakes, is
//! explained by a region around the patch and by its traits, in JSON and CSV.

use image::Rgb;
use std::path::Path;
use std::process::Command;

/// The patch: 48 x 48 red pixels with their top-left corner at (20, 20).
const PATCH: (u32, u32, u32) = (20, 20, 48);

fn folder_with_a_patched_copy(dir: &Path) {
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/snowflakes");
    let mut names: Vec<_> = std::fs::read_dir(&bundled)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".png"))
        .collect();
    names.sort();
    for name in &names[..40] {
        std::fs::copy(bundled.join(name), dir.join(name)).unwrap();
    }
    let mut copy = image::open(bundled.join(&names[6])).unwrap().to_rgb8();
    let (x0, y0, side) = PATCH;
    for y in y0..y0 + side {
        for x in x0..x0 + side {
            copy.put_pixel(x, y, Rgb([220, 20, 20]));
        }
    }
    copy.save(dir.join("patched_copy.png")).unwrap();
}

fn rank(dir: &Path, cache: &Path, format: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_snowscope"))
        .arg("rank")
        .arg(dir)
        .args(["--format", format, "--top", "0", "--cache-dir"])
        .arg(cache)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_region_finds_a_pasted_patch_and_the_traits_come_with_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    folder_with_a_patched_copy(dir.path());
    let json: serde_json::Value =
        serde_json::from_str(&rank(dir.path(), cache.path(), "json")).unwrap();
    let images = json["images"].as_array().unwrap();
    assert_eq!(images.len(), 41);
    let patched = images
        .iter()
        .find(|i| i["path"] == "patched_copy.png")
        .unwrap();
    let explanation = &patched["explanation"];
    let region: Vec<f64> = explanation["region"]
        .as_array()
        .unwrap_or_else(|| panic!("a region: {explanation}"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let centre = ((region[0] + region[2]) / 2.0, (region[1] + region[3]) / 2.0);
    let (x0, y0, side) = PATCH;
    let patch_centre = (x0 as f64 + side as f64 / 2.0, y0 as f64 + side as f64 / 2.0);
    let off = ((centre.0 - patch_centre.0).powi(2) + (centre.1 - patch_centre.1).powi(2)).sqrt();
    eprintln!("region {region:?}, centre {centre:?}: {off:.1} px from the patch's");
    assert!(
        off <= 24.0,
        "region {region:?} is {off:.1} px from the patch"
    );
    let traits = explanation["traits"].as_array().unwrap();
    assert!(!traits.is_empty());
    for t in traits {
        assert!(t["name"].is_string(), "{t}");
        assert!(t["value"].is_number(), "{t}");
        let p = t["percentile"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&p), "{t}");
    }
    // Every image is explained, each region inside its image (224 x 224).
    for image in images {
        let e = &image["explanation"];
        let r = e["region"].as_array().unwrap_or_else(|| panic!("{image}"));
        let r: Vec<u64> = r.iter().map(|v| v.as_u64().unwrap()).collect();
        assert!(
            r[0] < r[2] && r[1] < r[3] && r[2] <= 224 && r[3] <= 224,
            "{image}"
        );
    }

    // The regions are remembered beside the cache, and the next run reads them.
    let remembered = std::fs::read_dir(cache.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().ends_with(".regions.json"));
    assert!(remembered, "a .regions.json beside the feature cache");

    // CSV: the same region, and the top trait.
    let csv = rank(dir.path(), cache.path(), "csv");
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = csv
        .lines()
        .find(|l| l.contains("patched_copy.png"))
        .unwrap()
        .split(',')
        .collect();
    let field = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    let csv_region: Vec<f64> = ["region_x0", "region_y0", "region_x1", "region_y1"]
        .iter()
        .map(|c| field(c).parse().unwrap())
        .collect();
    assert_eq!(csv_region, region);
    assert_eq!(field("top_trait"), traits[0]["name"].as_str().unwrap());
    assert_eq!(field("marked"), "false");
}

#[test]
fn no_explain_leaves_the_explanations_out() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    for (i, c) in [[200, 30, 30], [30, 200, 30], [30, 30, 200]]
        .iter()
        .enumerate()
    {
        image::RgbImage::from_pixel(32, 32, Rgb(*c))
            .save(dir.path().join(format!("{i}.png")))
            .unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_snowscope"))
        .arg("rank")
        .arg(dir.path())
        .args(["--format", "json", "--no-explain", "--cache-dir"])
        .arg(cache.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for image in json["images"].as_array().unwrap() {
        assert!(image.get("explanation").is_none(), "{image}");
        assert_eq!(image["marked"], false);
    }
}
