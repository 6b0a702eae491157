//! The `?` overlay: every key, grouped.

use super::{bold, centered, dim};
use crate::tui::app::App;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph};

/// (keys, what they do); an empty key starts a group titled by the text.
pub const KEYS: &[(&str, &str)] = &[
    ("", "Move"),
    ("j k ↓ ↑", "next / previous (or wheel)"),
    ("g G Home End", "first / last"),
    ("Ctrl-d Ctrl-u", "half a page down / up"),
    ("PgDn PgUp", "a page down / up"),
    ("Tab Shift-Tab", "next / previous pane"),
    ("", "Sort"),
    ("h l ← →", "focus a column"),
    ("[ ]", "sort it ascending / descending"),
    ("1 … 8", "sort by n-th column, again: flip"),
    ("", "Search and filter"),
    ("/", "search names (regex)"),
    ("n N", "next / previous match"),
    ("&", "filter paths by regex"),
    ("# > <", "score filter: >= 0.8, 0.2..0.5"),
    ("f", "only beyond the upper fence"),
    ("d", "only images that have copies"),
    ("Esc", "clear search and filters"),
    ("", "Look closer"),
    ("Enter", "neighbours; Enter jumps to one"),
    ("c", "jump to the closest match"),
    ("b", "boxplot of shown / all rows"),
    ("z", "zoom the preview"),
    ("S", "skipped files and why"),
    ("", "Other"),
    ("e E", "export the view as CSV / JSON"),
    ("?", "this help"),
    ("q Ctrl-C", "quit"),
];

/// The help text of `keys` as lines: group titles, then aligned key / description pairs.
fn lines(keys: &[(&'static str, &'static str)], key_w: usize) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    for (k, text) in keys {
        if k.is_empty() {
            if !lines.is_empty() {
                lines.push(Line::raw(""));
            }
            lines.push(Line::styled(*text, bold().fg(Color::Cyan)));
        } else {
            lines.push(Line::from(vec![
                Span::styled(format!("  {k:<key_w$}"), Style::default().fg(Color::Yellow)),
                Span::raw(*text),
            ]));
        }
    }
    lines
}

pub fn draw(frame: &mut Frame, _app: &App, area: Rect) {
    let key_w = KEYS
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        + 2;
    let footer = Line::styled(
        "distance: L2 to the closest non-identical image; larger = more unique",
        dim(),
    );
    let one = lines(KEYS, key_w);
    // Short terminals get two columns, split at a group boundary near the middle.
    let columns: Vec<Vec<Line>> = if one.len() + 4 > area.height as usize {
        let groups: Vec<usize> = KEYS
            .iter()
            .enumerate()
            .filter(|(_, (k, _))| k.is_empty())
            .map(|(i, _)| i)
            .collect();
        let split = groups
            .iter()
            .copied()
            .min_by_key(|&i| {
                lines(&KEYS[..i], key_w)
                    .len()
                    .max(lines(&KEYS[i..], key_w).len())
            })
            .unwrap_or(0);
        vec![lines(&KEYS[..split], key_w), lines(&KEYS[split..], key_w)]
    } else {
        vec![one]
    };
    let col_w = columns
        .iter()
        .flatten()
        .map(Line::width)
        .max()
        .unwrap_or(40) as u16
        + 2;
    let body_h = columns.iter().map(Vec::len).max().unwrap_or(0) as u16;
    let w = (col_w * columns.len() as u16).max(footer.width() as u16) + 2;
    let r = centered(area, w, body_h + 4);
    frame.render_widget(Clear, r);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .title(Line::styled(" keys · any key closes ", bold()))
        .border_style(Style::default().fg(Color::Cyan));
    let inner = block.inner(r);
    frame.render_widget(block, r);
    for (i, col) in columns.into_iter().enumerate() {
        let x = inner.x + col_w * i as u16;
        if x >= inner.right() {
            break;
        }
        let c = Rect::new(x, inner.y, (inner.right() - x).min(col_w), inner.height);
        frame.render_widget(Paragraph::new(col), c);
    }
    if inner.height >= 2 {
        let f = Rect::new(inner.x, inner.bottom() - 1, inner.width, 1);
        frame.render_widget(Paragraph::new(footer), f);
    }
}
