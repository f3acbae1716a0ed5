//! The AWD-LSTM encoder (Merity et al. 2017) exactly as fastai v2 builds it (spec section 1).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Int, Tensor};

use super::dropout::{EmbeddingDropout, RnnDropout, check_prob};
use super::lstm::{LstmLayer, LstmLayerConfig, LstmState};

/// Configuration of an [`AwdLstm`] encoder.
///
/// The defaults are fastai v2's language-model configuration (`awd_lstm_lm_config`, spec 1.5);
/// [`AwdLstmConfig::classifier`] gives `awd_lstm_clas_config`, which equals the paper's dropouts.
#[derive(Config, Debug)]
pub struct AwdLstmConfig {
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Embedding size, also the width of the last LSTM layer (paper and fastai: 400).
    #[config(default = 400)]
    pub emb_size: usize,
    /// Hidden size of every LSTM layer but the last (paper: 1150; fastai >= 1.0.53: 1152).
    #[config(default = 1152)]
    pub hidden_size: usize,
    /// Number of LSTM layers (paper and fastai: 3).
    #[config(default = 3)]
    pub n_layers: usize,
    /// Padding token id (fastai: 1, `xxpad`).
    #[config(default = 1)]
    pub pad_idx: usize,
    /// Bidirectional layers with half the width per direction (fastai `bidir`, default off;
    /// the paper's "bidirectional" model is two separate models instead).
    #[config(default = false)]
    pub bidirectional: bool,
    /// Dropout on the embedding output, locked over time (fastai LM config: 0.25).
    #[config(default = 0.25)]
    pub input_p: f64,
    /// Dropout between LSTM layers, locked over time (fastai LM config: 0.15).
    #[config(default = 0.15)]
    pub hidden_p: f64,
    /// DropConnect on each hidden-to-hidden weight (fastai LM config: 0.2).
    #[config(default = 0.2)]
    pub weight_p: f64,
    /// Dropout of whole embedding rows (fastai LM config: 0.02).
    #[config(default = 0.02)]
    pub embed_p: f64,
}

impl AwdLstmConfig {
    /// fastai v2's language-model dropouts (`awd_lstm_lm_config`): the defaults.
    pub fn language_model(vocab_size: usize) -> Self {
        Self::new(vocab_size)
    }

    /// fastai v2's classifier dropouts (`awd_lstm_clas_config`, equal to the paper's values:
    /// embed 0.05, input 0.4, weight 0.5, hidden 0.3).
    pub fn classifier(vocab_size: usize) -> Self {
        Self::new(vocab_size)
            .with_embed_p(0.05)
            .with_input_p(0.4)
            .with_weight_p(0.5)
            .with_hidden_p(0.3)
    }

    /// Multiplies every dropout probability by `mult` (fastai's `drop_mult`).
    pub fn with_drop_mult(self, mult: f64) -> Self {
        let (i, h, w, e) = (self.input_p, self.hidden_p, self.weight_p, self.embed_p);
        self.with_input_p(i * mult)
            .with_hidden_p(h * mult)
            .with_weight_p(w * mult)
            .with_embed_p(e * mult)
    }

    /// Same configuration with every dropout set to zero.
    pub fn without_dropout(self) -> Self {
        self.with_drop_mult(0.0)
    }

    /// Output width of layer `l` (all directions together).
    pub fn layer_output(&self, l: usize) -> usize {
        if l + 1 == self.n_layers {
            self.emb_size
        } else {
            self.hidden_size
        }
    }

