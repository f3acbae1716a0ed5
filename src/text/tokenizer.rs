//! fastai v2's default tokenizer: the pre-processing rules, spaCy's English tokenizer, then the
//! post rules (spec §5.1), with its configuration.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::rules::{PostRule, Rule};
use super::spacy::SpacyTokenizer;
use super::special::{FLD, SpecialTokens};

/// What a [`Tokenizer`] does; serialisable so it can be stored next to a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenizerConfig {
    /// Rules applied to the raw text, in order. Default: fastai v2 `defaults.text_proc_rules`
    /// (`fix_html, replace_rep, replace_wrep, spec_add_spaces, rm_useless_spaces,
    /// replace_all_caps, replace_maj, lowercase`) [F2 text/core.py].
    pub rules: Vec<Rule>,
    /// Rules applied to each token. Default: fastai v2 `defaults.text_postproc_rules`
    /// (`replace_space`), which `tokenize_df` / `tokenize_folder` apply [F2 text/core.py]. (Calling
    /// a fastai `Tokenizer` directly on one string skips them; use an empty list for that.)
    pub post_rules: Vec<PostRule>,
    /// `lowercase` prepends `xxbos`. Default `true` (fastai `lowercase(add_bos=True)`).
    pub add_bos: bool,
    /// `lowercase` appends `xxeos`. Default `false` (fastai `lowercase(add_eos=False)`).
    pub add_eos: bool,
    /// Tokens registered with spaCy as special cases, so they are never split. Default: fastai
    /// v2 `defaults.text_spec_tok` (`SpacyTokenizer(special_toks=None)`) [F2 text/core.py].
    pub special_tokens: Vec<String>,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        Self {
            rules: Rule::DEFAULTS.to_vec(),
            post_rules: vec![PostRule::ReplaceSpace],
            add_bos: true,
            add_eos: false,
            special_tokens: SpecialTokens::V2
                .tokens()
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

impl TokenizerConfig {
    /// Builds the tokenizer this configuration describes.
    pub fn init(&self) -> Tokenizer {
        Tokenizer::new(self.clone())
    }
}

/// fastai v2's `Tokenizer(SpacyTokenizer())` with `rules` and `post_rules`, in pure Rust.
///
/// ```
/// use ulmfit::text::Tokenizer;
/// let tok = Tokenizer::default();
/// assert_eq!(tok.tokenize("I don't LOVE it!!!"),
///            ["xxbos", "i", "do", "n't", "xxup", "love", "it", "xxrep", "3", "!"]);
/// ```
#[derive(Debug, Clone)]
pub struct Tokenizer {
    config: TokenizerConfig,
    spacy: SpacyTokenizer,
}

impl Default for Tokenizer {
    fn default() -> Self {
        Self::new(TokenizerConfig::default())
    }
}

impl From<TokenizerConfig> for Tokenizer {
    fn from(config: TokenizerConfig) -> Self {
        Self::new(config)
    }
}

impl Tokenizer {
    /// A tokenizer for `config`.
    pub fn new(config: TokenizerConfig) -> Self {
        let mut spacy = SpacyTokenizer::english();
        for t in &config.special_tokens {
            spacy.add_special_token(t);
        }
        Self { config, spacy }
    }

    /// The configuration.
    pub fn config(&self) -> &TokenizerConfig {
        &self.config
    }

    /// The base word tokenizer.
    pub fn base(&self) -> &SpacyTokenizer {
        &self.spacy
    }

    /// The text after all pre-processing rules, as it is handed to spaCy.
    pub fn preprocess(&self, text: &str) -> String {
        let c = &self.config;
        let mut s = text.to_string();
        for rule in &c.rules {
            s = rule.apply(&s, c.add_bos, c.add_eos);
        }
        s
    }

    /// Tokenizes one text.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let pre = self.preprocess(text);
        self.spacy
            .tokenize(&pre)
            .into_iter()
            .map(|t| {
                self.config
                    .post_rules
                    .iter()
                    .fold(t.to_string(), |t, r| r.apply(t))
            })
            .collect()
    }

    /// Tokenizes many texts in parallel (rayon); the output is in input order.
    pub fn tokenize_all<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Vec<Vec<String>> {
        texts
            .par_iter()
            .map(|t| self.tokenize(t.as_ref()))
            .collect()
    }
}

