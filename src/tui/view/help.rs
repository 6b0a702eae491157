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
    ("j k ↓ ↑", "next / previous image (mouse wheel too)"),
    ("g G Home End", "first / last image"),
    ("Ctrl-d Ctrl-u", "half a page down / up"),
    ("PgDn PgUp", "a page down / up"),
    ("Tab Shift-Tab", "focus the next / previous pane"),
    ("", "Sort"),
    ("h l ← →", "focus a column (table) · switch scope (boxplot)"),
    ("[ ]", "sort the focused column ascending / descending"),
    ("1 … 8", "sort by the n-th column; again reverses"),
    ("", "Search and filter"),
    ("/", "search file names (regex), n N next / previous match"),
    ("&", "filter: file path matches a regex"),
    ("# > <", "filter on the score, e.g. >= 0.8, < 0.3, 0.2..0.5"),
    ("f", "only images beyond the upper fence (outliers)"),
    ("d", "only images with byte- or feature-identical copies"),
    ("Esc", "clear search and filters (or close a view)"),
    ("", "Look closer"),
    (
        "Enter",
        "detail: the k nearest neighbours; Enter jumps to one",
    ),
    ("c", "jump to the closest match's row"),
    ("b", "boxplot of the shown rows / of all rows"),
    ("z", "zoom the preview pane"),
    ("S", "skipped files and why"),
    ("", "Other"),
    ("e E", "export the current view as CSV / JSON"),
    ("?", "this help (any key closes it)"),
    ("q Ctrl-C", "quit"),
];

pub fn draw(frame: &mut Frame, _app: &App, area: Rect) {
    let key_w = KEYS
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        + 2;
    let mut lines = Vec::new();
    for (k, text) in KEYS {
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
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "Distance: L2 between feature vectors to the closest non-identical image; larger = more unique.",
        dim(),
    ));
    let w = lines.iter().map(Line::width).max().unwrap_or(40) as u16 + 4;
    let h = lines.len() as u16 + 2;
    let r = centered(area, w, h);
    frame.render_widget(Clear, r);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .title(Line::styled(" keys ", bold()))
        .border_style(Style::default().fg(Color::Cyan));
    frame.render_widget(Paragraph::new(lines).block(block), r);
}
