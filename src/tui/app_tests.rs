//! Unit tests of `update`: sorting, filters, search, selection, scrolling, resize, previews.

use super::app::{Action, App, Direction, Effect, Overlay, PromptKind, Stage, update};
use super::model::Column;
use super::preview::{Failure, PreviewResult};
use super::testing;
use crate::pipeline::{Event, Progress};

fn app_with(loaded: super::app::Loaded, w: u16, h: u16, previews: bool) -> App {
    let mut app = App::new(
        "/data".into(),
        "model".into(),
        previews.then(|| "halfblocks".to_string()),
    );
    update(&mut app, Action::Resize(w, h));
    update(&mut app, Action::Loaded(Box::new(loaded)));
    app
}

fn app() -> App {
    app_with(testing::small(), 120, 40, false)
}

/// File names of the rows on screen, in order.
fn names(app: &App) -> Vec<String> {
    let ex = app.explorer.as_ref().unwrap();
    ex.view
        .iter()
        .map(|&r| ex.table.paths[r as usize].to_string())
        .collect()
}

fn selected_name(app: &App) -> String {
    let ex = app.explorer.as_ref().unwrap();
    ex.table.paths[ex.selected_row().unwrap() as usize].to_string()
}

fn type_text(app: &mut App, kind: PromptKind, text: &str) {
    update(app, Action::OpenPrompt(kind, String::new()));
    for c in text.chars() {
        update(app, Action::PromptChar(c));
    }
}

fn distances(app: &App) -> Vec<f32> {
    let ex = app.explorer.as_ref().unwrap();
    ex.view
        .iter()
        .map(|&r| ex.table.image(r).nn_distance.unwrap())
        .collect()
}

#[test]
fn default_sort_is_distance_descending() {
    let app = app();
    let d = distances(&app);
    assert_eq!(d.len(), 12);
    assert!(d.windows(2).all(|w| w[0] >= w[1]), "{d:?}");
    assert_eq!(names(&app)[0], "flake10.png", "the far point first");
    assert_eq!(selected_name(&app), "flake10.png");
}

#[test]
fn sorting_by_key_reverses_on_second_press_and_keeps_the_selection() {
    let mut app = app();
    update(&mut app, Action::Move(2));
    let picked = selected_name(&app);
    update(&mut app, Action::SortBy(Column::Distance));
    let d = distances(&app);
    assert!(d.windows(2).all(|w| w[0] <= w[1]), "ascending: {d:?}");
    assert_eq!(selected_name(&app), picked, "same image stays selected");
    update(&mut app, Action::SortBy(Column::File));
    let n = names(&app);
    assert_eq!(n.first().unwrap(), "flake01.png", "names start ascending");
    assert_eq!(n.last().unwrap(), "flake12.png");
    update(&mut app, Action::SortBy(Column::File));
    assert_eq!(names(&app).first().unwrap(), "flake12.png");
    assert_eq!(selected_name(&app), picked);
}

#[test]
fn bracket_keys_sort_the_focused_column() {
    let mut app = app();
    // Focus starts on the sorted column (distance); two to the left is rank.
    update(&mut app, Action::FocusColumn(-2));
    let ex = app.explorer.as_ref().unwrap();
    assert_eq!(ex.columns[ex.column], Column::Rank);
    update(&mut app, Action::SortFocused { descending: true });
    let ex = app.explorer.as_ref().unwrap();
    let ranks: Vec<usize> = ex.view.iter().map(|&r| ex.table.image(r).rank).collect();
    assert_eq!(ranks, (1..=12).rev().collect::<Vec<_>>());
    update(&mut app, Action::SortFocused { descending: false });
    let ex = app.explorer.as_ref().unwrap();
    assert_eq!(ex.table.image(ex.view[0]).rank, 1);
    // Focus cannot leave the table.
    update(&mut app, Action::FocusColumn(-10));
    update(&mut app, Action::FocusColumn(100));
    let ex = app.explorer.as_ref().unwrap();
    assert_eq!(ex.column, ex.columns.len() - 1);
}

