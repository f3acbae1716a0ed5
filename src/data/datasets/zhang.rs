//! The Zhang, Zhao & LeCun (2015) CSV datasets: AG News, DBpedia, Yelp polarity, Yelp full.
//!
//! Layout: `train.csv`, `test.csv` and (AG News, DBpedia) `classes.txt`, in a folder such as
//! `ag_news_csv/` or inside the `*_csv.tgz` archive. The CSVs have no header; column 1 is the
//! 1-based class, then the text fields: (title, text) for AG News and DBpedia, (text) for Yelp.
//!
//! Several text fields are joined the way fastai v2's `tokenize_df` does with `mark_fields`
//! (on by default when there is more than one text column), see [`mark_fields`]. The text is
//! kept raw: AG's `\n` escapes and `#36;`-style entities are for the tokenizer's `fix_html`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::archive::{self, Source, components};
use super::csv::CsvRecords;
use super::{Example, TextClassificationData};
use crate::data::DataError;
use crate::data::error::entry_path;

/// The four Zhang et al. (2015) datasets used by the ULMFiT paper (spec §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ZhangDataset {
    /// AG News: 4 topics, (class, title, description).
    AgNews,
    /// DBpedia ontology: 14 classes, (class, title, content).
    DbPedia,
    /// Yelp review polarity: 2 classes, (class, text).
    YelpPolarity,
    /// Yelp review full: 5 classes (stars), (class, text).
    YelpFull,
}

impl ZhangDataset {
    /// Number of classes.
    pub fn n_classes(self) -> usize {
        match self {
            ZhangDataset::AgNews => 4,
            ZhangDataset::DbPedia => 14,
            ZhangDataset::YelpPolarity => 2,
            ZhangDataset::YelpFull => 5,
        }
    }

    /// Number of text columns after the class column.
    pub fn n_text_fields(self) -> usize {
        match self {
            ZhangDataset::AgNews | ZhangDataset::DbPedia => 2,
            ZhangDataset::YelpPolarity | ZhangDataset::YelpFull => 1,
        }
    }

    /// Name of the dataset's folder (inside its archive `<name>.tgz`).
    pub fn folder_name(self) -> &'static str {
        match self {
            ZhangDataset::AgNews => "ag_news_csv",
            ZhangDataset::DbPedia => "dbpedia_csv",
            ZhangDataset::YelpPolarity => "yelp_review_polarity_csv",
            ZhangDataset::YelpFull => "yelp_review_full_csv",
        }
    }

    /// Class names used when there is no `classes.txt`: the official files' names for AG News
    /// and DBpedia, `negative`/`positive` for Yelp polarity (its readme: "Negative polarity is
    /// class 1, and positive class 2"), the star counts `1`..`5` for Yelp full.
    pub fn default_classes(self) -> Vec<String> {
        let names: &[&str] = match self {
            ZhangDataset::AgNews => &["World", "Sports", "Business", "Sci/Tech"],
            ZhangDataset::DbPedia => &[
                "Company",
                "EducationalInstitution",
                "Artist",
                "Athlete",
                "OfficeHolder",
                "MeanOfTransportation",
                "Building",
                "NaturalPlace",
                "Village",
                "Animal",
                "Plant",
                "Album",
                "Film",
                "WrittenWork",
            ],
            ZhangDataset::YelpPolarity => &["negative", "positive"],
            ZhangDataset::YelpFull => &["1", "2", "3", "4", "5"],
        };
        names.iter().map(|s| s.to_string()).collect()
    }
}

/// Joins text fields as fastai v2's `_join_texts(mark_fields=True)`:
/// `"xxfld 1 " + f1 + " xxfld 2 " + f2 + …`. A single field is returned unchanged (fastai only
/// marks fields when there is more than one text column).
pub fn mark_fields(fields: &[&str]) -> String {
    if let [only] = fields {
        return only.to_string();
    }
    let mut out = String::with_capacity(fields.iter().map(|f| f.len() + 10).sum());
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("xxfld {} ", i + 1));
        out.push_str(f);
    }
    out
}

/// Reads a Zhang et al. dataset from its folder (holding `train.csv`, or holding the
/// dataset's [`ZhangDataset::folder_name`] folder) or from its `.tgz` archive.
pub fn read_zhang(
    path: impl AsRef<Path>,
    kind: ZhangDataset,
) -> Result<TextClassificationData, DataError> {
    let path = path.as_ref();
    match Source::detect(path, &format!("{} folder or archive", kind.folder_name()))? {
        Source::Folder(dir) => read_folder(&dir, kind),
        Source::Archive(file) => read_archive(&file, kind),
    }
}

