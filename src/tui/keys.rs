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
            Overlay::Detail(_) => detail_key(key, ctrl),
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

fn movement(key: &KeyEvent, ctrl: bool) -> Option<Action> {
    Some(match key.code {
        KeyCode::Char('j') | KeyCode::Down => Action::Move(1),
        KeyCode::Char('k') | KeyCode::Up => Action::Move(-1),
        KeyCode::Char('d') if ctrl => Action::HalfPage(Direction::Down),
        KeyCode::Char('u') if ctrl => Action::HalfPage(Direction::Up),
        KeyCode::Char('f') if ctrl => Action::Page(Direction::Down),
        KeyCode::Char('b') if ctrl => Action::Page(Direction::Up),
        KeyCode::PageDown => Action::Page(Direction::Down),
        KeyCode::PageUp => Action::Page(Direction::Up),
        _ => return None,
    })
}

fn detail_key(key: &KeyEvent, ctrl: bool) -> Option<Action> {
    if let Some(a) = movement(key, ctrl) {
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
    if let Some(a) = movement(key, ctrl) {
        return Some(a);
    }
    if ctrl {
        return None;
    }
    Some(match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Char('g') | KeyCode::Home => Action::Top,
        KeyCode::Char('G') | KeyCode::End => Action::Bottom,
        KeyCode::Char('h') | KeyCode::Left => Action::FocusColumn(-1),
        KeyCode::Char('l') | KeyCode::Right => Action::FocusColumn(1),
        KeyCode::Char('[') => Action::SortFocused { descending: false },
        KeyCode::Char(']') => Action::SortFocused { descending: true },
        KeyCode::Char(c @ '1'..='9') => {
            // The n-th column on screen.
            let i = c as usize - '1' as usize;
            let columns = &app.explorer.as_ref()?.columns;
            return columns.get(i).copied().map(Action::SortBy);
        }
        KeyCode::Char('/') => Action::OpenPrompt(PromptKind::Search, String::new()),
        KeyCode::Char('n') => Action::SearchNext,
        KeyCode::Char('N') => Action::SearchPrev,
        KeyCode::Char('&') => Action::OpenPrompt(PromptKind::PathFilter, String::new()),
        KeyCode::Char('#') => Action::OpenPrompt(PromptKind::ScoreFilter, String::new()),
        KeyCode::Char(c @ ('>' | '<')) => {
            Action::OpenPrompt(PromptKind::ScoreFilter, c.to_string())
        }
        KeyCode::Char('f') => Action::ToggleFence,
        KeyCode::Char('d') => Action::ToggleDuplicates,
        KeyCode::Esc => Action::ClearFilters,
        KeyCode::Char('b') => Action::ToggleScope,
        KeyCode::Tab => Action::NextFocus,
        KeyCode::BackTab => Action::PrevFocus,
        KeyCode::Char('z') => Action::ToggleZoom,
        KeyCode::Enter => Action::OpenDetail,
        KeyCode::Char('c') => Action::JumpClosest,
        KeyCode::Char('S') => Action::ShowSkips,
        KeyCode::Char('?') => Action::ShowHelp,
        KeyCode::Char('e') => Action::Export(Format::Csv),
        KeyCode::Char('E') => Action::Export(Format::Json),
        _ => return None,
    })
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
