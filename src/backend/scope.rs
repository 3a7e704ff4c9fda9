//! Where in a model an op is recorded: set by the model code, read by profilers to name each
//! dispatch (`fwd matmul L0`, `wgrad L1`, ...). Backends that do not profile ignore it.

/// The model context of the ops recorded next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Outside a layer (losses, reductions, updates, probes).
    #[default]
    None,
    /// Forward pass of layer `l` (0 = the input layer's weights).
    Forward(usize),
    /// Backward pass of layer `l`.
    Backward(usize),
}
