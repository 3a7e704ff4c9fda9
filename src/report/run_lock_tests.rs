//! Tests of the run lock. Another process's lock is played by a second handle of this
//! process: the operating system's file locks are per open file, so it conflicts the same way.

use super::*;
use crate::report::TestDir;

/// The tests share [`HELD`] (each ends with [`release_locks`]): one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let entries = fs::read_dir(dir).expect("read dir");
    let mut v: Vec<String> =
        entries.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn holds_me(lock: &Path) {
    assert_eq!(fs::read_to_string(lock).expect("read").trim(), std::process::id().to_string());
}

/// A handle that holds `lock`'s lock, as another process would.
fn other_holder(lock: &Path) -> File {
    let f = File::open(lock).expect("open");
    f.try_lock().expect("the other holder takes the lock");
    f
}

#[test]
fn a_free_lock_is_taken_kept_and_released() {
    let _serial = serial();
    let dir = TestDir::new("lock-free");
    let lock = dir.0.join(LOCK_FILE);
    lock_run(&dir.0).expect("free");
    holds_me(&lock);
    lock_run(&dir.0).expect("this process's own lock is kept");
    assert_eq!(names(&dir.0), vec![LOCK_FILE.to_string()], "nothing but the lock");
    assert!(matches!(File::open(&lock).expect("open").try_lock(), Err(TryLockError::WouldBlock)));
    release_locks();
    assert!(names(&dir.0).is_empty(), "released, nothing left");
}

#[test]
fn a_held_lock_refuses_in_one_line_and_is_left_as_it_is() {
    let _serial = serial();
    let dir = TestDir::new("lock-held");
    let lock = dir.0.join(LOCK_FILE);
    for (text, named) in [("12345\n", "process 12345"), ("", "another batchscope is running")] {
        fs::write(&lock, text).expect("write");
        let holder = other_holder(&lock);
        let e = lock_run(&dir.0).expect_err("held").to_string();
        assert!(e.contains(named) && !e.contains('\n'), "{e}");
        assert_eq!(fs::read_to_string(&lock).expect("read"), text, "left as it was");
        drop(holder);
        // Its holder is gone (the kernel let its lock go): taken over.
        lock_run(&dir.0).expect("the holder ended");
        holds_me(&lock);
        release_locks();
    }
    assert!(names(&dir.0).is_empty());
}

#[test]
fn a_lock_nobody_holds_is_taken_over_whatever_it_says() {
    let _serial = serial();
    let dir = TestDir::new("lock-stale");
    let lock = dir.0.join(LOCK_FILE);
    // Empty (its writer was killed before writing), a process that cannot exist, process 1
    // (alive, but not holding it: a reused id), this process's own id, and no id at all.
    let own = format!("{}\n", std::process::id());
    for text in ["", "4294967295\n", "1\n", own.as_str(), "not a pid"] {
        fs::write(&lock, text).expect("write");
        lock_run(&dir.0).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        holds_me(&lock);
        assert_eq!(names(&dir.0), vec![LOCK_FILE.to_string()]);
        release_locks();
        assert!(names(&dir.0).is_empty(), "{text:?}: released");
    }
}

#[test]
fn a_lock_file_that_links_elsewhere_is_never_written() {
    let _serial = serial();
    let dir = TestDir::new("lock-links");
    let lock = dir.0.join(LOCK_FILE);
    let precious = dir.0.join("precious.txt");
    fs::write(&precious, "keep me\n").expect("write");
    // A hard link: no holder, so the name is removed and a lock created; its twin keeps its text.
    fs::hard_link(&precious, &lock).expect("hard link");
    lock_run(&dir.0).expect("taken over");
    holds_me(&lock);
    release_locks();
    assert_eq!(fs::read_to_string(&precious).expect("read"), "keep me\n");
    // A symbolic link (and a directory): refused, by name, and left as they are.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&precious, &lock).expect("symlink");
        let e = lock_run(&dir.0).expect_err("a link").to_string();
        assert!(e.contains("not a regular file") && !e.contains('\n'), "{e}");
        assert!(fs::symlink_metadata(&lock).expect("meta").file_type().is_symlink());
        fs::remove_file(&lock).expect("remove link");
    }
    // A FIFO: refused at once (an open would wait for a writer).
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(lock.as_os_str().as_bytes()).expect("path");
        // SAFETY: mkfifo with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        let e = lock_run(&dir.0).expect_err("a FIFO").to_string();
        assert!(e.contains("not a regular file"), "{e}");
        fs::remove_file(&lock).expect("remove FIFO");
    }
    fs::create_dir(&lock).expect("mkdir");
    let e = lock_run(&dir.0).expect_err("a directory").to_string();
    assert!(e.contains("not a regular file"), "{e}");
    assert!(lock.is_dir());
    assert_eq!(fs::read_to_string(&precious).expect("read"), "keep me\n");
    release_locks();
}

#[test]
fn a_lock_file_removed_or_replaced_meanwhile_is_not_ours() {
    let _serial = serial();
    let dir = TestDir::new("lock-replaced");
    let lock = dir.0.join(LOCK_FILE);
    lock_run(&dir.0).expect("free");
    let ours = File::open(&lock).expect("open");
    assert!(is_at(&ours, &lock));
    // Replaced by hand while held: release leaves the new file alone.
    fs::remove_file(&lock).expect("remove");
    fs::write(&lock, "someone else's\n").expect("write");
    assert!(!is_at(&ours, &lock), "another file at the path");
    release_locks();
    assert_eq!(fs::read_to_string(&lock).expect("read"), "someone else's\n");
    fs::remove_file(&lock).expect("remove");
    assert!(!is_at(&ours, &lock), "no file at the path");
}
