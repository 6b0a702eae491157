//! The explorer's view-model: the ranking as a table, the rows on screen after filter and
//! sort, the selection, the focused pane and the boxplot's two distributions. Every key or
//! click that changes only the explorer is a method here; `app::update` routes to them.

use super::layout::{self, Areas, Hit};
use super::model::{Column, Filter, Pattern, Sort, Table, visible_columns};
use super::preview::PreviewKey;
use crate::explain::TraitStats;
use crate::export::Format;
use crate::rank::{BoxStats, Ranking, box_stats};
use crate::scan::Skip;
use crate::store::Marks;
use ratatui::layout::Rect;
use std::path::PathBuf;

/// What the worker hands over when features and ranking are ready.
pub struct Loaded {
    pub ranking: Ranking,
    /// File of each feature-set row (`RankedImage::index`), for previews.
    pub files: Vec<PathBuf>,
    /// Content hash of each feature-set row: what a mark is kept by.
    pub hashes: Vec<String>,
    /// The folder (canonical), whose marks these are.
    pub root: PathBuf,
    /// The folder's marks; `ranking` already shows them.
    pub marks: Marks,
    pub model: String,
    pub skipped: Vec<Skip>,
    /// The ranking the feature cache remembers, shown while the folder is checked: a
    /// `Checked` or a new `Loaded` follows.
    pub checking: bool,
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

impl Scope {
    /// The other scope.
    pub fn toggled(self) -> Self {
        match self {
            Scope::Shown => Scope::All,
            Scope::All => Scope::Shown,
        }
    }
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
    hashes: Vec<String>,
    pub root: PathBuf,
    pub marks: Marks,
    /// The folder's traits, for the detail view's percentiles; `None` when unknown, and
    /// until the worker sends them (`Action::TraitStats`), just after the table.
    pub trait_stats: Option<TraitStats>,
    /// The previews show where the pair differs (a heat tint per feature-map cell).
    pub heat: bool,
    pub model: String,
    pub skipped: Vec<Skip>,
    /// Whether the table is the remembered ranking and the folder is still being checked.
    pub checking: bool,
    /// How many rankings this run showed before this one (`PreviewKey::ranking`).
    pub ranking_number: u32,
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
        let score = loaded.ranking.config.score;
        let columns = visible_columns(score);
        let table = Table::new(loaded.ranking);
        let all_dist = Distribution::of(&table.sorted_scores(None));
        let mask = vec![true; table.len()];
        let sort = Sort::by_score(score);
        let view = table.view(sort, &mask);
        let column = columns.iter().position(|c| *c == sort.column).unwrap_or(0);
        Explorer {
            files: loaded.files,
            hashes: loaded.hashes,
            root: loaded.root,
            marks: loaded.marks,
            trait_stats: None,
            heat: false,
            model: loaded.model,
            skipped: loaded.skipped,
            checking: loaded.checking,
            ranking_number: 0,
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

    /// The preview of table row `row` in `slot`, beside `partner`: with the heat overlay on,
    /// the picture depends on the partner too.
    pub fn preview_key(&self, row: u32, partner: Option<u32>, slot: Rect) -> PreviewKey {
        PreviewKey {
            ranking: self.ranking_number,
            index: self.table.image(row).index,
            width: slot.width,
            height: slot.height,
            against: partner
                .filter(|_| self.heat)
                .map(|p| self.table.image(p).index),
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
    pub(super) fn refresh(&mut self, filter_changed: bool) {
        let keep = self.selected_row();
        if filter_changed {
            self.mask = self.table.mask(&self.filter);
        }
        self.view = self.table.view(self.sort, &self.mask);
        if filter_changed {
            self.shown_dist = if self.filter.is_empty() {
                self.all_dist.clone()
            } else {
                let shown = self.table.shown_scores(self.sort, &self.view, &self.mask);
                Distribution::of(&shown)
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

    /// Sorts by `column`: in its natural direction, or reversed when it is the sort already
    /// (a number key, or a click on the column's title).
    pub fn sort_by(&mut self, column: Column) {
        let descending = if self.sort.column == column {
            !self.sort.descending
        } else {
            column.natural_descending()
        };
        self.set_sort(Sort { column, descending });
    }

    /// `[` / `]`: sorts by the focused column.
    pub fn sort_focused(&mut self, descending: bool) {
        let column = self.columns[self.column];
        self.set_sort(Sort { column, descending });
    }

    pub fn toggle_scope(&mut self) {
        self.scope = self.scope.toggled();
    }

    /// Moves the selection by `delta` rows, staying inside the view.
    pub fn step(&mut self, delta: isize) {
        let last = self.view.len().saturating_sub(1);
        self.selected = self.selected.saturating_add_signed(delta).min(last);
    }

    pub fn select_last(&mut self) {
        self.selected = self.view.len().saturating_sub(1);
    }

    /// Left / right: the focused column in the table, the scope in the boxplot.
    pub fn focus_column(&mut self, delta: isize) {
        match self.focus {
            Focus::Table => {
                self.column = self
                    .column
                    .saturating_add_signed(delta)
                    .min(self.columns.len() - 1);
            }
            Focus::Boxplot => self.toggle_scope(),
            Focus::Preview => {}
        }
    }

    /// A mouse click: a column title sorts by it, a row selects it, a pane takes the focus.
    pub fn click(&mut self, areas: &Areas, x: u16, y: u16) {
        match layout::hit(areas, &self.columns, x, y) {
            Hit::Header(column) => {
                if let Some(i) = column {
                    self.sort_by(self.columns[i]);
                }
                self.focus = Focus::Table;
            }
            Hit::Row(line) => {
                let pos = self.offset + line;
                if pos < self.view.len() {
                    self.selected = pos;
                }
                self.focus = Focus::Table;
            }
            Hit::Boxplot => self.focus = Focus::Boxplot,
            Hit::Preview => self.focus = Focus::Preview,
            Hit::Nothing => {}
        }
    }

    /// Tab / Shift-Tab over the panes the layout shows.
    pub fn cycle_focus(&mut self, areas: &Areas, forward: bool) {
        let order = [Focus::Table, Focus::Boxplot, Focus::Preview];
        let has = |f: &Focus| match f {
            Focus::Table => areas.table.width > 0,
            Focus::Boxplot => areas.boxplot.is_some(),
            Focus::Preview => areas.preview.is_some(),
        };
        let present: Vec<Focus> = order.into_iter().filter(has).collect();
        if let Some(i) = present.iter().position(|f| *f == self.focus) {
            let n = present.len();
            let next = if forward {
                (i + 1) % n
            } else {
                (i + n - 1) % n
            };
            self.focus = present[next];
        } else if let Some(f) = present.first() {
            self.focus = *f;
        }
    }

    pub fn toggle_zoom(&mut self) {
        self.zoom = !self.zoom;
        self.focus = if self.zoom {
            Focus::Preview
        } else {
            Focus::Table
        };
    }

    pub fn toggle_fence(&mut self) {
        self.filter.beyond_fence = !self.filter.beyond_fence;
        self.refresh(true);
    }

    pub fn toggle_duplicates(&mut self) {
        self.filter.duplicates = !self.filter.duplicates;
        self.refresh(true);
    }

    pub fn toggle_marked_only(&mut self) {
        self.filter.marked = !self.filter.marked;
        self.refresh(true);
    }

    /// Marks or unmarks the selected image (by its content); says what happened. The caller
    /// saves the marks.
    pub fn toggle_mark(&mut self) -> Option<String> {
        let row = self.selected_row()?;
        let index = self.table.image(row).index;
        let hash = self.hashes.get(index)?.clone();
        let marked = self.marks.toggle(&hash, &self.table.image(row).path);
        // Copies share the content, so they share the mark.
        let copies: Vec<u32> = (0..self.table.len() as u32)
            .filter(|&r| self.hashes.get(self.table.image(r).index) == Some(&hash))
            .collect();
        self.table.set_marked(&copies, marked);
        self.refresh(self.filter.marked);
        let verb = if marked { "marked" } else { "unmarked" };
        Some(format!(
            "{verb} {} · {} marked (m shows only them)",
            &self.table.paths[row as usize],
            self.marks.len()
        ))
    }

    /// Esc without an overlay: leaves the zoom, or clears the search and the filters.
    pub fn clear(&mut self) {
        if self.zoom {
            self.zoom = false;
        } else {
            self.search = None;
            if !self.filter.is_empty() {
                self.filter = Filter::default();
                self.refresh(true);
            }
        }
    }

    /// `n` / `N`: the next or previous match of the search; the message to show otherwise.
    pub fn search_step(&mut self, forward: bool) -> Option<String> {
        if self.search.is_none() {
            Some("no search yet: press / to search file names".into())
        } else if let Some(pos) = self.find(self.selected, forward, false) {
            self.selected = pos;
            None
        } else {
            Some("no file name matches the search".into())
        }
    }

    /// Number of neighbours of the selected image (the detail view's list).
    pub fn neighbour_count(&self) -> usize {
        self.selected_row()
            .map_or(0, |r| self.table.image(r).neighbours.len())
    }

    /// Jumps to the selection's closest match, or to its neighbour number `neighbour`.
    /// `Err` with a message when there is none; `Ok` with an optional note otherwise.
    pub fn jump(&mut self, neighbour: Option<usize>) -> Result<Option<String>, String> {
        let target = self.selected_row().and_then(|r| {
            let image = self.table.image(r);
            match neighbour {
                Some(i) => image.neighbours.get(i).map(|n| n.0),
                None => image.closest,
            }
        });
        match target {
            Some(index) => {
                let row = self.table.row_of_index[index];
                Ok(self.select_row(row))
            }
            None => Err("this image has no closest match".into()),
        }
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
    pub(super) fn find(&self, from: usize, forward: bool, include_from: bool) -> Option<usize> {
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

    /// Keeps the selection inside the view and within the `page` rows on screen.
    pub(super) fn clamp_scroll(&mut self, page: usize) {
        let n = self.view.len();
        self.selected = self.selected.min(n.saturating_sub(1));
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + page {
            self.offset = self.selected + 1 - page;
        }
        self.offset = self.offset.min(n.saturating_sub(page));
    }

    /// What an export writes: the marked rows when any are marked (in the table's order,
    /// whatever the filters), else the rows on screen.
    pub fn export_rows(&self) -> Vec<u32> {
        if self.table.any_marked() {
            let order = self.table.order(self.sort).iter().copied();
            order.filter(|&r| self.table.image(r).marked).collect()
        } else {
            self.view.clone()
        }
    }

    /// The rows `export_rows` picks as CSV or JSON, with the ranking's own columns.
    pub fn export_text(&self, format: Format) -> String {
        let ranking = Ranking {
            config: self.table.ranking.config,
            profile: self.table.ranking.profile.clone(),
            images: self
                .export_rows()
                .into_iter()
                .map(|r| self.table.image(r).clone())
                .collect(),
            stats: self.shown_dist.stats,
        };
        crate::export::render(
            &ranking,
            crate::export::Selection::default(),
            format,
            &self.model,
            &self.skipped,
            None,
        )
    }
}