#[test]
fn ties_keep_rank_order_in_both_directions() {
    let mut app = app();
    update(&mut app, Action::SortBy(Column::Dups));
    let ex = app.explorer.as_ref().unwrap();
    let first_two: Vec<usize> = ex.view[..2]
        .iter()
        .map(|&r| ex.table.image(r).rank)
        .collect();
    assert!(first_two[0] < first_two[1], "copies first, by rank");
    assert_eq!(ex.table.image(ex.view[0]).duplicates, 2);
}

#[test]
fn path_filter_is_live_and_esc_in_the_prompt_restores() {
    let mut app = app();
    type_text(&mut app, PromptKind::PathFilter, "flake0[1-4]");
    assert_eq!(names(&app).len(), 4);
    update(&mut app, Action::PromptSubmit);
    assert!(app.prompt.is_none());
    let ex = app.explorer.as_ref().unwrap();
    assert_eq!(ex.filter.describe(), "path ~ /flake0[1-4]/");
    // A new filter typed then abandoned puts the old one back.
    type_text(&mut app, PromptKind::PathFilter, "flake1");
    update(&mut app, Action::PromptBackspace);
    assert_eq!(names(&app).len(), 12, "'flake' matches all");
    update(&mut app, Action::PromptCancel);
    assert_eq!(names(&app).len(), 4);
}

#[test]
fn invalid_regex_shows_an_error_and_keeps_the_view() {
    let mut app = app();
    type_text(&mut app, PromptKind::PathFilter, "flake(");
    let prompt = app.prompt.as_ref().unwrap();
    assert!(prompt.error.is_some());
    assert_eq!(
        names(&app).len(),
        12,
        "the last valid text ('flake') still applies"
    );
    update(&mut app, Action::PromptSubmit);
    assert!(
        app.prompt.is_some(),
        "Enter does not accept an invalid regex"
    );
}

#[test]
fn score_filters_and_toggles_combine() {
    let mut app = app();
    type_text(&mut app, PromptKind::ScoreFilter, ">= 1");
    update(&mut app, Action::PromptSubmit);
    let d = distances(&app);
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(d.iter().all(|&v| v >= 1.0));
    update(&mut app, Action::ClearFilters);
    assert_eq!(names(&app).len(), 12);
    update(&mut app, Action::ToggleDuplicates);
    assert_eq!(names(&app), ["flake11.png", "flake12.png"]);
    update(&mut app, Action::ToggleDuplicates);
    update(&mut app, Action::ToggleFence);
    let ex = app.explorer.as_ref().unwrap();
    assert!(ex.view.iter().all(|&r| ex.table.image(r).beyond_fence));
    assert!(
        !ex.view.is_empty(),
        "the two far points are beyond the fence"
    );
    assert!(ex.filter.describe().contains("beyond fence"));
    // The boxplot follows the filter unless switched to all rows.
    assert_eq!(ex.shown_dist.stats.unwrap().count, ex.view.len());
    update(&mut app, Action::ToggleScope);
    let ex = app.explorer.as_ref().unwrap();
    assert_eq!(ex.distribution().stats.unwrap().count, 12);
}

#[test]
fn bad_score_filter_is_explained() {
    let mut app = app();
    type_text(&mut app, PromptKind::ScoreFilter, "big");
    let e = app.prompt.as_ref().unwrap().error.clone().unwrap();
    assert!(e.contains(">= 0.8"), "{e}");
}

