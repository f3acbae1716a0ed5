//! Parity checks of the model half: forward, gradients, weight loading (fixtures from fastai).

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::fixture::{Fixture, FixtureTensor, read_meta};
use super::report::{CheckResult, Comparison, failed};
use crate::fastai::{self, StateDict};
use crate::nn::{
    AwdLstm, AwdLstmConfig, LanguageModel, LanguageModelConfig, LastToken, TextClassifier,
    TextClassifierConfig,
};
use crate::train::loss::{
    activation_reg, cross_entropy, lm_cross_entropy, temporal_activation_reg,
};
use crate::weights;

/// Output tolerance of the fixtures README (absolute).
pub const OUTPUT_TOL: f64 = 1e-5;
/// Gradient / parameter tolerance of the fixtures README (relative).
pub const GRAD_TOL: f64 = 1e-4;

/// A tensor's values as `f32`.
pub fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap_or_default()
}

/// A fixture's integer tensor on `device`.
pub fn int_tensor<const D: usize>(t: &FixtureTensor, device: &Device) -> Tensor<D, Int> {
    Tensor::from_data(TensorData::new(t.ints.clone(), t.shape.clone()), device)
}

/// Reads a fastai `.pth`, normalises its keys, and returns it with the encoder sizes.
fn read_weights(path: &Path) -> Result<(StateDict, fastai::AwdLstmDims), String> {
    let sd = fastai::read_pth(path).map_err(|e| e.to_string())?;
    let (sd, _) = fastai::normalize_keys(sd).map_err(|e| e.to_string())?;
    let dims = fastai::infer_awd_lstm_dims(&sd).map_err(|e| e.to_string())?;
    Ok((sd, dims))
}

/// The encoder configuration for these sizes, without dropout.
pub fn encoder_config(dims: &fastai::AwdLstmDims) -> AwdLstmConfig {
    AwdLstmConfig::new(dims.vocab_size)
        .with_emb_size(dims.emb_size)
        .with_hidden_size(dims.hidden_size)
        .with_n_layers(dims.n_layers)
        .with_bidirectional(dims.bidirectional)
        .without_dropout()
}

/// The fixtures' language model without dropout (for training-mode checks).
pub fn load_lm_for_training(dir: &Path, device: &Device) -> Result<LanguageModel, String> {
    load_lm(dir, device)
}

fn load_lm(dir: &Path, device: &Device) -> Result<LanguageModel, String> {
    let (sd, dims) = read_weights(&dir.join("lm.pth"))?;
    let lm = LanguageModelConfig::new(encoder_config(&dims))
        .with_output_p(0.0)
        .init(device);
    weights::load_language_model(lm, &sd).map_err(|e| e.to_string())
}

/// `lm_eval`: logits, last-layer output and hidden state after two consecutive eval calls.
pub fn lm_eval(dir: &Path, device: &Device) -> CheckResult {
    let name = "lm_eval";
    let run = || -> Result<CheckResult, String> {
        let lm = load_lm(dir, device)?.valid();
        let fx = Fixture::read(&dir.join("lm_eval.safetensors")).map_err(|e| e.to_string())?;
        let get = |n: &str| fx.get(n).map_err(|e| e.to_string());
        let mut cmp = Comparison::absolute(name, OUTPUT_TOL);
        let out0 = lm.forward(int_tensor(get("input0")?, device), None);
        cmp.compare("logits0", &floats(out0.logits), &get("logits0")?.floats);
        cmp.compare(
            "last_layer_output0",
            &floats(out0.raw),
            &get("last_layer_output0")?.floats,
        );
        let mut state = out0.state;
        for (k, step) in ["after0", "after1"].iter().enumerate() {
            if k == 1 {
                let out1 = lm.forward(int_tensor(get("input1")?, device), Some(state));
                cmp.compare("logits1", &floats(out1.logits), &get("logits1")?.floats);
                state = out1.state;
            }
            for (l, s) in state.layers.iter().enumerate() {
                for (part, t) in [("h", &s.h), ("c", &s.c)] {
                    let key = format!("{step}.hidden.{l}.{part}");
                    cmp.compare(&key, &floats(t.clone()), &get(&key)?.floats);
                }
            }
        }
        Ok(cmp
            .finish("logits0/1, last_layer_output0, hidden (h, c) of every layer after each call"))
    };
    run().unwrap_or_else(|e| failed(name, OUTPUT_TOL, e))
}

