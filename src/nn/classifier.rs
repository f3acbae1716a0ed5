//! The ULMFiT classifier: BPT3C encoder, masked concat pooling and the
//! `PoolingLinearClassifier` head (fastai `get_text_classifier`, spec section 3).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use super::awd_lstm::{AwdLstm, AwdLstmConfig};
use super::batch_norm::BatchNorm1d;
use super::dropout::check_prob;
use super::sentence_encoder::{EncodedDocs, encode_documents};

/// Masked concat pooling: `[last, max, mean]` over the non-masked positions
/// (fastai `masked_concat_pool`, with "last" the document's true last token).
///
/// # Shapes
///
/// - output: `[batch, time, emb]`
/// - mask: `[batch, time]`, `true` = ignore
/// - result: `[batch, 3 * emb]`
pub fn masked_concat_pool(output: Tensor<3>, mask: Tensor<2, Bool>, last: &[usize]) -> Tensor<2> {
    let device = output.device();
    let [batch, time, emb] = output.dims();
    let mask3 = mask
        .clone()
        .unsqueeze_dim::<3>(2)
        .expand([batch, time, emb]);
    let keep = mask.bool_not().float();
    let count = keep.sum_dim(1).clamp_min(1.0); // [batch, 1]
    let avg = output
        .clone()
        .mask_fill(mask3.clone(), 0.0)
        .sum_dim(1)
        .squeeze_dim::<2>(1)
        / count;
    let max = output
        .clone()
        .mask_fill(mask3, f32::NEG_INFINITY)
        .max_dim(1)
        .squeeze_dim::<2>(1);
    let idx: Vec<i64> = last.iter().map(|&l| l as i64).collect();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [batch]), &device)
        .reshape([batch, 1, 1])
        .expand([batch, 1, emb]);
    let last = output.gather(1, idx).squeeze_dim::<2>(1);
    Tensor::cat(vec![last, max, avg], 1)
}

/// One head block (fastai `LinBnDrop`): BatchNorm1d, Dropout, Linear without bias, then ReLU
/// unless it is the last block.
#[derive(Module, Debug)]
pub struct LinBnDrop {
    /// Normalisation of the block's input.
    pub bn: BatchNorm1d,
    /// Element-wise dropout (absent when its probability is 0, as in fastai).
    pub dropout: Option<Dropout>,
    /// Linear map without bias (burn layout: weight `[in, out]`).
    pub linear: Linear,
    /// Whether a ReLU follows.
    pub relu: bool,
}

impl LinBnDrop {
    /// Applies the block.
    ///
    /// # Shapes
    ///
    /// - input: `[batch, in]`
    /// - output: `[batch, out]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let mut x = self.bn.forward(x);
        if let Some(d) = &self.dropout {
            x = d.forward(x);
        }
        let x = self.linear.forward(x);
        if self.relu { relu(x) } else { x }
    }
}

/// Configuration of a [`PoolingLinearClassifier`] head.
#[derive(Config, Debug)]
pub struct PoolingLinearClassifierConfig {
    /// Layer sizes: `[3 * emb, hidden..., n_class]` (fastai: `[1200, 50, n_class]`).
    pub layers: Vec<usize>,
    /// Dropout before each linear layer (fastai: `[0.4 * drop_mult, 0.1]`).
    pub ps: Vec<f64>,
    /// Whether the linear layers have a bias (fastai v2: no, each follows a BatchNorm; fastai v1
    /// and 0.7 heads: yes).
    #[config(default = false)]
    pub bias: bool,
}

impl PoolingLinearClassifierConfig {
    /// Builds the head with fastai's initialisation (BatchNorm weight 1, bias 1e-3; Linear with
    /// PyTorch's default Kaiming-uniform).
    pub fn init(&self, device: &Device) -> PoolingLinearClassifier {
        assert!(
            self.layers.len() >= 2,
            "a head needs at least input and output sizes"
        );
        assert_eq!(
            self.ps.len(),
            self.layers.len() - 1,
            "one dropout per linear layer"
        );
        let n = self.ps.len();
        let blocks = (0..n)
            .map(|k| {
                check_prob("head dropout", self.ps[k]);
                LinBnDrop {
                    bn: BatchNorm1d::new(self.layers[k], device),
                    dropout: (self.ps[k] > 0.0).then(|| DropoutConfig::new(self.ps[k]).init()),
                    linear: LinearConfig::new(self.layers[k], self.layers[k + 1])
                        .with_bias(self.bias)
                        .init(device),
                    relu: k + 1 < n,
                }
            })
            .collect();
        PoolingLinearClassifier { blocks }
    }
}

