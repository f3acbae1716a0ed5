//! The vocabulary: fastai v2's `make_vocab` + `Numericalize` (spec §5.5), with JSON storage.

use std::path::Path;

use super::counts::TokenCounts;
use super::error::TextError;
use super::fxhash::FxHashMap;
use super::special::{FAKE, SpecialTokens};

/// A token list (`itos`) and its reverse map (`stoi`). Unknown tokens map to id 0 (`xxunk`);
/// `xxfake` padding entries are never produced by [`numericalize`](Vocab::numericalize).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    itos: Vec<String>,
    stoi: FxHashMap<String, u32>,
}

impl Vocab {
    /// A vocabulary from its token list, in id order. As fastai's
    /// `{v: k for k, v in enumerate(vocab) if v != 'xxfake'}`, a repeated token maps to its last id.
    pub fn new(itos: Vec<String>) -> Self {
        let mut stoi = FxHashMap::default();
        for (i, t) in itos.iter().enumerate() {
            if t != FAKE {
                stoi.insert(t.clone(), i as u32);
            }
        }
        Self { itos, stoi }
    }

    /// fastai v2 `make_vocab(count, min_freq, max_vocab)`: the `max_vocab` most common tokens
    /// with a count of at least `min_freq` (ties in first-seen order), the v2 special tokens
    /// moved to the front in their order, truncated to `max_vocab`, then `8 - len % 8` `xxfake`
    /// entries appended (8 when the length is already a multiple of 8). fastai's defaults are
    /// `min_freq = 3`, `max_vocab = 60000`.
    pub fn build(counts: &TokenCounts, min_freq: u64, max_vocab: usize) -> Self {
        Self::build_with(counts, min_freq, max_vocab, SpecialTokens::V2)
    }

    /// [`build`](Vocab::build) from tokenized documents (counted in order, as fastai's `Counter`).
    pub fn from_docs<D, T>(docs: &[D], min_freq: u64, max_vocab: usize) -> Self
    where
        D: AsRef<[T]>,
        T: AsRef<str>,
    {
        Self::build(&TokenCounts::from_docs(docs), min_freq, max_vocab)
    }

    /// [`build`](Vocab::build) for a given fastai version. `SpecialTokens::V1` follows v1's
    /// `Vocab.create`: v1 special-token order, and `xxfake` padding only while the vocabulary is
    /// shorter than `max_vocab` and not already a multiple of 8.
    pub fn build_with(
        counts: &TokenCounts,
        min_freq: u64,
        max_vocab: usize,
        specials: SpecialTokens,
    ) -> Self {
        let spec = specials.tokens();
        let mut itos: Vec<String> = spec.iter().map(|s| s.to_string()).collect();
        itos.extend(
            counts
                .most_common(max_vocab)
                .into_iter()
                .filter(|&(t, n)| n >= min_freq && !spec.contains(&t))
                .map(|(t, _)| t.to_string()),
        );
        itos.truncate(max_vocab);
        match specials {
            SpecialTokens::V2 => {
                let pad = 8 - itos.len() % 8;
                itos.extend(std::iter::repeat_n(FAKE.to_string(), pad));
            }
            SpecialTokens::V1 => {
                if itos.len() < max_vocab {
                    while !itos.len().is_multiple_of(8) {
                        itos.push(FAKE.to_string());
                    }
                }
            }
        }
        Self::new(itos)
    }

    /// Tokens in id order (fastai's `vocab` / `itos`).
    pub fn itos(&self) -> &[String] {
        &self.itos
    }

    /// Number of entries, padding included (the embedding size).
    pub fn len(&self) -> usize {
        self.itos.len()
    }

    /// Whether the vocabulary has no entries.
    pub fn is_empty(&self) -> bool {
        self.itos.is_empty()
    }

    /// The id of `token`, or 0 (`xxunk`) when it is not in the vocabulary.
    pub fn id(&self, token: &str) -> u32 {
        self.stoi.get(token).copied().unwrap_or(0)
    }

    /// Whether `token` has an id of its own.
    pub fn contains(&self, token: &str) -> bool {
        self.stoi.contains_key(token)
    }

