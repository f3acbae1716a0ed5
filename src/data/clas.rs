//! Classification batching: fastai v2's `SortedDL` + `Pad_Chunk` (spec §3.1).
//!
//! * Order. Validation/test: all documents sorted by decreasing length (stable: equal lengths
//!   keep their input order, like Python's `sorted(..., reverse=True)`). Training ("sortish"):
//!   a random permutation; the (first) longest document is swapped to the front; chunks of
//!   `50·bs` are each sorted by decreasing length; the result is cut into batches of `bs`; the
//!   first and last batches stay in place and the ones in between are shuffled. fastai's
//!   training loader also drops a final incomplete batch (`drop_last = shuffle`).
//! * Padding ([`pad_chunk`]). Each batch is padded to its longest document with `pad_idx`
//!   (1 = `xxpad`): with `l = max_len − len`, `(l / seq_len)·seq_len` pads go in front, then the
//!   document, then the remaining `l mod seq_len` pads, so every document starts on a multiple
//!   of `seq_len` (the BPT3C chunk length, spec §3.2).
//! * Backwards. fastai v2 reverses each document (`reverse_text`, a type transform run right
//!   after numericalisation) *before* batching, so the reversed document is padded exactly like
//!   a forward one (chunks of padding first).
//!
//! Every batch carries the dataset indices of its rows; [`restore_order`] puts per-row results
//! back in dataset order.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::DataError;

/// Configuration of a [`ClasDataLoader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClasLoaderConfig {
    /// Documents per batch. Default 64 (fastai v2 default `bs`).
    pub bs: usize,
    /// Chunk length of the padding, i.e. the classifier's BPTT length. Default 72 (fastai v2
    /// `TextBlock(seq_len=72)` → `Pad_Chunk(seq_len=72)`).
    pub seq_len: usize,
    /// Padding token id. Default 1 (`xxpad`, fastai `pad_idx=1`).
    pub pad_idx: i64,
    /// Put the whole chunks of padding in front of the text. Default `true` (fastai
    /// `Pad_Chunk(pad_first=True)`); `false` puts them after the text.
    pub pad_first: bool,
    /// Sortish random order (training loader). Default `false` (validation: sorted).
    pub shuffle: bool,
    /// Drop a final batch smaller than `bs`. Default `false`; fastai sets `drop_last = shuffle`
    /// (true for its training loader).
    pub drop_last: bool,
    /// Reverse every document before padding (fastai v2 `reverse_text`, spec §2.3).
    /// Default `false`.
    pub backwards: bool,
    /// Seed of the generator used for the sortish order. Default 0.
    pub seed: u64,
}

impl Default for ClasLoaderConfig {
    fn default() -> Self {
        Self {
            bs: 64,
            seq_len: 72,
            pad_idx: 1,
            pad_first: true,
            shuffle: false,
            drop_last: false,
            backwards: false,
            seed: 0,
        }
    }
}

impl ClasLoaderConfig {
    /// fastai's validation/test loader: sorted by decreasing length, nothing dropped.
    pub fn valid(bs: usize, seq_len: usize) -> Self {
        Self {
            bs,
            seq_len,
            ..Self::default()
        }
    }

    /// fastai's training loader: sortish order from `seed`, incomplete last batch dropped.
    pub fn train(bs: usize, seq_len: usize, seed: u64) -> Self {
        Self {
            bs,
            seq_len,
            shuffle: true,
            drop_last: true,
            seed,
            ..Self::default()
        }
    }

    /// Reverse the documents (backward classifier).
    pub fn with_backwards(mut self, backwards: bool) -> Self {
        self.backwards = backwards;
        self
    }
}

/// One padded classification batch, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClasBatch {
    /// Token ids, `bs × len`, row-major, padded as described in the module docs.
    pub x: Vec<i64>,
    /// Rows in this batch (the last batch may be smaller than the configured size).
    pub bs: usize,
    /// Padded length: the longest document of the batch.
    pub len: usize,
    /// True (unpadded) length of every row.
    pub lengths: Vec<usize>,
    /// Label of every row, when the loader has labels.
    pub labels: Option<Vec<i64>>,
    /// Dataset index of every row (see [`restore_order`]).
    pub indices: Vec<usize>,
}

impl ClasBatch {
    /// Token ids of row `row` (panics if `row >= bs`).
    pub fn row(&self, row: usize) -> &[i64] {
        &self.x[row * self.len..(row + 1) * self.len]
    }
}

