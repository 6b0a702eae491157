//! Where each pane goes for a terminal size. Pure, so `update` (scrolling, which previews
//! to prepare, mouse clicks) and the views agree on the same rectangles.

use super::model::Column;
use ratatui::layout::Rect;

/// Below this the explorer shows a "terminal too small" message instead of panes.
pub const MIN_WIDTH: u16 = 40;
pub const MIN_HEIGHT: u16 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Areas {
    pub table: Rect,
    pub preview: Option<Rect>,
    pub boxplot: Option<Rect>,
    pub status: Rect,
}

pub fn too_small(area: Rect) -> bool {
    area.width < MIN_WIDTH || area.height < MIN_HEIGHT
}

/// Height of the boxplot pane with borders: full form, or one box line plus an axis.
fn boxplot_height(available: u16) -> Option<u16> {
    match available {
        h if h >= 34 => Some(9),
        h if h >= 16 => Some(5),
        _ => None,
    }
}

/// Splits the screen. `zoom` gives the preview the whole main area; `preview` is false when
/// previews are off. Wide terminals put the table left and preview + boxplot right; narrow
/// ones stack them, dropping the preview, then the boxplot, as height runs out.
pub fn explorer(area: Rect, zoom: bool, preview: bool) -> Areas {
    let status = Rect::new(
        area.x,
        area.bottom().saturating_sub(1),
        area.width,
        area.height.min(1),
    );
    let main = Rect::new(area.x, area.y, area.width, area.height.saturating_sub(1));
    let mut out = Areas {
        table: main,
        status,
        ..Areas::default()
    };
    if too_small(area) {
        return out;
    }
    if zoom && preview {
        let bp = boxplot_height(main.height).map(|h| h.min(5));
        let (top, bottom) = split_v(main, bp.unwrap_or(0));
        out.table = Rect::default();
        out.preview = Some(top);
        out.boxplot = bp.map(|_| bottom);
        return out;
    }
    if main.width >= 110 {
        let right_w = (main.width * 2 / 5).clamp(44, 90);
        let table = Rect::new(main.x, main.y, main.width - right_w, main.height);
        let right = Rect::new(table.right(), main.y, right_w, main.height);
        out.table = table;
        match (preview, boxplot_height(right.height)) {
            (true, Some(h)) => {
                let (p, b) = split_v(right, h);
                out.preview = Some(p);
                out.boxplot = Some(b);
            }
            (true, None) => out.preview = Some(right),
            (false, _) if main.height >= 20 => {
                let h = if main.height >= 34 { 9 } else { 5 };
                let (t, b) = split_v(right, h.min(right.height));
                out.boxplot = Some(b);
                // Without previews the right column holds only the boxplot; give the
                // rest back to the table.
                out.table = Rect::new(main.x, main.y, main.width, t.height);
                out.boxplot = Some(Rect::new(main.x, b.y, main.width, b.height));
            }
            (false, _) => out.table = main,
        }
        return out;
    }
    // Narrow: table on top, then preview, then boxplot.
    let mut rest = main;
    if let Some(h) = boxplot_height(rest.height)
        && rest.height >= h + 8
    {
        let (t, b) = split_v(rest, if rest.height >= 40 { h } else { 5 });
        out.boxplot = Some(b);
        rest = t;
    }
    if preview && rest.height >= 26 {
        let h = rest.height / 2;
        let (t, p) = split_v(rest, h);
        out.preview = Some(p);
        rest = t;
    }
    out.table = rest;
    out
}

/// Splits `r` into a top part and a bottom part `bottom` rows high.
fn split_v(r: Rect, bottom: u16) -> (Rect, Rect) {
    let bottom = bottom.min(r.height);
    (
        Rect::new(r.x, r.y, r.width, r.height - bottom),
        Rect::new(r.x, r.y + r.height - bottom, r.width, bottom),
    )
}

