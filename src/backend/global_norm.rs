//! [`GlobalNorm`]: the operands of [`super::Backend::clip_by_global_norm`] in the stats buffer.

use super::{check_len, BackendError, Result};

/// The clipping threshold of [`super::Backend::clip_by_global_norm`] and where its inputs lie in the
/// stats buffer: the squared norms of all gradient tensors in slots `first .. first + count`, and
/// the clip-event counter in `count_slot` and `count_slot + 1` (outside the norm slots) when
/// given: the count mod 2²⁴ and the count / 2²⁴ ([`GlobalNorm::count_events`] reads it; f32
/// holds every integer below 2²⁴ exactly, and one slot alone stopped counting at 16 777 216).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GlobalNorm {
    pub max_norm: f32,
    pub first: usize,
    pub count: usize,
    pub count_slot: Option<usize>,
}

impl GlobalNorm {
    /// The counter's low slot wraps to 0 here, adding 1 to the high slot.
    pub const COUNT_RADIX: f32 = 16_777_216.0;

    /// The clip events counted in `stats[slot..slot + 2]` (up to 2⁴⁸ exactly).
    pub fn count_events(stats: &[f32], slot: usize) -> u64 {
        let digit = |k: usize| stats.get(slot + k).map_or(0, |&v| v.max(0.0) as u64);
        digit(1) * Self::COUNT_RADIX as u64 + digit(0)
    }

    /// The operand checks: `x` holds `n` elements, `stats` the norm slots and the counter's
    /// two slots, which lie outside them.
    pub fn check(&self, x_len: usize, n: usize, stats_len: usize) -> Result<()> {
        const OP: &str = "clip_by_global_norm";
        let (first, count) = (self.first, self.count);
        check_len(OP, "x", x_len, n)?;
        check_len(OP, "stats", stats_len, first + count)?;
        if let Some(slot) = self.count_slot {
            check_len(OP, "stats", stats_len, slot + 2)?;
            if (first..first + count).contains(&slot) || (first..first + count).contains(&(slot + 1)) {
                return Err(BackendError::Invalid {
                    op: OP,
                    message: "count_slot overlaps the norm slots".into(),
                });
            }
        }
        Ok(())
    }
}