#[test]
fn search_moves_with_n_and_wraps() {
    let mut app = app();
    update(&mut app, Action::SortBy(Column::File));
    update(&mut app, Action::Top);
    type_text(&mut app, PromptKind::Search, "flake1");
    update(&mut app, Action::PromptSubmit);
    assert_eq!(selected_name(&app), "flake10.png");
    update(&mut app, Action::SearchNext);
    assert_eq!(selected_name(&app), "flake11.png");
    update(&mut app, Action::SearchNext);
    update(&mut app, Action::SearchNext);
    assert_eq!(selected_name(&app), "flake10.png", "wraps around");
    update(&mut app, Action::SearchPrev);
    assert_eq!(selected_name(&app), "flake12.png");
    type_text(&mut app, PromptKind::Search, "nothing");
    update(&mut app, Action::PromptSubmit);
    assert!(app.message.as_deref().unwrap().contains("no file name"));
}

#[test]
fn movement_clamps_and_scrolls() {
    let mut app = app_with(testing::small(), 120, 12, false);
    // 12 rows high: 11 for panes, the table shows 11 - 3 = 8 rows.
    update(&mut app, Action::Bottom);
    let ex = app.explorer.as_ref().unwrap();
    assert_eq!(ex.selected, 11);
    assert_eq!(ex.offset, 4);
    update(&mut app, Action::Move(5));
    assert_eq!(app.explorer.as_ref().unwrap().selected, 11);
    update(&mut app, Action::Top);
    update(&mut app, Action::Move(-1));
    assert_eq!(app.explorer.as_ref().unwrap().selected, 0);
    update(&mut app, Action::HalfPage(Direction::Down));
    assert_eq!(app.explorer.as_ref().unwrap().selected, 4);
    update(&mut app, Action::Page(Direction::Down));
    assert_eq!(app.explorer.as_ref().unwrap().selected, 11);
    update(&mut app, Action::Page(Direction::Up));
    assert_eq!(app.explorer.as_ref().unwrap().selected, 3);
    update(&mut app, Action::Scroll(-3));
    assert_eq!(app.explorer.as_ref().unwrap().selected, 0);
}

#[test]
fn resize_keeps_the_selection_visible_and_tiny_sizes_are_safe() {
    let mut app = app();
    update(&mut app, Action::Bottom);
    update(&mut app, Action::Resize(60, 11));
    let ex = app.explorer.as_ref().unwrap();
    let page = 11 - 1 - 3;
    assert!(ex.selected >= ex.offset && ex.selected < ex.offset + page);
    for (w, h) in [(0, 0), (1, 1), (39, 9), (5, 200), (300, 3)] {
        update(&mut app, Action::Resize(w, h));
        update(&mut app, Action::Move(-1));
        update(&mut app, Action::Page(Direction::Down));
        assert!(app.wanted_previews().is_empty());
    }
    update(&mut app, Action::Resize(200, 60));
    assert_eq!(app.explorer.as_ref().unwrap().selected, 11);
}

#[test]
fn jumping_to_the_closest_match_clears_a_hiding_filter() {
    let mut app = app();
    // flake10 (the far point) has flake11 as closest match.
    assert_eq!(selected_name(&app), "flake10.png");
    update(&mut app, Action::JumpClosest);
    assert_eq!(selected_name(&app), "flake11.png");
    type_text(&mut app, PromptKind::PathFilter, "flake10");
    update(&mut app, Action::PromptSubmit);
    assert_eq!(names(&app), ["flake10.png"]);
    update(&mut app, Action::JumpClosest);
    assert_eq!(selected_name(&app), "flake11.png");
    assert!(app.explorer.as_ref().unwrap().filter.is_empty());
    assert!(app.message.as_deref().unwrap().contains("cleared"));
}

