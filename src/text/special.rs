//! fastai's special tokens and their order in each fastai version (spec §5.4).

use serde::{Deserialize, Serialize};

/// Unknown token (`UNK`), id 0 in every fastai version.
pub const UNK: &str = "xxunk";
/// Padding token (`PAD`), id 1 in every fastai version.
pub const PAD: &str = "xxpad";
/// Beginning of stream (`BOS`), added by the `lowercase` rule.
pub const BOS: &str = "xxbos";
/// End of stream (`EOS`), added by `lowercase` when `add_eos` is set.
pub const EOS: &str = "xxeos";
/// Field marker (`FLD`), `xxfld 1 <col 1> xxfld 2 <col 2>` for multi-column data.
pub const FLD: &str = "xxfld";
/// Repeated-character marker (`TK_REP`): `xxrep 5 o`.
pub const TK_REP: &str = "xxrep";
/// Repeated-word marker (`TK_WREP`): `xxwrep 3 the`.
pub const TK_WREP: &str = "xxwrep";
/// All-caps marker (`TK_UP`): `xxup great`.
pub const TK_UP: &str = "xxup";
/// Capitalised-word marker (`TK_MAJ`): `xxmaj it`.
pub const TK_MAJ: &str = "xxmaj";
/// Padding entry that fills a vocabulary up to a multiple of 8; never produced by numericalisation.
pub const FAKE: &str = "xxfake";

/// Which fastai version's special-token order a vocabulary uses.
///
/// Vocabularies are matched by string when weights move between versions (spec §6.4), so the
/// order only matters for building a vocabulary that must line up with existing weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SpecialTokens {
    /// fastai v2 `defaults.text_spec_tok`:
    /// `xxunk xxpad xxbos xxeos xxfld xxrep xxwrep xxup xxmaj`.
    #[default]
    V2,
    /// fastai v1 (>= 1.0.53) `text_spec_tok`, the order of the WikiText-103 `itos_wt103.pkl`:
    /// `xxunk xxpad xxbos xxeos xxfld xxmaj xxup xxrep xxwrep`.
    V1,
}

impl SpecialTokens {
    /// The special tokens in id order.
    pub fn tokens(self) -> &'static [&'static str] {
        match self {
            SpecialTokens::V2 => &[UNK, PAD, BOS, EOS, FLD, TK_REP, TK_WREP, TK_UP, TK_MAJ],
            SpecialTokens::V1 => &[UNK, PAD, BOS, EOS, FLD, TK_MAJ, TK_UP, TK_REP, TK_WREP],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_hold_the_same_nine_tokens_with_unk_and_pad_first() {
        let mut v1 = SpecialTokens::V1.tokens().to_vec();
        let mut v2 = SpecialTokens::V2.tokens().to_vec();
        assert_eq!((v1[0], v1[1], v2[0], v2[1]), (UNK, PAD, UNK, PAD));
        assert_eq!(v2[5..], [TK_REP, TK_WREP, TK_UP, TK_MAJ]);
        assert_eq!(v1[5..], [TK_MAJ, TK_UP, TK_REP, TK_WREP]);
        v1.sort_unstable();
        v2.sort_unstable();
        assert_eq!(v1, v2);
        assert_eq!(serde_json::to_string(&SpecialTokens::V1).unwrap(), "\"v1\"");
    }
}
