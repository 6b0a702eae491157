//! The ranked table: only the visible window of rows is built each frame.

use super::{bold, dim, num, pane, truncate_left};
use crate::tui::app::{App, Explorer, Focus};
use crate::tui::layout;
use crate::tui::model::Column;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

pub fn draw(frame: &mut Frame, _app: &App, ex: &Explorer, area: Rect) {
    let mut title = vec![
        Span::styled(" images ", bold()),
        Span::raw(format!("{}/{} ", ex.view.len(), ex.table.len())),
    ];
    // Which features ranked the folder (shown once a profile was chosen for it).
    let profile = &ex.table.ranking.profile.profile;
    if *profile != crate::profile::Profile::Auto {
        title.push(Span::styled(format!("· {profile} profile "), dim()));
    }
    let title = Line::from(title);
    let block = pane(title, ex.focus == Focus::Table);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if ex.table.is_empty() {
        frame.render_widget(Paragraph::new("No images to show."), inner);
        return;
    }
    let widths = layout::column_widths(&ex.columns, inner.width);
    let header = Row::new(ex.columns.iter().enumerate().map(|(i, c)| {
        let mut title = c.title().to_string();
        if ex.sort.column == *c {
            title.push(if ex.sort.descending { '▼' } else { '▲' });
        }
        let mut style = bold();
        if i == ex.column && ex.focus == Focus::Table {
            style = style.add_modifier(Modifier::UNDERLINED).fg(Color::Cyan);
        }
        Cell::from(title).style(style)
    }));
    let rows_shown = layout::table_rows(area);
    let end = (ex.offset + rows_shown).min(ex.view.len());
    let rows = (ex.offset..end).map(|pos| {
        let row = ex.view[pos];
        let image = ex.table.image(row);
        let matched = ex
            .search
            .as_ref()
            .is_some_and(|p| ex.table.path_matches(p, row));
        let cells = ex.columns.iter().zip(&widths).map(|(c, &w)| {
            let w = w as usize;
            match c {
                Column::Rank => Cell::from(Line::from(image.rank.to_string()).right_aligned()),
                Column::File => {
                    let text = truncate_left(&ex.table.paths[row as usize], w);
                    if matched {
                        Cell::from(Span::styled(text, Style::default().fg(Color::Yellow)))
                    } else {
                        Cell::from(text)
                    }
                }
                Column::Closest => Cell::from(Span::styled(
                    truncate_left(&ex.table.closest_text(row), w),
                    dim(),
                )),
                Column::Distance => Cell::from(Line::from(num(image.nn_distance)).right_aligned()),
                Column::Knn => Cell::from(Line::from(num(image.knn_mean)).right_aligned()),
                Column::Lof => Cell::from(Line::from(num(image.lof)).right_aligned()),
                Column::Dups => {
                    let text = if image.duplicates > 1 {
                        image.duplicates.to_string()
                    } else {
                        String::new()
                    };
                    Cell::from(Line::from(text).right_aligned())
                }
                Column::Fence => Cell::from(if image.beyond_fence {
                    Span::styled("  ●", Style::default().fg(Color::Red))
                } else {
                    Span::raw("")
                }),
                Column::Mark => Cell::from(if image.marked {
                    Span::styled("  ✓", Style::default().fg(Color::Green))
                } else {
                    Span::raw("")
                }),
            }
        });
        let row_widget = Row::new(cells);
        if pos == ex.selected {
            row_widget.style(Style::default().add_modifier(Modifier::REVERSED))
        } else {
            row_widget
        }
    });
    let table = Table::new(rows, widths.iter().map(|&w| Constraint::Length(w)))
        .header(header)
        .column_spacing(1);
    frame.render_widget(table, inner);
    if ex.view.is_empty() {
        let msg = Rect::new(inner.x, inner.y + 1, inner.width, 1.min(inner.height));
        frame.render_widget(
            Paragraph::new("No image matches the filter. Esc clears it."),
            msg,
        );
    }
}