#[test]
fn detail_lists_neighbours_and_jumps() {
    let mut app = app();
    update(&mut app, Action::OpenDetail);
    assert_eq!(app.overlay, Overlay::Detail(0));
    update(&mut app, Action::Move(1));
    update(&mut app, Action::Move(10));
    assert_eq!(app.overlay, Overlay::Detail(2), "k = 3 neighbours");
    let ex = app.explorer.as_ref().unwrap();
    let target = ex.table.image(ex.selected_row().unwrap()).neighbours[2].0;
    update(&mut app, Action::DetailJump);
    assert_eq!(app.overlay, Overlay::None);
    let ex = app.explorer.as_ref().unwrap();
    assert_eq!(ex.table.image(ex.selected_row().unwrap()).index, target);
    update(&mut app, Action::OpenDetail);
    update(&mut app, Action::ClearFilters);
    assert_eq!(app.overlay, Overlay::None, "Esc closes the detail first");
}

#[test]
fn click_selects_a_row() {
    let mut app = app();
    // Table border at y = 0, header at y = 1, first data row at y = 2.
    update(&mut app, Action::Click(5, 5));
    assert_eq!(app.explorer.as_ref().unwrap().selected, 3);
    update(&mut app, Action::Click(5, 0));
    assert_eq!(app.explorer.as_ref().unwrap().selected, 3);
    // The header row (y = 1): the second column is the file name.
    update(&mut app, Action::Click(10, 1));
    let ex = app.explorer.as_ref().unwrap();
    assert_eq!(ex.sort.column, Column::File);
    assert!(!ex.sort.descending);
    update(&mut app, Action::Click(10, 1));
    assert!(
        app.explorer.as_ref().unwrap().sort.descending,
        "again reverses"
    );
}

#[test]
fn focus_cycles_through_present_panes() {
    let mut app = app_with(testing::small(), 200, 60, true);
    use super::app::Focus;
    let mut seen = Vec::new();
    for _ in 0..3 {
        update(&mut app, Action::NextFocus);
        seen.push(app.explorer.as_ref().unwrap().focus);
    }
    assert_eq!(seen, [Focus::Boxplot, Focus::Preview, Focus::Table]);
    update(&mut app, Action::PrevFocus);
    assert_eq!(app.explorer.as_ref().unwrap().focus, Focus::Preview);
}

#[test]
fn progress_events_fill_the_progress_view() {
    let mut app = App::new("/data".into(), "model".into(), None);
    update(
        &mut app,
        Action::Worker(Event::Planned {
            files: 10,
            total: 10,
            cached: 4,
            model: "efficientnet".into(),
        }),
    );
    assert_eq!(app.progress.stage, Stage::Extracting);
    assert_eq!(app.progress.progress.done, 4);
    update(
        &mut app,
        Action::Worker(Event::Progress(Progress {
            done: 6,
            total: 10,
            images_per_s: 2.0,
            eta_s: 2.0,
            current: "x.png".into(),
            skipped: 0,
        })),
    );
    assert_eq!(app.progress.progress.current, "x.png");
    update(
        &mut app,
        Action::Worker(Event::Skipped(crate::scan::Skip {
            path: "bad.png".into(),
            reason: "empty file (0 bytes)".into(),
        })),
    );
    assert_eq!(app.progress.skipped.len(), 1);
}

#[test]
fn cancel_during_extraction_waits_for_the_worker_then_exits_130() {
    let mut app = App::new("/data".into(), "model".into(), None);
    let effects = update(&mut app, Action::Quit);
    assert_eq!(effects, vec![Effect::CancelWorker]);
    assert_eq!(app.progress.stage, Stage::Cancelling);
    assert_eq!(app.exit, None, "waits for finished work to be saved");
    update(&mut app, Action::WorkerCancelled);
    assert_eq!(app.exit, Some(130));
    // A second Ctrl-C while waiting leaves at once.
    let mut app = App::new("/data".into(), "model".into(), None);
    update(&mut app, Action::Cancel);
    update(&mut app, Action::Cancel);
    assert_eq!(app.exit, Some(130));
    // While the features are ranked (all saved), the first request leaves at once.
    let mut app = App::new("/data".into(), "model".into(), None);
    update(&mut app, Action::Ranking(1_000_000));
    assert_eq!(update(&mut app, Action::Quit), vec![]);
    assert_eq!(app.exit, Some(130));
    // In the explorer q quits normally.
    let mut app = self::app();
    update(&mut app, Action::Quit);
    assert_eq!(app.exit, Some(0));
}

