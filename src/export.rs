//! Rankings as an aligned table, CSV or JSON. Paths in the table are sanitised for the
//! terminal; CSV and JSON keep them exact (quoted / escaped as those formats require).

use crate::explain::Explanation;
use crate::rank::{RankedImage, Ranking};
use crate::sanitize::sanitize;
use crate::scan::Skip;
use crate::traits::TRAITS;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

impl Format {
    /// File name extension of the format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Table => "txt",
        }
    }
}

/// Writes `text` to the first free `{stem}.{ext}`, `{stem}-2.{ext}`, ... in the working
/// folder (the temporary folder when that is read-only); returns the file written. An
/// existing file is never overwritten.
pub fn write_unique(stem: &str, format: Format, text: &str) -> std::io::Result<PathBuf> {
    let ext = format.extension();
    let mut last_err = None;
    for dir in [std::env::current_dir().ok(), Some(std::env::temp_dir())]
        .into_iter()
        .flatten()
    {
        for n in 1..1000 {
            let name = if n == 1 {
                format!("{stem}.{ext}")
            } else {
                format!("{stem}-{n}.{ext}")
            };
            let path = dir.join(name);
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    return match f.write_all(text.as_bytes()) {
                        Ok(()) => Ok(path),
                        Err(e) => Err(std::io::Error::new(
                            e.kind(),
                            format!("cannot write {}: {e}", path.display()),
                        )),
                    };
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    last_err = Some(e);
                    break;
                }
            }
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("no free file name")))
}

/// One output row: the columns every format shares.
#[derive(Debug, Serialize)]
pub struct Row<'a> {
    pub rank: usize,
    pub path: &'a str,
    pub score: Option<f32>,
    pub nn_distance: Option<f32>,
    pub knn_mean: Option<f32>,
    pub lof: Option<f32>,
    pub closest_match: Option<&'a str>,
    pub duplicates: usize,
    pub beyond_fence: bool,
    pub marked: bool,
    /// Why the image stands out; absent when not asked for (`rank --no-explain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<&'a Explanation>,
    /// The morphology, by trait name (`traits::TRAITS`); absent when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traits: Option<NamedTraits<'a>>,
}

/// Trait values serialised as `{"area": ..., "max_dimension": ..., ...}` in their order.
#[derive(Debug)]
pub struct NamedTraits<'a>(&'a [f32]);

impl Serialize for NamedTraits<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for ((name, _, _), value) in TRAITS.iter().zip(self.0) {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// The columns of every format (JSON has them as keys).
pub const COLUMNS: [&str; 10] = [
    "rank",
    "path",
    "score",
    "nn_distance",
    "knn_mean",
    "lof",
    "closest_match",
    "duplicates",
    "beyond_fence",
    "marked",
];

/// CSV's flat form of JSON's `explanation`: the region and the most extreme trait (empty
/// when not explained).
pub const EXPLANATION_COLUMNS: [&str; 7] = [
    "region_x0",
    "region_y0",
    "region_x1",
    "region_y1",
    "top_trait",
    "top_trait_value",
    "top_trait_percentile",
];

impl<'a> From<&'a RankedImage> for Row<'a> {
    fn from(i: &'a RankedImage) -> Self {
        Row {
            rank: i.rank,
            path: &i.path,
            score: i.score,
            nn_distance: i.nn_distance,
            knn_mean: i.knn_mean,
            lof: i.lof,
            closest_match: i.closest_path.as_deref(),
            duplicates: i.duplicates,
            beyond_fence: i.beyond_fence,
            marked: i.marked,
            explanation: i.explanation.as_ref(),
            traits: (i.traits.len() == TRAITS.len()).then_some(NamedTraits(&i.traits)),
        }
    }
}

/// The ranking's settings, with the profile the folder was ranked with and why.
#[derive(Serialize)]
struct JsonConfig<'a> {
    #[serde(flatten)]
    asked: &'a crate::rank::RankConfig,
    profile_used: &'a crate::profile::Choice,
    /// How the neighbours were found (method, and the index's measured recall).
    #[serde(skip_serializing_if = "Option::is_none")]
    search: Option<&'a crate::neighbours::SearchReport>,
}

#[derive(Serialize)]
struct TraitInfo {
    name: &'static str,
    unit: &'static str,
    meaning: &'static str,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    model: &'a str,
    config: JsonConfig<'a>,
    /// Name, unit and meaning of each trait in `images[].traits`.
    traits: Vec<TraitInfo>,
    total: usize,
    stats: &'a Option<crate::rank::BoxStats>,
    /// Paths whose score lies beyond the upper Tukey fence, most unique first (all of
    /// them, whatever `--top` shows).
    beyond_upper_fence: Vec<&'a str>,
    images: Vec<Row<'a>>,
    skipped: &'a [Skip],
}