/// Appends `doc` padded to `pad_len` tokens the way fastai's `pad_chunk` does: whole chunks of
/// `seq_len` pads on one side (front if `pad_first`), the remaining `l mod seq_len` pads on the
/// other, with `l = pad_len − doc.len()`. With `reverse` the document is written reversed.
///
/// Fails if the document is longer than `pad_len` or `seq_len` is 0.
pub fn pad_chunk_into(
    doc: &[u32],
    pad_len: usize,
    seq_len: usize,
    pad_idx: i64,
    pad_first: bool,
    reverse: bool,
    out: &mut Vec<i64>,
) -> Result<(), DataError> {
    if seq_len == 0 {
        return Err(DataError::Config("pad_chunk needs seq_len > 0".into()));
    }
    let Some(l) = pad_len.checked_sub(doc.len()) else {
        return Err(DataError::Config(format!(
            "pad_chunk: document of {} tokens is longer than pad_len {pad_len}",
            doc.len()
        )));
    };
    // pad_first: [chunk pads, doc, rest pads]; otherwise [doc, chunk pads, rest pads], i.e.
    // all padding after the text.
    let (front, back) = if pad_first {
        ((l / seq_len) * seq_len, l % seq_len)
    } else {
        (0, l)
    };
    out.extend(std::iter::repeat_n(pad_idx, front));
    if reverse {
        out.extend(doc.iter().rev().map(|&t| i64::from(t)));
    } else {
        out.extend(doc.iter().map(|&t| i64::from(t)));
    }
    out.extend(std::iter::repeat_n(pad_idx, back));
    Ok(())
}

/// `doc` padded to `pad_len` by [`pad_chunk_into`] (forward).
pub fn pad_chunk(
    doc: &[u32],
    pad_len: usize,
    seq_len: usize,
    pad_idx: i64,
    pad_first: bool,
) -> Result<Vec<i64>, DataError> {
    let mut out = Vec::with_capacity(pad_len);
    pad_chunk_into(doc, pad_len, seq_len, pad_idx, pad_first, false, &mut out)?;
    Ok(out)
}

/// Indices `0..lengths.len()` sorted by decreasing length, ties in input order (fastai
/// `SortedDL` without shuffling).
pub fn sorted_order(lengths: &[usize]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..lengths.len()).collect();
    idx.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]));
    idx
}

/// fastai `SortedDL.shuffle_fn`: the "sortish" training order for batches of `bs`.
pub fn sortish_order<R: rand::Rng + ?Sized>(
    lengths: &[usize],
    bs: usize,
    rng: &mut R,
) -> Vec<usize> {
    let n = lengths.len();
    if n == 0 {
        return Vec::new();
    }
    let bs = bs.max(1);
    // np.argmax: the first index of the longest document
    let mut idx_max = 0;
    for (i, &l) in lengths.iter().enumerate() {
        if l > lengths[idx_max] {
            idx_max = i;
        }
    }
    let mut idxs: Vec<usize> = (0..n).collect();
    idxs.shuffle(rng);
    if let Some(pos) = idxs.iter().position(|&i| i == idx_max) {
        idxs.swap(0, pos);
    }
    for chunk in idxs.chunks_mut(bs * 50) {
        chunk.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]));
    }
    let mut batches: Vec<&[usize]> = idxs.chunks(bs).collect();
    if batches.len() > 2 {
        let last = batches.len() - 1;
        batches[1..last].shuffle(rng);
    }
    batches.concat()
}

/// fastai v2's `SortedDL` with `Pad_Chunk`, over numericalised documents.
///
/// `S` is any owner or borrower of the documents (`Vec<Vec<u32>>`, `&[Vec<u32>]`, …).
#[derive(Debug)]
pub struct ClasDataLoader<S> {
    docs: S,
    labels: Option<Vec<usize>>,
    lengths: Vec<usize>,
    config: ClasLoaderConfig,
    order: Vec<usize>,
    rng: StdRng,
}

