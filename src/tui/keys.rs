//! Keys to actions, per mode (prompt, overlay, progress view, explorer). Only key presses
//! count: repeats and releases (kitty keyboard protocol) are ignored, except repeats of
//! movement keys, so holding `j` scrolls.

use super::app::{Action, App, Direction, Overlay, PromptKind};
use crate::export::Format;
use ratatui::crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEventKind,
};

/// The action for a terminal event, if any.
pub fn action_for(app: &App, event: &Event) -> Option<Action> {
    match event {
        Event::Key(key) => key_action(app, key),
        Event::Mouse(m) => match m.kind {
            MouseEventKind::ScrollDown => Some(Action::Scroll(3)),
            MouseEventKind::ScrollUp => Some(Action::Scroll(-3)),
            MouseEventKind::Down(_) if app.explorer.is_some() && app.overlay == Overlay::None => {
                Some(Action::Click(m.column, m.row))
            }
            _ => None,
        },
        Event::Resize(w, h) => Some(Action::Resize(*w, *h)),
        _ => None,
    }
}

fn key_action(app: &App, key: &KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c')) {
        return Some(Action::Cancel);
    }
    let action = if app.prompt.is_some() {
        prompt_key(key, ctrl)
    } else if app.explorer.is_none() {
        progress_key(app, key)
    } else {
        match app.overlay {
            Overlay::Help => Some(Action::CloseOverlay),
            Overlay::Skips => match key.code {
                KeyCode::Char('q') => Some(Action::Quit),
                _ => Some(Action::CloseOverlay),
            },
            Overlay::Detail(_) => detail_key(app, key, ctrl),
            Overlay::None => explorer_key(app, key, ctrl),
        }
    };
    // Holding a key repeats only movement.
    if key.kind == KeyEventKind::Repeat
        && !matches!(
            action,
            Some(
                Action::Move(_)
                    | Action::HalfPage(_)
                    | Action::Page(_)
                    | Action::PromptChar(_)
                    | Action::PromptBackspace
            )
        )
    {
        return None;
    }
    action
}

fn prompt_key(key: &KeyEvent, ctrl: bool) -> Option<Action> {
    match key.code {
        KeyCode::Esc => Some(Action::PromptCancel),
        KeyCode::Enter => Some(Action::PromptSubmit),
        KeyCode::Backspace => Some(Action::PromptBackspace),
        KeyCode::Char(c) if !ctrl => Some(Action::PromptChar(c)),
        _ => None,
    }
}

fn progress_key(app: &App, key: &KeyEvent) -> Option<Action> {
    match (app.overlay, key.code) {
        (_, KeyCode::Char('q')) => Some(Action::Cancel),
        (Overlay::None, KeyCode::Char('s') | KeyCode::Char('S')) => Some(Action::ShowSkips),
        (Overlay::None, KeyCode::Char('?')) => Some(Action::ShowHelp),
        (Overlay::None, _) => None,
        _ => Some(Action::CloseOverlay),
    }
}

/// A key as the key map names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A character typed without Ctrl (Shift is part of the character).
    Char(char),
    /// Ctrl and a letter.
    Ctrl(char),
    /// A named key, whatever the modifiers.
    Code(KeyCode),
}

impl Key {
    fn matches(self, key: &KeyEvent, ctrl: bool) -> bool {
        match self {
            Key::Char(c) => !ctrl && key.code == KeyCode::Char(c),
            Key::Ctrl(c) => ctrl && key.code == KeyCode::Char(c),
            Key::Code(code) => key.code == code,
        }
    }

    /// How the help writes it.
    pub fn label(self) -> String {
        match self {
            Key::Char(' ') => "Space".into(),
            Key::Char(c) => c.to_string(),
            Key::Ctrl(c) => format!("Ctrl-{c}"),
            Key::Code(code) => match code {
                KeyCode::Down => "↓".into(),
                KeyCode::Up => "↑".into(),
                KeyCode::Left => "←".into(),
                KeyCode::Right => "→".into(),
                KeyCode::PageDown => "PgDn".into(),
                KeyCode::PageUp => "PgUp".into(),
                KeyCode::BackTab => "Shift-Tab".into(),
                other => other.to_string(),
            },
        }
    }
}

/// One line of the key map: keys, what they do (for the help), and the action.
pub struct Binding {
    /// The help's group title.
    pub group: &'static str,
    pub keys: &'static [Key],
    pub help: &'static str,
    /// The action for one of `keys`; `None` when it does nothing now (a column number
    /// beyond the columns shown).
    pub action: fn(&App, Key) -> Option<Action>,
}

