//! CSV tables through the `csv` crate: a header, then rows of cells, `\n` line ends. Text is
//! quoted only where RFC 4180 needs it (a comma, a quote or a line break; quotes doubled).
//! Floats are written in Rust's shortest round-trip form (`0.125`, `1e-7`, `NaN`, `inf`), which
//! pandas and Python read back; the crate's own float format (ryu) would write `0.00005` where
//! Rust writes `5e-5`, so cells are formatted here and handed to the crate as text.

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::rundir::{create_new, write_atomic};
use super::ReportError;

/// One CSV cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Num(f64),
    Int(i64),
    Text(String),
    Empty,
}

/// `From<$t> for Cell` for types that widen losslessly into the variant's payload `$wide`.
macro_rules! cell_from_lossless {
    ($variant:ident($wide:ty): $($t:ty),+) => {
        $(impl From<$t> for Cell {
            fn from(v: $t) -> Self {
                Cell::$variant(<$wide>::from(v))
            }
        })+
    };
}
cell_from_lossless!(Num(f64): f64);
impl From<f32> for Cell {
    /// As the decimal the f32 is written as (`0.9`, not 0.8999999761581421).
    fn from(v: f32) -> Self {
        Cell::Num(crate::stats::f32_as_written(v))
    }
}
cell_from_lossless!(Int(i64): i64, i32, u32);
cell_from_lossless!(Text(String): &str, String);

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
    /// `1` or `0`, as every flag column is written (`default`, `fastest`, `verified`, ...).
    fn from(v: bool) -> Self {
        Cell::Int(i64::from(v))
    }
}
impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Self {
        v.map_or(Cell::Empty, Into::into)
    }
}

impl Cell {
    /// The cell's field text before quoting.
    fn field(&self) -> Cow<'_, str> {
        match self {
            Cell::Num(v) => Cow::Owned(format!("{v:?}")),
            Cell::Int(v) => Cow::Owned(v.to_string()),
            Cell::Text(s) => Cow::Borrowed(s),
            Cell::Empty => Cow::Borrowed(""),
        }
    }
}

/// A `csv` writer with this module's dialect: `,`, `"` doubled, minimal quoting, `\n` ends.
fn writer<W: io::Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Necessary)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out)
}

/// A `csv` error on `path` as a report error (I/O errors keep their source).
fn csv_error(path: &Path, e: csv::Error) -> ReportError {
    match e.into_kind() {
        csv::ErrorKind::Io(source) => ReportError::io("write", path, source),
        other => ReportError::Invalid { path: path.to_path_buf(), message: format!("{other:?}") },
    }
}

/// Writes one row of `width` cells; a row of another width is an error naming `path`.
fn write_row<W: io::Write>(
    w: &mut csv::Writer<W>,
    path: &Path,
    width: usize,
    row: &[Cell],
) -> Result<(), ReportError> {
    if row.len() != width {
        return Err(ReportError::Invalid {
            path: path.to_path_buf(),
            message: format!("CSV row has {} cells, the header has {width}", row.len()),
        });
    }
    for c in row {
        w.write_field(c.field().as_bytes()).map_err(|e| csv_error(path, e))?;
    }
    w.write_record(None::<&[u8]>).map_err(|e| csv_error(path, e))
}

/// The whole table as CSV text (`\n` line ends). `path` only names the table in errors.
pub fn csv_string(path: &Path, header: &[&str], rows: &[Vec<Cell>]) -> Result<String, ReportError> {
    let mut w = writer(Vec::new());
    w.write_record(header).map_err(|e| csv_error(path, e))?;
    for r in rows {
        write_row(&mut w, path, header.len(), r)?;
    }
    let bytes = w.into_inner().map_err(|e| ReportError::io("write", path, e.into_error()))?;
    String::from_utf8(bytes)
        .map_err(|e| ReportError::Invalid { path: path.to_path_buf(), message: e.to_string() })
}

/// Writes a whole table atomically (temp file + rename).
pub fn write_csv(path: &Path, header: &[&str], rows: &[Vec<Cell>]) -> Result<(), ReportError> {
    let s = csv_string(path, header, rows)?;
    write_atomic(path, s.as_bytes())
}

/// A CSV file written row by row, each row flushed (a sweep's rows survive a crash).
pub struct CsvWriter {
    w: csv::Writer<File>,
    path: PathBuf,
    width: usize,
}

impl CsvWriter {
    /// Creates `path` and writes the header; an existing file is an error, never truncated.
    pub fn create(path: &Path, header: &[&str]) -> Result<Self, ReportError> {
        let mut w = writer(create_new(path)?);
        w.write_record(header).map_err(|e| csv_error(path, e))?;
        w.flush().map_err(|e| ReportError::io("write", path, e))?;
        Ok(CsvWriter { w, path: path.to_path_buf(), width: header.len() })
    }

    pub fn write_row(&mut self, row: &[Cell]) -> Result<(), ReportError> {
        write_row(&mut self.w, &self.path, self.width, row)?;
        self.w.flush().map_err(|e| ReportError::io("write", &self.path, e))
    }

    /// Several rows, flushed once (a long run's many rows at a time).
    pub fn write_rows(&mut self, rows: &[Vec<Cell>]) -> Result<(), ReportError> {
        for row in rows {
            write_row(&mut self.w, &self.path, self.width, row)?;
        }
        self.w.flush().map_err(|e| ReportError::io("write", &self.path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::TestDir;

    /// Counts past i64 (a batch size of 2^63 from a crafted flag) print as what they are, not
    /// as the negative numbers an `as i64` cast made of them.
    #[test]
    fn counts_past_i64_keep_their_value() {
        for v in [u64::MAX, 1 << 63, (1 << 63) - 1, 0] {
            assert_eq!(Cell::from(v).field(), v.to_string());
            assert_eq!(Cell::from(v as usize).field(), v.to_string());
        }
    }

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
        // Edge spaces are data, not a reason to quote (RFC 4180; the csv crate's rule).
        let expected = "name,\"value, units\",n\n\
                        plain,1.5,3\n\
                        \"a,b\",NaN,\n\
                        \"say \"\"hi\"\"\",1e-7,-2\n\
                        \"two\nlines\",inf,7\n\
                        \x20padded,2.0,\n";
        assert_eq!(s, expected);
        let names: Vec<String> = csv::Reader::from_reader(s.as_bytes())
            .records()
            .map(|r| r.unwrap()[0].to_string())
            .collect();
        assert_eq!(names, ["plain", "a,b", "say \"hi\"", "two\nlines", " padded"]);
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
