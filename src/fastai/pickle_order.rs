//! Recover the key order of a torch file's state dict.
//!
//! `pytorch-reader` hands tensors back in a `HashMap`, so the order of `model.state_dict()`
//! is lost. A state dict pickles each key as a string literal immediately before its value,
//! so the order in which the strings first occur in the pickle is the key order. This module
//! walks the pickle's opcodes (it never builds or calls anything) and lists its string
//! literals in order. It is best effort: any surprise makes it give up, and the caller then
//! falls back to a natural sort of the names.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Strings longer than this are skipped (keys are short).
const MAX_KEPT_STRING: u64 = 4096;
/// At most this many strings are collected.
const MAX_STRINGS: usize = 1 << 20;
/// Longest text-mode argument line read.
const MAX_LINE: usize = 1 << 16;

/// The string literals of the object pickle of a legacy (pre-1.6) torch file, in order.
pub(crate) fn legacy_strings(path: &Path) -> Option<Vec<String>> {
    let mut r = BufReader::new(File::open(path).ok()?);
    // Magic number, protocol version, sys info, then the saved object.
    for _ in 0..3 {
        scan(&mut r, false)?;
    }
    scan(&mut r, true)
}

/// The string literals of `data.pkl` in a zip (torch >= 1.6) file, in order.
pub(crate) fn zip_strings(path: &Path) -> Option<Vec<String>> {
    let mut archive = zip::ZipArchive::new(BufReader::new(File::open(path).ok()?)).ok()?;
    let index = (0..archive.len()).find(|&i| {
        archive
            .name_for_index(i)
            .and_then(Result::ok)
            .is_some_and(|n| n == "data.pkl" || n.ends_with("/data.pkl"))
    })?;
    let entry = archive.by_index(index).ok()?;
    if entry.size() > pytorch_reader::MAX_PICKLE_SIZE {
        return None;
    }
    scan(
        &mut BufReader::new(entry.take(pytorch_reader::MAX_PICKLE_SIZE)),
        true,
    )
}

/// Walk one pickle up to its STOP opcode; return its strings when `collect` is set.
fn scan<R: BufRead>(r: &mut R, collect: bool) -> Option<Vec<String>> {
    let mut strings = Vec::new();
    loop {
        let op = read_u8(r)?;
        let string_len: Option<u64> = match op {
            b'.' => return Some(strings),
            // Opcodes without an argument.
            b'(' | b'0' | b'1' | b'2' | b'N' | b'R' | b'a' | b'b' | b'd' | b'}' | b'e' | b'l'
            | b']' | b'o' | b's' | b't' | b')' | b'u' | b'Q' | 0x81 | 0x85 | 0x86 | 0x87 | 0x88
            | 0x89 | 0x8f | 0x90 | 0x91 | 0x92 | 0x93 | 0x94 | 0x97 | 0x98 => None,
            // Fixed-size arguments.
            b'K' | b'q' | b'h' | 0x80 | 0x82 => skip(r, 1).map(|_| None)?,
            b'M' | 0x83 => skip(r, 2).map(|_| None)?,
            b'J' | b'r' | b'j' | 0x84 => skip(r, 4).map(|_| None)?,
            b'G' | 0x95 => skip(r, 8).map(|_| None)?,
            // Length-prefixed byte strings and longs: skipped.
            b'C' | 0x8a => {
                let n = read_le(r, 1)?;
                skip(r, n)?;
                None
            }
            b'B' | 0x8b => {
                let n = read_le(r, 4)?;
                skip(r, n)?;
                None
            }
            0x8e | 0x96 => {
                let n = read_le(r, 8)?;
                skip(r, n)?;
                None
            }
            // Length-prefixed text strings (Python 2 `str` too).
            b'U' | 0x8c => Some(read_le(r, 1)?),
            b'T' | b'X' => Some(read_le(r, 4)?),
            0x8d => Some(read_le(r, 8)?),
            // Text-mode arguments: one line, two for GLOBAL and INST.
            b'V' | b'S' => {
                let line = read_line(r)?;
                if collect && strings.len() < MAX_STRINGS {
                    let text = String::from_utf8_lossy(&line);
                    strings.push(text.trim_matches(|c| c == '\'' || c == '"').to_string());
                }
                None
            }
            b'I' | b'L' | b'F' | b'p' | b'g' | b'P' => read_line(r).map(|_| None)?,
            b'c' | b'i' => {
                read_line(r)?;
                read_line(r)?;
                None
            }
            _ => return None,
        };
        if let Some(len) = string_len {
            if collect && len <= MAX_KEPT_STRING && strings.len() < MAX_STRINGS {
                let mut buf = Vec::new();
                r.take(len).read_to_end(&mut buf).ok()?;
                if buf.len() as u64 != len {
                    return None;
                }
                strings.push(String::from_utf8_lossy(&buf).into_owned());
            } else {
                skip(r, len)?;
            }
        }
    }
}

