//! A pure-Rust port of the tokenizer of spaCy 3.8's `spacy.blank("en")`, the base tokenizer of
//! fastai's `SpacyTokenizer` (spec §5.2).
//!
//! The algorithm is spaCy's `Tokenizer.__call__`:
//! 1. split the text into runs of non-space and of space characters (Python `str.isspace`);
//!    a single space after a token is absorbed as that token's trailing whitespace, any other
//!    whitespace run (`\n`, two spaces, ...) becomes a token of its own;
//! 2. each run is looked up in the special cases (tokenizer exceptions such as `don't` → `do n't`,
//!    plus the special tokens a user registers); otherwise prefixes and suffixes are stripped
//!    repeatedly (stopping early when what is left is a special case), and what remains is a
//!    special case, a URL / e-mail address, or is split at its infixes;
//! 3. finally special cases that contain punctuation are re-applied across token boundaries
//!    (spaCy's `PhraseMatcher` pass over the token sequence).
//!
//! Tokens are returned as slices of the input; nothing is allocated per character.

mod affixes;
mod char_tables;
mod exceptions;
mod url;

use std::sync::OnceLock;

use super::fxhash::FxHashMap;
use super::pyunicode::is_space;
use affixes::{find_infixes, find_prefix, find_suffix, has_infix};

/// A token sequence (the affix tokenisation of a special case).
type Pattern = Box<[Box<str>]>;

/// A token as a byte range of the text, with spaCy's "followed by one space" flag.
#[derive(Debug, Clone, Copy)]
struct Tok {
    start: usize,
    end: usize,
    space: bool,
}

/// spaCy's blank-English tokenizer with optional extra special cases.
#[derive(Debug, Clone)]
pub struct SpacyTokenizer {
    /// Special case string → byte lengths of its pieces.
    specials: FxHashMap<Box<str>, Box<[usize]>>,
    /// Special cases with affixes, re-applied across tokens: first token → token sequences.
    patterns: FxHashMap<Box<str>, Vec<Pattern>>,
    /// Byte length of the longest special case (longer strings skip the table).
    max_special: usize,
}

impl Default for SpacyTokenizer {
    fn default() -> Self {
        Self::english()
    }
}

impl SpacyTokenizer {
    /// The tokenizer of `spacy.blank("en")` (English tokenizer exceptions, no extra special cases).
    pub fn english() -> Self {
        static BASE: OnceLock<SpacyTokenizer> = OnceLock::new();
        BASE.get_or_init(|| {
            let mut tok = SpacyTokenizer {
                specials: FxHashMap::default(),
                patterns: FxHashMap::default(),
                max_special: 0,
            };
            let table = exceptions::english_exceptions();
            for (string, pieces) in &table {
                let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
                tok.insert_special(string, &pieces);
            }
            for (string, _) in &table {
                tok.add_pattern(string);
            }
            tok
        })
        .clone()
    }

    /// Registers `token` as a special case kept whole (fastai registers each of its special
    /// tokens this way, `nlp.tokenizer.add_special_case(w, [{ORTH: w}])`).
    pub fn add_special_token(&mut self, token: &str) {
        self.add_special_case(token, &[token]);
    }

    /// Registers a special case: `string` is split into `pieces`. Returns `false` (and changes
    /// nothing) when the pieces do not concatenate to `string` or `string` is empty, which spaCy
    /// rejects too.
    pub fn add_special_case(&mut self, string: &str, pieces: &[&str]) -> bool {
        if string.is_empty() || pieces.concat() != string || pieces.iter().any(|p| p.is_empty()) {
            return false;
        }
        self.insert_special(string, pieces);
        self.add_pattern(string);
        true
    }

    fn insert_special(&mut self, string: &str, pieces: &[&str]) {
        let lens: Box<[usize]> = pieces.iter().map(|p| p.len()).collect();
        self.specials.insert(string.into(), lens);
        self.max_special = self.max_special.max(string.len());
    }

    /// spaCy adds a special case to its matcher when it contains a prefix, infix, suffix or space
    /// ("faster heuristics"), as the token sequence the affix rules alone would give.
    fn add_pattern(&mut self, string: &str) {
        let affixed = find_prefix(string) > 0
            || find_suffix(string) > 0
            || has_infix(string)
            || string.contains(' ');
        if !affixed {
            return;
        }
        let mut toks = Vec::new();
        self.tokenize_affixes(string, false, &mut toks);
        let seq: Pattern = toks.iter().map(|t| string[t.start..t.end].into()).collect();
        let Some(first) = seq.first().cloned() else {
            return;
        };
        let list = self.patterns.entry(first).or_default();
        if !list.contains(&seq) {
            list.push(seq);
        }
    }

