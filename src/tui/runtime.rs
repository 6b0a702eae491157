//! The explorer's threads and event loop: the UI thread owns the state and the terminal;
//! one thread reads terminal events, one runs the pipeline (scan, features, ranking), one
//! decodes and encodes previews. All of them send [`Msg`]s into one channel; the UI thread
//! turns each into an [`Action`], runs [`app::update`], performs the returned effects and
//! draws.

use super::app::{self, Action, App, Effect, Loaded};
use super::graphics::Method;
use super::kitty_direct;
use super::terminal::{RestoreGuard, Term, draw, enter_terminal, pick_graphics, restore_terminal};
use super::{TuiOptions, keys, preview};
use crate::exit::ExitStatus;
use crate::explain::TraitStats;
use crate::export::{self, Format};
use crate::pipeline::{self, Event, FeatureSet, PipelineConfig};
use crate::rank::{RankConfig, Ranking};
use crate::sanitize::sanitize;
use crate::signals::Termination;
use anyhow::{Context, bail};
use crossbeam_channel::{Receiver, Sender};
use ratatui::crossterm::event;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Everything the UI thread receives.
pub enum Msg {
    Input(event::Event),
    Worker(Event),
    Ranking(usize),
    Loaded(Box<Loaded>),
    /// The folder holds what the ranking on screen was made of; the files it skipped.
    Checked(Vec<crate::scan::Skip>),
    TraitStats(Option<Box<TraitStats>>),
    Failed(String),
    Cancelled,
    Preview(preview::PreviewResult),
}

/// Runs the explorer until the user quits. Returns the exit code: 0 after a normal quit,
/// 130 when extraction was cancelled, 128 + the signal's number when a signal ended it.
pub fn run(opts: TuiOptions) -> anyhow::Result<u8> {
    if !std::io::stdout().is_terminal() {
        bail!(
            "standard output is not a terminal, and the explorer needs one; \
             for scripts and pipes use `snowscope rank DIR` (table, CSV or JSON)"
        );
    }
    init_logging(opts.log_file.as_deref())?;
    // Ctrl-C arrives as a key in raw mode; this catches SIGTERM / SIGHUP (and SIGINT sent
    // by `kill`), whose exit statuses follow the shell's 128 + signal.
    let signalled = Termination::install();

    let mut terminal = enter_terminal().context("cannot set up the terminal")?;
    let _guard = RestoreGuard;
    let (tx, rx) = crossbeam_channel::unbounded::<Msg>();
    // Start the work first: the terminal query below can wait up to 2 s for an answer
    // (typical over SSH), and a cached folder is ranked meanwhile.
    let cancel = Arc::new(AtomicBool::new(false));
    let shown = Arc::new(AtomicBool::new(false));
    let worker = spawn_worker(&opts, tx.clone(), cancel.clone(), shown.clone());
    let mut app = App::new(
        opts.dir.display().to_string(),
        opts.pipeline.model.describe(),
        None,
    );
    let size = terminal.size()?;
    app::update(&mut app, Action::Resize(size.width, size.height));
    draw(&mut terminal, &app, None)?;
    // The query must run in the alternate screen and before anything reads input.
    let graphics = pick_graphics(opts.preview);
    if let Some(g) = &graphics {
        app.preview_protocol = Some(g.method().name().to_string());
        app.preview_note = Some(g.choice.describe());
        app.cell_px = g.choice.cell;
    }
    let mut kitty = graphics
        .as_ref()
        .filter(|g| g.method() == Method::KittyDirect)
        .map(|_| kitty_direct::Screen::default());

    let stop_input = Arc::new(AtomicBool::new(false));
    let input = spawn_input(tx.clone(), stop_input.clone());
    let preview_tx = graphics.map(|graphics| {
        let (req_tx, req_rx) = crossbeam_channel::unbounded();
        let (res_tx, res_rx) = crossbeam_channel::unbounded();
        let heat = preview::Heat::new(opts.pipeline.model.clone());
        preview::spawn(graphics, heat, req_rx, res_tx);
        // Forward results into the main channel.
        let tx = tx.clone();
        std::thread::spawn(move || {
            for r in res_rx {
                if tx.send(Msg::Preview(r)).is_err() {
                    break;
                }
            }
        });
        req_tx
    });
    drop(tx);
    let result = event_loop(
        &mut terminal,
        &mut app,
        &rx,
        &signalled,
        &cancel,
        &shown,
        &preview_tx,
        kitty.as_mut(),
    );
    if let Some(screen) = &mut kitty {
        // Free the images kitty holds for us; leaving the alternate screen clears only
        // their placements.
        let _ = screen.release(terminal.backend_mut());
    }
    let wait_for_worker = || {
        cancel.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + WORKER_SAVE_WAIT;
        while !worker.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    if result.is_err() {
        // The terminal is gone (SSH dropped, tmux killed): cancel the extraction and give
        // the worker a moment to save what it finished, as Ctrl-C would.
        wait_for_worker();
    }
    // A check of the folder cut short by quitting may be extracting new images: they are
    // saved as Ctrl-C saves them. A check still listing the folder is simply left.
    let extracting = app.explorer.as_ref().is_some_and(|ex| ex.checking)
        && app.progress.total > app.progress.cached;
    // Not joined: when the terminal hangs up (SSH dropped, tmux killed), crossterm's poll
    // can spin inside the call without returning, and joining would keep the process alive.
    stop_input.store(true, Ordering::Relaxed);
    drop(input);
    drop(preview_tx);
    restore_terminal();
    if extracting {
        // After the terminal is given back: the user has left already.
        wait_for_worker();
    }
    result?;
    if let Some(e) = app.fatal {
        bail!(e);
    }
    let cancelled = ExitStatus::Cancelled.code();
    Ok(match app.exit {
        Some(code) if code == cancelled => ExitStatus::cancelled_by(signalled.received()).code(),
        code => code.unwrap_or(ExitStatus::Ok.code()),
    })
}

fn init_logging(path: Option<&Path>) -> anyhow::Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open log file {}", path.display()))?;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
    Ok(())
}

