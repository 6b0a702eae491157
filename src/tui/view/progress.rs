//! The progress view while features are extracted.

use super::{bold, dim, duration, pane, truncate_left};
use crate::sanitize::sanitize;
use crate::tui::app::{App, Stage};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph, Wrap};

const SPINNER: [&str; 4] = ["◐", "◓", "◑", "◒"];

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let p = &app.progress;
    let spin = SPINNER[(p.elapsed_s * 4.0) as usize % SPINNER.len()];
    let stage = match &p.stage {
        Stage::Scanning => "scanning and hashing files".to_string(),
        Stage::Extracting => "extracting features".to_string(),
        Stage::Ranking(n) => format!("finding nearest neighbours of {n} images"),
        Stage::Cancelling => "cancelling: finishing the current batch…".to_string(),
    };
    let screen = Rect::new(area.x, area.y, area.width, area.height.saturating_sub(1));
    // A box sized to its content, centred: the progress view has little to say.
    let content_h = 10 + p.notices.len() as u16;
    let main = super::centered(screen, screen.width.min(100), content_h + 2);
    let block = pane(
        Line::from(vec![
            Span::styled(" snowscope ", bold()),
            Span::raw(format!("· {spin} {stage} ")),
        ]),
        true,
    );
    let inner = block.inner(main);
    frame.render_widget(block, main);
    let w = inner.width.saturating_sub(11) as usize;
    let label = |k: &str, v: String| {
        Line::from(vec![
            Span::styled(format!("{k:<10} "), dim()),
            Span::raw(truncate_left(&v, w)),
        ])
    };
    let mut lines = vec![
        label("folder", sanitize(&p.dir)),
        label("model", p.model.clone()),
        Line::raw(""),
    ];
    let top = lines.len() as u16;
    let pr = &p.progress;
    lines.push(Line::raw(""));
    lines.push(Line::raw(""));
    let rate = if pr.images_per_s > 0.0 {
        format!("{:.1} images/s", pr.images_per_s)
    } else {
        "- images/s".into()
    };
    let eta = if pr.images_per_s > 0.0 && pr.done < pr.total {
        duration(pr.eta_s)
    } else {
        "-".into()
    };
    lines.push(label(
        "speed",
        format!("{rate} · ETA {eta} · elapsed {}", duration(p.elapsed_s)),
    ));
    lines.push(label(
        "images",
        format!(
            "{} to extract, {} from the cache",
            p.total - p.cached.min(p.total),
            p.cached
        ),
    ));
    let current = if pr.current.is_empty() {
        "-".to_string()
    } else {
        sanitize(&pr.current)
    };
    lines.push(label("reading", current));
    let skipped = p.skipped.len();
    lines.push(Line::from(vec![
        Span::styled(format!("{:<10} ", "skipped"), dim()),
        Span::styled(
            skipped.to_string(),
            if skipped > 0 {
                Style::default().fg(Color::Yellow)
            } else {
                Style::default()
            },
        ),
        Span::styled(
            if skipped > 0 {
                "  (s: show reasons)"
            } else {
                ""
            },
            dim(),
        ),
    ]));
    for n in &p.notices {
        lines.push(Line::styled(
            format!("note: {}", sanitize(n)),
            Style::default().fg(Color::Yellow),
        ));
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
    // The gauge sits on the blank line reserved above.
    if inner.height > top + 1 {
        let ratio = if pr.total > 0 {
            (pr.done as f64 / pr.total as f64).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let gauge = Gauge::default()
            .gauge_style(Style::default().fg(Color::Cyan).bg(Color::Black))
            .ratio(ratio)
            .label(format!("{} / {}  {:.0}%", pr.done, pr.total, ratio * 100.0));
        let g = Rect::new(inner.x, inner.y + top, inner.width, 1);
        frame.render_widget(gauge, g);
    }
    let help = " q / Ctrl-C cancel (finished work stays in the cache) · s skipped files · ? help";
    let status = Rect::new(area.x, area.bottom().saturating_sub(1), area.width, 1);
    frame.render_widget(
        Paragraph::new(truncate_left(help, area.width as usize)).style(dim()),
        status,
    );
}
