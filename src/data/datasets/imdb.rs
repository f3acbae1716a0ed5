//! IMDb Large Movie Review Dataset (Maas et al. 2011), aclImdb layout.
//!
//! `train/{pos,neg}/<id>_<rating>.txt`, `test/{pos,neg}/…`, and the unlabelled reviews in
//! `train/unsup/` (original aclImdb) or `unsup/` beside `train/` (fast.ai's `imdb.tgz`). The
//! root is the given folder, or its `aclImdb/` or `imdb/` subfolder; in an archive, the one top
//! folder (whatever its name) is the root. Classes are `neg`, `pos` (labels 0, 1: the
//! alphabetical order fastai's `CategoryBlock` uses). Within each split, reviews are ordered by
//! class, then by numeric id, so the result does not depend on directory or archive order.
//! Texts are returned raw (with their `<br />` tags), as fastai reads them.

use std::path::{Path, PathBuf};

use super::archive::{self, Source, components};
use super::{Example, TextClassificationData};
use crate::data::DataError;
use crate::data::error::entry_path;

/// The IMDb class names, in label order.
pub const IMDB_CLASSES: [&str; 2] = ["neg", "pos"];

/// Where a review file belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Train(usize),
    Test(usize),
    Unsup,
}

/// Classifies a path relative to the dataset root (`train/pos/1_7.txt`, `unsup/5_0.txt`, …).
fn slot(rel: &[&str]) -> Option<Slot> {
    let file = rel.last()?;
    if !file.ends_with(".txt") {
        return None;
    }
    let class = |c: &str| IMDB_CLASSES.iter().position(|&k| k == c);
    match rel {
        ["train", "unsup", _] | ["unsup", _] => Some(Slot::Unsup),
        ["train", c, _] => class(c).map(Slot::Train),
        ["test", c, _] => class(c).map(Slot::Test),
        _ => None,
    }
}

/// Sort key of a review file name `<id>_<rating>.txt`: the numeric id, then the name.
fn file_key(name: &str) -> (u64, String) {
    let id = name
        .split('_')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX);
    (id, name.to_string())
}

#[derive(Default)]
struct Collected {
    train: Vec<(usize, (u64, String), String)>,
    test: Vec<(usize, (u64, String), String)>,
    unsup: Vec<((u64, String), String)>,
}

impl Collected {
    fn add(&mut self, slot: Slot, name: &str, text: String) {
        let key = file_key(name);
        match slot {
            Slot::Train(c) => self.train.push((c, key, text)),
            Slot::Test(c) => self.test.push((c, key, text)),
            Slot::Unsup => self.unsup.push((key, text)),
        }
    }

    fn finish(
        mut self,
        root_shown: &Path,
        include_unsup: bool,
    ) -> Result<TextClassificationData, DataError> {
        for (split, items) in [("train", &self.train), ("test", &self.test)] {
            for (c, class) in IMDB_CLASSES.iter().enumerate() {
                if !items.iter().any(|(k, _, _)| *k == c) {
                    return Err(DataError::NotFound {
                        path: root_shown.join(split).join(class),
                        what: format!("IMDb reviews in `{split}/{class}`"),
                    });
                }
            }
        }
        if include_unsup && self.unsup.is_empty() {
            return Err(DataError::NotFound {
                path: root_shown.join("train").join("unsup"),
                what: "IMDb unsup reviews (`train/unsup/` or `unsup/`)".into(),
            });
        }
        self.train.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        self.test.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        self.unsup.sort_by(|a, b| a.0.cmp(&b.0));
        let ex = |v: Vec<(usize, (u64, String), String)>| {
            v.into_iter()
                .map(|(label, _, text)| Example { text, label })
                .collect()
        };
        Ok(TextClassificationData {
            train: ex(self.train),
            test: ex(self.test),
            classes: IMDB_CLASSES.iter().map(|s| s.to_string()).collect(),
            unsup: self.unsup.into_iter().map(|(_, t)| t).collect(),
        })
    }
}

/// Reads IMDb from an extracted folder or from the `.tgz` archive (streamed). With
/// `include_unsup` the 50,000 unlabelled reviews are read too (and required); without, they are
/// skipped and [`TextClassificationData::unsup`] is empty.
pub fn read_imdb(
    path: impl AsRef<Path>,
    include_unsup: bool,
) -> Result<TextClassificationData, DataError> {
    let path = path.as_ref();
    match Source::detect(path, "IMDb folder or archive")? {
        Source::Folder(dir) => read_folder(&dir, include_unsup),
        Source::Archive(file) => read_archive(&file, include_unsup),
    }
}

