//! BPT3C: back-propagation through time for text classification (paper section 3.3; fastai
//! `SentenceEncoder`).
//!
//! A document is read in chunks of `bptt` tokens, each chunk starting from the state the previous
//! one left (detached, so gradients stay inside a chunk); only the outputs of the chunks that
//! cover the document's last `max_len` tokens are kept for pooling.
//!
//! **Batch invariance (a fix of fastai's behaviour).** fastai feeds each chunk to the rows whose
//! token at the chunk's first column is not padding, assuming those rows form a prefix of the
//! batch; end padding breaks that assumption whenever the longest document is not a multiple of
//! `bptt`, and fastai's pooling then reads the wrong time step for some rows (see the fixtures'
//! README). Here every row is laid out so that its text starts on a chunk boundary (fastai's
//! `pad_chunk` layout, rebuilt from the ids whatever padding the caller used), each chunk is fed
//! to exactly the rows that have text in it, the kept window is decided per document from its own
//! length, and the position pooled as "last" is the document's last token. A document therefore
//! gets the same result alone as in any batch.

use burn::tensor::{Bool, IndexingUpdateOp, Int, Tensor, TensorData};

use super::awd_lstm::{AwdLstm, AwdLstmState};
use super::lstm::LstmState;

/// Where each document of a batch sits, computed from the token ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocLayout {
    /// Text span `[start, end)` of each row in the original ids (empty rows: `(0, 0)`).
    pub spans: Vec<(usize, usize)>,
    /// Width of the re-laid-out batch (the longest text).
    pub width: usize,
    /// Column where each row's text starts in the re-laid-out batch (a multiple of `bptt`).
    pub starts: Vec<usize>,
    /// First column of each row's kept window in the re-laid-out batch.
    pub keep_from: Vec<usize>,
}

impl DocLayout {
    /// Computes the layout of `ids` (`rows` x `cols`, row-major) for `bptt` and `max_len`.
    ///
    /// A row's text runs from its first to its last non-padding token; padding inside it stays
    /// (and is masked in pooling, as in fastai).
    pub fn new(
        ids: &[i64],
        rows: usize,
        cols: usize,
        pad: i64,
        bptt: usize,
        max_len: usize,
    ) -> Self {
        let spans: Vec<(usize, usize)> = (0..rows)
            .map(|r| {
                let row = &ids[r * cols..(r + 1) * cols];
                match row.iter().position(|&t| t != pad) {
                    None => (0, 0),
                    Some(first) => {
                        let last = row.iter().rposition(|&t| t != pad).unwrap_or(first);
                        (first, last + 1)
                    }
                }
            })
            .collect();
        let width = spans.iter().map(|(a, b)| b - a).max().unwrap_or(0);
        let starts: Vec<usize> = spans
            .iter()
            .map(|(a, b)| ((width - (b - a)) / bptt) * bptt)
            .collect();
        let keep_from = spans
            .iter()
            .zip(&starts)
            .map(|((a, b), s)| {
                let len = b - a;
                // fastai keeps the chunks i with len - i <= max_len (i counted in the document).
                let skip = if len > max_len {
                    (len - max_len).div_ceil(bptt) * bptt
                } else {
                    0
                };
                s + skip
            })
            .collect();
        Self {
            spans,
            width,
            starts,
            keep_from,
        }
    }

    /// Length of row `r`'s text.
    pub fn len(&self, r: usize) -> usize {
        self.spans[r].1 - self.spans[r].0
    }

    /// Whether no row has any text.
    pub fn is_empty(&self) -> bool {
        self.width == 0
    }
}

/// The encoded documents of a batch, ready for pooling.
#[derive(Clone, Debug)]
pub struct EncodedDocs {
    /// Outputs of the kept window `[batch, kept, emb]` (zeros where a row was not fed).
    pub output: Tensor<3>,
    /// `true` where a position is padding or outside the row's kept window `[batch, kept]`.
    pub mask: Tensor<2, Bool>,
    /// Index (within the kept window) of each row's last token.
    pub last: Vec<usize>,
}

