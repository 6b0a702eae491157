//! The preview pane: the selected image and its closest match (or, in the detail view, the
//! highlighted neighbour) side by side, each with a two-line caption.

use super::{bold, dim, num, pane, truncate_left};
use crate::tui::app::{App, Explorer, Focus, Overlay, PreviewSlot};
use crate::tui::layout;
use crate::tui::preview::PreviewKey;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui_image::Image;

pub fn draw(frame: &mut Frame, app: &App, ex: &Explorer, area: Rect, pictures: bool) {
    let protocol = app.preview_protocol.as_deref().unwrap_or("off");
    let title = Line::from(vec![
        Span::styled(" preview ", bold()),
        Span::raw(format!("· {protocol} ")),
    ]);
    let block = pane(title, ex.focus == Focus::Preview);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some((row, other)) = app.preview_pair() else {
        frame.render_widget(Paragraph::new("Nothing selected."), inner);
        return;
    };
    let Some(slots) = layout::preview_slots(area) else {
        frame.render_widget(
            Paragraph::new("(pane too small for pictures)").style(dim()),
            inner,
        );
        return;
    };
    let selected = ex.table.image(row);
    let other_label = match app.overlay {
        Overlay::Detail(i) => format!("neighbour {}/{}", i + 1, selected.neighbours.len()),
        _ => "closest".to_string(),
    };
    let captions = [
        Some((row, "selected".to_string(), selected.nn_distance)),
        other.map(|r| {
            // The distance between the two, from the selected image's neighbour list.
            let idx = ex.table.image(r).index;
            let d = selected.neighbours.iter().find(|n| n.0 == idx).map(|n| n.1);
            (r, other_label.clone(), d)
        }),
    ];
    for (slot, caption) in slots.into_iter().zip(captions) {
        let caption_area = Rect::new(slot.x, slot.bottom(), slot.width, 2);
        let Some((r, label, distance)) = caption else {
            frame.render_widget(
                Paragraph::new("no closest match: a single image, or all are copies")
                    .style(dim())
                    .wrap(Wrap { trim: true }),
                slot,
            );
            continue;
        };
        let image = ex.table.image(r);
        let key = PreviewKey {
            index: image.index,
            width: slot.width,
            height: slot.height,
        };
        let state = app
            .preview_protocol
            .as_ref()
            .map(|_| app.previews.get(&key));
        let w = slot.width as usize;
        let name = truncate_left(&ex.table.paths[r as usize], w);
        let mut info = format!("{label} #{} d={}", image.rank, num(distance));
        // "loading" goes in the caption: text in the picture's cells could linger under a
        // graphics protocol that tmux passes through without seeing it.
        if matches!(state, Some(Some(PreviewSlot::Pending) | None)) {
            info += " · loading…";
        }
        frame.render_widget(
            Paragraph::new(vec![
                Line::styled(name, bold()),
                Line::styled(super::truncate_right(&info, w), dim()),
            ]),
            caption_area,
        );
        match state {
            Some(Some(PreviewSlot::Ready(protocol))) if pictures => {
                // Centre the picture horizontally in its slot.
                let size = protocol.size();
                let x = slot.x + slot.width.saturating_sub(size.width) / 2;
                let r = Rect::new(
                    x,
                    slot.y,
                    size.width.min(slot.width),
                    size.height.min(slot.height),
                );
                frame.render_widget(Image::new(protocol), r);
            }
            Some(Some(PreviewSlot::Failed(e))) => frame.render_widget(
                Paragraph::new(format!(
                    "cannot preview: {}",
                    crate::sanitize::sanitize(&e.to_string())
                ))
                .style(Style::default().fg(Color::Red))
                .wrap(Wrap { trim: true }),
                slot,
            ),
            _ => {}
        }
    }
}