/// The message of a caught panic.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn spawn_input(tx: Sender<Msg>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match event::poll(Duration::from_millis(50)) {
                    Ok(true) => match event::read() {
                        Ok(ev) => {
                            if tx.send(Msg::Input(ev)).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!("cannot read terminal input: {e}");
                            return;
                        }
                    },
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!("cannot poll terminal input: {e}");
                        return;
                    }
                }
            }
        })
        .expect("spawn input thread")
}

/// How long the trait statistics wait for the table to be on screen at most.
const SHOWN_WAIT: Duration = Duration::from_secs(10);

/// How long a lost terminal waits for the worker to save finished features: a batch in
/// flight plus the cache write.
const WORKER_SAVE_WAIT: Duration = Duration::from_secs(15);

/// Features, then the ranking, on a worker thread; a panic there becomes an error message.
fn spawn_worker(
    opts: &TuiOptions,
    tx: Sender<Msg>,
    cancel: Arc<AtomicBool>,
    shown: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let dir = opts.dir.clone();
    let cfg = opts.pipeline.clone();
    let rank_cfg = opts.rank;
    std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || {
            let fail = tx.clone();
            let job = std::panic::AssertUnwindSafe(|| {
                let Some(traits) = work(&dir, &cfg, &rank_cfg, &cancel, &tx) else {
                    return;
                };
                // The trait statistics follow the table once it is on screen: sorting
                // every trait column of a million rows takes a second of both cores, and
                // only the detail pane's notes need them.
                let waiting = Instant::now();
                while !shown.load(Ordering::Relaxed)
                    && !cancel.load(Ordering::Relaxed)
                    && waiting.elapsed() < SHOWN_WAIT
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let stats = TraitStats::of(&traits).map(Box::new);
                let _ = tx.send(Msg::TraitStats(stats));
            });
            if let Err(payload) = std::panic::catch_unwind(job) {
                let _ = fail.send(Msg::Failed(format!(
                    "internal error while preparing the ranking: {}",
                    panic_message(payload.as_ref())
                )));
            }
        })
        .expect("spawn pipeline thread")
}

/// The worker's job: features (from the cache where possible), then the ranking; the
/// folder's traits once the ranking is sent. Where the cache remembers the folder and its
/// ranking, that ranking is shown first, and the folder checked after: at a million
/// files, listing and matching them takes longer than the rest of a start together.
fn work(
    dir: &Path,
    cfg: &PipelineConfig,
    rank_cfg: &RankConfig,
    cancel: &AtomicBool,
    tx: &Sender<Msg>,
) -> Option<Vec<f32>> {
    let started = Instant::now();
    let shown = show_remembered(dir, cfg, rank_cfg, tx);
    if shown.is_some() {
        tracing::info!(secs = ?started.elapsed(), "remembered ranking sent");
    }
    let mut on_event = |e| match e {
        Event::Ranking(n) => {
            tracing::info!(images = n, secs = ?started.elapsed(), "features ready");
            let _ = tx.send(Msg::Ranking(n));
        }
        e => {
            if matches!(e, Event::Progress(_)) {
                test_panic("worker");
            }
            let _ = tx.send(Msg::Worker(e));
        }
    };
    let result = pipeline::rank_folder(dir, cfg, rank_cfg, shown, cancel, &mut on_event);
    let (set, ranking) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = tx.send(Msg::Failed(format!(
                "cannot extract features of {}: {e}",
                sanitize(&dir.display().to_string())
            )));
            return None;
        }
    };
    if set.cancelled {
        tracing::info!(images = set.items.len(), secs = ?started.elapsed(), "cancelled");
        let _ = tx.send(Msg::Cancelled);
        return None;
    }
    let Some(ranking) = ranking else {
        // The folder holds what the ranking on screen was made of.
        tracing::info!(secs = ?started.elapsed(), "folder checked: unchanged");
        let _ = tx.send(Msg::Checked(set.skipped));
        return Some(set.traits);
    };
    tracing::info!(secs = ?started.elapsed(), "ranking ready");
    let (loaded, traits) = hand_over(set, ranking, cfg, false, tx);
    let _ = tx.send(Msg::Loaded(Box::new(loaded)));
    Some(traits)
}

