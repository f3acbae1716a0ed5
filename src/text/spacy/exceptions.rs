//! The tokenizer exceptions ("special cases") of spaCy 3.8's blank English pipeline: the
//! language-independent base table (`spacy/lang/tokenizer_exceptions.py`) merged with the English
//! table (`spacy/lang/en/tokenizer_exceptions.py`), then every entry containing `'` duplicated
//! with the typographic apostrophe `’` (spaCy's `update_exc` / `expand_exc`).
//!
//! Each entry maps a string to the pieces it is split into; the pieces always concatenate to the
//! string. The table is rebuilt here from the same word lists and loops as spaCy's.

use std::collections::BTreeMap;

/// Emoticons and other symbol sequences kept whole (spaCy's `emoticons` set).
#[rustfmt::skip]
const EMOTICONS: &[&str] = &[
    ":)", ":-)", ":))", ":-))", ":)))", ":-)))", "(:", "(-:", "=)", "(=", ":]", ":-]", "[:", "[-:",
    "[=", "=]", ":o)", "(o:", ":}", ":-}", "8)", "8-)", "(-8", ";)", ";-)", "(;", "(-;", ":(",
    ":-(", ":((", ":-((", ":(((", ":-(((", "):", ")-:", "=(", ">:(", ":')", ":'-)", ":'(", ":'-(",
    ":/", ":-/", "=/", "=|", ":|", ":-|", "]=", "=[", ":1", ":P", ":-P", ":p", ":-p", ":O", ":-O",
    ":o", ":-o", ":0", ":-0", ":()", ">:o", ":*", ":-*", ":3", ":-3", "=3", ":>", ":->", ":X",
    ":-X", ":x", ":-x", ":D", ":-D", ";D", ";-D", "=D", "xD", "XD", "xDD", "XDD", "8D", "8-D",
    "^_^", "^__^", "^___^", ">.<", ">.>", "<.<", "._.", ";_;", "-_-", "-__-", "v.v", "V.V", "v_v",
    "V_V", "o_o", "o_O", "O_o", "O_O", "0_o", "o_0", "0_0", "o.O", "O.o", "O.O", "o.o", "0.0",
    "o.0", "0.o", "@_@", "<3", "<33", "<333", "</3", "(^_^)", "(-_-)", "(._.)", "(>_<)", "(*_*)",
    "(\u{ac}_\u{ac})", "\u{ca0}_\u{ca0}", "\u{ca0}\u{fe35}\u{ca0}", "(\u{ca0}_\u{ca0})",
    "\u{af}\\(\u{30c4})/\u{af}",
    "(\u{256f}\u{b0}\u{25a1}\u{b0}\u{ff09}\u{256f}\u{fe35}\u{253b}\u{2501}\u{253b}", "><(((*>",
];

/// Base entries kept as one token.
#[rustfmt::skip]
const BASE_SINGLE: &[&str] = &[
    " ", "\t", "\\t", "\n", "\\n", "\u{2014}", "\u{a0}", "'", "\\\")", "<space>", "''", "C++",
    "a.", "b.", "c.", "d.", "e.", "f.", "g.", "h.", "i.", "j.", "k.", "l.", "m.", "n.", "o.", "p.",
    "q.", "r.", "s.", "t.", "u.", "v.", "w.", "x.", "y.", "z.", "\u{e4}.", "\u{f6}.", "\u{fc}.",
];

/// English entries kept as one token (abbreviations, elisions, state and month abbreviations).
#[rustfmt::skip]
const EN_SINGLE: &[&str] = &[
    "'S", "'s", "\u{2018}S", "\u{2018}s", "and/or", "w/o", "'re", "'Cause", "'cause", "'cos",
    "'Cos", "'coz", "'Coz", "'cuz", "'Cuz", "'bout", "ma'am", "Ma'am", "o'clock", "O'clock",
    "lovin'", "Lovin'", "lovin", "Lovin", "havin'", "Havin'", "havin", "Havin", "doin'", "Doin'",
    "doin", "Doin", "goin'", "Goin'", "goin", "Goin", "Mt.", "Ak.", "Ala.", "Apr.", "Ariz.", "Ark.",
    "Aug.", "Calif.", "Colo.", "Conn.", "Dec.", "Del.", "Feb.", "Fla.", "Ga.", "Ia.", "Id.", "Ill.",
    "Ind.", "Jan.", "Jul.", "Jun.", "Kan.", "Kans.", "Ky.", "La.", "Mar.", "Mass.", "Mich.",
    "Minn.", "Miss.", "N.C.", "N.D.", "N.H.", "N.J.", "N.M.", "N.Y.", "Neb.", "Nebr.", "Nev.",
    "Nov.", "Oct.", "Okla.", "Ore.", "Pa.", "S.C.", "Sep.", "Sept.", "Tenn.", "Va.", "Wash.",
    "Wis.", "'d", "a.m.", "Adm.", "Bros.", "co.", "Co.", "Corp.", "D.C.", "Dr.", "e.g.", "E.g.",
    "E.G.", "Gen.", "Gov.", "i.e.", "I.e.", "I.E.", "Inc.", "Jr.", "Ltd.", "Md.", "Messrs.", "Mo.",
    "Mont.", "Mr.", "Mrs.", "Ms.", "p.m.", "Ph.D.", "Prof.", "Rep.", "Rev.", "Sen.", "St.", "vs.",
    "v.s.",
];

