//! Reading the fastai reference fixtures (safetensors files recorded from fastai itself).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::fastai::{RawTensor, StateDict};

/// Errors reading fixtures.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// A fixture file could not be read.
    #[error(
        "cannot read fixture {path}: {source} (the fixtures come with the project's shared/ \
             folder; set ULMFIT_FIXTURES to their directory, or regenerate them with generate.py there)"
    )]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A fixture file is not valid safetensors or JSON.
    #[error("fixture {path} is malformed: {detail}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A tensor the check needs is absent.
    #[error("fixture {path} has no tensor `{name}`")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        name: String,
    },
}

/// A tensor of a fixture: shape and values (floats as `f32`, integers as `i64`).
#[derive(Clone, Debug)]
pub struct FixtureTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Float values (empty for integer tensors).
    pub floats: Vec<f32>,
    /// Integer values (empty for float tensors).
    pub ints: Vec<i64>,
}

/// All tensors of one safetensors fixture file.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// Where it was read from.
    pub path: PathBuf,
    /// Tensors by name.
    pub tensors: HashMap<String, FixtureTensor>,
}

impl Fixture {
    /// Reads a safetensors file.
    pub fn read(path: &Path) -> Result<Self, FixtureError> {
        let bytes = std::fs::read(path).map_err(|source| FixtureError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let malformed = |detail: String| FixtureError::Malformed {
            path: path.to_path_buf(),
            detail,
        };
        let st = SafeTensors::deserialize(&bytes).map_err(|e| malformed(e.to_string()))?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let data = view.data();
            let (floats, ints) = match view.dtype() {
                Dtype::F32 => (
                    data.chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                    vec![],
                ),
                Dtype::F64 => (
                    data.chunks_exact(8)
                        .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
                        .collect(),
                    vec![],
                ),
                Dtype::I64 => (
                    vec![],
                    data.chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                        .collect(),
                ),
                other => return Err(malformed(format!("tensor {name} has dtype {other:?}"))),
            };
            tensors.insert(
                name.to_string(),
                FixtureTensor {
                    shape: view.shape().to_vec(),
                    floats,
                    ints,
                },
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
        })
    }

    /// The tensor `name`.
    pub fn get(&self, name: &str) -> Result<&FixtureTensor, FixtureError> {
        self.tensors.get(name).ok_or_else(|| FixtureError::Missing {
            path: self.path.clone(),
            name: name.to_string(),
        })
    }

    /// The float tensors whose names start with `prefix`, with the prefix removed, as a state dict.
    pub fn state_dict(&self, prefix: &str) -> StateDict {
        let mut names: Vec<&String> = self
            .tensors
            .keys()
            .filter(|k| k.starts_with(prefix))
            .collect();
        names.sort();
        let mut sd = StateDict::new();
        for name in names {
            let t = &self.tensors[name];
            if let Ok(raw) = RawTensor::new(t.shape.clone(), t.floats.clone()) {
                sd.insert(&name[prefix.len()..], raw);
            }
        }
        sd
    }
}

/// Reads `meta.json`.
pub fn read_meta(dir: &Path) -> Result<serde_json::Value, FixtureError> {
    let path = dir.join("meta.json");
    let text = std::fs::read_to_string(&path).map_err(|source| FixtureError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| FixtureError::Malformed {
        path,
        detail: e.to_string(),
    })
}
