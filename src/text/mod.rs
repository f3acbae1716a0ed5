//! Text processing exactly as fastai v2 does it: tokenisation and vocabulary (spec §5).
//!
//! * [`Tokenizer`] — fastai's default `Tokenizer(SpacyTokenizer())`: the pre-processing
//!   [`rules`] (`fix_html`, `replace_rep`, `replace_wrep`, `spec_add_spaces`,
//!   `rm_useless_spaces`, `replace_all_caps`, `replace_maj`, `lowercase`), a pure-Rust port of
//!   spaCy 3.8's blank-English tokenizer ([`SpacyTokenizer`]), then the post rule
//!   `replace_space`. Configured by the serialisable [`TokenizerConfig`].
//! * [`Vocab`] — fastai's `make_vocab` (special tokens first, frequency order with first-seen
//!   tie-breaking, `xxfake` padding to a multiple of 8) and `Numericalize` (unknown → 0), stored
//!   as a JSON list of strings. [`TokenCounts`] counts tokens with Python `Counter` semantics.
//! * [`parity`] — checks against the outputs recorded from fastai itself.
//!
//! No Python is needed: spaCy's algorithm and data (affix classes, tokenizer exceptions, URL
//! pattern) and Python's Unicode character classes and HTML entity table are part of the crate.
//!
//! ```
//! use ulmfit::text::{TokenCounts, Tokenizer, Vocab};
//!
//! let tok = Tokenizer::default();
//! let docs = tok.tokenize_all(&["This movie was GREAT!!!", "I didn't like it... at all."]);
//! assert_eq!(docs[0], ["xxbos", "xxmaj", "this", "movie", "was", "xxup", "great", "xxrep", "3", "!"]);
//! assert_eq!(docs[1][..5], ["xxbos", "i", "did", "n't", "like"]);
//!
//! let vocab = Vocab::build(&TokenCounts::from_docs(&docs), 1, 60000);
//! assert_eq!(vocab.itos()[..3], ["xxunk", "xxpad", "xxbos"]);
//! assert_eq!(vocab.len() % 8, 0);
//! let ids = vocab.numericalize(&docs[0]);
//! assert_eq!(ids[0], 2);
//! assert_eq!(vocab.id("never-seen"), 0);
//! assert_eq!(vocab.textify(&ids).unwrap(), docs[0].join(" "));
//! ```

mod counts;
mod error;
mod fxhash;
mod html;
mod html_entities;
pub mod parity;
mod pyunicode;
mod pyunicode_tables;
pub mod rules;
mod spacy;
mod special;
mod tokenizer;
mod vocab;

pub use counts::TokenCounts;
pub use error::TextError;
pub use rules::{PostRule, Rule};
pub use spacy::SpacyTokenizer;
pub use special::{BOS, EOS, FAKE, FLD, PAD, SpecialTokens, TK_MAJ, TK_REP, TK_UP, TK_WREP, UNK};
pub use tokenizer::{Tokenizer, TokenizerConfig, join_fields, mark_fields};
pub use vocab::Vocab;
