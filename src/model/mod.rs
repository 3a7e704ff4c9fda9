//! Models written once over [`crate::backend::Backend`].

pub mod init;
pub mod mlp;
pub mod params;

pub use mlp::{LossKind, Mlp, MlpSpec, Targets, Workspace};
pub use params::ParamSet;
