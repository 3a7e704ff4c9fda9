//! A small CSV writer (RFC 4180): a header, then rows of cells. Text is quoted when it holds a
//! comma, a quote, a line break or edge spaces; quotes are doubled. Floats are written in Rust's
//! shortest round-trip form (`0.125`, `1e-7`, `NaN`, `inf`), which pandas and Python read back.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::rundir::write_atomic;
use super::ReportError;

/// One CSV cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Num(f64),
    Int(i64),
    Text(String),
    Empty,
}

impl From<f64> for Cell {
    fn from(v: f64) -> Self {
        Cell::Num(v)
    }
}
impl From<f32> for Cell {
    fn from(v: f32) -> Self {
        Cell::Num(f64::from(v))
    }
}
impl From<i64> for Cell {
    fn from(v: i64) -> Self {
        Cell::Int(v)
    }
}
impl From<i32> for Cell {
    fn from(v: i32) -> Self {
        Cell::Int(i64::from(v))
    }
}
impl From<u32> for Cell {
    fn from(v: u32) -> Self {
        Cell::Int(i64::from(v))
    }
}
impl From<u64> for Cell {
    fn from(v: u64) -> Self {
        i64::try_from(v).map(Cell::Int).unwrap_or(Cell::Text(v.to_string()))
    }
}
impl From<usize> for Cell {
    fn from(v: usize) -> Self {
        Cell::from(v as u64)
    }
}
impl From<bool> for Cell {
    fn from(v: bool) -> Self {
        Cell::Text(if v { "true" } else { "false" }.into())
    }
}
impl From<&str> for Cell {
    fn from(v: &str) -> Self {
        Cell::Text(v.to_string())
    }
}
impl From<String> for Cell {
    fn from(v: String) -> Self {
        Cell::Text(v)
    }
}
impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Self {
        v.map_or(Cell::Empty, Into::into)
    }
}

impl Cell {
    fn write_to(&self, out: &mut String) {
        match self {
            Cell::Num(v) => {
                let _ = write!(out, "{v:?}");
            }
            Cell::Int(v) => {
                let _ = write!(out, "{v}");
            }
            Cell::Text(s) => write_text(s, out),
            Cell::Empty => {}
        }
    }
}

fn write_text(s: &str, out: &mut String) {
    let quote = s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ');
    if quote {
        out.push('"');
        for c in s.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        out.push_str(s);
    }
}

fn header_line(header: &[&str]) -> String {
    let mut s = String::new();
    for (i, h) in header.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        write_text(h, &mut s);
    }
    s.push('\n');
    s
}

fn row_line(path: &Path, width: usize, row: &[Cell], out: &mut String) -> Result<(), ReportError> {
    if row.len() != width {
        return Err(ReportError::Invalid {
            path: path.to_path_buf(),
            message: format!("CSV row has {} cells, the header has {width}", row.len()),
        });
    }
    for (i, c) in row.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        c.write_to(out);
    }
    out.push('\n');
    Ok(())
}

/// The whole table as CSV text (`\n` line ends). `path` only names the table in errors.
pub fn csv_string(path: &Path, header: &[&str], rows: &[Vec<Cell>]) -> Result<String, ReportError> {
    let mut s = header_line(header);
    for r in rows {
        row_line(path, header.len(), r, &mut s)?;
    }
    Ok(s)
}

/// Writes a whole table atomically (temp file + rename).
pub fn write_csv(path: &Path, header: &[&str], rows: &[Vec<Cell>]) -> Result<(), ReportError> {
    let s = csv_string(path, header, rows)?;
    write_atomic(path, s.as_bytes())
}

/// A CSV file written row by row, each row flushed (a sweep's rows survive a crash).
pub struct CsvWriter {
    file: std::fs::File,
    path: PathBuf,
    width: usize,
    buf: String,
}

impl CsvWriter {
    /// Creates `path` and writes the header; an existing file is an error, never truncated.
    pub fn create(path: &Path, header: &[&str]) -> Result<Self, ReportError> {
        let mut file = OpenOptions::new().write(true).create_new(true).open(path).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                ReportError::AlreadyExists { path: path.to_path_buf() }
            } else {
                ReportError::io("create", path, e)
            }
        })?;
        file.write_all(header_line(header).as_bytes()).map_err(|e| ReportError::io("write", path, e))?;
        Ok(CsvWriter { file, path: path.to_path_buf(), width: header.len(), buf: String::new() })
    }

    pub fn write_row(&mut self, row: &[Cell]) -> Result<(), ReportError> {
        self.buf.clear();
        row_line(&self.path, self.width, row, &mut self.buf)?;
        self.file
            .write_all(self.buf.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| ReportError::io("write", &self.path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::TestDir;

    #[test]
    fn quoting_follows_rfc4180() {
        let rows = vec![
            vec![Cell::from("plain"), Cell::from(1.5), Cell::from(3usize)],
            vec![Cell::from("a,b"), Cell::from(f64::NAN), Cell::Empty],
            vec![Cell::from("say \"hi\""), Cell::from(1e-7), Cell::from(-2i64)],
            vec![Cell::from("two\nlines"), Cell::from(f64::INFINITY), Cell::from(Some(7u32))],
            vec![Cell::from(" padded"), Cell::from(2.0f32), Cell::from(None::<f64>)],
        ];
        let s = csv_string(Path::new("t.csv"), &["name", "value, units", "n"], &rows).unwrap();
        let expected = "name,\"value, units\",n\n\
                        plain,1.5,3\n\
                        \"a,b\",NaN,\n\
                        \"say \"\"hi\"\"\",1e-7,-2\n\
                        \"two\nlines\",inf,7\n\
                        \" padded\",2.0,\n";
        assert_eq!(s, expected);
    }

    #[test]
    fn floats_round_trip_exactly() {
        for v in [0.1f64, 1.0 / 3.0, 12345.678, 6.02e23, -1e-300] {
            let s = csv_string(Path::new("t.csv"), &["v"], &[vec![Cell::from(v)]]).unwrap();
            let back: f64 = s.lines().nth(1).unwrap().parse().unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{s}");
        }
    }

    #[test]
    fn ragged_rows_are_errors_naming_the_file() {
        let e = csv_string(Path::new("sweep.csv"), &["a", "b"], &[vec![Cell::from(1.0)]]).unwrap_err();
        assert!(e.to_string().contains("sweep.csv") && e.to_string().contains("1 cells"), "{e}");
    }

    #[test]
    fn files_whole_and_streamed() {
        let t = TestDir::new("csv");
        let p = t.0.join("table.csv");
        write_csv(&p, &["b", "ms"], &[vec![Cell::from(1u32), Cell::from(0.5)]]).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "b,ms\n1,0.5\n");
        let q = t.0.join("sweep.csv");
        let mut w = CsvWriter::create(&q, &["b", "ms"]).unwrap();
        w.write_row(&[Cell::from(2u32), Cell::from(0.25)]).unwrap();
        assert_eq!(std::fs::read_to_string(&q).unwrap(), "b,ms\n2,0.25\n");
        assert!(w.write_row(&[Cell::from(1u32)]).is_err());
        assert!(matches!(CsvWriter::create(&q, &["x"]), Err(ReportError::AlreadyExists { .. })));
        assert_eq!(std::fs::read_to_string(&q).unwrap(), "b,ms\n2,0.25\n");
    }
}