fn check_text(bytes: Vec<u8>, shown: &Path) -> Result<String, DataError> {
    if bytes.is_empty() {
        return Err(DataError::EmptyFile {
            path: shown.to_path_buf(),
        });
    }
    archive::utf8(bytes, shown)
}

fn read_archive(file: &Path, include_unsup: bool) -> Result<TextClassificationData, DataError> {
    let mut out = Collected::default();
    archive::for_each_file(file, |name, reader| {
        let comps = components(name);
        // strip the single top folder unless the archive starts at the dataset root
        let rel = match comps.first() {
            Some(&("train" | "test" | "unsup")) => &comps[..],
            Some(_) => &comps[1..],
            None => return Ok(()),
        };
        let Some(s) = slot(rel) else { return Ok(()) };
        if s == Slot::Unsup && !include_unsup {
            return Ok(());
        }
        let bytes = archive::read_entry(file, name, reader)?;
        let text = check_text(bytes, &entry_path(file, name))?;
        out.add(s, rel.last().copied().unwrap_or_default(), text);
        Ok(())
    })?;
    out.finish(&entry_path(file, "<root>"), include_unsup)
}

fn read_folder(dir: &Path, include_unsup: bool) -> Result<TextClassificationData, DataError> {
    let root = ["", "aclImdb", "imdb"]
        .iter()
        .map(|sub| dir.join(sub))
        .find(|r| r.join("train").is_dir())
        .ok_or_else(|| DataError::NotFound {
            path: dir.join("train"),
            what: "IMDb folder `train/` (also looked in `aclImdb/` and `imdb/`)".into(),
        })?;
    let mut out = Collected::default();
    let mut folders: Vec<(PathBuf, [&str; 2])> = Vec::new();
    for split in ["train", "test"] {
        for class in IMDB_CLASSES {
            folders.push((root.join(split).join(class), [split, class]));
        }
    }
    if include_unsup {
        folders.push((root.join("train").join("unsup"), ["train", "unsup"]));
        folders.push((root.join("unsup"), ["unsup", ""]));
    }
    for (folder, [a, b]) in folders {
        if !folder.is_dir() {
            continue; // reported by `finish` when required
        }
        let entries = std::fs::read_dir(&folder).map_err(|e| DataError::io(&folder, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| DataError::io(&folder, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel: Vec<&str> = if b.is_empty() {
                vec![a, &name]
            } else {
                vec![a, b, &name]
            };
            let Some(s) = slot(&rel) else { continue };
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            let bytes = archive::read_file(&path, "IMDb review")?;
            out.add(s, &name, check_text(bytes, &path)?);
        }
    }
    out.finish(&root, include_unsup)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::datasets::archive::tests::make_tgz;
    use crate::data::test_paths::{TempDir, dataset};

    #[test]
    fn full_archive_official_counts() {
        let t = std::time::Instant::now();
        let d = read_imdb(dataset("imdb.tgz"), true).unwrap();
        eprintln!("imdb.tgz read in {:?}", t.elapsed());
        assert_eq!(d.classes, ["neg", "pos"]);
        assert_eq!(d.train.len(), 25_000);
        assert_eq!(d.test.len(), 25_000);
        assert_eq!(d.unsup.len(), 50_000);
        assert_eq!(d.train_counts(), vec![12_500, 12_500]);
        assert_eq!(d.test_counts(), vec![12_500, 12_500]);
        assert!(d.train.iter().chain(&d.test).all(|e| !e.text.is_empty()));
        assert!(d.train.iter().any(|e| e.text.contains("<br /><br />")));
    }

    fn layout(dir: &TempDir, root: &str, unsup_under_train: bool) {
        let p = |rel: &str| format!("{root}{rel}");
        dir.write(&p("train/pos/10_9.txt"), "great");
        dir.write(&p("train/pos/2_8.txt"), "good");
        dir.write(&p("train/neg/1_1.txt"), "bad");
        dir.write(&p("test/pos/3_10.txt"), "superb");
        dir.write(&p("test/neg/4_2.txt"), "awful");
        dir.write(&p("train/urls_pos.txt"), "http://x");
        let u = if unsup_under_train {
            "train/unsup"
        } else {
            "unsup"
        };
        dir.write(&p(&format!("{u}/7_0.txt")), "meh");
    }

    #[test]
    fn folder_layouts_and_archive_agree() {
        let a = TempDir::new("imdb-a");
        layout(&a, "aclImdb/", true);
        let b = TempDir::new("imdb-b");
        layout(&b, "", false);
        let da = read_imdb(a.path(), true).unwrap();
        let db = read_imdb(b.path(), true).unwrap();
        assert_eq!(da, db);
        // sorted by class then numeric id
        let texts: Vec<&str> = da.train.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["bad", "good", "great"]);
        assert_eq!(
            da.train.iter().map(|e| e.label).collect::<Vec<_>>(),
            [0, 1, 1]
        );
        assert_eq!(da.unsup, ["meh"]);
        let without = read_imdb(a.path(), false).unwrap();
        assert!(without.unsup.is_empty());

        let tgz = a.path().join("imdb.tgz");
        make_tgz(
            &tgz,
            &[
                ("imdb/train/unsup/7_0.txt", b"meh"),
                ("imdb/train/pos/2_8.txt", b"good"),
                ("imdb/test/neg/4_2.txt", b"awful"),
                ("imdb/train/neg/1_1.txt", b"bad"),
                ("imdb/test/pos/3_10.txt", b"superb"),
                ("imdb/train/pos/10_9.txt", b"great"),
                ("imdb/README", b"readme"),
            ],
        );
        assert_eq!(read_imdb(&tgz, true).unwrap(), da);
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let dir = TempDir::new("imdb-bad");
        let e = read_imdb(dir.path().join("nope"), false).unwrap_err();
        assert!(matches!(e, DataError::NotFound { .. }), "{e}");
        // no test/neg
        dir.write("a/train/pos/1_7.txt", "x");
        dir.write("a/train/neg/1_1.txt", "x");
        dir.write("a/test/pos/1_7.txt", "x");
        let e = read_imdb(dir.path().join("a"), false).unwrap_err();
        assert!(
            matches!(&e, DataError::NotFound { path, .. } if path.ends_with("test/neg")),
            "{e}"
        );
        // unsup asked for but absent
        dir.write("a/test/neg/1_1.txt", "x");
        assert!(read_imdb(dir.path().join("a"), false).is_ok());
        let e = read_imdb(dir.path().join("a"), true).unwrap_err();
        assert!(matches!(e, DataError::NotFound { .. }), "{e}");
        // an empty review and a non-UTF-8 review name their file
        dir.write("a/test/neg/2_1.txt", "");
        let e = read_imdb(dir.path().join("a"), false).unwrap_err();
        assert!(
            matches!(&e, DataError::EmptyFile { path } if path.ends_with("2_1.txt")),
            "{e}"
        );
        dir.write("a/test/neg/2_1.txt", b"ok\nbad \xff byte");
        let e = read_imdb(dir.path().join("a"), false).unwrap_err();
        assert!(
            matches!(&e, DataError::Utf8 { path, line: Some(2) } if path.ends_with("2_1.txt")),
            "{e}"
        );
        // truncated archive
        let tgz = dir.path().join("ok.tgz");
        let big = "word ".repeat(50_000);
        make_tgz(
            &tgz,
            &[
                ("imdb/train/pos/1_7.txt", big.as_bytes()),
                ("imdb/train/neg/1_1.txt", big.as_bytes()),
                ("imdb/test/pos/1_7.txt", big.as_bytes()),
                ("imdb/test/neg/1_1.txt", big.as_bytes()),
            ],
        );
        assert_eq!(read_imdb(&tgz, false).unwrap().train.len(), 2);
        let bytes = std::fs::read(&tgz).unwrap();
        let cut = dir.write("cut.tgz", &bytes[..bytes.len() * 2 / 3]);
        let e = read_imdb(&cut, false).unwrap_err();
        assert!(matches!(e, DataError::Archive { .. }), "{e}");
        assert!(e.to_string().contains("cut.tgz"), "{e}");
        let empty = dir.write("empty.tgz", b"");
        let e = read_imdb(&empty, false).unwrap_err();
        assert!(matches!(e, DataError::EmptyFile { .. }), "{e}");
    }
}
