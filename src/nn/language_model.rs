//! The AWD-LSTM language model: encoder + tied linear decoder (fastai `get_language_model`).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::module::linear;
use burn::tensor::{Device, Int, Tensor};

use crate::ops::autocast::bf16_autocast_active;
use crate::ops::bf16_linear::bf16_linear;

use super::awd_lstm::{AwdLstm, AwdLstmConfig, AwdLstmState};
use super::dropout::{RnnDropout, check_prob};

/// Configuration of a [`LanguageModel`].
#[derive(Config, Debug)]
pub struct LanguageModelConfig {
    /// The encoder (fastai `awd_lstm_lm_config` by default).
    pub encoder: AwdLstmConfig,
    /// Locked dropout on the decoder input (fastai LM config `output_p`: 0.1).
    #[config(default = 0.1)]
    pub output_p: f64,
}

impl LanguageModelConfig {
    /// fastai v2's language model for `vocab_size` tokens, with every dropout multiplied by
    /// `drop_mult` (fastai `language_model_learner(drop_mult=1.0)` by default).
    pub fn fastai(vocab_size: usize, drop_mult: f64) -> Self {
        Self::new(AwdLstmConfig::language_model(vocab_size).with_drop_mult(drop_mult))
            .with_output_p(0.1 * drop_mult)
    }

    /// Builds the model; the decoder bias starts at zero (fastai), its weight is the embedding.
    pub fn init(&self, device: &Device) -> LanguageModel {
        check_prob("output_p", self.output_p);
        let encoder = self.encoder.init(device);
        LanguageModel {
            decoder: LinearDecoder {
                bias: Param::from_tensor(Tensor::zeros([self.encoder.vocab_size], device)),
                output_dp: RnnDropout::new(self.output_p),
            },
            encoder,
        }
    }
}

/// The decoder of a language model: locked dropout, then a linear map whose weight is the
/// encoder's embedding (tied, Press & Wolf 2017) and whose bias is its own.
#[derive(Module, Debug)]
pub struct LinearDecoder {
    /// Output bias `[vocab]` (fastai `1.decoder.bias`).
    pub bias: Param<Tensor<1>>,
    /// Locked dropout on the decoder input (fastai `output_dp`).
    pub output_dp: RnnDropout,
}

impl LinearDecoder {
    /// Decodes `raw` with the tied `weight`; returns `(logits, dropped input)`. Inside a
    /// [`bf16_autocast`](crate::ops::autocast::bf16_autocast) scope the product is
    /// [`bf16_linear`].
    ///
    /// # Shapes
    ///
    /// - raw: `[batch, seq_len, emb]`
    /// - weight: `[vocab, emb]`
    /// - output: `[batch, seq_len, vocab]` and `[batch, seq_len, emb]`
    pub fn forward(&self, raw: Tensor<3>, weight: Tensor<2>) -> (Tensor<3>, Tensor<3>) {
        let dropped = self.output_dp.forward(raw);
        let logits = if bf16_autocast_active() {
            // Mixed-precision training: the largest product of the model on bf16 tiles.
            let [batch, seq_len, emb] = dropped.dims();
            let rows = dropped.clone().reshape([batch * seq_len, emb]);
            let vocab = weight.dims()[0];
            bf16_linear(rows, weight, self.bias.val()).reshape([batch, seq_len, vocab])
        } else {
            linear(dropped.clone(), weight.transpose(), Some(self.bias.val()))
        };
        (logits, dropped)
    }
}

/// What a [`LanguageModel`] returns.
#[derive(Clone, Debug)]
pub struct LmOutput {
    /// Next-token logits `[batch, seq_len, vocab]`.
    pub logits: Tensor<3>,
    /// Last LSTM layer output before the output dropout (TAR acts on it).
    pub raw: Tensor<3>,
    /// The decoder input after the output dropout (AR acts on it).
    pub dropped: Tensor<3>,
    /// The encoder's state after this call, detached.
    pub state: AwdLstmState,
}

/// AWD-LSTM language model (fastai `SequentialRNN(AWD_LSTM, LinearDecoder)`).
#[derive(Module, Debug)]
pub struct LanguageModel {
    /// The encoder.
    pub encoder: AwdLstm,
    /// The tied decoder.
    pub decoder: LinearDecoder,
}

impl LanguageModel {
    /// Runs the model on `ids` from `state` (zeros when `None`).
    ///
    /// # Shapes
    ///
    /// - ids: `[batch, seq_len]`
    /// - output: see [`LmOutput`]
    pub fn forward(&self, ids: Tensor<2, Int>, state: Option<AwdLstmState>) -> LmOutput {
        let (raw, state) = self.encoder.forward(ids, state);
        let (logits, dropped) = self
            .decoder
            .forward(raw.clone(), self.encoder.embedding.val());
        LmOutput {
            logits,
            raw,
            dropped,
            state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{test_device, to_vec};

    #[test]
    fn tied_weight_gets_both_gradients() {
        let device = test_device().autodiff();
        let cfg = LanguageModelConfig::new(
            AwdLstmConfig::new(12)
                .with_emb_size(4)
                .with_hidden_size(5)
                .with_n_layers(2),
        )
        .with_output_p(0.0);
        let lm = cfg.init(&device);
        // Token 3 never occurs in the input: its embedding row is only used by the decoder.
        let ids = Tensor::<2, Int>::from_data([[2, 4, 5]], &device);
        let out = lm.forward(ids, None);
        assert_eq!(out.logits.dims(), [1, 3, 12]);
        let grads = out.logits.sum().backward();
        let g = to_vec(lm.encoder.embedding.val().grad(&grads).unwrap());
        assert!(g[3 * 4..4 * 4].iter().any(|v| *v != 0.0), "decoder use");
    }
}
