//! spaCy 3.8's English prefix, suffix and infix rules (`spacy/lang/punctuation.py`,
//! `spacy/lang/en/punctuation.py`), written as direct scanners.
//!
//! spaCy joins its pieces into one Python regex each: the prefix regex is `^p1|^p2|...` (the
//! first alternative that matches at the start wins), the suffix regex `s1$|s2$|...` searched
//! left to right (so the suffix is the longest one any alternative can end the string with), and
//! the infix regex `i1|i2|...` used with `finditer` (leftmost matches, first alternative wins at
//! each position, look-behinds see only the string being split). Lengths are in bytes.

use super::char_tables::{ALPHA, ALPHA_LOWER, ALPHA_UPPER, ICONS};
use crate::text::pyunicode::in_ranges;

/// `LIST_PUNCT` (one-character entries; `……` is handled separately).
const PUNCT: &str = "…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪";

/// `LIST_QUOTES` / `CONCAT_QUOTES`.
const QUOTES: &str = "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉〈〉⟦⟧";

/// `LIST_CURRENCY`, in spaCy's order.
#[rustfmt::skip]
const CURRENCY: &[&str] = &[
    "$", "\u{a3}", "\u{20ac}", "\u{a5}", "\u{e3f}", "US$", "C$", "A$", "\u{20bd}", "\u{fdfc}",
    "\u{20b4}", "\u{20a0}", "\u{20a1}", "\u{20a2}", "\u{20a3}", "\u{20a4}", "\u{20a5}", "\u{20a6}",
    "\u{20a7}", "\u{20a8}", "\u{20a9}", "\u{20aa}", "\u{20ab}", "\u{20ac}", "\u{20ad}", "\u{20ae}",
    "\u{20af}", "\u{20b0}", "\u{20b1}", "\u{20b2}", "\u{20b3}", "\u{20b4}", "\u{20b5}", "\u{20b6}",
    "\u{20b7}", "\u{20b8}", "\u{20b9}", "\u{20ba}", "\u{20bb}", "\u{20bc}", "\u{20bd}", "\u{20be}",
    "\u{20bf}",
];

/// `LIST_UNITS`. spaCy's source string lacks a space between `тб` and `كم`, so `тбكم` is one
/// unit and neither half is; that is kept.
#[rustfmt::skip]
const UNITS: &[&str] = &[
    "km", "km²", "km³", "m", "m²", "m³", "dm", "dm²", "dm³", "cm", "cm²", "cm³", "mm", "mm²", "mm³",
    "ha", "µm", "nm", "yd", "in", "ft", "kg", "g", "mg", "µg", "t", "lb", "oz", "m/s", "km/h",
    "kmh", "mph", "hPa", "Pa", "mbar", "mb", "MB", "kb", "KB", "gb", "GB", "tb", "TB", "T", "G",
    "M", "K", "%", "км", "км²", "км³", "м", "м²", "м³", "дм", "дм²", "дм³", "см", "см²", "см³",
    "мм", "мм²", "мм³", "нм", "кг", "г", "мг", "м/с", "км/ч", "кПа", "Па", "мбар", "Кб", "КБ", "кб",
    "Мб", "МБ", "мб", "Гб", "ГБ", "гб", "Тб", "ТБ", "тбكم", "كم²", "كم³", "م", "م²", "م³", "سم",
    "سم²", "سم³", "مم", "مم²", "مم³", "كم", "غرام", "جرام", "جم", "كغ", "ملغ", "كوب", "اكواب",
];

/// `HYPHENS` alternatives, in spaCy's order.
const HYPHENS: &[&str] = &[
    "-",
    "\u{2013}",
    "\u{2014}",
    "--",
    "---",
    "\u{2014}\u{2014}",
    "~",
];

fn is_alpha(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphabetic()
    } else {
        in_ranges(ALPHA, c)
    }
}

fn is_alpha_lower(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_lowercase()
    } else {
        in_ranges(ALPHA_LOWER, c)
    }
}

fn is_alpha_upper(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_uppercase()
    } else {
        in_ranges(ALPHA_UPPER, c)
    }
}

fn is_icon(c: char) -> bool {
    !c.is_ascii() && in_ranges(ICONS, c)
}

fn is_quote(c: char) -> bool {
    QUOTES.contains(c)
}

fn is_currency_char(c: char) -> bool {
    CURRENCY
        .iter()
        .any(|s| s.len() == c.len_utf8() && s.starts_with(c))
}

/// One-character prefixes: `§ % = — –`, `LIST_PUNCT`, `…`, quotes, currency symbols, icons.
const fn ascii_mask(chars: &[u8]) -> u128 {
    let mut m = 0u128;
    let mut i = 0;
    while i < chars.len() {
        m |= 1 << chars[i];
        i += 1;
    }
    m
}

