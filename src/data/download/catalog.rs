//! The datasets: where they are published, how, and their checksums.

use std::fmt;
use std::str::FromStr;

use crate::data::cache::{self, Checksum};

use super::*;

/// The datasets of the paper (Howard & Ruder 2018, Table 1) and the LM corpora.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataset {
    /// TREC question classification (Li & Roth 2002), 6 coarse classes.
    Trec6,
    /// IMDb movie reviews (Maas et al. 2011).
    Imdb,
    /// AG News (Zhang et al. 2015).
    AgNews,
    /// DBpedia ontology (Zhang et al. 2015).
    Dbpedia,
    /// Yelp review polarity (Zhang et al. 2015).
    YelpPolarity,
    /// Yelp review full, 5 classes (Zhang et al. 2015).
    YelpFull,
    /// WikiText-2 (Merity et al. 2016), fastai's `WIKITEXT_TINY`.
    WikiText2,
    /// WikiText-103 (Merity et al. 2016), fastai's `WIKITEXT`.
    WikiText103,
}

/// How a dataset is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packaging {
    /// One `.tgz` whose single top folder is the dataset folder.
    Tgz,
    /// Plain files, placed together in the dataset folder.
    Files,
}

/// One downloadable file of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteFile {
    /// File name, also the name under a mirror (`<mirror>/<file_name>`).
    pub file_name: &'static str,
    /// Canonical URL.
    pub url: &'static str,
    /// Published size and digest, when known.
    pub checksum: Option<Checksum>,
}

/// `const` MD5-of-first-MiB checksum from fastai's `download_checks.py`; bad hex fails to compile.
pub(super) const fn fastai(size: u64, hex: &str) -> Option<Checksum> {
    match cache::decode_hex(hex) {
        Some(md5_first_mib) => Some(Checksum::FastaiMd5 {
            size,
            md5_first_mib,
        }),
        None => panic!("bad md5 literal in the dataset registry"),
    }
}

/// `const` SHA-256 checksum; bad hex fails to compile.
pub(super) const fn sha256(size: u64, hex: &str) -> Option<Checksum> {
    match cache::decode_hex(hex) {
        Some(sha256) => Some(Checksum::Sha256 { size, sha256 }),
        None => panic!("bad sha256 literal in the dataset registry"),
    }
}

/// fastai v2 `URLs.S3_NLP` (`fastai/data/external.py`).
macro_rules! s3_nlp {
    ($file:literal) => {
        concat!("https://s3.amazonaws.com/fast-ai-nlp/", $file)
    };
}

/// Sizes and MD5s: `fastai/data/download_checks.py` (fastai 2.x; same values in v1 `checks.txt`).
pub(super) const IMDB: [RemoteFile; 1] = [RemoteFile {
    file_name: "imdb.tgz",
    url: s3_nlp!("imdb.tgz"),
    checksum: fastai(144_440_600, "90f9b1c4ff43a90d67553c9240dc0249"),
}];
pub(super) const AG_NEWS: [RemoteFile; 1] = [RemoteFile {
    file_name: "ag_news_csv.tgz",
    url: s3_nlp!("ag_news_csv.tgz"),
    checksum: fastai(11_784_419, "b86f328f4dbd072486591cb7a5644dcd"),
}];
pub(super) const DBPEDIA: [RemoteFile; 1] = [RemoteFile {
    file_name: "dbpedia_csv.tgz",
    url: s3_nlp!("dbpedia_csv.tgz"),
    checksum: fastai(68_341_743, "239c7837b9e79db34486f3de6a00e38e"),
}];
pub(super) const YELP_POLARITY: [RemoteFile; 1] = [RemoteFile {
    file_name: "yelp_review_polarity_csv.tgz",
    url: s3_nlp!("yelp_review_polarity_csv.tgz"),
    checksum: fastai(166_373_201, "48c8451c1ad30472334d856b5d294807"),
}];
pub(super) const YELP_FULL: [RemoteFile; 1] = [RemoteFile {
    file_name: "yelp_review_full_csv.tgz",
    url: s3_nlp!("yelp_review_full_csv.tgz"),
    checksum: fastai(196_146_755, "1efd84215ea3e30d90e4c33764b889db"),
}];
pub(super) const WIKITEXT_2: [RemoteFile; 1] = [RemoteFile {
    file_name: "wikitext-2.tgz",
    url: s3_nlp!("wikitext-2.tgz"),
    checksum: fastai(4_070_055, "2a82d47a7b85c8b6a8e068dc4c1d37e7"),
}];
pub(super) const WIKITEXT_103: [RemoteFile; 1] = [RemoteFile {
    file_name: "wikitext-103.tgz",
    url: s3_nlp!("wikitext-103.tgz"),
    checksum: fastai(190_200_704, "2dd8cf8693b3d27e9c8f0a7df054b2c7"),
}];
/// Sizes and SHA-256: Hugging Face `datasets/trec/dataset_infos.json` (see the data README).
pub(super) const TREC: [RemoteFile; 2] = [
    RemoteFile {
        file_name: "train_5500.label",
        url: "https://cogcomp.seas.upenn.edu/Data/QA/QC/train_5500.label",
        checksum: sha256(
            335_858,
            "9e4c8bdcaffb96ed61041bd64b564183d52793a8e91d84fc3a8646885f466ec3",
        ),
    },
    RemoteFile {
        file_name: "TREC_10.label",
        url: "https://cogcomp.seas.upenn.edu/Data/QA/QC/TREC_10.label",
        checksum: sha256(
            23_354,
            "033f22c028c2bbba9ca682f68ffe204dc1aa6e1cf35dd6207f2d4ca67f0d0e8e",
        ),
    },
];

