//! snowscope command line: `explore` (default), `rank`, `features`, `eval`, `synth`.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use snowscope::export::{self, Format};
use snowscope::model::{Arch, DeviceKind, ModelConfig, Pooling};
use snowscope::pipeline::{self, CacheMode, FeatureSet, PipelineConfig};
use snowscope::rank::{self, RankConfig, ScoreKind};
use snowscope::sanitize::sanitize;
use snowscope::tui::{PreviewMode, TuiOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod progress_bar;

/// Exit codes (also in the README).
const EXIT_ERROR: u8 = 1;
const EXIT_SKIPPED: u8 = 3;
const EXIT_CANCELLED: u8 = 130;

#[derive(Parser)]
#[command(
    name = "snowscope",
    version,
    about = "Find the most unique images in a folder: CNN features (candle), exact nearest neighbours, ranked by the distance to their closest matches.",
    after_help = "Exit codes: 0 ranked everything; 1 error or nothing to rank; 2 bad command line; 3 ranked, but some files were skipped (listed with their reasons); 130 cancelled by Ctrl-C, SIGTERM or SIGHUP (finished features stay in the cache)."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Folder to explore (default: the bundled snowflakes).
    dir: Option<PathBuf>,
    #[command(flatten)]
    extract: ExtractArgs,
    #[command(flatten)]
    ranking: RankArgs,
    #[command(flatten)]
    view: ViewArgs,
}

#[derive(Args, Clone)]
struct ViewArgs {
    /// Image previews in the explorer: auto asks the terminal (kitty, sixel, iTerm2) and
    /// falls back to halfblocks.
    #[arg(long, value_enum, default_value = "auto", global = true)]
    preview: PreviewMode,
    /// Log file of the explorer (default: snowscope.log in the cache folder).
    #[arg(long, global = true)]
    log_file: Option<PathBuf>,
}

#[derive(Args)]
struct ExploreCmd {
    /// Folder of images (default: the bundled snowflakes).
    dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// The terminal explorer (the default): progress, ranking table, boxplot, previews.
    Explore(ExploreCmd),
    /// Rank a folder headless and print the most unique images (table, CSV or JSON).
    Rank(RankCmd),
    /// Write the feature matrix of a folder as .npy plus a sidecar file of paths.
    Features(FeaturesCmd),
    /// Measure ranking quality against known outliers (AUROC, average precision, precision@k).
    Eval(EvalCmd),
    /// Grow synthetic snow crystals (Reiter's cellular model) and write PNGs + manifest.json.
    Synth(SynthCmd),
}

#[derive(Args, Clone)]
struct ExtractArgs {
    /// Backbone network.
    #[arg(long, value_enum, default_value = "efficientnet-lite0", global = true)]
    model: Arch,
    /// Weights file (safetensors); default: the bundled EfficientNet-Lite0 ImageNet weights.
    #[arg(long, global = true)]
    weights: Option<PathBuf>,
    /// Layer to tap: EfficientNet `head` (default), `stage1`..`stage7`, `block0`..`block15`; VGG16 `block5_conv3` (default) etc.
    #[arg(long, global = true)]
    layer: Option<String>,
    /// How the feature map becomes one vector.
    #[arg(long, value_enum, default_value = "avg", global = true)]
    pooling: Pooling,
    /// Where the model runs.
    #[arg(long, value_enum, default_value = "cpu", global = true)]
    device: DeviceKind,
    /// Images per model run.
    #[arg(long, default_value_t = 32, global = true)]
    batch_size: usize,
    /// Worker threads for decoding and the model (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Feature cache folder (default: the user's cache folder, e.g. ~/.cache/snowscope).
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
    /// Neither read nor write the feature cache.
    #[arg(long, global = true)]
    no_cache: bool,
}

#[derive(Args, Clone)]
struct RankArgs {
    /// Neighbours for the k-NN and LOF scores.
    #[arg(long, default_value_t = RankConfig::default().k, global = true)]
    k: usize,
    /// Score that orders the images: nn = distance to the closest match (the tutorial's),
    /// knn = mean distance to the k nearest (default: best measured), lof = local outlier factor.
    #[arg(long, value_enum, default_value = "knn", global = true)]
    score: ScoreKind,
    /// Use raw features instead of L2-normalised ones (cosine geometry).
    #[arg(long, global = true)]
    raw: bool,
    /// Which features rank the folder: crystals (mid-level CNN features fused with the
    /// particles' morphology), photos (the CNN's head embedding), or auto (crystals when most
    /// images show one particle on a plain background).
    #[arg(long, value_enum, default_value = "auto", global = true)]
    profile: ProfileArg,
    /// The tutorial's exact method: flattened map (VGG16 block5_conv3 when --model vgg16 --weights are given), raw features, squared L2 distance to the closest match.
    #[arg(long, global = true)]
    tutorial: bool,
}

