//! The table's paths as one text (`Paths`), and the path pattern typed by the user
//! (`Pattern`), matched against all the paths at once.
//!
//! At a million rows, one regex search per path costs 30-60 ms on one core (measured on
//! an AVX2 machine): the per-call set-up outweighs the matching. So the pattern is also
//! compiled in multi-line mode and run over the joined text (paths separated by `\n`), in
//! parallel pieces, where a literal such as `batch0` is found by a vectorised substring
//! search. Each match found there is only a candidate: a match that lies within one path
//! is a match of that path alone (`^` and `$` then stand for its ends, and `\n` is not a
//! word character, as the text's ends are not); a match that crosses a `\n` (`\s`,
//! `[^a]`) is checked against its first path alone. The search then resumes at the next
//! path, so every path is either found or skipped because no match starts in it. (Taking
//! runs of matching paths one by one instead measured no faster on 2 cores.)

use crate::sanitize::sanitize_into;
use rayon::prelude::*;
use regex_automata::Input;
use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;
use regex_syntax::hir::{Class, Hir, HirKind};
use std::ops::Index;

/// Fewest paths searched per parallel piece. Pieces are few and large (four per thread, so
/// that a thread whose pieces match densely is helped by the others) because each gets
/// its own regex caches, whose lazy DFA states are built anew.
const PIECE: usize = 16_384;

/// A regex typed by the user, case-insensitive unless it contains an upper-case letter.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub text: String,
    /// The pattern as typed, matched against one path.
    one: Regex,
    /// The pattern in multi-line mode, run over the joined paths; `None` where the joined
    /// search could miss a path: `\A` and `\z` match only at the text's ends, and inline
    /// flags such as `(?-m)` could turn multi-line mode off.
    joined: Option<Regex>,
    /// Whether a match may hold a line break (`\s`, `[^a]`), so that a match in the joined
    /// text can cross from one path into the next; when it cannot, a match's end tells
    /// which path it is in, and the search never has to go back for its start.
    crosses: bool,
    /// Match against lower-cased text: how case-insensitivity is done, because
    /// case-insensitive search is about 5x slower. A pattern without upper-case letters
    /// cannot contain `\D`, `\W`, `[A-Z]` and the like, so on lower-cased text it matches
    /// exactly what the case-insensitive regex would.
    lowercase: bool,
}

impl Pattern {
    pub fn new(text: &str) -> Result<Self, String> {
        let lowercase = !text.chars().any(char::is_uppercase);
        let build = |multi_line: bool| {
            Regex::builder()
                .configure(meta::Config::new().nfa_size_limit(Some(1 << 20)))
                .syntax(syntax::Config::new().multi_line(multi_line))
                .build(text)
                .map_err(|e| match e.syntax_error() {
                    // The last line of a syntax error names the problem.
                    Some(s) => s
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or("invalid regex")
                        .trim_start_matches("error: ")
                        .to_string(),
                    None => e.to_string(),
                })
        };
        let one = build(false)?;
        let risky = ["\\A", "\\z", "(?"].iter().any(|r| text.contains(r));
        let joined = if risky { None } else { build(true).ok() };
        let crosses = !syntax::parse(text).is_ok_and(|hir| !may_hold_newline(&hir));
        Ok(Pattern {
            text: text.to_string(),
            one,
            joined,
            crosses,
            lowercase,
        })
    }
}

/// Strings (the table's paths), kept as one text with `\n` between them.
pub struct Paths {
    text: String,
    /// Where each string ends in `text` (exclusive).
    ends: Vec<usize>,
}

impl Paths {
    /// `strings` must not contain `\n` (sanitised paths never do).
    pub fn new<S: AsRef<str>>(strings: impl IntoIterator<Item = S>) -> Self {
        let mut text = String::new();
        let mut ends = Vec::new();
        for s in strings {
            if !ends.is_empty() {
                text.push('\n');
            }
            let s = s.as_ref();
            debug_assert!(!s.contains('\n'), "a path with a line break: {s:?}");
            text.push_str(s);
            ends.push(text.len());
        }
        Paths { text, ends }
    }

