//! HTML for Telegram's HTML parse mode: escaping and length (SPEC §4).

/// Escapes text for a message body or an attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `text`, with "…" when cut. Escape after cutting.
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// The length Telegram counts, bounded from above: UTF-16 units of the HTML
/// source (tags and entities only make the visible text shorter).
pub fn units(html: &str) -> usize {
    html.encode_utf16().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_telegram_parses() {
        assert_eq!(
            escape("<b>&</b> \"x\" 'y'"),
            "&lt;b&gt;&amp;&lt;/b&gt; &quot;x&quot; &#39;y&#39;"
        );
        assert_eq!(shorten("абвгд", 3), "абв…");
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(units("😀a"), 3);
    }
}
