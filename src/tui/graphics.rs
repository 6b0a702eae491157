//! Which way previews are drawn, and why. The choice is pure ([`choose`]) over what the
//! terminal answered ([`probe::Answers`]), the environment and the tty's pixel size, so
//! each terminal's case is a unit test; [`Graphics`] then encodes pictures that way.
//!
//! Terminals that need care, with their default settings:
//! - xterm `-ti vt340` reports sixel but refuses the pixel-size queries (`allowWindowOps`
//!   is off): the cell size comes from the tty (TIOCGWINSZ), else a guess.
//! - kitty before 0.28 has no Unicode placeholders (`U=1`), which ratatui-image's kitty
//!   protocol needs: [`Method::KittyDirect`] places images at the cursor instead
//!   (`kitty_direct.rs`). Outside tmux every kitty gets direct placement; it also keeps
//!   images in the terminal, so going back to one costs a few bytes.
//! - Inside tmux sixel is fragile (scrolling, stale images) and direct placement lands in
//!   the wrong place: placeholders (kitty >= 0.28) or halfblocks.
//! - WezTerm draws iTerm2 images better than its kitty or sixel (as ratatui-image finds).

use super::kitty_direct::KittyImage;
use super::preview::PreviewError;
use super::probe::Answers;
use super::{GraphicsProtocol, PreviewMode};
use image::DynamicImage;
use image::imageops::FilterType;
use ratatui::layout::Size;
use ratatui_image::picker::{Picker, ProtocolType};
use ratatui_image::protocol::Protocol;
use ratatui_image::{FontSize, Resize};

/// How pictures reach the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Coloured half-block characters (ratatui-image).
    Halfblocks,
    /// Sixel (ratatui-image).
    Sixel,
    /// The iTerm2 inline image protocol (ratatui-image).
    Iterm2,
    /// kitty graphics with Unicode placeholders (ratatui-image; kitty >= 0.28, tmux).
    KittyPlaceholders,
    /// kitty graphics placed at the cursor (`kitty_direct.rs`; every kitty version).
    KittyDirect,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Halfblocks => "halfblocks",
            Method::Sixel => "sixel",
            Method::Iterm2 => "iterm2",
            Method::KittyPlaceholders | Method::KittyDirect => "kitty",
        }
    }

    /// Whether the picture's pixels reach the terminal (so the cell size matters).
    pub fn is_pixels(self) -> bool {
        self != Method::Halfblocks
    }
}

/// Where the cell size in pixels came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellSource {
    /// The terminal answered `CSI 16 t` (or `CSI 14 t`).
    Terminal,
    /// The tty's window size (TIOCGWINSZ's pixel fields; SSH forwards them).
    Tty,
    /// Nobody said: [`DEFAULT_CELL`].
    Guessed,
}

/// A usual cell size, for terminals that draw pixels but do not tell their cell size.
pub const DEFAULT_CELL: (u16, u16) = (10, 20);

/// Everything [`choose`] looks at.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub answers: Answers,
    /// Running inside tmux (the answers then come from the outer terminal).
    pub tmux: bool,
    /// TERM_PROGRAM, LC_TERMINAL or WEZTERM_EXECUTABLE name a terminal that speaks iTerm2's
    /// protocol.
    pub iterm2_env: Option<String>,
    /// The tty's size: (columns, rows, width px, height px).
    pub winsize: Option<(u16, u16, u16, u16)>,
}

/// The outcome of [`choose`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub method: Method,
    pub cell: (u16, u16),
    pub cell_source: CellSource,
    /// Why this method, in a few words (`None` when the terminal's answer says it all).
    pub why: Option<String>,
}

impl Choice {
    /// The status bar's words, e.g. `sixel (cell size from the tty)`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.why.iter().cloned().collect();
        if self.method.is_pixels() {
            parts.push(match self.cell_source {
                CellSource::Terminal => "cell size from the terminal".into(),
                CellSource::Tty => "cell size from the tty".into(),
                CellSource::Guessed => {
                    format!("cell size guessed {}x{}", self.cell.0, self.cell.1)
                }
            });
        }
        if parts.is_empty() {
            self.method.name().to_string()
        } else {
            format!("{} ({})", self.method.name(), parts.join(", "))
        }
    }
}