#[derive(Args)]
struct RankCmd {
    /// Folder of images (default: the bundled snowflakes).
    dir: Option<PathBuf>,
    /// How many images to print (0 = all).
    #[arg(long, default_value_t = 10)]
    top: usize,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Rank precomputed embeddings (.npy, one row per image) instead of a folder.
    #[arg(long, requires = "paths")]
    features: Option<PathBuf>,
    /// Text file with one path per row of --features.
    #[arg(long, requires = "features")]
    paths: Option<PathBuf>,
}

#[derive(Args)]
struct FeaturesCmd {
    dir: PathBuf,
    /// Output .npy file; the paths go to the same name with `.paths.txt`.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct EvalCmd {
    /// Folder of images (default: the bundled snowflakes).
    dir: Option<PathBuf>,
    /// Known outliers: a synth manifest.json (`rare: true`) or a text file of paths.
    #[arg(long)]
    truth: PathBuf,
}

#[derive(Args)]
struct SynthCmd {
    #[arg(long, default_value_t = 180)]
    count: usize,
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Fraction of rare crystals (twins, broken arms, asymmetric, aggregates, odd habits).
    #[arg(long, default_value_t = 0.03)]
    rare_fraction: f64,
    /// Image side in pixels.
    #[arg(long, default_value_t = 256)]
    size: u32,
    /// Extra byte-identical copies of common crystals.
    #[arg(long, default_value_t = 3)]
    duplicates: usize,
    /// Extra re-renders of common crystals with other jitter and noise.
    #[arg(long, default_value_t = 3)]
    near_duplicates: usize,
    #[arg(long)]
    out: PathBuf,
}

/// The bundled snowflakes: beside the sources, or `data/snowflakes` in the working folder.
fn default_dir() -> PathBuf {
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/snowflakes");
    if bundled.is_dir() {
        bundled
    } else {
        PathBuf::from("data/snowflakes")
    }
}

impl ExtractArgs {
    fn pipeline(&self, tutorial: bool) -> PipelineConfig {
        let threads = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        PipelineConfig {
            model: ModelConfig {
                arch: self.model,
                weights: self.weights.clone(),
                layer: self.layer.clone(),
                // The tutorial flattened the whole map.
                pooling: if tutorial {
                    Pooling::None
                } else {
                    self.pooling
                },
                device: self.device,
            },
            batch_size: self.batch_size,
            threads,
            cache: match (&self.cache_dir, self.no_cache) {
                (_, true) => CacheMode::Off,
                (Some(dir), false) => CacheMode::Dir(dir.clone()),
                (None, false) => CacheMode::Default,
            },
        }
    }
}

