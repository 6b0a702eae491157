//! Explorer benchmarks: re-sorting and re-filtering 100,000 rows, and drawing one full
//! frame (200x60, halfblocks previews), each of which must stay well under 16 ms.
//! `SNOWSCOPE_BENCH_ROWS=1000000 cargo bench --bench tui` measures a million rows.
//! Register in Cargo.toml: [[bench]] name = "tui" harness = false

use criterion::{Criterion, criterion_group, criterion_main};
use image::{Rgb, RgbImage};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use snowscope::tui::app::{Action, App, Explorer, PromptKind, update};
use snowscope::tui::graphics::Graphics;
use snowscope::tui::model::Column;
use snowscope::tui::{preview, testing, view};
use std::hint::black_box;

/// Rows of the synthetic ranking: `SNOWSCOPE_BENCH_ROWS`, default 100,000.
fn rows() -> usize {
    std::env::var("SNOWSCOPE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn explorer(width: u16, height: u16) -> App {
    let mut app = App::new("/bench".into(), "bench".into(), Some("halfblocks".into()));
    update(&mut app, Action::Resize(width, height));
    update(
        &mut app,
        Action::Loaded(Box::new(testing::synthetic(rows()))),
    );
    app
}

fn type_filter(app: &mut App, kind: PromptKind, text: &str) {
    update(app, Action::OpenPrompt(kind, text.to_string()));
    update(app, Action::PromptSubmit);
}

fn sorting(c: &mut Criterion) {
    let mut app = explorer(200, 60);
    update(&mut app, Action::Move(500));
    let mut g = c.benchmark_group(format!("{} rows", rows()));
    g.bench_function("re-sort (toggle file column)", |b| {
        b.iter(|| update(black_box(&mut app), Action::SortBy(Column::File)))
    });
    g.bench_function("re-sort (toggle distance column)", |b| {
        b.iter(|| update(black_box(&mut app), Action::SortBy(Column::Distance)))
    });
    g.bench_function("re-filter (path regex)", |b| {
        let mut flip = false;
        b.iter(|| {
            flip = !flip;
            let re = if flip { "batch0[0-4]" } else { "flake_0+[1-9]" };
            type_filter(black_box(&mut app), PromptKind::PathFilter, re);
        })
    });
    update(&mut app, Action::ClearFilters);
    g.bench_function("re-filter (score >= x)", |b| {
        let mut flip = false;
        b.iter(|| {
            flip = !flip;
            let f = if flip { ">= 0.5" } else { ">= 0.3" };
            type_filter(black_box(&mut app), PromptKind::ScoreFilter, f);
        })
    });
    update(&mut app, Action::ClearFilters);
    g.bench_function("re-filter (beyond fence toggle)", |b| {
        b.iter(|| update(black_box(&mut app), Action::ToggleFence))
    });
    g.bench_function("move selection by one", |b| {
        let mut d = 1;
        b.iter(|| {
            d = -d;
            update(black_box(&mut app), Action::Move(d))
        })
    });
    g.sample_size(10);
    g.bench_function(
        "open: the first screen (names, score order, boxplot)",
        |b| {
            b.iter_batched(
                || testing::synthetic(rows()),
                |loaded| Explorer::new(black_box(loaded)),
                criterion::BatchSize::LargeInput,
            )
        },
    );
    g.finish();
}

fn drawing(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut app = explorer(200, 60);
    // Real halfblocks previews of two images, as the worker would deliver them.
    let graphics = Graphics::halfblocks();
    let wanted = app.wanted_previews();
    for (i, wanted) in wanted.into_iter().enumerate() {
        let path = dir.path().join(format!("{i}.png"));
        let img = RgbImage::from_fn(256, 256, |x, y| {
            Rgb([(x as u8).wrapping_mul(3), (y as u8) ^ (i as u8 * 90), 128])
        });
        img.save(&path).unwrap();
        let req = preview::PreviewRequest { path, ..wanted };
        update(
            &mut app,
            Action::Preview(preview::render_request(
                &graphics,
                &mut preview::Heat::new(Default::default()),
                &req,
            )),
        );
    }
    let mut terminal = Terminal::new(TestBackend::new(200, 60)).unwrap();
    let mut g = c.benchmark_group("draw");
    g.bench_function("full frame 200x60, halfblocks previews", |b| {
        b.iter(|| {
            terminal.draw(|f| view::draw(f, black_box(&app))).unwrap();
            // Force a full redraw next time, as after a resize.
            terminal.clear().unwrap();
        })
    });
    update(&mut app, Action::ShowHelp);
    g.bench_function("full frame 200x60 with help", |b| {
        b.iter(|| {
            terminal.draw(|f| view::draw(f, black_box(&app))).unwrap();
            terminal.clear().unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, sorting, drawing);
criterion_main!(benches);