impl Dataset {
    /// Every dataset in the registry.
    pub const ALL: [Dataset; 8] = [
        Dataset::Trec6,
        Dataset::Imdb,
        Dataset::AgNews,
        Dataset::Dbpedia,
        Dataset::YelpPolarity,
        Dataset::YelpFull,
        Dataset::WikiText2,
        Dataset::WikiText103,
    ];

    /// On-disk name: the folder after extraction (the archive's top folder), the cache entry
    /// and the `$ULMFIT_DATA/<name>` looked for.
    pub fn name(self) -> &'static str {
        match self {
            Self::Trec6 => "trec",
            Self::Imdb => "imdb",
            Self::AgNews => "ag_news_csv",
            Self::Dbpedia => "dbpedia_csv",
            Self::YelpPolarity => "yelp_review_polarity_csv",
            Self::YelpFull => "yelp_review_full_csv",
            Self::WikiText2 => "wikitext-2",
            Self::WikiText103 => "wikitext-103",
        }
    }

    /// Parses a name: [`Dataset::name`] or a common alias (`trec6`, `ag_news`, `yelp-p`,
    /// `wt103`, …); case, `-` and `_` are ignored.
    pub fn from_name(name: &str) -> Result<Self, DownloadError> {
        let key: String = name
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect();
        Ok(match key.as_str() {
            "trec" | "trec6" => Self::Trec6,
            "imdb" | "aclimdb" => Self::Imdb,
            "agnews" | "agnewscsv" => Self::AgNews,
            "dbpedia" | "dbpediacsv" => Self::Dbpedia,
            "yelppolarity" | "yelpp" | "yelpreviewpolarity" | "yelpreviewpolaritycsv" => {
                Self::YelpPolarity
            }
            "yelpfull" | "yelpf" | "yelpreviewfull" | "yelpreviewfullcsv" => Self::YelpFull,
            "wikitext2" | "wt2" => Self::WikiText2,
            "wikitext103" | "wt103" => Self::WikiText103,
            _ => return Err(DownloadError::UnknownDataset(name.to_string())),
        })
    }

    /// How the dataset is published.
    pub fn packaging(self) -> Packaging {
        match self {
            Self::Trec6 => Packaging::Files,
            _ => Packaging::Tgz,
        }
    }

    /// The files to download: one archive, or TREC's `train_5500.label` and `TREC_10.label`.
    pub fn remote_files(self) -> &'static [RemoteFile] {
        match self {
            Self::Trec6 => &TREC,
            Self::Imdb => &IMDB,
            Self::AgNews => &AG_NEWS,
            Self::Dbpedia => &DBPEDIA,
            Self::YelpPolarity => &YELP_POLARITY,
            Self::YelpFull => &YELP_FULL,
            Self::WikiText2 => &WIKITEXT_2,
            Self::WikiText103 => &WIKITEXT_103,
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dataset {
    type Err = DownloadError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s)
    }
}