/// Rows of data the table shows (inside the border, below the header).
pub fn table_rows(table: Rect) -> usize {
    table.height.saturating_sub(3) as usize
}

/// The two image slots of the preview pane (inside its border), each with two caption lines
/// below: side by side, or one above the other when that shows the pictures larger (a
/// tall pane). Pictures are taken as square and `cell` (pixels, width x height) converts
/// cells into their on-screen size; each slot is as tall as a square picture needs, so the
/// captions sit right under the pictures. `None` when the pane is too small for pictures.
pub fn preview_slots(preview: Rect, cell: (u16, u16)) -> Option<[Rect; 2]> {
    let inner = Rect::new(
        preview.x + 1,
        preview.y + 1,
        preview.width.saturating_sub(2),
        preview.height.saturating_sub(2),
    );
    if inner.width < 10 || inner.height < 5 {
        return None;
    }
    let (cw, ch) = (u32::from(cell.0.max(1)), u32::from(cell.1.max(1)));
    // The side of the largest square picture in w x h cells, in pixels.
    let side = |w: u16, h: u16| (u32::from(w) * cw).min(u32::from(h) * ch);
    // Rows a square picture `w` cells wide takes, at most `h`.
    let rows = |w: u16, h: u16| {
        let needed = (u32::from(w) * cw).div_ceil(ch);
        u16::try_from(needed).unwrap_or(u16::MAX).clamp(1, h)
    };
    let half_w = (inner.width - 1) / 2;
    let side_by_side_h = inner.height - 2;
    let stacked_h = inner.height.saturating_sub(4) / 2;
    if stacked_h >= 3 && side(inner.width, stacked_h) > side(half_w, side_by_side_h) {
        let h = rows(inner.width, stacked_h);
        return Some([
            Rect::new(inner.x, inner.y, inner.width, h),
            Rect::new(inner.x, inner.y + h + 2, inner.width, h),
        ]);
    }
    let h = rows(half_w, side_by_side_h);
    Some([
        Rect::new(inner.x, inner.y, half_w, h),
        Rect::new(inner.x + half_w + 1, inner.y, inner.width - half_w - 1, h),
    ])
}

/// Fixed width of a column; `None` for the two path columns, which share the rest.
fn fixed_width(c: Column) -> Option<u16> {
    match c {
        Column::Rank => Some(6),
        Column::Distance | Column::Lof => Some(9),
        // "knn score" and the sort arrow.
        Column::Knn => Some(10),
        Column::Dups => Some(5),
        Column::Fence => Some(5),
        Column::Mark => Some(5),
        Column::File | Column::Closest => None,
    }
}

/// Table column widths for an inner width: the file gets 60 % of the flexible space.
pub fn column_widths(columns: &[Column], inner: u16) -> Vec<u16> {
    let fixed: u16 = columns.iter().filter_map(|c| fixed_width(*c)).sum();
    let gaps = columns.len().saturating_sub(1) as u16;
    // At least 7: a 4-column file name and a 3-column closest match still say something.
    let flexible = inner.saturating_sub(fixed + gaps).max(7);
    let file = (flexible * 3 / 5).max(4);
    columns
        .iter()
        .map(|c| match c {
            Column::File => file,
            Column::Closest => flexible.saturating_sub(file),
            c => fixed_width(*c).unwrap_or(0),
        })
        .collect()
}

/// The table column under screen column `x`, for a table pane at `table` (border included).
pub fn column_at(columns: &[Column], table: Rect, x: u16) -> Option<usize> {
    let inner_x = table.x + 1;
    let widths = column_widths(columns, table.width.saturating_sub(2));
    let mut start = inner_x;
    for (i, w) in widths.iter().enumerate() {
        // A click on the gap after a column counts for that column.
        if x >= start && x <= start + w {
            return Some(i);
        }
        start += w + 1;
    }
    None
}

