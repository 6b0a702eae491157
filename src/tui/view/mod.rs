//! Drawing. Every function here reads the state and writes cells; nothing changes state.

mod boxplot;
mod detail;
mod help;
pub mod preview;
mod progress;
mod status;
mod table;

use super::app::{App, Overlay};
use super::layout;
use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::{Block, BorderType, Borders, Paragraph, Wrap};

/// Draws the whole screen for `app`.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    if layout::too_small(area) {
        too_small(frame, area);
        return;
    }
    match &app.explorer {
        None => progress::draw(frame, app, area),
        Some(ex) => {
            let areas = app.areas();
            if areas.table.width > 0 {
                match app.overlay {
                    Overlay::Detail(i) => detail::draw_detail(frame, app, ex, i, areas.table),
                    _ => table::draw(frame, app, ex, areas.table),
                }
            }
            if let Some(b) = areas.boxplot {
                boxplot::draw(frame, ex, b);
            }
            if let Some(p) = areas.preview {
                preview::draw(frame, app, ex, p);
            }
            status::draw(frame, app, ex, areas.status);
        }
    }
    match app.overlay {
        Overlay::Help => help::draw(frame, app, area),
        Overlay::Skips => detail::draw_skips(frame, app, area),
        Overlay::None | Overlay::Detail(_) => {}
    }
}

fn too_small(frame: &mut Frame, area: Rect) {
    let text = format!(
        "Terminal too small ({}x{}).\nsnowscope needs at least {}x{}.\nEnlarge the window, or press q to quit.",
        area.width,
        area.height,
        layout::MIN_WIDTH,
        layout::MIN_HEIGHT
    );
    let y = area.height.saturating_sub(3) / 2;
    let r = Rect::new(area.x, area.y + y, area.width, area.height - y);
    frame.render_widget(
        Paragraph::new(text)
            .alignment(Alignment::Center)
            .wrap(Wrap { trim: true }),
        r,
    );
}

/// A bordered pane; the focused one gets a highlighted, thick border.
pub(crate) fn pane<'a>(title: impl Into<ratatui::text::Line<'a>>, focused: bool) -> Block<'a> {
    let block = Block::default().borders(Borders::ALL).title(title);
    if focused {
        block
            .border_type(BorderType::Thick)
            .border_style(Style::default().fg(Color::Cyan))
    } else {
        block.border_style(Style::default().fg(Color::DarkGray))
    }
}

pub(crate) fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

pub(crate) fn dim() -> Style {
    Style::default().fg(Color::DarkGray)
}

/// Display width of `s` in cells.
pub(crate) fn width(s: &str) -> usize {
    Span::raw(s).width()
}

/// Shortens `s` to `max` cells by cutting its start, so the file name stays visible.
pub(crate) fn truncate_left(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: Vec<char> = Vec::new();
    let mut used = 1; // the ellipsis
    for c in s.chars().rev() {
        let w = width(c.encode_utf8(&mut [0; 4]));
        if used + w > max {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out.into_iter().rev().collect()
}

/// Shortens `s` to `max` cells, keeping the start.
pub(crate) fn truncate_right(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 1;
    for c in s.chars() {
        let w = width(c.encode_utf8(&mut [0; 4]));
        if used + w > max {
            break;
        }
        used += w;
        out.push(c);
    }
    if max > 0 {
        out.push('…');
    }
    out
}

/// A score or distance with four decimals; "-" when missing.
pub(crate) fn num(v: Option<f32>) -> String {
    v.map_or("-".into(), |v| format!("{v:.4}"))
}

/// Seconds as m:ss or h:mm:ss.
pub(crate) fn duration(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "-".into();
    }
    let s = s.round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// A rectangle of at most `w` x `h` centred in `area`.
pub(crate) fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_the_end() {
        assert_eq!(truncate_left("abcdef", 10), "abcdef");
        assert_eq!(truncate_left("abcdef", 4), "…def");
        assert_eq!(truncate_left("雪雪雪", 4), "…雪");
        assert_eq!(truncate_left("abc", 0), "");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(5.4), "0:05");
        assert_eq!(duration(3725.0), "1:02:05");
        assert_eq!(duration(f64::INFINITY), "-");
    }
}
