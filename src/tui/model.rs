//! The table's data: one row per ranked image, precomputed display strings, and for every
//! column a precomputed sort order. Re-sorting is then picking an order and re-filtering is
//! one pass over it, which keeps both far under a frame for 100,000 rows.

use super::paths::Paths;
pub use super::paths::Pattern;
use crate::rank::{RankedImage, Ranking, ScoreKind};
use crate::sanitize::sanitize;
use std::borrow::Cow;
use std::sync::OnceLock;

/// A table column. `Lof` is shown only when the ranking's score is LOF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    Rank,
    File,
    Distance,
    Closest,
    Knn,
    Lof,
    Dups,
    Fence,
    /// Marked by the user (Space).
    Mark,
}

impl Column {
    pub const ALL: [Column; 9] = [
        Column::Rank,
        Column::File,
        Column::Distance,
        Column::Closest,
        Column::Knn,
        Column::Lof,
        Column::Dups,
        Column::Fence,
        Column::Mark,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Column::Rank => "rank",
            Column::File => "file",
            Column::Distance => "distance",
            Column::Closest => "closest",
            Column::Knn => "knn score",
            Column::Lof => "LOF",
            Column::Dups => "dups",
            Column::Fence => "fence",
            Column::Mark => "mark",
        }
    }

    /// Sort direction when a column is first chosen: scores and sizes largest first
    /// (the interesting end), names and rank ascending.
    pub fn natural_descending(self) -> bool {
        !matches!(self, Column::Rank | Column::File | Column::Closest)
    }

    /// The column that holds the ranking's score: the table opens sorted by it, so its
    /// first rows read rank 1, 2, 3.
    pub fn of_score(score: ScoreKind) -> Column {
        match score {
            ScoreKind::Nn => Column::Distance,
            ScoreKind::Knn => Column::Knn,
            ScoreKind::Lof => Column::Lof,
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// The columns on screen, in order.
pub fn visible_columns(score: ScoreKind) -> Vec<Column> {
    Column::ALL
        .into_iter()
        .filter(|c| *c != Column::Lof || score == ScoreKind::Lof)
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub column: Column,
    pub descending: bool,
}

impl Sort {
    /// The first screen's order: by the ranking's score, largest (most unique) first.
    pub fn by_score(score: ScoreKind) -> Self {
        Sort {
            column: Column::of_score(score),
            descending: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScoreFilter {
    Ge(f32),
    Gt(f32),
    Le(f32),
    Lt(f32),
    /// Inclusive range `a..b`.
    Between(f32, f32),
}

impl ScoreFilter {
    /// Parses `>= 0.8`, `>0.8`, `< 1e-3`, `<=2`, `0.2..0.5` (spaces optional).
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let num = |s: &str| -> Result<f32, String> {
            let s = s.trim();
            s.parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("'{s}' is not a number"))
        };
        let hint = "write e.g. >= 0.8, < 0.3 or 0.2..0.5";
        if t.is_empty() {
            return Err(hint.into());
        }
        for (op, make) in [
            (">=", ScoreFilter::Ge as fn(f32) -> ScoreFilter),
            ("<=", ScoreFilter::Le),
            (">", ScoreFilter::Gt),
            ("<", ScoreFilter::Lt),
        ] {
            if let Some(rest) = t.strip_prefix(op) {
                return num(rest).map(make).map_err(|e| format!("{e}; {hint}"));
            }
        }
        if let Some((a, b)) = t.split_once("..") {
            let (a, b) = (num(a)?, num(b)?);
            return Ok(ScoreFilter::Between(a.min(b), a.max(b)));
        }
        Err(hint.into())
    }

    /// The scores kept, as an inclusive range: one test the compiler can vectorise over a
    /// million scores, where a `match` per score could not be.
    pub fn bounds(&self) -> (f32, f32) {
        match *self {
            ScoreFilter::Ge(x) => (x, f32::INFINITY),
            ScoreFilter::Gt(x) => (x.next_up(), f32::INFINITY),
            ScoreFilter::Le(x) => (f32::NEG_INFINITY, x),
            ScoreFilter::Lt(x) => (f32::NEG_INFINITY, x.next_down()),
            ScoreFilter::Between(a, b) => (a, b),
        }
    }

    /// Whether score `v` is kept (never when it is NaN: none).
    pub fn matches(&self, v: f32) -> bool {
        let (low, high) = self.bounds();
        v >= low && v <= high
    }
}

impl std::fmt::Display for ScoreFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScoreFilter::Ge(x) => write!(f, ">= {x}"),
            ScoreFilter::Gt(x) => write!(f, "> {x}"),
            ScoreFilter::Le(x) => write!(f, "<= {x}"),
            ScoreFilter::Lt(x) => write!(f, "< {x}"),
            ScoreFilter::Between(a, b) => write!(f, "{a}..{b}"),
        }
    }
}

