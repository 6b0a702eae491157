//! snowscope command line: `explore` (default), `rank`, `features`, `eval`, `synth`.
//! Parses (`cli.rs`) and dispatches; the work is the library's.

use anyhow::{Context, Result, bail};
use clap::Parser;
use cli::{Cli, Command, EvalCmd, ExtractArgs, FeaturesCmd, RankArgs, RankCmd, SynthCmd, ViewArgs};
use snowscope::exit::ExitStatus;
use snowscope::export::{self, Selection};
use snowscope::pipeline::{self, Event, FeatureSet, PipelineError};
use snowscope::sanitize::sanitize;
use snowscope::signals::Termination;
use snowscope::tui::TuiOptions;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

mod cli;
mod progress_bar;

/// Runs `job` on `dir` with a kdam bar on stderr fed by its events.
fn with_bar<T>(
    dir: &Path,
    job: impl FnOnce(&mut dyn FnMut(Event)) -> Result<T, PipelineError>,
) -> Result<T> {
    let mut bar = progress_bar::Headless::new();
    let out = job(&mut |e| bar.event(e)).with_context(|| {
        format!(
            "cannot extract features of {}",
            sanitize(&dir.display().to_string())
        )
    })?;
    bar.finish();
    Ok(out)
}

/// Extracts (or loads from the cache) the features of `dir`, or of one `shard` of it, with
/// a kdam bar on stderr.
fn features_of(
    dir: &Path,
    shard: Option<snowscope::scan::Shard>,
    extract: &ExtractArgs,
    tutorial: bool,
    cancel: &AtomicBool,
) -> Result<FeatureSet> {
    let cfg = extract.pipeline(tutorial);
    with_bar(dir, |on_event| {
        pipeline::compute_features_of_shard(dir, &cfg, shard, cancel, on_event)
    })
}

/// The folder to work on: the one given, else the bundled snowflakes, grown into the
/// cache folder on first use when the binary runs away from its sources.
fn folder_or_bundled(dir: Option<PathBuf>, extract: &ExtractArgs) -> Result<PathBuf> {
    if let Some(dir) = dir {
        return Ok(dir);
    }
    let cache = extract
        .cache_dir
        .clone()
        .unwrap_or_else(snowscope::store::default_cache_dir);
    if let Some(dir) = snowscope::demo::find(&cache) {
        return Ok(dir);
    }
    let total = snowscope::synth::SynthConfig::default().total();
    eprintln!(
        "no folder given: growing the bundled snowflakes ({total} images, once) into {}",
        sanitize(&snowscope::demo::grown_dir(&cache).display().to_string())
    );
    let bar = progress_bar::Counter::new("snowflakes", total)?;
    let dir = snowscope::demo::grow(&cache, &|done, _| bar.update(done))?;
    eprintln!();
    Ok(dir)
}