    /// Builds the encoder with fastai's initialisation (embedding U(-0.1, 0.1) on all rows,
    /// PyTorch's default for the LSTMs).
    pub fn init(&self, device: &Device) -> AwdLstm {
        assert!(self.n_layers >= 1, "n_layers must be at least 1");
        assert!(self.vocab_size > 0 && self.emb_size > 0 && self.hidden_size > 0);
        for (name, p) in [
            ("input_p", self.input_p),
            ("hidden_p", self.hidden_p),
            ("weight_p", self.weight_p),
            ("embed_p", self.embed_p),
        ] {
            check_prob(name, p);
        }
        let n_dir = if self.bidirectional { 2 } else { 1 };
        let rnns = (0..self.n_layers)
            .map(|l| {
                let d_input = if l == 0 {
                    self.emb_size
                } else {
                    self.hidden_size
                };
                let out = self.layer_output(l);
                assert!(
                    out.is_multiple_of(n_dir),
                    "bidirectional layers need even widths, layer {l} has {out}"
                );
                LstmLayerConfig::new(d_input, out / n_dir)
                    .with_bidirectional(self.bidirectional)
                    .with_weight_p(self.weight_p)
                    .init(device)
            })
            .collect();
        let init = Initializer::Uniform {
            min: -0.1,
            max: 0.1,
        };
        AwdLstm {
            embedding: init.init([self.vocab_size, self.emb_size], device),
            encoder_dp: EmbeddingDropout::new(self.embed_p, Some(self.pad_idx)),
            input_dp: RnnDropout::new(self.input_p),
            rnns,
            hidden_dps: (1..self.n_layers)
                .map(|_| RnnDropout::new(self.hidden_p))
                .collect(),
        }
    }
}

/// The recurrent state of every layer of an [`AwdLstm`].
#[derive(Clone, Debug)]
pub struct AwdLstmState {
    /// One state per layer, each `[n_directions, batch, hidden]`.
    pub layers: Vec<LstmState>,
}

impl AwdLstmState {
    /// Batch size of the state.
    pub fn batch_size(&self) -> usize {
        self.layers.first().map_or(0, LstmState::batch_size)
    }

    /// Cuts the state off from the graph that produced it.
    pub fn detach(self) -> Self {
        Self {
            layers: self.layers.into_iter().map(LstmState::detach).collect(),
        }
    }

    /// Adapts the state to a new batch size as fastai v2 does (`_change_one_hidden`): keep the
    /// first `batch` rows when it shrinks, append zero rows when it grows.
    pub fn resize(self, batch: usize) -> Self {
        let current = self.batch_size();
        if current == batch {
            return self;
        }
        let fit = |t: Tensor<3>| {
            if batch < current {
                t.narrow(1, 0, batch)
            } else {
                let [d, _, h] = t.dims();
                let zeros = Tensor::zeros([d, batch - current, h], &t.device());
                Tensor::cat(vec![t, zeros], 1)
            }
        };
        Self {
            layers: self
                .layers
                .into_iter()
                .map(|s| LstmState {
                    h: fit(s.h),
                    c: fit(s.c),
                })
                .collect(),
        }
    }
}

/// The AWD-LSTM encoder: embedding (with row dropout), locked input dropout, per-layer
/// weight-dropped LSTMs with locked dropout between them.
#[derive(Module, Debug)]
pub struct AwdLstm {
    /// Embedding matrix `[vocab, emb]` (fastai `encoder.weight`; tied to the LM decoder).
    pub embedding: Param<Tensor<2>>,
    /// Embedding-row dropout (fastai `encoder_dp`, `embed_p`).
    pub encoder_dp: EmbeddingDropout,
    /// Locked dropout on the embedding output (fastai `input_dp`, `input_p`).
    pub input_dp: RnnDropout,
    /// The LSTM layers (fastai `rnns`).
    pub rnns: Vec<LstmLayer>,
    /// Locked dropout after every layer but the last (fastai `hidden_dps`, `hidden_p`).
    pub hidden_dps: Vec<RnnDropout>,
}

