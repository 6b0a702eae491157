//! The one-line prompt for the search and the filters: its text is applied to the explorer
//! as the user types, Enter keeps it, Esc puts back what was there before.

use super::explorer::Explorer;
use super::model::{Pattern, ScoreFilter};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    Search,
    PathFilter,
    ScoreFilter,
}

impl PromptKind {
    pub fn label(self) -> &'static str {
        match self {
            PromptKind::Search => "/",
            PromptKind::PathFilter => "& path regex: ",
            PromptKind::ScoreFilter => "# score: ",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Prompt {
    pub kind: PromptKind,
    pub text: String,
    pub error: Option<String>,
    /// What to go back to on Esc (the filter or search before the prompt opened).
    previous: Option<Pattern>,
    previous_score: Option<ScoreFilter>,
    /// The text last applied, so Enter does not filter 100,000 rows twice.
    applied: Option<String>,
}

impl Prompt {
    /// A prompt of `kind` with `text`, remembering what `ex` shows now for Esc.
    pub fn new(kind: PromptKind, text: String, ex: &Explorer) -> Self {
        Prompt {
            kind,
            text,
            error: None,
            previous: match kind {
                PromptKind::Search => ex.search.clone(),
                PromptKind::PathFilter => ex.filter.path.clone(),
                PromptKind::ScoreFilter => None,
            },
            previous_score: ex.filter.score,
            applied: None,
        }
    }

    /// Applies the text to `ex` (search and filters are live). Returns whether the text is
    /// valid; when it is not, `error` says why and `ex` keeps what it had.
    pub fn apply(&mut self, ex: &mut Explorer) -> bool {
        let text = self.text.clone();
        let unchanged = self.applied.as_ref() == Some(&text);
        let result: Result<(), String> = match self.kind {
            _ if unchanged => Ok(()),
            PromptKind::Search => {
                if text.is_empty() {
                    ex.search = None;
                    Ok(())
                } else {
                    Pattern::new(&text).map(|p| {
                        ex.search = Some(p);
                        // Incremental: jump to the first match from the selection on.
                        if let Some(pos) = ex.find(ex.selected, true, true) {
                            ex.selected = pos;
                        }
                    })
                }
            }
            PromptKind::PathFilter => {
                let pattern = if text.is_empty() {
                    Ok(None)
                } else {
                    Pattern::new(&text).map(Some)
                };
                pattern.map(|p| {
                    ex.filter.path = p;
                    ex.refresh(true);
                })
            }
            PromptKind::ScoreFilter => {
                if text.trim().is_empty() {
                    ex.filter.score = None;
                    ex.refresh(true);
                    Ok(())
                } else {
                    ScoreFilter::parse(&text).map(|s| {
                        ex.filter.score = Some(s);
                        ex.refresh(true);
                    })
                }
            }
        };
        match result {
            Ok(()) => {
                self.error = None;
                self.applied = Some(text);
                true
            }
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }

    /// Esc: puts back the search or filter from before the prompt opened.
    pub fn cancel(self, ex: &mut Explorer) {
        match self.kind {
            PromptKind::Search => ex.search = self.previous,
            PromptKind::PathFilter => {
                ex.filter.path = self.previous;
                ex.refresh(true);
            }
            PromptKind::ScoreFilter => {
                ex.filter.score = self.previous_score;
                ex.refresh(true);
            }
        }
    }
}
