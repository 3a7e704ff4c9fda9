//! `assert_close`: the one elementwise tolerance check of the test suites. It uses nothing from
//! batchscope, so the library's own unit tests include this file too (`#[path]`).

/// `|ref - out| <= atol + rtol * |ref|` for every element; panics naming the worst one.
pub fn assert_close(what: &str, reference: &[f32], out: &[f32], atol: f32, rtol: f32) {
    assert_eq!(reference.len(), out.len(), "{what}: lengths differ");
    let mut worst: Option<(usize, f32)> = None;
    let mut failures = 0usize;
    for (i, (&r, &o)) in reference.iter().zip(out).enumerate() {
        let err = (r - o).abs();
        let tol = atol + rtol * r.abs();
        let excess = if err.is_nan() || (r.is_nan() != o.is_nan()) { f32::INFINITY } else { err - tol };
        if excess > 0.0 {
            failures += 1;
        }
        if worst.is_none_or(|(_, w)| excess > w) {
            worst = Some((i, excess));
        }
    }
    if failures > 0 {
        let (i, _) = worst.unwrap_or((0, 0.0));
        panic!(
            "{what}: {failures}/{} elements out of tolerance (atol {atol}, rtol {rtol}); worst at [{i}]: ref {} vs out {} (|diff| {})",
            reference.len(),
            reference[i],
            out[i],
            (reference[i] - out[i]).abs()
        );
    }
}
