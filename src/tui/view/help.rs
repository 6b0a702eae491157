//! The `?` overlay: every key, grouped.

use super::{bold, centered, dim};
use crate::rank::ScoreKind;
use crate::tui::app::App;
use crate::tui::keys::{self, Key};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph};

/// (keys, what they do) from the key map (`keys.rs`); an empty key starts a group titled
/// by the text. Only keys that do something now are listed (column numbers stop at the
/// last column shown), unless none does yet (before the ranking arrives).
pub fn entries(app: &App) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    let mut group = "";
    for b in keys::explorer_bindings() {
        if b.group != group {
            group = b.group;
            out.push((String::new(), group));
        }
        let live: Vec<Key> = b
            .keys
            .iter()
            .copied()
            .filter(|k| (b.action)(app, *k).is_some())
            .collect();
        let shown = if live.is_empty() {
            b.keys.to_vec()
        } else {
            live
        };
        out.push((label(&shown), b.help));
    }
    out
}

/// The keys' labels, a run of three or more digits written as `1 … n`.
fn label(keys: &[Key]) -> String {
    let digits: Vec<char> = keys
        .iter()
        .filter_map(|k| match k {
            Key::Char(c) if c.is_ascii_digit() => Some(*c),
            _ => None,
        })
        .collect();
    if digits.len() >= 3 && digits.len() == keys.len() {
        return format!("{} … {}", digits[0], digits[digits.len() - 1]);
    }
    keys.iter().map(|k| k.label()).collect::<Vec<_>>().join(" ")
}

/// The help text of `keys` as lines: group titles, then aligned key / description pairs.
fn lines(keys: &[(String, &'static str)], key_w: usize) -> Vec<Line<'static>> {
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

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let keys = entries(app);
    let key_w = keys
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        + 2;
    let footer = Line::styled(score_note(app), dim());
    let one = lines(&keys, key_w);
    // Short terminals get two columns, split at a group boundary near the middle.
    let columns: Vec<Vec<Line>> = if one.len() + 4 > area.height as usize {
        let groups: Vec<usize> = keys
            .iter()
            .enumerate()
            .filter(|(_, (k, _))| k.is_empty())
            .map(|(i, _)| i)
            .collect();
        let split = groups
            .iter()
            .copied()
            .min_by_key(|&i| {
                lines(&keys[..i], key_w)
                    .len()
                    .max(lines(&keys[i..], key_w).len())
            })
            .unwrap_or(0);
        vec![lines(&keys[..split], key_w), lines(&keys[split..], key_w)]
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

/// What ranks the images, in one line.
fn score_note(app: &App) -> &'static str {
    let score = app.explorer.as_ref().map(|e| e.table.ranking.config.score);
    match score {
        Some(ScoreKind::Nn) => "rank: by distance, L2 to the closest non-identical image",
        Some(ScoreKind::Lof) => "rank: by LOF, local density against the neighbours'",
        _ => "rank: by knn score, mean L2 to the k nearest; larger = more unique",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::app::{Action, update};
    use crate::tui::testing;

    #[test]
    fn the_help_is_the_key_map_and_numbers_stop_at_the_last_column() {
        let mut app = App::new("d".into(), "m".into(), None);
        // Before the ranking: every column key is listed.
        assert!(entries(&app).iter().any(|(k, _)| k == "1 … 9"));
        update(&mut app, Action::Resize(120, 40));
        update(&mut app, Action::Loaded(Box::new(testing::small())));
        let columns = app.explorer.as_ref().unwrap().columns.len();
        let help = entries(&app);
        assert!(
            help.iter().any(|(k, _)| *k == format!("1 … {columns}")),
            "{help:?}"
        );
        // Every binding appears once, with its keys.
        let bindings: Vec<_> = keys::explorer_bindings().collect();
        assert_eq!(
            help.iter().filter(|(k, _)| !k.is_empty()).count(),
            bindings.len()
        );
        assert!(help.iter().any(|(k, _)| k == "Ctrl-f Ctrl-b"));
        assert!(help.iter().any(|(k, _)| k == "q Ctrl-c"));
    }
}