fn read_u8<R: Read>(r: &mut R) -> Option<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b).ok()?;
    Some(b[0])
}

/// A little-endian unsigned integer of `n` <= 8 bytes.
fn read_le<R: Read>(r: &mut R, n: usize) -> Option<u64> {
    let mut b = [0u8; 8];
    r.read_exact(b.get_mut(..n)?).ok()?;
    Some(u64::from_le_bytes(b))
}

/// Skip exactly `n` bytes without buffering them.
fn skip<R: Read>(r: &mut R, n: u64) -> Option<()> {
    let copied = std::io::copy(&mut r.take(n), &mut std::io::sink()).ok()?;
    (copied == n).then_some(())
}

fn read_line<R: BufRead>(r: &mut R) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    r.take(MAX_LINE as u64).read_until(b'\n', &mut line).ok()?;
    if line.pop() != Some(b'\n') {
        return None;
    }
    Some(line)
}

/// Order `names` by first occurrence in `strings`; names that do not occur come last, in
/// natural order (numeric path segments compared as numbers).
pub(crate) fn order_names(names: &mut [String], strings: Option<&[String]>) {
    let mut first = std::collections::HashMap::new();
    if let Some(strings) = strings {
        for (i, s) in strings.iter().enumerate() {
            first.entry(s.as_str()).or_insert(i);
        }
    }
    let pos: Vec<Option<usize>> = names
        .iter()
        .map(|n| first.get(n.as_str()).copied())
        .collect();
    let mut idx: Vec<usize> = (0..names.len()).collect();
    idx.sort_by(|&a, &b| match (pos[a], pos[b]) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => natural_cmp(&names[a], &names[b]),
    });
    let sorted: Vec<String> = idx.iter().map(|&i| names[i].clone()).collect();
    names.clone_from_slice(&sorted);
}

/// Compare dotted names segment by segment, numeric segments as numbers.
pub(crate) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let mut sa = a.split('.');
    let mut sb = b.split('.');
    loop {
        match (sa.next(), sb.next()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(nx), Ok(ny)) => nx.cmp(&ny),
                    _ => x.cmp(y),
                };
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_strings_of_a_protocol_2_dict() {
        // pickle.dumps({'b.1': 1, 'a.0': 'x'}, protocol=2)
        let bytes = b"\x80\x02}q\x00(X\x03\x00\x00\x00b.1q\x01K\x01X\x03\x00\x00\x00a.0q\x02X\x01\x00\x00\x00xq\x03u.";
        let strings = scan(&mut &bytes[..], true).expect("scans");
        assert_eq!(strings, ["b.1", "a.0", "x"]);
    }

    #[test]
    fn gives_up_on_truncation_and_unknown_opcodes() {
        let bytes = b"\x80\x02}q\x00(X\x03\x00\x00\x00b.";
        assert!(scan(&mut &bytes[..], true).is_none());
        assert!(scan(&mut &b"\x80\x02\xff."[..], true).is_none());
        // A huge claimed length is skipped without allocating, then hits end of input.
        assert!(scan(&mut &b"\x80\x02X\xf0\xff\xff\xffab."[..], true).is_none());
    }

    #[test]
    fn orders_by_first_occurrence_then_naturally() {
        let mut names: Vec<String> = ["x.10", "x.9", "k2", "k1"].map(String::from).to_vec();
        let strings: Vec<String> = ["k2", "zz", "k1", "k2"].map(String::from).to_vec();
        order_names(&mut names, Some(&strings));
        assert_eq!(names, ["k2", "k1", "x.9", "x.10"]);
    }
}
