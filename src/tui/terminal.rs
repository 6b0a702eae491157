//! The terminal the explorer owns: raw mode and the alternate screen on the way in, the
//! same undone on every way out (errors, panics, signals), the graphics protocol probe, and
//! one synchronized frame at a time.

use super::PreviewMode;
use super::app::App;
use super::graphics::{self, Facts, Graphics};
use super::kitty_direct;
use super::probe;
use super::view;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::{
    cursor, event, execute, queue,
    terminal::{self, BeginSynchronizedUpdate, EndSynchronizedUpdate},
};
use ratatui_image::picker::Picker;
use std::io::Stdout;
use std::sync::atomic::{AtomicBool, Ordering};

pub(super) type Term = Terminal<CrosstermBackend<Stdout>>;

/// True while the terminal is in raw mode / the alternate screen, so the panic hook and the
/// guard restore it once.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The thread that owns the terminal: a panic there restores it before the message prints.
static UI_THREAD: std::sync::OnceLock<std::thread::ThreadId> = std::sync::OnceLock::new();

pub(super) fn enter_terminal() -> std::io::Result<Term> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    let _ = UI_THREAD.set(std::thread::current().id());
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let on_ui = UI_THREAD.get() == Some(&std::thread::current().id());
            if on_ui || !ACTIVE.load(Ordering::SeqCst) {
                restore_terminal();
                previous(info);
            } else {
                // A worker's panic is caught and reported in the UI; printing it here
                // would scribble over the screen.
                tracing::error!(
                    "panic in thread {}: {info}",
                    std::thread::current().name().unwrap_or("?")
                );
            }
        }));
    });
    ACTIVE.store(true, Ordering::SeqCst);
    terminal::enable_raw_mode()?;
    execute!(
        std::io::stdout(),
        terminal::EnterAlternateScreen,
        event::EnableMouseCapture,
        cursor::Hide
    )?;
    Terminal::new(CrosstermBackend::new(std::io::stdout()))
}

/// Leaves raw mode and the alternate screen, shows the cursor, stops mouse reporting.
/// Safe to call more than once.
pub(super) fn restore_terminal() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let _ = execute!(
        std::io::stdout(),
        EndSynchronizedUpdate,
        event::DisableMouseCapture,
        terminal::LeaveAlternateScreen,
        cursor::Show
    );
    let _ = terminal::disable_raw_mode();
}

/// Restores the terminal on every way out of `run`, errors included.
pub(super) struct RestoreGuard;

impl Drop for RestoreGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// How long the terminal may take to answer the graphics queries (over SSH a round trip
/// can be slow; a terminal that answers ends the wait at once).
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Chooses how previews are drawn (`None`: not at all). Asks the terminal unless told
/// halfblocks; must run in the alternate screen, in raw mode, before anything reads input.
pub(super) fn pick_graphics(mode: PreviewMode) -> Option<Graphics> {
    if mode == PreviewMode::None {
        return None;
    }
    let winsize = terminal::window_size()
        .ok()
        .map(|w| (w.columns, w.rows, w.width, w.height));
    let mut facts = Facts {
        winsize,
        ..Facts::default()
    };
    if mode != PreviewMode::Halfblocks {
        // ratatui-image's tmux detection, so that its protocols and the probe agree; it
        // also turns on tmux's passthrough, which the probe's wrapped queries need.
        facts.tmux = Picker::halfblocks().tmux_detected();
        facts.iterm2_env = graphics::iterm2_from_env();
        facts.answers = probe::ask(facts.tmux, PROBE_TIMEOUT).unwrap_or_else(|e| {
            tracing::warn!("cannot ask the terminal about graphics: {e}");
            probe::Answers::default()
        });
    }
    let choice = graphics::choose(mode, &facts);
    tracing::info!(
        ?facts,
        choice = %choice.describe(),
        "preview protocol"
    );
    Some(Graphics::new(choice))
}

/// Draws one frame inside a synchronized update, so the terminal shows it at once; kitty's
/// direct placements (when that is the method) follow the frame's cells.
pub(super) fn draw(
    terminal: &mut Term,
    app: &App,
    kitty: Option<&mut kitty_direct::Screen>,
) -> anyhow::Result<()> {
    queue!(terminal.backend_mut(), BeginSynchronizedUpdate)?;
    terminal.draw(|f| view::draw(f, app))?;
    if let Some(screen) = kitty {
        screen.sync(terminal.backend_mut(), &view::preview::kitty(app))?;
    }
    execute!(terminal.backend_mut(), EndSynchronizedUpdate)?;
    Ok(())
}
