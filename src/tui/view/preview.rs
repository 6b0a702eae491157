//! The preview pane: the selected image and its closest match (or, in the detail view, the
//! highlighted neighbour), side by side or one above the other, each with a two-line
//! caption. [`pictures`] says which picture goes where; the cells of ratatui-image's
//! protocols are drawn here, kitty's direct placements by the runtime after the frame.

use super::{bold, dim, num, pane, truncate_left};
use crate::tui::app::{App, Explorer, Focus, Overlay, PreviewSlot};
use crate::tui::graphics::Picture;
use crate::tui::kitty_direct::KittyImage;
use crate::tui::layout;
use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui_image::Image;

/// The pictures on screen, each with the cells it covers (centred in its slot). None while
/// keys are held, in a terminal too small for panes, or under a popup (graphics would be
/// drawn over it).
pub fn pictures(app: &App) -> Vec<(Rect, &Picture)> {
    let (Some(ex), Some(area)) = (&app.explorer, app.areas().preview) else {
        return Vec::new();
    };
    let covered = !matches!(app.overlay, Overlay::None | Overlay::Detail(_));
    if app.hold_previews || covered || layout::too_small(app.area()) {
        return Vec::new();
    }
    let (Some(slots), Some((row, other))) =
        (layout::preview_slots(area, app.cell_px), app.preview_pair())
    else {
        return Vec::new();
    };
    slots
        .into_iter()
        .zip([Some((row, other)), other.map(|o| (o, Some(row)))])
        .filter_map(|(slot, pair)| {
            let (r, partner) = pair?;
            let key = ex.preview_key(r, partner, slot);
            let Some(PreviewSlot::Ready(picture)) = app.previews.get(&key) else {
                return None;
            };
            let size = picture.size();
            let (w, h) = (size.width.min(slot.width), size.height.min(slot.height));
            let x = slot.x + (slot.width - w) / 2;
            let y = slot.y + (slot.height - h) / 2;
            Some((Rect::new(x, y, w, h), picture.as_ref()))
        })
        .collect()
}

/// The kitty pictures to place after the frame: top-left cell and image.
pub fn kitty(app: &App) -> Vec<(Position, &KittyImage)> {
    pictures(app)
        .into_iter()
        .filter_map(|(r, p)| match p {
            Picture::Kitty(k) => Some((r.as_position(), k)),
            Picture::Cells(_) => None,
        })
        .collect()
}

pub fn draw(frame: &mut Frame, app: &App, ex: &Explorer, area: Rect) {
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
    let Some(slots) = layout::preview_slots(area, app.cell_px) else {
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
        let partner = if r == row { other } else { Some(row) };
        let key = ex.preview_key(r, partner, slot);
        let state = app
            .preview_protocol
            .as_ref()
            .map(|_| app.previews.get(&key));
        let w = slot.width as usize;
        let name = truncate_left(&ex.table.paths[r as usize], w);
        let mut info = format!("{label} #{} d={}", image.rank, num(distance));
        // "loading" goes in the caption: text in the picture's cells could linger under a
        // graphics protocol that tmux passes through without seeing it.
        let held = state.is_some() && app.hold_previews;
        if held || matches!(state, Some(Some(PreviewSlot::Pending) | None)) {
            info += " · loading…";
        }
        frame.render_widget(
            Paragraph::new(vec![
                Line::styled(name, bold()),
                Line::styled(super::truncate_right(&info, w), dim()),
            ]),
            caption_area,
        );
        if let Some(Some(PreviewSlot::Failed(e))) = state {
            frame.render_widget(
                Paragraph::new(format!(
                    "cannot preview: {}",
                    crate::sanitize::sanitize(&e.to_string())
                ))
                .style(Style::default().fg(Color::Red))
                .wrap(Wrap { trim: true }),
                slot,
            );
        }
    }
    for (r, picture) in pictures(app) {
        if let Picture::Cells(protocol) = picture {
            frame.render_widget(Image::new(protocol), r);
        }
    }
}
