//! # ulmfit
//!
//! ULMFiT (Howard & Ruder, ACL 2018, *Universal Language Model Fine-tuning for Text
//! Classification*) on [burn](https://burn.dev): the AWD-LSTM language model and classifier,
//! numerically identical to fastai's, loading of fastai's pretrained weights, and fastai's
//! tokenizer and vocabulary.
//!
//! The crate is backend-generic the burn 0.22 way: tensors pick their backend from the
//! [`Device`](burn::tensor::Device) they are created on (`Device::ndarray()`, `Device::flex()`
//! with the `flex` feature, `Device::cuda(0)` with `cuda`). Training happens on an autodiff
//! device (`device.autodiff()`); a model used on a plain device, or after `Module::valid`, is in
//! eval mode (every dropout is the identity).
#![warn(missing_docs)]

pub mod atomic;
pub mod bundle;
pub mod data;
pub mod device;
pub mod fastai;
pub mod malloc;
pub mod nn;
pub mod ops;
pub mod parity;
pub mod paths;
pub mod predict;
pub mod pretrained;
pub mod recipe;
pub mod text;
pub mod train;
pub mod weights;

#[cfg(test)]
pub(crate) mod test_util;

/// The README's example, compiled as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