/// Gradients of every encoder parameter with fastai's names.
fn encoder_grads(
    enc: &AwdLstm,
    grads: &burn::tensor::Gradients,
    prefix: &str,
) -> Vec<(String, Vec<f32>)> {
    let mut out = vec![];
    let mut push = |name: String, g: Option<Vec<f32>>| out.push((name, g.unwrap_or_default()));
    push(
        format!("{prefix}encoder.weight"),
        enc.embedding.val().grad(grads).map(floats),
    );
    for (l, rnn) in enc.rnns.iter().enumerate() {
        let w = &rnn.forward;
        let p = format!("{prefix}rnns.{l}");
        push(
            format!("{p}.weight_hh_l0_raw"),
            w.weight_hh.val().grad(grads).map(floats),
        );
        push(
            format!("{p}.module.weight_ih_l0"),
            w.weight_ih.val().grad(grads).map(floats),
        );
        push(
            format!("{p}.module.bias_ih_l0"),
            w.bias_ih.val().grad(grads).map(floats),
        );
        push(
            format!("{p}.module.bias_hh_l0"),
            w.bias_hh.val().grad(grads).map(floats),
        );
    }
    out
}

/// `lm_train_grads`: training-mode gradients (all dropouts 0) of cross-entropy, and of
/// cross-entropy + AR (alpha 2) + TAR (beta 1); tied weight gradients summed.
pub fn lm_train_grads(dir: &Path, device: &Device) -> CheckResult {
    let name = "lm_train_grads";
    let run = || -> Result<CheckResult, String> {
        let device = device.clone().autodiff();
        let lm = load_lm(dir, &device)?;
        let ev = Fixture::read(&dir.join("lm_eval.safetensors")).map_err(|e| e.to_string())?;
        let fx =
            Fixture::read(&dir.join("lm_train_grads.safetensors")).map_err(|e| e.to_string())?;
        let get = |f: &Fixture, n: &str| f.get(n).cloned().map_err(|e| e.to_string());
        let input = get(&ev, "input0")?;
        let target = get(&fx, "target0")?;
        let mut cmp = Comparison::relative(name, GRAD_TOL);
        for (variant, alpha, beta) in [("ce", 0.0, 0.0), ("ce_ar_tar", 2.0, 1.0)] {
            let out = lm.forward(int_tensor(&input, &device), None);
            let mut loss = lm_cross_entropy(out.logits, int_tensor(&target, &device));
            if alpha > 0.0 {
                loss = loss + activation_reg(out.dropped, alpha);
            }
            if beta > 0.0 {
                loss = loss + temporal_activation_reg(out.raw, beta);
            }
            cmp.compare(
                &format!("{variant}.loss"),
                &floats(loss.clone()),
                &get(&fx, &format!("{variant}.loss"))?.floats,
            );
            let grads = loss.backward();
            let mut all = encoder_grads(&lm.encoder, &grads, "0.");
            all.push((
                "1.decoder.bias".into(),
                lm.decoder
                    .bias
                    .val()
                    .grad(&grads)
                    .map(floats)
                    .unwrap_or_default(),
            ));
            for (pname, g) in all {
                let key = format!("{variant}.grad.{pname}");
                cmp.compare(&key, &g, &get(&fx, &key)?.floats);
            }
        }
        Ok(cmp.finish("loss and every parameter's gradient, CE and CE+AR+TAR"))
    };
    run().unwrap_or_else(|e| failed(name, GRAD_TOL, e))
}

