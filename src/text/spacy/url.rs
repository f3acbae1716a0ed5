//! spaCy's `URL_MATCH` (`spacy/lang/tokenizer_exceptions.py`): a string that is entirely a URL,
//! domain name, e-mail address or public IPv4 address stays one token.
//!
//! The Python pattern is, in outline (anchored at both ends):
//! optional scheme `[\w+\-.]{2,}://`; optional user info `\S+(?::\S*)?@`; then either a dotted
//! IPv4 address that is not private/loop-back (three negative look-aheads) or one or more
//! labels `[A-Za-z0-9\u00a1-\uffff]([A-Za-z0-9\u00a1-\uffff_-]{0,62}[A-Za-z0-9\u00a1-\uffff])?\.`
//! followed by a top-level domain of 2..=63 `ALPHA_LOWER` letters; then an optional port
//! `:\d{2,5}` and an optional resource path `[/?#]\S*`. Here every way the regex could split the
//! string is tried, which gives the same yes/no answer as Python's backtracking.

use super::char_tables::ALPHA_LOWER;
use crate::text::pyunicode::{in_ranges, is_decimal, is_space, is_word};

/// `[A-Za-z0-9\u00a1-\uffff]`: characters allowed at both ends of a domain label.
fn is_label_end(c: char) -> bool {
    c.is_ascii_alphanumeric() || ('\u{a1}'..='\u{ffff}').contains(&c)
}

/// `[A-Za-z0-9\u00a1-\uffff_-]`: characters allowed inside a domain label.
fn is_label_mid(c: char) -> bool {
    is_label_end(c) || c == '_' || c == '-'
}

fn is_tld_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_lowercase()
    } else {
        in_ranges(ALPHA_LOWER, c)
    }
}

fn count_while(s: &str, pred: impl Fn(char) -> bool) -> (usize, usize) {
    let mut chars = 0;
    let mut bytes = 0;
    for c in s.chars() {
        if !pred(c) {
            break;
        }
        chars += 1;
        bytes += c.len_utf8();
    }
    (chars, bytes)
}

/// `(?::\d{2,5})?(?:[/?#]\S*)?$` on what follows the host.
fn tail_ok(t: &str) -> bool {
    let path_ok =
        |t: &str| t.is_empty() || (t.starts_with(['/', '?', '#']) && !t[1..].contains(is_space));
    match t.strip_prefix(':') {
        Some(rest) => {
            let (n, b) = count_while(rest, is_decimal);
            (2..=5).contains(&n) && path_ok(&rest[b..])
        }
        None => path_ok(t),
    }
}

/// Whether `n` groups of `\.\d{1,3}` can follow at the start of `s` (a look-ahead: the rest
/// of the string does not matter).
fn dotted_groups(s: &str, n: usize) -> bool {
    if n == 0 {
        return true;
    }
    let Some(rest) = s.strip_prefix('.') else {
        return false;
    };
    let mut end = 0;
    for c in rest.chars().take(3) {
        if !is_decimal(c) {
            break;
        }
        end += c.len_utf8();
        if dotted_groups(&rest[end..], n - 1) {
            return true;
        }
    }
    false
}

/// The three negative look-aheads that exclude private and loop-back IPv4 ranges.
fn private_ip(s: &str) -> bool {
    let after = |p: &str| s.strip_prefix(p);
    ["10", "127"]
        .iter()
        .any(|p| after(p).is_some_and(|r| dotted_groups(r, 3)))
        || ["169.254", "192.168"]
            .iter()
            .any(|p| after(p).is_some_and(|r| dotted_groups(r, 2)))
        || after("172.").is_some_and(|r| {
            let mut c = r.chars();
            let second = match (c.next(), c.next()) {
                (Some('1'), Some(d)) => ('6'..='9').contains(&d),
                (Some('2'), Some(d)) => is_decimal(d),
                (Some('3'), Some(d)) => d == '0' || d == '1',
                _ => false,
            };
            let skip = r.chars().take(2).map(char::len_utf8).sum::<usize>();
            second && dotted_groups(&r[skip..], 2)
        })
}

