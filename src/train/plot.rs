//! LR-finder plot as a self-contained SVG file (hand-written SVG, no plotting crate): smoothed
//! loss against the learning rate on a log-scaled x axis, with labelled ticks and the suggested
//! rates marked, like fastai's `Recorder.plot_lr_find`.

use crate::train::lr_find::{SuggestMethod, Suggestion};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Errors of the plot module.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Learning rates and losses differ in length.
    #[error("{lrs} learning rates but {losses} losses")]
    LengthMismatch {
        /// Number of learning rates.
        lrs: usize,
        /// Number of losses.
        losses: usize,
    },
    /// Fewer than two plottable points (positive finite lr, finite loss).
    #[error("need at least 2 points with a positive finite lr and a finite loss, got {0}")]
    TooFewPoints(usize),
    /// Writing the file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// File being written (or its temporary).
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// A point to mark on the curve (a suggested learning rate).
#[derive(Debug, Clone, PartialEq)]
pub struct PlotMarker {
    /// Legend text.
    pub label: String,
    /// Learning rate (x).
    pub lr: f64,
    /// Loss (y).
    pub loss: f64,
}

impl PlotMarker {
    /// Marker for a fastai suggestion, at its plot point and labelled with the rule's name and
    /// the suggested rate.
    pub fn from_suggestion(s: &Suggestion) -> Self {
        let name = match s.method {
            SuggestMethod::Valley => "valley",
            SuggestMethod::Minimum => "minimum",
            SuggestMethod::Steep => "steep",
        };
        Self {
            label: format!("{name}: {:.2e}", s.lr),
            lr: s.point.0,
            loss: s.point.1,
        }
    }
}

const W: f64 = 640.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 55.0;
const BOTTOM: f64 = 55.0;
const COLORS: [&str; 4] = ["#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

/// The tick at `10^t` (`t` = log10 of a 1-2-5 multiple) written as `1e-3`, `2e-3`, `5e3`, or
/// plainly (`0.5`, `1`, `20`) for exponents -1 to 2.
fn fmt_pow(t: f64) -> String {
    let k = (t + 1e-9).floor();
    let m = 10f64.powf(t - k).round();
    match k as i32 {
        -1..=2 => format!("{}", m * 10f64.powf(k)),
        k => format!("{m}e{k}"),
    }
}

/// Log-x ticks (in log10 units) inside `[lo, hi]`: decades, or 1-2-5 steps on short ranges.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades: Vec<f64> = (lo.ceil() as i32..=hi.floor() as i32)
        .map(f64::from)
        .collect();
    if decades.len() >= 2 {
        let stride = decades.len().div_ceil(8);
        return decades.into_iter().step_by(stride).collect();
    }
    let mut t = Vec::new();
    for k in lo.floor() as i32..=hi.ceil() as i32 {
        for m in [1.0f64, 2.0, 5.0] {
            let x = m.log10() + f64::from(k);
            if x >= lo - 1e-12 && x <= hi + 1e-12 {
                t.push(x);
            }
        }
    }
    t
}

/// Linear "nice" ticks (steps of 1, 2 or 5 × 10^k) inside `[lo, hi]`, with decimals to show.
fn lin_ticks(lo: f64, hi: f64) -> (Vec<f64>, usize) {
    let raw = (hi - lo) / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let mut t = Vec::new();
    let mut v = (lo / step).ceil() * step;
    while v <= hi + step * 1e-9 && t.len() < 50 {
        t.push(v);
        v += step;
    }
    (t, decimals)
}

