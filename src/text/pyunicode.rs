//! Character predicates with the meaning Python 3 gives them on `str`.
//!
//! fastai's rules are Python `re` patterns and spaCy splits on `str.isspace()`. In Python 3 `str`
//! patterns `\s`, `\w` and `\d` are Unicode-aware and defined through `str.isspace()`,
//! `str.isalnum()` (plus `_`) and `str.isdecimal()`. Rust's `char::is_whitespace` and
//! `char::is_alphanumeric` use different Unicode properties, so the exact Python sets are kept here.

use super::pyunicode_tables::{DECIMAL, WORD};

/// Binary search of a sorted table of inclusive code point ranges.
pub(crate) fn in_ranges(table: &[(u32, u32)], c: char) -> bool {
    let cp = c as u32;
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Python's `str.isspace()` for one character, i.e. `\s` in a Python `str` pattern.
///
/// This is Unicode `White_Space` plus the four ASCII separators U+001C..U+001F.
#[inline]
pub fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1C}'..=' '
            | '\u{85}'
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

/// `\w` in a Python `str` pattern: `c.isalnum() or c == '_'`.
#[inline]
pub fn is_word(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || c == '_'
    } else {
        in_ranges(WORD, c)
    }
}

/// `\d` in a Python `str` pattern: `c.isdecimal()` (general category `Nd`).
#[inline]
pub fn is_decimal(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_digit()
    } else {
        in_ranges(DECIMAL, c)
    }
}

/// Python's `str.strip()` without arguments (strips [`is_space`] characters).
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Python's `str.lower()`: full Unicode lower-casing (Rust's `str::to_lowercase` implements
/// the same mapping, including the context-dependent final sigma).
pub fn lower(s: &str) -> String {
    if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        s.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_matches_python_isspace() {
        for c in [
            '\t', '\n', '\u{b}', '\u{c}', '\r', '\u{1c}', '\u{1f}', ' ', '\u{85}', '\u{a0}',
        ] {
            assert!(is_space(c), "{c:?} is a Python space");
        }
        for c in ['a', '\u{200b}', '\u{180e}', '_', '\u{1b}'] {
            assert!(!is_space(c), "{c:?} is not a Python space");
        }
        // Every Rust whitespace char is a Python space.
        for cp in 0..0x3001u32 {
            if let Some(c) = char::from_u32(cp).filter(|c| c.is_whitespace()) {
                assert!(is_space(c), "{c:?}");
            }
        }
    }

    #[test]
    fn word_and_decimal_classes() {
        for c in ['a', 'Z', '0', '_', 'é', 'ß', 'ж', '中', '٣', '²', 'Ⅳ'] {
            assert!(is_word(c), "{c:?} is \\w");
        }
        // Combining marks are not alphanumeric in Python.
        for c in ['-', ' ', '\u{301}', '…', '😀', '\''] {
            assert!(!is_word(c), "{c:?} is not \\w");
        }
        assert!(is_decimal('7') && is_decimal('٣') && is_decimal('７'));
        assert!(!is_decimal('²') && !is_decimal('Ⅳ') && !is_decimal('a'));
    }

    #[test]
    fn strip_and_lower() {
        assert_eq!(strip("\u{1c} a b\u{a0}\n"), "a b");
        assert_eq!(lower("ÀB ΣΑΣ"), "àb σας");
        assert_eq!(lower("İ"), "i\u{307}");
    }
}