/// kitty releases before this one have no Unicode placeholders.
const KITTY_PLACEHOLDERS_SINCE: (u32, u32) = (0, 28);

/// `kitty(0.26.5)` -> (0, 26); `None` for other terminals or an unreadable version.
fn kitty_version(version: &str) -> Option<(u32, u32)> {
    let inner = version.strip_prefix("kitty(")?.strip_suffix(')')?;
    let mut parts = inner.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

/// The cell size and where it came from: the terminal's answer, the tty, a guess.
fn cell_size(facts: &Facts) -> ((u16, u16), CellSource) {
    let a = &facts.answers;
    if let Some(cell) = a.cell_px {
        return (cell, CellSource::Terminal);
    }
    if let (Some((w, h)), Some((cols, rows, _, _))) = (a.text_area_px, facts.winsize)
        && cols > 0
        && rows > 0
        && w >= cols
        && h >= rows
    {
        return ((w / cols, h / rows), CellSource::Terminal);
    }
    if let Some((cols, rows, w, h)) = facts.winsize
        && cols > 0
        && rows > 0
        && w >= cols
        && h >= rows
    {
        return ((w / cols, h / rows), CellSource::Tty);
    }
    (DEFAULT_CELL, CellSource::Guessed)
}

/// Picks the drawing method for `mode` from what is known about the terminal.
pub fn choose(mode: PreviewMode, facts: &Facts) -> Choice {
    let (cell, cell_source) = cell_size(facts);
    let choice = |method, why: Option<&str>| Choice {
        method,
        cell,
        cell_source,
        why: why.map(str::to_string),
    };
    let a = &facts.answers;
    let kitty = a.version.as_deref().and_then(kitty_version);
    let kitty_method = |forced: bool| {
        let why = |s: &str| {
            if forced {
                Some(format!("--preview kitty, {s}"))
            } else {
                Some(s.to_string())
            }
        };
        match (facts.tmux, kitty) {
            (false, _) => Choice {
                why: why("direct placement"),
                ..choice(Method::KittyDirect, None)
            },
            (true, Some(v)) if v < KITTY_PLACEHOLDERS_SINCE => Choice {
                why: Some(format!(
                    "{} has no placeholders, which tmux needs",
                    a.version.as_deref().unwrap_or("kitty")
                )),
                ..choice(Method::Halfblocks, None)
            },
            (true, _) => Choice {
                why: why("placeholders through tmux"),
                ..choice(Method::KittyPlaceholders, None)
            },
        }
    };
    match mode {
        PreviewMode::None => choice(Method::Halfblocks, Some("previews off")),
        PreviewMode::Halfblocks => choice(Method::Halfblocks, Some("--preview halfblocks")),
        PreviewMode::Force(GraphicsProtocol::Sixel) => {
            choice(Method::Sixel, Some("--preview sixel"))
        }
        PreviewMode::Force(GraphicsProtocol::Iterm2) => {
            choice(Method::Iterm2, Some("--preview iterm2"))
        }
        PreviewMode::Force(GraphicsProtocol::Kitty) => kitty_method(true),
        PreviewMode::Auto => {
            if let Some(term) = &facts.iterm2_env {
                choice(Method::Iterm2, Some(term))
            } else if a.kitty_graphics {
                kitty_method(false)
            } else if a.sixel && facts.tmux {
                choice(Method::Halfblocks, Some("sixel is fragile inside tmux"))
            } else if a.sixel {
                choice(Method::Sixel, None)
            } else if a.complete {
                choice(Method::Halfblocks, Some("the terminal reports no graphics"))
            } else {
                choice(Method::Halfblocks, Some("the terminal did not answer"))
            }
        }
    }
}

/// The environment's word on the terminal, for terminals that speak iTerm2's protocol but
/// do not say so when asked (the same hints ratatui-image trusts).
pub fn iterm2_from_env() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if var("WEZTERM_EXECUTABLE").is_some() {
        return Some("WezTerm".into());
    }
    const PROGRAMS: [&str; 9] = [
        "iTerm",
        "WezTerm",
        "mintty",
        "vscode",
        "Tabby",
        "Hyper",
        "rio",
        "Bobcat",
        "WarpTerminal",
    ];
    if let Some(p) = var("TERM_PROGRAM").filter(|p| PROGRAMS.iter().any(|n| p.contains(n))) {
        return Some(crate::sanitize::sanitize(&p));
    }
    var("LC_TERMINAL")
        .filter(|t| t.contains("iTerm"))
        .map(|t| crate::sanitize::sanitize(&t))
}

