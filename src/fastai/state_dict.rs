//! A burn-free, ordered state dict: tensor name -> shape + `f32` data.

use std::collections::HashMap;

use super::FastaiError;

/// The element type a tensor had in the file before it was converted to `f32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceDType {
    /// 32-bit float (every fastai weight).
    F32,
    /// 64-bit float, rounded to `f32`.
    F64,
    /// IEEE half, widened exactly.
    F16,
    /// bfloat16, widened exactly.
    BF16,
    /// An integer type (e.g. BatchNorm's `num_batches_tracked`, stored as `int64`), converted
    /// with `as f32`: exact up to 2^24 in magnitude, rounded beyond.
    Int,
    /// `bool`, converted to 0.0 / 1.0.
    Bool,
}

/// One tensor: a row-major `f32` buffer and its shape.
///
/// Every element type is converted to `f32` when read (see [`SourceDType`]): fastai weights
/// are `float32`, and the only integer tensors in fastai state dicts are BatchNorm's
/// `num_batches_tracked` counters, which no forward pass uses.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    /// Extents, outermost first (PyTorch order, e.g. `[4*H, in]` for `weight_ih_l0`). Empty for
    /// a scalar.
    pub shape: Vec<usize>,
    /// Elements in row-major order; `data.len()` is the product of `shape`.
    pub data: Vec<f32>,
    /// The element type the file stored.
    pub source_dtype: SourceDType,
}

impl RawTensor {
    /// A `float32` tensor; fails if `data.len()` is not the product of `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, FastaiError> {
        let expected = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if expected != Some(data.len()) {
            return Err(FastaiError::ElementCount {
                name: "(new tensor)".into(),
                shape,
                len: data.len(),
            });
        }
        Ok(Self {
            shape,
            data,
            source_dtype: SourceDType::F32,
        })
    }

    /// A `float32` tensor of zeros.
    pub fn zeros(shape: Vec<usize>) -> Self {
        let len = shape.iter().product();
        Self {
            shape,
            data: vec![0.0; len],
            source_dtype: SourceDType::F32,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Row `i` of a 2-D tensor, `None` if the tensor is not 2-D or `i` is out of range.
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        let [rows, cols] = self.shape[..] else {
            return None;
        };
        if i >= rows {
            return None;
        }
        self.data
            .get(i.checked_mul(cols)?..(i + 1).checked_mul(cols)?)
    }
}

/// An ordered map from tensor name to [`RawTensor`].
///
/// Read from a file ([`read_pth`](super::read_pth)) it keeps the file's key order (the order
/// of `model.state_dict()`). After [`normalize_keys`](super::normalize_keys) it holds the
/// canonical names (see [`keys`](super::keys)) in canonical order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict {
    entries: Vec<(String, RawTensor)>,
    /// Name -> position in `entries` (lookups stay O(1) on files with many tensors).
    index: HashMap<String, usize>,
}

impl StateDict {
    /// An empty state dict.
    pub fn new() -> Self {
        Self::default()
    }

    /// Insert `tensor` under `name`. An existing entry keeps its position and gets the new
    /// value (which is returned); a new entry goes last.
    pub fn insert(&mut self, name: impl Into<String>, tensor: RawTensor) -> Option<RawTensor> {
        let name = name.into();
        match self.position(&name) {
            Some(i) => Some(std::mem::replace(&mut self.entries[i].1, tensor)),
            None => {
                self.index.insert(name.clone(), self.entries.len());
                self.entries.push((name, tensor));
                None
            }
        }
    }

    /// The tensor under `name`.
    pub fn get(&self, name: &str) -> Option<&RawTensor> {
        self.position(name).map(|i| &self.entries[i].1)
    }

