//! The command line: every clap type of snowscope, and the conversions into the library's
//! configuration types (the library itself knows nothing of clap).

use clap::{Args, Parser, Subcommand, ValueEnum};
use snowscope::export::Format;
use snowscope::model::{Arch, DeviceKind, ModelConfig, Pooling, Precision};
use snowscope::pipeline::{CacheMode, PipelineConfig};
use snowscope::profile::Profile;
use snowscope::rank::{RankConfig, ScoreKind};
use snowscope::store::CachePrecision;
use snowscope::tui::{GraphicsProtocol, PreviewMode};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "snowscope",
    version,
    about = "Find the most unique images in a folder: CNN features (candle), exact nearest neighbours, ranked by the distance to their closest matches.",
    after_help = "Exit codes: 0 ranked everything; 1 error or nothing to rank; 2 bad command line; 3 ranked, but some files were skipped (listed with their reasons); 130 cancelled by Ctrl-C (SIGINT), 143 by SIGTERM, 129 by SIGHUP (finished features stay in the cache)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Folder to explore (default: the bundled snowflakes).
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub extract: ExtractArgs,
    #[command(flatten)]
    pub ranking: RankArgs,
    #[command(flatten)]
    pub view: ViewArgs,
}

#[derive(Args, Clone)]
pub struct ViewArgs {
    /// Image previews in the explorer: auto asks the terminal (kitty, sixel, iTerm2) and
    /// falls back to halfblocks.
    #[arg(long, value_enum, default_value = "auto", global = true)]
    pub preview: PreviewArg,
    /// Log file of the explorer (default: snowscope.log in the cache folder).
    #[arg(long, global = true)]
    pub log_file: Option<PathBuf>,
}

#[derive(Args)]
pub struct ExploreCmd {
    /// Folder of images (default: the bundled snowflakes).
    pub dir: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
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
pub struct ExtractArgs {
    /// Backbone network.
    #[arg(long, value_enum, default_value = "efficientnet-lite0", global = true)]
    pub model: ArchArg,
    /// Weights file (safetensors); default: the bundled EfficientNet-Lite0 ImageNet weights.
    #[arg(long, global = true)]
    pub weights: Option<PathBuf>,
    /// Layer to tap: EfficientNet `stage6+head` (default: both from one pass), `head`, `stage1`..`stage7`, `block0`..`block15`, joined by `+`; VGG16 `block5_conv3` (default) etc.
    #[arg(long, global = true)]
    pub layer: Option<String>,
    /// How the feature map becomes one vector.
    #[arg(long, value_enum, default_value = "avg", global = true)]
    pub pooling: PoolingArg,
    /// Where the model runs.
    #[arg(long, value_enum, default_value = "cpu", global = true)]
    pub device: DeviceArg,
    /// Arithmetic of the 1x1 convolutions (default: bf16 where the CPU has AMX-BF16, else
    /// f32). bf16 features are cached apart from f32 ones.
    #[arg(long, value_enum, global = true)]
    pub precision: Option<PrecisionArg>,
    /// Images per model run.
    #[arg(long, default_value_t = 32, global = true)]
    pub batch_size: usize,
    /// Worker threads for decoding and the model (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// Feature cache folder (default: the user's cache folder, e.g. ~/.cache/snowscope).
    #[arg(long, global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Neither read nor write the feature cache.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// How the feature cache holds the features: f16 halves its disk and page cache
    /// (rounded features: a cache of its own, apart from the f32 one).
    #[arg(long, value_enum, default_value = "f32", global = true)]
    pub cache_precision: CachePrecisionArg,
}

#[derive(Args, Clone)]
pub struct RankArgs {
    /// Neighbours for the k-NN and LOF scores.
    #[arg(long, default_value_t = RankConfig::default().k, global = true)]
    pub k: usize,
    /// Score that orders the images: nn = distance to the closest match (the tutorial's),
    /// knn = mean distance to the k nearest (default: best measured), lof = local outlier factor.
    #[arg(long, value_enum, default_value = "knn", global = true)]
    pub score: ScoreArg,
    /// Use raw features instead of L2-normalised ones (cosine geometry).
    #[arg(long, global = true)]
    pub raw: bool,
    /// Which features rank the folder: crystals (mid-level CNN features fused with the
    /// particles' morphology), photos (the CNN's head embedding), or auto (crystals when most
    /// images show one particle on a plain background).
    #[arg(long, value_enum, default_value = "auto", global = true)]
    pub profile: ProfileArg,
    /// Compare every pair, whatever the size: from 50,000 images on, the neighbours are
    /// otherwise found by an index whose closest matches equal the exact search's for at
    /// least 99 % of sampled images (measured each run; see `rank --verbose`).
    #[arg(long, global = true)]
    pub exact: bool,
    /// The tutorial's exact method: flattened map (VGG16 block5_conv3 when --model vgg16 --weights are given), raw features, squared L2 distance to the closest match.
    #[arg(long, global = true)]
    pub tutorial: bool,
}

#[derive(Args)]
pub struct RankCmd {
    /// Folder of images (default: the bundled snowflakes).
    pub dir: Option<PathBuf>,
    /// How many images to print (0 = all).
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    #[arg(long, value_enum, default_value = "table")]
    pub format: FormatArg,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Rank precomputed features instead of a folder: the parts written by `features DIR
    /// --shard I/N` (all N of them, ranked as one unsharded run), or with `--paths` one
    /// .npy of embeddings made elsewhere (one row per image).
    #[arg(long, num_args = 1.., conflicts_with = "dir")]
    pub features: Vec<PathBuf>,
    /// Text file with one path per row of a single --features .npy made elsewhere.
    #[arg(long, requires = "features")]
    pub paths: Option<PathBuf>,
    /// List only the images marked in the explorer (Space), keeping their ranks.
    #[arg(long)]
    pub marked: bool,
    /// Leave out the explanations of CSV and JSON (where each image differs from its
    /// closest match, and its most extreme traits): they run the model again on the images
    /// listed and their matches.
    #[arg(long)]
    pub no_explain: bool,
    /// Say how the neighbours were found (method, lists probed, measured recall).
    #[arg(long, short)]
    pub verbose: bool,
    /// Run only block I of N of the exact neighbour search and write its partial lists to
    /// --output instead of a ranking (for job arrays: the N blocks share the work of
    /// comparing every pair; `--neighbours` merges them).
    #[arg(long, value_parser = snowscope::scan::Shard::parse, requires = "output",
          conflicts_with_all = ["neighbours", "marked"])]
    pub rows: Option<snowscope::scan::Shard>,
    /// Rank with the exact neighbour lists merged from these files of `rank --rows I/N`
    /// (all N blocks, made from the same features and settings) instead of searching.
    #[arg(long, num_args = 1.., conflicts_with = "exact")]
    pub neighbours: Vec<PathBuf>,
}

