//! Token frequency counting with Python `Counter` semantics (first-seen order breaks ties).

use super::fxhash::FxHashMap;

/// Token counts that remember the order tokens were first seen, like Python's `Counter`
/// (a `dict`), so that [`most_common`](TokenCounts::most_common) breaks ties the same way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenCounts {
    index: FxHashMap<String, usize>,
    entries: Vec<(String, u64)>,
}

impl TokenCounts {
    /// An empty counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts every token of every document, documents in order (fastai's
    /// `Counter(t for doc in docs for t in doc)`).
    pub fn from_docs<D, T>(docs: &[D]) -> Self
    where
        D: AsRef<[T]>,
        T: AsRef<str>,
    {
        let mut c = Self::new();
        for d in docs {
            c.update(d.as_ref());
        }
        c
    }

    /// Builds a counter from `(token, count)` pairs in order; repeated tokens add up.
    pub fn from_pairs<I, S>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (S, u64)>,
        S: AsRef<str>,
    {
        let mut c = Self::new();
        for (t, n) in pairs {
            c.add_n(t.as_ref(), n);
        }
        c
    }

    /// Adds one occurrence of `token`.
    pub fn add(&mut self, token: &str) {
        self.add_n(token, 1);
    }

    /// Adds `n` occurrences of `token`.
    pub fn add_n(&mut self, token: &str, n: u64) {
        match self.index.get(token) {
            Some(&i) => self.entries[i].1 += n,
            None => {
                self.index.insert(token.to_string(), self.entries.len());
                self.entries.push((token.to_string(), n));
            }
        }
    }

    /// Adds every token of one document (`Counter.update`).
    pub fn update<T: AsRef<str>>(&mut self, tokens: &[T]) {
        for t in tokens {
            self.add(t.as_ref());
        }
    }

    /// Adds all counts of `other`, in `other`'s order (`Counter.update(other)`).
    pub fn merge(&mut self, other: &TokenCounts) {
        for (t, n) in &other.entries {
            self.add_n(t, *n);
        }
    }

    /// The count of `token` (0 when unseen).
    pub fn get(&self, token: &str) -> u64 {
        self.index.get(token).map_or(0, |&i| self.entries[i].1)
    }

    /// Number of distinct tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `(token, count)` in first-seen order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.entries.iter().map(|(t, n)| (t.as_str(), *n))
    }

    /// Python's `Counter.most_common(n)`: by decreasing count, ties in first-seen order.
    pub fn most_common(&self, n: usize) -> Vec<(&str, u64)> {
        let mut all: Vec<(&str, u64)> = self.iter().collect();
        all.sort_by_key(|e| std::cmp::Reverse(e.1)); // stable: ties keep insertion order
        all.truncate(n);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_keep_first_seen_order_for_ties() {
        let docs = vec![vec!["b", "a", "c", "a"], vec!["c", "d", "b"]];
        let c = TokenCounts::from_docs(&docs);
        assert_eq!(
            c.iter().collect::<Vec<_>>(),
            [("b", 2), ("a", 2), ("c", 2), ("d", 1)]
        );
        assert_eq!(c.most_common(3), [("b", 2), ("a", 2), ("c", 2)]);
        assert_eq!(c.get("a"), 2);
        assert_eq!(c.get("zz"), 0);
        let mut m = TokenCounts::from_pairs([("d", 5)]);
        m.merge(&c);
        assert_eq!(m.most_common(2), [("d", 6), ("b", 2)]);
        assert_eq!((m.len(), TokenCounts::new().is_empty()), (4, true));
    }
}
