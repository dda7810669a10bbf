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

/// The text a reader sees of Telegram HTML: tags dropped, entities
/// resolved. For resending a message Telegram could not parse.
pub fn to_plain(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find(['<', '&']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if rest.starts_with('<') {
            match rest.find('>') {
                Some(end) => rest = &rest[end + 1..],
                None => {
                    out.push_str(rest);
                    rest = "";
                }
            }
            continue;
        }
        let entity = [
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&amp;", '&'),
            ("&quot;", '"'),
            ("&#39;", '\''),
        ]
        .into_iter()
        .find(|(name, _)| rest.starts_with(name));
        match entity {
            Some((name, c)) => {
                out.push(c);
                rest = &rest[name.len()..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Percent-encodes one URL path segment (RFC 3986 unreserved kept).
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len() * 3);
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_of_html() {
        assert_eq!(
            to_plain(
                "🔴 <b>A &amp; B</b> is <i>down</i>: &lt;x&gt; &quot;y&quot; &#39;z&#39; & <a href=\"u\">link</a>"
            ),
            "🔴 A & B is down: <x> \"y\" 'z' & link"
        );
        assert_eq!(to_plain("broken <b"), "broken <b");
        assert_eq!(to_plain(&escape("<&>")), "<&>");
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(
            encode_segment("000001bf@tc.local#vcs"),
            "000001bf%40tc.local%23vcs"
        );
        assert_eq!(encode_segment("a/b c?"), "a%2Fb%20c%3F");
        assert_eq!(encode_segment("конф"), "%D0%BA%D0%BE%D0%BD%D1%84");
    }

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