/// Classifier sizes from `meta.json` (`config`: bptt, max_len) and the weights.
fn load_clas(dir: &Path, device: &Device) -> Result<TextClassifier, String> {
    let meta = read_meta(dir).map_err(|e| e.to_string())?;
    let cfg = &meta["config"];
    let field = |k: &str| {
        cfg[k]
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| format!("meta.json has no config.{k}"))
    };
    let (bptt, max_len) = (field("bptt")?, field("max_len")?);
    let (sd, dims) = read_weights(&dir.join("clas.pth"))?;
    let head = fastai::infer_classifier_head(&sd, &dims).map_err(|e| e.to_string())?;
    let layers = &head.layers;
    let n = layers.len();
    if n < 2 {
        return Err(format!("classifier head sizes {layers:?} are too short"));
    }
    let clas = TextClassifierConfig::new(encoder_config(&dims), layers[n - 1])
        .with_lin_ftrs(layers[1..n - 1].to_vec())
        .with_output_p(0.0)
        .with_ps(vec![0.0; n.saturating_sub(2)])
        .with_bptt(bptt)
        .with_max_len(max_len)
        .with_head_bias(head.linear_bias)
        .init(device);
    weights::load_classifier(clas, &sd).map_err(|e| e.to_string())
}

/// `clas_eval`: every row equals the document classified alone (`logits_unbatched`); fastai's
/// batched `logits` on the rows its pooling quirk does not touch; and, with fastai's rule
/// ([`LastToken::FastaiBatched`]), fastai's batched `logits` on every row.
pub fn clas_eval(dir: &Path, device: &Device) -> CheckResult {
    let name = "clas_eval";
    let run = || -> Result<CheckResult, String> {
        let clas = load_clas(dir, device)?.valid();
        let fx = Fixture::read(&dir.join("clas_eval.safetensors")).map_err(|e| e.to_string())?;
        let get = |n: &str| fx.get(n).map_err(|e| e.to_string());
        let input = get("input")?;
        let mut cmp = Comparison::absolute(name, OUTPUT_TOL);
        let out = clas.forward(int_tensor(input, device));
        let encoded = out.encoded.clone();
        let logits = floats(out.logits);
        cmp.compare(
            "logits_unbatched",
            &logits,
            &get("logits_unbatched")?.floats,
        );
        let quirk = crate::nn::classifier::fastai_last_index(&encoded.mask, clas.bptt);
        let untouched: Vec<usize> = (0..encoded.last.len())
            .filter(|&r| quirk[r] == encoded.last[r])
            .collect();
        let fastai_logits = &get("logits")?.floats;
        let n_class = logits.len() / encoded.last.len().max(1);
        for &r in &untouched {
            let s = r * n_class..(r + 1) * n_class;
            cmp.compare(
                &format!("logits row {r}"),
                &logits[s.clone()],
                &fastai_logits[s],
            );
        }
        let compat = floats(
            clas.forward_with(int_tensor(input, device), LastToken::FastaiBatched)
                .logits,
        );
        cmp.compare("logits (fastai's batched rule)", &compat, fastai_logits);
        Ok(cmp.finish(&format!(
            "logits_unbatched on all rows; fastai logits on untouched rows {untouched:?}; \
             fastai logits with LastToken::FastaiBatched"
        )))
    };
    run().unwrap_or_else(|e| failed(name, OUTPUT_TOL, e))
}