/// The classifier head: pooled features through [`LinBnDrop`] blocks to class logits.
#[derive(Module, Debug)]
pub struct PoolingLinearClassifier {
    /// The blocks (fastai `layers`).
    pub blocks: Vec<LinBnDrop>,
}

impl PoolingLinearClassifier {
    /// Maps pooled features to logits.
    ///
    /// # Shapes
    ///
    /// - input: `[batch, 3 * emb]`
    /// - output: `[batch, n_class]`
    pub fn forward(&self, pooled: Tensor<2>) -> Tensor<2> {
        self.blocks.iter().fold(pooled, |x, b| b.forward(x))
    }
}

/// Configuration of a [`TextClassifier`].
#[derive(Config, Debug)]
pub struct TextClassifierConfig {
    /// The encoder (fastai `awd_lstm_clas_config` by default).
    pub encoder: AwdLstmConfig,
    /// Number of classes.
    pub n_class: usize,
    /// Hidden sizes of the head (fastai `lin_ftrs`: `[50]`).
    #[config(default = "vec![50]")]
    pub lin_ftrs: Vec<usize>,
    /// Dropout before the first linear layer (fastai classifier `output_p`: 0.4, times drop_mult).
    #[config(default = 0.4)]
    pub output_p: f64,
    /// Dropouts before the later linear layers (fastai `ps`: `[0.1]`, not multiplied).
    #[config(default = "vec![0.1]")]
    pub ps: Vec<f64>,
    /// Chunk length of BPT3C (fastai v2 `seq_len`: 72).
    #[config(default = 72)]
    pub bptt: usize,
    /// Tokens at the end of a document whose outputs are pooled (fastai: 72 * 20 = 1440).
    #[config(default = 1440)]
    pub max_len: usize,
    /// Biases on the head's linear layers (fastai v2: none; v1 / 0.7 weights have them).
    #[config(default = false)]
    pub head_bias: bool,
}

impl TextClassifierConfig {
    /// fastai v2's `text_classifier_learner` model for `vocab_size` tokens and `n_class` classes,
    /// with encoder dropouts and the first head dropout multiplied by `drop_mult` (fastai default 0.5).
    pub fn fastai(vocab_size: usize, n_class: usize, drop_mult: f64) -> Self {
        Self::new(
            AwdLstmConfig::classifier(vocab_size).with_drop_mult(drop_mult),
            n_class,
        )
        .with_output_p(0.4 * drop_mult)
    }

    /// Head sizes `[3 * emb, lin_ftrs..., n_class]`.
    pub fn head_layers(&self) -> Vec<usize> {
        let mut layers = vec![3 * self.encoder.emb_size];
        layers.extend(&self.lin_ftrs);
        layers.push(self.n_class);
        layers
    }

    /// Builds the classifier.
    pub fn init(&self, device: &Device) -> TextClassifier {
        assert!(self.bptt > 0, "bptt must be positive");
        assert!(self.max_len >= self.bptt, "max_len must be at least bptt");
        let layers = self.head_layers();
        let mut ps = vec![self.output_p];
        ps.extend(self.ps.iter().copied().take(layers.len() - 2));
        while ps.len() < layers.len() - 1 {
            ps.push(*self.ps.last().unwrap_or(&0.0));
        }
        TextClassifier {
            encoder: self.encoder.init(device),
            head: PoolingLinearClassifierConfig::new(layers, ps)
                .with_bias(self.head_bias)
                .init(device),
            pad_idx: self.encoder.pad_idx,
            bptt: self.bptt,
            max_len: self.max_len,
        }
    }
}

/// Which time step masked concat pooling takes as a document's "last" output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LastToken {
    /// The document's true last token (this crate's behaviour: batch-invariant).
    #[default]
    Exact,
    /// fastai v2's rule, `T - 1 - (pads in the final bptt columns)`, which picks the wrong step
    /// for a row with padding inside the final window (see the crate docs). Exists only to
    /// reproduce fastai's batched numbers exactly (the `clas_train_grads` parity check).
    FastaiBatched,
}

/// fastai v2's "last" index per row: `T - 1 - count(mask[:, T - bptt..])`.
pub fn fastai_last_index(mask: &Tensor<2, Bool>, bptt: usize) -> Vec<usize> {
    let [rows, t] = mask.dims();
    let m: Vec<bool> = mask.to_data().try_into_vec_as::<bool>().unwrap_or_default();
    (0..rows)
        .map(|r| {
            let tail = &m[r * t + t.saturating_sub(bptt)..(r + 1) * t];
            let pads = tail.iter().filter(|&&b| b).count();
            (t - 1).saturating_sub(pads)
        })
        .collect()
}

/// What a [`TextClassifier`] returns.
#[derive(Clone, Debug)]
pub struct ClassifierOutput {
    /// Class logits `[batch, n_class]`.
    pub logits: Tensor<2>,
    /// The encoder outputs that were pooled (AR/TAR act on them in training).
    pub encoded: EncodedDocs,
}