impl AwdLstm {
    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.embedding.dims()[0]
    }

    /// Embedding size (also the encoder's output width).
    pub fn emb_size(&self) -> usize {
        self.embedding.dims()[1]
    }

    /// The zero state for `batch` sequences.
    pub fn zero_state(&self, batch: usize, device: &Device) -> AwdLstmState {
        AwdLstmState {
            layers: self
                .rnns
                .iter()
                .map(|r| r.zero_state(batch, device))
                .collect(),
        }
    }

    /// Encodes a batch of token ids from `state` (zeros when `None`; resized as fastai does when
    /// its batch size differs). Returns the last layer's output (no dropout on it) and the new
    /// state, detached (truncated back-propagation through time).
    ///
    /// # Shapes
    ///
    /// - ids: `[batch, seq_len]`
    /// - output: `[batch, seq_len, emb]`
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        state: Option<AwdLstmState>,
    ) -> (Tensor<3>, AwdLstmState) {
        let device = ids.device();
        let [batch, _] = ids.dims();
        let state = match state {
            Some(s) => s.resize(batch),
            None => self.zero_state(batch, &device),
        };
        let emb = self.encoder_dp.forward(self.embedding.val(), ids);
        let mut x = self.input_dp.forward(emb);
        let mut new_states = Vec::with_capacity(self.rnns.len());
        for (l, (rnn, st)) in self.rnns.iter().zip(state.layers).enumerate() {
            let (out, new_state) = rnn.forward(x, Some(st));
            new_states.push(new_state.detach());
            x = match self.hidden_dps.get(l) {
                Some(dp) => dp.forward(out),
                None => out,
            };
        }
        (x, AwdLstmState { layers: new_states })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, test_device, to_vec};

    fn tiny() -> AwdLstmConfig {
        AwdLstmConfig::new(20)
            .with_emb_size(6)
            .with_hidden_size(10)
            .with_n_layers(3)
    }

    #[test]
    fn shapes_and_sizes() {
        let device = test_device();
        let enc = tiny().init(&device);
        let widths: Vec<_> = enc.rnns.iter().map(LstmLayer::d_output).collect();
        assert_eq!(widths, vec![10, 10, 6]);
        let ids = Tensor::<2, Int>::from_data([[2, 3, 4, 5], [6, 7, 8, 9]], &device);
        let (out, state) = enc.forward(ids, None);
        assert_eq!(out.dims(), [2, 4, 6]);
        assert_eq!(state.layers[1].h.dims(), [1, 2, 10]);
    }

    #[test]
    fn bidirectional_keeps_widths() {
        let device = test_device();
        let enc = tiny().with_bidirectional(true).init(&device);
        let ids = Tensor::<2, Int>::from_data([[2, 3, 4]], &device);
        let (out, state) = enc.forward(ids, None);
        assert_eq!(out.dims(), [1, 3, 6]);
        assert_eq!(state.layers[0].h.dims(), [2, 1, 5]);
    }

    #[test]
    fn drop_mult_scales_all_dropouts() {
        let c = AwdLstmConfig::classifier(10).with_drop_mult(0.5);
        assert_eq!(
            (c.embed_p, c.input_p, c.weight_p, c.hidden_p),
            (0.025, 0.2, 0.25, 0.15)
        );
    }

    /// fastai v2's batch-size change: shrink keeps the first rows, growth appends zeros.
    #[test]
    fn state_resize_follows_fastai() {
        let device = test_device();
        let enc = tiny().init(&device);
        let ids = Tensor::<2, Int>::from_data([[2, 3], [4, 5], [6, 7]], &device);
        let (_, st) = enc.forward(ids, None);
        let h0 = to_vec(st.layers[0].h.clone());
        let small = st.clone().resize(2);
        assert_eq!(to_vec(small.layers[0].h.clone()), h0[..20].to_vec());
        let big = st.resize(4);
        let hb = to_vec(big.layers[0].h.clone());
        assert_eq!(&hb[..30], &h0[..]);
        assert!(hb[30..].iter().all(|v| *v == 0.0));
    }

    /// Eval mode is deterministic and carries state: two calls equal one.
    #[test]
    fn carried_state_equals_one_call() {
        let device = test_device();
        let enc = tiny().init(&device);
        let ids = Tensor::<2, Int>::from_data([[2, 3, 4, 5, 6], [7, 8, 9, 10, 11]], &device);
        let (full, _) = enc.forward(ids.clone(), None);
        let (a, st) = enc.forward(ids.clone().narrow(1, 0, 2), None);
        let (b, _) = enc.forward(ids.narrow(1, 2, 3), Some(st));
        assert_close(
            &to_vec(Tensor::cat(vec![a, b], 1)),
            &to_vec(full),
            1e-6,
            "two calls",
        );
    }
}
