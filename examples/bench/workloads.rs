//! The benchmark workloads of `WORKLOADS.md` (shared with `benches/workloads.rs`): each one is
//! built once and then stepped repeatedly.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use ulmfit::nn::awd_lstm::AwdLstmState;
use ulmfit::nn::lstm::{LstmLayerConfig, LstmPath};
use ulmfit::nn::{LanguageModelConfig, TextClassifierConfig};
use ulmfit::train::groups::language_model_groups;
use ulmfit::train::loss::lm_cross_entropy;
use ulmfit::train::optimizer::{Optimizer, OptimizerConfig};

/// Every workload, in `WORKLOADS.md`'s order.
pub const NAMES: [&str; 6] = [
    "lstm_layer_fwd",
    "lstm_layer_train",
    "awd_lm_train",
    "awd_lm_fwd",
    "clas_infer_b32",
    "clas_infer_b1",
];

/// Reduced-precision variants (not in `all`): the classifier workloads with bf16 or int8 LSTM
/// recurrent weights, and the training workloads in mixed precision (bf16 products on AMX tiles
/// in a `bf16_autocast` scope; on a CPU without AMX they are the `f32` workloads).
pub const BF16_NAMES: [&str; 6] = [
    "clas_infer_b32_bf16",
    "clas_infer_b1_bf16",
    "clas_infer_b32_int8",
    "clas_infer_b1_int8",
    "lstm_layer_train_bf16",
    "awd_lm_train_bf16",
];

/// Which LSTM runs the `lstm_layer_*` workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerImpl {
    /// The crate's `LstmLayer` (fused recurrence on CPU backends).
    Fused,
    /// The crate's `LstmLayer` with the plain tensor-op recurrence.
    TensorOps,
    /// `burn::nn::Lstm`, for reference.
    Burn,
}

impl LayerImpl {
    /// Parses `fused`, `tensor-ops` or `burn`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "fused" => Ok(Self::Fused),
            "tensor-ops" => Ok(Self::TensorOps),
            "burn" => Ok(Self::Burn),
            _ => Err(format!(
                "unknown LSTM implementation `{s}` (fused, tensor-ops, burn)"
            )),
        }
    }

    /// The name `parse` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fused => "fused",
            Self::TensorOps => "tensor-ops",
            Self::Burn => "burn",
        }
    }
}

/// A built workload.
pub struct Workload {
    /// `tokens/s` or `docs/s`.
    pub unit: &'static str,
    /// Tokens or documents per step.
    pub per_step: f64,
    /// Floating-point operations of the LSTM layers per step (matrix products only).
    pub lstm_flop: f64,
    /// Runs one step.
    pub step: Box<dyn FnMut()>,
}

const VOCAB: usize = 30_000;
const HIDDEN: usize = 1152;
const EMB: usize = 400;

/// Deterministic token ids in `lo..VOCAB` (a simple LCG: the values only need to be spread).
fn ids(batch: usize, len: usize, lo: usize, seed: u64, device: &Device) -> Tensor<2, Int> {
    let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let v: Vec<i64> = (0..batch * len)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (lo + ((s >> 33) as usize) % (VOCAB - lo)) as i64
        })
        .collect();
    Tensor::from_data(TensorData::new(v, [batch, len]), device)
}

/// Matrix-product FLOPs of one LSTM layer over `tokens` tokens: forward `2 * 4H * (I + H)` per
/// token, backward twice that (input and weight gradients) when `train`.
fn layer_flop(d_in: usize, hidden: usize, tokens: usize, train: bool) -> f64 {
    let fwd = 2.0 * 4.0 * hidden as f64 * (d_in + hidden) as f64 * tokens as f64;
    if train { 3.0 * fwd } else { fwd }
}

/// FLOPs of the three AWD-LSTM layers (400 -> 1152 -> 1152 -> 400).
fn awd_flop(tokens: usize, train: bool) -> f64 {
    layer_flop(EMB, HIDDEN, tokens, train)
        + layer_flop(HIDDEN, HIDDEN, tokens, train)
        + layer_flop(HIDDEN, EMB, tokens, train)
}

