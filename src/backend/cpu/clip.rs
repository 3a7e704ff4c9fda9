//! The clip family: clip_by_global_norm and clip_by_value (CPU twin of `shaders/clip.wgsl`).

use crate::backend::{check_len, GlobalNorm, Result};

/// Global-norm clipping: `x[..n] *= min(1, max_norm / √s)` with `s = Σ stats[first..first+count]`
/// (f32 accumulation in slot order, as the GPU kernel); a clipped step is counted in
/// `stats[count_slot..count_slot + 2]` when given ([`GlobalNorm::count_events`]).
pub fn clip_by_global_norm(n: usize, norm: &GlobalNorm, stats: &mut [f32], x: &mut [f32]) -> Result<()> {
    norm.check(x.len(), n, stats.len())?;
    let GlobalNorm { max_norm, first, count, count_slot } = *norm;
    let mut s = 0.0f32;
    for v in &stats[first..first + count] {
        s += *v;
    }
    let norm = s.sqrt();
    let clipped = norm > max_norm;
    let f = if clipped { max_norm / norm } else { 1.0 };
    x[..n].iter_mut().for_each(|v| *v *= f);
    if let (Some(slot), true) = (count_slot, clipped) {
        let low = stats[slot] + 1.0;
        if low >= GlobalNorm::COUNT_RADIX {
            stats[slot] = 0.0;
            stats[slot + 1] += 1.0;
        } else {
            stats[slot] = low;
        }
    }
    Ok(())
}

/// Clipping by value: `x[i] = clamp(x[i], -limit, limit)` for `x: [n]`.
pub fn clip_by_value(n: usize, limit: f32, x: &mut [f32]) -> Result<()> {
    check_len("clip_by_value", "x", x.len(), n)?;
    x[..n].iter_mut().for_each(|v| *v = v.clamp(-limit, limit));
    Ok(())
}
