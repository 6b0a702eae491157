//! The explorer's whole state and `update(state, action) -> effects`. `update` does no I/O:
//! anything that touches the world (cancelling the worker, decoding previews, writing an
//! export) comes back as an [`Effect`] for the event loop to perform. The view-model of the
//! table lives in `explorer.rs`, the prompt in `prompt.rs`, the preview cache in
//! `preview_cache.rs` and the progress view's state in `progress.rs`.

use super::layout;
use super::model::Column;
use super::preview::{PreviewRequest, PreviewResult};
use crate::exit::ExitStatus;
use crate::export::Format;
use crate::pipeline::Event;
use ratatui::layout::Rect;

pub use super::explorer::{Distribution, Explorer, Focus, Loaded, Scope};
pub use super::preview_cache::{PreviewSlot, Previews};
pub use super::progress::{ProgressState, Stage};
pub use super::prompt::{Prompt, PromptKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    None,
    Help,
    /// The selected image's neighbours; the number is the highlighted neighbour.
    Detail(usize),
    Skips,
}

pub struct App {
    pub width: u16,
    pub height: u16,
    pub progress: ProgressState,
    pub explorer: Option<Explorer>,
    pub overlay: Overlay,
    pub prompt: Option<Prompt>,
    /// A one-off message in the status bar, cleared by the next key.
    pub message: Option<String>,
    /// Set when the app should end, with its exit code.
    pub exit: Option<u8>,
    /// Set when the worker failed; the loop ends and `run` returns it as the error.
    pub fatal: Option<String>,
    /// Name of the graphics protocol, or `None` when previews are off (set once at start).
    pub preview_protocol: Option<String>,
    /// The protocol and why it was chosen, for the status bar (set once at start).
    pub preview_note: Option<String>,
    /// The terminal's cell size in pixels (width, height), for the preview layout.
    pub cell_px: (u16, u16),
    /// Set while keys arrive faster than previews are worth sending: no preview is asked
    /// for or drawn until the keys have been quiet a moment (see `runtime::SETTLE`).
    pub hold_previews: bool,
    pub previews: Previews,
    preview_generation: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

/// Everything that can happen to the app.
pub enum Action {
    Resize(u16, u16),
    Tick(f64),
    Worker(Event),
    Ranking(usize),
    Loaded(Box<Loaded>),
    /// The folder holds what the remembered ranking on screen was made of; the files it
    /// skipped.
    Checked(Vec<crate::scan::Skip>),
    /// The folder's trait statistics, made after the table is shown.
    TraitStats(Option<Box<crate::explain::TraitStats>>),
    WorkerFailed(String),
    WorkerCancelled,
    Preview(PreviewResult),
    /// Keys are coming fast (`true`), or have been quiet a moment (`false`).
    HoldPreviews(bool),
    Notify(String),
    /// Ctrl-C, q in the progress view, or a termination signal.
    Cancel,
    Quit,
    Move(isize),
    HalfPage(Direction),
    Page(Direction),
    Top,
    Bottom,
    /// Mouse click at a screen cell.
    Click(u16, u16),
    Scroll(isize),
    FocusColumn(isize),
    SortFocused {
        descending: bool,
    },
    SortBy(Column),
    OpenPrompt(PromptKind, String),
    PromptChar(char),
    PromptBackspace,
    PromptSubmit,
    PromptCancel,
    SearchNext,
    SearchPrev,
    ToggleFence,
    ToggleDuplicates,
    /// Mark or unmark the selected image.
    ToggleMark,
    ToggleMarkedOnly,
    /// Tint the previews by where the pair differs.
    ToggleHeat,
    ClearFilters,
    ToggleScope,
    NextFocus,
    PrevFocus,
    ToggleZoom,
    OpenDetail,
    JumpClosest,
    DetailJump,
    ShowHelp,
    ShowSkips,
    CloseOverlay,
    Export(Format),
}

/// Work for the event loop.
#[derive(Debug, PartialEq)]
pub enum Effect {
    CancelWorker,
    LoadPreviews(Vec<PreviewRequest>),
    Export(Format),
    /// The marks changed: write them beside the folder's cache.
    SaveMarks,
}

impl App {
    pub fn new(dir: String, model: String, preview_protocol: Option<String>) -> Self {
        App {
            width: 80,
            height: 24,
            progress: ProgressState::new(dir, model),
            explorer: None,
            overlay: Overlay::None,
            prompt: None,
            message: None,
            exit: None,
            fatal: None,
            preview_protocol,
            preview_note: None,
            cell_px: super::graphics::DEFAULT_CELL,
            hold_previews: false,
            previews: Previews::default(),
            preview_generation: 0,
        }
    }

