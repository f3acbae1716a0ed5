//! fastai's tokenizer and the vocabulary on arbitrary text: no panic, and the invariants a
//! predictor relies on (a `xxbos` first, ids inside the vocabulary).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ulmfit::text::{Tokenizer, Vocab};

fuzz_target!(|data: &[u8]| {
    static TOK: OnceLock<(Tokenizer, Vocab)> = OnceLock::new();
    let (tok, vocab) = TOK.get_or_init(|| {
        let tok = Tokenizer::default();
        let docs = tok.tokenize_all(&["The movie was GREAT!!! I didn't like it... <br /> at all."]);
        let vocab = Vocab::from_docs(&docs, 1, 60_000);
        (tok, vocab)
    });
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let tokens = tok.tokenize(text);
    assert_eq!(tokens.first().map(String::as_str), Some("xxbos"), "{text:?}");
    let ids = vocab.numericalize(&tokens);
    assert!(ids.iter().all(|&i| (i as usize) < vocab.len()));
});