impl RankCmd {
    pub fn search(&self, cfg: &RankConfig) -> snowscope::neighbours::SearchOptions {
        snowscope::neighbours::SearchOptions {
            blocks: self.neighbours.clone(),
            ..cfg.search()
        }
    }
}

#[derive(Args)]
pub struct FeaturesCmd {
    pub dir: PathBuf,
    /// Output .npy file; the paths go to the same name with `.paths.txt`.
    #[arg(long)]
    pub out: PathBuf,
    /// Extract only part I of N of the folder (stable, disjoint: by a hash of each relative
    /// path), writing the raw rows and a `.shard.json` for `rank --features` to unite;
    /// for job arrays (examples/slurm_shards.sh, examples/k8s_shards.yaml).
    #[arg(long, value_parser = snowscope::scan::Shard::parse)]
    pub shard: Option<snowscope::scan::Shard>,
}

#[derive(Args)]
pub struct EvalCmd {
    /// Folder of images (default: the bundled snowflakes).
    pub dir: Option<PathBuf>,
    /// Known outliers: a synth manifest.json (`rare: true`) or a text file of paths.
    #[arg(long)]
    pub truth: PathBuf,
}

/// The defaults write the bundled set, `data/snowflakes`, byte for byte.
#[derive(Args)]
pub struct SynthCmd {
    /// Images to write in all: `--duplicates` byte-identical copies and `--near-duplicates`
    /// re-renders of common crystals, the rest distinct crystals (of which
    /// `--rare-fraction` rare).
    #[arg(long, default_value_t = 186)]
    pub count: usize,
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Fraction of rare crystals (twins, broken arms, asymmetric, aggregates, odd habits).
    #[arg(long, default_value_t = 0.03)]
    pub rare_fraction: f64,
    /// Image side in pixels.
    #[arg(long, default_value_t = 224)]
    pub size: u32,
    /// Byte-identical copies of common crystals, among the `--count` images.
    #[arg(long, default_value_t = 3)]
    pub duplicates: usize,
    /// Re-renders of common crystals with other jitter and noise, among the `--count`
    /// images.
    #[arg(long, default_value_t = 3)]
    pub near_duplicates: usize,
    #[arg(long)]
    pub out: PathBuf,
}

impl ExtractArgs {
    pub fn pipeline(&self, tutorial: bool) -> PipelineConfig {
        let threads = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        PipelineConfig {
            model: ModelConfig {
                arch: self.model.into(),
                weights: self.weights.clone(),
                // The tutorial's map is the head's alone (it is flattened: no second tap).
                layer: self.layer.clone().or_else(|| {
                    (tutorial && self.model == ArchArg::EfficientNetLite0)
                        .then(|| snowscope::profile::PHOTO_LAYER.into())
                }),
                // The tutorial flattened the whole map.
                pooling: if tutorial {
                    Pooling::None
                } else {
                    self.pooling.into()
                },
                device: self.device.into(),
                precision: self.precision.map(Into::into),
            },
            batch_size: self.batch_size,
            threads,
            cache: match (&self.cache_dir, self.no_cache) {
                (_, true) => CacheMode::Off,
                (Some(dir), false) => CacheMode::Dir(dir.clone()),
                (None, false) => CacheMode::Default,
            },
            cache_precision: self.cache_precision.into(),
        }
    }
}

