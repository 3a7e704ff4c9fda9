//! Line plots, panels and histograms end to end (the SVG text they write).

use super::*;
use crate::report::TestDir;

fn text_elements(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|s| {
            s.split_once('>')
                .and_then(|(_, r)| r.split_once("</text>"))
                .map(|(t, _)| t.trim().to_string())
        })
        .collect()
}

#[test]
fn line_plot_writes_svg_with_series_names_and_skips_bad_points() {
    let t = TestDir::new("plot-line");
    let p = t.0.join("loss.svg");
    let train = Series::new(
        "train <loss>",
        (0..200).map(|i| (i as f64 * 64.0, 2.0 / (1.0 + i as f64))).collect(),
    );
    let mut val_pts: Vec<(f64, f64)> =
        (0..20).map(|i| (i as f64 * 640.0, 2.5 / (1.0 + i as f64))).collect();
    val_pts[5].1 = f64::NAN;
    val_pts[6].1 = f64::INFINITY;
    let val = Series::new("validation", val_pts);
    let spec = PlotSpec::new("Surrogate loss", "examples seen", "loss").log_y();
    line_plot(&p, &spec, &[train, val]).unwrap();
    let svg = std::fs::read_to_string(&p).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    let texts = text_elements(&svg);
    for want in ["train &lt;loss&gt;", "validation", "Surrogate loss", "examples seen", "loss"] {
        assert!(texts.iter().any(|t| t == want), "missing text {want:?} in {texts:?}");
    }
    assert!(!svg.contains("NaN") && !svg.contains("inf"), "non-finite values leaked into the SVG");
    // Two colors for two series.
    assert!(svg.contains("#1F77B4") || svg.contains("#1f77b4"));
    assert!(svg.contains("#FF7F0E") || svg.contains("#ff7f0e"));
}

#[test]
fn log2_axis_is_labelled_with_powers_of_two() {
    let t = TestDir::new("plot-log2");
    let p = t.0.join("sweep.svg");
    let pts: Vec<(f64, f64)> = (0..=12)
        .map(|k| ((1u32 << k) as f64, 300.0 * (1u32 << k) as f64 / (1.0 + (1u32 << k) as f64 / 512.0)))
        .collect();
    let spec = PlotSpec::new("Throughput", "batch size", "examples/s").log2_x().log_y();
    line_plot(
        &p,
        &spec,
        &[Series::new("gpu", pts), Series::new("cpu", vec![(1.0, 273.0), (4096.0, 14000.0)])],
    )
    .unwrap();
    let texts = text_elements(&std::fs::read_to_string(&p).unwrap());
    for want in ["1", "2", "4", "8", "64", "1024", "4096", "gpu", "cpu"] {
        assert!(texts.iter().any(|t| t == want), "missing tick {want:?} in {texts:?}");
    }
}

#[test]
fn panels_and_degenerate_inputs_render() {
    let t = TestDir::new("plot-panels");
    let left = Panel {
        spec: PlotSpec::new("loss", "examples", "loss"),
        series: vec![Series::new("train", vec![(0.0, 1.0), (1.0, 0.5)])],
    };
    let right = Panel {
        spec: PlotSpec::new("0-1 error", "examples", "error"),
        series: vec![
            Series::new("constant", vec![(0.0, 0.1), (1.0, 0.1)]),
            Series::new("empty", vec![]),
            Series::new("nan only", vec![(f64::NAN, 1.0)]),
        ],
    };
    let p = t.0.join("two.svg");
    two_panel(&p, &left, &right).unwrap();
    let texts = text_elements(&std::fs::read_to_string(&p).unwrap());
    for want in ["train", "constant", "empty", "nan only", "loss", "0-1 error"] {
        assert!(texts.iter().any(|t| t == want), "missing {want:?} in {texts:?}");
    }
    // Nothing to plot at all, and a log axis with only non-positive values.
    let q = t.0.join("empty.svg");
    line_plot(
        &q,
        &PlotSpec::new("", "x", "y").log_x().log_y(),
        &[Series::new("zeros", vec![(0.0, 0.0), (-1.0, 2.0)])],
    )
    .unwrap();
    assert!(std::fs::metadata(&q).unwrap().len() > 0);
    assert!(panels_plot(&t.0.join("none.svg"), &[]).is_err());
    let e = line_plot(&t.0.join("no/dir/x.svg"), &PlotSpec::default(), &[]).unwrap_err();
    assert!(e.to_string().contains("no/dir"), "{e}");
}

