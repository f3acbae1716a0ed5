//! WikiText-2 / WikiText-103 (Merity et al. 2016), tokenized version: `wiki.{train,valid,test}.tokens`.
//!
//! Lines are returned as in the file (without the line end; every line starts with a space,
//! blank lines are `" "`). [`wikitext_articles`] groups them into articles the way fastai's
//! WikiText scripts do: a new article at each top-level heading ` = Title = ` that follows a
//! blank line (second-level headings ` = = Section = = ` stay inside).

use std::path::{Path, PathBuf};

use super::archive;
use crate::data::DataError;

/// A WikiText split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WikiTextSplit {
    /// `wiki.train.tokens`.
    Train,
    /// `wiki.valid.tokens`.
    Valid,
    /// `wiki.test.tokens`.
    Test,
}

impl WikiTextSplit {
    /// The split's file name.
    pub fn file_name(self) -> &'static str {
        match self {
            WikiTextSplit::Train => "wiki.train.tokens",
            WikiTextSplit::Valid => "wiki.valid.tokens",
            WikiTextSplit::Test => "wiki.test.tokens",
        }
    }

    /// The split's file in `dir`.
    pub fn path(self, dir: &Path) -> PathBuf {
        dir.join(self.file_name())
    }
}

/// Reads the lines of one split from `dir`. A missing file (e.g. the absent
/// `wiki.train.tokens` of the WikiText-2 sample) is [`DataError::NotFound`]; an empty file or
/// invalid UTF-8 is an error too.
pub fn read_wikitext(
    dir: impl AsRef<Path>,
    split: WikiTextSplit,
) -> Result<Vec<String>, DataError> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(DataError::NotFound {
            path: dir.to_path_buf(),
            what: "WikiText folder".into(),
        });
    }
    let path = split.path(dir);
    let bytes = archive::read_file(&path, &format!("WikiText {split:?} split"))?;
    if bytes.is_empty() {
        return Err(DataError::EmptyFile { path });
    }
    let text = archive::utf8(bytes, &path)?;
    Ok(text
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect())
}

/// Whether `line` (without its line end) is a top-level heading: fastai's `istitle`, the
/// regex `^ = [^=]* = $` — ` = Title = ` with no `=` inside, so ` = = Section = = ` is not one.
pub fn is_article_title(line: &str) -> bool {
    line.len() >= 6
        && line
            .strip_prefix(" = ")
            .and_then(|rest| rest.strip_suffix(" = "))
            .is_some_and(|title| !title.contains('='))
}

/// Groups lines into articles as fastai's WikiText scripts (`read_file` in its `train_wt2`
/// example) do: a new article begins at a blank line that is directly followed by a heading
/// ([`is_article_title`]), so every article but possibly the first starts with `" "` and its
/// title. A heading-shaped line that is not preceded by a blank line (a few formula lines
/// inside articles) does not start an article. Each line is followed by `\n`.
pub fn wikitext_articles(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for (j, line) in lines.iter().enumerate() {
        let starts_article = j >= 1
            && line.trim().is_empty()
            && lines.get(j + 1).is_some_and(|next| is_article_title(next));
        if starts_article {
            out.push(std::mem::take(&mut current));
        }
        current.push_str(line);
        current.push('\n');
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_paths::{TempDir, dataset};

    /// Token counts (whitespace tokens + one `<eos>` per line) are those of the WikiText paper;
    /// WikiText-2 has 60 validation and 60 test articles.
    #[test]
    fn wikitext2_counts() {
        let dir = dataset("wikitext-2-sample");
        for (split, lines, tokens) in [
            (WikiTextSplit::Valid, 3760, 217_646),
            (WikiTextSplit::Test, 4358, 245_569),
        ] {
            let l = read_wikitext(&dir, split).unwrap();
            assert_eq!(l.len(), lines);
            let n: usize = l.iter().map(|s| s.split_whitespace().count() + 1).sum();
            assert_eq!(n, tokens);
            let articles = wikitext_articles(&l);
            assert_eq!(articles.len(), 60, "{split:?}");
            for a in &articles {
                let first = a.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                assert!(is_article_title(first), "{first}");
            }
            assert_eq!(articles.concat().lines().count(), lines);
        }
    }

    #[test]
    fn missing_train_split_and_bad_files() {
        let dir = dataset("wikitext-2-sample");
        let e = read_wikitext(&dir, WikiTextSplit::Train).unwrap_err();
        assert!(
            matches!(&e, DataError::NotFound { path, .. } if path.ends_with("wiki.train.tokens")),
            "{e}"
        );
        let tmp = TempDir::new("wikitext");
        let e = read_wikitext(tmp.path().join("none"), WikiTextSplit::Valid).unwrap_err();
        assert!(matches!(e, DataError::NotFound { .. }), "{e}");
        tmp.write("wiki.valid.tokens", "");
        let e = read_wikitext(tmp.path(), WikiTextSplit::Valid).unwrap_err();
        assert!(matches!(e, DataError::EmptyFile { .. }), "{e}");
        tmp.write("wiki.test.tokens", b" ok\n \n bad \xc3 \n");
        let e = read_wikitext(tmp.path(), WikiTextSplit::Test).unwrap_err();
        assert!(matches!(e, DataError::Utf8 { line: Some(3), .. }), "{e}");
    }

    #[test]
    fn article_titles() {
        assert!(is_article_title(" = Robert Boulter = "));
        assert!(!is_article_title(" = = Career = = "));
        assert!(!is_article_title(" The = sign = "));
        assert!(!is_article_title(" = a = b = "));
        assert!(!is_article_title("= Title ="));
        let lines: Vec<String> = [
            " ",
            " = A = ",
            " ",
            " x ",
            " = 1 k = ",
            " = = S = = ",
            " ",
            " y ",
            " ",
            " = B = ",
            " ",
            " z ",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let a = wikitext_articles(&lines);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0], " \n = A = \n \n x \n = 1 k = \n = = S = = \n \n y \n");
        assert_eq!(a[1], " \n = B = \n \n z \n");
    }
}