use Key::{Char as C, Code, Ctrl};

const MOVE: &str = "Move";
const SORT: &str = "Sort";
const FIND: &str = "Search and filter";
const LOOK: &str = "Look closer";
const OTHER: &str = "Other";

/// Movement, shared by the table and the neighbours view.
const MOVEMENT: &[Binding] = &[
    Binding {
        group: MOVE,
        keys: &[C('j'), C('k'), Code(KeyCode::Down), Code(KeyCode::Up)],
        help: "next / previous (or wheel)",
        action: |_, k| {
            let down = matches!(k, C('j') | Code(KeyCode::Down));
            Some(Action::Move(if down { 1 } else { -1 }))
        },
    },
    Binding {
        group: MOVE,
        keys: &[Ctrl('d'), Ctrl('u')],
        help: "half a page down / up",
        action: |_, k| Some(Action::HalfPage(direction(k == Ctrl('d')))),
    },
    Binding {
        group: MOVE,
        keys: &[Ctrl('f'), Ctrl('b')],
        help: "a page down / up",
        action: |_, k| Some(Action::Page(direction(k == Ctrl('f')))),
    },
    Binding {
        group: MOVE,
        keys: &[Code(KeyCode::PageDown), Code(KeyCode::PageUp)],
        help: "a page down / up",
        action: |_, k| Some(Action::Page(direction(k == Code(KeyCode::PageDown)))),
    },
];

fn direction(down: bool) -> Direction {
    if down { Direction::Down } else { Direction::Up }
}

/// First and last row: the table's, not the neighbours view's.
const FIRST_LAST: &[Binding] = &[Binding {
    group: MOVE,
    keys: &[C('g'), C('G'), Code(KeyCode::Home), Code(KeyCode::End)],
    help: "first / last",
    action: |_, k| {
        let first = matches!(k, C('g') | Code(KeyCode::Home));
        Some(if first { Action::Top } else { Action::Bottom })
    },
}];

