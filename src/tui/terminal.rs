//! The terminal the explorer owns: raw mode and the alternate screen on the way in, the
//! same undone on every way out (errors, panics, signals), the graphics protocol probe, and
//! one synchronized frame at a time.

use super::app::App;
use super::view;
use super::{GraphicsProtocol, PreviewMode};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::{
    cursor, event, execute, queue,
    terminal::{self, BeginSynchronizedUpdate, EndSynchronizedUpdate},
};
use ratatui_image::picker::{Picker, ProtocolType};
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

pub(super) fn pick_protocol(mode: PreviewMode) -> Option<Picker> {
    let query = || {
        Picker::from_query_stdio().unwrap_or_else(|e| {
            tracing::warn!("terminal graphics query failed: {e}; using halfblocks");
            Picker::halfblocks()
        })
    };
    let forced = |t: ProtocolType| {
        let mut p = query();
        p.set_protocol_type(t);
        Some(p)
    };
    match mode {
        PreviewMode::None => None,
        PreviewMode::Halfblocks => Some(Picker::halfblocks()),
        PreviewMode::Force(GraphicsProtocol::Kitty) => forced(ProtocolType::Kitty),
        PreviewMode::Force(GraphicsProtocol::Sixel) => forced(ProtocolType::Sixel),
        PreviewMode::Force(GraphicsProtocol::Iterm2) => forced(ProtocolType::Iterm2),
        PreviewMode::Auto => {
            let mut p = query();
            // Sixel through tmux passthrough is fragile (scrolling, stale images); kitty's
            // placeholders and halfblocks are not. `--preview sixel` still forces it.
            if p.tmux_detected() && p.protocol_type() == ProtocolType::Sixel {
                p.set_protocol_type(ProtocolType::Halfblocks);
            }
            Some(p)
        }
    }
}

/// Draws one frame inside a synchronized update, so the terminal shows it at once.
pub(super) fn draw(terminal: &mut Term, app: &App) -> anyhow::Result<()> {
    queue!(terminal.backend_mut(), BeginSynchronizedUpdate)?;
    terminal.draw(|f| view::draw(f, app))?;
    execute!(terminal.backend_mut(), EndSynchronizedUpdate)?;
    Ok(())
}