/// `clas_train_grads`: training mode, dropout 0, BatchNorm on batch statistics, fastai's batched
/// pooling rule (the fixture was recorded with it); loss and every gradient.
pub fn clas_train_grads(dir: &Path, device: &Device) -> CheckResult {
    let name = "clas_train_grads";
    let run = || -> Result<CheckResult, String> {
        let device = device.clone().autodiff();
        let clas = load_clas(dir, &device)?;
        let ev = Fixture::read(&dir.join("clas_eval.safetensors")).map_err(|e| e.to_string())?;
        let fx =
            Fixture::read(&dir.join("clas_train_grads.safetensors")).map_err(|e| e.to_string())?;
        let input = ev.get("input").map_err(|e| e.to_string())?;
        let target = fx.get("target").map_err(|e| e.to_string())?;
        let out = clas.forward_with(int_tensor(input, &device), LastToken::FastaiBatched);
        let loss = cross_entropy(out.logits, int_tensor(target, &device));
        let mut cmp = Comparison::relative(name, GRAD_TOL);
        let want = |n: &str| {
            fx.get(n)
                .map(|t| t.floats.clone())
                .map_err(|e| e.to_string())
        };
        cmp.compare("loss", &floats(loss.clone()), &want("loss")?);
        let grads = loss.backward();
        let mut all = encoder_grads(&clas.encoder, &grads, "0.module.");
        for (k, b) in clas.head.blocks.iter().enumerate() {
            let g = |t: Tensor<1>| t.grad(&grads).map(floats).unwrap_or_default();
            all.push((format!("1.layers.{k}.0.weight"), g(b.bn.weight.val())));
            all.push((format!("1.layers.{k}.0.bias"), g(b.bn.bias.val())));
            let lin = b
                .linear
                .weight
                .val()
                .grad(&grads)
                .map(|t| floats(t.transpose()))
                .unwrap_or_default();
            all.push((format!("1.layers.{k}.2.weight"), lin));
        }
        for (pname, g) in all {
            let key = format!("grad.{pname}");
            cmp.compare(&key, &g, &want(&key)?);
        }
        Ok(cmp.finish("loss and every parameter's gradient (fastai's batched pooling rule)"))
    };
    run().unwrap_or_else(|e| failed(name, GRAD_TOL, e))
}

/// The fixtures' fastai-v1-style WikiText-103 look-alike, loaded through the public API.
fn load_wt103(dir: &Path) -> Result<(StateDict, Vec<String>, fastai::AwdLstmDims), String> {
    fastai::load_fastai_lm(
        dir.join("wt103_like_lstm_fwd.pth"),
        dir.join("wt103_like_itos.pkl"),
    )
    .map_err(|e| e.to_string())
}

