//! HTML character-reference decoding with the exact behaviour of Python's `html.unescape`,
//! which fastai's `fix_html` rule calls last.
//!
//! Python scans for `&` followed by `#digits`, `#x`/`#X` + hex digits, or 1..=32 characters
//! other than tab, newline, form feed, space, `<`, `&`, `#` and `;`; each may end with `;`.
//! Numeric references map through the HTML5 "invalid character reference" table (Windows-1252
//! for 0x80..0x9F), out-of-range values give U+FFFD and a few control / non-character code
//! points vanish. Named references use the longest known prefix (HTML5 lets legacy names such
//! as `&amp` omit the `;`); unknown ones are left as they are.

use super::html_entities::ENTITIES;

/// Windows-1252 replacements that HTML5 applies to numeric references 0x80..=0x9F.
const CP1252: [char; 32] = [
    '\u{20AC}', '\u{81}', '\u{201A}', '\u{192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{2C6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8D}', '\u{17D}', '\u{8F}',
    '\u{90}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{2DC}', '\u{2122}', '\u{161}', '\u{203A}', '\u{153}', '\u{9D}', '\u{17E}', '\u{178}',
];

fn lookup(name: &str) -> Option<&'static str> {
    ENTITIES
        .binary_search_by(|(k, _)| k.as_bytes().cmp(name.as_bytes()))
        .ok()
        .map(|i| ENTITIES[i].1)
}

/// What a numeric reference with value `num` (saturated at `u32::MAX`) becomes.
fn numeric(num: u32, out: &mut String) {
    match num {
        0 => out.push('\u{FFFD}'),
        0x0D => out.push('\r'),
        0x80..=0x9F => out.push(CP1252[(num - 0x80) as usize]),
        0xD800..=0xDFFF | 0x11_0000.. => out.push('\u{FFFD}'),
        0x01..=0x08 | 0x0B | 0x0E..=0x1F | 0x7F | 0xFDD0..=0xFDEF => {}
        n if n & 0xFFFE == 0xFFFE => {}
        n => out.extend(char::from_u32(n)),
    }
}

fn is_name_char(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\u{C}' | ' ' | '<' | '&' | '#' | ';')
}

/// Handles one reference starting right after `&` in `rest`; returns the bytes consumed or
/// `None` when Python's pattern does not match there.
fn reference(rest: &str, out: &mut String) -> Option<usize> {
    let bytes = rest.as_bytes();
    if bytes.first() == Some(&b'#') {
        let (radix, start) = match bytes.get(1) {
            Some(b'x' | b'X') => (16, 2),
            _ => (10, 1),
        };
        let digits = bytes[start..]
            .iter()
            .take_while(|b| (*b).is_ascii_hexdigit() && (radix == 16 || b.is_ascii_digit()))
            .count();
        if digits == 0 {
            return None;
        }
        let mut num: u32 = 0;
        for &b in &bytes[start..start + digits] {
            let d = (b as char).to_digit(radix).unwrap_or(0);
            num = num.saturating_mul(radix).saturating_add(d);
        }
        numeric(num, out);
        let end = start + digits;
        return Some(end + usize::from(bytes.get(end) == Some(&b';')));
    }
    // Named: 1..=32 name characters, then an optional ';'.
    let mut end = 0;
    for (n, (i, c)) in rest.char_indices().enumerate() {
        if n == 32 || !is_name_char(c) {
            break;
        }
        end = i + c.len_utf8();
    }
    if end == 0 {
        return None;
    }
    if rest.as_bytes().get(end) == Some(&b';') {
        end += 1;
    }
    let name = &rest[..end];
    if let Some(v) = lookup(name) {
        out.push_str(v);
        return Some(end);
    }
    // Longest known prefix of at least 2 characters (shorter than the whole match).
    let bounds: Vec<usize> = name.char_indices().map(|(i, _)| i).skip(2).collect();
    for &cut in bounds.iter().rev() {
        if let Some(v) = lookup(&name[..cut]) {
            out.push_str(v);
            out.push_str(&name[cut..]);
            return Some(end);
        }
    }
    out.push('&');
    out.push_str(name);
    Some(end)
}

/// Python's `html.unescape(s)`.
pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    while let Some(off) = s[pos..].find('&') {
        let amp = pos + off;
        out.push_str(&s[pos..amp]);
        match reference(&s[amp + 1..], &mut out) {
            Some(n) => pos = amp + 1 + n,
            None => {
                out.push('&');
                pos = amp + 1;
            }
        }
    }
    out.push_str(&s[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn named_references() {
        assert_eq!(unescape("a &lt;b&gt; &eacute;t&eacute;"), "a <b> été");
        assert_eq!(unescape("&amp;&amp"), "&&");
        // Legacy names without ';' take the longest known prefix.
        assert_eq!(unescape("&ampxyz; &copyright"), "&xyz; ©right");
        assert_eq!(unescape("&notit; &notin;"), "¬it; ∉");
        // Unknown names and a lone '&' stay.
        assert_eq!(unescape("&foo; & &&"), "&foo; & &&");
        assert_eq!(unescape("AT&&T"), "AT&&T");
    }

    #[test]
    fn numeric_references() {
        assert_eq!(unescape("&#39;&#x27;&#X41;&#65"), "''AA");
        assert_eq!(unescape("&#150;&#146;"), "\u{2013}\u{2019}");
        assert_eq!(
            unescape("&#0;&#xD800;&#99999999999999;"),
            "\u{FFFD}\u{FFFD}\u{FFFD}"
        );
        assert_eq!(unescape("a&#1;b&#xFFFF;c&#13;"), "abc\r");
        assert_eq!(unescape("&#; &#x; &#xg"), "&#; &#x; &#xg");
    }

    #[test]
    fn names_are_at_most_32_chars() {
        let long = format!("&{}amp;", "a".repeat(40));
        assert_eq!(unescape(&long), long);
    }
}