    /// Splits `text` into tokens exactly as spaCy does.
    pub fn tokenize<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let mut toks = Vec::with_capacity(text.len() / 4 + 1);
        self.tokenize_affixes(text, true, &mut toks);
        let toks = self.apply_special_patterns(text, toks);
        toks.iter().map(|t| &text[t.start..t.end]).collect()
    }

    /// spaCy's `_tokenize_affixes`: the whitespace loop.
    fn tokenize_affixes(&self, text: &str, specials: bool, out: &mut Vec<Tok>) {
        let Some(first) = text.chars().next() else {
            return;
        };
        let mut in_ws = is_space(first);
        let mut start = 0;
        for (i, c) in text.char_indices() {
            if is_space(c) != in_ws {
                if start < i {
                    self.tokenize_span(text, start, i, specials, out);
                }
                if c == ' ' {
                    if let Some(last) = out.last_mut() {
                        last.space = true;
                    }
                    start = i + 1;
                } else {
                    start = i;
                }
                in_ws = !in_ws;
            }
        }
        if start < text.len() {
            self.tokenize_span(text, start, text.len(), specials, out);
            if let Some(last) = out.last_mut() {
                last.space = text.ends_with(' ') && !in_ws;
            }
        }
    }

    fn special(&self, s: &str, specials: bool) -> Option<&[usize]> {
        if specials && s.len() <= self.max_special {
            self.specials.get(s).map(|b| &**b)
        } else {
            None
        }
    }

    fn push_pieces(out: &mut Vec<Tok>, start: usize, lens: &[usize]) {
        let mut p = start;
        for &len in lens {
            out.push(Tok {
                start: p,
                end: p + len,
                space: false,
            });
            p += len;
        }
    }

    /// spaCy's `_tokenize` for one whitespace-free (or whitespace-only) span `text[a..b]`.
    fn tokenize_span(&self, text: &str, a: usize, b: usize, specials: bool, out: &mut Vec<Tok>) {
        if let Some(lens) = self.special(&text[a..b], specials) {
            Self::push_pieces(out, a, lens);
            return;
        }
        // `_split_affixes`: peel prefixes and suffixes off [a, b).
        let (mut a, mut b) = (a, b);
        let mut prefixes: Vec<(usize, usize)> = Vec::new();
        let mut suffixes: Vec<(usize, usize)> = Vec::new();
        let mut last_size = 0;
        while a < b && b - a != last_size {
            let s = &text[a..b];
            if self.special(s, specials).is_some() {
                break;
            }
            last_size = s.len();
            let pre = find_prefix(s);
            if pre > 0 && pre < s.len() && self.special(&s[pre..], specials).is_some() {
                prefixes.push((a, a + pre));
                a += pre;
                break;
            }
            let suf = find_suffix(&s[pre..]);
            if suf > 0 && suf < s.len() && self.special(&s[..s.len() - suf], specials).is_some() {
                suffixes.push((b - suf, b));
                b -= suf;
                break;
            }
            if pre > 0 {
                prefixes.push((a, a + pre));
                a += pre;
            }
            if suf > 0 {
                suffixes.push((b - suf, b));
                b -= suf;
            }
        }
        // `_attach_tokens`.
        for &(s, e) in &prefixes {
            out.push(Tok {
                start: s,
                end: e,
                space: false,
            });
        }
        if a < b {
            let s = &text[a..b];
            if let Some(lens) = self.special(s, specials) {
                Self::push_pieces(out, a, lens);
            } else if url::url_match(s) {
                out.push(Tok {
                    start: a,
                    end: b,
                    space: false,
                });
            } else {
                let mut start = 0;
                for (is, ie) in find_infixes(s) {
                    if is == 0 {
                        continue;
                    }
                    if is != start {
                        out.push(Tok {
                            start: a + start,
                            end: a + is,
                            space: false,
                        });
                    }
                    out.push(Tok {
                        start: a + is,
                        end: a + ie,
                        space: false,
                    });
                    start = ie;
                }
                if start < s.len() {
                    out.push(Tok {
                        start: a + start,
                        end: b,
                        space: false,
                    });
                }
            }
        }
        for &(s, e) in suffixes.iter().rev() {
            out.push(Tok {
                start: s,
                end: e,
                space: false,
            });
        }
    }

    /// spaCy's `_apply_special_cases`: find every occurrence of a special case's affix
    /// tokenisation in the token sequence, keep the longest (then leftmost) non-clashing ones and
    /// re-split their text as the special case says.
    fn apply_special_patterns(&self, text: &str, toks: Vec<Tok>) -> Vec<Tok> {
        let tok_text = |t: &Tok| &text[t.start..t.end];
        let mut matches: Vec<(usize, usize)> = Vec::new();
        for (i, t) in toks.iter().enumerate() {
            let Some(seqs) = self.patterns.get(tok_text(t)) else {
                continue;
            };
            for seq in seqs {
                let end = i + seq.len();
                if end <= toks.len()
                    && toks[i..end]
                        .iter()
                        .zip(seq.iter())
                        .all(|(t, p)| tok_text(t) == &**p)
                {
                    matches.push((i, end));
                }
            }
        }
        if matches.is_empty() {
            return toks;
        }
        // Longest first, then leftmost; a span is kept when neither its first nor its last token
        // was covered by an earlier span (every span marks its tokens, kept or not).
        matches.sort_by(|x, y| (y.1 - y.0).cmp(&(x.1 - x.0)).then(x.0.cmp(&y.0)));
        let mut seen = vec![false; toks.len()];
        let mut kept = Vec::new();
        for (s, e) in matches {
            if !seen[s] && !seen[e - 1] {
                kept.push((s, e));
            }
            seen[s..e].iter_mut().for_each(|x| *x = true);
        }
        kept.sort_unstable();
        let mut out = Vec::with_capacity(toks.len());
        let mut i = 0;
        for (s, e) in kept {
            out.extend_from_slice(&toks[i..s]);
            let (start, end) = (toks[s].start, toks[e - 1].end);
            match self.specials.get(&text[start..end]) {
                Some(lens) => {
                    Self::push_pieces(&mut out, start, lens);
                    if let Some(last) = out.last_mut() {
                        last.space = toks[e - 1].space;
                    }
                }
                None => out.extend_from_slice(&toks[s..e]),
            }
            i = e;
        }
        out.extend_from_slice(&toks[i..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::SpacyTokenizer;

    fn tok(s: &str) -> Vec<String> {
        SpacyTokenizer::english()
            .tokenize(s)
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn spec_examples() {
        assert_eq!(
            tok("i don't know... it's great, isn't it?"),
            [
                "i", "do", "n't", "know", "...", "it", "'s", "great", ",", "is", "n't", "it", "?"
            ]
        );
        assert_eq!(
            tok("foo@bar.com or http://fast.ai/page 3.14 $5 u.s.a. e.g. can't"),
            [
                "foo@bar.com",
                "or",
                "http://fast.ai/page",
                "3.14",
                "$",
                "5",
                "u.s.a",
                ".",
                "e.g.",
                "ca",
                "n't"
            ]
        );
        assert_eq!(
            tok("multiple spaces\tand  tabs\nnewline"),
            [
                "multiple", "spaces", "\t", "and", " ", "tabs", "\n", "newline"
            ]
        );
        assert_eq!(
            tok("feel-good (really?) \"wow\""),
            [
                "feel", "-", "good", "(", "really", "?", ")", "\"", "wow", "\""
            ]
        );
    }

    #[test]
    fn edge_cases() {
        assert!(tok("").is_empty());
        assert_eq!(tok(" "), [" "]);
        assert_eq!(tok("a "), ["a"]);
        assert_eq!(tok("  a"), ["  ", "a"]);
        assert_eq!(tok("a  b"), ["a", " ", "b"]);
        assert_eq!(tok("gonna y'all"), ["gon", "na", "y'", "all"]);
        assert_eq!(tok("(e.g.)"), ["(", "e.g.", ")"]);
    }

    #[test]
    fn special_tokens_are_never_split() {
        let mut t = SpacyTokenizer::english();
        assert!(t.add_special_case("<eos>", &["<eos>"]));
        assert!(!t.add_special_case("ab", &["a"]));
        t.add_special_token("xxbos");
        assert_eq!(
            t.tokenize("xxbos (<eos>) <eos>"),
            ["xxbos", "(", "<eos>", ")", "<eos>"]
        );
    }
}
