//! fastai v2's text pre-processing rules (`defaults.text_proc_rules`, spec §5.1) and its
//! post-tokenisation rule `replace_space`.
//!
//! fastai writes these as Python `re` substitutions, some with back-references (`replace_rep`,
//! `replace_wrep`) or look-ahead (`replace_all_caps`, `replace_maj`). Each function here is a
//! hand-written scanner that gives the same output as the Python pattern, including how
//! `re.sub` resumes after a match and how the patterns backtrack; `\s` and `\w` have their
//! Unicode meaning from Python 3 `str` patterns.

use serde::{Deserialize, Serialize};

use super::html;
use super::pyunicode::{is_space, is_word, lower, strip};
use super::special::{BOS, EOS, TK_MAJ, TK_REP, TK_UP, TK_WREP, UNK};

/// One pre-tokenisation rule of fastai v2, applied to the whole text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// [`fix_html`].
    FixHtml,
    /// [`replace_rep`].
    ReplaceRep,
    /// [`replace_wrep`].
    ReplaceWrep,
    /// [`spec_add_spaces`].
    SpecAddSpaces,
    /// [`rm_useless_spaces`].
    RmUselessSpaces,
    /// [`replace_all_caps`].
    ReplaceAllCaps,
    /// [`replace_maj`].
    ReplaceMaj,
    /// [`lowercase`], with the `add_bos` / `add_eos` flags of the tokenizer configuration.
    Lowercase,
}

impl Rule {
    /// fastai v2 `defaults.text_proc_rules`, in order.
    pub const DEFAULTS: [Rule; 8] = [
        Rule::FixHtml,
        Rule::ReplaceRep,
        Rule::ReplaceWrep,
        Rule::SpecAddSpaces,
        Rule::RmUselessSpaces,
        Rule::ReplaceAllCaps,
        Rule::ReplaceMaj,
        Rule::Lowercase,
    ];

    /// Applies the rule; `add_bos` / `add_eos` are only used by [`Rule::Lowercase`].
    pub fn apply(self, text: &str, add_bos: bool, add_eos: bool) -> String {
        match self {
            Rule::FixHtml => fix_html(text),
            Rule::ReplaceRep => replace_rep(text),
            Rule::ReplaceWrep => replace_wrep(text),
            Rule::SpecAddSpaces => spec_add_spaces(text),
            Rule::RmUselessSpaces => rm_useless_spaces(text),
            Rule::ReplaceAllCaps => replace_all_caps(text),
            Rule::ReplaceMaj => replace_maj(text),
            Rule::Lowercase => lowercase(text, add_bos, add_eos),
        }
    }
}

/// One rule applied to each token after the base tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostRule {
    /// [`replace_space`].
    ReplaceSpace,
}

impl PostRule {
    /// Applies the rule to one token (returned unchanged, without copying, when untouched).
    pub fn apply(self, token: String) -> String {
        match self {
            PostRule::ReplaceSpace if token.contains(' ') => replace_space(&token),
            PostRule::ReplaceSpace => token,
        }
    }
}

/// The literal replacements `fix_html` makes, in order, before HTML unescaping.
const HTML_FIXES: [(&str, &str); 13] = [
    ("#39;", "'"),
    ("amp;", "&"),
    ("#146;", "'"),
    ("nbsp;", " "),
    ("#36;", "$"),
    ("\\n", "\n"),
    ("quot;", "'"),
    ("<br />", "\n"),
    ("\\\"", "\""),
    ("<unk>", UNK),
    (" @.@ ", "."),
    (" @-@ ", "-"),
    ("...", " \u{2026}"),
];

/// `fix_html`: fastai's fixed substring replacements (`#39;` → `'`, `amp;` → `&`, `<br />` →
/// newline, `...` → ` …`, ...), each over the whole text in turn, then Python's
/// `html.unescape`. Because only entity tails are replaced, `&amp;` becomes `&&`.
pub fn fix_html(text: &str) -> String {
    let mut s = text.to_string();
    for (from, to) in HTML_FIXES {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    html::unescape(&s)
}

fn push_count(out: &mut String, n: usize) {
    out.push_str(&n.to_string());
}

/// `replace_rep`: a non-space character repeated 3 or more times (`(\S)(\1{2,})`) becomes
/// ` xxrep n c ` (`sooooo` → `s xxrep 5 o `).
pub fn replace_rep(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut copied = 0;
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        let w = c.len_utf8();
        let mut j = i + w;
        let mut n = 1;
        while text[j..].starts_with(c) {
            j += w;
            n += 1;
        }
        if n >= 3 && !is_space(c) {
            out.push_str(&text[copied..i]);
            out.push(' ');
            out.push_str(TK_REP);
            out.push(' ');
            push_count(&mut out, n);
            out.push(' ');
            out.push(c);
            out.push(' ');
            copied = j;
        }
        i = j;
    }
    out.push_str(&text[copied..]);
    out
}