fn num(v: Option<f32>) -> String {
    v.map_or(String::new(), |v| format!("{v:.6}"))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Which of a ranking's images an export lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selection {
    /// The first this many (all when `None`)...
    pub top: Option<usize>,
    /// ...of the marked images only, when set.
    pub marked_only: bool,
}

impl Selection {
    /// Positions in `ranking.images` of the images listed, in ranking order.
    pub fn positions(&self, ranking: &Ranking) -> Vec<usize> {
        let listed = ranking
            .images
            .iter()
            .enumerate()
            .filter(|(_, i)| i.marked || !self.marked_only)
            .map(|(p, _)| p);
        listed.take(self.top.unwrap_or(usize::MAX)).collect()
    }
}

/// Renders the images `selection` lists in `format`; JSON's `config.search` says how the
/// neighbours were found, when known.
pub fn render(
    ranking: &Ranking,
    selection: Selection,
    format: Format,
    model: &str,
    skipped: &[Skip],
    search: Option<&crate::neighbours::SearchReport>,
) -> String {
    let shown: Vec<&RankedImage> = selection
        .positions(ranking)
        .into_iter()
        .map(|p| &ranking.images[p])
        .collect();
    match format {
        Format::Json => {
            let report = JsonReport {
                model,
                config: JsonConfig {
                    asked: &ranking.config,
                    profile_used: &ranking.profile,
                    search,
                },
                traits: TRAITS
                    .iter()
                    .map(|&(name, unit, meaning)| TraitInfo {
                        name,
                        unit,
                        meaning,
                    })
                    .collect(),
                total: ranking.images.len(),
                stats: &ranking.stats,
                beyond_upper_fence: ranking.outliers().map(|i| i.path.as_str()).collect(),
                images: shown.iter().map(|&i| Row::from(i)).collect(),
                skipped,
            };
            serde_json::to_string_pretty(&report).expect("report serialises") + "\n"
        }
        Format::Csv => {
            // The trait columns follow when the images have traits.
            let with_traits = shown.iter().any(|i| i.traits.len() == TRAITS.len());
            let trait_names = TRAITS.iter().map(|t| t.0).filter(|_| with_traits);
            let mut out = COLUMNS
                .into_iter()
                .chain(EXPLANATION_COLUMNS)
                .chain(trait_names)
                .collect::<Vec<_>>()
                .join(",")
                + "\n";
            for (image, r) in shown.iter().zip(shown.iter().map(|&i| Row::from(i))) {
                let region = r.explanation.and_then(|e| e.region);
                let corner = |k: usize| region.map_or(String::new(), |b| b[k].to_string());
                let top = r.explanation.and_then(|e| e.traits.first());
                let fields = [
                    r.rank.to_string(),
                    csv_field(r.path),
                    num(r.score),
                    num(r.nn_distance),
                    num(r.knn_mean),
                    num(r.lof),
                    csv_field(r.closest_match.unwrap_or("")),
                    r.duplicates.to_string(),
                    r.beyond_fence.to_string(),
                    r.marked.to_string(),
                    corner(0),
                    corner(1),
                    corner(2),
                    corner(3),
                    top.map_or(String::new(), |t| t.name.to_string()),
                    num(top.map(|t| t.value)),
                    num(top.map(|t| t.percentile)),
                ];
                let traits = (0..TRAITS.len())
                    .filter(|_| with_traits)
                    .map(|j| num(image.traits.get(j).copied()));
                out += &(fields
                    .into_iter()
                    .chain(traits)
                    .collect::<Vec<_>>()
                    .join(",")
                    + "\n");
            }
            out
        }
        Format::Table => table(&shown),
    }
}

fn table(rows: &[&RankedImage]) -> String {
    let header = [
        "rank",
        "path",
        "score",
        "nn dist",
        "k-nn",
        "lof",
        "closest match",
        "dups",
        "fence",
    ];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|i| {
            [
                i.rank.to_string(),
                sanitize(&i.path),
                num4(i.score),
                num4(i.nn_distance),
                num4(i.knn_mean),
                num4(i.lof),
                i.closest_path.as_deref().map_or("-".into(), sanitize),
                i.duplicates.to_string(),
                if i.beyond_fence {
                    "*".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let width = |c: usize| {
        cells
            .iter()
            .map(|r| r[c].chars().count())
            .chain([header[c].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |cols: Vec<&str>| {
        cols.iter()
            .enumerate()
            .map(|(c, s)| {
                // Numbers right-aligned, text left-aligned.
                if matches!(c, 0 | 2..=5 | 7) {
                    format!("{s:>w$}", w = widths[c])
                } else {
                    format!("{s:<w$}", w = widths[c])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    let mut out = line(header.to_vec());
    for row in &cells {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

fn num4(v: Option<f32>) -> String {
    v.map_or("-".into(), |v| format!("{v:.4}"))
}
