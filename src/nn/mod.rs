//! The model half of ULMFiT: AWD-LSTM and its dropouts, the language model and the classifier.
//!
//! Layered as fastai's text models: modules ([`dropout`], [`lstm`], [`batch_norm`]), the encoder
//! ([`awd_lstm`]), then the two model builders ([`language_model`], [`classifier`]).

pub mod awd_lstm;
pub mod batch_norm;
pub mod classifier;
pub mod dropout;
pub mod language_model;
pub mod lstm;
pub mod precision;
pub mod sentence_encoder;

pub use awd_lstm::{AwdLstm, AwdLstmConfig, AwdLstmState};
pub use batch_norm::BatchNorm1d;
pub use classifier::{
    ClassifierOutput, LastToken, LinBnDrop, PoolingLinearClassifier, PoolingLinearClassifierConfig,
    TextClassifier, TextClassifierConfig, masked_concat_pool,
};
pub use dropout::{EmbeddingDropout, RnnDropout, weight_drop};
pub use language_model::{LanguageModel, LanguageModelConfig, LinearDecoder, LmOutput};
pub use lstm::{LstmLayer, LstmLayerConfig, LstmState, LstmWeights};
pub use precision::{bf16_recurrent_weights, int8_recurrent_weights};
pub use sentence_encoder::{DocLayout, EncodedDocs, encode_documents};