impl<S: AsRef<[Vec<u32>]>> ClasDataLoader<S> {
    /// Builds the loader. `labels`, when given, must have one entry per document.
    pub fn new(
        docs: S,
        labels: Option<Vec<usize>>,
        config: ClasLoaderConfig,
    ) -> Result<Self, DataError> {
        if config.bs == 0 || config.seq_len == 0 {
            return Err(DataError::Config(format!(
                "ClasDataLoader needs bs > 0 and seq_len > 0 (got bs {}, seq_len {})",
                config.bs, config.seq_len
            )));
        }
        let n = docs.as_ref().len();
        if let Some(l) = &labels
            && l.len() != n
        {
            return Err(DataError::Config(format!(
                "ClasDataLoader: {} labels for {n} documents",
                l.len()
            )));
        }
        let lengths: Vec<usize> = docs.as_ref().iter().map(Vec::len).collect();
        let order = sorted_order(&lengths);
        let rng = StdRng::seed_from_u64(config.seed);
        Ok(Self {
            docs,
            labels,
            lengths,
            config,
            order,
            rng,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClasLoaderConfig {
        &self.config
    }

    /// Number of documents.
    pub fn n_items(&self) -> usize {
        self.lengths.len()
    }

    /// Number of batches per epoch.
    pub fn len(&self) -> usize {
        let (n, bs) = (self.lengths.len(), self.config.bs);
        if self.config.drop_last {
            n / bs
        } else {
            n.div_ceil(bs)
        }
    }

    /// Whether an epoch has no batch at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Dataset indices in the current epoch's order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Starts an epoch (a new sortish order when `shuffle` is set) and iterates its batches.
    pub fn epoch(&mut self) -> ClasEpoch<'_, S> {
        if self.config.shuffle {
            self.order = sortish_order(&self.lengths, self.config.bs, &mut self.rng);
        }
        ClasEpoch {
            loader: self,
            next: 0,
        }
    }

    /// Batch `b` of the current order (`None` when `b >= len()`).
    pub fn batch(&self, b: usize) -> Option<ClasBatch> {
        if b >= self.len() {
            return None;
        }
        let bs = self.config.bs;
        let end = ((b + 1) * bs).min(self.order.len());
        let indices = self.order[b * bs..end].to_vec();
        self.collate(&indices).ok()
    }

    /// Pads the documents `indices` into one batch (in the given row order).
    pub fn collate(&self, indices: &[usize]) -> Result<ClasBatch, DataError> {
        let docs = self.docs.as_ref();
        let mut lengths = Vec::with_capacity(indices.len());
        for &i in indices {
            let len = self.lengths.get(i).copied().ok_or_else(|| {
                DataError::Config(format!("document index {i} out of range ({})", docs.len()))
            })?;
            lengths.push(len);
        }
        let len = lengths.iter().copied().max().unwrap_or(0);
        let c = &self.config;
        let mut x = Vec::with_capacity(indices.len() * len);
        for &i in indices {
            pad_chunk_into(
                &docs[i],
                len,
                c.seq_len,
                c.pad_idx,
                c.pad_first,
                c.backwards,
                &mut x,
            )?;
        }
        let labels = self
            .labels
            .as_ref()
            .map(|l| indices.iter().map(|&i| l[i] as i64).collect());
        Ok(ClasBatch {
            x,
            bs: indices.len(),
            len,
            lengths,
            labels,
            indices: indices.to_vec(),
        })
    }
}

/// The batches of one epoch of a [`ClasDataLoader`], in order.
#[derive(Debug)]
pub struct ClasEpoch<'a, S> {
    loader: &'a ClasDataLoader<S>,
    next: usize,
}

impl<S: AsRef<[Vec<u32>]>> Iterator for ClasEpoch<'_, S> {
    type Item = ClasBatch;

    fn next(&mut self) -> Option<ClasBatch> {
        let batch = self.loader.batch(self.next)?;
        self.next += 1;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.loader.len().saturating_sub(self.next);
        (left, Some(left))
    }
}

impl<S: AsRef<[Vec<u32>]>> ExactSizeIterator for ClasEpoch<'_, S> {}