/// Sends the ranking the feature cache remembers for `dir`, made from its cached neighbour
/// lists, if it has one; returns what its images are (`FeatureSet::images_digest`).
fn show_remembered(
    dir: &Path,
    cfg: &PipelineConfig,
    rank_cfg: &RankConfig,
    tx: &Sender<Msg>,
) -> Option<u128> {
    let set = pipeline::remembered(dir, cfg)?;
    let ranking = set.rank_cached(rank_cfg)?;
    let digest = set.images_digest();
    let (loaded, _) = hand_over(set, ranking, cfg, true, tx);
    let _ = tx.send(Msg::Loaded(Box::new(loaded)));
    Some(digest)
}

/// What the explorer is given of `set` and its `ranking` (marked as the folder's marks
/// say), and the set's traits, kept for the statistics that follow.
fn hand_over(
    set: FeatureSet,
    mut ranking: Ranking,
    cfg: &PipelineConfig,
    checking: bool,
    tx: &Sender<Msg>,
) -> (Loaded, Vec<f32>) {
    let (marks, problem) = cfg.cache.marks(&set.root);
    if let Some(problem) = problem {
        let _ = tx.send(Msg::Worker(Event::Notice(problem.to_string())));
    }
    set.apply_marks(&mut ranking, &marks);
    let (files, hashes) = set.items.into_iter().map(|i| (i.path, i.hash)).unzip();
    let loaded = Loaded {
        ranking,
        files,
        hashes,
        root: set.root,
        marks,
        model: set.model,
        skipped: set.skipped,
        checking,
    };
    (loaded, set.traits)
}

fn update_and_run(
    app: &mut App,
    action: Action,
    cancel: &AtomicBool,
    previews: &Option<Sender<Vec<preview::PreviewRequest>>>,
) {
    for effect in app::update(app, action) {
        match effect {
            Effect::CancelWorker => cancel.store(true, Ordering::Relaxed),
            Effect::LoadPreviews(reqs) => {
                if let Some(tx) = previews {
                    let _ = tx.send(reqs);
                }
            }
            Effect::SaveMarks => {
                let saved = app.explorer.as_ref().map(|ex| ex.marks.save(&ex.root));
                if let Some(Err(e)) = saved {
                    let note = format!("cannot save the marks: {e}; they last for this run");
                    app::update(app, Action::Notify(note));
                }
            }
            Effect::Export(format) => {
                let note = match export(app, format) {
                    Ok(msg) => msg,
                    Err(e) => format!("export failed: {e:#}"),
                };
                app::update(app, Action::Notify(note));
            }
        }
    }
}

/// Writes the current view to the first free `snowscope-view[-N].csv|json` in the working
/// folder (the temporary folder when that is read-only).
fn export(app: &App, format: Format) -> anyhow::Result<String> {
    let text = app.export_text(format).context("nothing to export yet")?;
    let ex = app.explorer.as_ref().context("nothing to export yet")?;
    let rows = ex.export_rows().len();
    let which = if ex.table.any_marked() {
        "marked"
    } else {
        "shown"
    };
    let path = export::write_unique("snowscope-view", format, &text)?;
    Ok(format!(
        "exported the {rows} {which} rows to {}",
        sanitize(&path.display().to_string())
    ))
}

/// How long keys must be quiet before previews are asked for and drawn again. Holding `j`
/// then sends no picture until it is let go, which keeps a slow link (SSH at 1 Mbit/s)
/// responsive; a single key press waits this long for its pictures.
const SETTLE: Duration = Duration::from_millis(120);