    pub fn area(&self) -> Rect {
        Rect::new(0, 0, self.width, self.height)
    }

    pub fn areas(&self) -> layout::Areas {
        let zoom = self.explorer.as_ref().is_some_and(|e| e.zoom);
        layout::explorer(self.area(), zoom, self.preview_protocol.is_some())
    }

    fn page(&self) -> usize {
        layout::table_rows(self.areas().table).max(1)
    }

    /// The images the preview pane shows: the selection and its closest match (or, in the
    /// detail view, the highlighted neighbour).
    pub fn preview_pair(&self) -> Option<(u32, Option<u32>)> {
        let ex = self.explorer.as_ref()?;
        let row = ex.selected_row()?;
        let image = ex.table.image(row);
        let other = match self.overlay {
            Overlay::Detail(i) => image.neighbours.get(i).map(|n| n.0),
            _ => image.closest,
        };
        let other = other.map(|idx| ex.table.row_of_index[idx]);
        Some((row, other))
    }

    /// Previews the current screen needs, at the slot sizes of the current layout.
    /// As requests of generation 0 (`request_previews` numbers them).
    pub fn wanted_previews(&self) -> Vec<PreviewRequest> {
        let (Some(ex), Some(_)) = (&self.explorer, &self.preview_protocol) else {
            return Vec::new();
        };
        if layout::too_small(self.area()) || self.overlay == Overlay::Help {
            return Vec::new();
        }
        let slots = self
            .areas()
            .preview
            .and_then(|p| layout::preview_slots(p, self.cell_px));
        let Some(slots) = slots else {
            return Vec::new();
        };
        let Some((row, other)) = self.preview_pair() else {
            return Vec::new();
        };
        [Some((row, other)), other.map(|o| (o, Some(row)))]
            .into_iter()
            .zip(slots)
            .filter_map(|(pair, slot)| {
                let (r, partner) = pair?;
                let key = ex.preview_key(r, partner, slot);
                Some(PreviewRequest {
                    key,
                    path: ex.files[key.index].clone(),
                    against: key.against.map(|i| ex.files[i].clone()),
                    generation: 0,
                })
            })
            .collect()
    }

    /// Asks for the previews that are neither cached nor on their way.
    fn request_previews(&mut self) -> Option<Effect> {
        if self.hold_previews {
            return None;
        }
        let missing: Vec<_> = self
            .wanted_previews()
            .into_iter()
            .filter(|req| self.previews.get(&req.key).is_none())
            .collect();
        if missing.is_empty() {
            return None;
        }
        self.preview_generation += 1;
        let requests = missing
            .into_iter()
            .map(|req| {
                self.previews.insert(req.key, PreviewSlot::Pending);
                PreviewRequest {
                    generation: self.preview_generation,
                    ..req
                }
            })
            .collect();
        Some(Effect::LoadPreviews(requests))
    }