/// The table's other keys, in the order the help lists them.
const EXPLORER: &[Binding] = &[
    Binding {
        group: MOVE,
        keys: &[Code(KeyCode::Tab), Code(KeyCode::BackTab)],
        help: "next / previous pane",
        action: |_, k| {
            let next = k == Code(KeyCode::Tab);
            Some(if next {
                Action::NextFocus
            } else {
                Action::PrevFocus
            })
        },
    },
    Binding {
        group: SORT,
        keys: &[C('h'), C('l'), Code(KeyCode::Left), Code(KeyCode::Right)],
        help: "focus a column",
        action: |_, k| {
            let left = matches!(k, C('h') | Code(KeyCode::Left));
            Some(Action::FocusColumn(if left { -1 } else { 1 }))
        },
    },
    Binding {
        group: SORT,
        keys: &[C('['), C(']')],
        help: "sort it ascending / descending",
        action: |_, k| {
            Some(Action::SortFocused {
                descending: k == C(']'),
            })
        },
    },
    Binding {
        group: SORT,
        keys: &[
            C('1'),
            C('2'),
            C('3'),
            C('4'),
            C('5'),
            C('6'),
            C('7'),
            C('8'),
            C('9'),
        ],
        help: "sort by n-th column, again: flip",
        action: |app, k| {
            // The n-th column on screen.
            let Key::Char(c) = k else { return None };
            let columns = &app.explorer.as_ref()?.columns;
            columns
                .get(c as usize - '1' as usize)
                .copied()
                .map(Action::SortBy)
        },
    },
    Binding {
        group: FIND,
        keys: &[C('/')],
        help: "search names (regex)",
        action: |_, _| Some(Action::OpenPrompt(PromptKind::Search, String::new())),
    },
    Binding {
        group: FIND,
        keys: &[C('n'), C('N')],
        help: "next / previous match",
        action: |_, k| {
            Some(if k == C('n') {
                Action::SearchNext
            } else {
                Action::SearchPrev
            })
        },
    },
    Binding {
        group: FIND,
        keys: &[C('&')],
        help: "filter paths by regex",
        action: |_, _| Some(Action::OpenPrompt(PromptKind::PathFilter, String::new())),
    },
    Binding {
        group: FIND,
        keys: &[C('#'), C('>'), C('<')],
        help: "score filter: >= 0.8, 0.2..0.5",
        action: |_, k| {
            let text = match k {
                C(c @ ('>' | '<')) => c.to_string(),
                _ => String::new(),
            };
            Some(Action::OpenPrompt(PromptKind::ScoreFilter, text))
        },
    },
    Binding {
        group: FIND,
        keys: &[C('f')],
        help: "only beyond the upper fence",
        action: |_, _| Some(Action::ToggleFence),
    },
    Binding {
        group: FIND,
        keys: &[C('d')],
        help: "only images that have copies",
        action: |_, _| Some(Action::ToggleDuplicates),
    },
    Binding {
        group: FIND,
        keys: &[Code(KeyCode::Esc)],
        help: "clear search and filters",
        action: |_, _| Some(Action::ClearFilters),
    },
    Binding {
        group: FIND,
        keys: &[C('m')],
        help: "only marked images",
        action: |_, _| Some(Action::ToggleMarkedOnly),
    },
    Binding {
        group: LOOK,
        keys: &[Code(KeyCode::Enter)],
        help: "neighbours; Enter jumps to one",
        action: |_, _| Some(Action::OpenDetail),
    },
    Binding {
        group: LOOK,
        keys: &[C('c')],
        help: "jump to the closest match",
        action: |_, _| Some(Action::JumpClosest),
    },
    Binding {
        group: LOOK,
        keys: &[C('b')],
        help: "boxplot of shown / all rows",
        action: |_, _| Some(Action::ToggleScope),
    },
    Binding {
        group: LOOK,
        keys: &[C('w')],
        help: "where the pair differs (heat on previews)",
        action: |_, _| Some(Action::ToggleHeat),
    },
    Binding {
        group: LOOK,
        keys: &[C('z')],
        help: "zoom the preview",
        action: |_, _| Some(Action::ToggleZoom),
    },
    Binding {
        group: LOOK,
        keys: &[C('S')],
        help: "skipped files and why",
        action: |_, _| Some(Action::ShowSkips),
    },
    Binding {
        group: OTHER,
        keys: &[C(' ')],
        help: "mark / unmark (kept with the cache)",
        action: |_, _| Some(Action::ToggleMark),
    },
    Binding {
        group: OTHER,
        keys: &[C('e'), C('E')],
        help: "export marked rows (else the view) as CSV / JSON",
        action: |_, k| {
            Some(Action::Export(if k == C('e') {
                Format::Csv
            } else {
                Format::Json
            }))
        },
    },
    Binding {
        group: OTHER,
        keys: &[C('?')],
        help: "this help",
        action: |_, _| Some(Action::ShowHelp),
    },
    Binding {
        group: OTHER,
        keys: &[C('q'), Ctrl('c')],
        help: "quit",
        action: |_, k| {
            Some(if k == C('q') {
                Action::Quit
            } else {
                Action::Cancel
            })
        },
    },
];

/// The table's whole key map, in the help's order.
pub fn explorer_bindings() -> impl Iterator<Item = &'static Binding> {
    let (lines, pages) = MOVEMENT.split_at(1);
    lines.iter().chain(FIRST_LAST).chain(pages).chain(EXPLORER)
}

fn lookup<'a>(
    bindings: impl IntoIterator<Item = &'a Binding>,
    app: &App,
    key: &KeyEvent,
    ctrl: bool,
) -> Option<Action> {
    for b in bindings {
        if let Some(k) = b.keys.iter().find(|k| k.matches(key, ctrl)) {
            return (b.action)(app, *k);
        }
    }
    None
}

fn detail_key(app: &App, key: &KeyEvent, ctrl: bool) -> Option<Action> {
    if let Some(a) = lookup(MOVEMENT, app, key, ctrl) {
        return Some(a);
    }
    match key.code {
        KeyCode::Enter | KeyCode::Char('c') => Some(Action::DetailJump),
        KeyCode::Esc | KeyCode::Backspace | KeyCode::Char('h') | KeyCode::Left => {
            Some(Action::CloseOverlay)
        }
        KeyCode::Char('q') => Some(Action::Quit),
        KeyCode::Char('?') => Some(Action::ShowHelp),
        KeyCode::Char('z') => Some(Action::ToggleZoom),
        _ => None,
    }
}

