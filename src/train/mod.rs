//! Training: losses, layer groups and freezing, fastai's optimizers, schedules, metrics and logs.

pub mod clas_learner;
pub mod groups;
pub mod learner;
pub mod lm_learner;
pub mod log;
pub mod loss;
pub mod lr_find;
pub mod metrics;
pub mod optimizer;
pub mod parallel;
pub mod plot;
pub mod schedule;
pub mod schedule_parity;

pub use clas_learner::{ClasMetrics, ClassifierLearner, LabelledDocs};
pub use groups::{LayerGroups, apply_freeze, classifier_groups, language_model_groups};
pub use learner::{LearnerConfig, Policy, TrainError};
pub use lm_learner::{LanguageModelLearner, LmLearnerConfig, LmMetrics};
pub use optimizer::{Optimizer, OptimizerConfig, OptimizerKind};
pub use parallel::DataParallel;
pub use schedule::{LrSpec, OneCycle, Schedule, Stlr};
