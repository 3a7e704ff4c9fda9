//! `.npy` files through the `npyz` crate: features f32 `[N, D]`, labels integer `[N]`
//! (classification) or f32 `[N, K]` / `[N]` (regression), all little-endian, C order.
//!
//! Every problem (missing file, malformed header, wrong dtype or rank, truncated data, label out
//! of range, row-count mismatch) is a [`DataError`] naming the file; nothing panics.

use std::fs::File;
use std::io::{self, BufReader, BufWriter};
use std::path::{Path, PathBuf};

use npyz::{DType, Endianness, NpyFile, NpyHeader, Order, TypeChar, WriterBuilder};

use super::{npy_header, DataError, Dataset, Labels};

/// An opened `.npy` file: its header and a reader at the start of the data. [`Opened::open`]
/// has checked that the file holds all the data the header declares.
struct Opened {
    path: PathBuf,
    header: NpyHeader,
    reader: BufReader<File>,
}

impl Opened {
    fn open(path: &Path) -> Result<Self, DataError> {
        let io_err = |source| DataError::Io { path: path.to_path_buf(), source };
        let file = crate::bounded_read::open(path).map_err(io_err)?;
        let file_len = file.metadata().map_err(io_err)?.len();
        if file_len == 0 {
            return Err(DataError::Format {
                path: path.to_path_buf(),
                message: "the file is empty".into(),
            });
        }
        let mut reader = BufReader::new(file);
        // Header length and shape checked against the file before npyz parses them.
        let preamble = npy_header::read_preamble(&mut reader, path, file_len)?;
        let header =
            NpyHeader::from_reader(&mut io::Cursor::new(&preamble)).map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => DataError::Truncated {
                    path: path.to_path_buf(),
                    what: "the header".into(),
                    expected: None,
                    found: file_len,
                },
                _ => {
                    DataError::Format { path: path.to_path_buf(), message: header_error(&e.to_string()) }
                }
            })?;
        let opened = Opened { path: path.to_path_buf(), header, reader };
        // The data must be all there before we read any of it.
        let have = file_len.saturating_sub(preamble.len() as u64);
        let item = opened.item_size()?;
        let count = npy_header::element_count(path, opened.header.shape())?;
        let need = count.checked_mul(item).ok_or_else(|| DataError::Format {
            path: path.to_path_buf(),
            message: format!("shape {:?} is too large", opened.header.shape()),
        })?;
        if have < need {
            return Err(DataError::Truncated {
                path: path.to_path_buf(),
                what: "the data".into(),
                expected: Some(need),
                found: have,
            });
        }
        if have > need && first_warning(path) {
            log::warn!("{}: {} bytes after the array data are ignored", path.display(), have - need);
        }
        Ok(opened)
    }

    fn dtype_str(&self) -> String {
        match self.header.dtype() {
            DType::Plain(ts) => ts.to_string(),
            other => other.descr(),
        }
    }

    fn item_size(&self) -> Result<u64, DataError> {
        match self.header.dtype() {
            DType::Plain(ts) if !ts.uses_pickled_array() => match ts.num_bytes() {
                Some(n) => Ok(n as u64),
                None => Err(self.dtype_error("a fixed-size numeric dtype")),
            },
            _ => Err(self.dtype_error("a plain numeric dtype")),
        }
    }

    fn dtype_error(&self, expected: &str) -> DataError {
        DataError::Dtype {
            path: self.path.clone(),
            found: self.dtype_str(),
            expected: expected.to_string(),
        }
    }

    /// `(type char, bytes)` of a little-endian (or endianness-free) plain dtype.
    fn plain(&self, expected: &str) -> Result<(TypeChar, u64), DataError> {
        match self.header.dtype() {
            DType::Plain(ts) => {
                if ts.endianness() == Endianness::Big {
                    return Err(DataError::Layout {
                        path: self.path.clone(),
                        message: format!(
                            "dtype {ts} is big-endian; save it little-endian (numpy: arr.astype('<{}{}'))",
                            ts.type_char().to_str(),
                            ts.size_field()
                        ),
                    });
                }
                Ok((ts.type_char(), ts.size_field()))
            }
            _ => Err(self.dtype_error(expected)),
        }
    }

    fn shape(&self) -> Vec<u64> {
        self.header.shape().to_vec()
    }

    /// Reject Fortran order when it differs from C order (more than one axis longer than 1).
    fn check_c_order(&self) -> Result<(), DataError> {
        let long_axes = self.header.shape().iter().filter(|&&s| s > 1).count();
        if self.header.order() == Order::Fortran && long_axes > 1 {
            return Err(DataError::Layout {
                path: self.path.clone(),
                message:
                    "is stored in Fortran order; save it in C order (numpy: np.ascontiguousarray(arr))"
                        .into(),
            });
        }
        Ok(())
    }

    fn read_vec<T: npyz::Deserialize>(self) -> Result<Vec<T>, DataError> {
        let path = self.path;
        let file = NpyFile::with_header(self.header, self.reader);
        file.into_vec::<T>().map_err(|e| read_error(&path, e))
    }

    /// Every integer label in order, checked (`0 <= label < classes`) and passed to `each` as
    /// read: nothing is held but what `each` keeps (a labels file was widened whole to i128,
    /// 16 bytes a row, before its rows were counted: 2^31 rows aborted the process).
    fn scan_labels(self, classes: usize, each: &mut impl FnMut(u32)) -> Result<(), DataError> {
        const EXPECTED: &str = "labels must be integers [N] (classification) or f32 [N, K] (regression)";
        match self.plain(EXPECTED)? {
            (TypeChar::Int, 1) => self.scan::<i8>(classes, each),
            (TypeChar::Int, 2) => self.scan::<i16>(classes, each),
            (TypeChar::Int, 4) => self.scan::<i32>(classes, each),
            (TypeChar::Int, 8) => self.scan::<i64>(classes, each),
            (TypeChar::Uint, 1) => self.scan::<u8>(classes, each),
            (TypeChar::Uint, 2) => self.scan::<u16>(classes, each),
            (TypeChar::Uint, 4) => self.scan::<u32>(classes, each),
            (TypeChar::Uint, 8) => self.scan::<u64>(classes, each),
            _ => Err(self.dtype_error(EXPECTED)),
        }
    }

    fn scan<T: npyz::Deserialize + Into<i128>>(
        self,
        classes: usize,
        each: &mut impl FnMut(u32),
    ) -> Result<(), DataError> {
        let path = self.path;
        let file = NpyFile::with_header(self.header, self.reader);
        let values = file
            .data::<T>()
            .map_err(|e| DataError::Format { path: path.clone(), message: e.to_string() })?;
        for (index, value) in values.enumerate() {
            let value: i128 = value.map_err(|e| read_error(&path, e))?.into();
            if value < 0 {
                return Err(DataError::NegativeLabel { path, index, value });
            }
            if value >= classes as i128 {
                return Err(DataError::LabelOutOfRange { path, index, value, classes });
            }
            each(value as u32);
        }
        Ok(())
    }
}