fn report_skips(skipped: &[snowscope::scan::Skip]) {
    if skipped.is_empty() {
        return;
    }
    eprintln!("skipped {} file(s):", skipped.len());
    for s in skipped {
        eprintln!(
            "  {}: {}",
            sanitize(&s.path),
            sanitize(&s.reason.to_string())
        );
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

fn run_rank(
    cmd: RankCmd,
    extract: &ExtractArgs,
    ranking: &RankArgs,
    term: &Termination,
) -> Result<u8> {
    let cfg = ranking.config();
    let pipeline_cfg = extract.pipeline(ranking.tutorial);
    let cancelled = || {
        eprintln!("cancelled: finished work is kept in the cache; run again to continue");
        Ok(ExitStatus::cancelled_by(term.received()).code())
    };
    let Some(mut set) = features_to_rank(&cmd, extract, ranking, term)? else {
        return cancelled();
    };
    if let Some(part) = cmd.rows {
        return write_search_block(set, &cmd, part, &cfg);
    }
    let (mut ranked, searched) = match set.rank_once(&cfg, &cmd.search(&cfg)) {
        // The features of the cache were damaged, and the file is gone: extract again.
        Err(e) if e.is_damaged_cache() => {
            eprintln!("{}", sanitize(&e.to_string()));
            let Some(again) = features_to_rank(&cmd, extract, ranking, term)? else {
                return cancelled();
            };
            set = again;
            set.rank_once(&cfg, &cmd.search(&cfg))?
        }
        ranked => ranked?,
    };
    if cmd.verbose {
        eprintln!("neighbour search: {searched}");
    }
    report_skips(&set.skipped);
    if set.items.is_empty() {
        eprintln!("nothing to rank: no image could be read");
        return Ok(ExitStatus::Error.code());
    }
    if set.items.len() == 1 {
        eprintln!("only one image: it has no neighbour to compare with");
    }
    eprintln!("{}; profile: {}", sanitize(&set.model), ranked.profile);
    let (marks, problem) = pipeline_cfg.cache.marks(&set.root);
    if let Some(problem) = problem {
        eprintln!("{}", sanitize(&problem.to_string()));
    }
    set.apply_marks(&mut ranked, &marks);
    if cmd.marked && marks.is_empty() {
        eprintln!("no image of this folder is marked (Space marks one in the explorer)");
    }
    let selection = Selection {
        top: (cmd.top > 0).then_some(cmd.top),
        marked_only: cmd.marked,
    };
    let format: export::Format = cmd.format.into();
    // Embeddings made elsewhere have no model to run again.
    let explainable = !set.blocks.is_empty() && format != export::Format::Table;
    if explainable && !cmd.no_explain {
        let positions = selection.positions(&ranked);
        set.explain(&mut ranked, &positions, &pipeline_cfg.model)?;
    }
    let text = export::render(
        &ranked,
        selection,
        format,
        &set.model,
        &set.skipped,
        Some(&searched),
    );
    write_output(&text, cmd.output.as_deref())?;
    let code = ExitStatus::ranked(!set.skipped.is_empty()).code();
    // The process ends here: freeing a million-image folder's small strings one by one
    // took 4.9 s (README, "Large folders"), so the memory goes back to the system at once.
    std::mem::forget((set, ranked));
    Ok(code)
}

/// The features `rank` works on: one .npy made elsewhere with its `--paths`, the parts
/// of a sharded extraction, or the folder's (extracted with a progress bar, or read from
/// the cache); `None` when the extraction was cancelled.
fn features_to_rank(
    cmd: &RankCmd,
    extract: &ExtractArgs,
    ranking: &RankArgs,
    term: &Termination,
) -> Result<Option<FeatureSet>> {
    let set = match (cmd.features.as_slice(), &cmd.paths) {
        ([npy], Some(list)) => FeatureSet::from_npy(npy, list)?,
        (_, Some(_)) => bail!("--paths goes with one --features .npy made elsewhere"),
        ([_, ..], None) => snowscope::shard::union(&cmd.features)?,
        ([], None) => {
            let dir = folder_or_bundled(cmd.dir.clone(), extract)?;
            features_of(&dir, None, extract, ranking.tutorial, &term.flag())?
        }
    };
    Ok((!set.cancelled).then_some(set))
}

/// `rank --rows I/N`: block I of the exact neighbour search, written to `--output` for
/// `rank --neighbours` to merge.
fn write_search_block(
    mut set: FeatureSet,
    cmd: &RankCmd,
    part: snowscope::scan::Shard,
    cfg: &snowscope::rank::RankConfig,
) -> Result<u8> {
    report_skips(&set.skipped);
    let out = cmd
        .output
        .as_deref()
        .expect("clap requires --output with --rows");
    let (pairs, total) = set.search_block(cfg, part, out)?;
    eprintln!(
        "wrote {}: block {}/{} of the exact search, {pairs} of {total} tile pairs of {} images",
        sanitize(&out.display().to_string()),
        part.index,
        part.count,
        set.items.len()
    );
    Ok(ExitStatus::ranked(!set.skipped.is_empty()).code())
}

fn run_features(
    cmd: FeaturesCmd,
    extract: &ExtractArgs,
    ranking: &RankArgs,
    term: &Termination,
) -> Result<u8> {
    let set = features_of(&cmd.dir, cmd.shard, extract, ranking.tutorial, &term.flag())?;
    report_skips(&set.skipped);
    if set.cancelled {
        eprintln!("cancelled: nothing written; finished work is kept in the cache");
        return Ok(ExitStatus::cancelled_by(term.received()).code());
    }
    if let Some(shard) = cmd.shard {
        // Raw rows: the profile, the traits' standardisation and the fusion need the whole
        // folder, so `rank --features` does them on the union.
        snowscope::shard::write(&set, shard, &cmd.out)?;
        eprintln!(
            "wrote shard {shard}: {} images to {} (with .paths.txt and .shard.json)",
            set.items.len(),
            sanitize(&cmd.out.display().to_string())
        );
        return Ok(ExitStatus::ranked(!set.skipped.is_empty()).code());
    }
    // The vectors the ranking searches: the profile's features (and traits).
    let (choice, data, dim) = set.embedding(&ranking.config())?;
    eprintln!("profile: {choice}");
    snowscope::npy::write(&cmd.out, &data, set.items.len(), dim)?;
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
        dim,
        sanitize(&cmd.out.display().to_string()),
        sanitize(&list.display().to_string())
    );
    Ok(ExitStatus::ranked(!set.skipped.is_empty()).code())
}

fn run_eval(
    cmd: EvalCmd,
    extract: &ExtractArgs,
    ranking: &RankArgs,
    term: &Termination,
) -> Result<u8> {
    let truth = snowscope::eval::read_truth(&cmd.truth)?;
    let dir = folder_or_bundled(cmd.dir, extract)?;
    let set = features_of(&dir, None, extract, ranking.tutorial, &term.flag())?;
    report_skips(&set.skipped);
    let ranked = set.rank(&ranking.config())?;
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
    Ok(ExitStatus::Ok.code())
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
        dir: folder_or_bundled(dir, extract)?,
        pipeline: extract.pipeline(ranking.tutorial),
        rank: ranking.config(),
        preview: view.preview.into(),
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
    let headless = !matches!(cli.command, None | Some(Command::Explore(_)));
    if headless && std::env::var_os("RUST_LOG").is_some() {
        // The headless commands log to stderr when asked (`RUST_LOG=info`: the time each
        // stage took); the explorer logs to its file, never to the screen it draws.
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
    // The explorer handles its own keys and signals (and restores the terminal); the
    // headless commands stop at the next batch on Ctrl-C, SIGTERM or SIGHUP.
    match cli.command {
        None => run_explore(cli.dir, extract, ranking, &cli.view),
        Some(Command::Explore(cmd)) => run_explore(cmd.dir, extract, ranking, &cli.view),
        Some(Command::Rank(cmd)) => run_rank(cmd, extract, ranking, &Termination::install()),
        Some(Command::Features(cmd)) => {
            run_features(cmd, extract, ranking, &Termination::install())
        }
        Some(Command::Eval(cmd)) => run_eval(cmd, extract, ranking, &Termination::install()),
        Some(Command::Synth(cmd)) => run_synth(cmd),
    }
}

fn run_synth(cmd: SynthCmd) -> Result<u8> {
    let cfg = snowscope::synth::SynthConfig {
        crystals: 0,
        seed: cmd.seed,
        rare_fraction: cmd.rare_fraction,
        size: cmd.size,
        out: cmd.out.clone(),
        duplicates: cmd.duplicates,
        near_duplicates: cmd.near_duplicates,
    }
    .with_total(cmd.count)?;
    let bar = progress_bar::Counter::new("crystals", cfg.total())?;
    let started = std::time::Instant::now();
    let manifest = snowscope::synth::generate(&cfg, &|done, _| bar.update(done))?;
    eprintln!();
    let rare = manifest.images.iter().filter(|i| i.rare).count();
    eprintln!(
        "wrote {} images ({rare} rare) and manifest.json to {} in {:.1} s",
        manifest.images.len(),
        sanitize(&cmd.out.display().to_string()),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitStatus::Ok.code())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", sanitize(&format!("{e:#}")));
            ExitStatus::Error.into()
        }
    }
}