impl RankArgs {
    fn config(&self) -> RankConfig {
        if self.tutorial {
            return RankConfig::tutorial();
        }
        RankConfig {
            k: self.k.max(1),
            normalise: !self.raw,
            score: self.score,
            squared: false,
            profile: self.profile.into(),
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ProfileArg {
    Auto,
    Crystals,
    Photos,
}

impl From<ProfileArg> for snowscope::profile::Profile {
    fn from(p: ProfileArg) -> Self {
        match p {
            ProfileArg::Auto => Self::Auto,
            ProfileArg::Crystals => Self::Crystals,
            ProfileArg::Photos => Self::Photos,
        }
    }
}

/// Ctrl-C / SIGTERM / SIGHUP set this flag; long work stops at the next batch and keeps
/// what is finished.
fn cancel_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let _ = ctrlc::set_handler(move || f.store(true, Ordering::Relaxed));
    flag
}

/// Extracts (or loads from the cache) the features of `dir` with a kdam bar on stderr.
fn features_of(
    dir: &Path,
    extract: &ExtractArgs,
    tutorial: bool,
    cancel: &AtomicBool,
) -> Result<FeatureSet> {
    let cfg = extract.pipeline(tutorial);
    let mut bar = progress_bar::Headless::new();
    let set = pipeline::compute_features(dir, &cfg, cancel, &mut |e| bar.event(e)).with_context(
        || {
            format!(
                "cannot extract features of {}",
                sanitize(&dir.display().to_string())
            )
        },
    )?;
    bar.finish();
    Ok(set)
}

fn report_skips(skipped: &[snowscope::scan::Skip]) {
    if skipped.is_empty() {
        return;
    }
    eprintln!("skipped {} file(s):", skipped.len());
    for s in skipped {
        eprintln!("  {}: {}", sanitize(&s.path), sanitize(&s.reason));
    }
}

fn write_output(text: &str, output: Option<&Path>) -> Result<()> {
    match output {
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", sanitize(&path.display().to_string()));
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// A feature set from a .npy matrix and a list of paths (embeddings made elsewhere).
fn precomputed_set(npy: &Path, list: &Path) -> Result<FeatureSet> {
    let (data, rows, dim) = snowscope::npy::read(npy)?;
    let text =
        std::fs::read_to_string(list).with_context(|| format!("cannot read {}", list.display()))?;
    let paths: Vec<&str> = text.lines().collect();
    if paths.len() != rows {
        bail!(
            "{} has {rows} rows but {} lists {} paths",
            npy.display(),
            list.display(),
            paths.len()
        );
    }
    // Without file contents, rows are distinct unless their features are identical.
    let items = paths
        .iter()
        .enumerate()
        .map(|(i, p)| pipeline::Item {
            rel: p.to_string(),
            path: PathBuf::from(p),
            hash: format!("row{i}"),
        })
        .collect();
    Ok(FeatureSet {
        root: list.parent().unwrap_or(Path::new(".")).to_path_buf(),
        items,
        dim,
        data,
        skipped: Vec::new(),
        cancelled: false,
        model: format!("precomputed {}", npy.display()),
        neighbour_cache: None,
        blocks: Vec::new(),
        traits: Vec::new(),
    })
}

fn run_rank(
    cmd: RankCmd,
    extract: &ExtractArgs,
    ranking: &RankArgs,
    cancel: &AtomicBool,
) -> Result<u8> {
    let set = match (&cmd.features, &cmd.paths) {
        (Some(npy), Some(list)) => precomputed_set(npy, list)?,
        _ => {
            let dir = cmd.dir.clone().unwrap_or_else(default_dir);
            let set = features_of(&dir, extract, ranking.tutorial, cancel)?;
            if set.cancelled {
                eprintln!("cancelled: finished work is kept in the cache; run again to continue");
                return Ok(EXIT_CANCELLED);
            }
            set
        }
    };
    report_skips(&set.skipped);
    if set.items.is_empty() {
        eprintln!("nothing to rank: no image could be read");
        return Ok(EXIT_ERROR);
    }
    if set.items.len() == 1 {
        eprintln!("only one image: it has no neighbour to compare with");
    }
    let ranked = rank::rank_features(&set, &ranking.config());
    let top = (cmd.top > 0).then_some(cmd.top);
    let text = export::render(&ranked, top, cmd.format, &set.model, &set.skipped);
    write_output(&text, cmd.output.as_deref())?;
    Ok(if set.skipped.is_empty() {
        0
    } else {
        EXIT_SKIPPED
    })
}

fn run_features(
    cmd: FeaturesCmd,
    extract: &ExtractArgs,
    tutorial: bool,
    cancel: &AtomicBool,
) -> Result<u8> {
    let set = features_of(&cmd.dir, extract, tutorial, cancel)?;
    report_skips(&set.skipped);
    if set.cancelled {
        eprintln!("cancelled: nothing written; finished work is kept in the cache");
        return Ok(EXIT_CANCELLED);
    }
    snowscope::npy::write(&cmd.out, &set.data, set.items.len(), set.dim)?;
    let list = cmd.out.with_extension("paths.txt");
    let paths: String = set
        .items
        .iter()
        .map(|i| i.path.display().to_string() + "\n")
        .collect();
    std::fs::write(&list, paths).with_context(|| format!("cannot write {}", list.display()))?;
    eprintln!(
        "wrote {} x {} features to {} and paths to {}",
        set.items.len(),
        set.dim,
        sanitize(&cmd.out.display().to_string()),
        sanitize(&list.display().to_string())
    );
    Ok(if set.skipped.is_empty() {
        0
    } else {
        EXIT_SKIPPED
    })
}

fn run_eval(
    cmd: EvalCmd,
    extract: &ExtractArgs,
    ranking: &RankArgs,
    cancel: &AtomicBool,
) -> Result<u8> {
    let truth = snowscope::eval::read_truth(&cmd.truth).map_err(anyhow::Error::msg)?;
    let dir = cmd.dir.unwrap_or_else(default_dir);
    let set = features_of(&dir, extract, ranking.tutorial, cancel)?;
    report_skips(&set.skipped);
    let ranked = rank::rank_features(&set, &ranking.config());
    let flags: Vec<bool> = ranked
        .images
        .iter()
        .map(|i| snowscope::eval::is_listed(&truth, &i.path))
        .collect();
    let Some(q) = snowscope::eval::quality(&flags) else {
        bail!(
            "the truth file names {} of the {} ranked images; need at least one outlier and one other",
            flags.iter().filter(|&&f| f).count(),
            flags.len()
        );
    };
    let cfg = ranking.config();
    println!("model            {}", set.model);
    println!(
        "score            {:?} (k = {}, {})",
        cfg.score,
        cfg.k,
        if cfg.normalise {
            "L2-normalised"
        } else {
            "raw"
        }
    );
    println!(
        "images           {} ({} known outliers)",
        q.total, q.positives
    );
    println!("AUROC            {:.4}", q.auroc);
    println!("average precision {:.4}", q.average_precision);
    println!("precision@{:<6} {:.4}", q.k, q.precision_at_k);
    let ranks: Vec<String> = ranked
        .images
        .iter()
        .filter(|i| snowscope::eval::is_listed(&truth, &i.path))
        .map(|i| i.rank.to_string())
        .collect();
    println!("outlier ranks    {}", ranks.join(", "));
    Ok(0)
}

fn run_explore(
    dir: Option<PathBuf>,
    extract: &ExtractArgs,
    ranking: &RankArgs,
    view: &ViewArgs,
) -> Result<u8> {
    let log_file = view.log_file.clone().or_else(|| {
        let dir = extract
            .cache_dir
            .clone()
            .unwrap_or_else(snowscope::store::default_cache_dir);
        std::fs::create_dir_all(&dir).ok()?;
        Some(dir.join("snowscope.log"))
    });
    snowscope::tui::run(TuiOptions {
        dir: dir.unwrap_or_else(default_dir),
        pipeline: extract.pipeline(ranking.tutorial),
        rank: ranking.config(),
        preview: view.preview,
        log_file,
    })
}

fn run(cli: Cli) -> Result<u8> {
    if let Some(threads) = cli.extract.threads {
        // The model's kernels and the neighbour search share the global pool.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build_global();
    }
    let (extract, ranking) = (&cli.extract, &cli.ranking);
    // The explorer handles its own keys and signals (and restores the terminal); the
    // headless commands stop at the next batch on Ctrl-C, SIGTERM or SIGHUP.
    match cli.command {
        None => run_explore(cli.dir, extract, ranking, &cli.view),
        Some(Command::Explore(cmd)) => run_explore(cmd.dir, extract, ranking, &cli.view),
        Some(Command::Rank(cmd)) => run_rank(cmd, extract, ranking, &cancel_flag()),
        Some(Command::Features(cmd)) => {
            run_features(cmd, extract, ranking.tutorial, &cancel_flag())
        }
        Some(Command::Eval(cmd)) => run_eval(cmd, extract, ranking, &cancel_flag()),
        Some(Command::Synth(cmd)) => run_synth(cmd),
    }
}

fn run_synth(cmd: SynthCmd) -> Result<u8> {
    let cfg = snowscope::synth::SynthConfig {
        count: cmd.count,
        seed: cmd.seed,
        rare_fraction: cmd.rare_fraction,
        size: cmd.size,
        out: cmd.out.clone(),
        duplicates: cmd.duplicates,
        near_duplicates: cmd.near_duplicates,
    };
    let total = cmd.count + cmd.duplicates + cmd.near_duplicates;
    let bar = std::sync::Mutex::new(
        kdam::Bar::builder()
            .total(total)
            .desc("crystals")
            .unit("img")
            .build()
            .map_err(anyhow::Error::msg)?,
    );
    let started = std::time::Instant::now();
    let manifest = snowscope::synth::generate(&cfg, &|done, _| {
        if let Ok(mut bar) = bar.lock() {
            let _ = kdam::BarExt::update_to(&mut *bar, done);
        }
    })?;
    eprintln!();
    let rare = manifest.images.iter().filter(|i| i.rare).count();
    eprintln!(
        "wrote {} images ({rare} rare) and manifest.json to {} in {:.1} s",
        manifest.images.len(),
        sanitize(&cmd.out.display().to_string()),
        started.elapsed().as_secs_f64()
    );
    Ok(0)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", sanitize(&format!("{e:#}")));
            ExitCode::from(EXIT_ERROR)
        }
    }
}