/// What a mouse click at a screen cell lands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    /// The table's title line; the column under the pointer, if any.
    Header(Option<usize>),
    /// A data row of the table: the line below the header (0 = first shown row).
    Row(usize),
    Boxplot,
    Preview,
    Nothing,
}

/// The pane (and in the table, the title or row) under screen cell (`x`, `y`).
pub fn hit(areas: &Areas, columns: &[Column], x: u16, y: u16) -> Hit {
    let t = areas.table;
    if y == t.y + 1 && x > t.x && x < t.right() {
        Hit::Header(column_at(columns, t, x))
    } else if x >= t.x && x < t.right() && y >= t.y + 2 && y < t.bottom().saturating_sub(1) {
        // Data rows start below the top border and the header.
        Hit::Row((y - t.y - 2) as usize)
    } else if areas.boxplot.is_some_and(|b| contains(b, x, y)) {
        Hit::Boxplot
    } else if areas.preview.is_some_and(|p| contains(p, x, y)) {
        Hit::Preview
    } else {
        Hit::Nothing
    }
}

fn contains(r: Rect, x: u16, y: u16) -> bool {
    x >= r.x && x < r.right() && y >= r.y && y < r.bottom()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panes_fit_inside_the_screen_at_every_size() {
        for w in 0..220u16 {
            for h in 0..70u16 {
                let area = Rect::new(0, 0, w, h);
                for zoom in [false, true] {
                    for preview in [false, true] {
                        let a = explorer(area, zoom, preview);
                        for r in [Some(a.table), a.preview, a.boxplot, Some(a.status)]
                            .into_iter()
                            .flatten()
                        {
                            assert!(r.right() <= w && r.bottom() <= h, "{w}x{h}: {r:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn clicks_find_columns() {
        let cols = [Column::Rank, Column::File, Column::Distance];
        let t = Rect::new(0, 0, 40, 10);
        // Inner width 38: rank 6, distance 9, two gaps, file gets the remaining 21.
        assert_eq!(column_at(&cols, t, 1), Some(0));
        assert_eq!(column_at(&cols, t, 8), Some(1));
        assert_eq!(column_at(&cols, t, 30), Some(2));
        assert_eq!(column_at(&cols, t, 39), None);
    }

    #[test]
    fn preview_slots_stack_in_a_tall_pane_and_captions_follow_the_pictures() {
        // xterm's 6x13 cells, a 90x66 pane: side by side the pictures would be 258 px
        // wide and fill a third of the height; stacked they are 377 px.
        let [a, b] = preview_slots(Rect::new(0, 0, 90, 66), (6, 13)).unwrap();
        assert_eq!((a.width, b.y), (88, a.bottom() + 2));
        assert!(b.bottom() + 2 <= 65, "{b:?}");
        // A wide, short pane keeps them side by side, each as tall as a square needs.
        let [a, b] = preview_slots(Rect::new(0, 0, 46, 27), (10, 20)).unwrap();
        assert_eq!((a.y, b.y, a.width, a.height), (1, 1, 21, 11));
        // Every pane size keeps the slots and their captions inside.
        for w in 0..120u16 {
            for h in 0..70u16 {
                let pane = Rect::new(3, 2, w, h);
                for cell in [(6, 13), (10, 20), (9, 9), (1, 40)] {
                    if let Some(slots) = preview_slots(pane, cell) {
                        for s in slots {
                            assert!(s.width > 0 && s.height > 0);
                            assert!(s.right() < pane.right() && s.bottom() + 2 < pane.bottom());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn wide_terminals_get_all_panes() {
        let a = explorer(Rect::new(0, 0, 200, 60), false, true);
        assert!(a.preview.is_some() && a.boxplot.is_some());
        assert!(a.table.width > 100);
        let a = explorer(Rect::new(0, 0, 80, 24), false, true);
        assert!(a.preview.is_none(), "80x24 keeps the table readable");
        assert!(a.boxplot.is_some());
    }
}