/// One encoded picture, ready to draw.
pub enum Picture {
    /// Drawn into the frame's cells by ratatui-image.
    Cells(Protocol),
    /// Placed by `kitty_direct::Screen` after the frame is drawn.
    Kitty(KittyImage),
}

impl Picture {
    /// Its size in cells.
    pub fn size(&self) -> Size {
        match self {
            Picture::Cells(p) => p.size(),
            Picture::Kitty(k) => k.cells,
        }
    }
}

/// The chosen method with what it needs to encode pictures.
#[derive(Clone)]
pub struct Graphics {
    pub choice: Choice,
    picker: Picker,
}

impl Graphics {
    pub fn new(choice: Choice) -> Self {
        // `from_fontsize` is the one constructor that takes a known cell size; it is
        // deprecated in favour of ratatui-image's own query, which gives up on a terminal
        // that hides its cell size (xterm's default) and cannot tell old kittys apart.
        #[allow(deprecated)]
        let mut picker = Picker::from_fontsize(FontSize::from(choice.cell));
        picker.set_protocol_type(match choice.method {
            Method::Halfblocks => ProtocolType::Halfblocks,
            Method::Sixel => ProtocolType::Sixel,
            Method::Iterm2 => ProtocolType::Iterm2,
            Method::KittyPlaceholders | Method::KittyDirect => ProtocolType::Kitty,
        });
        Graphics { choice, picker }
    }

    /// Halfblocks with the usual cell size: what tests and benchmarks draw with.
    pub fn halfblocks() -> Self {
        Graphics {
            choice: Choice {
                method: Method::Halfblocks,
                cell: DEFAULT_CELL,
                cell_source: CellSource::Guessed,
                why: None,
            },
            picker: Picker::halfblocks(),
        }
    }

    pub fn method(&self) -> Method {
        self.choice.method
    }