/// ASCII members of `LIST_PUNCT` and `LIST_QUOTES`.
const ASCII_PUNCT_QUOTES: u128 = ascii_mask(b",:;!?()[]{}<>_#*&'\"`");
/// ASCII one-character prefixes: the above plus `%`, `=` and `$`.
const ASCII_PREFIX: u128 = ASCII_PUNCT_QUOTES | ascii_mask(b"%=$");

fn in_mask(mask: u128, c: char) -> bool {
    (c as u32) < 128 && mask & (1 << (c as u32)) != 0
}

/// One-character prefixes: `§ % = — –`, `LIST_PUNCT`, `…`, quotes, currency symbols, icons.
fn is_prefix_char(c: char) -> bool {
    if c.is_ascii() {
        return in_mask(ASCII_PREFIX, c);
    }
    matches!(c, '\u{a7}' | '\u{2014}' | '\u{2013}')
        || PUNCT.contains(c)
        || is_quote(c)
        || is_currency_char(c)
        || is_icon(c)
}

/// One-character suffixes: `LIST_PUNCT`, `…`, quotes, icons, `—`, `–`.
fn is_suffix_char(c: char) -> bool {
    if c.is_ascii() {
        return in_mask(ASCII_PUNCT_QUOTES, c);
    }
    PUNCT.contains(c) || is_quote(c) || is_icon(c) || matches!(c, '\u{2014}' | '\u{2013}')
}

/// Characters that let a final `.` split off (`(?<=[0-9{al}{e}{p}(?:{q})])\.`): digits, lower-case
/// letters, `%²-+`, the `PUNCT` alternatives (the joining `|` included, as the class is built
/// from the joined string), `(?:)` taken literally, and quotes.
fn is_dot_suffix_preceder(c: char) -> bool {
    c.is_ascii_digit()
        || is_alpha_lower(c)
        || matches!(c, '%' | '\u{b2}' | '-' | '+' | '|' | '(' | '?' | ':' | ')')
        || PUNCT.contains(c)
        || is_quote(c)
}

/// Byte length of the dot run at the start of `s`.
fn dot_run(s: &str) -> usize {
    s.bytes().take_while(|&b| b == b'.').count()
}

/// Length of the prefix spaCy splits off the start of `s` (0 if none).
pub(crate) fn find_prefix(s: &str) -> usize {
    let Some(c) = s.chars().next() else { return 0 };
    if is_prefix_char(c) {
        return c.len_utf8();
    }
    match c {
        '+' if !s[1..].starts_with(|d: char| d.is_ascii_digit()) => 1,
        '.' if dot_run(s) >= 2 => dot_run(s),
        _ => ["US$", "C$", "A$"]
            .into_iter()
            .find(|p| s.starts_with(p))
            .map_or(0, str::len),
    }
}

/// Longest unit or currency symbol in characters (`اكواب`).
const MAX_UNIT_CHARS: usize = 5;

/// Length of the suffix spaCy splits off the end of `s` (0 if none).
pub(crate) fn find_suffix(s: &str) -> usize {
    let n = s.len();
    let mut rev = s.char_indices().rev();
    let Some((last_start, last)) = rev.next() else {
        return 0;
    };
    let (prev_start, prev) = match rev.next() {
        Some((i, c)) => (i, Some(c)),
        None => (0, None),
    };
    let prev2 = rev.next().map(|(_, c)| c);
    // Start (byte offset) of the leftmost alternative that matches up to the end.
    let mut best = n;
    if is_suffix_char(last) {
        best = last_start;
    }
    match last {
        '\u{2026}' if prev == Some('\u{2026}') => best = best.min(prev_start),
        's' | 'S' if matches!(prev, Some('\'' | '\u{2019}')) => best = best.min(prev_start),
        '+' if prev.is_some_and(|c| c.is_ascii_digit()) => best = best.min(last_start),
        '.' => {
            let dots = s.bytes().rev().take_while(|&b| b == b'.').count();
            if dots >= 2 {
                best = best.min(n - dots);
            }
            let degree =
                prev2 == Some('\u{b0}') && matches!(prev, Some('F' | 'f' | 'C' | 'c' | 'K' | 'k'));
            let after_lower = prev.is_some_and(is_dot_suffix_preceder);
            let after_upper = prev.is_some_and(is_alpha_upper) && prev2.is_some_and(is_alpha_upper);
            if degree || after_lower || after_upper {
                best = best.min(last_start);
            }
        }
        _ => {}
    }
    // `(?<=[0-9])(?:{currency})$` and `(?<=[0-9])(?:{units})$`.
    for (k, _) in s.char_indices().rev().take(MAX_UNIT_CHARS) {
        if k > 0 && s.as_bytes()[k - 1].is_ascii_digit() {
            let tail = &s[k..];
            if CURRENCY.contains(&tail) || UNITS.contains(&tail) {
                best = best.min(k);
            }
        }
    }
    n - best
}