#[test]
fn histogram_renders_bars_and_checks_edges() {
    let t = TestDir::new("plot-hist");
    let p = t.0.join("spectrum.svg");
    let edges: Vec<f64> = (0..=20).map(|i| i as f64 * 0.5).collect();
    let values: Vec<f64> = (0..20).map(|i| ((i as f64 - 8.0) / 3.0).powi(2).neg_exp()).collect();
    let h = HistSeries { name: "Hessian spectrum".into(), edges: edges.clone(), values: values.clone() };
    let h2 =
        HistSeries { name: "at init".into(), edges, values: values.iter().map(|v| v * 0.5).collect() };
    histogram_plot(&p, &PlotSpec::new("Spectral density", "eigenvalue", "density"), &[h, h2]).unwrap();
    let svg = std::fs::read_to_string(&p).unwrap();
    let texts = text_elements(&svg);
    assert!(texts.iter().any(|t| t == "Hessian spectrum") && texts.iter().any(|t| t == "at init"));
    assert!(svg.matches("<rect").count() >= 40, "bars missing");
    let log = t.0.join("log.svg");
    let hl = HistSeries {
        name: "log".into(),
        edges: vec![1e-3, 1e-2, 1e-1, 1.0],
        values: vec![0.0, 5.0, 1.0],
    };
    histogram_plot(&log, &PlotSpec::new("", "λ", "count").log_x().log_y(), &[hl]).unwrap();
    let bad = HistSeries { name: "bad".into(), edges: vec![0.0, 1.0], values: vec![1.0, 2.0] };
    let e = histogram_plot(&t.0.join("bad.svg"), &PlotSpec::default(), &[bad]).unwrap_err();
    assert!(e.to_string().contains("bad.svg") && e.to_string().contains("2 edges"), "{e}");
}

trait NegExp {
    fn neg_exp(self) -> f64;
}
impl NegExp for f64 {
    fn neg_exp(self) -> f64 {
        (-self).exp()
    }
}

/// A label holding a control character (an overlay `--label`, a run directory's name) was
/// written raw, and XML parsers refused the file.
#[test]
fn control_characters_in_labels_do_not_break_the_xml() {
    let dir = std::env::temp_dir().join(format!("batchscope-plot-ctl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("ctl.svg");
    let series = Series::new("x\u{b}y\u{1}z\tw", vec![(1.0, 1.0), (2.0, 2.0)]);
    line_plot(&p, &PlotSpec::new("t\u{0}itle", "x", "y"), &[series]).unwrap();
    let svg = std::fs::read_to_string(&p).unwrap();
    assert!(!svg.chars().any(|c| c < ' ' && !matches!(c, '\t' | '\n' | '\r')), "{svg}");
    let texts = text_elements(&svg);
    assert!(texts.iter().any(|t| t == "x\u{FFFD}y\u{FFFD}z\tw"), "{texts:?}");
    assert_eq!(xml_chars("a\u{FFFE}b".into()), "a\u{FFFD}b");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run of a million points is drawn through each column's first, lowest, highest and last
/// point: the spike and both ends stay, the order too, and the SVG is small.
#[test]
fn long_runs_are_thinned_to_their_extremes_per_column() {
    let n = 1_000_000;
    let mut pts: Vec<(f64, f64)> = (0..n).map(|i| (i as f64, (i as f64 * 0.001).sin())).collect();
    pts[123_457].1 = 100.0;
    pts[765_431].1 = -50.0;
    let thinned = render::thin(pts.clone());
    assert!(thinned.len() <= 4 * 2048 && thinned.len() >= 2048, "{}", thinned.len());
    for must in [pts[0], pts[123_457], pts[765_431], pts[n - 1]] {
        assert!(thinned.contains(&must), "{must:?} was thinned away");
    }
    assert!(thinned.windows(2).all(|w| w[0].0 < w[1].0), "x order kept, no point twice");
    // Short runs and runs whose x goes back (a path) are drawn whole.
    assert_eq!(render::thin(pts[..8192].to_vec()).len(), 8192);
    let mut path = pts[..10_000].to_vec();
    path[5000].0 = -1.0;
    assert_eq!(render::thin(path.clone()), path);
    let t = TestDir::new("plot-thin");
    let p = t.0.join("long.svg");
    line_plot(&p, &PlotSpec::new("long", "step", "loss"), &[Series::new("train", pts)]).unwrap();
    let bytes = std::fs::metadata(&p).unwrap().len();
    assert!(bytes < 400_000, "{bytes} bytes of SVG for a thinned run");
}
