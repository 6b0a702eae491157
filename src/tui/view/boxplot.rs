//! A horizontal boxplot of the score: box from Q1 to Q3, median, whiskers at the most
//! extreme points within 1.5 IQR, outlier points, an axis with values, and the selected
//! image marked above.

use super::{bold, dim, pane};
use crate::tui::app::{Explorer, Focus, Scope};
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};

/// Maps values in `[lo, hi]` to columns `0..width`.
#[derive(Debug, Clone, Copy)]
struct Scale {
    lo: f32,
    hi: f32,
    width: u16,
}

impl Scale {
    fn x(&self, v: f32) -> u16 {
        if self.width <= 1 || self.hi <= self.lo {
            return self.width / 2;
        }
        let t = ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0);
        (t * f32::from(self.width - 1)).round() as u16
    }
}

/// A "nice" tick step (1, 2 or 5 times a power of ten) for about `n` ticks over `span`.
fn tick_step(span: f32, n: u16) -> f32 {
    let raw = span / f32::from(n.max(1));
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let mag = 10f32.powf(raw.log10().floor());
    let f = raw / mag;
    // The nearest nice factor, so the count stays close to `n`.
    let nice = if f < 1.5 {
        1.0
    } else if f < 3.5 {
        2.0
    } else if f < 7.5 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn decimals(step: f32) -> usize {
    if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    }
}

fn put(buf: &mut Buffer, area: Rect, x: u16, y: u16, s: &str, style: Style) {
    if x < area.width && y < area.height {
        buf.set_string(area.x + x, area.y + y, s, style);
    }
}

