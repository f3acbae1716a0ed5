//! Layer groups as fastai's splitters define them (spec section 4.7), and freezing.
//!
//! * Language model (`awd_lstm_lm_split`): 4 groups, one per LSTM layer, then the embedding with
//!   the decoder (the tied matrix and the decoder bias).
//! * Classifier (`awd_lstm_clas_split`): 5 groups: the embedding, one per LSTM layer, the head.
//!
//! `freeze_to(n)` stops gradients for groups `[0, n)` (negative `n` counts from the end). As in
//! fastai (`train_bn=True`), BatchNorm parameters stay trainable in frozen groups. Frozen
//! parameters are not tracked by autodiff at all, so they cost no gradient computation.

use std::collections::HashSet;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

use crate::nn::{LanguageModel, TextClassifier};

/// Parameter ids of a module and its sub-modules.
pub fn param_ids<M: Module>(module: &M) -> Vec<ParamId> {
    struct Ids(Vec<ParamId>);
    impl ModuleVisitor for Ids {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.id);
        }
    }
    let mut ids = Ids(vec![]);
    module.visit(&mut ids);
    ids.0
}

/// A model's parameters split into ordered groups, plus the parameters exempt from weight decay
/// and those that stay trainable when their group is frozen.
#[derive(Clone, Debug, Default)]
pub struct LayerGroups {
    /// Parameter ids of each group, first group first.
    pub groups: Vec<Vec<ParamId>>,
    /// Parameters without weight decay (fastai: the decoder bias and BatchNorm parameters).
    pub no_weight_decay: HashSet<ParamId>,
    /// Parameters never frozen (fastai `train_bn`: BatchNorm parameters).
    pub always_trainable: HashSet<ParamId>,
}

impl LayerGroups {
    /// Number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether there are no groups.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The group index of a parameter.
    pub fn group_of(&self, id: &ParamId) -> Option<usize> {
        self.groups.iter().position(|g| g.contains(id))
    }

    /// Resolves fastai's `freeze_to(n)` index: groups `[0, result)` are frozen.
    pub fn frozen_prefix(&self, n: isize) -> usize {
        let len = self.len() as isize;
        let k = if n < 0 { len + n } else { n };
        k.clamp(0, len) as usize
    }
}

/// fastai's `awd_lstm_lm_split`.
pub fn language_model_groups(lm: &LanguageModel) -> LayerGroups {
    let mut groups: Vec<Vec<ParamId>> = lm.encoder.rnns.iter().map(param_ids).collect();
    groups.push(vec![lm.encoder.embedding.id, lm.decoder.bias.id]);
    LayerGroups {
        groups,
        no_weight_decay: HashSet::from([lm.decoder.bias.id]),
        always_trainable: HashSet::new(),
    }
}

/// fastai's `awd_lstm_clas_split`.
pub fn classifier_groups(clas: &TextClassifier) -> LayerGroups {
    let mut groups = vec![vec![clas.encoder.embedding.id]];
    groups.extend(clas.encoder.rnns.iter().map(param_ids));
    // Listed by hand: a visitor would also report the BatchNorm running statistics, which are
    // buffers, not parameters.
    let mut head = vec![];
    let mut bn = HashSet::new();
    for b in &clas.head.blocks {
        head.extend([b.bn.weight.id, b.bn.bias.id, b.linear.weight.id]);
        head.extend(b.linear.bias.as_ref().map(|p| p.id));
        bn.extend([b.bn.weight.id, b.bn.bias.id]);
    }
    groups.push(head);
    LayerGroups {
        groups,
        no_weight_decay: bn.clone(),
        always_trainable: bn,
    }
}

/// Makes the parameters of groups `[0, frozen)` untracked (no gradient) and every other one
/// tracked, keeping `always_trainable` parameters tracked.
pub fn apply_freeze<M: Module>(module: M, groups: &LayerGroups, frozen: usize) -> M {
    struct Freeze<'a> {
        groups: &'a LayerGroups,
        frozen: usize,
    }
    impl ModuleMapper for Freeze<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let frozen = !self.groups.always_trainable.contains(&param.id)
                && self
                    .groups
                    .group_of(&param.id)
                    .is_some_and(|g| g < self.frozen);
            param.set_require_grad(!frozen)
        }
    }
    module.map(&mut Freeze { groups, frozen })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{AwdLstmConfig, LanguageModelConfig, TextClassifierConfig};
    use crate::test_util::test_device;

    fn enc() -> AwdLstmConfig {
        AwdLstmConfig::new(16)
            .with_emb_size(4)
            .with_hidden_size(6)
            .with_n_layers(3)
    }

    #[test]
    fn group_counts_match_fastai() {
        let device = test_device();
        let lm = LanguageModelConfig::new(enc()).init(&device);
        let g = language_model_groups(&lm);
        assert_eq!(
            g.groups.iter().map(Vec::len).collect::<Vec<_>>(),
            [4, 4, 4, 2]
        );
        let clas = TextClassifierConfig::new(enc(), 2).init(&device);
        let g = classifier_groups(&clas);
        // Head: two blocks of BatchNorm (weight, bias) + Linear weight.
        assert_eq!(
            g.groups.iter().map(Vec::len).collect::<Vec<_>>(),
            [1, 4, 4, 4, 6]
        );
        assert_eq!(g.always_trainable.len(), 4);
        assert_eq!(g.frozen_prefix(-1), 4);
        assert_eq!(g.frozen_prefix(-2), 3);
        assert_eq!(g.frozen_prefix(0), 0);
    }
}
