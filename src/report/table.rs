//! Terminal tables: aligned columns, numbers right-aligned, a rule under the header.
//!
//! ```text
//!    B  examples/s  ms/step  backend
//! ----  ----------  -------  -------
//!    1       273.0    3.663  cpu
//! 1024     14000.0   73.143  gpu
//! ```

use std::fmt;

/// Column alignment; `Auto` right-aligns a column whose cells all read as numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
    Auto,
}

#[derive(Clone, Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    align: Vec<Align>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        let header: Vec<String> = header.into_iter().map(Into::into).collect();
        let align = vec![Align::Auto; header.len()];
        Table { header, rows: Vec::new(), align }
    }

    /// Sets the alignment of column `col` (counted from 0).
    pub fn align(mut self, col: usize, align: Align) -> Self {
        if col >= self.align.len() {
            self.align.resize(col + 1, Align::Auto);
        }
        self.align[col] = align;
        self
    }

    /// Adds a row; a short row is padded with blanks, a long one widens the table.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one `\n`-terminated line per row, no trailing spaces.
    pub fn render(&self) -> String {
        let ncols = self.rows.iter().map(Vec::len).chain([self.header.len()]).max().unwrap_or(0);
        if ncols == 0 {
            return String::new();
        }
        fn cell(r: &[String], c: usize) -> &str {
            r.get(c).map(String::as_str).unwrap_or("")
        }
        let mut width = vec![0usize; ncols];
        let mut right = vec![false; ncols];
        for c in 0..ncols {
            width[c] = std::iter::once(cell(&self.header, c))
                .chain(self.rows.iter().map(|r| cell(r, c)))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0);
            right[c] = match self.align.get(c).copied().unwrap_or(Align::Auto) {
                Align::Left => false,
                Align::Right => true,
                Align::Auto => {
                    let mut any = false;
                    let all = self.rows.iter().map(|r| cell(r, c)).all(|s| match classify(s) {
                        Kind::Number => {
                            any = true;
                            true
                        }
                        Kind::Blank => true,
                        Kind::Text => false,
                    });
                    all && any
                }
            };
        }
        let mut out = String::new();
        let mut line = |cells: &mut dyn Iterator<Item = String>| {
            let mut l = String::new();
            for (c, s) in cells.enumerate() {
                if c > 0 {
                    l.push_str("  ");
                }
                let pad = width[c].saturating_sub(s.chars().count());
                if right[c] {
                    l.extend(std::iter::repeat_n(' ', pad));
                    l.push_str(&s);
                } else {
                    l.push_str(&s);
                    l.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(&mut (0..ncols).map(|c| cell(&self.header, c).to_string()));
        line(&mut (0..ncols).map(|c| "-".repeat(width[c])));
        for r in &self.rows {
            line(&mut (0..ncols).map(|c| cell(r, c).to_string()));
        }
        out
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

enum Kind {
    Number,
    Blank,
    Text,
}

/// A number, optionally with a unit or `%`/`×` suffix (`12.5`, `-3e-4`, `87 %`, `1.9×`,
/// `310 GFLOP/s`), reads as a number; `-`, `—`, `n/a` and empty cells are blanks.
fn classify(s: &str) -> Kind {
    let t = s.trim();
    if matches!(t, "" | "-" | "—" | "n/a" | "N/A") {
        return Kind::Blank;
    }
    let lower = t.to_ascii_lowercase();
    if matches!(lower.trim_start_matches(['+', '-']), "nan" | "inf" | "infinity") {
        return Kind::Number;
    }
    if !t.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.')) {
        return Kind::Text;
    }
    // Longest prefix that parses as a float (and has a digit), then a unit-like suffix.
    let numeric_end =
        t.char_indices().map(|(i, ch)| i + ch.len_utf8()).rev().find(|&end| {
            t[..end].parse::<f64>().is_ok() && t[..end].contains(|c: char| c.is_ascii_digit())
        });
    match numeric_end {
        Some(end) => {
            let rest = &t[end..];
            if rest.chars().all(|c| c.is_alphabetic() || matches!(c, ' ' | '%' | '×' | '/' | '²' | '³'))
            {
                Kind::Number
            } else {
                Kind::Text
            }
        }
        None => Kind::Text,
    }
}

/// `v` with `digits` significant digits, plain notation between 1e-3 and 1e7, else `1.23e9`.
pub fn fmt_sig(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return "0".into();
    }
    let digits = digits.max(1);
    let mag = v.abs().log10().floor() as i32;
    if (-3..7).contains(&mag) {
        let decimals = (digits as i32 - 1 - mag).max(0) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.prec$e}", prec = digits - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_right_text_left_and_no_trailing_spaces() {
        let mut t = Table::new(["B", "examples/s", "speedup", "backend"]);
        t.row(["1", "273.0", "0.5×", "cpu"]);
        t.row(["1024", "14000.0", "12.25×", "gpu (lavapipe)"]);
        t.row(["4096", "-", "n/a", "gpu"]);
        let s = t.render();
        let expected = [
            "   B  examples/s  speedup  backend",
            "----  ----------  -------  --------------",
            "   1       273.0     0.5×  cpu",
            "1024     14000.0   12.25×  gpu (lavapipe)",
            "4096           -      n/a  gpu",
            "",
        ]
        .join("\n");
        assert_eq!(s, expected);
        assert_eq!(t.to_string(), expected);
    }

    #[test]
    fn forced_alignment_and_ragged_rows() {
        let mut t = Table::new(["id", "v"]).align(0, Align::Left);
        t.row(["7", "1e-3"]);
        t.row(["12", "2.5", "extra"]);
        t.row(["3"]);
        let expected =
            ["id     v", "--  ----  -----", "7   1e-3", "12   2.5  extra", "3", ""].join("\n");
        assert_eq!(t.render(), expected);
    }

    #[test]
    fn classification() {
        for s in ["12", "-3e-4", "87 %", "310 GFLOP/s", "NaN", "-inf", "1.9×"] {
            assert!(matches!(classify(s), Kind::Number), "{s}");
        }
        for s in ["gpu", "v1.2-rc", "2x2 grid", "1/2", "info", "-infinite loop"] {
            assert!(matches!(classify(s), Kind::Text), "{s}");
        }
    }

    #[test]
    fn significant_digits() {
        assert_eq!(fmt_sig(14000.4, 4), "14000");
        assert_eq!(fmt_sig(1.23456, 3), "1.23");
        assert_eq!(fmt_sig(0.0012345, 3), "0.00123");
        assert_eq!(fmt_sig(1.5e9, 3), "1.50e9");
        assert_eq!(fmt_sig(0.0, 3), "0");
        assert_eq!(fmt_sig(f64::NAN, 3), "NaN");
    }
}
