//! [`GlobalNorm`]: the operands of [`super::Backend::clip_by_global_norm`] in the stats buffer.

use super::{check_len, BackendError, Result};

/// The clipping threshold of [`super::Backend::clip_by_global_norm`] and where its inputs lie in the
/// stats buffer: the squared norms of all gradient tensors in slots `first .. first + count`, and
/// the clip-event counter in `count_slot` (outside the norm slots) when given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GlobalNorm {
    pub max_norm: f32,
    pub first: usize,
    pub count: usize,
    pub count_slot: Option<usize>,
}

impl GlobalNorm {
    /// The operand checks: `x` holds `n` elements, `stats` the norm slots and `count_slot`,
    /// which lies outside them.
    pub fn check(&self, x_len: usize, n: usize, stats_len: usize) -> Result<()> {
        const OP: &str = "clip_by_global_norm";
        let (first, count) = (self.first, self.count);
        check_len(OP, "x", x_len, n)?;
        check_len(OP, "stats", stats_len, first + count)?;
        if let Some(slot) = self.count_slot {
            check_len(OP, "stats", stats_len, slot + 1)?;
            if (first..first + count).contains(&slot) {
                return Err(BackendError::Invalid {
                    op: OP,
                    message: "count_slot overlaps the norm slots".into(),
                });
            }
        }
        Ok(())
    }
}
