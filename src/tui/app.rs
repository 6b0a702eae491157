//! The explorer's whole state and `update(state, action) -> effects`. `update` does no I/O:
//! anything that touches the world (cancelling the worker, decoding previews, writing an
//! export) comes back as an [`Effect`] for the event loop to perform.

use super::layout;
use super::model::{Column, Filter, Pattern, ScoreFilter, Sort, Table, visible_columns};
use super::preview::{PreviewKey, PreviewRequest, PreviewResult};
use crate::export::Format;
use crate::pipeline::{Event, Progress};
use crate::rank::{BoxStats, Ranking, box_stats};
use crate::scan::Skip;
use ratatui::layout::Rect;
use ratatui_image::protocol::Protocol;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

/// What the feature worker is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    Scanning,
    Extracting,
    Ranking(usize),
    Cancelling,
}

/// The progress view's state.
#[derive(Debug, Clone)]
pub struct ProgressState {
    pub dir: String,
    pub model: String,
    pub stage: Stage,
    pub total: usize,
    pub cached: usize,
    pub progress: Progress,
    pub skipped: Vec<Skip>,
    pub notices: Vec<String>,
    /// Seconds since start, for the spinner and elapsed time.
    pub elapsed_s: f64,
}

/// What the worker hands over when features and ranking are ready.
pub struct Loaded {
    pub ranking: Ranking,
    /// File of each feature-set row (`RankedImage::index`), for previews.
    pub files: Vec<PathBuf>,
    pub model: String,
    pub skipped: Vec<Skip>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Table,
    Boxplot,
    Preview,
}

/// Which rows the boxplot summarises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Shown,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    Search,
    PathFilter,
    ScoreFilter,
}