/// Puts per-row results back in dataset order: `pairs` yields `(dataset index, result)` (zip
/// each batch's `indices` with its rows' results). Every index in `0..n` must appear exactly
/// once.
pub fn restore_order<T>(
    n: usize,
    pairs: impl IntoIterator<Item = (usize, T)>,
) -> Result<Vec<T>, DataError> {
    let mut slots: Vec<Option<T>> = (0..n).map(|_| None).collect();
    for (i, value) in pairs {
        let slot = slots
            .get_mut(i)
            .ok_or_else(|| DataError::Config(format!("restore_order: index {i} >= {n}")))?;
        if slot.replace(value).is_some() {
            return Err(DataError::Config(format!(
                "restore_order: index {i} given twice"
            )));
        }
    }
    slots
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            v.ok_or_else(|| DataError::Config(format!("restore_order: no result for index {i}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(n: usize, base: u32) -> Vec<u32> {
        (0..n as u32).map(|t| base + t).collect()
    }

    /// Spec §3.1 example: lengths 10/7/3, seq_len 4 → `[x×10]`, `[x×7, pad×3]`,
    /// `[pad×4, x×3, pad×3]`.
    #[test]
    fn spec_padding_example() {
        let docs = vec![doc(3, 100), doc(10, 10), doc(7, 50)];
        let mut dl = ClasDataLoader::new(&docs, None, ClasLoaderConfig::valid(3, 4)).unwrap();
        let b: Vec<ClasBatch> = dl.epoch().collect();
        assert_eq!(b.len(), 1);
        let b = &b[0];
        assert_eq!((b.bs, b.len), (3, 10));
        assert_eq!(b.indices, vec![1, 2, 0]);
        assert_eq!(b.lengths, vec![10, 7, 3]);
        let x = |d: &[u32]| d.iter().map(|&t| i64::from(t)).collect::<Vec<_>>();
        assert_eq!(b.row(0), x(&docs[1]));
        assert_eq!(b.row(1), [x(&docs[2]), vec![1; 3]].concat());
        assert_eq!(b.row(2), [vec![1; 4], x(&docs[0]), vec![1; 3]].concat());
    }

    /// fastai's own `pad_input_chunk` tests (seq_len 2, pad 0), both pad_first settings.
    #[test]
    fn fastai_pad_chunk_examples() {
        assert_eq!(
            pad_chunk(&[1, 2, 3], 6, 2, 0, true).unwrap(),
            vec![0, 0, 1, 2, 3, 0]
        );
        assert_eq!(
            pad_chunk(&[1, 2], 6, 2, 0, true).unwrap(),
            vec![0, 0, 0, 0, 1, 2]
        );
        assert_eq!(
            pad_chunk(&[1, 2, 3], 6, 2, 0, false).unwrap(),
            vec![1, 2, 3, 0, 0, 0]
        );
        assert_eq!(
            pad_chunk(&[1, 2], 6, 2, 0, false).unwrap(),
            vec![1, 2, 0, 0, 0, 0]
        );
        assert!(pad_chunk(&[1, 2, 3], 2, 2, 0, true).is_err());
        assert!(pad_chunk(&[1], 2, 0, 0, true).is_err());
    }

    /// `clas_eval.safetensors`: the documents (tokens ≠ pad, all ≥ 2 by construction) are taken
    /// out of fastai's padded input, shuffled, and batched again: the batch must equal it.
    #[test]
    fn fixture_padding_parity() {
        let path = crate::data::test_paths::fixture("clas_eval.safetensors");
        let meta = crate::data::test_paths::fixture("meta.json");
        let report = crate::data::clas_padding_check(&path, &meta).unwrap();
        assert!(report.passed, "{report:?}");
        assert_eq!(report.rows, 4);
    }

    #[test]
    fn backwards_reverses_before_padding() {
        let docs = vec![doc(9, 10), doc(3, 50)];
        let cfg = ClasLoaderConfig::valid(2, 4).with_backwards(true);
        let mut dl = ClasDataLoader::new(&docs, Some(vec![1, 0]), cfg).unwrap();
        let b = dl.epoch().next().unwrap();
        assert_eq!(b.row(0), (10..19).rev().collect::<Vec<i64>>());
        // l = 6 → one chunk of 4 pads first, reversed text, 2 pads after
        assert_eq!(
            b.row(1),
            [vec![1; 4], vec![52, 51, 50], vec![1; 2]].concat()
        );
        assert_eq!(b.labels, Some(vec![1, 0]));
    }

    #[test]
    fn valid_order_is_stable_and_complete() {
        let lens = [3usize, 5, 3, 1, 5, 2, 3];
        let docs: Vec<Vec<u32>> = lens.iter().map(|&n| doc(n, 2)).collect();
        let mut dl = ClasDataLoader::new(&docs, None, ClasLoaderConfig::valid(3, 2)).unwrap();
        let batches: Vec<ClasBatch> = dl.epoch().collect();
        assert_eq!(batches.len(), 3);
        let order: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        assert_eq!(order, vec![1, 4, 0, 2, 6, 5, 3]);
        assert_eq!(batches[2].bs, 1);
        assert_eq!(batches[2].len, 1);
    }

    #[test]
    fn sortish_invariants() {
        // 1000 documents, bs 8: chunks of 400, 125 batches
        let lens: Vec<usize> = (0..1000).map(|i| 1 + (i * 7919) % 97).collect();
        let docs: Vec<Vec<u32>> = lens.iter().map(|&n| doc(n, 2)).collect();
        let labels: Vec<usize> = (0..1000).map(|i| i % 3).collect();
        let cfg = ClasLoaderConfig::train(8, 4, 11);
        let mut dl = ClasDataLoader::new(&docs, Some(labels.clone()), cfg.clone()).unwrap();
        let e1: Vec<ClasBatch> = dl.epoch().collect();
        let e2: Vec<ClasBatch> = dl.epoch().collect();
        let mut again = ClasDataLoader::new(&docs, Some(labels.clone()), cfg).unwrap();
        assert_eq!(e1, again.epoch().collect::<Vec<_>>(), "seeded");
        assert_ne!(e1, e2, "new order every epoch");
        for epoch in [&e1, &e2] {
            assert_eq!(epoch.len(), 125);
            // longest document first
            assert_eq!(epoch[0].len, 97);
            assert_eq!(epoch[0].lengths[0], 97);
            let mut all: Vec<usize> = epoch.iter().flat_map(|b| b.indices.clone()).collect();
            all.sort_unstable();
            assert_eq!(all, (0..1000).collect::<Vec<_>>());
            for b in epoch.iter() {
                // rows sorted by decreasing length inside each batch; labels follow indices
                assert!(b.lengths.windows(2).all(|w| w[0] >= w[1]));
                let lbl: Vec<i64> = b.indices.iter().map(|&i| labels[i] as i64).collect();
                assert_eq!(b.labels.as_ref(), Some(&lbl));
                assert_eq!(b.len, b.lengths[0]);
            }
        }
        // not globally sorted: batch lengths go up and down
        let maxes: Vec<usize> = e1.iter().map(|b| b.len).collect();
        assert!(maxes.windows(2).any(|w| w[0] < w[1]));
    }

    #[test]
    fn sortish_keeps_first_and_last_batch_and_drops_partial() {
        // 10 documents, bs 3 → 4 batches, the last of 1 item (dropped with drop_last)
        let lens: Vec<usize> = vec![4, 9, 2, 7, 7, 1, 3, 8, 5, 6];
        let mut rng = StdRng::seed_from_u64(3);
        let order = sortish_order(&lens, 3, &mut rng);
        assert_eq!(order.len(), 10);
        assert_eq!(order[0], 1, "longest first");
        // a single chunk (50·bs > n) is fully sorted before batching: the last batch holds
        // the shortest document
        assert_eq!(order[9], 5);
        let docs: Vec<Vec<u32>> = lens.iter().map(|&n| doc(n, 2)).collect();
        let mut dl = ClasDataLoader::new(&docs, None, ClasLoaderConfig::train(3, 2, 0)).unwrap();
        assert_eq!(dl.len(), 3);
        assert!(dl.epoch().all(|b| b.bs == 3));
    }

    #[test]
    fn restore_order_roundtrip_and_errors() {
        let lens = [2usize, 6, 4, 1, 3];
        let docs: Vec<Vec<u32>> = lens.iter().map(|&n| doc(n, 2)).collect();
        let mut dl = ClasDataLoader::new(&docs, None, ClasLoaderConfig::valid(2, 2)).unwrap();
        let pairs: Vec<(usize, usize)> = dl
            .epoch()
            .flat_map(|b| b.indices.into_iter().zip(b.lengths))
            .collect();
        assert_eq!(restore_order(5, pairs).unwrap(), lens.to_vec());
        assert!(restore_order(2, vec![(0, 'a'), (0, 'b')]).is_err());
        assert!(restore_order(2, vec![(0, 'a')]).is_err());
        assert!(restore_order(1, vec![(3, 'a')]).is_err());
    }

    #[test]
    fn bad_config() {
        let docs = vec![doc(2, 2)];
        assert!(
            ClasDataLoader::new(&docs, Some(vec![0, 1]), ClasLoaderConfig::valid(2, 2)).is_err()
        );
        assert!(ClasDataLoader::new(&docs, None, ClasLoaderConfig::valid(0, 2)).is_err());
        assert!(ClasDataLoader::new(&docs, None, ClasLoaderConfig::valid(2, 0)).is_err());
    }
}