/// A read of the data that failed: cut short, or not what the header says.
fn read_error(path: &Path, e: io::Error) -> DataError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => DataError::Truncated {
            path: path.to_path_buf(),
            what: "the data".into(),
            expected: None,
            found: 0,
        },
        _ => DataError::Format { path: path.to_path_buf(), message: e.to_string() },
    }
}

fn usize_of(path: &Path, v: u64) -> Result<usize, DataError> {
    usize::try_from(v).map_err(|_| DataError::Format {
        path: path.to_path_buf(),
        message: format!("dimension {v} exceeds this platform"),
    })
}

/// What a features file must hold.
const FEATURES: &str = "features must be f32 [N, D] ('<f4')";

/// A features file's dtype is f32, from its header.
fn check_features_dtype(f: &Opened) -> Result<(), DataError> {
    match f.plain(FEATURES)? {
        (TypeChar::Float, 4) => Ok(()),
        _ => Err(f.dtype_error(FEATURES)),
    }
}

/// The shape `(N, D)` of a features file, from its header only (nothing else is read). Its dtype
/// is checked here too, so that an f64 file is refused when the config is resolved, before a
/// run directory is made (as the labels file's dtype is), not when the data is read.
pub fn features_shape(path: &Path) -> Result<(usize, usize), DataError> {
    let f = Opened::open(path)?;
    check_features_dtype(&f)?;
    match f.shape().as_slice() {
        &[n, d] => Ok((usize_of(path, n)?, usize_of(path, d)?)),
        _ => Err(DataError::Rank {
            path: path.to_path_buf(),
            shape: f.shape(),
            expected: "features must be f32 [N, D]",
        }),
    }
}

/// Whether the labels file holds integers (class labels) rather than f32 targets; reads the
/// header only. Any other dtype (f64, bool, ...) is refused here, by name, so that neither loss
/// is offered for it.
pub fn labels_are_integers(path: &Path) -> Result<bool, DataError> {
    const EXPECTED: &str = "labels must be integers [N] (classification) or f32 [N, K] (regression); \
                            numpy: y.astype('int64') or y.astype('float32')";
    let f = Opened::open(path)?;
    match f.plain(EXPECTED)? {
        (TypeChar::Int | TypeChar::Uint, 1 | 2 | 4 | 8) => Ok(true),
        (TypeChar::Float, 4) => Ok(false),
        _ => Err(f.dtype_error(EXPECTED)),
    }
}