fn explorer_key(app: &App, key: &KeyEvent, ctrl: bool) -> Option<Action> {
    lookup(explorer_bindings(), app, key, ctrl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::app::{Action, update};
    use crate::tui::testing;
    use ratatui::crossterm::event::{KeyEventState, MouseButton, MouseEvent};

    fn key(code: KeyCode, modifiers: KeyModifiers, kind: KeyEventKind) -> Event {
        Event::Key(KeyEvent {
            code,
            modifiers,
            kind,
            state: KeyEventState::NONE,
        })
    }

    fn press(c: char) -> Event {
        key(KeyCode::Char(c), KeyModifiers::NONE, KeyEventKind::Press)
    }

    fn explorer() -> App {
        let mut app = App::new("d".into(), "m".into(), None);
        update(&mut app, Action::Resize(120, 40));
        update(&mut app, Action::Loaded(Box::new(testing::small())));
        app
    }

    #[test]
    fn progress_view_keys_cancel() {
        let app = App::new("d".into(), "m".into(), None);
        assert!(matches!(
            action_for(&app, &press('q')),
            Some(Action::Cancel)
        ));
        let ctrl_c = key(
            KeyCode::Char('c'),
            KeyModifiers::CONTROL,
            KeyEventKind::Press,
        );
        assert!(matches!(action_for(&app, &ctrl_c), Some(Action::Cancel)));
        assert!(matches!(
            action_for(&app, &press('s')),
            Some(Action::ShowSkips)
        ));
        assert!(action_for(&app, &press('j')).is_none());
    }

    #[test]
    fn explorer_keys() {
        let app = explorer();
        assert!(matches!(
            action_for(&app, &press('j')),
            Some(Action::Move(1))
        ));
        assert!(matches!(action_for(&app, &press('q')), Some(Action::Quit)));
        assert!(matches!(
            action_for(&app, &press('2')),
            Some(Action::SortBy(crate::tui::model::Column::File))
        ));
        assert!(action_for(&app, &press('9')).is_none(), "only 7 columns");
        assert!(matches!(
            action_for(&app, &press('>')),
            Some(Action::OpenPrompt(PromptKind::ScoreFilter, ref t)) if t == ">"
        ));
        let ctrl_d = key(
            KeyCode::Char('d'),
            KeyModifiers::CONTROL,
            KeyEventKind::Press,
        );
        assert!(matches!(
            action_for(&app, &ctrl_d),
            Some(Action::HalfPage(Direction::Down))
        ));
        assert!(matches!(
            action_for(&app, &press('d')),
            Some(Action::ToggleDuplicates)
        ));
    }

    #[test]
    fn releases_are_ignored_and_only_movement_repeats() {
        let app = explorer();
        let release = key(
            KeyCode::Char('j'),
            KeyModifiers::NONE,
            KeyEventKind::Release,
        );
        assert!(action_for(&app, &release).is_none());
        let repeat_j = key(KeyCode::Char('j'), KeyModifiers::NONE, KeyEventKind::Repeat);
        assert!(matches!(action_for(&app, &repeat_j), Some(Action::Move(1))));
        let repeat_2 = key(KeyCode::Char('2'), KeyModifiers::NONE, KeyEventKind::Repeat);
        assert!(
            action_for(&app, &repeat_2).is_none(),
            "a held 2 does not flip the sort"
        );
    }

    #[test]
    fn prompt_takes_letters_that_are_otherwise_commands() {
        let mut app = explorer();
        update(
            &mut app,
            Action::OpenPrompt(PromptKind::Search, String::new()),
        );
        assert!(matches!(
            action_for(&app, &press('q')),
            Some(Action::PromptChar('q'))
        ));
        let esc = key(KeyCode::Esc, KeyModifiers::NONE, KeyEventKind::Press);
        assert!(matches!(action_for(&app, &esc), Some(Action::PromptCancel)));
    }

    #[test]
    fn mouse_and_resize() {
        let app = explorer();
        let wheel = Event::Mouse(MouseEvent {
            kind: MouseEventKind::ScrollDown,
            column: 3,
            row: 4,
            modifiers: KeyModifiers::NONE,
        });
        assert!(matches!(action_for(&app, &wheel), Some(Action::Scroll(3))));
        let click = Event::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: 3,
            row: 4,
            modifiers: KeyModifiers::NONE,
        });
        assert!(matches!(
            action_for(&app, &click),
            Some(Action::Click(3, 4))
        ));
        assert!(matches!(
            action_for(&app, &Event::Resize(50, 20)),
            Some(Action::Resize(50, 20))
        ));
    }
}