/// Everything that hides rows. All parts must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub path: Option<Pattern>,
    pub score: Option<ScoreFilter>,
    pub beyond_fence: bool,
    pub duplicates: bool,
    pub marked: bool,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.path.is_none()
            && self.score.is_none()
            && !self.beyond_fence
            && !self.duplicates
            && !self.marked
    }

    /// Short text for the status bar.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = &self.path {
            parts.push(format!("path ~ /{}/", sanitize(&p.text)));
        }
        if let Some(s) = &self.score {
            parts.push(format!("score {s}"));
        }
        if self.beyond_fence {
            parts.push("beyond fence".into());
        }
        if self.duplicates {
            parts.push("duplicates".into());
        }
        if self.marked {
            parts.push("marked".into());
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

/// The rows of a ranking, ready for display, with a sort order per column and direction.
pub struct Table {
    pub ranking: Ranking,
    /// Sanitised relative path of each row (row = position in `ranking.images`).
    pub paths: Paths,
    /// `paths`, lower-cased, for case-insensitive matching; made by the first filter.
    lower: OnceLock<Paths>,
    /// Each row's score (NaN where it has none) and its `flags`: what the filters read,
    /// packed, so that a filter over a million rows touches 5 MB, not every `RankedImage`.
    scores: Vec<f32>,
    flags: Vec<u8>,
    /// Whether the rows are in the ranking's order, scores falling (as `rank` makes
    /// them): the ascending scores are then the rows backwards, read in memory order.
    by_score: bool,
    /// Table row of each feature-set row (`RankedImage::index`).
    pub row_of_index: Vec<u32>,
    /// `orders[column]`: rows in that column's order, ascending and descending, ties by
    /// rank. Each is made the first time it is asked for: at a million rows the names'
    /// orders take seconds, and most sessions never sort by most columns.
    orders: Vec<[OnceLock<Vec<u32>>; 2]>,
}

/// Maps an optional float to a u32 whose unsigned order is the float's total order;
/// missing values sort lowest.
fn float_key(v: Option<f32>) -> u32 {
    match v {
        None => 0,
        Some(v) => {
            let b = v.to_bits();
            let k = if b >> 31 == 1 { !b } else { b | 0x8000_0000 };
            k.max(1)
        }
    }
}

/// Compares file names the way people count: "flake2" before "flake10".
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                // Longer runs without leading zeros are larger numbers.
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let z = d.iter().take_while(|&&c| c == b'0').count();
    &d[z..]
}

/// Position of each string in natural order (equal strings share a position).
fn ordinals(strings: &[&str]) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..strings.len() as u32).collect();
    idx.sort_unstable_by(|&a, &b| {
        natural_cmp(strings[a as usize], strings[b as usize])
            .then_with(|| strings[a as usize].cmp(strings[b as usize]))
    });
    let mut out = vec![0u32; strings.len()];
    let mut ord = 0u32;
    for (pos, &i) in idx.iter().enumerate() {
        if pos > 0 && strings[idx[pos - 1] as usize] != strings[i as usize] {
            ord += 1;
        }
        out[i as usize] = ord;
    }
    out
}

