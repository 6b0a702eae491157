//! Make untrusted text (file names) safe to print: a file name can carry escape sequences.

/// Replaces control characters (C0, DEL, C1) with visible escapes such as `\x1b` or `\n`,
/// so nothing from a file name can drive the terminal.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    sanitize_into(&mut out, text);
    out
}

/// Appends `text`, sanitised, to `out`.
pub fn sanitize_into(out: &mut String, text: &str) {
    // Most names hold no control character: copied whole. Every C1 character's UTF-8
    // encoding starts with 0xC2, so a text without that byte, C0 or DEL has none.
    if !text.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn escapes_become_visible() {
        assert_eq!(sanitize("a\x1b[2Jb\n"), "a\\x1b[2Jb\\n");
        assert_eq!(sanitize("\u{9b}31m"), "\\x9b31m");
        assert_eq!(sanitize("snow❄.png"), "snow❄.png");
        // 0xC2 also starts printable characters, which stay as they are.
        assert_eq!(sanitize("\u{a0}é¢\u{85}"), "\u{a0}é¢\\x85");
    }
}