impl RankArgs {
    pub fn config(&self) -> RankConfig {
        if self.tutorial {
            return RankConfig {
                exact: self.exact,
                ..RankConfig::tutorial()
            };
        }
        RankConfig {
            k: self.k.max(1),
            normalise: !self.raw,
            score: self.score.into(),
            squared: false,
            profile: self.profile.into(),
            exact: self.exact,
        }
    }
}

/// `--model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArchArg {
    /// EfficientNet-Lite0, ImageNet weights bundled (default).
    #[value(name = "efficientnet-lite0")]
    EfficientNetLite0,
    /// VGG16 convolutional layers; needs `--weights` (torchvision key names).
    Vgg16,
}

impl From<ArchArg> for Arch {
    fn from(a: ArchArg) -> Self {
        match a {
            ArchArg::EfficientNetLite0 => Arch::EfficientNetLite0,
            ArchArg::Vgg16 => Arch::Vgg16,
        }
    }
}

/// `--pooling`: how a feature map (C x H x W) becomes one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PoolingArg {
    /// Mean over positions: C values.
    Avg,
    /// Maximum over positions: C values.
    Max,
    /// The flattened map, C x H x W values (the tutorial's choice).
    None,
}

impl From<PoolingArg> for Pooling {
    fn from(p: PoolingArg) -> Self {
        match p {
            PoolingArg::Avg => Pooling::Avg,
            PoolingArg::Max => Pooling::Max,
            PoolingArg::None => Pooling::None,
        }
    }
}

/// `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    Cpu,
    /// NVIDIA GPU; needs a build with `--features cuda`.
    Cuda,
}

impl From<DeviceArg> for DeviceKind {
    fn from(d: DeviceArg) -> Self {
        match d {
            DeviceArg::Cpu => DeviceKind::Cpu,
            DeviceArg::Cuda => DeviceKind::Cuda,
        }
    }
}

/// `--precision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrecisionArg {
    F32,
    /// BF16 products, FP32 sums; needs a CPU with AMX-BF16.
    Bf16,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::F32 => Precision::F32,
            PrecisionArg::Bf16 => Precision::Bf16,
        }
    }
}

/// `--cache-precision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CachePrecisionArg {
    F32,
    F16,
}

impl From<CachePrecisionArg> for CachePrecision {
    fn from(p: CachePrecisionArg) -> Self {
        match p {
            CachePrecisionArg::F32 => CachePrecision::F32,
            CachePrecisionArg::F16 => CachePrecision::F16,
        }
    }
}

/// `--score`: the number that orders images (larger = more unique).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScoreArg {
    /// L2 distance to the closest match (the tutorial's score).
    Nn,
    /// Mean L2 distance to the k nearest non-duplicate neighbours.
    Knn,
    /// Local outlier factor over the k nearest neighbours (density-aware).
    Lof,
}

impl From<ScoreArg> for ScoreKind {
    fn from(s: ScoreArg) -> Self {
        match s {
            ScoreArg::Nn => ScoreKind::Nn,
            ScoreArg::Knn => ScoreKind::Knn,
            ScoreArg::Lof => ScoreKind::Lof,
        }
    }
}

/// `--profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    Auto,
    Crystals,
    Photos,
}

impl From<ProfileArg> for Profile {
    fn from(p: ProfileArg) -> Self {
        match p {
            ProfileArg::Auto => Profile::Auto,
            ProfileArg::Crystals => Profile::Crystals,
            ProfileArg::Photos => Profile::Photos,
        }
    }
}

/// `rank --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Table,
    Csv,
    Json,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Table => Format::Table,
            FormatArg::Csv => Format::Csv,
            FormatArg::Json => Format::Json,
        }
    }
}

/// `--preview`: how previews are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PreviewArg {
    /// Ask the terminal (kitty, sixel, iTerm2); halfblocks when it does not answer.
    Auto,
    Kitty,
    Sixel,
    Iterm2,
    /// Coloured half-block characters: works in every colour terminal and over SSH.
    Halfblocks,
    /// No pictures, captions only.
    None,
}

impl From<PreviewArg> for PreviewMode {
    fn from(p: PreviewArg) -> Self {
        match p {
            PreviewArg::Auto => PreviewMode::Auto,
            PreviewArg::Kitty => PreviewMode::Force(GraphicsProtocol::Kitty),
            PreviewArg::Sixel => PreviewMode::Force(GraphicsProtocol::Sixel),
            PreviewArg::Iterm2 => PreviewMode::Force(GraphicsProtocol::Iterm2),
            PreviewArg::Halfblocks => PreviewMode::Halfblocks,
            PreviewArg::None => PreviewMode::None,
        }
    }
}