/// Rows ordered by `key`, ties by row (= rank); `descending` reverses the key only.
fn order_by(key: &[u32], descending: bool) -> Vec<u32> {
    // Rows already in order (the score column of a ranking, the explorer's first view)
    // are not sorted: a million rows take 0.1 s.
    let in_order = match descending {
        true => key.windows(2).all(|w| w[0] >= w[1]),
        false => key.is_sorted(),
    };
    if in_order {
        return (0..key.len() as u32).collect();
    }
    let mut packed: Vec<u64> = key
        .iter()
        .enumerate()
        .map(|(row, &k)| {
            let k = if descending { !k } else { k };
            (u64::from(k) << 32) | row as u64
        })
        .collect();
    packed.sort_unstable();
    packed.into_iter().map(|p| p as u32).collect()
}

impl Table {
    pub fn new(ranking: Ranking) -> Self {
        let images = &ranking.images;
        let paths = Paths::sanitized(images.iter().map(|i| i.path.as_str()));
        let n_index = images.iter().map(|i| i.index + 1).max().unwrap_or(0);
        let mut row_of_index = vec![u32::MAX; n_index];
        for (row, image) in images.iter().enumerate() {
            row_of_index[image.index] = row as u32;
        }
        let scores: Vec<f32> = images.iter().map(|i| i.score.unwrap_or(f32::NAN)).collect();
        let flags = images.iter().map(flags_of).collect();
        let by_score = scores
            .windows(2)
            .all(|w: &[f32]| w[0] >= w[1] || w[1].is_nan());
        Table {
            ranking,
            paths,
            lower: OnceLock::new(),
            scores,
            flags,
            by_score,
            row_of_index,
            orders: Column::ALL.iter().map(|_| Default::default()).collect(),
        }
    }