/// The ULMFiT text classifier (fastai `SequentialRNN(SentenceEncoder, PoolingLinearClassifier)`).
#[derive(Module, Debug)]
pub struct TextClassifier {
    /// The AWD-LSTM encoder (fastai `0.module`).
    pub encoder: AwdLstm,
    /// The head (fastai `1`).
    pub head: PoolingLinearClassifier,
    /// Padding token id.
    pub pad_idx: usize,
    /// BPT3C chunk length.
    pub bptt: usize,
    /// Tokens at the end of each document whose outputs are pooled.
    pub max_len: usize,
}

impl TextClassifier {
    /// Number of classes (outputs of the head's last linear layer).
    pub fn n_class(&self) -> usize {
        self.head
            .blocks
            .last()
            .map(|b| b.linear.weight.dims()[1])
            .unwrap_or(0)
    }

    /// Classifies a batch of padded documents. Any padding layout is accepted (see
    /// [`encode_documents`]); the result of a document does not depend on its batch.
    ///
    /// # Shapes
    ///
    /// - ids: `[batch, seq_len]`
    /// - output: logits `[batch, n_class]`
    pub fn forward(&self, ids: Tensor<2, Int>) -> ClassifierOutput {
        self.forward_with(ids, LastToken::Exact)
    }

    /// [`forward`](Self::forward) with a choice of the pooled "last" step (see [`LastToken`]).
    pub fn forward_with(&self, ids: Tensor<2, Int>, last: LastToken) -> ClassifierOutput {
        let encoded = encode_documents(&self.encoder, ids, self.pad_idx, self.bptt, self.max_len);
        let last = match last {
            LastToken::Exact => encoded.last.clone(),
            LastToken::FastaiBatched => fastai_last_index(&encoded.mask, self.bptt),
        };
        let pooled = masked_concat_pool(encoded.output.clone(), encoded.mask.clone(), &last);
        ClassifierOutput {
            logits: self.head.forward(pooled),
            encoded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, test_device, to_vec};
    use rand::{RngExt, SeedableRng, rngs::StdRng};

    fn tiny(device: &Device) -> TextClassifier {
        TextClassifierConfig::new(
            AwdLstmConfig::new(30)
                .with_emb_size(6)
                .with_hidden_size(8)
                .with_n_layers(2),
            3,
        )
        .with_lin_ftrs(vec![5])
        .with_bptt(3)
        .with_max_len(6)
        .init(device)
    }

    #[test]
    fn pooling_ignores_masked_positions() {
        let device = test_device();
        let out = Tensor::<3>::from_data(
            [
                [[1.0], [5.0], [3.0], [100.0]],
                [[2.0], [-1.0], [0.0], [0.0]],
            ],
            &device,
        );
        let mask = Tensor::<2, Bool>::from_data(
            [[false, false, false, true], [true, false, false, true]],
            &device,
        );
        let pooled = to_vec(masked_concat_pool(out, mask, &[2, 2]));
        assert_close(&pooled, &[3.0, 5.0, 3.0, 0.0, 0.0, -0.5], 1e-6, "pool");
    }

    /// Random documents give the same logits alone and in any batch, whatever the padding.
    #[test]
    fn batch_invariance_on_random_batches() {
        let device = test_device();
        let model = tiny(&device);
        let mut rng = StdRng::seed_from_u64(7);
        for trial in 0..4 {
            let n = 2 + trial;
            let docs: Vec<Vec<i64>> = (0..n)
                .map(|_| {
                    let len = rng.random_range(1..15);
                    (0..len).map(|_| rng.random_range(2..30)).collect()
                })
                .collect();
            let alone: Vec<Vec<f32>> = docs
                .iter()
                .map(|d| {
                    let ids = Tensor::<2, Int>::from_data(
                        TensorData::new(d.clone(), [1, d.len()]),
                        &device,
                    );
                    to_vec(model.forward(ids).logits)
                })
                .collect();
            let width = docs.iter().map(Vec::len).max().unwrap() + rng.random_range(0..4);
            let mut ids = vec![];
            for d in &docs {
                // Random split of the padding between front and back.
                let extra = width - d.len();
                let front = rng.random_range(0..=extra);
                ids.extend(std::iter::repeat_n(1i64, front));
                ids.extend(d);
                ids.extend(std::iter::repeat_n(1i64, extra - front));
            }
            let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [n, width]), &device);
            let batched = to_vec(model.forward(ids).logits);
            for (k, a) in alone.iter().enumerate() {
                assert_close(&batched[k * 3..k * 3 + 3], a, 1e-5, "batched vs alone");
            }
        }
    }
}