/// Builds workload `name` on `device` (a plain device; training workloads add autodiff).
pub fn build(name: &str, device: &Device, layer_impl: LayerImpl) -> Result<Workload, String> {
    if let Some(base @ ("lstm_layer_train" | "awd_lm_train")) = name.strip_suffix("_bf16") {
        let mut workload = build(base, device, layer_impl)?;
        let mut step = workload.step;
        workload.step = Box::new(move || {
            let _scope = ulmfit::ops::autocast::bf16_autocast();
            step()
        });
        return Ok(workload);
    }
    match name {
        "lstm_layer_fwd" | "lstm_layer_train" => {
            let train = name == "lstm_layer_train";
            let (batch, seq) = (64, 70);
            let dev = if train {
                device.clone().autodiff()
            } else {
                device.clone()
            };
            let x = Tensor::<3>::random([batch, seq, HIDDEN], Distribution::Default, &dev);
            let run: Box<dyn FnMut() -> Tensor<3>> = match layer_impl {
                LayerImpl::Burn => {
                    let lstm = burn::nn::LstmConfig::new(HIDDEN, HIDDEN, true).init(&dev);
                    Box::new(move || lstm.forward(x.clone(), None).0)
                }
                LayerImpl::Fused | LayerImpl::TensorOps => {
                    let path = if layer_impl == LayerImpl::Fused {
                        LstmPath::Fused
                    } else {
                        LstmPath::TensorOps
                    };
                    let layer = LstmLayerConfig::new(HIDDEN, HIDDEN).init(&dev);
                    Box::new(move || layer.forward_with(x.clone(), None, path).0)
                }
            };
            let mut run = run;
            let step: Box<dyn FnMut()> = if train {
                Box::new(move || {
                    let _grads = run().sum().backward();
                })
            } else {
                Box::new(move || {
                    let _ = run();
                })
            };
            Ok(Workload {
                unit: "tokens/s",
                per_step: (batch * seq) as f64,
                lstm_flop: layer_flop(HIDDEN, HIDDEN, batch * seq, train),
                step,
            })
        }
        "awd_lm_train" => {
            let (batch, seq) = (32, 70);
            let dev = device.clone().autodiff();
            let mut model = Some(LanguageModelConfig::fastai(VOCAB, 1.0).init(&dev));
            let groups = language_model_groups(model.as_ref().expect("built"));
            let lrs = vec![1e-3; groups.len()];
            let mut opt = Optimizer::new(OptimizerConfig::default());
            let (x, y) = (ids(batch, seq, 0, 1, &dev), ids(batch, seq, 0, 2, &dev));
            let mut state: Option<AwdLstmState> = None;
            Ok(Workload {
                unit: "tokens/s",
                per_step: (batch * seq) as f64,
                lstm_flop: awd_flop(batch * seq, true),
                step: Box::new(move || {
                    let m = model.take().expect("model");
                    let out = m.forward(x.clone(), state.take());
                    let loss = lm_cross_entropy(out.logits, y.clone());
                    let grads = GradientsParams::from_grads(loss.backward(), &m);
                    let (m, _) = opt.step(m, grads, &groups, &lrs, 0.9, Some(0.1));
                    model = Some(m);
                    state = Some(out.state);
                }),
            })
        }
        "awd_lm_fwd" => {
            let (batch, seq) = (32, 70);
            let model = LanguageModelConfig::fastai(VOCAB, 1.0).init(device).valid();
            let x = ids(batch, seq, 0, 1, device);
            let mut state: Option<AwdLstmState> = None;
            Ok(Workload {
                unit: "tokens/s",
                per_step: (batch * seq) as f64,
                lstm_flop: awd_flop(batch * seq, false),
                step: Box::new(move || {
                    state = Some(model.forward(x.clone(), state.take()).state);
                }),
            })
        }
        "clas_infer_b32"
        | "clas_infer_b1"
        | "clas_infer_b32_bf16"
        | "clas_infer_b1_bf16"
        | "clas_infer_b32_int8"
        | "clas_infer_b1_int8" => {
            let batch = if name.starts_with("clas_infer_b32") {
                32
            } else {
                1
            };
            let len = 256;
            let mut model = TextClassifierConfig::fastai(VOCAB, 2, 1.0)
                .init(device)
                .valid();
            if name.ends_with("_bf16") {
                model = ulmfit::nn::bf16_recurrent_weights(model);
            }
            if name.ends_with("_int8") {
                model = ulmfit::nn::int8_recurrent_weights(model);
            }
            // Ids from 2 up: no padding (fastai's pad is 1).
            let x = ids(batch, len, 2, 3, device);
            Ok(Workload {
                unit: "docs/s",
                per_step: batch as f64,
                lstm_flop: awd_flop(batch * len, false),
                step: Box::new(move || {
                    let _ = model.forward(x.clone()).logits;
                }),
            })
        }
        _ => Err(format!(
            "unknown workload `{name}`; known: {NAMES:?} and {BF16_NAMES:?}"
        )),
    }
}