/// The LR-finder curve as an SVG document. Points with a non-positive or non-finite lr or a
/// non-finite loss are left out (fastai stops its suggestion window at the first NaN). Pass
/// what should be drawn: fastai's own plot drops the last 5 recorded points (`skip_end=5`).
pub fn lr_finder_svg(
    lrs: &[f64],
    losses: &[f64],
    markers: &[PlotMarker],
) -> Result<String, PlotError> {
    if lrs.len() != losses.len() {
        return Err(PlotError::LengthMismatch {
            lrs: lrs.len(),
            losses: losses.len(),
        });
    }
    let ok = |lr: f64, loss: f64| lr > 0.0 && lr.is_finite() && loss.is_finite();
    let pts: Vec<(f64, f64)> = lrs
        .iter()
        .zip(losses)
        .filter(|(l, s)| ok(**l, **s))
        .map(|(l, s)| (l.log10(), *s))
        .collect();
    if pts.len() < 2 {
        return Err(PlotError::TooFewPoints(pts.len()));
    }
    let marks: Vec<&PlotMarker> = markers.iter().filter(|m| ok(m.lr, m.loss)).collect();
    let all = pts
        .iter()
        .copied()
        .chain(marks.iter().map(|m| (m.lr.log10(), m.loss)));
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in all {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x1 - x0 < 1e-9 {
        (x0, x1) = (x0 - 0.5, x1 + 0.5);
    }
    let pad = if y1 - y0 > 1e-12 {
        (y1 - y0) * 0.05
    } else {
        y0.abs().max(1.0) * 0.1
    };
    (y0, y1) = (y0 - pad, y1 + pad);
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - (y - y0) / (y1 - y0) * (H - TOP - BOTTOM);

    let mut s = String::new();
    // Writing to a String cannot fail; `let _ =` keeps clippy quiet about the Result.
    let _ = writeln!(
        s,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>
<text x="{}" y="20" text-anchor="middle" font-size="14">Learning rate finder</text>"#,
        W / 2.0
    );
    let (bx0, bx1, by0, by1) = (LEFT, W - RIGHT, TOP, H - BOTTOM);
    let _ = writeln!(
        s,
        r##"<rect x="{bx0}" y="{by0}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
        bx1 - bx0,
        by1 - by0
    );
    s.push_str("<g class=\"xticks\">\n");
    for t in log_ticks(x0, x1) {
        let x = px(t);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.2}" y1="{by1}" x2="{x:.2}" y2="{}" stroke="#333"/><text x="{x:.2}" y="{}" text-anchor="middle">{}</text>"##,
            by1 + 5.0,
            by1 + 19.0,
            escape(&fmt_pow(t))
        );
    }
    s.push_str("</g>\n<g class=\"yticks\">\n");
    let (yt, dec) = lin_ticks(y0, y1);
    for t in yt {
        let y = py(t);
        let _ = writeln!(
            s,
            r##"<line x1="{}" y1="{y:.2}" x2="{bx0}" y2="{y:.2}" stroke="#333"/><text x="{}" y="{:.2}" text-anchor="end">{t:.dec$}</text>"##,
            bx0 - 5.0,
            bx0 - 8.0,
            y + 4.0
        );
    }
    s.push_str("</g>\n");
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">learning rate (log scale)</text>
<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">loss</text>"#,
        (bx0 + bx1) / 2.0,
        H - 12.0,
        (by0 + by1) / 2.0,
        (by0 + by1) / 2.0
    );
    let coords: Vec<String> = pts
        .iter()
        .map(|(x, y)| format!("{:.2},{:.2}", px(*x), py(*y)))
        .collect();
    let _ = writeln!(
        s,
        r##"<polyline class="curve" fill="none" stroke="#1f77b4" stroke-width="1.5" points="{}"/>"##,
        coords.join(" ")
    );
    // Legend: one row in the top margin, left to right.
    let mut lx = bx0;
    for (i, m) in marks.iter().enumerate() {
        let (x, y) = (px(m.lr.log10()), py(m.loss));
        let color = COLORS[i % COLORS.len()];
        let label = escape(&m.label);
        let _ = writeln!(
            s,
            r#"<circle class="marker" cx="{x:.2}" cy="{y:.2}" r="4" fill="{color}"/><circle cx="{}" cy="{}" r="4" fill="{color}"/><text x="{}" y="{}">{label}</text>"#,
            lx + 4.0,
            by0 - 14.0,
            lx + 12.0,
            by0 - 10.0,
        );
        lx += 12.0 + 7.0 * m.label.chars().count() as f64 + 18.0;
    }
    s.push_str("</svg>\n");
    Ok(s)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed to disk,
/// then renamed over `path` (a reader never sees a half-written file).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PlotError> {
    crate::atomic::write_atomic(path, bytes)
        .map_err(|(path, source)| PlotError::Io { path, source })
}