/// Joins the text columns of one row the way fastai v2's `_join_texts(mark_fields=True)` does:
/// `xxfld 1 <col 1> xxfld 2 <col 2> ...` (`tokenize_df` marks fields whenever there is more than
/// one text column).
pub fn mark_fields<S: AsRef<str>>(fields: &[S]) -> String {
    join_fields(fields, true)
}

/// fastai v2's `_join_texts`: with `mark_fields` each column `i` (1-based) is preceded by
/// `xxfld i `, otherwise the columns are joined with single spaces.
pub fn join_fields<S: AsRef<str>>(fields: &[S], mark_fields: bool) -> String {
    let mut out = String::new();
    for (i, f) in fields.iter().enumerate() {
        match (mark_fields, i) {
            (true, 0) => out.push_str(&format!("{FLD} 1 ")),
            (true, _) => out.push_str(&format!(" {FLD} {} ", i + 1)),
            (false, 0) => {}
            (false, _) => out.push(' '),
        }
        out.push_str(f.as_ref());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_pipeline_matches_the_spec_examples() {
        let tok = Tokenizer::default();
        let t = tok.tokenize("The the the the movie was sooooo good. Hello World. I am A OK.");
        assert_eq!(
            t.join(" "),
            "xxbos xxmaj the xxwrep 3 the movie was s xxrep 5 o good . xxmaj hello xxmaj world . i am a xxup ok ."
        );
        assert_eq!(
            tok.tokenize("word word word word end").join(" "),
            "xxbos xxwrep 4 word end"
        );
        let t = tok.tokenize("  Multiple   spaces\tand\ttabs\nnewline here  ");
        assert_eq!(
            t,
            [
                "xxbos", "xxmaj", "multiple", "spaces", "\t", "and", "\t", "tabs", "\n", "newline",
                "here"
            ]
        );
    }

    #[test]
    fn post_rules_and_flags() {
        let text = "a\u{85} b";
        let with = Tokenizer::default().tokenize(text);
        assert!(with.contains(&"\u{85}\u{2581}".to_string()), "{with:?}");
        let cfg = TokenizerConfig {
            post_rules: vec![],
            add_eos: true,
            ..Default::default()
        };
        let without = cfg.init().tokenize(text);
        assert!(without.contains(&"\u{85} ".to_string()), "{without:?}");
        assert_eq!(without.last().map(String::as_str), Some("xxeos"));
        let none = TokenizerConfig {
            rules: vec![],
            ..Default::default()
        }
        .init();
        assert_eq!(none.tokenize("Don't"), ["Do", "n't"]);
    }

    #[test]
    fn config_round_trips_through_json() {
        let cfg = TokenizerConfig {
            add_eos: true,
            ..Default::default()
        };
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(
            json.contains("\"fix_html\"") && json.contains("\"replace_space\""),
            "{json}"
        );
        let back: TokenizerConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg);
        let partial: TokenizerConfig = serde_json::from_str("{\"add_bos\": false}").unwrap();
        assert_eq!(
            partial,
            TokenizerConfig {
                add_bos: false,
                ..Default::default()
            }
        );
    }

    #[test]
    fn parallel_keeps_order_and_fields_are_marked() {
        let tok = Tokenizer::default();
        let texts: Vec<String> = (0..50).map(|i| format!("Text number {i}!")).collect();
        let all = tok.tokenize_all(&texts);
        for (i, t) in all.iter().enumerate() {
            assert_eq!(t, &tok.tokenize(&texts[i]));
        }
        assert_eq!(
            mark_fields(&["Title", "Body text"]),
            "xxfld 1 Title xxfld 2 Body text"
        );
        assert_eq!(join_fields(&["a", "b"], false), "a b");
        let t = tok.tokenize(&mark_fields(&["Wall St.", "Stocks up"]));
        assert_eq!(
            t.join(" "),
            "xxbos xxfld 1 xxmaj wall xxmaj st . xxfld 2 xxmaj stocks up"
        );
    }
}
