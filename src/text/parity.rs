//! Parity checks against the reference outputs recorded from fastai 2.8.12 + spaCy 3.8
//! (`tokenizer_cases.jsonl`, `vocab_cases.json` in the fixtures folder).

use std::fmt;
use std::path::Path;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::counts::TokenCounts;
use super::error::TextError;
use super::tokenizer::{Tokenizer, TokenizerConfig};
use super::vocab::Vocab;

/// One text whose tokens differ from fastai's.
#[derive(Debug, Clone, Serialize)]
pub struct TokenizerMiss {
    /// 1-based line in the fixture file.
    pub line: usize,
    /// The input text.
    pub text: String,
    /// Index of the first differing token.
    pub first_diff: usize,
    /// fastai's token at that index (`None` past the end).
    pub expected: Option<String>,
    /// Our token at that index (`None` past the end).
    pub got: Option<String>,
    /// Number of tokens fastai produced.
    pub expected_len: usize,
    /// Number of tokens we produced.
    pub got_len: usize,
}

/// Result of [`tokenizer_check`].
#[derive(Debug, Clone, Serialize)]
pub struct TokenizerReport {
    /// The fixture file.
    pub file: String,
    /// Number of texts.
    pub cases: usize,
    /// Texts tokenized exactly as fastai did.
    pub exact: usize,
    /// `exact / cases` (1.0 for an empty file).
    pub rate: f64,
    /// The texts that differ.
    pub misses: Vec<TokenizerMiss>,
}

#[derive(Deserialize)]
struct TokenCase {
    text: String,
    tokens: Vec<String>,
}

/// Tokenizes every text of a `tokenizer_cases.jsonl` file (`{"text": ..., "tokens": [...]}` per
/// line) with fastai's default rules and compares with the recorded tokens.
///
/// The recorded tokens come from calling fastai's `Tokenizer(SpacyTokenizer())` on each string,
/// which runs the rules and spaCy but not the post rule `replace_space`, so the check uses
/// [`TokenizerConfig::default`] with `post_rules` emptied.
pub fn tokenizer_check(path: impl AsRef<Path>) -> Result<TokenizerReport, TextError> {
    let path = path.as_ref();
    let content = std::fs::read_to_string(path).map_err(|e| TextError::io(path, e))?;
    let mut cases = Vec::new();
    for (i, line) in content.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let case: TokenCase = serde_json::from_str(line).map_err(|source| TextError::Json {
            path: path.into(),
            line: Some(i + 1),
            source,
        })?;
        cases.push((i + 1, case));
    }
    let tok = Tokenizer::new(TokenizerConfig {
        post_rules: vec![],
        ..Default::default()
    });
    let texts: Vec<&str> = cases.iter().map(|(_, c)| c.text.as_str()).collect();
    let outputs = tok.tokenize_all(&texts);
    let mut misses = Vec::new();
    for ((line, case), got) in cases.iter().zip(&outputs) {
        if *got == case.tokens {
            continue;
        }
        let first_diff = case
            .tokens
            .iter()
            .zip(got)
            .position(|(a, b)| a != b)
            .unwrap_or(case.tokens.len().min(got.len()));
        misses.push(TokenizerMiss {
            line: *line,
            text: case.text.clone(),
            first_diff,
            expected: case.tokens.get(first_diff).cloned(),
            got: got.get(first_diff).cloned(),
            expected_len: case.tokens.len(),
            got_len: got.len(),
        });
    }
    let n = cases.len();
    let exact = n - misses.len();
    Ok(TokenizerReport {
        file: path.display().to_string(),
        cases: n,
        exact,
        rate: if n == 0 { 1.0 } else { exact as f64 / n as f64 },
        misses,
    })
}

/// One `(min_freq, max_vocab)` setting of [`vocab_check`].
#[derive(Debug, Clone, Serialize)]
pub struct VocabCaseReport {
    /// `min_freq` of the setting.
    pub min_freq: u64,
    /// `max_vocab` of the setting.
    pub max_vocab: usize,
    /// Length of fastai's vocabulary.
    pub expected_len: usize,
    /// Length of ours.
    pub got_len: usize,
    /// Whether both token lists are identical.
    pub exact: bool,
    /// First differing id, if any.
    pub first_diff: Option<usize>,
}

/// Result of [`vocab_check`].
#[derive(Debug, Clone, Serialize)]
pub struct VocabReport {
    /// The fixture file.
    pub file: String,
    /// Distinct tokens in the recorded counts.
    pub distinct_tokens: usize,
    /// One entry per setting.
    pub cases: Vec<VocabCaseReport>,
    /// Whether every setting matched exactly.
    pub all_exact: bool,
}