/// [`lr_finder_svg`] written atomically to `path`.
pub fn write_lr_finder_svg(
    path: &Path,
    lrs: &[f64],
    losses: &[f64],
    markers: &[PlotMarker],
) -> Result<(), PlotError> {
    write_atomic(path, lr_finder_svg(lrs, losses, markers)?.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::lr_find::{LrFinder, lr_find_trace, valley};

    /// Checks that every tag is closed in order (self-closing tags allowed) and returns the
    /// element names in document order.
    fn check_tags(svg: &str) -> Vec<String> {
        let mut stack: Vec<String> = Vec::new();
        let mut names = Vec::new();
        let mut rest = svg;
        while let Some(open) = rest.find('<') {
            let close = rest[open..].find('>').expect("unclosed '<'") + open;
            let tag = &rest[open + 1..close];
            rest = &rest[close + 1..];
            if tag.starts_with('?') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
            } else {
                let name: String = tag.chars().take_while(|c| c.is_alphanumeric()).collect();
                names.push(name.clone());
                if !tag.ends_with('/') {
                    stack.push(name);
                }
            }
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        names
    }

    fn demo() -> (Vec<f64>, Vec<f64>) {
        let f = LrFinder::default();
        let raw: Vec<f64> = (0..100)
            .map(|i| {
                let x = f.lr_at(i).log10();
                2.0 + 0.2 * (x + 3.0).powi(2)
            })
            .collect();
        lr_find_trace(&f, &raw)
    }

    #[test]
    fn svg_is_well_formed() {
        let (lrs, losses) = demo();
        let sug = valley(&lrs, &losses).unwrap();
        let markers = [
            PlotMarker::from_suggestion(&sug),
            PlotMarker {
                label: "a <b> & \"c\"".into(),
                lr: 1e-4,
                loss: 2.5,
            },
        ];
        let svg = lr_finder_svg(&lrs, &losses, &markers).unwrap();
        assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
        let names = check_tags(&svg);
        assert_eq!(names.iter().filter(|n| *n == "svg").count(), 1);
        assert_eq!(names.iter().filter(|n| *n == "polyline").count(), 1);
        let pts = svg
            .split("points=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap();
        assert_eq!(pts.split(' ').count(), lrs.len());
        for p in pts.split(' ') {
            let (x, y) = p.split_once(',').unwrap();
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!((LEFT - 1e-6..=W - RIGHT + 1e-6).contains(&x));
            assert!((TOP - 1e-6..=H - BOTTOM + 1e-6).contains(&y));
        }
        assert_eq!(svg.matches("class=\"marker\"").count(), 2);
        assert!(svg.contains("valley: "));
        assert!(svg.contains("a &lt;b&gt; &amp; &quot;c&quot;"));
        // 1e-7 .. 10 spans 9 decades: labelled decade ticks, and y ticks.
        assert!(svg.contains(">1e-5</text>") && svg.contains(">0.1</text>"));
        assert!(svg.matches("text-anchor=\"end\">").count() >= 3);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn filters_bad_points_and_rejects_bad_input() {
        let svg = lr_finder_svg(&[1e-3, 0.0, 2e-3, 3e-3], &[1.0, 1.0, f64::NAN, 2.0], &[]).unwrap();
        let pts = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(pts.split(' ').count(), 2);
        // Short range (< 2 decades): 1-2-5 ticks.
        assert!(
            svg.contains(">1e-3</text>") && svg.contains(">2e-3</text>"),
            "{svg}"
        );
        assert!(matches!(
            lr_finder_svg(&[1.0], &[1.0, 2.0], &[]),
            Err(PlotError::LengthMismatch { .. })
        ));
        assert!(matches!(
            lr_finder_svg(&[1.0, 2.0], &[f64::NAN, 1.0], &[]),
            Err(PlotError::TooFewPoints(1))
        ));
        // Flat loss still gives a valid plot.
        check_tags(&lr_finder_svg(&[1e-3, 1e-2], &[1.0, 1.0], &[]).unwrap());
    }

    #[test]
    fn atomic_write() {
        let dir = std::env::temp_dir().join(format!("ulmfit_plot_test_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lr_find.svg");
        let (lrs, losses) = demo();
        write_lr_finder_svg(&path, &lrs, &losses, &[]).unwrap();
        write_lr_finder_svg(&path, &lrs, &losses, &[]).unwrap(); // overwrite works
        let text = std::fs::read_to_string(&path).unwrap();
        check_tags(&text);
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "temporary file left behind");
        let missing = dir.join("no_such_dir").join("x.svg");
        let err = write_lr_finder_svg(&missing, &lrs, &losses, &[]).unwrap_err();
        assert!(err.to_string().contains("no_such_dir"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
