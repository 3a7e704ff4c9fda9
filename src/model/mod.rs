//! Models written once over [`crate::backend::Backend`].

pub mod init;
pub mod mlp;
pub mod mlp_f16;
pub mod params;
pub mod rnn;
pub mod rop;

pub use mlp::{LossKind, Mlp, MlpSpec, Targets, Workspace};
pub use mlp_f16::{HalfWorkspace, LossScale, Precision};
pub use params::ParamSet;
pub use rnn::{Rnn, RnnInit, RnnSpec, RnnWorkspace, WInit};
pub use rop::{hvp, RopWorkspace};