/// Token counts as a JSON object read in document order (Python dicts keep insertion order,
/// which decides ties in `most_common`).
struct OrderedCounts(Vec<(String, u64)>);

impl<'de> Deserialize<'de> for OrderedCounts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedCounts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of token counts")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(entry) = map.next_entry::<String, u64>()? {
                    v.push(entry);
                }
                Ok(OrderedCounts(v))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
struct VocabCase {
    min_freq: u64,
    max_vocab: usize,
    itos: Vec<String>,
}

#[derive(Deserialize)]
struct VocabFile {
    counts: OrderedCounts,
    cases: Vec<VocabCase>,
}

/// Reads a `vocab_cases.json` file (fastai's token counts, in first-seen order, and the
/// vocabularies `make_vocab` built from them) and rebuilds each vocabulary with
/// [`Vocab::build`].
pub fn vocab_check(path: impl AsRef<Path>) -> Result<VocabReport, TextError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| TextError::io(path, e))?;
    let file: VocabFile = serde_json::from_slice(&bytes).map_err(|source| TextError::Json {
        path: path.into(),
        line: None,
        source,
    })?;
    let counts = TokenCounts::from_pairs(file.counts.0);
    let cases: Vec<VocabCaseReport> =
        file.cases
            .iter()
            .map(|c| {
                let v = Vocab::build(&counts, c.min_freq, c.max_vocab);
                let got = v.itos();
                let first_diff = c.itos.iter().zip(got).position(|(a, b)| a != b).or((c
                    .itos
                    .len()
                    != got.len())
                .then_some(c.itos.len().min(got.len())));
                VocabCaseReport {
                    min_freq: c.min_freq,
                    max_vocab: c.max_vocab,
                    expected_len: c.itos.len(),
                    got_len: got.len(),
                    exact: first_diff.is_none(),
                    first_diff,
                }
            })
            .collect();
    Ok(VocabReport {
        file: path.display().to_string(),
        distinct_tokens: counts.len(),
        all_exact: !cases.is_empty() && cases.iter().all(|c| c.exact),
        cases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::paths::fixture;

    #[test]
    fn tokenizer_matches_fastai_on_the_fixture_texts() {
        let r = tokenizer_check(fixture("tokenizer_cases.jsonl")).unwrap();
        assert_eq!(r.cases, 320, "fixture size");
        assert!(
            r.misses.len() <= 1 && r.rate >= 0.995,
            "misses: {:#?}",
            r.misses
        );
    }

    #[test]
    fn vocab_matches_fastai_for_every_setting() {
        let r = vocab_check(fixture("vocab_cases.json")).unwrap();
        assert_eq!(r.cases.len(), 3);
        assert!(r.all_exact, "{:#?}", r.cases);
    }

    #[test]
    fn counting_the_fixture_tokens_reproduces_fastai_counter() {
        let path = fixture("tokenizer_cases.jsonl");
        let content = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<Vec<String>> = content
            .lines()
            .map(|l| serde_json::from_str::<TokenCase>(l).unwrap().tokens)
            .collect();
        let ours = TokenCounts::from_docs(&docs);
        let bytes = std::fs::read(fixture("vocab_cases.json")).unwrap();
        let file: VocabFile = serde_json::from_slice(&bytes).unwrap();
        let theirs: Vec<(&str, u64)> = file
            .counts
            .0
            .iter()
            .map(|(t, n)| (t.as_str(), *n))
            .collect();
        assert_eq!(ours.iter().collect::<Vec<_>>(), theirs);
    }

    #[test]
    fn bad_files_give_typed_errors() {
        let dir = std::env::temp_dir().join(format!("ulmfit_parity_test_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.jsonl");
        std::fs::write(
            &p,
            "{\"text\": \"a\", \"tokens\": [\"xxbos\", \"a\"]}\nnot json\n",
        )
        .unwrap();
        let e = tokenizer_check(&p).unwrap_err();
        assert!(matches!(e, TextError::Json { line: Some(2), .. }), "{e}");
        std::fs::write(
            &p,
            "{\"text\": \"A b\", \"tokens\": [\"xxbos\", \"a\", \"c\"]}\n",
        )
        .unwrap();
        let r = tokenizer_check(&p).unwrap();
        assert_eq!((r.exact, r.misses[0].first_diff), (0, 2));
        assert_eq!(r.misses[0].got.as_deref(), Some("b"));
        assert!(matches!(
            vocab_check(dir.join("nope.json")),
            Err(TextError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