#[test]
fn previews_are_requested_once_and_again_after_going_stale() {
    let mut app = App::new("/data".into(), "model".into(), Some("halfblocks".into()));
    update(&mut app, Action::Resize(200, 60));
    let effects = update(&mut app, Action::Loaded(Box::new(testing::small())));
    let Some(Effect::LoadPreviews(reqs)) = effects.into_iter().next() else {
        panic!("previews requested on load");
    };
    assert_eq!(reqs.len(), 2, "the selection and its closest match");
    assert!(reqs[0].path.ends_with("flake10.png"));
    assert!(reqs[1].path.ends_with("flake11.png"));
    // Nothing new to ask while they are on their way.
    assert!(update(&mut app, Action::Notify("x".into())).is_empty());
    // A stale answer makes the loop ask again.
    let effects = update(
        &mut app,
        Action::Preview(PreviewResult {
            key: reqs[0].key,
            outcome: Err(Failure::Stale),
        }),
    );
    assert!(matches!(&effects[..], [Effect::LoadPreviews(r)] if r.len() == 1));
    // Moving asks for the new pair only.
    let effects = update(&mut app, Action::Move(1));
    assert!(matches!(&effects[..], [Effect::LoadPreviews(r)] if !r.is_empty()));
    // Help hides pictures: nothing is requested behind it.
    update(&mut app, Action::ShowHelp);
    assert!(app.wanted_previews().is_empty());
}

#[test]
fn export_text_is_the_current_view() {
    let mut app = app();
    update(&mut app, Action::ToggleDuplicates);
    let csv = app.export_text(crate::export::Format::Csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "header and the two copies: {csv}");
    assert!(lines[1].contains("flake11.png"));
    let effects = update(&mut app, Action::Export(crate::export::Format::Json));
    assert_eq!(effects, vec![Effect::Export(crate::export::Format::Json)]);
}

#[test]
fn an_empty_folder_gives_an_empty_table() {
    let loaded = super::app::Loaded {
        ranking: crate::rank::Ranking {
            config: Default::default(),
            profile: Default::default(),
            images: Vec::new(),
            stats: None,
        },
        files: Vec::new(),
        hashes: Vec::new(),
        root: std::path::PathBuf::from("/empty"),
        marks: crate::store::Marks::in_memory(),
        model: "m".into(),
        skipped: Vec::new(),
        checking: false,
    };
    let mut app = app_with(loaded, 100, 30, true);
    for a in [
        Action::Move(1),
        Action::Bottom,
        Action::SortBy(Column::File),
        Action::ToggleFence,
        Action::OpenDetail,
        Action::JumpClosest,
        Action::SearchNext,
    ] {
        update(&mut app, a);
    }
    assert!(app.wanted_previews().is_empty());
}

#[test]
fn the_table_opens_sorted_by_the_ranking_score_so_ranks_read_1_2_3() {
    use crate::rank::ScoreKind;
    for score in [ScoreKind::Nn, ScoreKind::Knn, ScoreKind::Lof] {
        let mut loaded = testing::small();
        let points: Vec<f32> = testing::SMALL_POINTS.iter().flatten().copied().collect();
        let paths: Vec<String> = (1..=12).map(|i| format!("flake{i:02}.png")).collect();
        let cfg = crate::rank::RankConfig {
            k: 3,
            normalise: false,
            score,
            squared: false,
            profile: crate::profile::Profile::Photos,
            exact: false,
        };
        loaded.ranking = crate::rank::rank(&paths, &testing::SMALL_HASHES, &points, 2, &cfg);
        let app = app_with(loaded, 120, 40, false);
        let ex = app.explorer.as_ref().unwrap();
        let ranks: Vec<usize> = ex.view.iter().map(|&r| ex.table.image(r).rank).collect();
        assert_eq!(ranks, (1..=12).collect::<Vec<_>>(), "{score:?}");
        assert_eq!(ex.sort.column, Column::of_score(score));
        assert_eq!(
            ex.columns[ex.column], ex.sort.column,
            "focus on the sorted column"
        );
    }
    assert_eq!(Column::Knn.title(), "knn score");
}

