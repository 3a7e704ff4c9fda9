//! The autotune cache file shared by processes: saves merge under a lock.

use super::tests::{device, entry, tmp};
use super::*;

/// Saves merge: two processes that loaded the cache before either saved (two `tune`s of other
/// shapes, a `tune` beside a run with `gpu.autotune = "on"`) keep each other's entries; each
/// wrote what it had loaded plus its own, and the last one lost the other's. Eight threads
/// saving at once stand in for the processes (each takes the directory's lock on its own
/// handle, as a process does).
#[test]
fn concurrent_saves_keep_every_entry() {
    let path = tmp("merge");
    let d = device("Mesa 22.3.6");
    let mut first = TuneCache::default();
    first.insert(entry(&d, &Gemm::nn(1, 2, 3), "skinny"));
    first.save(&path).expect("save");
    // Both loaded `first`, then each tuned another shape.
    let (mut a, mut b) = (first.clone(), first.clone());
    a.insert(entry(&d, &Gemm::nn(4, 5, 6), "tiled"));
    b.insert(entry(&d, &Gemm::nn(7, 8, 9), "tiled"));
    a.save(&path).expect("save a");
    b.save(&path).expect("save b");
    assert_eq!(TuneCache::load(&path).cache.len(), 3, "a's entry survives b's save");
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (path, d) = (path.clone(), d.clone());
            std::thread::spawn(move || {
                let mut c = TuneCache::default();
                c.insert(entry(&d, &Gemm::nn(100 + i, 2, 3), "tiled"));
                c.save(&path).expect("save");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let loaded = TuneCache::load(&path);
    assert!(loaded.warning.is_none(), "{:?}", loaded.warning);
    assert_eq!(loaded.cache.len(), 3 + 8);
    let dir = path.parent().expect("parent");
    assert_eq!(std::fs::read_dir(dir).expect("dir").count(), 1, "no lock or temporary file is left");
    let _ = std::fs::remove_dir_all(dir);
}

/// A save writes only this process's choices over the file: an entry it merely loaded, which
/// another process re-timed since, keeps the other's choice (every loaded entry was written
/// back, and reverted it).
#[test]
fn a_save_keeps_what_another_process_re_timed() {
    let path = tmp("retimed");
    let d = device("Mesa 22.3.6");
    let (x, y) = (Gemm::nn(1, 2, 3), Gemm::nn(4, 5, 6));
    let mut first = TuneCache::default();
    first.insert(entry(&d, &x, "skinny"));
    first.save(&path).expect("save");
    let mut a = TuneCache::load(&path).cache;
    let mut b = TuneCache::load(&path).cache;
    b.insert(entry(&d, &x, "tiled"));
    b.save(&path).expect("save b");
    a.insert(entry(&d, &y, "tiled"));
    a.save(&path).expect("save a");
    let all = [Candidate::Skinny, Candidate::Tiled];
    let file = TuneCache::load(&path).cache;
    assert_eq!(file.choice(&d, ShapeKey::of(&x), &all), Some(Candidate::Tiled), "b's re-timed choice");
    assert_eq!(file.choice(&d, ShapeKey::of(&y), &all), Some(Candidate::Tiled));
    let _ = std::fs::remove_dir_all(path.parent().expect("parent"));
}

/// A link planted at the temporary's old name (`<cache>.tmp<pid>`, predictable) is not
/// followed: its target is untouched and the cache stays a regular file (the save wrote the
/// target and renamed the link over the cache, so later saves went there too).
#[cfg(unix)]
#[test]
fn a_save_follows_no_link_at_its_temporary() {
    let path = tmp("planted");
    let dir = path.parent().expect("parent").to_path_buf();
    let victim = dir.join("victim.txt");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(&victim, "keep me\n").expect("victim");
    let mut planted = path.as_os_str().to_owned();
    planted.push(format!(".tmp{}", std::process::id()));
    std::os::unix::fs::symlink(&victim, &planted).expect("symlink");
    let d = device("Mesa 22.3.6");
    let mut c = TuneCache::default();
    c.insert(entry(&d, &Gemm::nn(1, 2, 3), "skinny"));
    c.save(&path).expect("save");
    assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "keep me\n");
    assert!(std::fs::symlink_metadata(&path).expect("cache").file_type().is_file());
    assert_eq!(TuneCache::load(&path).cache.len(), 1);
    let _ = std::fs::remove_dir_all(dir);
}
