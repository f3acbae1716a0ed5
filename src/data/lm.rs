//! Language-model batching: fastai v2's `LMDataLoader` (spec §2.1) with the backward option of
//! §2.3.
//!
//! All documents are read as one token stream S of N tokens (in document order, shuffled once
//! per epoch for training). With `bl = ⌊(N−1)/bs⌋` the stream is cut into `bs` rows, row `j`
//! reading `S[j·bl .. (j+1)·bl + 1]` (one token borrowed from the next row for the last target).
//! Batch `b` holds, for every row, the window starting at `b·seq_len` of length `seq_len` (the
//! final batch is shorter: `bl − (n_batches−1)·seq_len`); targets are the same window shifted by
//! one token. Rows continue from one batch to the next, so a model carries its hidden state.
//!
//! Nothing is concatenated: batches are read straight out of the documents through a table of
//! cumulative lengths.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::DataError;

/// Configuration of an [`LmDataLoader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmLoaderConfig {
    /// Rows per batch. Default 64 (fastai v2 `LMDataLoader(bs=64)`).
    pub bs: usize,
    /// Tokens per row and batch (BPTT length). Default 72 (fastai v2 `LMDataLoader(seq_len=72)`;
    /// the paper uses 70, fastai v1 `bptt=70`).
    pub seq_len: usize,
    /// Shuffle the order of the documents at the start of every epoch (training loader).
    /// Default `false` (fastai's validation loader; `dls.train` uses `True`).
    pub shuffle: bool,
    /// Read every document reversed (fastai v2 `TextBlock(backwards=True)` → `reverse_text`,
    /// spec §2.3): each document is flipped individually, the document order is unchanged.
    /// Default `false`.
    pub backwards: bool,
    /// Seed of the generator used for shuffling. Default 0.
    pub seed: u64,
}

impl Default for LmLoaderConfig {
    fn default() -> Self {
        Self {
            bs: 64,
            seq_len: 72,
            shuffle: false,
            backwards: false,
            seed: 0,
        }
    }
}

impl LmLoaderConfig {
    /// A validation-style configuration (no shuffling, forward) with the given sizes.
    pub fn new(bs: usize, seq_len: usize) -> Self {
        Self {
            bs,
            seq_len,
            ..Self::default()
        }
    }

    /// Shuffle documents every epoch with a generator seeded by `seed`.
    pub fn with_shuffle(mut self, seed: u64) -> Self {
        self.shuffle = true;
        self.seed = seed;
        self
    }

    /// Read the documents reversed (backward language model).
    pub fn with_backwards(mut self, backwards: bool) -> Self {
        self.backwards = backwards;
        self
    }
}

/// One language-model batch, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmBatch {
    /// Inputs, `bs × seq_len` token ids, row-major.
    pub x: Vec<i64>,
    /// Targets (inputs shifted by one token), `bs × seq_len`, row-major.
    pub y: Vec<i64>,
    /// Number of rows.
    pub bs: usize,
    /// Tokens per row in this batch (smaller than the configured length for the last batch).
    pub seq_len: usize,
}

impl LmBatch {
    /// Inputs of row `row` (panics if `row >= bs`).
    pub fn x_row(&self, row: usize) -> &[i64] {
        &self.x[row * self.seq_len..(row + 1) * self.seq_len]
    }

    /// Targets of row `row` (panics if `row >= bs`).
    pub fn y_row(&self, row: usize) -> &[i64] {
        &self.y[row * self.seq_len..(row + 1) * self.seq_len]
    }
}

/// fastai v2's `LMDataLoader` over numericalised documents.
///
/// `S` is any owner or borrower of the documents: `Vec<Vec<u32>>`, `&[Vec<u32>]`,
/// `Arc<[Vec<u32>]>`, … Each call of [`LmDataLoader::epoch`] starts a new epoch (shuffling the
/// documents first when configured, as fastai does at the start of every iteration, the first
/// included) and returns an iterator over its batches.
#[derive(Debug)]
pub struct LmDataLoader<S> {
    docs: S,
    config: LmLoaderConfig,
    /// Document indices in stream order.
    order: Vec<usize>,
    /// `cum[k]` = stream position of the first token of `order[k]`; `cum[n_docs]` = N.
    cum: Vec<usize>,
    /// Tokens per row (`bl` in fastai).
    bl: usize,
    n_batches: usize,
    last_len: usize,
    rng: StdRng,
}

