//! Snapshot tests of the explorer's screens (ratatui TestBackend + insta): the progress
//! view, the table under several sorts and filters, help, detail, skipped files, and small
//! terminals, with real halfblocks previews of generated images.

use image::{Rgb, RgbImage};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use snowscope::model::{ModelConfig, Precision};
use snowscope::pipeline::{Event, Progress};
use snowscope::scan::Skip;
use snowscope::tui::app::{Action, App, Loaded, PromptKind, update};
use snowscope::tui::graphics::Graphics;
use snowscope::tui::model::Column;
use snowscope::tui::{preview, testing, view};
use std::path::Path;

/// Twelve small PNGs: discs whose size and colour follow the fixture's points, so the two
/// far points look different from the clusters.
fn write_images(dir: &Path) {
    let colours = [
        [200, 60, 60],
        [205, 65, 60],
        [195, 60, 70],
        [210, 70, 65],
        [60, 160, 220],
        [70, 150, 210],
        [60, 170, 230],
        [75, 145, 215],
        [240, 220, 40],
        [120, 220, 90],
        [230, 230, 230],
        [230, 230, 230],
    ];
    for (i, c) in colours.iter().enumerate() {
        let mut img = RgbImage::from_pixel(48, 48, Rgb([16, 24, 48]));
        let r = 8.0 + (i % 4) as f32 * 4.0;
        for (x, y, p) in img.enumerate_pixels_mut() {
            let (dx, dy) = (x as f32 - 23.5, y as f32 - 23.5);
            // A hexagon-ish snowflake: a disc with six notches.
            let angle = dy.atan2(dx);
            let rr = r * (0.8 + 0.2 * (6.0 * angle).cos());
            if dx * dx + dy * dy <= rr * rr {
                *p = Rgb(*c);
            }
        }
        img.save(dir.join(format!("flake{:02}.png", i + 1)))
            .unwrap();
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    app: App,
}

fn explorer(width: u16, height: u16) -> Fixture {
    explorer_with(width, height, |_| {})
}

/// `explorer`, with the loaded ranking changed by `adjust` first.
fn explorer_with(width: u16, height: u16, adjust: impl FnOnce(&mut Loaded)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    write_images(dir.path());
    let mut loaded = testing::small_in(dir.path());
    adjust(&mut loaded);
    loaded.model = "efficientnet-lite0 head avg-pool on cpu".into();
    loaded.skipped = vec![Skip {
        path: "broken\u{1b}[31m.png".into(),
        reason: "cannot decode: truncated file".into(),
    }];
    let mut app = App::new(
        dir.path().display().to_string(),
        "efficientnet-lite0".into(),
        Some("halfblocks".into()),
    );
    update(&mut app, Action::Resize(width, height));
    update(&mut app, Action::Loaded(Box::new(loaded)));
    Fixture { _dir: dir, app }
}

/// Does what the preview worker does, synchronously, for every preview on screen.
fn load_previews(app: &mut App) {
    let graphics = Graphics::halfblocks();
    for _ in 0..3 {
        let wanted = app.wanted_previews();
        let mut any = false;
        for req in wanted {
            if matches!(
                app.previews.get(&req.key),
                Some(snowscope::tui::app::PreviewSlot::Pending) | None
            ) {
                update(
                    app,
                    Action::Preview(preview::render_request(
                        &graphics,
                        // FP32: the snapshot is pixel-exact, and BF16 (the default
                        // where the CPU has AMX) moves the tint by a shade.
                        &mut preview::Heat::new(ModelConfig {
                            precision: Some(Precision::F32),
                            ..Default::default()
                        }),
                        &req,
                    )),
                );
                any = true;
            }
        }
        if !any {
            break;
        }
    }
}

fn act(app: &mut App, actions: impl IntoIterator<Item = Action>) {
    for a in actions {
        update(app, a);
    }
}

fn type_text(app: &mut App, kind: PromptKind, text: &str) {
    update(app, Action::OpenPrompt(kind, String::new()));
    for c in text.chars() {
        update(app, Action::PromptChar(c));
    }
}

fn screen(app: &mut App) -> TestBackend {
    load_previews(app);
    let mut terminal = Terminal::new(TestBackend::new(app.width, app.height)).unwrap();
    terminal.draw(|f| view::draw(f, app)).unwrap();
    terminal.backend().clone()
}

#[test]
fn progress_view() {
    let mut app = App::new(
        "/data/snowflakes".into(),
        "efficientnet-lite0 head avg-pool on cpu".into(),
        Some("halfblocks".into()),
    );
    act(
        &mut app,
        [
            Action::Resize(80, 24),
            Action::Worker(Event::Planned {
                files: 186,
                total: 180,
                cached: 40,
                model: "efficientnet-lite0 head avg-pool on cpu".into(),
            }),
            Action::Worker(Event::Skipped(Skip {
                path: "empty.png".into(),
                reason: "empty file (0 bytes)".into(),
            })),
            Action::Worker(Event::Progress(Progress {
                done: 104,
                total: 180,
                images_per_s: 21.4,
                eta_s: 3.55,
                current: "stellar/dendrite_0412.png".into(),
                skipped: 1,
            })),
            Action::Tick(3.2),
        ],
    );
    insta::assert_snapshot!("progress", screen(&mut app));
    act(&mut app, [Action::Cancel]);
    insta::assert_snapshot!("progress_cancelling", screen(&mut app));
    act(&mut app, [Action::ShowSkips]);
    insta::assert_snapshot!("progress_skipped", screen(&mut app));
}

#[test]
fn explorer_default_sort_with_previews() {
    let mut f = explorer(120, 36);
    insta::assert_snapshot!("explorer_default", screen(&mut f.app));
}

#[test]
fn explorer_sorted_by_file_then_reversed_k_nn() {
    let mut f = explorer(120, 36);
    act(&mut f.app, [Action::SortBy(Column::File), Action::Move(3)]);
    insta::assert_snapshot!("explorer_by_file", screen(&mut f.app));
    act(
        &mut f.app,
        [Action::SortBy(Column::Knn), Action::SortBy(Column::Knn)],
    );
    insta::assert_snapshot!("explorer_by_knn_ascending", screen(&mut f.app));
}

#[test]
fn explorer_filtered() {
    let mut f = explorer(120, 36);
    type_text(&mut f.app, PromptKind::PathFilter, "flake0");
    insta::assert_snapshot!("explorer_typing_filter", screen(&mut f.app));
    act(&mut f.app, [Action::PromptSubmit]);
    type_text(&mut f.app, PromptKind::ScoreFilter, ">= 0.2");
    act(&mut f.app, [Action::PromptSubmit]);
    insta::assert_snapshot!("explorer_path_and_score_filter", screen(&mut f.app));
    act(
        &mut f.app,
        [
            Action::ClearFilters,
            Action::ToggleFence,
            Action::ToggleScope,
        ],
    );
    insta::assert_snapshot!("explorer_beyond_fence_all_scope", screen(&mut f.app));
    act(&mut f.app, [Action::ClearFilters]);
    type_text(&mut f.app, PromptKind::PathFilter, "nothing-matches");
    act(&mut f.app, [Action::PromptSubmit]);
    insta::assert_snapshot!("explorer_no_match", screen(&mut f.app));
}

#[test]
fn explorer_search() {
    let mut f = explorer(120, 36);
    type_text(&mut f.app, PromptKind::Search, "flake0[5-8]");
    act(&mut f.app, [Action::PromptSubmit, Action::SearchNext]);
    insta::assert_snapshot!("explorer_search", screen(&mut f.app));
}

#[test]
fn help_overlay() {
    let mut f = explorer(120, 40);
    act(&mut f.app, [Action::ShowHelp]);
    insta::assert_snapshot!("help", screen(&mut f.app));
    act(&mut f.app, [Action::Resize(100, 24)]);
    insta::assert_snapshot!("help_two_columns", screen(&mut f.app));
}

#[test]
fn detail_view() {
    let mut f = explorer(120, 36);
    act(&mut f.app, [Action::OpenDetail, Action::Move(1)]);
    insta::assert_snapshot!("detail", screen(&mut f.app));
}

#[test]
fn skipped_files_overlay_sanitises_names() {
    let mut f = explorer(100, 24);
    act(&mut f.app, [Action::ShowSkips]);
    let s = screen(&mut f.app);
    insta::assert_snapshot!("skipped", s);
}

#[test]
fn small_terminals() {
    let mut f = explorer(80, 24);
    insta::assert_snapshot!("explorer_80x24", screen(&mut f.app));
    act(&mut f.app, [Action::ToggleZoom]);
    insta::assert_snapshot!("explorer_80x24_zoomed_preview", screen(&mut f.app));
    act(&mut f.app, [Action::ToggleZoom, Action::Resize(50, 12)]);
    insta::assert_snapshot!("explorer_50x12", screen(&mut f.app));
    act(&mut f.app, [Action::Resize(30, 8)]);
    insta::assert_snapshot!("tiny", screen(&mut f.app));
}

#[test]
fn every_size_draws_without_panicking() {
    let mut f = explorer(120, 36);
    for (w, h) in [
        (0, 0),
        (1, 1),
        (10, 3),
        (40, 10),
        (41, 11),
        (60, 16),
        (109, 30),
        (110, 30),
        (250, 80),
    ] {
        act(&mut f.app, [Action::Resize(w, h)]);
        for overlay in [
            None,
            Some(Action::ShowHelp),
            Some(Action::OpenDetail),
            Some(Action::ShowSkips),
        ] {
            act(&mut f.app, overlay);
            let _ = screen(&mut f.app);
            act(&mut f.app, [Action::CloseOverlay]);
        }
    }
}

#[test]
fn unreadable_image_shows_why_instead_of_a_picture() {
    let mut f = explorer(120, 36);
    // The closest match of the first row, truncated after the fixture was ranked.
    let path = f._dir.path().join("flake11.png");
    std::fs::write(&path, b"\x89PNG\r\n\x1a\n not really").unwrap();
    insta::assert_snapshot!("preview_error", screen(&mut f.app));
}

#[test]
fn resizing_to_1x1_and_back_while_previews_are_on_their_way() {
    let mut f = explorer(120, 36);
    let graphics = Graphics::halfblocks();
    let draw = |app: &App| {
        let mut terminal = Terminal::new(TestBackend::new(app.width, app.height)).unwrap();
        terminal.draw(|frame| view::draw(frame, app)).unwrap();
    };
    for round in 0..4 {
        // Requests go out at the full size (pending)...
        let asked = f.app.wanted_previews();
        assert!(
            !asked.is_empty(),
            "round {round}: previews wanted at 120x36"
        );
        act(&mut f.app, [Action::Move(1)]);
        // ...the terminal shrinks to one cell, and their results arrive late.
        act(&mut f.app, [Action::Resize(1, 1)]);
        assert!(f.app.wanted_previews().is_empty(), "no previews at 1x1");
        draw(&f.app);
        for req in asked {
            act(
                &mut f.app,
                [Action::Preview(preview::render_request(
                    &graphics,
                    &mut preview::Heat::new(Default::default()),
                    &req,
                ))],
            );
            draw(&f.app);
        }
        act(&mut f.app, [Action::Move(-1), Action::Resize(120, 36)]);
        draw(&f.app);
    }
    // Back at full size, with the pictures at the right size.
    let screen = screen(&mut f.app);
    insta::assert_snapshot!("explorer_default", screen);
}

/// Traits for the fixture's images: all alike but the first (rank 1's flake10 is row 9),
/// which is far larger and has little six-fold symmetry.
fn with_traits(loaded: &mut Loaded) {
    use snowscope::traits::{COUNT, index};
    for image in &mut loaded.ranking.images {
        let mut t = [0.5f32; COUNT];
        let odd = image.path == "flake10.png";
        t[index("area")] = if odd {
            9000.0
        } else {
            900.0 + image.index as f32
        };
        t[index("max_dimension")] = 40.0 + image.index as f32;
        t[index("sixfold_symmetry")] = if odd {
            0.1
        } else {
            0.8 + 0.01 * image.index as f32
        };
        image.traits = t.to_vec();
    }
}

/// Preview cells drawn mostly red (the heat tint), from their colours.
fn red_cells(backend: &TestBackend) -> usize {
    use ratatui::style::Color;
    let reddish =
        |c: Color| matches!(c, Color::Rgb(r, g, b) if r as u16 > g as u16 + b as u16 / 2 + 80);
    backend
        .buffer()
        .content()
        .iter()
        .filter(|c| reddish(c.fg) || reddish(c.bg))
        .count()
}

#[test]
fn marks_filter_and_export_the_marked_rows() {
    let mut f = explorer(120, 36);
    act(
        &mut f.app,
        [
            Action::ToggleMark,
            Action::Move(2),
            Action::ToggleMark,
            Action::ToggleMarkedOnly,
        ],
    );
    insta::assert_snapshot!("explorer_marked_only", screen(&mut f.app));
    act(&mut f.app, [Action::ToggleMarkedOnly]);
    // The export writes the marked rows (flake11's copy flake12 shares its mark),
    // whatever the view shows.
    type_text(&mut f.app, PromptKind::PathFilter, "flake0[1-3]");
    act(&mut f.app, [Action::PromptSubmit]);
    let csv = f.app.export_text(snowscope::export::Format::Csv).unwrap();
    let marked: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(
        marked,
        ["flake10.png", "flake11.png", "flake12.png"],
        "{csv}"
    );
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| l.split(',').nth(9) == Some("true")),
        "{csv}"
    );
    // Unmarking both leaves the view to export.
    act(
        &mut f.app,
        [
            Action::ClearFilters,
            Action::Top,
            Action::ToggleMark,
            Action::Move(2),
            Action::ToggleMark,
        ],
    );
    let csv = f.app.export_text(snowscope::export::Format::Csv).unwrap();
    assert_eq!(csv.lines().count(), 13, "{csv}");
}

#[test]
fn the_detail_view_lists_the_most_unusual_traits() {
    let mut f = explorer_with(120, 36, with_traits);
    // The worker sends the folder's trait statistics just after the table.
    let images = &f.app.explorer.as_ref().unwrap().table.ranking.images;
    let rows: Vec<f32> = images.iter().flat_map(|i| i.traits.clone()).collect();
    let stats = snowscope::explain::TraitStats::of(&rows).map(Box::new);
    act(&mut f.app, [Action::TraitStats(stats), Action::OpenDetail]);
    let s = screen(&mut f.app);
    insta::assert_snapshot!("detail_traits", s);
}

#[test]
fn the_heat_overlay_tints_both_previews_where_they_differ() {
    let mut f = explorer(120, 36);
    let plain = red_cells(&screen(&mut f.app));
    act(&mut f.app, [Action::ToggleHeat]);
    let s = screen(&mut f.app);
    let heated = red_cells(&s);
    assert!(
        heated > plain + 20,
        "red cells: {plain} without heat, {heated} with"
    );
    insta::assert_snapshot!("explorer_heat", s);
    act(&mut f.app, [Action::ToggleHeat]);
    assert_eq!(red_cells(&screen(&mut f.app)), plain, "off again");
}