    /// `strings`, each made safe to print (`sanitize`), written straight into the text: at
    /// a million paths, a string each first costs more than the rest of the table.
    pub fn sanitized<'a>(strings: impl IntoIterator<Item = &'a str>) -> Self {
        let strings = strings.into_iter();
        let mut text = String::new();
        let mut ends = Vec::with_capacity(strings.size_hint().0);
        for s in strings {
            if !ends.is_empty() {
                text.push('\n');
            }
            sanitize_into(&mut text, s);
            ends.push(text.len());
        }
        Paths { text, ends }
    }

    /// The same strings lower-cased. ASCII text keeps its lengths, so it is lower-cased in
    /// one pass; other text string by string (a letter may change its length).
    pub fn lowercased(&self) -> Self {
        if self.text.is_ascii() {
            return Paths {
                text: self.text.to_ascii_lowercase(),
                ends: self.ends.clone(),
            };
        }
        Paths::new((0..self.len()).map(|i| self[i].to_lowercase()))
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 { 0 } else { self.ends[i - 1] + 1 }
    }

    /// Which strings `pattern` matches (the lower-cased ones are `lower`, the same strings
    /// lower-cased), indexed like the strings.
    pub fn matching(&self, lower: &Paths, pattern: &Pattern) -> Vec<bool> {
        let paths = if pattern.lowercase { lower } else { self };
        let size = paths
            .len()
            .div_ceil(4 * rayon::current_num_threads())
            .max(PIECE);
        let pieces: Vec<usize> = (0..paths.len()).step_by(size).collect();
        pieces
            .par_iter()
            .map_init(
                || {
                    let joined = pattern.joined.as_ref().map(Regex::create_cache);
                    (joined, pattern.one.create_cache())
                },
                |(joined, one), &first| {
                    let rows = first..(first + size).min(paths.len());
                    match (&pattern.joined, joined) {
                        (Some(re), Some(cache)) => {
                            paths.search_joined(rows, re, cache, pattern, one)
                        }
                        _ => rows.map(|i| matches_one(pattern, one, &paths[i])).collect(),
                    }
                },
            )
            .flatten_iter()
            .collect()
    }

    /// `matching` for the strings `rows`, by the joined search.
    fn search_joined(
        &self,
        rows: std::ops::Range<usize>,
        re: &Regex,
        cache: &mut meta::Cache,
        pattern: &Pattern,
        one: &mut meta::Cache,
    ) -> Vec<bool> {
        let mut found = vec![false; rows.len()];
        let end = self.ends[rows.end - 1];
        // The first string not yet decided.
        let mut next = rows.start;
        while next < rows.end {
            let input = Input::new(&self.text).range(self.start(next)..end);
            let i = if pattern.crosses {
                let Some(m) = re.search_with(cache, &input) else {
                    break;
                };
                let i = self.string_at(next, m.start());
                let within = m.end() <= self.ends[i];
                found[i - rows.start] = within || matches_one(pattern, one, &self[i]);
                i
            } else {
                // The first match to end is in the first string that has one.
                let Some(m) = re.search_half_with(cache, &input.earliest(true)) else {
                    break;
                };
                let i = self.string_at(next, m.offset());
                found[i - rows.start] = true;
                i
            };
            next = i + 1;
        }
        found
    }

    /// The string holding offset `at` of the text, at or after string `from`: the first
    /// whose end is at or after `at`. Searched outward from `from` (a match is usually in
    /// a near string), then halved.
    fn string_at(&self, from: usize, at: usize) -> usize {
        let ends = &self.ends[from..];
        let mut bound = 1;
        while bound < ends.len() && ends[bound - 1] < at {
            bound *= 2;
        }
        let low = bound / 2;
        from + low + ends[low..bound.min(ends.len())].partition_point(|&e| e < at)
    }
}

/// Whether some match of `hir` may contain a line break.
fn may_hold_newline(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => false,
        HirKind::Literal(literal) => literal.0.contains(&b'\n'),
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .any(|r| (r.start()..=r.end()).contains(&'\n')),
        HirKind::Class(Class::Bytes(c)) => c
            .ranges()
            .iter()
            .any(|r| (r.start()..=r.end()).contains(&b'\n')),
        HirKind::Repetition(r) => may_hold_newline(&r.sub),
        HirKind::Capture(c) => may_hold_newline(&c.sub),
        HirKind::Concat(all) | HirKind::Alternation(all) => all.iter().any(may_hold_newline),
    }
}