impl<S: AsRef<[Vec<u32>]>> LmDataLoader<S> {
    /// Builds the loader. Fails on `bs == 0` or `seq_len == 0`. A corpus too small to fill one
    /// token per row gives a loader with no batches.
    pub fn new(docs: S, config: LmLoaderConfig) -> Result<Self, DataError> {
        if config.bs == 0 || config.seq_len == 0 {
            return Err(DataError::Config(format!(
                "LmDataLoader needs bs > 0 and seq_len > 0 (got bs {}, seq_len {})",
                config.bs, config.seq_len
            )));
        }
        let n_docs = docs.as_ref().len();
        let n_tokens: usize = docs.as_ref().iter().map(Vec::len).sum();
        // fastai: corpus = round_multiple(N - 1, bs, round_down=True); bl = corpus // bs
        let bl = n_tokens.saturating_sub(1) / config.bs;
        let n_batches = bl.div_ceil(config.seq_len);
        let last_len = if n_batches == 0 {
            0
        } else {
            bl - (n_batches - 1) * config.seq_len
        };
        let rng = StdRng::seed_from_u64(config.seed);
        let mut loader = Self {
            docs,
            config,
            order: (0..n_docs).collect(),
            cum: Vec::with_capacity(n_docs + 1),
            bl,
            n_batches,
            last_len,
            rng,
        };
        loader.rebuild_cum();
        Ok(loader)
    }

    fn rebuild_cum(&mut self) {
        let docs = self.docs.as_ref();
        self.cum.clear();
        let mut total = 0usize;
        self.cum.push(0);
        for &d in &self.order {
            total += docs[d].len();
            self.cum.push(total);
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LmLoaderConfig {
        &self.config
    }

    /// Number of batches per epoch.
    pub fn len(&self) -> usize {
        self.n_batches
    }

    /// Whether an epoch has no batch at all.
    pub fn is_empty(&self) -> bool {
        self.n_batches == 0
    }

    /// Total number of tokens N in the corpus.
    pub fn n_tokens(&self) -> usize {
        self.cum.last().copied().unwrap_or(0)
    }

    /// Tokens read per row in one epoch (fastai's `bl`).
    pub fn row_len(&self) -> usize {
        self.bl
    }

    /// Document indices in the current stream order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The documents.
    pub fn docs(&self) -> &[Vec<u32>] {
        self.docs.as_ref()
    }

    /// Starts an epoch: shuffles the document order when configured, then iterates its batches.
    pub fn epoch(&mut self) -> LmEpoch<'_, S> {
        if self.config.shuffle {
            self.order.shuffle(&mut self.rng);
            self.rebuild_cum();
        }
        LmEpoch {
            loader: self,
            next: 0,
        }
    }

    /// Batch `b` of the current document order (`None` when `b >= len()`).
    pub fn batch(&self, b: usize) -> Option<LmBatch> {
        if b >= self.n_batches {
            return None;
        }
        let bs = self.config.bs;
        let sl = if b + 1 == self.n_batches {
            self.last_len
        } else {
            self.config.seq_len
        };
        let mut x = Vec::with_capacity(bs * sl);
        let mut y = Vec::with_capacity(bs * sl);
        let mut window = Vec::with_capacity(sl + 1);
        for row in 0..bs {
            let start = row * self.bl + b * self.config.seq_len;
            window.clear();
            self.read_stream(start, sl + 1, &mut window);
            x.extend_from_slice(&window[..sl]);
            y.extend_from_slice(&window[1..]);
        }
        Some(LmBatch {
            x,
            y,
            bs,
            seq_len: sl,
        })
    }

    /// Appends `n` tokens of the stream starting at position `start` to `out`.
    /// Callers guarantee `start + n <= N` (`bs·bl + 1 <= N`).
    fn read_stream(&self, start: usize, n: usize, out: &mut Vec<i64>) {
        let docs = self.docs.as_ref();
        // index k of the document in stream order that holds position `start`
        let mut k = self.cum.partition_point(|&c| c <= start).saturating_sub(1);
        let mut offset = start - self.cum[k];
        let mut remaining = n;
        while remaining > 0 && k < self.order.len() {
            let doc = &docs[self.order[k]];
            let take = (doc.len() - offset.min(doc.len())).min(remaining);
            if self.config.backwards {
                let end = doc.len() - offset;
                out.extend(doc[end - take..end].iter().rev().map(|&t| i64::from(t)));
            } else {
                out.extend(doc[offset..offset + take].iter().map(|&t| i64::from(t)));
            }
            remaining -= take;
            offset = 0;
            k += 1;
        }
    }
}

/// The batches of one epoch of an [`LmDataLoader`], in order.
#[derive(Debug)]
pub struct LmEpoch<'a, S> {
    loader: &'a LmDataLoader<S>,
    next: usize,
}