/// The rows N of a labels file (`[N]` or `[N, K]`), from its header only.
pub fn label_rows(path: &Path) -> Result<usize, DataError> {
    let f = Opened::open(path)?;
    match f.shape().as_slice() {
        [n] | [n, _] => usize_of(path, *n),
        _ => Err(DataError::Rank {
            path: path.to_path_buf(),
            shape: f.shape(),
            expected: "labels must be integers [N] or f32 [N, K]",
        }),
    }
}

/// Classes implied by integer labels: max + 1, 0 for no rows (`None` for f32 regression
/// targets). Streams the file; holds nothing.
pub fn label_classes(path: &Path) -> Result<Option<usize>, DataError> {
    let f = Opened::open(path)?;
    let tc = f.plain("labels must be integers [N] or f32 [N, K]")?.0;
    if !matches!(tc, TypeChar::Int | TypeChar::Uint) {
        return Ok(None);
    }
    if f.shape().len() != 1 {
        return Err(DataError::Rank {
            path: path.to_path_buf(),
            shape: f.shape(),
            expected: "integer labels must be [N]",
        });
    }
    let mut classes = 0usize;
    // Labels are u32 on every backend; u32::MAX itself would make u32::MAX + 1 classes.
    f.scan_labels(u32::MAX as usize, &mut |label| classes = classes.max(label as usize + 1)).map_err(
        |e| match e {
            DataError::LabelOutOfRange { path, index, value, .. } => {
                DataError::LabelTooLarge { path, index, value }
            }
            other => other,
        },
    )?;
    Ok(Some(classes))
}

/// The columns K of f32 regression targets `[N, K]` (1 for `[N]`), from the header only.
pub fn target_columns(path: &Path) -> Result<usize, DataError> {
    let f = Opened::open(path)?;
    match f.shape().as_slice() {
        [_] => Ok(1),
        [_, k] => usize_of(path, *k),
        _ => Err(DataError::Rank {
            path: path.to_path_buf(),
            shape: f.shape(),
            expected: "regression targets must be f32 [N, K]",
        }),
    }
}

/// Features f32 `[N, D]`: `(x [N * D], N, D)`.
pub fn read_features(path: &Path) -> Result<(Vec<f32>, usize, usize), DataError> {
    let f = Opened::open(path)?;
    let shape = f.shape();
    check_features_dtype(&f)?;
    if shape.len() != 2 {
        return Err(DataError::Rank {
            path: path.to_path_buf(),
            shape,
            expected: "features must be f32 [N, D]",
        });
    }
    f.check_c_order()?;
    let (n, d) = (usize_of(path, shape[0])?, usize_of(path, shape[1])?);
    if n == 0 || d == 0 {
        return Err(DataError::Format {
            path: path.to_path_buf(),
            message: format!("shape {shape:?} holds no examples"),
        });
    }
    let x = f.read_vec::<f32>()?;
    all_finite(path, &x, d, "features")?;
    Ok((x, n, d))
}

/// Whether this is the first warning about `path` in this process: a file is opened more than
/// once in a run (its shape, then its data), and its warning said three times is noise.
fn first_warning(path: &Path) -> bool {
    static WARNED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let Ok(mut warned) = WARNED.lock() else { return true };
    if warned.iter().any(|p| p == path) {
        return false;
    }
    warned.push(path.to_path_buf());
    true
}

/// Every value of `data` (rows of `cols`) finite: one inf or NaN makes every loss and gradient
/// of its minibatches NaN, and a run trained on it ended "successfully" with a NaN loss.
fn all_finite(path: &Path, data: &[f32], cols: usize, what: &str) -> Result<(), DataError> {
    match data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(DataError::Format {
            path: path.to_path_buf(),
            message: format!(
                "element [{}, {}] is {}: {what} must be finite",
                i / cols.max(1),
                i % cols.max(1),
                data[i]
            ),
        }),
    }
}

