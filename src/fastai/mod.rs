//! Read fastai weight files into a plain, burn-free representation.
//!
//! fastai ships ULMFiT weights as a `torch.save` state dict (`lstm_fwd.pth`) plus a pickled
//! vocabulary (`itos_wt103.pkl`). This module reads both without Python or PyTorch, treating
//! them as untrusted input (a bad file gives an [`FastaiError`], never a panic or an
//! allocation far beyond the file's size):
//!
//! 1. [`read_pth`]: zip (torch >= 1.6) or legacy (torch < 1.6) container, bare state dict or
//!    learner save `{'model', 'opt'}` -> [`StateDict`] (ordered name -> [`RawTensor`], `f32`).
//! 2. [`read_itos`]: pickled `list[str]` -> `Vec<String>`.
//! 3. [`normalize_keys`]: v2 / v1 / 0.7 / `save_encoder` key names -> one canonical naming
//!    (fastai v2 LM names, encoder always under `0.`; table in [`keys`]).
//! 4. [`infer_awd_lstm_dims`] / [`infer_classifier_head`]: sizes from the tensors, every shape
//!    checked -> [`AwdLstmDims`] / [`ClassifierHeadDims`].
//! 5. [`match_embeds`]: fastai's adaptation of the embedding (and decoder bias) to a new
//!    vocabulary.
//!
//! [`load_fastai_lm`] and [`load_fastai_classifier`] do 1–4 in one call.
//!
//! ```no_run
//! use ulmfit::fastai::{keys, load_fastai_lm, match_embeds};
//! let (mut state, old_itos, dims) = load_fastai_lm("lstm_fwd.pth", "itos_wt103.pkl")?;
//! assert_eq!(state.get(keys::ENCODER_WEIGHT).unwrap().shape, [dims.vocab_size, dims.emb_size]);
//! let new_itos: Vec<String> = vec!["xxunk".into(), "xxpad".into() /* ... */];
//! match_embeds(&mut state, &old_itos, &new_itos)?;
//! # Ok::<(), ulmfit::fastai::FastaiError>(())
//! ```

mod arch;
mod error;
mod itos;
pub mod keys;
mod load;
mod pickle_order;
mod pth;
mod state_dict;
mod vocab_match;

#[cfg(test)]
mod robustness_tests;
#[cfg(test)]
pub(crate) mod test_support;

pub use arch::{
    AwdLstmDims, ClassifierHeadDims, fill_missing_decoder_bias, infer_awd_lstm_dims,
    infer_classifier_head,
};
pub use error::FastaiError;
pub use itos::read_itos;
pub use keys::{KeyDialect, KeyReport, ModelKind, normalize_keys};
pub use load::{load_fastai_classifier, load_fastai_lm};
pub use pth::{MAX_EXPANSION, PthFormat, PthInfo, read_pth, read_pth_with_info};
pub use state_dict::{RawTensor, SourceDType, StateDict};
pub use vocab_match::match_embeds;