    /// Keeps the selection inside the view and on screen.
    fn clamp_scroll(&mut self) {
        let page = self.page();
        if let Some(ex) = &mut self.explorer {
            ex.clamp_scroll(page);
        }
    }
}

/// Applies `action` to `app`. Pure: no I/O, only state changes and effects to run.
pub fn update(app: &mut App, action: Action) -> Vec<Effect> {
    let mut effects = Vec::new();
    let is_key = !matches!(
        action,
        Action::Tick(_)
            | Action::Worker(_)
            | Action::Preview(_)
            | Action::HoldPreviews(_)
            | Action::Notify(_)
            | Action::Ranking(_)
            | Action::Loaded(_)
            | Action::Checked(_)
            | Action::TraitStats(_)
            | Action::WorkerFailed(_)
            | Action::WorkerCancelled
            | Action::Resize(..)
    );
    if is_key {
        app.message = None;
    }
    match action {
        Action::Resize(w, h) => {
            app.width = w;
            app.height = h;
        }
        Action::Tick(elapsed) => app.progress.elapsed_s = elapsed,
        Action::Worker(event) => app.progress.apply(event),
        Action::Ranking(n) => app.progress.apply(Event::Ranking(n)),
        Action::Loaded(loaded) => {
            let mut explorer = Explorer::new(*loaded);
            if let Some(shown) = &app.explorer {
                // The folder changed while the remembered ranking was checked.
                app.message = Some(
                    "the folder changed since it was last ranked: the table is up to date now"
                        .into(),
                );
                explorer.ranking_number = shown.ranking_number + 1;
                app.previews = Previews::default();
            }
            app.explorer = Some(explorer);
            if app.overlay == Overlay::Skips {
                app.overlay = Overlay::None;
            }
        }
        Action::TraitStats(stats) => {
            if let Some(ex) = app.explorer.as_mut() {
                ex.trait_stats = stats.map(|s| *s);
            }
        }
        Action::Checked(skipped) => {
            if let Some(ex) = app.explorer.as_mut() {
                ex.checking = false;
                ex.skipped = skipped;
            }
        }
        // A failed check leaves the remembered ranking on screen, and says so.
        Action::WorkerFailed(e) => match app.explorer.as_mut() {
            Some(ex) if ex.checking => {
                ex.checking = false;
                app.message = Some(format!("{e}; the table is as last ranked"));
            }
            _ => app.fatal = Some(e),
        },
        Action::WorkerCancelled => app.exit = Some(ExitStatus::Cancelled.code()),
        Action::Preview(result) => app.previews.accept(result),
        Action::HoldPreviews(hold) => app.hold_previews = hold,
        Action::Notify(text) => app.message = Some(text),
        Action::Cancel => match app.explorer {
            Some(_) => app.exit = Some(ExitStatus::Ok.code()),
            // A second request while the batch finishes, or any while the features are
            // ranked (all of them are saved by then; at a million images the search takes
            // minutes): leave now.
            None if matches!(app.progress.stage, Stage::Cancelling | Stage::Ranking(_)) => {
                app.exit = Some(ExitStatus::Cancelled.code());
            }
            None => {
                app.progress.stage = Stage::Cancelling;
                effects.push(Effect::CancelWorker);
            }
        },
        Action::Quit => {
            if app.explorer.is_some() {
                app.exit = Some(ExitStatus::Ok.code());
            } else {
                return update(app, Action::Cancel);
            }
        }
        Action::ShowHelp => app.overlay = Overlay::Help,
        Action::ShowSkips => app.overlay = Overlay::Skips,
        Action::CloseOverlay => app.overlay = Overlay::None,
        Action::OpenPrompt(kind, text) => open_prompt(app, kind, text),
        Action::PromptChar(c) => {
            if let Some(p) = &mut app.prompt {
                p.text.push(c);
            }
            apply_prompt(app, false);
        }
        Action::PromptBackspace => {
            if let Some(p) = &mut app.prompt {
                p.text.pop();
            }
            apply_prompt(app, false);
        }
        Action::PromptSubmit => apply_prompt(app, true),
        Action::PromptCancel => cancel_prompt(app),
        other => explorer_action(app, other, &mut effects),
    }
    app.clamp_scroll();
    effects.extend(app.request_previews());
    effects
}

fn open_prompt(app: &mut App, kind: PromptKind, text: String) {
    let Some(ex) = &app.explorer else {
        return;
    };
    app.overlay = Overlay::None;
    app.prompt = Some(Prompt::new(kind, text, ex));
    apply_prompt(app, false);
}

/// Applies the prompt's text as the user types; `submit` closes the prompt when the text
/// is valid.
fn apply_prompt(app: &mut App, submit: bool) {
    let (Some(prompt), Some(ex)) = (&mut app.prompt, &mut app.explorer) else {
        return;
    };
    if prompt.apply(ex) && submit {
        let kind = prompt.kind;
        app.prompt = None;
        if kind == PromptKind::Search && ex.search.is_some() && ex.find(0, true, true).is_none() {
            app.message = Some("no file name matches the search".into());
        }
    }
}

fn cancel_prompt(app: &mut App) {
    if let (Some(prompt), Some(ex)) = (app.prompt.take(), &mut app.explorer) {
        prompt.cancel(ex);
    }
}

fn explorer_action(app: &mut App, action: Action, effects: &mut Vec<Effect>) {
    let page = app.page();
    let areas = app.areas();
    let overlay = app.overlay;
    let Some(ex) = &mut app.explorer else {
        return;
    };
    match action {
        Action::Move(d) => match overlay {
            Overlay::Detail(i) => {
                let last = ex.neighbour_count().saturating_sub(1);
                app.overlay = Overlay::Detail(i.saturating_add_signed(d).min(last));
            }
            _ => ex.step(d),
        },
        Action::Scroll(d) => ex.step(d),
        Action::HalfPage(dir) => ex.step(signed(dir, page.div_ceil(2))),
        Action::Page(dir) => ex.step(signed(dir, page)),
        Action::Top => ex.selected = 0,
        Action::Bottom => ex.select_last(),
        Action::Click(x, y) => ex.click(&areas, x, y),
        Action::FocusColumn(d) => ex.focus_column(d),
        Action::SortFocused { descending } => ex.sort_focused(descending),
        Action::SortBy(column) => ex.sort_by(column),
        Action::SearchNext => app.message = ex.search_step(true),
        Action::SearchPrev => app.message = ex.search_step(false),
        Action::ToggleFence => ex.toggle_fence(),
        Action::ToggleDuplicates => ex.toggle_duplicates(),
        Action::ToggleMarkedOnly => ex.toggle_marked_only(),
        Action::ToggleMark => {
            if let Some(note) = ex.toggle_mark() {
                app.message = Some(note);
                effects.push(Effect::SaveMarks);
            }
        }
        Action::ToggleHeat if app.preview_protocol.is_some() => {
            ex.heat = !ex.heat;
            app.message = Some(if ex.heat {
                "red: where each image differs most from the other (w hides it)".into()
            } else {
                "heat overlay off".into()
            });
        }
        Action::ToggleHeat => app.message = Some("previews are off (--preview none)".into()),
        Action::ClearFilters if overlay != Overlay::None => app.overlay = Overlay::None,
        Action::ClearFilters => ex.clear(),
        Action::ToggleScope => ex.toggle_scope(),
        Action::NextFocus => ex.cycle_focus(&areas, true),
        Action::PrevFocus => ex.cycle_focus(&areas, false),
        Action::ToggleZoom if app.preview_protocol.is_some() => ex.toggle_zoom(),
        Action::ToggleZoom => app.message = Some("previews are off (--preview none)".into()),
        Action::OpenDetail if ex.selected_row().is_some() => app.overlay = Overlay::Detail(0),
        Action::JumpClosest | Action::DetailJump => {
            let neighbour = match (&action, overlay) {
                (Action::DetailJump, Overlay::Detail(i)) => Some(i),
                _ => None,
            };
            match ex.jump(neighbour) {
                Ok(note) => {
                    app.message = note;
                    app.overlay = Overlay::None;
                }
                Err(e) => app.message = Some(e),
            }
        }
        // An export is of the folder as it is, not as it was.
        Action::Export(_) if app.explorer.as_ref().is_some_and(|ex| ex.checking) => {
            app.message = Some("the folder is still being checked; export once it is done".into());
        }
        Action::Export(format) => effects.push(Effect::Export(format)),
        _ => {}
    }
}

fn signed(dir: Direction, n: usize) -> isize {
    match dir {
        Direction::Up => -(n as isize),
        Direction::Down => n as isize,
    }
}

impl App {
    /// The current view as CSV or JSON, with the ranking's own columns.
    pub fn export_text(&self, format: Format) -> Option<String> {
        Some(self.explorer.as_ref()?.export_text(format))
    }
}