/// Runs the encoder over documents in `bptt` chunks (see the module docs).
///
/// # Shapes
///
/// - ids: `[batch, seq_len]`
/// - output: see [`EncodedDocs`]
pub fn encode_documents(
    encoder: &AwdLstm,
    ids: Tensor<2, Int>,
    pad: usize,
    bptt: usize,
    max_len: usize,
) -> EncodedDocs {
    let device = ids.device();
    let [rows, cols] = ids.dims();
    let data: Vec<i64> = ids
        .into_data()
        .try_into_vec_as::<i64>()
        .expect("an int tensor converts to i64");
    let pad = pad as i64;
    let layout = DocLayout::new(&data, rows, cols, pad, bptt, max_len);
    let width = layout.width.max(1);
    // Re-lay the batch: every text starts on a chunk boundary, padding elsewhere.
    let mut laid = vec![pad; rows * width];
    for r in 0..rows {
        let (a, b) = layout.spans[r];
        let s = layout.starts[r];
        laid[r * width + s..r * width + s + (b - a)]
            .copy_from_slice(&data[r * cols + a..r * cols + b]);
    }
    let window = layout.keep_from.iter().copied().min().unwrap_or(0);
    let window = (window / bptt) * bptt;
    let emb = encoder.emb_size();
    let mut state: AwdLstmState = encoder.zero_state(rows, &device);
    let mut kept: Vec<Tensor<3>> = Vec::new();
    let mut i = 0;
    while i < width {
        let c = bptt.min(width - i);
        let active: Vec<i64> = (0..rows)
            .filter(|&r| {
                let s = layout.starts[r];
                layout.len(r) > 0 && s < i + c && s + layout.len(r) > i
            })
            .map(|r| r as i64)
            .collect();
        let chunk_out = if active.is_empty() {
            None
        } else {
            let n = active.len();
            let chunk_ids: Vec<i64> = active
                .iter()
                .flat_map(|&r| laid[r as usize * width + i..r as usize * width + i + c].to_vec())
                .collect();
            let chunk = Tensor::<2, Int>::from_data(TensorData::new(chunk_ids, [n, c]), &device);
            let idx = Tensor::<1, Int>::from_data(TensorData::new(active.clone(), [n]), &device);
            let sub = AwdLstmState {
                layers: state
                    .layers
                    .iter()
                    .map(|s| LstmState {
                        h: s.h.clone().select(1, idx.clone()),
                        c: s.c.clone().select(1, idx.clone()),
                    })
                    .collect(),
            };
            let (out, new_sub) = encoder.forward(chunk, Some(sub));
            state = AwdLstmState {
                layers: state
                    .layers
                    .into_iter()
                    .zip(new_sub.layers)
                    .map(|(s, n)| LstmState {
                        h: s.h
                            .select_assign(1, idx.clone(), n.h, IndexingUpdateOp::Assign),
                        c: s.c
                            .select_assign(1, idx.clone(), n.c, IndexingUpdateOp::Assign),
                    })
                    .collect(),
            };
            Some((out, idx, n))
        };
        if i >= window {
            let full =
                match chunk_out {
                    Some((out, idx, n)) if n == rows => {
                        let _ = idx;
                        out
                    }
                    Some((out, idx, _)) => Tensor::<3>::zeros([rows, c, emb], &device)
                        .select_assign(0, idx, out, IndexingUpdateOp::Add),
                    None => Tensor::<3>::zeros([rows, c, emb], &device),
                };
            kept.push(full);
        }
        i += c;
    }
    let kept_len = width - window;
    let output = if kept.is_empty() {
        Tensor::<3>::zeros([rows, 1, emb], &device)
    } else {
        Tensor::cat(kept, 1)
    };
    let kept_len_eff = kept_len.max(1);
    let mut mask = vec![true; rows * kept_len_eff];
    let mut last = vec![0usize; rows];
    for r in 0..rows {
        let len = layout.len(r);
        if len == 0 {
            continue;
        }
        let s = layout.starts[r];
        for col in layout.keep_from[r].max(window)..s + len {
            let tok = laid[r * width + col];
            mask[r * kept_len_eff + (col - window)] = tok == pad;
        }
        last[r] = s + len - 1 - window;
    }
    let mask = Tensor::<2, Bool>::from_data(TensorData::new(mask, [rows, kept_len_eff]), &device);
    EncodedDocs { output, mask, last }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's `pad_chunk` example: lengths 10/7/3 with bptt 4 lay out as
    /// `[x*10]`, `[x*7, pad*3]`, `[pad*4, x*3, pad*3]`.
    #[test]
    fn layout_matches_pad_chunk() {
        let pad = 1;
        let row = |pre: usize, len: usize, post: usize| {
            let mut v = vec![pad; pre];
            v.extend(std::iter::repeat_n(5, len));
            v.extend(std::iter::repeat_n(pad, post));
            v
        };
        // Any padding in the input: all of it at the end here.
        let ids: Vec<i64> = [row(0, 10, 0), row(0, 7, 3), row(0, 3, 7)].concat();
        let l = DocLayout::new(&ids, 3, 10, pad, 4, 100);
        assert_eq!(l.width, 10);
        assert_eq!(l.starts, vec![0, 0, 4]);
        assert_eq!(l.keep_from, vec![0, 0, 4]);
    }

    #[test]
    fn keep_window_counts_from_each_document() {
        // Length 11, max_len 8, bptt 4: chunks at 0, 4, 8; kept are those with 11 - i <= 8.
        let ids: Vec<i64> = vec![5; 11];
        let l = DocLayout::new(&ids, 1, 11, 1, 4, 8);
        assert_eq!(l.keep_from, vec![4]);
    }
}