    /// The token with id `id`.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.itos.get(id as usize).map(String::as_str)
    }

    /// Maps tokens to ids (fastai `Numericalize.encodes`).
    pub fn numericalize<S: AsRef<str>>(&self, tokens: &[S]) -> Vec<u32> {
        tokens.iter().map(|t| self.id(t.as_ref())).collect()
    }

    /// Maps ids back to tokens.
    pub fn decode(&self, ids: &[u32]) -> Result<Vec<&str>, TextError> {
        ids.iter()
            .map(|&id| {
                self.token(id).ok_or(TextError::IdOutOfRange {
                    id,
                    len: self.len(),
                })
            })
            .collect()
    }

    /// Maps ids back to text, tokens joined by single spaces (fastai's `textify`).
    pub fn textify(&self, ids: &[u32]) -> Result<String, TextError> {
        Ok(self.decode(ids)?.join(" "))
    }

    /// Saves the token list as a JSON array of strings. The file is written to a temporary
    /// file in the same directory and renamed into place, so readers never see a partial file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), TextError> {
        let path = path.as_ref();
        let json = serde_json::to_vec(&self.itos).map_err(|source| TextError::Json {
            path: path.into(),
            line: None,
            source,
        })?;
        crate::atomic::write_atomic(path, &json).map_err(|(p, e)| TextError::io(&p, e))
    }

    /// Loads a vocabulary saved by [`save`](Vocab::save) (a JSON array of strings).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, TextError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| TextError::io(path, e))?;
        let itos: Vec<String> =
            serde_json::from_slice(&bytes).map_err(|source| TextError::Json {
                path: path.into(),
                line: None,
                source,
            })?;
        if itos.is_empty() {
            return Err(TextError::invalid(path, "the vocabulary is empty"));
        }
        Ok(Self::new(itos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::special::SpecialTokens;

    fn counts() -> TokenCounts {
        TokenCounts::from_pairs([
            ("b", 3),
            ("xxmaj", 1),
            ("a", 3),
            ("c", 5),
            ("d", 2),
            ("xxbos", 9),
        ])
    }

    #[test]
    fn v2_build_order_and_padding() {
        let v = Vocab::build(&counts(), 3, 60000);
        let spec = SpecialTokens::V2.tokens();
        assert_eq!(&v.itos()[..9], spec);
        assert_eq!(&v.itos()[9..12], ["c", "b", "a"]);
        assert_eq!(v.len(), 16);
        assert!(v.itos()[12..].iter().all(|t| t == "xxfake"));
        // Nothing frequent enough: the 9 specials, padded to 16.
        assert_eq!(Vocab::build(&counts(), 99, 60000).len(), 16);
        // Already a multiple of 8 (9 + 7 = 16): 8 more.
        let seven = TokenCounts::from_pairs((0..7).map(|i| (format!("w{i}"), 4)));
        let v = Vocab::build(&seven, 3, 60000);
        assert_eq!(v.len(), 24);
        assert_eq!(v.itos()[15], "w6");
        // Truncation keeps the specials.
        let v = Vocab::build(&counts(), 1, 10);
        assert_eq!(v.len(), 16);
        assert_eq!(v.itos()[9], "c");
    }

    #[test]
    fn v1_build() {
        let v = Vocab::build_with(&counts(), 3, 60000, SpecialTokens::V1);
        assert_eq!(v.itos()[5], "xxmaj");
        assert_eq!(v.len(), 16);
        let v = Vocab::build_with(&counts(), 1, 13, SpecialTokens::V1);
        assert_eq!(v.len(), 13);
    }

    #[test]
    fn numericalize_and_textify() {
        let v = Vocab::build(&counts(), 3, 60000);
        let docs = [vec!["c", "c", "b"], vec!["a", "c", "b", "a", "a", "b"]];
        assert_eq!(
            Vocab::from_docs(&docs, 3, 60000).itos()[9..12],
            ["c", "b", "a"]
        );
        assert_eq!(v.numericalize(&["c", "zzz", "xxfake", "a"]), [9, 0, 0, 11]);
        assert_eq!(v.textify(&[2, 9]).unwrap(), "xxbos c");
        assert!(matches!(
            v.textify(&[99]),
            Err(TextError::IdOutOfRange { id: 99, len: 16 })
        ));
        assert!(v.contains("b") && !v.contains("xxfake"));
        let dup = Vocab::new(vec!["x".into(), "y".into(), "x".into()]);
        assert_eq!(dup.id("x"), 2);
    }

    #[test]
    fn save_load_round_trip_and_errors() {
        let dir = std::env::temp_dir().join(format!("ulmfit_vocab_test_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let v = Vocab::build(&counts(), 1, 60000);
        let p = dir.join("vocab.json");
        v.save(&p).unwrap();
        assert_eq!(Vocab::load(&p).unwrap(), v);
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file remains");
        std::fs::write(&p, "{\"a\": 1}").unwrap();
        let e = Vocab::load(&p).unwrap_err();
        assert!(
            matches!(e, TextError::Json { .. }) && e.to_string().contains("vocab.json"),
            "{e}"
        );
        std::fs::write(&p, "[]").unwrap();
        assert!(matches!(Vocab::load(&p), Err(TextError::Invalid { .. })));
        assert!(matches!(
            Vocab::load(dir.join("missing.json")),
            Err(TextError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