/// Byte ends of the ways one IPv4 octet alternative list can match at the start of `s`.
/// `kind`: 0 = first octet, 1 = middle octets, 2 = last octet.
fn octet_ends(s: &str, kind: u8) -> Vec<usize> {
    let cs: Vec<char> = s.chars().take(3).collect();
    let at = |i: usize| cs.get(i).copied();
    let d = |i: usize| at(i).is_some_and(is_decimal);
    let one_to_nine = at(0).is_some_and(|c| ('1'..='9').contains(&c));
    let bytes = |k: usize| cs.iter().take(k).map(|c| c.len_utf8()).sum::<usize>();
    let mut ends = Vec::new();
    let mut add = |ok: bool, k: usize| {
        if ok {
            ends.push(bytes(k));
        }
    };
    let first_is = |c: char| at(0) == Some(c);
    let second_in = |lo: char, hi: char| at(1).is_some_and(|c| (lo..=hi).contains(&c));
    match kind {
        0 | 2 => {
            add(one_to_nine, 1);
            add(one_to_nine && d(1), 2);
            add(first_is('1') && d(1) && d(2), 3);
            if kind == 0 {
                add(first_is('2') && second_in('0', '1') && d(2), 3);
                let third_in = |lo: char, hi: char| at(2).is_some_and(|c| (lo..=hi).contains(&c));
                add(first_is('2') && at(1) == Some('2') && third_in('0', '3'), 3);
            } else {
                add(first_is('2') && second_in('0', '4') && d(2), 3);
                add(
                    first_is('2')
                        && at(1) == Some('5')
                        && at(2).is_some_and(|c| ('0'..='4').contains(&c)),
                    3,
                );
            }
        }
        _ => {
            // `1?\d{1,2}`
            if first_is('1') {
                add(d(1), 2);
                add(d(1) && d(2), 3);
            }
            add(d(0), 1);
            add(d(0) && d(1), 2);
            add(first_is('2') && second_in('0', '4') && d(2), 3);
            add(
                first_is('2')
                    && at(1) == Some('5')
                    && at(2).is_some_and(|c| ('0'..='5').contains(&c)),
                3,
            );
        }
    }
    ends
}

fn ipv4_then_tail(s: &str) -> bool {
    fn rest(s: &str, octet: u8) -> bool {
        let kind = match octet {
            0 => 0,
            3 => 2,
            _ => 1,
        };
        octet_ends(s, kind).into_iter().any(|e| {
            if octet == 3 {
                tail_ok(&s[e..])
            } else {
                s[e..].strip_prefix('.').is_some_and(|r| rest(r, octet + 1))
            }
        })
    }
    !private_ip(s) && rest(s, 0)
}

fn label_ok(label: &str) -> bool {
    let n = label.chars().count();
    let mut chars = label.chars();
    match (chars.next(), chars.next_back()) {
        (Some(a), None) => is_label_end(a),
        (Some(a), Some(z)) => {
            n <= 64 && is_label_end(a) && is_label_end(z) && chars.all(is_label_mid)
        }
        _ => false,
    }
}

fn domain_then_tail(s: &str) -> bool {
    let mut pos = 0;
    while let Some(dot) = s[pos..].find('.') {
        if !label_ok(&s[pos..pos + dot]) {
            return false;
        }
        let tld_start = pos + dot + 1;
        let (n, b) = count_while(&s[tld_start..], is_tld_char);
        if (2..=63).contains(&n) && tail_ok(&s[tld_start + b..]) {
            return true;
        }
        pos = tld_start;
    }
    false
}

/// Whether spaCy's `URL_MATCH` matches the whole of `s`.
pub(crate) fn url_match(s: &str) -> bool {
    if !s.contains('.') {
        return false;
    }
    let mut starts = vec![0];
    if let Some(colon) = s.find(':') {
        let scheme = &s[..colon];
        if s[colon..].starts_with("://")
            && scheme.chars().nth(1).is_some()
            && scheme
                .chars()
                .all(|c| is_word(c) || matches!(c, '+' | '-' | '.'))
        {
            starts.push(colon + 3);
        }
    }
    starts.into_iter().any(|a| {
        let rest = &s[a..];
        let mut hosts = vec![0];
        // `\S+@`: any '@' after at least one non-space character.
        for (j, c) in rest.char_indices() {
            if is_space(c) {
                break;
            }
            if c == '@' && j > 0 {
                hosts.push(j + 1);
            }
        }
        hosts
            .into_iter()
            .any(|h| ipv4_then_tail(&rest[h..]) || domain_then_tail(&rest[h..]))
    })
}

#[cfg(test)]
mod tests {
    use super::url_match;

    #[test]
    fn urls_domains_and_emails() {
        for s in [
            "fast.ai",
            "me@x.com",
            "foo@bar.com",
            "http://www.example.com/page?x=1",
            "https://a.bc",
            "www.imdb.com",
            "x.org:8080/path",
            "8.8.8.8",
            "user:pw@host.com",
        ] {
            assert!(url_match(s), "{s} should match");
        }
        for s in [
            "hello",
            "e.g",
            "3.14",
            "a.B",
            "10.0.0.1",
            "192.168.1.1",
            "172.16.0.1",
            "127.0.0.1",
            "http://",
            "https://a.b",
            "a.b",
            "x.com:1",
            "..",
            "a..com",
            "mr.smith's",
        ] {
            assert!(!url_match(s), "{s} should not match");
        }
    }
}