// The threads' shared flags and channels, each used once here.
#[allow(clippy::too_many_arguments)]
fn event_loop(
    terminal: &mut Term,
    app: &mut App,
    rx: &Receiver<Msg>,
    signalled: &Termination,
    cancel: &AtomicBool,
    shown_flag: &AtomicBool,
    previews: &Option<Sender<Vec<preview::PreviewRequest>>>,
    mut kitty: Option<&mut kitty_direct::Screen>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    // When a key last changed which images the preview shows.
    let mut last_change = Instant::now();
    // Whether the screen may differ from what was drawn last. An idle explorer draws
    // nothing: even an unchanged frame costs its synchronized-update escapes.
    let mut dirty = true;
    let mut shown = false;
    loop {
        if dirty {
            draw(terminal, app, kitty.as_deref_mut())?;
            if !shown && app.explorer.is_some() {
                // How long a start takes, to the first screen of the table (README).
                tracing::info!(secs = ?started.elapsed(), "explorer shown");
                shown = true;
                shown_flag.store(true, Ordering::Relaxed);
            }
        }
        if app.exit.is_some() || app.fatal.is_some() {
            return Ok(());
        }
        // The progress view animates; the explorer waits for something to happen, or
        // for the keys to settle.
        let timeout = if app.hold_previews {
            SETTLE.saturating_sub(last_change.elapsed())
        } else if app.explorer.is_none() {
            Duration::from_millis(250)
        } else {
            Duration::from_millis(500)
        };
        let first = match rx.recv_timeout(timeout) {
            Ok(m) => Some(m),
            // A resize can come before the input thread listens for it (a new terminal
            // window is sized while the graphics probe waits for replies), so look now
            // and then: a lost one would leave the layout at the old size for good.
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => match terminal.size() {
                Ok(s) if (s.width, s.height) != (app.width, app.height) => {
                    Some(Msg::Input(event::Event::Resize(s.width, s.height)))
                }
                _ => None,
            },
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                bail!("all event sources stopped")
            }
        };
        // The progress view's clock moves; so does the explorer after any message.
        dirty = first.is_some() || app.explorer.is_none();
        // Handle everything queued before drawing again, so a held key never lags.
        for msg in first.into_iter().chain(rx.try_iter().take(512)) {
            let pair = app.preview_pair();
            let is_input = matches!(msg, Msg::Input(_));
            let action = match msg {
                Msg::Input(ev @ event::Event::Resize(..)) => {
                    // The resize clears the screen, and kitty's placements with it.
                    if let Some(screen) = kitty.as_deref_mut() {
                        screen.release(terminal.backend_mut())?;
                    }
                    keys::action_for(app, &ev)
                }
                Msg::Input(ev) => keys::action_for(app, &ev),
                Msg::Worker(e) => Some(Action::Worker(e)),
                Msg::Ranking(n) => Some(Action::Ranking(n)),
                Msg::Loaded(l) => {
                    test_panic("ui");
                    Some(Action::Loaded(l))
                }
                Msg::TraitStats(stats) => Some(Action::TraitStats(stats)),
                Msg::Checked(skipped) => Some(Action::Checked(skipped)),
                Msg::Failed(e) => Some(Action::WorkerFailed(e)),
                Msg::Cancelled => Some(Action::WorkerCancelled),
                Msg::Preview(r) => {
                    if r.outcome.is_ok() {
                        // The real-terminal test waits for this line.
                        tracing::debug!(image = r.key.index, "preview ready");
                    }
                    Some(Action::Preview(r))
                }
            };
            if let Some(action) = action {
                update_and_run(app, action, cancel, previews);
            }
            if is_input && app.preview_pair() != pair {
                last_change = Instant::now();
                if !app.hold_previews {
                    update_and_run(app, Action::HoldPreviews(true), cancel, previews);
                }
            }
            if app.exit.is_some() || app.fatal.is_some() {
                break;
            }
        }
        if app.hold_previews && last_change.elapsed() >= SETTLE {
            update_and_run(app, Action::HoldPreviews(false), cancel, previews);
            dirty = true;
        }
        // SIGTERM / SIGHUP: in the explorer leave now; during extraction cancel like
        // Ctrl-C (finished work is saved), and a second signal leaves at once.
        if signalled.take() {
            if app.explorer.is_some() {
                app.exit = Some(ExitStatus::Cancelled.code());
            } else {
                update_and_run(app, Action::Cancel, cancel, previews);
            }
        }
        if app.explorer.is_none() {
            update_and_run(
                app,
                Action::Tick(started.elapsed().as_secs_f64()),
                cancel,
                previews,
            );
        }
    }
}

/// For the end-to-end tests only (built with the `test-hooks` feature, which `cargo test`
/// turns on and release builds never have): `SNOWSCOPE_TEST_PANIC=ui` panics on the UI
/// thread when the ranking arrives, `SNOWSCOPE_TEST_PANIC=worker` on the pipeline thread
/// at the first extraction progress, so a test can watch the terminal being restored.
#[cfg(feature = "test-hooks")]
fn test_panic(site: &str) {
    if std::env::var_os("SNOWSCOPE_TEST_PANIC").is_some_and(|v| v == site) {
        panic!("SNOWSCOPE_TEST_PANIC={site}");
    }
}

#[cfg(not(feature = "test-hooks"))]
fn test_panic(_site: &str) {}