/// ASCII characters an infix can start with.
const INFIX_START: u128 = ascii_mask(b".+-*^,~:<>=/");

/// The infix alternative matching at byte `p` of `s` (after `before`, the previous character
/// in `s`), as a byte length.
fn infix_at(s: &str, p: usize, before: Option<char>) -> Option<usize> {
    let rest = &s[p..];
    let c = rest.chars().next()?;
    if c.is_ascii() && !in_mask(INFIX_START, c) {
        return None;
    }
    let next = rest[c.len_utf8()..].chars().next();
    if c == '.' && dot_run(rest) >= 2 {
        return Some(dot_run(rest));
    }
    if c == '\u{2026}' || is_icon(c) {
        return Some(c.len_utf8());
    }
    let b = before?;
    if b.is_ascii_digit()
        && matches!(c, '+' | '-' | '*' | '^')
        && next.is_some_and(|d| d.is_ascii_digit() || d == '-')
    {
        return Some(1);
    }
    if c == '.'
        && (is_alpha_lower(b) || is_quote(b))
        && next.is_some_and(|d| is_alpha_upper(d) || is_quote(d))
    {
        return Some(1);
    }
    if c == ',' && is_alpha(b) && next.is_some_and(is_alpha) {
        return Some(1);
    }
    if is_alpha(b) || b.is_ascii_digit() {
        for h in HYPHENS {
            if rest.starts_with(h) && rest[h.len()..].starts_with(is_alpha) {
                return Some(h.len());
            }
        }
        if matches!(c, ':' | '<' | '>' | '=' | '/') && next.is_some_and(is_alpha) {
            return Some(1);
        }
    }
    None
}

/// Byte ranges of the infixes in `s`, as spaCy's `infix_finditer` returns them.
pub(crate) fn find_infixes(s: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut p = 0;
    let mut before = None;
    while let Some(c) = s[p..].chars().next() {
        if let Some(len) = infix_at(s, p, before) {
            out.push((p, p + len));
            before = s[..p + len].chars().next_back();
            p += len;
        } else {
            before = Some(c);
            p += c.len_utf8();
        }
    }
    out
}

/// Whether `s` has any infix (cheaper than [`find_infixes`] when only that is needed).
pub(crate) fn has_infix(s: &str) -> bool {
    let mut before = None;
    for (p, c) in s.char_indices() {
        if infix_at(s, p, before).is_some() {
            return true;
        }
        before = Some(c);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(find_prefix("(hello"), 1);
        assert_eq!(find_prefix("\"x"), 1);
        assert_eq!(find_prefix("$5"), 1);
        assert_eq!(find_prefix("US$5"), 3);
        assert_eq!(find_prefix("...x"), 3);
        assert_eq!(find_prefix(".x"), 0);
        assert_eq!(find_prefix("+1"), 0);
        assert_eq!(find_prefix("+a"), 1);
        assert_eq!(find_prefix("-42"), 0);
        assert_eq!(find_prefix("\u{2026}\u{2026}"), 3);
        assert_eq!(find_prefix("😀x"), 4);
        assert_eq!(find_prefix("hello"), 0);
    }

    #[test]
    fn suffixes() {
        assert_eq!(find_suffix("hello!"), 1);
        assert_eq!(find_suffix("hello..."), 3);
        assert_eq!(find_suffix("hello."), 1);
        assert_eq!(find_suffix("U.S."), 0);
        assert_eq!(find_suffix("USA."), 1);
        assert_eq!(find_suffix("x.Y."), 0);
        assert_eq!(find_suffix("it's"), 2);
        assert_eq!(find_suffix("50%"), 1);
        assert_eq!(find_suffix("5km"), 2);
        assert_eq!(find_suffix("5kmh"), 3);
        assert_eq!(find_suffix("a%"), 0);
        assert_eq!(find_suffix("10US$"), 3);
        assert_eq!(find_suffix("3+"), 1);
        assert_eq!(find_suffix("a\u{2026}\u{2026}"), 6);
        assert_eq!(find_suffix("e.g"), 0);
        assert_eq!(find_suffix(""), 0);
    }

    #[test]
    fn infixes() {
        assert_eq!(find_infixes("feel-good"), [(4, 5)]);
        assert_eq!(find_infixes("a--b"), [(1, 3)]);
        assert_eq!(find_infixes("1-2"), [(1, 2)]);
        assert_eq!(find_infixes("1e-5"), []);
        assert_eq!(find_infixes("a,b"), [(1, 2)]);
        assert_eq!(find_infixes("end.The"), [(3, 4)]);
        assert_eq!(find_infixes("a...b"), [(1, 4)]);
        assert_eq!(find_infixes("http:/"), []);
        assert_eq!(find_infixes("a:b=c"), [(1, 2), (3, 4)]);
        assert!(has_infix("x\u{2026}") && !has_infix("plain"));
    }
}
