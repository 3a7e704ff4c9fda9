//! Host memory of a `batchscope rnn` run, from the config's numbers alone (pure, checked
//! arithmetic): the sequences generated on the host, the parameters initialised there, and on
//! the CPU backend the device side too (the uploaded sequences, parameter sets, the BPTT
//! workspace of every time step and the evaluation workspaces). Checked before anything is
//! allocated, so an impossible hidden size, sequence length, batch or vocabulary is one message.
//!
//! Every element is 4 bytes (f32 values, u32 labels and indices). With H hidden units, inputs D,
//! outputs K, length T, batch B and N = n_train + n_val sequences:
//!   parameters P = H·H + H·D + H + K·H + K
//!   sequences     T·N·D inputs + N·K targets (one label per sequence for the copy task)
//!   workspace     (2T + 3)·rows·H + 2·rows·K + 2·rows, plus T·rows·D gathered inputs
//! (rows = B for training, n_val for the evaluation chunks, which are all allocated up front).

use super::host_memory::{bytes_of, check_host, sum_bytes, HostLimit, HostMemoryError};

/// The numbers of one rnn config that size its buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RnnSizes {
    /// Hidden units H.
    pub hidden: usize,
    /// Sequence length T.
    pub length: usize,
    /// Minibatch B.
    pub batch: usize,
    /// Input features per step D (2 for adding, symbols + 1 for copy), `None` when it overflows.
    pub inputs: Option<usize>,
    /// Readout width K (1 for adding, symbols for copy).
    pub outputs: usize,
    /// Classification: one u32 label per sequence instead of K target values.
    pub classification: bool,
    pub n_train: usize,
    pub n_val: usize,
    /// Momentum keeps one more parameter-shaped set.
    pub momentum: bool,
}

/// Bytes a run needs: on the host whatever the backend, and on the device (host memory too
/// when the device is the CPU backend).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RnnBytes {
    pub host: u64,
    pub device: u64,
}

impl RnnBytes {
    /// What the host must hold: everything on the CPU backend, the host side otherwise.
    pub fn on_host(&self, cpu: bool) -> Result<u64, HostMemoryError> {
        if cpu {
            sum_bytes("the rnn run", &[self.host, self.device])
        } else {
            Ok(self.host)
        }
    }
}

/// Bytes of the run described by `s` (checked; an overflow names the sizes).
pub fn rnn_bytes(s: &RnnSizes) -> Result<RnnBytes, HostMemoryError> {
    let what = describe(s);
    let u = |x: usize| x as u64;
    let d = s.inputs.ok_or_else(|| HostMemoryError::Overflow { what: what.clone() })?;
    let (h, t, k) = (u(s.hidden), u(s.length), u(s.outputs));
    let n = u(s.n_train)
        .checked_add(u(s.n_val))
        .ok_or_else(|| HostMemoryError::Overflow { what: what.clone() })?;
    let params = sum_bytes(
        &what,
        &[
            bytes_of(&what, &[h, h])?,
            bytes_of(&what, &[h, u(d)])?,
            bytes_of(&what, &[h])?,
            bytes_of(&what, &[k, h])?,
            bytes_of(&what, &[k])?,
        ],
    )?;
    let targets_per_seq = if s.classification { 1 } else { k };
    let seqs =
        sum_bytes(&what, &[bytes_of(&what, &[t, n, u(d)])?, bytes_of(&what, &[n, targets_per_seq])?])?;
    let val_seqs = sum_bytes(
        &what,
        &[bytes_of(&what, &[t, u(s.n_val), u(d)])?, bytes_of(&what, &[u(s.n_val), targets_per_seq])?],
    )?;
    let workspace = |rows: u64| -> Result<u64, HostMemoryError> {
        let steps = t
            .checked_mul(2)
            .and_then(|x| x.checked_add(3))
            .ok_or_else(|| HostMemoryError::Overflow { what: what.clone() })?;
        sum_bytes(
            &what,
            &[
                bytes_of(&what, &[steps, rows, h])?,
                bytes_of(&what, &[2, rows, k])?,
                bytes_of(&what, &[2, rows])?,
                bytes_of(&what, &[t, rows, u(d)])?,
            ],
        )
    };
    // Host: the generated sequences, the initial parameters and W's Gaussian draw, three
    // copies of W read back for its spectrum, and the evaluation slices.
    let host = sum_bytes(&what, &[seqs, val_seqs, params, bytes_of(&what, &[4, h, h])?, params])?;
    // Device: the sequences uploaded, parameters, gradients (and velocity), the training and
    // evaluation workspaces.
    let sets = if s.momentum { 3 } else { 2 };
    let device = sum_bytes(
        &what,
        &[
            seqs,
            val_seqs,
            bytes_of(&what, &[sets, params / 4])?,
            workspace(u(s.batch))?,
            workspace(u(s.n_val))?,
            bytes_of(&what, &[t, 2])?,
        ],
    )?;
    Ok(RnnBytes { host, device })
}