    /// The tensor under `name`, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut RawTensor> {
        self.position(name).map(|i| &mut self.entries[i].1)
    }

    /// Remove and return the tensor under `name`, keeping the order of the others.
    pub fn remove(&mut self, name: &str) -> Option<RawTensor> {
        let i = self.index.remove(name)?;
        let (_, tensor) = self.entries.remove(i);
        for (k, _) in &self.entries[i..] {
            if let Some(pos) = self.index.get_mut(k) {
                *pos -= 1;
            }
        }
        Some(tensor)
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// `(name, tensor)` pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawTensor)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Total number of elements over all tensors.
    pub fn num_elements(&self) -> usize {
        self.entries.iter().map(|(_, t)| t.len()).sum()
    }

    /// Fail with [`FastaiError::NonFinite`], naming the first tensor (in order) that holds a
    /// NaN or an infinity. Loading never checks this by itself: a file with NaN weights loads.
    pub fn check_finite(&self) -> Result<(), FastaiError> {
        for (name, tensor) in &self.entries {
            if let Some((index, &value)) =
                tensor.data.iter().enumerate().find(|(_, v)| !v.is_finite())
            {
                return Err(FastaiError::NonFinite {
                    name: name.clone(),
                    index,
                    value,
                });
            }
        }
        Ok(())
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
}

impl IntoIterator for StateDict {
    type Item = (String, RawTensor);
    type IntoIter = std::vec::IntoIter<(String, RawTensor)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl FromIterator<(String, RawTensor)> for StateDict {
    fn from_iter<I: IntoIterator<Item = (String, RawTensor)>>(iter: I) -> Self {
        let mut dict = Self::new();
        for (k, v) in iter {
            dict.insert(k, v);
        }
        dict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], data: &[f32]) -> RawTensor {
        RawTensor::new(shape.to_vec(), data.to_vec()).expect("valid tensor")
    }

    #[test]
    fn keeps_insertion_order_and_replaces_in_place() {
        let mut sd = StateDict::new();
        sd.insert("b", t(&[1], &[1.0]));
        sd.insert("a", t(&[1], &[2.0]));
        sd.insert("c", t(&[1], &[3.0]));
        let old = sd.insert("a", t(&[2], &[4.0, 5.0]));
        assert_eq!(old, Some(t(&[1], &[2.0])));
        assert_eq!(sd.keys().collect::<Vec<_>>(), ["b", "a", "c"]);
        assert_eq!(sd.get("a").map(|x| x.shape.clone()), Some(vec![2]));
        assert_eq!(sd.remove("b"), Some(t(&[1], &[1.0])));
        assert_eq!(sd.keys().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(sd.get("c"), Some(&t(&[1], &[3.0])));
        sd.insert("d", t(&[1], &[6.0]));
        assert_eq!(sd.remove("a").map(|x| x.len()), Some(2));
        assert_eq!(sd.keys().collect::<Vec<_>>(), ["c", "d"]);
        assert_eq!(sd.get("d"), Some(&t(&[1], &[6.0])));
        assert_eq!(sd.remove("zz"), None);
        assert_eq!(sd.num_elements(), 2);
    }

    #[test]
    fn new_rejects_wrong_element_count() {
        assert!(matches!(
            RawTensor::new(vec![2, 3], vec![0.0; 5]),
            Err(FastaiError::ElementCount { len: 5, .. })
        ));
        assert!(RawTensor::new(vec![usize::MAX, 2], vec![]).is_err());
        assert_eq!(t(&[], &[7.0]).len(), 1);
    }

    #[test]
    fn check_finite_names_the_tensor() {
        let mut sd = StateDict::new();
        sd.insert("ok", t(&[2], &[1.0, 2.0]));
        assert!(sd.check_finite().is_ok());
        sd.insert("bad", t(&[3], &[0.0, f32::NAN, f32::INFINITY]));
        match sd.check_finite() {
            Err(FastaiError::NonFinite { name, index, value }) => {
                assert_eq!(name, "bad");
                assert_eq!(index, 1);
                assert!(value.is_nan());
            }
            other => panic!("expected NonFinite, got {other:?}"),
        }
    }

    #[test]
    fn row_access_is_bounds_checked() {
        let m = t(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m.row(1), Some(&[3.0, 4.0][..]));
        assert_eq!(m.row(2), None);
        assert_eq!(t(&[4], &[0.0; 4]).row(0), None);
    }
}
