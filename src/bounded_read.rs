//! Reading a whole input file with a bound on its size. `std::fs::read` sizes its buffer from
//! the file's length, which is 0 for a device or a pipe: a config, checkpoint or metrics path
//! that is a link to `/dev/zero` would be read until memory ran out. Here a regular file longer
//! than the bound, or any other file that yields more than the bound (at most
//! [`NON_REGULAR_MAX`] for those), is an `InvalidData` error that says so.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The most read from a file that is not a regular file (a device, a pipe), whatever the bound.
pub const NON_REGULAR_MAX: u64 = 256 << 20;

/// The bytes of `path`, at most `limit` of them (see the module doc).
pub fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = open(path)?;
    let meta = file.metadata()?;
    let too_large = |limit: u64| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes, the most read from such a file"),
        )
    };
    let cap = if meta.is_file() {
        if meta.len() > limit {
            return Err(too_large(limit));
        }
        limit
    } else {
        limit.min(NON_REGULAR_MAX)
    };
    let mut buf = Vec::new();
    if meta.is_file() {
        buf.try_reserve_exact(meta.len() as usize).map_err(|_| {
            io::Error::new(io::ErrorKind::OutOfMemory, format!("cannot hold its {} bytes", meta.len()))
        })?;
    }
    file.take(cap.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(too_large(cap));
    }
    Ok(buf)
}

/// `path` opened for reading. A named pipe is opened without waiting for a writer (a plain
/// open blocks until one comes, forever if none does): then read as usual, blocking while a
/// writer is there, and empty (end of file at once) when none is.
#[cfg(unix)]
pub fn open(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    use std::os::unix::io::AsRawFd;
    if !std::fs::metadata(path)?.file_type().is_fifo() {
        return File::open(path);
    }
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    // SAFETY: fcntl on a descriptor this function owns, with integer arguments only.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    if flags < 0
        || unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

#[cfg(not(unix))]
pub fn open(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// [`read`] as UTF-8 text.
pub fn read_to_string(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_long_files_stop_at_the_bound() {
        let zero = Path::new("/dev/zero");
        if zero.exists() {
            let e = read(zero, 1 << 20).expect_err("bounded");
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            assert!(e.to_string().contains("1048576 bytes"), "{e}");
        }
        let dir = std::env::temp_dir().join(format!("batchscope-bounded-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let f = dir.join("f.txt");
        std::fs::write(&f, "0123456789").expect("write");
        assert_eq!(read_to_string(&f, 10).expect("fits"), "0123456789");
        assert_eq!(read(&f, 9).expect_err("too long").kind(), io::ErrorKind::InvalidData);
        std::fs::write(&f, [0xff, 0xfe]).expect("write");
        assert_eq!(read_to_string(&f, 10).expect_err("not utf-8").kind(), io::ErrorKind::InvalidData);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A named pipe with no writer reads as empty at once (a plain open waited forever); one
    /// with a writer is read whole.
    #[cfg(unix)]
    #[test]
    fn a_named_pipe_without_a_writer_is_empty_not_a_hang() {
        let dir = std::env::temp_dir().join(format!("batchscope-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let fifo = dir.join("in.toml");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !status.is_ok_and(|s| s.success()) {
            println!("no mkfifo here: not run");
            return;
        }
        assert_eq!(read(&fifo, 1 << 20).expect("no writer: empty"), b"");
        let path = fifo.clone();
        let writer = std::thread::spawn(move || {
            // Opening for writing waits for the reader below.
            std::fs::write(&path, b"[model]\nhidden = [8]\n").expect("write the pipe");
        });
        // The writer may not have opened yet: retry until its bytes come through.
        let mut got = Vec::new();
        for _ in 0..200 {
            got = read(&fifo, 1 << 20).expect("read");
            if !got.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        writer.join().expect("writer");
        assert_eq!(got, b"[model]\nhidden = [8]\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