/// The sizes in words, for messages.
pub fn describe(s: &RnnSizes) -> String {
    let d = s.inputs.map_or_else(|| "overflowing".to_string(), |d| d.to_string());
    format!(
        "an rnn with rnn.hidden = {}, sequence.length = {}, train.batch_size = {}, {} inputs and {} \
         outputs per step, {} + {} sequences",
        s.hidden, s.length, s.batch, d, s.outputs, s.n_train, s.n_val
    )
}

/// Fail when the run cannot fit `limit` (`cpu`: the CPU backend holds the device side too).
pub fn check_rnn(s: &RnnSizes, cpu: bool, limit: Option<HostLimit>) -> Result<(), HostMemoryError> {
    let bytes = rnn_bytes(s)?.on_host(cpu)?;
    check_host(&describe(s), bytes, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(hidden: usize, length: usize) -> RnnSizes {
        RnnSizes {
            hidden,
            length,
            batch: 64,
            inputs: Some(2),
            outputs: 1,
            classification: false,
            n_train: 2048,
            n_val: 256,
            momentum: false,
        }
    }

    #[test]
    fn counts_the_buffers_of_a_small_run() {
        // H = 4, T = 3, D = 2, K = 1, B = 64, 2048 + 256 sequences.
        let b = rnn_bytes(&sizes(4, 3)).unwrap();
        let p = 16 + 8 + 4 + 4 + 1;
        let seqs = 3 * 2304 * 2 + 2304;
        let val = 3 * 256 * 2 + 256;
        assert_eq!(b.host, 4 * (seqs + val + p + 4 * 16 + p));
        let ws = |rows: u64| 9 * rows * 4 + 2 * rows + 2 * rows + 3 * rows * 2;
        assert_eq!(b.device, 4 * (seqs + val + 2 * p + ws(64) + ws(256) + 6));
        assert_eq!(b.on_host(true).unwrap(), b.host + b.device);
        assert_eq!(b.on_host(false).unwrap(), b.host);
    }

    #[test]
    fn the_shipped_default_is_small() {
        // configs/long_term.toml: H = 32, T = 50.
        let b = rnn_bytes(&sizes(32, 50)).unwrap();
        assert!(b.on_host(true).unwrap() < 64 << 20, "{b:?}");
    }

    #[test]
    fn huge_sizes_are_refused_or_overflow() {
        let limit = Some(HostLimit { bytes: 1 << 40, source: "MemAvailable" });
        let e = check_rnn(&sizes(1_000_000_000, 50), true, limit).unwrap_err();
        assert!(e.to_string().contains("1000000000"), "{e}");
        let mut long = sizes(32, 10_000);
        long.n_train = 1_000_000_000;
        let e = check_rnn(&long, false, limit).unwrap_err().to_string();
        assert!(e.contains("10000") && e.contains("bytes"), "{e}");
        let e = check_rnn(&sizes(usize::MAX, 2), true, limit).unwrap_err();
        assert!(matches!(e, HostMemoryError::Overflow { .. }), "{e}");
        let mut vocab = sizes(32, 20);
        vocab.inputs = None;
        assert!(matches!(check_rnn(&vocab, true, limit), Err(HostMemoryError::Overflow { .. })));
        assert_eq!(check_rnn(&sizes(32, 50), true, limit), Ok(()));
        // No limit known: whatever does not overflow fits.
        assert_eq!(check_rnn(&sizes(1_000_000, 50), true, None), Ok(()));
    }
}