/// Multi-piece English entries that do not come from a loop.
const EN_OTHER: &[&[&str]] = &[
    &["y'", "all"],
    &["y", "all"],
    &["how", "'d", "'y"],
    &["How", "'d", "'y"],
    &["not", "'ve"],
    &["not", "ve"],
    &["Not", "'ve"],
    &["Not", "ve"],
    &["can", "not"],
    &["Can", "not"],
    &["gon", "na"],
    &["Gon", "na"],
    &["got", "ta"],
    &["Got", "ta"],
    &["let", "'s"],
    &["Let", "'s"],
    &["c'm", "on"],
    &["C'm", "on"],
];

/// Strings the English loops generate but spaCy removes again (real words such as `ill`, `its`).
#[rustfmt::skip]
const EN_EXCLUDE: &[&str] = &[
    "Ill", "ill", "Its", "its", "Hell", "hell", "Shell", "shell", "Shed", "shed", "were", "Were",
    "Well", "well", "Whore", "whore",
];

/// Python's `str.title()` for the ASCII words used here.
fn title(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The word and its title-cased form, as spaCy's `for orth in [w, w.title()]` loops.
fn cased(word: &str) -> [String; 2] {
    [word.to_string(), title(word)]
}

struct Table(BTreeMap<String, Vec<String>>);

impl Table {
    fn add(&mut self, pieces: &[&str]) {
        self.0.insert(
            pieces.concat(),
            pieces.iter().map(|p| p.to_string()).collect(),
        );
    }
}

/// The English table (`_exc` before merging with the base table).
fn english(t: &mut Table) {
    for orth in cased("i") {
        let o = orth.as_str();
        t.add(&[o, "'m"]);
        t.add(&[o, "m"]);
        t.add(&[o, "'m", "a"]);
        t.add(&[o, "m", "a"]);
    }
    for pron in ["i", "you", "he", "she", "it", "we", "they"] {
        for orth in cased(pron) {
            let o = orth.as_str();
            t.add(&[o, "'ll"]);
            t.add(&[o, "ll"]);
            t.add(&[o, "'ll", "'ve"]);
            t.add(&[o, "ll", "ve"]);
            t.add(&[o, "'d"]);
            t.add(&[o, "d"]);
            t.add(&[o, "'d", "'ve"]);
            t.add(&[o, "d", "ve"]);
        }
    }
    for pron in ["i", "you", "we", "they"] {
        for orth in cased(pron) {
            t.add(&[&orth, "'ve"]);
            t.add(&[&orth, "ve"]);
        }
    }
    for pron in ["you", "we", "they"] {
        for orth in cased(pron) {
            t.add(&[&orth, "'re"]);
            t.add(&[&orth, "re"]);
        }
    }
    for pron in ["he", "she", "it"] {
        for orth in cased(pron) {
            t.add(&[&orth, "'s"]);
            t.add(&[&orth, "s"]);
        }
    }
    // W-words etc.: (word, is singular demonstrative, is plural demonstrative).
    let w_words = [
        ("who", false, false),
        ("what", false, false),
        ("when", false, false),
        ("where", false, false),
        ("why", false, false),
        ("how", false, false),
        ("there", false, false),
        ("that", true, false),
        ("this", true, false),
        ("these", false, true),
        ("those", false, true),
    ];
    for (word, sing, plur) in w_words {
        for orth in cased(word) {
            let o = orth.as_str();
            if !plur {
                t.add(&[o, "'s"]);
                t.add(&[o, "s"]);
            }
            t.add(&[o, "'ll"]);
            t.add(&[o, "ll"]);
            t.add(&[o, "'ll", "'ve"]);
            t.add(&[o, "ll", "ve"]);
            if !sing {
                t.add(&[o, "'re"]);
                t.add(&[o, "re"]);
                t.add(&[o, "'ve"]);
                t.add(&[o, "ve"]);
            }
            t.add(&[o, "'d"]);
            t.add(&[o, "d"]);
            t.add(&[o, "'d", "'ve"]);
            t.add(&[o, "d", "ve"]);
        }
    }
    let negatable = [
        "ca", "could", "do", "does", "did", "had", "may", "might", "must", "need", "ought", "sha",
        "should", "wo", "would",
    ];
    for verb in negatable {
        for orth in cased(verb) {
            let o = orth.as_str();
            t.add(&[o, "n't"]);
            t.add(&[o, "nt"]);
            t.add(&[o, "n't", "'ve"]);
            t.add(&[o, "nt", "ve"]);
        }
    }
    for verb in ["could", "might", "must", "should", "would"] {
        for orth in cased(verb) {
            t.add(&[&orth, "'ve"]);
            t.add(&[&orth, "ve"]);
        }
    }
    for verb in ["ai", "are", "is", "was", "were", "have", "has", "dare"] {
        for orth in cased(verb) {
            t.add(&[&orth, "n't"]);
            t.add(&[&orth, "nt"]);
        }
    }
    for word in ["doin", "goin", "nothin", "nuthin", "ol", "somethin"] {
        for orth in cased(word) {
            t.add(&[&orth]);
            t.add(&[&(orth.clone() + "'")]);
        }
    }
    for word in ["em", "ll", "nuff"] {
        t.add(&[word]);
        t.add(&[&format!("'{word}")]);
    }
    for h in 1..=12 {
        let h = h.to_string();
        for period in ["a.m.", "am", "p.m.", "pm"] {
            t.add(&[&h, period]);
        }
    }
    for pieces in EN_OTHER {
        t.add(pieces);
    }
    for s in EN_SINGLE {
        t.add(&[s]);
    }
    for s in EN_EXCLUDE {
        t.0.remove(*s);
    }
}

/// The full special-case table of `spacy.blank("en")`, sorted by string.
pub(crate) fn english_exceptions() -> Vec<(String, Vec<String>)> {
    let mut t = Table(BTreeMap::new());
    for s in BASE_SINGLE.iter().chain(EMOTICONS) {
        t.add(&[s]);
    }
    for u in ["c", "f", "k", "C", "F", "K"] {
        t.add(&["\u{b0}", u, "."]);
    }
    let mut en = Table(BTreeMap::new());
    english(&mut en);
    t.0.extend(en.0);
    // `expand_exc(exc, "'", "’")`: add a typographic-apostrophe copy of every entry with `'`.
    let fancy: Vec<(String, Vec<String>)> =
        t.0.iter()
            .filter(|(k, _)| k.contains('\''))
            .map(|(k, v)| {
                let fix = |s: &String| s.replace('\'', "\u{2019}");
                (fix(k), v.iter().map(fix).collect())
            })
            .collect();
    t.0.extend(fancy);
    t.0.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(table: &'a [(String, Vec<String>)], key: &str) -> Option<&'a [String]> {
        table
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    #[test]
    fn contractions_and_abbreviations() {
        let t = english_exceptions();
        assert_eq!(get(&t, "don't").unwrap(), ["do", "n't"]);
        assert_eq!(get(&t, "can't").unwrap(), ["ca", "n't"]);
        assert_eq!(get(&t, "won\u{2019}t").unwrap(), ["wo", "n\u{2019}t"]);
        assert_eq!(get(&t, "gonna").unwrap(), ["gon", "na"]);
        assert_eq!(get(&t, "i'm").unwrap(), ["i", "'m"]);
        assert_eq!(get(&t, "e.g.").unwrap(), ["e.g."]);
        assert_eq!(get(&t, "12p.m.").unwrap(), ["12", "p.m."]);
        assert_eq!(get(&t, "\u{b0}F.").unwrap(), ["\u{b0}", "F", "."]);
        assert!(get(&t, "its").is_none() && get(&t, "well").is_none() && get(&t, "dr.").is_none());
        // Pieces always concatenate to the key; keys are unique and sorted.
        for (k, v) in &t {
            assert_eq!(&v.concat(), k);
        }
        assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