fn run_len(s: &str, pred: impl Fn(char) -> bool) -> usize {
    s.char_indices()
        .find(|&(_, c)| !pred(c))
        .map_or(s.len(), |(i, _)| i)
}

/// One match of `(?:\s|^)(\w+)\s+((?:\1\s+)+)\1(\s|\W|$)` starting at `p`:
/// `(end, word, count, trailing char)`.
fn wrep_at(t: &str, p: usize) -> Option<(usize, &str, usize, &str)> {
    let q = match t[p..].chars().next() {
        Some(c) if is_space(c) => p + c.len_utf8(),
        _ if p == 0 => 0,
        _ => return None,
    };
    let w_end = q + run_len(&t[q..], is_word);
    if w_end == q {
        return None;
    }
    let w = &t[q..w_end];
    let mut pos = w_end + run_len(&t[w_end..], is_space);
    if pos == w_end {
        return None;
    }
    // Greedy repetitions of `word + whitespace`.
    let mut reps = 0;
    let mut last_rep = pos;
    while t[pos..].starts_with(w) {
        let after = pos + w.len();
        let ws = run_len(&t[after..], is_space);
        if ws == 0 {
            break;
        }
        reps += 1;
        last_rep = pos;
        pos = after + ws;
    }
    if reps == 0 {
        return None;
    }
    // The final word after all repetitions, followed by a non-word character or the end.
    if t[pos..].starts_with(w) {
        let after = pos + w.len();
        match t[after..].chars().next() {
            None => return Some((after, w, reps + 2, "")),
            Some(c) if !is_word(c) => {
                let end = after + c.len_utf8();
                return Some((end, w, reps + 2, &t[after..end]));
            }
            Some(_) => {}
        }
    }
    // Backtrack one repetition: its word becomes the final one, its whitespace the trailer.
    if reps >= 2 {
        let after = last_rep + w.len();
        let c = t[after..].chars().next()?;
        let end = after + c.len_utf8();
        return Some((end, w, reps + 1, &t[after..end]));
    }
    None
}

