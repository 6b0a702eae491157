//! Ranking quality on real snow crystals beside photos and the bundled snowflakes, per
//! lever of the crystals profile (the README's "Real snow crystals" table).
//!
//! Planted outliers, the same protocol for every labelled set: each class with at least
//! 10 images is the common class in turn; up to 60 of its images plus 5 % (at least 1)
//! drawn from the set's other classes; `DRAWS` draws per class; AUROC and average
//! precision of the planted images, averaged over draws and classes. Sets: the three
//! instruments of `../shared/datasets/realsnow-dev` (masc, cpi, pip: evaluation only, read
//! in place), fashion200 (real photos, 20 of a class plus 2 planted, as the
//! planted_outliers bench) and the bundled snowflakes (their 5 rare crystals).
//! Every draw is ranked as its own folder: traits are standardised over the drawn images.
//!
//! Run: `cargo bench --bench real_snow` (prints a markdown table). Sets that are absent
//! are reported as skipped. With `SNOWSCOPE_VGG16=FILE` (the weights made by
//! `weights/convert_vgg16_hed.py`) the VGG16 rows are filled in as well; with
//! `SNOWSCOPE_WEIGHTS=weights/efficientnet-lite0.safetensors` every EfficientNet row runs on
//! the FP32 weights instead of the bundled half-precision ones.

#[path = "common/mean.rs"]
mod mean;

#[path = "common/precision.rs"]
mod precision;

use mean::Mean;
use precision::{cache_precision, precision};
use snowscope::eval::{is_listed, read_truth};
use snowscope::model::{Arch, ModelConfig, Pooling};
use snowscope::pipeline::{CacheMode, FeatureSet, PipelineConfig, compute_features};
use snowscope::profile::{self, Fusion, Profile};
use snowscope::rank::{RankConfig, rank};
use snowscope::rng::Rng;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;

const DRAWS: usize = 10;

fn features_with(dir: &Path, model: ModelConfig) -> FeatureSet {
    let cfg = PipelineConfig {
        model,
        batch_size: 32,
        threads: 2,
        cache: CacheMode::Default,
        cache_precision: cache_precision(),
    };
    compute_features(dir, &cfg, &AtomicBool::new(false), &mut |_| {}).expect("features")
}

/// The features of one folder from every source a lever reads (same images, same order).
struct Sets {
    /// The default model: `stage6` and `head` avg-pooled, and the traits.
    default: FeatureSet,
    /// EfficientNet-Lite0's head map flattened (the tutorial's geometry on today's model).
    head_map: FeatureSet,
    /// VGG16 `block5_conv3` flattened, and avg-pooled, when `SNOWSCOPE_VGG16` names the
    /// weights made by `weights/convert_vgg16_hed.py`.
    vgg: Option<(FeatureSet, FeatureSet)>,
}

/// `with_vgg`: VGG16 runs at about 2 s an image on 2 cores, so only the real sets get it.
fn features(dir: &Path, with_vgg: bool) -> Sets {
    // `SNOWSCOPE_WEIGHTS=FILE` measures other EfficientNet-Lite0 weights (the FP32 file
    // against the bundled half-precision one).
    let efficientnet = std::env::var_os("SNOWSCOPE_WEIGHTS").map(std::path::PathBuf::from);
    let flat = |arch, layer: &str| ModelConfig {
        arch,
        layer: Some(layer.into()),
        pooling: Pooling::None,
        weights: match arch {
            Arch::Vgg16 => std::env::var_os("SNOWSCOPE_VGG16").map(Into::into),
            Arch::EfficientNetLite0 => efficientnet.clone(),
        },
        precision: precision(),
        ..ModelConfig::default()
    };
    let vgg = std::env::var_os("SNOWSCOPE_VGG16")
        .filter(|_| with_vgg)
        .map(|_| {
            let map = features_with(dir, flat(Arch::Vgg16, "block5_conv3"));
            let avg = average_positions(&map, 512);
            (map, avg)
        });
    Sets {
        default: features_with(
            dir,
            ModelConfig {
                weights: efficientnet.clone(),
                precision: precision(),
                ..ModelConfig::default()
            },
        ),
        head_map: features_with(dir, flat(Arch::EfficientNetLite0, "head")),
        vgg,
    }
}

/// A flattened C x H x W map set turned into its per-channel means (avg pooling).
fn average_positions(map: &FeatureSet, channels: usize) -> FeatureSet {
    let positions = map.dim / channels;
    let rows = map.features().expect("features of a fresh cache");
    let data = rows
        .iter(map.items.len())
        .flat_map(|row| {
            row.chunks_exact(positions)
                .map(|c| c.iter().sum::<f32>() / positions as f32)
                .collect::<Vec<_>>()
        })
        .collect();
    FeatureSet::in_memory(
        map.root.clone(),
        map.items.clone(),
        channels,
        data,
        map.traits.clone(),
        map.model.clone(),
        map.model_id.clone(),
        Vec::new(),
    )
}

