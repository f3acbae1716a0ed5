//! Training: losses, layer groups and freezing, fastai's optimizers, schedules, metrics and logs.

pub mod groups;
pub mod log;
pub mod loss;
pub mod metrics;
pub mod optimizer;
pub mod plot;
pub mod schedule;

pub use groups::{LayerGroups, apply_freeze, classifier_groups, language_model_groups};
pub use optimizer::{Optimizer, OptimizerConfig, OptimizerKind};
pub use schedule::{LrSpec, OneCycle, Schedule, Stlr};