/// `wt103_like`: the legacy (pre-1.6) container with fastai v1 keys and v1 special tokens loads;
/// the key list is the one recorded in `meta.json`; the loaded model holds exactly the file's
/// `_raw` weights; and its LSTM weights equal those fastai itself loaded (`pretrained_adapted`).
pub fn wt103_like(dir: &Path, device: &Device) -> CheckResult {
    let name = "wt103_like";
    let run = || -> Result<CheckResult, String> {
        let path = dir.join("wt103_like_lstm_fwd.pth");
        let (raw, info) = fastai::read_pth_with_info(&path).map_err(|e| e.to_string())?;
        let mut cmp = Comparison::absolute(name, 0.0);
        if info.format != fastai::PthFormat::Legacy {
            cmp.fail(format!(
                "container read as {:?}, expected the legacy format",
                info.format
            ));
        }
        let meta = read_meta(dir).map_err(|e| e.to_string())?;
        let want_keys: Vec<String> = meta["pretrained_v1_keys"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let got_keys: Vec<String> = raw.keys().map(String::from).collect();
        if got_keys != want_keys {
            cmp.fail(format!(
                "file keys {got_keys:?} differ from meta.json's {want_keys:?}"
            ));
        }
        let (_, report) = fastai::normalize_keys(raw.clone()).map_err(|e| e.to_string())?;
        if report.dialect != fastai::KeyDialect::V1 {
            cmp.fail(format!(
                "dialect detected as {:?}, expected V1",
                report.dialect
            ));
        }
        let (sd, itos, dims) = load_wt103(dir)?;
        if itos.get(5).map(String::as_str) != Some("xxmaj") {
            cmp.fail("vocabulary does not start with fastai v1's special tokens");
        }
        let lm = LanguageModelConfig::new(encoder_config(&dims))
            .with_output_p(0.0)
            .init(device);
        let lm = weights::load_language_model(lm, &sd).map_err(|e| e.to_string())?;
        let loaded = weights::language_model_state_dict(&lm);
        for (k, t) in loaded.iter() {
            let file_key = k.to_string();
            match raw.get(&file_key) {
                Some(f) => cmp.compare(k, &t.data, &f.data),
                None => cmp.fail(format!("{k} not in the file")),
            }
        }
        let adapted = Fixture::read(&dir.join("pretrained_adapted.safetensors"))
            .map_err(|e| e.to_string())?
            .state_dict("param.");
        for (k, t) in loaded.iter().filter(|(k, _)| k.contains("rnns")) {
            match adapted.get(k) {
                Some(f) => cmp.compare(&format!("{k} vs fastai's load"), &t.data, &f.data),
                None => cmp.fail(format!("{k} missing from pretrained_adapted")),
            }
        }
        Ok(cmp.finish(
            "legacy container, v1 keys (duplicate W_hh dropped), weights equal to the file and to fastai's own load",
        ))
    };
    run().unwrap_or_else(|e| failed(name, 0.0, e))
}

/// `pretrained_adapted`: `match_embeds` to the new vocabulary of `meta.json`, then every
/// parameter and the eval logits against what fastai v2's `load_pretrained` made.
pub fn pretrained_adapted(dir: &Path, device: &Device) -> CheckResult {
    let name = "pretrained_adapted";
    let run = || -> Result<CheckResult, String> {
        let (mut sd, old_itos, dims) = load_wt103(dir)?;
        let meta = read_meta(dir).map_err(|e| e.to_string())?;
        let new_itos: Vec<String> = meta["pretrained_new_itos"]
            .as_array()
            .ok_or("meta.json has no pretrained_new_itos")?
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        fastai::match_embeds(&mut sd, &old_itos, &new_itos).map_err(|e| e.to_string())?;
        let mut dims = dims;
        dims.vocab_size = new_itos.len();
        let lm = LanguageModelConfig::new(encoder_config(&dims))
            .with_output_p(0.0)
            .init(device);
        let lm = weights::load_language_model(lm, &sd)
            .map_err(|e| e.to_string())?
            .valid();
        let fx = Fixture::read(&dir.join("pretrained_adapted.safetensors"))
            .map_err(|e| e.to_string())?;
        let want = fx.state_dict("param.");
        let mut cmp = Comparison::absolute(name, OUTPUT_TOL);
        let loaded = weights::language_model_state_dict(&lm);
        for (k, t) in loaded.iter() {
            match want.get(k) {
                Some(w) => cmp.compare(k, &t.data, &w.data),
                None => cmp.fail(format!("fixture lacks param.{k}")),
            }
        }
        // The tied copies fastai keeps under two more names must equal the embedding.
        let emb = loaded
            .get("0.encoder.weight")
            .map(|t| t.data.clone())
            .unwrap_or_default();
        for alias in ["0.encoder_dp.emb.weight", "1.decoder.weight"] {
            match want.get(alias) {
                Some(w) => cmp.compare(alias, &emb, &w.data),
                None => cmp.fail(format!("fixture lacks param.{alias}")),
            }
        }
        let input = fx.get("input").map_err(|e| e.to_string())?;
        let out = lm.forward(int_tensor(input, device), None);
        let logits = fx.get("logits").map_err(|e| e.to_string())?;
        cmp.compare("logits", &floats(out.logits), &logits.floats);
        Ok(cmp.finish("every parameter after match_embeds, and eval logits"))
    };
    run().unwrap_or_else(|e| failed(name, OUTPUT_TOL, e))
}