#[test]
fn held_keys_hold_previews_until_they_settle() {
    let mut app = App::new("/data".into(), "model".into(), Some("halfblocks".into()));
    update(&mut app, Action::Resize(200, 60));
    update(&mut app, Action::Loaded(Box::new(testing::small())));
    update(&mut app, Action::HoldPreviews(true));
    // While held, moving asks for nothing.
    for _ in 0..5 {
        assert!(update(&mut app, Action::Move(1)).is_empty());
    }
    // Released: the pair on screen now, and only that, is asked for.
    let effects = update(&mut app, Action::HoldPreviews(false));
    let [Effect::LoadPreviews(reqs)] = &effects[..] else {
        panic!("previews asked for once the keys settle: {effects:?}");
    };
    let wanted: Vec<_> = app.wanted_previews().into_iter().map(|w| w.key).collect();
    assert_eq!(reqs.iter().map(|r| r.key).collect::<Vec<_>>(), wanted);
}

#[test]
fn a_remembered_ranking_is_checked_before_it_is_exported() {
    let checking = || super::app::Loaded {
        checking: true,
        ..testing::small()
    };
    let mut app = app_with(checking(), 120, 40, false);
    let effects = update(&mut app, Action::Export(crate::export::Format::Csv));
    assert!(effects.is_empty(), "no export of a folder not yet checked");
    assert!(
        app.message
            .as_deref()
            .unwrap()
            .contains("still being checked")
    );
    // Unchanged: the same table, now with the files the check skipped.
    let skip = crate::scan::Skip {
        path: "broken.png".into(),
        reason: crate::scan::SkipReason::NotRegular,
    };
    update(&mut app, Action::Checked(vec![skip]));
    let ex = app.explorer.as_ref().unwrap();
    assert!(!ex.checking);
    assert_eq!(ex.skipped.len(), 1);
    let effects = update(&mut app, Action::Export(crate::export::Format::Csv));
    assert_eq!(effects, vec![Effect::Export(crate::export::Format::Csv)]);

    // Changed: the new ranking replaces the table, and the user is told.
    let mut app = app_with(checking(), 120, 40, false);
    update(&mut app, Action::Loaded(Box::new(testing::small())));
    assert!(!app.explorer.as_ref().unwrap().checking);
    // What the worker sends next is no key: the message stays.
    update(&mut app, Action::TraitStats(None));
    assert!(app.message.as_deref().unwrap().contains("folder changed"));

    // Pictures asked for the remembered ranking are never shown for the new one, whose
    // rows may be other files.
    let mut app = app_with(checking(), 120, 40, true);
    let before = app.wanted_previews();
    assert!(!before.is_empty());
    update(&mut app, Action::Loaded(Box::new(testing::small())));
    let after = app.wanted_previews();
    assert!(after.iter().all(|r| r.key.ranking == 1));
    assert!(after.iter().all(|r| !before.iter().any(|b| b.key == r.key)));

    // A check that fails leaves the table, and says so; a failed start is fatal.
    let mut app = app_with(checking(), 120, 40, false);
    update(&mut app, Action::WorkerFailed("cannot list".into()));
    assert!(app.fatal.is_none());
    assert!(app.message.as_deref().unwrap().contains("as last ranked"));
    let mut app = App::new("/data".into(), "model".into(), None);
    update(&mut app, Action::WorkerFailed("cannot list".into()));
    assert!(app.fatal.is_some());
}