/// `replace_wrep`: a word repeated 3 or more times, separated by whitespace, becomes
/// ` xxwrep n w ` followed by the character after the last repetition (Python pattern
/// `(?:\s|^)(\w+)\s+((?:\1\s+)+)\1(\s|\W|$)`; case-sensitive: `The the the the` →
/// `The xxwrep 3 the `).
pub fn replace_wrep(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut copied = 0;
    let mut p = 0;
    loop {
        if let Some((end, w, n, e)) = wrep_at(text, p) {
            out.push_str(&text[copied..p]);
            out.push(' ');
            out.push_str(TK_WREP);
            out.push(' ');
            push_count(&mut out, n);
            out.push(' ');
            out.push_str(w);
            out.push(' ');
            out.push_str(e);
            copied = end;
            p = end;
            continue;
        }
        // Next candidate: the next whitespace character after `p`.
        let step = text[p..].chars().next().map_or(0, char::len_utf8);
        if step == 0 {
            break;
        }
        match text[p + step..].find(is_space) {
            Some(k) => p = p + step + k,
            None => break,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// `spec_add_spaces`: surrounds every `/`, `#` and `\` with spaces.
pub fn spec_add_spaces(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if matches!(c, '/' | '#' | '\\') {
            out.push(' ');
            out.push(c);
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// `rm_useless_spaces`: collapses runs of two or more space characters (U+0020 only) to one.
pub fn rm_useless_spaces(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut prev_space = false;
    for c in text.chars() {
        if c == ' ' {
            if !prev_space {
                out.push(' ');
            }
            prev_space = true;
        } else {
            out.push(c);
            prev_space = false;
        }
    }
    out
}

/// Shared scanner of `(\s|^)(<first><rest>*)(?=(\s|$))`: every whitespace-delimited chunk
/// whose first character satisfies `first` and whose other characters satisfy `rest` is
/// lower-cased, with `marker + ' '` in front when it is longer than one character.
fn replace_chunks(
    text: &str,
    first: impl Fn(char) -> bool,
    rest: impl Fn(char) -> bool,
    marker: &str,
) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut copied = 0;
    // Candidate chunk starts: 0, and right after each whitespace character.
    let starts = std::iter::once(0).chain(
        text.char_indices()
            .filter(|&(_, c)| is_space(c))
            .map(|(i, c)| i + c.len_utf8()),
    );
    for q in starts {
        let Some(c0) = text[q..].chars().next() else {
            continue;
        };
        if !first(c0) {
            continue;
        }
        let body = &text[q + c0.len_utf8()..];
        let len = run_len(body, |c| !is_space(c));
        if !body[..len].chars().all(&rest) {
            continue;
        }
        let end = q + c0.len_utf8() + len;
        let chunk = &text[q..end];
        out.push_str(&text[copied..q]);
        if chunk.chars().nth(1).is_some() {
            out.push_str(marker);
            out.push(' ');
        }
        out.push_str(&lower(chunk));
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// `replace_all_caps`: every whitespace-delimited chunk that starts with `A-Z` and holds no
/// `a-z` (`(\s|^)([A-Z]+[^a-z\s]*)(?=(\s|$))`) is lower-cased, with `xxup ` in front when longer
/// than one character (`GREAT,` → `xxup great,`; `I` → `i`).
pub fn replace_all_caps(text: &str) -> String {
    replace_chunks(
        text,
        |c| c.is_ascii_uppercase(),
        |c| !c.is_ascii_lowercase(),
        TK_UP,
    )
}

/// `replace_maj`: every whitespace-delimited chunk of one `A-Z` followed by no `A-Z`
/// (`(\s|^)([A-Z][^A-Z\s]*)(?=(\s|$))`) is lower-cased, with `xxmaj ` in front when longer than
/// one character (`It's` → `xxmaj it's`; mixed case like `ULMFiT` is left alone).
pub fn replace_maj(text: &str) -> String {
    replace_chunks(
        text,
        |c| c.is_ascii_uppercase(),
        |c| !c.is_ascii_uppercase(),
        TK_MAJ,
    )
}

/// `lowercase`: lower-cases and strips the text, then prepends `xxbos ` (`add_bos`, fastai's
/// default `True`) and appends ` xxeos` (`add_eos`, default `False`).
pub fn lowercase(text: &str, add_bos: bool, add_eos: bool) -> String {
    let body = lower(text);
    let body = strip(&body);
    let mut out = String::with_capacity(body.len() + 12);
    if add_bos {
        out.push_str(BOS);
        out.push(' ');
    }
    out.push_str(body);
    if add_eos {
        out.push(' ');
        out.push_str(EOS);
    }
    out
}

/// `replace_space` (post rule): every space inside a token becomes `▁` (U+2581), so token lists
/// can be joined and split on spaces.
pub fn replace_space(token: &str) -> String {
    token.replace(' ', "\u{2581}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fix_html_replacements() {
        assert_eq!(fix_html("a<br />b"), "a\nb");
        assert_eq!(fix_html("AT&amp;T &lt;x&gt;"), "AT&&T <x>");
        assert_eq!(fix_html("wait... what"), "wait \u{2026} what");
        assert_eq!(fix_html("<unk> 3 @.@ 5 x @-@ y \\n"), "xxunk 3.5 x-y \n");
        assert_eq!(fix_html("it&#39;s &quot;"), "it&'s &'");
    }

    #[test]
    fn rep_needs_three_non_space() {
        assert_eq!(replace_rep("sooooo good"), "s xxrep 5 o  good");
        assert_eq!(replace_rep("too"), "too");
        assert_eq!(replace_rep("a   b"), "a   b");
        assert_eq!(replace_rep("!!!!"), " xxrep 4 ! ");
        assert_eq!(replace_rep("ééé"), " xxrep 3 é ");
    }

    #[test]
    fn wrep_follows_the_regex() {
        assert_eq!(
            replace_wrep("word word word word end"),
            " xxwrep 4 word  end"
        );
        assert_eq!(
            replace_wrep("The the the the movie"),
            "The xxwrep 3 the  movie"
        );
        assert_eq!(replace_wrep("bad bad bad bad."), " xxwrep 4 bad .");
        assert_eq!(replace_wrep("a a"), "a a");
        assert_eq!(replace_wrep("a a a"), " xxwrep 3 a ");
        // The separator consumed by the first match hides the next run's first word.
        assert_eq!(replace_wrep("a a a b b b"), " xxwrep 3 a  b b b");
        // A longer word with the same prefix is not a repetition.
        assert_eq!(replace_wrep("x the the thex"), "x the the thex");
        // Backtracking: the last whole repetition becomes the final word.
        assert_eq!(replace_wrep("the the the there"), " xxwrep 3 the  there");
        assert_eq!(replace_wrep("go go go gone"), " xxwrep 3 go  gone");
    }

    #[test]
    fn spaces_and_caps() {
        assert_eq!(spec_add_spaces("a/b#c\\d"), "a / b # c \\ d");
        assert_eq!(rm_useless_spaces("a   b \t  c"), "a b \t c");
        assert_eq!(
            replace_all_caps("THIS is GREAT, I OK"),
            "xxup this is xxup great, i xxup ok"
        );
        assert_eq!(replace_all_caps("ULMFiT 3D"), "ULMFiT 3D");
        assert_eq!(
            replace_maj("It's A ULMFiT Thing"),
            "xxmaj it's a ULMFiT xxmaj thing"
        );
        assert_eq!(replace_maj("\nHello"), "\nxxmaj hello");
    }

    #[test]
    fn lowercase_and_space() {
        assert_eq!(lowercase("  Hi \n", true, false), "xxbos hi");
        assert_eq!(lowercase("Hi", false, true), "hi xxeos");
        assert_eq!(replace_space("a b"), "a\u{2581}b");
    }
}
