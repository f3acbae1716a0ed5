//! Data: dataset readers and the batching of fastai v2's text data loaders.
//!
//! * [`lm`] — language-model batches exactly as fastai v2's `LMDataLoader` makes them
//!   (spec §2.1): one stream of all documents, `bs` contiguous rows, targets shifted by one, a
//!   shorter last batch, per-epoch document shuffling from a seed, and the backward option of
//!   §2.3 (each document reversed).
//! * [`clas`] — classification batches as fastai v2's `SortedDL` + `Pad_Chunk` make them
//!   (spec §3.1): sorted (validation) or "sortish" (training) order, padding by whole BPTT
//!   chunks in front, original indices carried so results can be put back in input order.
//! * [`datasets`] — readers for IMDb, AG News, DBpedia, Yelp (polarity and full), TREC and
//!   WikiText, from extracted folders or straight from their `.tgz` archives.
//! * [`lm_batches_check`], [`clas_padding_check`] — parity checks against the fastai fixtures,
//!   returning serialisable reports.
//!
//! Batches are plain row-major `Vec<i64>` structs; converting them to tensors is left to the
//! caller. Every failure is a [`DataError`] naming the file (and line) at fault.

pub mod cache;
pub mod clas;
pub mod datasets;
pub mod download;
mod error;
pub mod lm;
mod parity;
#[cfg(test)]
pub(crate) mod test_paths;

pub use clas::{
    ClasBatch, ClasDataLoader, ClasEpoch, ClasLoaderConfig, pad_chunk, pad_chunk_into,
    restore_order, sorted_order, sortish_order,
};
pub use datasets::{Example, TextClassificationData};
pub use error::DataError;
pub use lm::{LmBatch, LmDataLoader, LmEpoch, LmLoaderConfig};
pub use parity::{ClasPaddingReport, LmBatchesReport, clas_padding_check, lm_batches_check};
