//! The status bar: the prompt while typing; otherwise sort, filter, counts and hints.

use super::{dim, truncate_left, truncate_right, width};
use crate::sanitize::sanitize;
use crate::tui::app::{App, Explorer};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

pub fn draw(frame: &mut Frame, app: &App, ex: &Explorer, area: Rect) {
    if let Some(p) = &app.prompt {
        let mut spans = vec![
            Span::styled(p.kind.label(), Style::default().fg(Color::Cyan)),
            Span::raw(sanitize(&p.text)),
            Span::styled(" ", Style::default().add_modifier(Modifier::REVERSED)),
        ];
        if let Some(e) = &p.error {
            spans.push(Span::styled(
                format!("  {}", sanitize(e)),
                Style::default().fg(Color::Red),
            ));
        } else {
            spans.push(Span::styled("  Enter apply · Esc cancel", dim()));
        }
        frame.render_widget(Paragraph::new(Line::from(spans)), area);
        return;
    }
    let arrow = if ex.sort.descending { "↓" } else { "↑" };
    // Most important first, since a narrow terminal cuts the end.
    let mut left = format!(
        " {}/{} shown │ sort: {} {arrow} │ filter: {}",
        ex.view.len(),
        ex.table.len(),
        ex.sort.column.title(),
        ex.filter.describe(),
    );
    if ex.checking {
        left += " │ checking the folder for changes";
    }
    if let Some(s) = &ex.search {
        left += &format!(" │ search: /{}/", sanitize(&s.text));
    }
    if !ex.skipped.is_empty() {
        left += &format!(" │ {} skipped (S)", ex.skipped.len());
    }
    // How previews are drawn and why, e.g. "sixel (cell size from the tty)".
    if let Some(note) = &app.preview_note {
        left += &format!(" │ preview: {note}");
    }
    let total = area.width as usize;
    // The key hint gives way when space is short; a message does not.
    let (right, right_style) = match &app.message {
        Some(m) => (
            format!("{} ", sanitize(m)),
            Style::default().fg(Color::Yellow),
        ),
        None if width(&left) + 18 <= total => ("? help · q quit ".to_string(), dim()),
        None => (String::new(), dim()),
    };
    let rw = width(&right).min(total);
    let left = truncate_right(&left, total.saturating_sub(rw + 1));
    let gap = total.saturating_sub(width(&left) + rw);
    let line = Line::from(vec![
        Span::styled(left, Style::default().add_modifier(Modifier::BOLD)),
        Span::raw(" ".repeat(gap)),
        Span::styled(truncate_left(&right, rw), right_style),
    ]);
    frame.render_widget(Paragraph::new(line), area);
}