    /// Resizes `img` to fill `width` x `height` cells, keeping its proportions, and encodes
    /// it.
    pub fn encode(
        &self,
        img: &DynamicImage,
        width: u16,
        height: u16,
    ) -> Result<Picture, PreviewError> {
        // Scale, not Fit: small images (thumbnails, low-resolution micrographs) grow to
        // fill the slot too.
        let resize = Resize::Scale(Some(FilterType::Triangle));
        let available = Size::new(width, height);
        if self.choice.method == Method::KittyDirect {
            let font = FontSize::from(self.choice.cell);
            let cells = resize.size_for(img, font, available);
            let scaled = resize.resize(img, font, cells, None);
            return KittyImage::encode(&scaled, cells).map(Picture::Kitty);
        }
        self.picker
            .new_protocol(img.clone(), available, resize)
            .map(Picture::Cells)
            .map_err(|e| PreviewError::Encode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(answers: &[u8], winsize: Option<(u16, u16, u16, u16)>) -> Facts {
        Facts {
            answers: Answers::parse(answers),
            winsize,
            ..Facts::default()
        }
    }

    const XTERM: &[u8] = b"\x1bP>|XTerm(379)\x1b\\\x1b[?63;1;2;4;6;9;15;22c\x1b[0n";
    const KITTY_026: &[u8] =
        b"\x1b_Gi=31;OK\x1b\\\x1bP>|kitty(0.26.5)\x1b\\\x1b[6;17;8t\x1b[?62;c\x1b[0n";
    const KITTY_035: &[u8] =
        b"\x1b_Gi=31;OK\x1b\\\x1bP>|kitty(0.35.2)\x1b\\\x1b[6;17;8t\x1b[?62;c\x1b[0n";

    #[test]
    fn xterm_with_default_resources_gets_sixel_with_the_ttys_cell_size() {
        let c = choose(PreviewMode::Auto, &facts(XTERM, Some((160, 48, 960, 624))));
        assert_eq!(
            (c.method, c.cell, c.cell_source),
            (Method::Sixel, (6, 13), CellSource::Tty)
        );
        assert_eq!(c.describe(), "sixel (cell size from the tty)");
        // No pixel size in the tty either: still sixel, with a guessed cell.
        let c = choose(PreviewMode::Auto, &facts(XTERM, Some((160, 48, 0, 0))));
        assert_eq!(
            (c.method, c.cell_source),
            (Method::Sixel, CellSource::Guessed)
        );
        assert_eq!(c.describe(), "sixel (cell size guessed 10x20)");
    }

    #[test]
    fn every_kitty_gets_direct_placement_outside_tmux() {
        for reply in [KITTY_026, KITTY_035] {
            let c = choose(PreviewMode::Auto, &facts(reply, None));
            assert_eq!((c.method, c.cell), (Method::KittyDirect, (8, 17)));
            assert_eq!(
                c.describe(),
                "kitty (direct placement, cell size from the terminal)"
            );
        }
    }

    #[test]
    fn inside_tmux_kitty_needs_placeholders_and_sixel_is_avoided() {
        let tmux = |reply| Facts {
            tmux: true,
            ..facts(reply, None)
        };
        assert_eq!(
            choose(PreviewMode::Auto, &tmux(KITTY_035)).method,
            Method::KittyPlaceholders
        );
        let old = choose(PreviewMode::Auto, &tmux(KITTY_026));
        assert_eq!(old.method, Method::Halfblocks);
        assert!(old.describe().contains("kitty(0.26.5) has no placeholders"));
        assert_eq!(
            choose(PreviewMode::Auto, &tmux(XTERM)).method,
            Method::Halfblocks
        );
        // Forcing sixel still works.
        let forced = PreviewMode::Force(GraphicsProtocol::Sixel);
        assert_eq!(choose(forced, &tmux(XTERM)).method, Method::Sixel);
    }

    #[test]
    fn no_answer_means_halfblocks_and_the_environment_can_name_iterm2() {
        let c = choose(PreviewMode::Auto, &facts(b"", None));
        assert_eq!(c.describe(), "halfblocks (the terminal did not answer)");
        let c = choose(PreviewMode::Auto, &facts(b"\x1b[?1;2c\x1b[0n", None));
        assert_eq!(
            c.describe(),
            "halfblocks (the terminal reports no graphics)"
        );
        let wezterm = Facts {
            iterm2_env: Some("WezTerm".into()),
            ..facts(b"\x1b[6;16;8t\x1b[0n", None)
        };
        let c = choose(PreviewMode::Auto, &wezterm);
        assert_eq!(
            c.describe(),
            "iterm2 (WezTerm, cell size from the terminal)"
        );
    }

    #[test]
    fn forced_protocols_and_halfblocks() {
        let f = facts(b"", Some((100, 30, 800, 600)));
        let c = choose(PreviewMode::Force(GraphicsProtocol::Kitty), &f);
        assert_eq!(
            c.describe(),
            "kitty (--preview kitty, direct placement, cell size from the tty)"
        );
        let c = choose(PreviewMode::Halfblocks, &f);
        assert_eq!(c.describe(), "halfblocks (--preview halfblocks)");
    }

    #[test]
    fn kitty_versions_parse() {
        assert_eq!(kitty_version("kitty(0.26.5)"), Some((0, 26)));
        assert_eq!(kitty_version("kitty(0.28.0)"), Some((0, 28)));
        assert_eq!(kitty_version("XTerm(379)"), None);
        assert_eq!(kitty_version("kitty(x)"), None);
    }
}