/// Labels: integers `[N]` (any of i8/i16/i32/i64/u8/u16/u32/u64; every value `< classes`) give
/// [`Labels::Classes`] with `classes = outputs`; f32 `[N, K]` (or `[N]`, K = 1) with
/// `K == outputs` give [`Labels::Values`]. Returns the labels and N.
pub fn read_labels(path: &Path, outputs: usize) -> Result<(Labels, usize), DataError> {
    let f = Opened::open(path)?;
    let shape = f.shape();
    const EXPECTED: &str = "labels must be integers [N] (classification) or f32 [N, K] (regression)";
    let (tc, size) = f.plain(EXPECTED)?;
    match tc {
        TypeChar::Int | TypeChar::Uint => {
            if shape.len() != 1 {
                return Err(DataError::Rank {
                    path: path.to_path_buf(),
                    shape,
                    expected: "integer labels must be [N]",
                });
            }
            let n = usize_of(path, shape[0])?;
            let mut labels = Vec::new();
            labels.try_reserve_exact(n).map_err(|_| DataError::TooLarge {
                what: "labels",
                bytes: n as u128 * std::mem::size_of::<u32>() as u128,
            })?;
            f.scan_labels(outputs, &mut |label| labels.push(label))?;
            Ok((Labels::Classes { labels, classes: outputs }, n))
        }
        TypeChar::Float if size == 4 => {
            let (n, k) = match shape.as_slice() {
                [n] => (usize_of(path, *n)?, 1),
                [n, k] => (usize_of(path, *n)?, usize_of(path, *k)?),
                _ => {
                    return Err(DataError::Rank {
                        path: path.to_path_buf(),
                        shape,
                        expected: "regression targets must be f32 [N, K]",
                    })
                }
            };
            f.check_c_order()?;
            if k != outputs {
                return Err(DataError::Mismatch {
                    path: path.to_path_buf(),
                    message: format!("targets have K = {k} columns but the model has {outputs} outputs (data.outputs)"),
                });
            }
            let targets = f.read_vec::<f32>()?;
            all_finite(path, &targets, k, "regression targets")?;
            Ok((Labels::Values { targets, outputs: k }, n))
        }
        _ => Err(f.dtype_error(EXPECTED)),
    }
}

/// Features and labels of one dataset, rows checked to agree.
pub fn load(features: &Path, labels: &Path, outputs: usize) -> Result<Dataset, DataError> {
    let (x, n, dim) = read_features(features)?;
    let (targets, n_labels) = read_labels(labels, outputs)?;
    if n_labels != n {
        return Err(DataError::RowMismatch {
            features: features.to_path_buf(),
            labels: labels.to_path_buf(),
            n_features: n,
            n_labels,
        });
    }
    Ok(Dataset { x, targets, n, dim })
}

fn write_npy<T: npyz::AutoSerialize + Copy>(
    path: &Path,
    shape: &[usize],
    data: &[T],
) -> Result<(), DataError> {
    let werr = |source| DataError::Write { path: path.to_path_buf(), source };
    let elems = shape.iter().try_fold(1usize, |a, &s| a.checked_mul(s));
    if elems != Some(data.len()) {
        return Err(DataError::Write {
            path: path.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("shape {shape:?} does not hold {} elements", data.len()),
            ),
        });
    }
    let file = File::create(path).map_err(werr)?;
    let shape: Vec<u64> = shape.iter().map(|&s| s as u64).collect();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(BufWriter::new(file))
        .begin_nd()
        .map_err(werr)?;
    w.extend(data.iter().copied()).map_err(werr)?;
    w.finish().map_err(werr)
}

/// Write `data` as a little-endian f32 `.npy` of `shape` (C order).
pub fn write_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), DataError> {
    write_npy(path, shape, data)
}

/// Write class labels as an int64 `.npy` `[N]` (numpy's default integer dtype).
pub fn write_npy_labels(path: &Path, labels: &[u32]) -> Result<(), DataError> {
    let v: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    write_npy(path, &[v.len()], &v)
}

/// The header parser's error in one line: a parse error comes as a diagram (` --> 1:40`, the
/// header line echoed, a caret, `= expected ...`), which is cut to its position and what was
/// expected; any message is cut to 300 characters.
fn header_error(message: &str) -> String {
    let lines: Vec<&str> = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    // `<lead> --> <line:column>` on one line, `= <what was expected>` on another.
    let at = lines.iter().find_map(|l| {
        let i = l.find("-->")?;
        let lead = l[..i].trim().trim_end_matches(':').trim();
        Some((if lead.is_empty() { "syntax error" } else { lead }, l[i + 3..].trim()))
    });
    let why = lines.iter().find_map(|l| l.strip_prefix("= ")).map(str::trim);
    let text = match (at, why) {
        (Some((lead, at)), Some(why)) => {
            format!("the header dict does not parse ({lead} at {at}): {why}")
        }
        (Some((lead, at)), None) => format!("the header dict does not parse ({lead} at {at})"),
        _ => lines.join("; "),
    };
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
#[path = "npy_tests.rs"]
mod tests;