/// Whether `pattern` matches the one string `text`.
fn matches_one(pattern: &Pattern, cache: &mut meta::Cache, text: &str) -> bool {
    let input = Input::new(text).earliest(true);
    pattern.one.search_half_with(cache, &input).is_some()
}

impl Pattern {
    /// Whether one string matches: `text`, whose lower-cased form is `lower`.
    pub fn matches(&self, text: &str, lower: &str) -> bool {
        let input = Input::new(if self.lowercase { lower } else { text }).earliest(true);
        self.one.search(&input).is_some()
    }
}

impl Index<usize> for Paths {
    type Output = str;

    fn index(&self, i: usize) -> &str {
        &self.text[self.start(i)..self.ends[i]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The joined search gives what matching each path alone gives.
    fn agree(strings: &[&str], patterns: &[&str]) {
        let paths = Paths::new(strings);
        let lower = Paths::new(strings.iter().map(|s| s.to_lowercase()));
        for text in patterns {
            let p = Pattern::new(text).unwrap();
            let want: Vec<bool> = strings
                .iter()
                .map(|s| p.matches(s, &s.to_lowercase()))
                .collect();
            assert_eq!(paths.matching(&lower, &p), want, "pattern {text:?}");
        }
    }

    #[test]
    fn the_joined_search_matches_each_path_as_alone() {
        let strings = [
            "batch001/snowflake_000001.png",
            "batch002/Snowflake_000120.PNG",
            "a b/c",
            "x",
            "ab",
            "b",
            "a",
            "",
            "end a",
            "b start",
        ];
        agree(
            &strings,
            &[
                "snow", "^b", "b$", "^a$", "a\\sb", "a[^x]*b", "", "^$", "\\bb", "x*", "png$",
                "PNG", "\\Ab", "(?-m)^b", "a\\nb", "0+[1-9]",
            ],
        );
    }

    #[test]
    fn sanitised_and_lowercased_as_one_by_one() {
        for strings in [
            &["Batch/A.PNG", "b.png", "C\x1b[2J.png"][..],
            &["ÉTÉ/Flocon.png", "İ.png", "snow❄.PNG"][..],
        ] {
            let paths = Paths::sanitized(strings.iter().copied());
            let lower = paths.lowercased();
            for (i, s) in strings.iter().enumerate() {
                let shown = crate::sanitize::sanitize(s);
                assert_eq!(&paths[i], shown);
                assert_eq!(&lower[i], shown.to_lowercase());
            }
        }
    }

    #[test]
    fn many_paths_in_many_pieces() {
        let strings: Vec<String> = (0..3 * PIECE + 17)
            .map(|i| format!("batch{:03}/flake_{i:06}.png", i % 500))
            .collect();
        let refs: Vec<&str> = strings.iter().map(String::as_str).collect();
        agree(
            &refs,
            &[
                "batch0[0-4]",
                "flake_0+[1-9]",
                "9\\.png$",
                "^batch499",
                "png",
                "0\\s",
            ],
        );
        let paths = Paths::new(&refs);
        assert_eq!(&paths[PIECE + 3], refs[PIECE + 3]);
        assert_eq!(paths.len(), refs.len());
    }

    #[test]
    fn pattern_is_smart_case_and_reports_errors() {
        let p = Pattern::new("snow").unwrap();
        assert!(p.matches("SNOW.png", "snow.png"));
        let p = Pattern::new("Snow").unwrap();
        assert!(!p.matches("snow.png", "snow.png"));
        assert!(p.matches("Snow.png", "snow.png"));
        let p = Pattern::new(r"\d{3}").unwrap();
        assert!(p.matches("A123", "a123"));
        assert!(Pattern::new("(").is_err());
    }

    #[test]
    fn syntax_errors_name_the_problem() {
        let err = Pattern::new("a(b").unwrap_err();
        assert!(err.contains("unclosed"), "{err}");
    }
}
