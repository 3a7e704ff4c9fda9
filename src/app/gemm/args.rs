//! `batchscope gemm`'s options: layouts, precisions and shapes, each checked into one error line.

use super::MAX_DIM;

/// A product's layout: whether A, then B, is stored transposed (`nt`: B is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub trans_a: bool,
    pub trans_b: bool,
}

impl Layout {
    pub fn parse(s: &str) -> Option<Layout> {
        let t = |c: u8| match c {
            b'n' | b'N' => Some(false),
            b't' | b'T' => Some(true),
            _ => None,
        };
        match s.as_bytes() {
            [a, b] => Some(Layout { trans_a: t(*a)?, trans_b: t(*b)? }),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match (self.trans_a, self.trans_b) {
            (false, false) => "nn",
            (false, true) => "nt",
            (true, false) => "tn",
            (true, true) => "tt",
        }
    }
}

/// What `batchscope gemm` was asked for.
#[derive(Clone, Debug, Default)]
pub struct GemmArgs {
    /// Square sizes n (n x n x n products).
    pub sizes: Vec<usize>,
    /// Other shapes, `MxNxK`.
    pub shapes: Vec<String>,
    /// `nn`, `nt`, `tn`, `tt` (default `nn,nt,tn`).
    pub layouts: Vec<String>,
    /// `f32`, `f16` (default `f32`).
    pub precisions: Vec<String>,
    pub peers: Option<std::path::PathBuf>,
    pub adapter: Option<String>,
    pub out: Option<std::path::PathBuf>,
    /// Also time the arithmetic ceilings (`super::ceilings`).
    pub ceilings: bool,
}

/// Layouts, precisions (true: f16) and the explicit shapes (`None`: the defaults), each
/// value checked: a bad one is one error line.
pub(super) type Checked = (Vec<Layout>, Vec<bool>, Option<Vec<(usize, usize, usize)>>);

pub(super) fn check_args(args: &GemmArgs) -> anyhow::Result<Checked> {
    let mut layouts = Vec::new();
    let names: Vec<&str> = match args.layouts.is_empty() {
        true => vec!["nn", "nt", "tn"],
        false => args.layouts.iter().map(String::as_str).collect(),
    };
    for s in names {
        let l = Layout::parse(s)
            .ok_or_else(|| anyhow::anyhow!("--layouts {s:?}: a layout is nn, nt, tn or tt"))?;
        if !layouts.contains(&l) {
            layouts.push(l);
        }
    }
    let mut precisions = Vec::new();
    for p in
        args.precisions.iter().map(String::as_str).chain(args.precisions.is_empty().then_some("f32"))
    {
        let f16 = match p {
            "f32" => false,
            "f16" => true,
            _ => anyhow::bail!("--precision {p:?}: f32 or f16"),
        };
        if !precisions.contains(&f16) {
            precisions.push(f16);
        }
    }
    // Each product once, in the order first asked for (as the layouts and precisions): `--sizes
    // 64,64 --shape 64x64x64` timed and reported the same product three times.
    let mut shapes = Vec::new();
    let mut add = |shape| {
        if !shapes.contains(&shape) {
            shapes.push(shape);
        }
    };
    for &n in &args.sizes {
        add(check_shape(&format!("--sizes {n}"), (n, n, n))?);
    }
    for s in &args.shapes {
        let dims: Vec<Option<usize>> = s.split(['x', 'X']).map(|d| d.trim().parse().ok()).collect();
        let shape = match dims[..] {
            [Some(m), Some(n), Some(k)] => (m, n, k),
            _ => anyhow::bail!("--shape {s:?}: give MxNxK, three whole numbers (1024x784x4096)"),
        };
        add(check_shape(&format!("--shape {s}"), shape)?);
    }
    let explicit = (!shapes.is_empty()).then_some(shapes);
    Ok((layouts, precisions, explicit))
}

fn check_shape(what: &str, (m, n, k): (usize, usize, usize)) -> anyhow::Result<(usize, usize, usize)> {
    if [m, n, k].iter().any(|&d| d == 0 || d > MAX_DIM) {
        anyhow::bail!("{what}: every dimension must be in 1..={MAX_DIM}");
    }
    Ok((m, n, k))
}

pub(super) fn precision_name(f16: bool) -> &'static str {
    if f16 {
        "f16"
    } else {
        "f32"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_asked_for_twice_is_timed_once() {
        let args = GemmArgs {
            sizes: vec![64, 128, 64],
            shapes: vec!["64x64x64".into(), "8x16x32".into(), "8X16X32".into()],
            ..Default::default()
        };
        let (_, _, shapes) = check_args(&args).expect("valid arguments");
        assert_eq!(shapes, Some(vec![(64, 64, 64), (128, 128, 128), (8, 16, 32)]));
    }

    #[test]
    fn layouts_parse_both_cases_and_name_themselves() {
        for name in ["nn", "nt", "tn", "tt"] {
            let l = Layout::parse(name).expect(name);
            assert_eq!(l.name(), name);
            assert_eq!(Layout::parse(&name.to_uppercase()), Some(l));
        }
        assert_eq!(Layout::parse("tn"), Some(Layout { trans_a: true, trans_b: false }));
        for bad in ["", "n", "nnn", "xn", "n t"] {
            assert_eq!(Layout::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn arguments_are_checked_one_error_each() {
        let ok = |a: GemmArgs| check_args(&a).expect("valid");
        let (l, p, s) = ok(GemmArgs::default());
        assert_eq!(l.iter().map(|l| l.name()).collect::<Vec<_>>(), ["nn", "nt", "tn"]);
        assert_eq!(p, [false]);
        assert_eq!(s, None);
        let (l, p, s) = ok(GemmArgs {
            sizes: vec![64, 64],
            shapes: vec!["32x48x1000".into()],
            layouts: vec!["tt".into(), "tt".into()],
            precisions: vec!["f16".into(), "f32".into(), "f16".into()],
            ..GemmArgs::default()
        });
        assert_eq!(l.len(), 1);
        assert_eq!(p, [true, false]);
        assert_eq!(s, Some(vec![(64, 64, 64), (32, 48, 1000)]), "each product once");
        let bad = |a: GemmArgs, want: &str| {
            let e = check_args(&a).expect_err(want).to_string();
            assert!(e.contains(want), "{e}");
        };
        bad(GemmArgs { sizes: vec![0], ..GemmArgs::default() }, "--sizes 0");
        bad(GemmArgs { sizes: vec![MAX_DIM + 1], ..GemmArgs::default() }, "1..=32768");
        bad(GemmArgs { shapes: vec!["64x64".into()], ..GemmArgs::default() }, "MxNxK");
        bad(GemmArgs { shapes: vec!["64x0x64".into()], ..GemmArgs::default() }, "--shape 64x0x64");
        bad(GemmArgs { layouts: vec!["nx".into()], ..GemmArgs::default() }, "nn, nt, tn or tt");
        bad(GemmArgs { precisions: vec!["bf16".into()], ..GemmArgs::default() }, "f32 or f16");
    }
}