pub fn draw(frame: &mut Frame, ex: &Explorer, area: Rect) {
    let dist = ex.distribution();
    let scope = match ex.scope {
        Scope::Shown => "shown",
        Scope::All => "all",
    };
    let score = match ex.table.ranking.config.score {
        crate::rank::ScoreKind::Nn => " distance boxplot ",
        crate::rank::ScoreKind::Knn => " k-NN distance boxplot ",
        crate::rank::ScoreKind::Lof => " LOF boxplot ",
    };
    let mut title = vec![
        Span::styled(score, bold()),
        Span::raw(format!("· {scope} ")),
    ];
    if let Some(s) = dist.stats {
        title.push(Span::raw(format!("· n={} ", s.count)));
    }
    let block = pane(Line::from(title), ex.focus == Focus::Boxplot);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(stats) = dist.stats else {
        frame.render_widget(
            ratatui::widgets::Paragraph::new("No scores to plot."),
            inner,
        );
        return;
    };
    if inner.width < 10 || inner.height < 3 {
        return;
    }
    let selected = ex
        .selected_row()
        .and_then(|r| ex.table.image(r).score.map(|s| (ex.table.image(r).rank, s)));
    // The axis spans the data and the selected image, with a little air at the ends.
    let mut lo = stats.min;
    let mut hi = stats.max;
    if let Some((_, s)) = selected {
        lo = lo.min(s);
        hi = hi.max(s);
    }
    let pad = ((hi - lo) * 0.03).max(1e-6);
    let (lo, hi) = (lo - pad, hi + pad);
    // Two cells of margin each side so end labels have room.
    let plot = Rect::new(inner.x + 2, inner.y, inner.width - 4, inner.height);
    let scale = Scale {
        lo,
        hi,
        width: plot.width,
    };
    let buf = frame.buffer_mut();
    let full = inner.height >= 6;
    let (marker_y, box_y, axis_y) = if full { (0, 2, 4) } else { (0, 1, 2) };
    let whisker_style = Style::default();
    let box_style = Style::default().fg(Color::Cyan);
    let median_style = Style::default().fg(Color::Yellow);
    let (xlw, xq1, xmed, xq3, xuw) = (
        scale.x(stats.lower_whisker),
        scale.x(stats.q1),
        scale.x(stats.median),
        scale.x(stats.q3),
        scale.x(stats.upper_whisker),
    );
    // Whiskers and the box on the middle line.
    for x in xlw..=xuw {
        put(buf, plot, x, box_y, "─", whisker_style);
    }
    put(buf, plot, xlw, box_y, "├", whisker_style);
    put(buf, plot, xuw, box_y, "┤", whisker_style);
    if full {
        for x in xq1..=xq3 {
            put(buf, plot, x, box_y - 1, "─", box_style);
            put(buf, plot, x, box_y + 1, "─", box_style);
            if x > xq1 && x < xq3 {
                put(buf, plot, x, box_y, " ", box_style);
            }
        }
        put(buf, plot, xq1, box_y - 1, "┌", box_style);
        put(buf, plot, xq3, box_y - 1, "┐", box_style);
        put(buf, plot, xq1, box_y + 1, "└", box_style);
        put(buf, plot, xq3, box_y + 1, "┘", box_style);
        put(
            buf,
            plot,
            xq1,
            box_y,
            if xq1 == xlw { "│" } else { "┤" },
            box_style,
        );
        put(
            buf,
            plot,
            xq3,
            box_y,
            if xq3 == xuw { "│" } else { "├" },
            box_style,
        );
        put(buf, plot, xmed, box_y - 1, "┬", median_style);
        put(buf, plot, xmed, box_y, "│", median_style);
        put(buf, plot, xmed, box_y + 1, "┴", median_style);
    } else {
        for x in xq1..=xq3 {
            put(buf, plot, x, box_y, "█", box_style);
        }
        put(buf, plot, xmed, box_y, "┃", median_style.bg(Color::Cyan));
    }
    // Outliers: one dot per column that holds any.
    let outlier_style = Style::default().fg(Color::Red);
    let mut seen = vec![false; plot.width as usize];
    for &v in &dist.outliers {
        let x = scale.x(v);
        if !std::mem::replace(&mut seen[x as usize], true) {
            put(buf, plot, x, box_y, "•", outlier_style);
        }
    }
    // The selected image: an arrow above the plot with its rank and score.
    if let Some((rank, score)) = selected {
        let x = scale.x(score);
        let mark = Style::default().fg(Color::Magenta);
        put(buf, plot, x, marker_y, "▼", mark);
        let label = format!("#{rank} {score:.4}");
        let len = label.chars().count() as u16;
        let lx = if x + 2 + len <= plot.width {
            x + 2
        } else {
            x.saturating_sub(len + 1)
        };
        put(buf, plot, lx, marker_y, &label, mark);
        // A guide down to the box line where it does not hide the box.
        if full && x < plot.width && buf[(plot.x + x, plot.y + marker_y + 1)].symbol() == " " {
            put(buf, plot, x, marker_y + 1, "╎", mark);
        }
    }
    // Axis: a rule with ticks, labels below (full form) or labels only (compact).
    let step = tick_step(hi - lo, (plot.width / 10).clamp(3, 10));
    let dec = decimals(step);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    let (rule_y, label_y) = if full {
        (Some(axis_y), axis_y + 1)
    } else {
        (None, axis_y)
    };
    if let Some(y) = rule_y {
        for x in 0..plot.width {
            put(buf, plot, x, y, "─", dim());
        }
    }
    let mut next_free = 0u16;
    for t in first..=last {
        let v = t as f32 * step;
        let x = scale.x(v);
        if let Some(y) = rule_y {
            put(buf, plot, x, y, "┴", dim());
        }
        let label = format!("{v:.dec$}");
        let len = label.chars().count() as u16;
        let start = (x + plot.x).saturating_sub(len / 2).max(inner.x);
        if start >= next_free && start + len <= inner.right() {
            buf.set_string(start, plot.y + label_y, &label, dim());
            next_free = start + len + 1;
        }
    }
    if full && inner.height >= 7 {
        let summary = format!(
            "Q1 {:.3} · median {:.3} · Q3 {:.3} · fence {:.3} · {} outliers",
            stats.q1,
            stats.median,
            stats.q3,
            stats.upper_fence,
            dist.outliers.len()
        );
        buf.set_stringn(inner.x, inner.y + 6, summary, inner.width as usize, dim());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks() {
        assert_eq!(tick_step(1.0, 5), 0.2);
        assert_eq!(tick_step(100.0, 4), 20.0);
        assert_eq!(tick_step(0.7, 4), 0.2);
        assert!((tick_step(0.03, 3) - 0.01).abs() < 1e-7);
        assert_eq!(decimals(0.2), 1);
        assert_eq!(decimals(0.01), 2);
        assert_eq!(decimals(5.0), 0);
    }

    #[test]
    fn scale_maps_ends() {
        let s = Scale {
            lo: 0.0,
            hi: 1.0,
            width: 11,
        };
        assert_eq!((s.x(0.0), s.x(0.5), s.x(1.0), s.x(7.0)), (0, 5, 10, 10));
    }
}