impl PromptKind {
    pub fn label(self) -> &'static str {
        match self {
            PromptKind::Search => "/",
            PromptKind::PathFilter => "& path regex: ",
            PromptKind::ScoreFilter => "# score: ",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Prompt {
    pub kind: PromptKind,
    pub text: String,
    pub error: Option<String>,
    /// What to go back to on Esc (the filter or search before the prompt opened).
    previous: Option<Pattern>,
    previous_score: Option<ScoreFilter>,
    /// The text last applied, so Enter does not filter 100,000 rows twice.
    applied: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    None,
    Help,
    /// The selected image's neighbours; the number is the highlighted neighbour.
    Detail(usize),
    Skips,
}

/// Boxplot data for one scope: statistics and the points beyond the whiskers.
#[derive(Debug, Clone, Default)]
pub struct Distribution {
    pub stats: Option<BoxStats>,
    pub outliers: Vec<f32>,
}

impl Distribution {
    pub fn of(values: &[f32]) -> Self {
        let stats = box_stats(values);
        let outliers = stats.map_or_else(Vec::new, |s| {
            values
                .iter()
                .copied()
                .filter(|&v| v < s.lower_whisker || v > s.upper_whisker)
                .collect()
        });
        Distribution { stats, outliers }
    }
}

pub struct Explorer {
    pub table: Table,
    pub files: Vec<PathBuf>,
    pub model: String,
    pub skipped: Vec<Skip>,
    pub columns: Vec<Column>,
    pub sort: Sort,
    pub filter: Filter,
    mask: Vec<bool>,
    /// Rows on screen, in order (indices into `table`).
    pub view: Vec<u32>,
    pub search: Option<Pattern>,
    /// Position in `view`.
    pub selected: usize,
    /// First visible position in `view`.
    pub offset: usize,
    pub focus: Focus,
    /// Focused column (index into `columns`) for `[` / `]`.
    pub column: usize,
    pub scope: Scope,
    pub zoom: bool,
    pub shown_dist: Distribution,
    pub all_dist: Distribution,
}

impl Explorer {
    pub fn new(loaded: Loaded) -> Self {
        let columns = visible_columns(loaded.ranking.config.score);
        let table = Table::new(loaded.ranking);
        let scores: Vec<f32> = table
            .ranking
            .images
            .iter()
            .filter_map(|i| i.score)
            .collect();
        let all_dist = Distribution::of(&scores);
        let mask = vec![true; table.len()];
        let sort = Sort::default();
        let view = table.view(sort, &mask);
        let column = columns.iter().position(|c| *c == sort.column).unwrap_or(0);
        Explorer {
            files: loaded.files,
            model: loaded.model,
            skipped: loaded.skipped,
            columns,
            sort,
            filter: Filter::default(),
            mask,
            view,
            search: None,
            selected: 0,
            offset: 0,
            focus: Focus::Table,
            column,
            scope: Scope::Shown,
            zoom: false,
            shown_dist: all_dist.clone(),
            all_dist,
            table,
        }
    }

    /// Table row of the selection.
    pub fn selected_row(&self) -> Option<u32> {
        self.view.get(self.selected).copied()
    }

    pub fn distribution(&self) -> &Distribution {
        match self.scope {
            Scope::Shown => &self.shown_dist,
            Scope::All => &self.all_dist,
        }
    }

    /// Re-applies filter and sort, keeping the same image selected when it is still shown.
    fn refresh(&mut self, filter_changed: bool) {
        let keep = self.selected_row();
        if filter_changed {
            self.mask = self.table.mask(&self.filter);
        }
        self.view = self.table.view(self.sort, &self.mask);
        if filter_changed {
            self.shown_dist = if self.filter.is_empty() {
                self.all_dist.clone()
            } else {
                let scores: Vec<f32> = self
                    .view
                    .iter()
                    .filter_map(|&r| self.table.image(r).score)
                    .collect();
                Distribution::of(&scores)
            };
        }
        self.selected = keep
            .and_then(|row| self.view.iter().position(|&r| r == row))
            .unwrap_or(0);
    }

    fn set_sort(&mut self, sort: Sort) {
        self.sort = sort;
        if let Some(i) = self.columns.iter().position(|c| *c == sort.column) {
            self.column = i;
        }
        self.refresh(false);
    }

    /// Selects table row `row`, clearing the filter when it hides that row.
    fn select_row(&mut self, row: u32) -> Option<String> {
        let mut note = None;
        if !self.mask[row as usize] {
            self.filter = Filter::default();
            self.refresh(true);
            note = Some("the filter hid that image, so it was cleared".to_string());
        }
        if let Some(pos) = self.view.iter().position(|&r| r == row) {
            self.selected = pos;
        }
        note
    }

    /// Next (or previous) position in the view whose path matches the search.
    fn find(&self, from: usize, forward: bool, include_from: bool) -> Option<usize> {
        let pat = self.search.as_ref()?;
        let n = self.view.len();
        if n == 0 {
            return None;
        }
        let start = if include_from { 0 } else { 1 };
        (start..=n).find_map(|step| {
            let pos = if forward {
                (from + step) % n
            } else {
                (from + n * 2 - step) % n
            };
            let row = self.view[pos] as usize;
            self.table.path_matches(pat, row as u32).then_some(pos)
        })
    }
}

/// A cache of encoded previews, oldest dropped first.
#[derive(Default)]
pub struct Previews {
    pub entries: HashMap<PreviewKey, PreviewSlot>,
    order: VecDeque<PreviewKey>,
}

pub enum PreviewSlot {
    Pending,
    Ready(Box<Protocol>),
    Failed(String),
}

/// Encoded previews kept; enough for a few pages of back-and-forth at two sizes.
const PREVIEW_CACHE: usize = 48;

impl Previews {
    fn insert(&mut self, key: PreviewKey, slot: PreviewSlot) {
        if self.entries.insert(key, slot).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > PREVIEW_CACHE {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
    }

    fn remove(&mut self, key: &PreviewKey) {
        self.entries.remove(key);
        self.order.retain(|k| k != key);
    }

    pub fn get(&self, key: &PreviewKey) -> Option<&PreviewSlot> {
        self.entries.get(key)
    }
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
    WorkerFailed(String),
    WorkerCancelled,
    Preview(PreviewResult),
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
}

impl App {
    pub fn new(dir: String, model: String, preview_protocol: Option<String>) -> Self {
        App {
            width: 80,
            height: 24,
            progress: ProgressState {
                dir,
                model,
                stage: Stage::Scanning,
                total: 0,
                cached: 0,
                progress: Progress::default(),
                skipped: Vec::new(),
                notices: Vec::new(),
                elapsed_s: 0.0,
            },
            explorer: None,
            overlay: Overlay::None,
            prompt: None,
            message: None,
            exit: None,
            fatal: None,
            preview_protocol,
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
    pub fn wanted_previews(&self) -> Vec<(PreviewKey, PathBuf)> {
        let (Some(ex), Some(_)) = (&self.explorer, &self.preview_protocol) else {
            return Vec::new();
        };
        if layout::too_small(self.area()) || self.overlay == Overlay::Help {
            return Vec::new();
        }
        let Some(slots) = self.areas().preview.and_then(layout::preview_slots) else {
            return Vec::new();
        };
        let Some((row, other)) = self.preview_pair() else {
            return Vec::new();
        };
        [Some(row), other]
            .into_iter()
            .zip(slots)
            .filter_map(|(r, slot)| {
                let index = ex.table.image(r?).index;
                Some((
                    PreviewKey {
                        index,
                        width: slot.width,
                        height: slot.height,
                    },
                    ex.files[index].clone(),
                ))
            })
            .collect()
    }

    /// Asks for the previews that are neither cached nor on their way.
    fn request_previews(&mut self) -> Option<Effect> {
        let missing: Vec<_> = self
            .wanted_previews()
            .into_iter()
            .filter(|(key, _)| self.previews.get(key).is_none())
            .collect();
        if missing.is_empty() {
            return None;
        }
        self.preview_generation += 1;
        let requests = missing
            .into_iter()
            .map(|(key, path)| {
                self.previews.insert(key, PreviewSlot::Pending);
                PreviewRequest {
                    key,
                    path,
                    generation: self.preview_generation,
                }
            })
            .collect();
        Some(Effect::LoadPreviews(requests))
    }

    /// Keeps the selection inside the view and on screen.
    fn clamp_scroll(&mut self) {
        let page = self.page();
        if let Some(ex) = &mut self.explorer {
            let n = ex.view.len();
            ex.selected = ex.selected.min(n.saturating_sub(1));
            if ex.selected < ex.offset {
                ex.offset = ex.selected;
            } else if ex.selected >= ex.offset + page {
                ex.offset = ex.selected + 1 - page;
            }
            ex.offset = ex.offset.min(n.saturating_sub(page));
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
            | Action::Notify(_)
            | Action::Ranking(_)
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
        Action::Worker(event) => worker_event(app, event),
        Action::Ranking(n) => {
            if app.progress.stage != Stage::Cancelling {
                app.progress.stage = Stage::Ranking(n);
            }
        }
        Action::Loaded(loaded) => {
            app.explorer = Some(Explorer::new(*loaded));
            if app.overlay == Overlay::Skips {
                app.overlay = Overlay::None;
            }
        }
        Action::WorkerFailed(e) => app.fatal = Some(e),
        Action::WorkerCancelled => app.exit = Some(130),
        Action::Preview(result) => {
            match result.outcome {
                Ok(protocol) => app
                    .previews
                    .insert(result.key, PreviewSlot::Ready(protocol)),
                Err(super::preview::Failure::Stale) => app.previews.remove(&result.key),
                Err(super::preview::Failure::Error(e)) => {
                    app.previews.insert(result.key, PreviewSlot::Failed(e))
                }
            };
        }
        Action::Notify(text) => app.message = Some(text),
        Action::Cancel => match app.explorer {
            Some(_) => app.exit = Some(0),
            None if app.progress.stage == Stage::Cancelling => {
                // A second request while the batch finishes: leave now.
                app.exit = Some(130);
            }
            None => {
                app.progress.stage = Stage::Cancelling;
                effects.push(Effect::CancelWorker);
            }
        },
        Action::Quit => {
            if app.explorer.is_some() {
                app.exit = Some(0);
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

fn worker_event(app: &mut App, event: Event) {
    let p = &mut app.progress;
    match event {
        Event::Notice(text) => p.notices.push(text),
        Event::Planned {
            total,
            cached,
            model,
        } => {
            p.total = total;
            p.cached = cached;
            p.model = model;
            p.progress.done = cached;
            p.progress.total = total;
            if p.stage == Stage::Scanning {
                p.stage = Stage::Extracting;
            }
        }
        Event::Progress(progress) => p.progress = progress,
        Event::Skipped(skip) => p.skipped.push(skip),
    }
}

fn open_prompt(app: &mut App, kind: PromptKind, text: String) {
    let Some(ex) = &app.explorer else {
        return;
    };
    app.overlay = Overlay::None;
    app.prompt = Some(Prompt {
        kind,
        text,
        error: None,
        previous: match kind {
            PromptKind::Search => ex.search.clone(),
            PromptKind::PathFilter => ex.filter.path.clone(),
            PromptKind::ScoreFilter => None,
        },
        previous_score: ex.filter.score,
        applied: None,
    });
    apply_prompt(app, false);
}

/// Applies the prompt's text as the user types (search and filters are live); `submit`
/// closes the prompt when the text is valid.
fn apply_prompt(app: &mut App, submit: bool) {
    let (Some(prompt), Some(ex)) = (&mut app.prompt, &mut app.explorer) else {
        return;
    };
    let text = prompt.text.clone();
    let unchanged = prompt.applied.as_ref() == Some(&text);
    let result: Result<(), String> = match prompt.kind {
        _ if unchanged => Ok(()),
        PromptKind::Search => {
            if text.is_empty() {
                ex.search = None;
                Ok(())
            } else {
                Pattern::new(&text).map(|p| {
                    ex.search = Some(p);
                    // Incremental: jump to the first match from the selection on.
                    if let Some(pos) = ex.find(ex.selected, true, true) {
                        ex.selected = pos;
                    }
                })
            }
        }
        PromptKind::PathFilter => {
            let pattern = if text.is_empty() {
                Ok(None)
            } else {
                Pattern::new(&text).map(Some)
            };
            pattern.map(|p| {
                ex.filter.path = p;
                ex.refresh(true);
            })
        }
        PromptKind::ScoreFilter => {
            if text.trim().is_empty() {
                ex.filter.score = None;
                ex.refresh(true);
                Ok(())
            } else {
                ScoreFilter::parse(&text).map(|s| {
                    ex.filter.score = Some(s);
                    ex.refresh(true);
                })
            }
        }
    };
    match result {
        Ok(()) => {
            prompt.error = None;
            prompt.applied = Some(text);
            if submit {
                let kind = prompt.kind;
                app.prompt = None;
                if kind == PromptKind::Search
                    && ex.search.is_some()
                    && ex.find(0, true, true).is_none()
                {
                    app.message = Some("no file name matches the search".into());
                }
            }
        }
        Err(e) => prompt.error = Some(e),
    }
}

fn cancel_prompt(app: &mut App) {
    let (Some(prompt), Some(ex)) = (app.prompt.take(), &mut app.explorer) else {
        return;
    };
    match prompt.kind {
        PromptKind::Search => ex.search = prompt.previous,
        PromptKind::PathFilter => {
            ex.filter.path = prompt.previous;
            ex.refresh(true);
        }
        PromptKind::ScoreFilter => {
            ex.filter.score = prompt.previous_score;
            ex.refresh(true);
        }
    }
}

fn explorer_action(app: &mut App, action: Action, effects: &mut Vec<Effect>) {
    let page = app.page();
    let areas = app.areas();
    let overlay = app.overlay;
    let Some(ex) = &mut app.explorer else {
        return;
    };
    let last = ex.view.len().saturating_sub(1);
    let step = |ex: &mut Explorer, delta: isize| {
        ex.selected = ex.selected.saturating_add_signed(delta).min(last);
    };
    match action {
        Action::Move(d) => {
            if let Overlay::Detail(i) = overlay {
                let k = ex
                    .selected_row()
                    .map_or(0, |r| ex.table.image(r).neighbours.len());
                app.overlay = Overlay::Detail(i.saturating_add_signed(d).min(k.saturating_sub(1)));
            } else {
                step(ex, d);
            }
        }
        Action::Scroll(d) => step(ex, d),
        Action::HalfPage(dir) => step(ex, signed(dir, page.div_ceil(2))),
        Action::Page(dir) => step(ex, signed(dir, page)),
        Action::Top => ex.selected = 0,
        Action::Bottom => ex.selected = last,
        Action::Click(x, y) => {
            let t = areas.table;
            // A click on a column title sorts by it (again: reverses), like its number key.
            if y == t.y + 1 && x > t.x && x < t.right() {
                if let Some(i) = layout::column_at(&ex.columns, t, x) {
                    let column = ex.columns[i];
                    let descending = if ex.sort.column == column {
                        !ex.sort.descending
                    } else {
                        column.natural_descending()
                    };
                    ex.set_sort(Sort { column, descending });
                }
                ex.focus = Focus::Table;
            } else if x >= t.x && x < t.right() && y >= t.y + 2 && y < t.bottom().saturating_sub(1)
            {
                // Data rows start below the top border and the header.
                let pos = ex.offset + (y - t.y - 2) as usize;
                if pos < ex.view.len() {
                    ex.selected = pos;
                }
                ex.focus = Focus::Table;
            } else if areas.boxplot.is_some_and(|b| contains(b, x, y)) {
                ex.focus = Focus::Boxplot;
            } else if areas.preview.is_some_and(|p| contains(p, x, y)) {
                ex.focus = Focus::Preview;
            }
        }
        Action::FocusColumn(d) => match ex.focus {
            Focus::Table => {
                ex.column = ex.column.saturating_add_signed(d).min(ex.columns.len() - 1);
            }
            Focus::Boxplot => {
                ex.scope = match ex.scope {
                    Scope::Shown => Scope::All,
                    Scope::All => Scope::Shown,
                }
            }
            Focus::Preview => {}
        },
        Action::SortFocused { descending } => {
            let column = ex.columns[ex.column];
            ex.set_sort(Sort { column, descending });
        }
        Action::SortBy(column) => {
            let descending = if ex.sort.column == column {
                !ex.sort.descending
            } else {
                column.natural_descending()
            };
            ex.set_sort(Sort { column, descending });
        }
        Action::SearchNext | Action::SearchPrev => {
            if ex.search.is_none() {
                app.message = Some("no search yet: press / to search file names".into());
            } else if let Some(pos) =
                ex.find(ex.selected, matches!(action, Action::SearchNext), false)
            {
                ex.selected = pos;
            } else {
                app.message = Some("no file name matches the search".into());
            }
        }
        Action::ToggleFence => {
            ex.filter.beyond_fence = !ex.filter.beyond_fence;
            ex.refresh(true);
        }
        Action::ToggleDuplicates => {
            ex.filter.duplicates = !ex.filter.duplicates;
            ex.refresh(true);
        }
        Action::ClearFilters => {
            if overlay != Overlay::None {
                app.overlay = Overlay::None;
            } else if ex.zoom {
                ex.zoom = false;
            } else {
                ex.search = None;
                if !ex.filter.is_empty() {
                    ex.filter = Filter::default();
                    ex.refresh(true);
                }
            }
        }
        Action::ToggleScope => {
            ex.scope = match ex.scope {
                Scope::Shown => Scope::All,
                Scope::All => Scope::Shown,
            }
        }
        Action::NextFocus | Action::PrevFocus => {
            let order = [Focus::Table, Focus::Boxplot, Focus::Preview];
            let has = |f: &Focus| match f {
                Focus::Table => areas.table.width > 0,
                Focus::Boxplot => areas.boxplot.is_some(),
                Focus::Preview => areas.preview.is_some(),
            };
            let present: Vec<Focus> = order.into_iter().filter(has).collect();
            if let Some(i) = present.iter().position(|f| *f == ex.focus) {
                let n = present.len();
                let next = if matches!(action, Action::NextFocus) {
                    (i + 1) % n
                } else {
                    (i + n - 1) % n
                };
                ex.focus = present[next];
            } else if let Some(f) = present.first() {
                ex.focus = *f;
            }
        }
        Action::ToggleZoom => {
            if app.preview_protocol.is_some() {
                ex.zoom = !ex.zoom;
                ex.focus = if ex.zoom {
                    Focus::Preview
                } else {
                    Focus::Table
                };
            } else {
                app.message = Some("previews are off (--preview none)".into());
            }
        }
        Action::OpenDetail if ex.selected_row().is_some() => app.overlay = Overlay::Detail(0),
        Action::JumpClosest | Action::DetailJump => {
            let target = ex.selected_row().and_then(|r| {
                let image = ex.table.image(r);
                match (&action, overlay) {
                    (Action::DetailJump, Overlay::Detail(i)) => {
                        image.neighbours.get(i).map(|n| n.0)
                    }
                    _ => image.closest,
                }
            });
            match target {
                Some(index) => {
                    let row = ex.table.row_of_index[index];
                    app.message = ex.select_row(row);
                    app.overlay = Overlay::None;
                }
                None => app.message = Some("this image has no closest match".into()),
            }
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

fn contains(r: Rect, x: u16, y: u16) -> bool {
    x >= r.x && x < r.right() && y >= r.y && y < r.bottom()
}

impl App {
    /// The current view as CSV or JSON, with the ranking's own columns.
    pub fn export_text(&self, format: Format) -> Option<String> {
        let ex = self.explorer.as_ref()?;
        let ranking = Ranking {
            config: ex.table.ranking.config,
            profile: ex.table.ranking.profile.clone(),
            images: ex.view.iter().map(|&r| ex.table.image(r).clone()).collect(),
            stats: ex.shown_dist.stats,
        };
        Some(crate::export::render(
            &ranking,
            None,
            format,
            &ex.model,
            &ex.skipped,
        ))
    }
}
