//! The detail view (the selected image and its nearest neighbours) and the skipped files.

use super::{bold, centered, dim, num, pane, truncate_left, truncate_right};
use crate::sanitize::sanitize;
use crate::tui::app::{App, Explorer};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Cell, Clear, Paragraph, Row, Table, Wrap};

/// Traits the detail view lists, most unusual first.
const TRAITS_SHOWN: usize = 5;

pub fn draw_detail(frame: &mut Frame, _app: &App, ex: &Explorer, highlighted: usize, area: Rect) {
    let block = pane(Line::styled(" detail · Esc back ", bold()), true);
    let inner = block.inner(area);
    frame.render_widget(Clear, area);
    frame.render_widget(block, area);
    let Some(row) = ex.selected_row() else {
        return;
    };
    let image = ex.table.image(row);
    let w = inner.width.saturating_sub(12) as usize;
    let field = |k: &str, v: String| {
        Line::from(vec![Span::styled(format!("{k:<11} "), dim()), Span::raw(v)])
    };
    let config = ex.table.ranking.config;
    let mut lines = vec![
        field("file", truncate_left(&ex.table.paths[row as usize], w)),
        field(
            "rank",
            format!(
                "{} of {}{}",
                image.rank,
                ex.table.len(),
                if image.beyond_fence {
                    " · beyond the upper fence"
                } else {
                    ""
                }
            ),
        ),
        field(
            "score",
            format!("{} ({:?})", num(image.score), config.score).to_lowercase(),
        ),
        field("distance", num(image.nn_distance)),
        field(
            "k-NN mean",
            format!("{} (k = {})", num(image.knn_mean), config.k),
        ),
        field("LOF", num(image.lof)),
        field(
            "copies",
            if image.duplicates > 1 {
                format!("{} images share this content", image.duplicates)
            } else {
                "none".into()
            },
        ),
    ];
    let choice = &ex.table.ranking.profile;
    if choice.profile != crate::profile::Profile::Auto {
        lines.push(field("profile", truncate_right(&choice.to_string(), w)));
    }
    // The traits furthest from the folder's median: what makes this one different.
    let notes = ex
        .trait_stats
        .as_ref()
        .map_or_else(Vec::new, |stats| stats.notes(&image.traits, TRAITS_SHOWN));
    if !notes.is_empty() {
        lines.push(Line::styled(
            "most unusual traits (percentile in this folder):",
            dim(),
        ));
    }
    let label_w = notes.iter().map(|n| n.name.len()).max().unwrap_or(0);
    for note in notes {
        let (_, unit, _) = crate::traits::TRAITS[crate::traits::index(note.name)];
        // Sizes in pixels and counts are whole numbers; the rest are ratios.
        let (digits, unit) = match unit {
            "px" => (0, " px"),
            "count" => (0, ""),
            _ => (3, ""),
        };
        let value = format!("{:.digits$}{unit}", note.value);
        let place = format!("p{:.0}, z {:+.1}", note.percentile, note.z);
        let text = format!(
            "  {:<label_w$} {value:>9}  {place}",
            note.name.replace('_', " ")
        );
        lines.push(Line::raw(truncate_right(&text, inner.width as usize)));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        format!(
            "{} nearest neighbours (Enter or c jumps to the highlighted one):",
            image.neighbours.len()
        ),
        bold(),
    ));
    let head_h = lines.len() as u16;
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
    if inner.height <= head_h {
        return;
    }
    let list = Rect::new(
        inner.x,
        inner.y + head_h,
        inner.width,
        inner.height - head_h,
    );
    let path_w = list.width.saturating_sub(4 + 7 + 10 + 3) as usize;
    let rows = image.neighbours.iter().enumerate().map(|(i, &(idx, d))| {
        let r = ex.table.row_of_index[idx];
        let n = ex.table.image(r);
        let row = Row::new(vec![
            Cell::from(Line::from(format!("{}", i + 1)).right_aligned()),
            Cell::from(Line::from(format!("#{}", n.rank)).right_aligned()),
            Cell::from(Line::from(format!("{d:.4}")).right_aligned()),
            Cell::from(truncate_left(&ex.table.paths[r as usize], path_w)),
        ]);
        if i == highlighted {
            row.style(Style::default().add_modifier(Modifier::REVERSED))
        } else {
            row
        }
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(4),
            Constraint::Length(7),
            Constraint::Length(10),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(["#", "rank", "distance", "file"]).style(bold()))
    .column_spacing(1);
    frame.render_widget(table, list);
}

pub fn draw_skips(frame: &mut Frame, app: &App, area: Rect) {
    let skipped = match &app.explorer {
        Some(ex) => &ex.skipped,
        None => &app.progress.skipped,
    };
    let r = centered(
        area,
        area.width.saturating_sub(8).max(30),
        area.height.saturating_sub(4).max(6),
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(Style::default().fg(Color::Yellow))
        .title(Line::styled(
            format!(" {} skipped files · Esc closes ", skipped.len()),
            bold(),
        ));
    let inner = block.inner(r);
    frame.render_widget(Clear, r);
    frame.render_widget(block, r);
    let lines: Vec<Line> = if skipped.is_empty() {
        vec![Line::raw("No file was skipped.")]
    } else {
        let room = inner.height as usize;
        let shown = if skipped.len() > room {
            room.saturating_sub(1)
        } else {
            room
        };
        let mut lines: Vec<Line> = skipped
            .iter()
            .take(shown)
            .map(|s| {
                Line::from(vec![
                    Span::styled(sanitize(&s.path), Style::default().fg(Color::Yellow)),
                    Span::raw(": "),
                    Span::raw(sanitize(&s.reason.to_string())),
                ])
            })
            .collect();
        if shown < skipped.len() {
            lines.push(Line::styled(
                format!(
                    "… and {} more (`snowscope rank` lists them all)",
                    skipped.len() - shown
                ),
                dim(),
            ));
        }
        lines
    };
    frame.render_widget(Paragraph::new(lines), inner);
}