impl<S: AsRef<[Vec<u32>]>> Iterator for LmEpoch<'_, S> {
    type Item = LmBatch;

    fn next(&mut self) -> Option<LmBatch> {
        let batch = self.loader.batch(self.next)?;
        self.next += 1;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.loader.len().saturating_sub(self.next);
        (left, Some(left))
    }
}

impl<S: AsRef<[Vec<u32>]>> ExactSizeIterator for LmEpoch<'_, S> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn batches(docs: &[Vec<u32>], config: LmLoaderConfig) -> Vec<LmBatch> {
        let mut dl = LmDataLoader::new(docs, config).unwrap();
        dl.epoch().collect()
    }

    fn rows(b: &LmBatch) -> (Vec<Vec<i64>>, Vec<Vec<i64>>) {
        (
            (0..b.bs).map(|r| b.x_row(r).to_vec()).collect(),
            (0..b.bs).map(|r| b.y_row(r).to_vec()).collect(),
        )
    }

    /// The two examples of fastai's own `LMDataLoader` tests (nbs/31_text.data.ipynb).
    #[test]
    fn fastai_notebook_examples() {
        let docs: Vec<Vec<u32>> = vec![
            (0..5).collect(),
            (5..11).collect(),
            (11..19).collect(),
            vec![19, 20],
            vec![21, 22],
        ];
        let got = batches(&docs, LmLoaderConfig::new(4, 3));
        assert_eq!(got.len(), 2);
        assert_eq!(
            rows(&got[0]),
            (
                vec![
                    vec![0, 1, 2],
                    vec![5, 6, 7],
                    vec![10, 11, 12],
                    vec![15, 16, 17]
                ],
                vec![
                    vec![1, 2, 3],
                    vec![6, 7, 8],
                    vec![11, 12, 13],
                    vec![16, 17, 18]
                ]
            )
        );
        assert_eq!(
            rows(&got[1]),
            (
                vec![vec![3, 4], vec![8, 9], vec![13, 14], vec![18, 19]],
                vec![vec![4, 5], vec![9, 10], vec![14, 15], vec![19, 20]]
            )
        );

        let docs: Vec<Vec<u32>> = vec![
            (0..5).collect(),
            (5..11).collect(),
            (11..19).collect(),
            vec![19, 20],
            vec![21, 22, 23],
            vec![24],
        ];
        let got = batches(&docs, LmLoaderConfig::new(4, 3));
        assert_eq!(got.len(), 2);
        assert_eq!(
            rows(&got[0]).0,
            vec![
                vec![0, 1, 2],
                vec![6, 7, 8],
                vec![12, 13, 14],
                vec![18, 19, 20]
            ]
        );
        assert_eq!(
            rows(&got[1]).1,
            vec![
                vec![4, 5, 6],
                vec![10, 11, 12],
                vec![16, 17, 18],
                vec![22, 23, 24]
            ]
        );
    }

    /// Spec §2.1 example: documents of 7, 5, 9, 4 tokens, bs 2, seq_len 4 → bl 12, 3 batches.
    #[test]
    fn spec_example_geometry() {
        let lens = [7u32, 5, 9, 4];
        let mut next = 0u32;
        let docs: Vec<Vec<u32>> = lens
            .iter()
            .map(|&n| {
                let d = (next..next + n).collect();
                next += n;
                d
            })
            .collect();
        let dl = LmDataLoader::new(&docs, LmLoaderConfig::new(2, 4)).unwrap();
        assert_eq!(dl.row_len(), 12);
        assert_eq!(dl.len(), 3);
        let got: Vec<LmBatch> = (0..3).filter_map(|b| dl.batch(b)).collect();
        let row0: Vec<i64> = got.iter().flat_map(|b| b.x_row(0).to_vec()).collect();
        let row1: Vec<i64> = got.iter().flat_map(|b| b.x_row(1).to_vec()).collect();
        let tgt1: Vec<i64> = got.iter().flat_map(|b| b.y_row(1).to_vec()).collect();
        assert_eq!(row0, (0..12).collect::<Vec<i64>>());
        assert_eq!(row1, (12..24).collect::<Vec<i64>>());
        assert_eq!(tgt1, (13..25).collect::<Vec<i64>>());
    }

    #[test]
    fn fixture_parity() {
        let path = crate::data::test_paths::fixture("lm_batches.json");
        let report = crate::data::lm_batches_check(&path).unwrap();
        assert!(report.passed, "{report:?}");
        assert_eq!(report.matching_batches, report.expected_batches);
        assert!(report.expected_batches > 0);
    }

    #[test]
    fn backwards_reverses_each_document() {
        let docs: Vec<Vec<u32>> = vec![
            vec![2, 10, 11, 12],
            vec![2, 20, 21],
            vec![2, 30, 31, 32, 33],
        ];
        let reversed: Vec<Vec<u32>> = docs
            .iter()
            .map(|d| d.iter().rev().copied().collect())
            .collect();
        let cfg = LmLoaderConfig::new(2, 3);
        let bwd = batches(&docs, cfg.clone().with_backwards(true));
        let fwd_of_reversed = batches(&reversed, cfg);
        assert_eq!(bwd, fwd_of_reversed);
        // the stream starts with the first document reversed: its xxbos (2) comes last
        assert_eq!(bwd[0].x_row(0), &[12, 11, 10]);
        assert_eq!(bwd[1].x_row(0)[0], 2);
    }

    #[test]
    fn shuffle_is_seeded_and_keeps_rows_continuous() {
        let docs: Vec<Vec<u32>> = (0..40u32)
            .map(|d| (0..(3 + d % 7)).map(|t| d * 100 + t).collect())
            .collect();
        let cfg = LmLoaderConfig::new(4, 5).with_shuffle(7);
        let mut a = LmDataLoader::new(&docs, cfg.clone()).unwrap();
        let mut b = LmDataLoader::new(&docs, cfg).unwrap();
        let a1: Vec<LmBatch> = a.epoch().collect();
        let order1 = a.order().to_vec();
        let a2: Vec<LmBatch> = a.epoch().collect();
        let order2 = a.order().to_vec();
        let b1: Vec<LmBatch> = b.epoch().collect();
        assert_eq!(a1, b1, "same seed, same first epoch");
        assert_ne!(order1, order2, "a new order every epoch");
        let mut sorted = order1.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..40).collect::<Vec<_>>(),
            "order is a permutation"
        );
        assert_ne!(
            order1,
            (0..40).collect::<Vec<_>>(),
            "the first epoch is shuffled too"
        );
        for epoch in [&a1, &a2] {
            for pair in epoch.windows(2) {
                for r in 0..4 {
                    // targets are the inputs shifted by one, and rows continue across batches
                    assert_eq!(
                        pair[0].x_row(r)[1..],
                        pair[0].y_row(r)[..pair[0].seq_len - 1]
                    );
                    assert_eq!(pair[0].y_row(r).last(), pair[1].x_row(r).first());
                }
            }
        }
        // the stream read by row 0 is the documents in shuffled order
        let stream: Vec<i64> = order1
            .iter()
            .flat_map(|&d| docs[d].iter().map(|&t| i64::from(t)))
            .collect();
        let row0: Vec<i64> = a1.iter().flat_map(|b| b.x_row(0).to_vec()).collect();
        assert_eq!(row0, stream[..row0.len()]);
    }

    #[test]
    fn tiny_corpus_and_bad_config() {
        let docs = vec![vec![5u32, 6]];
        let dl = LmDataLoader::new(&docs, LmLoaderConfig::new(4, 3)).unwrap();
        assert!(dl.is_empty());
        assert_eq!(dl.batch(0), None);
        let empty: Vec<Vec<u32>> = Vec::new();
        assert!(
            LmDataLoader::new(&empty, LmLoaderConfig::new(2, 2))
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            LmDataLoader::new(&docs, LmLoaderConfig::new(0, 3)),
            Err(DataError::Config(_))
        ));
        assert!(matches!(
            LmDataLoader::new(&docs, LmLoaderConfig::new(1, 0)),
            Err(DataError::Config(_))
        ));
    }

    #[test]
    fn exactly_fits() {
        // N = 13, bs 3 → bl 4; every token but the last ends up as an input
        let docs = vec![(0..13u32).collect::<Vec<_>>()];
        let got = batches(&docs, LmLoaderConfig::new(3, 2));
        assert_eq!(got.len(), 2);
        let last = &got[1];
        assert_eq!(last.y_row(2), &[11, 12]);
    }
}