fn read_folder(dir: &Path, kind: ZhangDataset) -> Result<TextClassificationData, DataError> {
    let nested = dir.join(kind.folder_name());
    let root = if !dir.join("train.csv").exists() && nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    };
    let open = |name: &str| -> Result<(PathBuf, std::fs::File), DataError> {
        let p = root.join(name);
        match std::fs::File::open(&p) {
            Ok(f) => Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(DataError::NotFound {
                path: p,
                what: format!("{} file `{name}`", kind.folder_name()),
            }),
            Err(e) => Err(DataError::io(p, e)),
        }
    };
    let (train_path, f) = open("train.csv")?;
    let train = parse_csv(BufReader::new(f), &train_path, None, kind)?;
    let (test_path, f) = open("test.csv")?;
    let test = parse_csv(BufReader::new(f), &test_path, None, kind)?;
    let classes_path = root.join("classes.txt");
    let classes = if classes_path.exists() {
        let bytes = archive::read_file(&classes_path, "classes.txt")?;
        parse_classes(bytes, &classes_path, kind)?
    } else {
        kind.default_classes()
    };
    Ok(TextClassificationData {
        train,
        test,
        classes,
        unsup: Vec::new(),
    })
}

fn read_archive(file: &Path, kind: ZhangDataset) -> Result<TextClassificationData, DataError> {
    let (mut train, mut test, mut classes) = (None, None, None);
    archive::for_each_file(file, |name, reader| {
        let comps = components(name);
        // `train.csv` at the top, or one folder down (`ag_news_csv/train.csv`)
        let base = match comps[..] {
            [base] | [_, base] => base,
            _ => return Ok(()),
        };
        let shown = entry_path(file, name);
        let ctx = Some((file.to_path_buf(), name.to_string()));
        match base {
            "train.csv" => {
                let r = BufReader::with_capacity(1 << 16, reader);
                train = Some(parse_csv(r, &shown, ctx, kind)?);
            }
            "test.csv" => {
                let r = BufReader::with_capacity(1 << 16, reader);
                test = Some(parse_csv(r, &shown, ctx, kind)?);
            }
            "classes.txt" => {
                let bytes = archive::read_entry(file, name, reader)?;
                classes = Some(parse_classes(bytes, &shown, kind)?);
            }
            _ => {}
        }
        Ok(())
    })?;
    let missing = |name: &str| DataError::NotFound {
        path: entry_path(file, &format!("{}/{name}", kind.folder_name())),
        what: format!("`{name}` in the archive"),
    };
    Ok(TextClassificationData {
        train: train.ok_or_else(|| missing("train.csv"))?,
        test: test.ok_or_else(|| missing("test.csv"))?,
        classes: classes.unwrap_or_else(|| kind.default_classes()),
        unsup: Vec::new(),
    })
}