/// A lever: how the drawn images become search vectors.
#[derive(Clone, Copy)]
enum Lever {
    Fixed(&'static str, Fusion<'static>),
    /// Whatever `--profile auto` chooses for the drawn images.
    Auto,
    /// The tutorial's geometry (raw features, squared L2 to the closest match) on a map.
    Tutorial(&'static str, Source),
    /// A source's whole row, fused with the traits at this weight (cosine geometry).
    Other(&'static str, Source, f32),
}

#[derive(Clone, Copy)]
enum Source {
    HeadMap,
    VggMap,
    VggAvg,
}

impl Sets {
    fn source(&self, source: Source) -> Option<&FeatureSet> {
        match source {
            Source::HeadMap => Some(&self.head_map),
            Source::VggMap => self.vgg.as_ref().map(|v| &v.0),
            Source::VggAvg => self.vgg.as_ref().map(|v| &v.1),
        }
    }
}

fn levers() -> Vec<Lever> {
    let f = |layer, trait_weight| Fusion {
        layer,
        trait_weight,
    };
    let mut out = vec![
        Lever::Fixed("head (photos profile; before)", f(Some("head"), 0.0)),
        Lever::Fixed("head + traits 0.1", f(Some("head"), 0.1)),
        Lever::Fixed("stage6 (mid-level CNN)", f(Some("stage6"), 0.0)),
        Lever::Fixed("stage6+head concatenated", f(Some("stage6+head"), 0.0)),
        Lever::Fixed("traits alone", f(None, 1.0)),
    ];
    for (name, w) in [
        ("stage6 + traits 0.05", 0.05),
        ("stage6 + traits 0.1 (crystals profile)", 0.1),
        ("stage6 + traits 0.15", 0.15),
        ("stage6 + traits 0.2", 0.2),
    ] {
        out.push(Lever::Fixed(name, f(Some("stage6"), w)));
    }
    out.push(Lever::Auto);
    out.push(Lever::Tutorial(
        "tutorial: head map flattened, raw, nn",
        Source::HeadMap,
    ));
    out.push(Lever::Tutorial(
        "tutorial: VGG16 block5_conv3 flattened, raw, nn",
        Source::VggMap,
    ));
    out.push(Lever::Other(
        "VGG16 block5_conv3 avg-pooled",
        Source::VggAvg,
        0.0,
    ));
    out.push(Lever::Other(
        "VGG16 block5_conv3 avg-pooled + traits 0.1",
        Source::VggAvg,
        0.1,
    ));
    out
}

fn name(lever: &Lever) -> &'static str {
    match lever {
        Lever::Fixed(name, _) | Lever::Tutorial(name, _) | Lever::Other(name, _, _) => name,
        Lever::Auto => "auto (the default)",
    }
}

/// Ranks the subset `rows` with `lever`: positive flags in ranked order, `None` when the
/// lever's features are not available.
fn ranked_flags(
    sets: &Sets,
    rows: &[usize],
    positive: &dyn Fn(usize) -> bool,
    lever: &Lever,
) -> Option<Vec<bool>> {
    let count = snowscope::traits::COUNT;
    let default = &sets.default;
    let traits: Vec<f32> = rows
        .iter()
        .flat_map(|&r| default.traits[r * count..(r + 1) * count].iter().copied())
        .collect();
    let (set, fusion, cfg) = match *lever {
        Lever::Fixed(_, fusion) => (default, fusion, RankConfig::default()),
        Lever::Auto => (
            default,
            profile::choose(Profile::Auto, &traits).profile.fusion(),
            RankConfig::default(),
        ),
        Lever::Tutorial(_, source) => {
            let whole = Fusion {
                layer: Some("all"),
                trait_weight: 0.0,
            };
            (sets.source(source)?, whole, RankConfig::tutorial())
        }
        Lever::Other(_, source, trait_weight) => {
            let fusion = Fusion {
                layer: Some("all"),
                trait_weight,
            };
            (sets.source(source)?, fusion, RankConfig::default())
        }
    };
    let features = set.features().expect("features of a fresh cache");
    let data: Vec<f32> = rows
        .iter()
        .flat_map(|&r| features.row(r).into_owned())
        .collect();
    let block = fusion.layer.map(|layer| match layer {
        "stage6+head" | "all" => (0, set.dim),
        layer => set.block(layer),
    });
    let (vectors, dim) = profile::embedding(&fusion, block, &data, set.dim, &traits, cfg.normalise);
    let paths: Vec<String> = rows.iter().map(|&r| set.items[r].rel.clone()).collect();
    let hashes: Vec<&str> = rows.iter().map(|&r| set.items[r].hash.as_str()).collect();
    let cfg = RankConfig {
        normalise: false,
        ..cfg
    };
    Some(
        rank(&paths, &hashes, &vectors, dim, &cfg)
            .images
            .iter()
            .map(|i| positive(rows[i.index]))
            .collect(),
    )
}

/// Planted-outlier draws over labelled images: (rows, label) -> per-lever quality.
fn planted(
    sets: &Sets,
    label: &[String],
    common_max: usize,
    planted_of: &dyn Fn(usize) -> usize,
    results: &mut [Mean],
) {
    let mut classes: Vec<&String> = label.iter().collect();
    classes.sort();
    classes.dedup();
    let mut rng = Rng::new(7);
    // Each class is weighted alike, whatever its size.
    let mut per_class = vec![Vec::new(); results.len()];
    for class in classes {
        let inliers: Vec<usize> = (0..label.len()).filter(|&i| &label[i] == class).collect();
        let others: Vec<usize> = (0..label.len()).filter(|&i| &label[i] != class).collect();
        if inliers.len() < 10 || others.is_empty() {
            continue;
        }
        let mut class_means = vec![Mean::default(); results.len()];
        for _ in 0..DRAWS {
            let common = inliers.len().min(common_max);
            let mut rows = pick(&mut rng, &inliers, common);
            rows.extend(pick(
                &mut rng,
                &others,
                planted_of(common).min(others.len()),
            ));
            for (lever, mean) in levers().iter().zip(&mut class_means) {
                if let Some(flags) = ranked_flags(sets, &rows, &|r| &label[r] != class, lever) {
                    mean.add(&flags);
                }
            }
        }
        for (all, mean) in per_class.iter_mut().zip(class_means) {
            all.push(mean);
        }
    }
    for (result, class_means) in results.iter_mut().zip(per_class) {
        let mut m = Mean::default();
        class_means.into_iter().for_each(|c| m.add_mean(c));
        *result = m;
    }
}

/// `count` distinct elements of `from`, in random order.
fn pick(rng: &mut Rng, from: &[usize], count: usize) -> Vec<usize> {
    let mut pool = from.to_vec();
    for i in 0..count {
        let j = i + rng.below(pool.len() - i);
        pool.swap(i, j);
    }
    pool.truncate(count);
    pool
}

fn folder_labels(sets: &Sets) -> Vec<String> {
    sets.default
        .items
        .iter()
        .map(|i| i.rel.split('/').next().unwrap_or("").to_string())
        .collect()
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/datasets");
    let n = levers().len();
    let mut columns: Vec<(String, Vec<Mean>)> = Vec::new();
    for instrument in ["masc", "cpi", "pip"] {
        let dir = shared.join("realsnow-dev").join(instrument);
        let mut results = vec![Mean::default(); n];
        if dir.is_dir() {
            let sets = features(&dir, true);
            let label = folder_labels(&sets);
            planted(
                &sets,
                &label,
                60,
                &|common| (common as f64 * 0.05).round().max(1.0) as usize,
                &mut results,
            );
        } else {
            eprintln!("{} is absent: column skipped", dir.display());
        }
        columns.push((instrument.to_string(), results));
    }
    let fashion = shared.join("fashion200");
    let mut results = vec![Mean::default(); n];
    if fashion.is_dir() {
        let sets = features(&fashion, false);
        let classes: Vec<HashMap<String, String>> =
            serde_json::from_str(&std::fs::read_to_string(fashion.join("classes.json")).unwrap())
                .unwrap();
        let class_of: HashMap<String, String> = classes.into_iter().flatten().collect();
        let label: Vec<String> = sets
            .default
            .items
            .iter()
            .map(|i| class_of[i.rel.trim_end_matches(".jpg")].clone())
            .collect();
        planted(&sets, &label, 20, &|_| 2, &mut results);
    } else {
        eprintln!("{} is absent: column skipped", fashion.display());
    }
    columns.push(("fashion200".into(), results));
    let snow = root.join("data/snowflakes");
    let truth = read_truth(&snow.join("manifest.json")).expect("manifest");
    let sets = features(&snow, false);
    let rows: Vec<usize> = (0..sets.default.items.len()).collect();
    let results = levers()
        .iter()
        .map(|lever| {
            let mut m = Mean::default();
            let rare = |r: usize| is_listed(&truth, &sets.default.items[r].rel);
            if let Some(flags) = ranked_flags(&sets, &rows, &rare, lever) {
                m.add(&flags);
            }
            m
        })
        .collect();
    columns.push(("snowflakes".into(), results));

    println!("AUROC / average precision of planted outliers, {DRAWS} draws per class\n");
    println!("| lever | masc | cpi | pip | real mean (min) | fashion200 | snowflakes |");
    println!("|---|---|---|---|---|---|---|");
    for (i, lever) in levers().iter().enumerate() {
        let real: Vec<f64> = columns[..3].iter().filter_map(|c| c.1[i].auroc()).collect();
        let summary = if real.is_empty() {
            "-".into()
        } else {
            let min = real.iter().copied().fold(f64::INFINITY, f64::min);
            format!(
                "**{:.3}** ({min:.3})",
                real.iter().sum::<f64>() / real.len() as f64
            )
        };
        println!(
            "| {} | {} | {} | {} | {summary} | {} | {} |",
            name(lever),
            columns[0].1[i].cell(),
            columns[1].1[i].cell(),
            columns[2].1[i].cell(),
            columns[3].1[i].cell(),
            columns[4].1[i].cell(),
        );
    }
}