    /// The sort key of every row in `column`.
    fn keys(&self, column: Column) -> Vec<u32> {
        let images = &self.ranking.images;
        let f = |get: fn(&RankedImage) -> Option<f32>| -> Vec<u32> {
            images.iter().map(|i| float_key(get(i))).collect()
        };
        match column {
            Column::Rank => images.iter().map(|i| i.rank as u32).collect(),
            Column::File => ordinals(&images.iter().map(|i| i.path.as_str()).collect::<Vec<_>>()),
            Column::Closest => ordinals(
                &images
                    .iter()
                    .map(|i| i.closest_path.as_deref().unwrap_or(""))
                    .collect::<Vec<_>>(),
            ),
            Column::Distance => f(|i| i.nn_distance),
            Column::Knn => f(|i| i.knn_mean),
            Column::Lof => f(|i| i.lof),
            Column::Dups => images.iter().map(|i| i.duplicates as u32).collect(),
            Column::Fence => images.iter().map(|i| u32::from(i.beyond_fence)).collect(),
            Column::Mark => images.iter().map(|i| u32::from(i.marked)).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Whether row `row`'s path matches `pattern`.
    pub fn path_matches(&self, pattern: &Pattern, row: u32) -> bool {
        pattern.matches(&self.paths[row as usize], &self.lower()[row as usize])
    }

    fn lower(&self) -> &Paths {
        self.lower.get_or_init(|| self.paths.lowercased())
    }

    /// Row `row`'s closest match as shown: that image's own row text, or "-".
    pub fn closest_text(&self, row: u32) -> Cow<'_, str> {
        let image = self.image(row);
        match image.closest {
            None => Cow::Borrowed("-"),
            Some(i) => match self.row_of_index.get(i) {
                Some(&r) if r != u32::MAX => Cow::Borrowed(&self.paths[r as usize]),
                // A closest match that is not a row of its own (not in a ranking made
                // here, but a view need not know that).
                _ => Cow::Owned(image.closest_path.as_deref().map_or("-".into(), sanitize)),
            },
        }
    }

    pub fn image(&self, row: u32) -> &RankedImage {
        &self.ranking.images[row as usize]
    }

    /// Marks or unmarks `rows`, keeping the mark column's order true.
    pub fn set_marked(&mut self, rows: &[u32], marked: bool) {
        for &row in rows {
            let image = &mut self.ranking.images[row as usize];
            image.marked = marked;
            self.flags[row as usize] = flags_of(image);
        }
        self.orders[Column::Mark.slot()] = Default::default();
    }

    /// Whether any row is marked.
    pub fn any_marked(&self) -> bool {
        self.ranking.images.iter().any(|i| i.marked)
    }

    pub fn order(&self, sort: Sort) -> &[u32] {
        self.orders[sort.column.slot()][usize::from(sort.descending)]
            .get_or_init(|| order_by(&self.keys(sort.column), sort.descending))
    }

    /// The scores of the rows `mask` keeps (all when `None`), ascending, from the score
    /// column's order (so the boxplot never sorts them again).
    pub fn sorted_scores(&self, mask: Option<&[bool]>) -> Vec<f32> {
        let scores = &self.scores[..];
        let most = mask.map_or(self.len(), kept_count);
        let score = |r: usize| scores[r];
        let kept = |r: usize| mask.is_none_or(|m| m[r]) & !scores[r].is_nan();
        if self.by_score {
            return gather((0..self.len()).rev(), most, kept, score);
        }
        let ascending = Sort {
            descending: false,
            ..Sort::by_score(self.ranking.config.score)
        };
        let order = self.order(ascending).iter().map(|&r| r as usize);
        gather(order, most, kept, score)
    }

    /// `sorted_scores(Some(mask))` where `view` is `view(sort, mask)`: read from the rows on
    /// screen when they are in score order (the first screen's order), so that a filter
    /// that keeps few of a million rows reads few scores.
    pub fn shown_scores(&self, sort: Sort, view: &[u32], mask: &[bool]) -> Vec<f32> {
        if sort.column != Column::of_score(self.ranking.config.score) {
            return self.sorted_scores(Some(mask));
        }
        let mut shown: Vec<f32> = view
            .iter()
            .map(|&r| self.scores[r as usize])
            .filter(|v| !v.is_nan())
            .collect();
        if sort.descending {
            shown.reverse();
        }
        shown
    }

    /// Which rows pass `filter` (indexed by row).
    pub fn mask(&self, filter: &Filter) -> Vec<bool> {
        let mut keep = match &filter.path {
            Some(p) => self.paths.matching(self.lower(), p),
            None => vec![true; self.len()],
        };
        // One plain pass per condition: loops the compiler vectorises.
        let need = flags(filter.beyond_fence, filter.duplicates, filter.marked);
        if need != 0 {
            for (k, &f) in keep.iter_mut().zip(&self.flags) {
                *k &= f & need == need;
            }
        }
        if let Some(s) = filter.score {
            // A NaN score (none) fails both comparisons.
            let (low, high) = s.bounds();
            for (k, &v) in keep.iter_mut().zip(&self.scores) {
                *k &= (v >= low) & (v <= high);
            }
        }
        keep
    }

    /// The rows on screen: `sort` order, rows hidden by `mask` left out.
    pub fn view(&self, sort: Sort, mask: &[bool]) -> Vec<u32> {
        let order = self.order(sort).iter().map(|&r| r as usize);
        gather(order, kept_count(mask), |r| mask[r], |r| r as u32)
    }
}

/// How many rows `mask` keeps.
fn kept_count(mask: &[bool]) -> usize {
    mask.iter().filter(|&&k| k).count()
}

/// `value(r)` for each row `r` of `order` that `keep(r)`, in order; at most `most` are kept.
/// Each value is written and the place moves on only when it is kept: no branch per row,
/// which at a million rows is several times faster than a filtering iterator (sequential:
/// a parallel filter joins pieces of unknown length, slower on 2 cores than one pass).
fn gather<T: Copy + Default>(
    order: impl Iterator<Item = usize>,
    most: usize,
    keep: impl Fn(usize) -> bool,
    value: impl Fn(usize) -> T,
) -> Vec<T> {
    let mut out = vec![T::default(); most + 1];
    let mut n = 0;
    for r in order {
        out[n] = value(r);
        n += usize::from(keep(r));
    }
    out.truncate(n);
    out
}

/// Packs what a filter can ask of a row (`Table::flags`): beyond the fence, duplicated,
/// marked.
fn flags(beyond_fence: bool, duplicated: bool, marked: bool) -> u8 {
    u8::from(beyond_fence) | (u8::from(duplicated) << 1) | (u8::from(marked) << 2)
}

fn flags_of(image: &RankedImage) -> u8 {
    flags(image.beyond_fence, image.duplicates > 1, image.marked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_keys_keep_order() {
        let vals = [-3.0f32, -0.5, 0.0, 0.25, 1.0, 100.0];
        let keys: Vec<u32> = vals.iter().map(|&v| float_key(Some(v))).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert!(float_key(None) < keys[0]);
    }

    #[test]
    fn score_filters_parse() {
        assert_eq!(ScoreFilter::parse(">= 0.8"), Ok(ScoreFilter::Ge(0.8)));
        assert_eq!(ScoreFilter::parse("<.5"), Ok(ScoreFilter::Lt(0.5)));
        assert_eq!(
            ScoreFilter::parse("0.5..0.2"),
            Ok(ScoreFilter::Between(0.2, 0.5))
        );
        assert!(ScoreFilter::parse(">= x").is_err());
        assert!(ScoreFilter::parse("").is_err());
        assert!(ScoreFilter::parse("= 3").is_err());
    }

    #[test]
    fn score_filters_keep_their_bounds() {
        let kept = |f: ScoreFilter| [0.4f32, 0.5, 0.6, f32::NAN].map(|v| f.matches(v));
        assert_eq!(kept(ScoreFilter::Ge(0.5)), [false, true, true, false]);
        assert_eq!(kept(ScoreFilter::Gt(0.5)), [false, false, true, false]);
        assert_eq!(kept(ScoreFilter::Le(0.5)), [true, true, false, false]);
        assert_eq!(kept(ScoreFilter::Lt(0.5)), [true, false, false, false]);
        assert_eq!(
            kept(ScoreFilter::Between(0.5, 0.6)),
            [false, true, true, false]
        );
    }

    #[test]
    fn shown_scores_are_the_kept_scores_sorted() {
        let table = Table::new(crate::tui::testing::synthetic(500).ranking);
        let filter = Filter {
            score: Some(ScoreFilter::Between(0.2, 0.7)),
            ..Default::default()
        };
        let mask = table.mask(&filter);
        let want = table.sorted_scores(Some(&mask));
        assert!(want.is_sorted() && !want.is_empty() && want.len() < 500);
        let score = Column::of_score(table.ranking.config.score);
        for column in [score, Column::File] {
            for descending in [false, true] {
                let sort = Sort { column, descending };
                let view = table.view(sort, &mask);
                assert_eq!(table.shown_scores(sort, &view, &mask), want, "{sort:?}");
            }
        }
    }

    #[test]
    fn natural_order_counts_numbers() {
        let mut v = vec!["f10.png", "f2.png", "f1.png", "a/f3.png", "f02.png"];
        v.sort_by(|a, b| natural_cmp(a, b).then_with(|| a.cmp(b)));
        assert_eq!(v, ["a/f3.png", "f1.png", "f02.png", "f2.png", "f10.png"]);
    }

    #[test]
    fn orders_break_ties_by_row() {
        // Falling keys with ties: the rows as they are, descending; ascending, each tie
        // still by row.
        let falling = [5, 5, 3, 3, 3, 0];
        assert_eq!(order_by(&falling, true), [0, 1, 2, 3, 4, 5]);
        assert_eq!(order_by(&falling, false), [5, 2, 3, 4, 0, 1]);
        assert_eq!(order_by(&[1, 2, 2, 7], false), [0, 1, 2, 3]);
        assert_eq!(order_by(&[1, 2, 2, 7], true), [3, 1, 2, 0]);
        assert_eq!(order_by(&[2, 1, 2], true), [0, 2, 1]);
    }

    #[test]
    fn ordinals_share_equal_strings() {
        assert_eq!(ordinals(&["b", "a", "b", "c"]), vec![1, 0, 1, 2]);
    }
}