fn parse_classes(
    bytes: Vec<u8>,
    path: &Path,
    kind: ZhangDataset,
) -> Result<Vec<String>, DataError> {
    let text = archive::utf8(bytes, path)?;
    let classes: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if classes.is_empty() {
        return Err(DataError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    if classes.len() != kind.n_classes() {
        return Err(DataError::format(
            path,
            classes.len(),
            format!(
                "{} class names, but {} has {} classes",
                classes.len(),
                kind.folder_name(),
                kind.n_classes()
            ),
        ));
    }
    Ok(classes)
}

/// Parses one Zhang et al. CSV (`train.csv` or `test.csv`) of dataset `kind`; errors name
/// `path`. Labels become 0-based.
pub fn parse_zhang_csv<R: Read>(
    reader: R,
    path: &Path,
    kind: ZhangDataset,
) -> Result<Vec<Example>, DataError> {
    parse_csv(BufReader::new(reader), path, None, kind)
}

fn parse_csv<R: BufRead>(
    reader: R,
    path: &Path,
    archive: Option<(PathBuf, String)>,
    kind: ZhangDataset,
) -> Result<Vec<Example>, DataError> {
    let mut records = CsvRecords::new(reader, path, archive);
    let n_cols = 1 + kind.n_text_fields();
    let n_classes = kind.n_classes();
    let mut out = Vec::new();
    while let Some((line, fields)) = records.next_record()? {
        if fields.len() != n_cols {
            return Err(DataError::format(
                path,
                line,
                format!(
                    "expected {n_cols} columns (class, {} text field(s)) for {}, found {}",
                    kind.n_text_fields(),
                    kind.folder_name(),
                    fields.len()
                ),
            ));
        }
        let raw = fields[0].trim();
        let class: usize = raw
            .parse()
            .map_err(|_| DataError::label(path, line, raw, "the class column must be a number"))?;
        if !(1..=n_classes).contains(&class) {
            return Err(DataError::label(
                path,
                line,
                raw,
                format!("class out of range 1..={n_classes}"),
            ));
        }
        let texts: Vec<&str> = fields[1..].iter().map(String::as_str).collect();
        out.push(Example {
            text: mark_fields(&texts),
            label: class - 1,
        });
    }
    if out.is_empty() {
        return Err(DataError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::datasets::archive::tests::make_tgz;
    use crate::data::test_paths::{TempDir, dataset};

    #[test]
    fn mark_fields_matches_fastai() {
        // fastai's own test: f'{FLD} 1 This is an example of text {i} {FLD} 2 This is ...'
        assert_eq!(mark_fields(&["a b", "c"]), "xxfld 1 a b xxfld 2 c");
        assert_eq!(
            mark_fields(&["x", "y", "z"]),
            "xxfld 1 x xxfld 2 y xxfld 3 z"
        );
        assert_eq!(mark_fields(&["only"]), "only");
    }

    #[test]
    fn ag_news_sample_counts() {
        let d = read_zhang(dataset("ag_news_csv-sample.tgz"), ZhangDataset::AgNews).unwrap();
        assert_eq!(d.classes, ["World", "Sports", "Business", "Sci/Tech"]);
        assert_eq!(d.test.len(), 7600);
        assert_eq!(d.test_counts(), vec![1900; 4]);
        assert_eq!(d.train.len(), 581);
        assert_eq!(d.train_counts(), vec![163, 132, 137, 149]);
        assert!(
            d.train[0]
                .text
                .starts_with("xxfld 1 Wall St. Bears Claw Back Into the Black (Reuters) xxfld 2 ")
        );
    }

    #[test]
    fn small_samples_counts() {
        let d = read_zhang(dataset("dbpedia_csv-sample.tgz"), ZhangDataset::DbPedia).unwrap();
        assert_eq!((d.train.len(), d.test.len()), (14, 5));
        assert_eq!(d.train_counts(), vec![1; 14]);
        assert_eq!(d.test_counts()[0], 5);
        assert_eq!(d.classes.len(), 14);
        assert!(d.test[0].text.starts_with("xxfld 1 TY KU xxfld 2  TY KU"));

        let d = read_zhang(
            dataset("yelp_review_polarity_csv-sample.tgz"),
            ZhangDataset::YelpPolarity,
        )
        .unwrap();
        assert_eq!(
            (d.train_counts(), d.test_counts()),
            (vec![4, 2], vec![2, 4])
        );
        assert_eq!(d.classes, ["negative", "positive"]);
        assert!(
            d.train[0]
                .text
                .starts_with("Unfortunately, the frustration of being Dr. Goldberg's patient")
        );

        let d = read_zhang(
            dataset("yelp_review_full_csv-sample.tgz"),
            ZhangDataset::YelpFull,
        )
        .unwrap();
        assert_eq!(d.train_counts(), vec![1, 1, 1, 1, 2]);
        assert_eq!(d.test_counts(), vec![5, 0, 1, 0, 0]);
        assert!(
            d.train[0]
                .text
                .starts_with("dr. goldberg offers everything")
        );
    }

    #[test]
    fn folder_and_archive_agree() {
        let dir = TempDir::new("zhang-folder");
        let train = "\"1\",\"T1\",\"body \"\"one\"\"\"\n\"2\",\"T2\",\"two\nlines\"\n";
        let test = "\"2\",\"T3\",\"three\"\n";
        dir.write("ag_news_csv/train.csv", train);
        dir.write("ag_news_csv/test.csv", test);
        dir.write("ag_news_csv/classes.txt", "A\nB\nC\nD\n");
        let tgz = dir.path().join("ag.tgz");
        make_tgz(
            &tgz,
            &[
                ("ag_news_csv/train.csv", train.as_bytes()),
                ("ag_news_csv/test.csv", test.as_bytes()),
                ("ag_news_csv/classes.txt", b"A\nB\nC\nD\n"),
            ],
        );
        let from_dir = read_zhang(dir.path(), ZhangDataset::AgNews).unwrap();
        let from_tgz = read_zhang(&tgz, ZhangDataset::AgNews).unwrap();
        assert_eq!(from_dir, from_tgz);
        assert_eq!(from_dir.classes, ["A", "B", "C", "D"]);
        assert_eq!(from_dir.train[0].text, "xxfld 1 T1 xxfld 2 body \"one\"");
        assert_eq!(from_dir.train[1].text, "xxfld 1 T2 xxfld 2 two\nlines");
        assert_eq!(from_dir.train[1].label, 1);
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let dir = TempDir::new("zhang-bad");
        let kind = ZhangDataset::AgNews;
        // missing folder
        let e = read_zhang(dir.path().join("nope"), kind).unwrap_err();
        assert!(matches!(e, DataError::NotFound { .. }), "{e}");
        // missing test.csv
        dir.write("a/train.csv", "1,t,x\n");
        let e = read_zhang(dir.path().join("a"), kind).unwrap_err();
        assert!(
            matches!(&e, DataError::NotFound { path, .. } if path.ends_with("test.csv")),
            "{e}"
        );
        // empty file
        dir.write("b/train.csv", "");
        dir.write("b/test.csv", "1,t,x\n");
        let e = read_zhang(dir.path().join("b"), kind).unwrap_err();
        assert!(
            matches!(&e, DataError::EmptyFile { path } if path.ends_with("train.csv")),
            "{e}"
        );
        // wrong column count on line 2
        dir.write("c/train.csv", "1,t,x\n2,only two\n");
        dir.write("c/test.csv", "1,t,x\n");
        let e = read_zhang(dir.path().join("c"), kind).unwrap_err();
        assert!(matches!(e, DataError::Format { line: 2, .. }), "{e}");
        assert!(e.to_string().contains("train.csv, line 2"), "{e}");
        // class out of range on line 3 (after a two-line record)
        dir.write("d/train.csv", "1,t,\"a\nb\"\n5,t,x\n");
        dir.write("d/test.csv", "1,t,x\n");
        let e = read_zhang(dir.path().join("d"), kind).unwrap_err();
        assert!(
            matches!(&e, DataError::Label { line: 3, label, .. } if label == "5"),
            "{e}"
        );
        dir.write("d/train.csv", "0,t,x\n");
        let e = read_zhang(dir.path().join("d"), kind).unwrap_err();
        assert!(matches!(e, DataError::Label { line: 1, .. }), "{e}");
        dir.write("d/train.csv", "World,t,x\n");
        let e = read_zhang(dir.path().join("d"), kind).unwrap_err();
        assert!(matches!(e, DataError::Label { line: 1, .. }), "{e}");
        // classes.txt with the wrong number of names
        dir.write("e/train.csv", "1,t,x\n");
        dir.write("e/test.csv", "1,t,x\n");
        dir.write("e/classes.txt", "A\nB\n");
        let e = read_zhang(dir.path().join("e"), kind).unwrap_err();
        assert!(matches!(e, DataError::Format { .. }), "{e}");
        // truncated archive
        let real = std::fs::read(dataset("ag_news_csv-sample.tgz")).unwrap();
        let cut = dir.write("cut.tgz", &real[..real.len() / 2]);
        let e = read_zhang(&cut, kind).unwrap_err();
        assert!(matches!(e, DataError::Archive { .. }), "{e}");
        assert!(e.to_string().contains("cut.tgz"), "{e}");
        // archive without test.csv
        let tgz = dir.path().join("partial.tgz");
        make_tgz(&tgz, &[("ag_news_csv/train.csv", b"1,t,x\n")]);
        let e = read_zhang(&tgz, kind).unwrap_err();
        assert!(matches!(e, DataError::NotFound { .. }), "{e}");
        // Yelp rows must have exactly 2 columns
        dir.write("y/train.csv", "\"1\",\"t\",\"x\"\n");
        dir.write("y/test.csv", "\"1\",\"x\"\n");
        let e = read_zhang(dir.path().join("y"), ZhangDataset::YelpPolarity).unwrap_err();
        assert!(matches!(e, DataError::Format { line: 1, .. }), "{e}");
    }
}
