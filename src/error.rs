//! What the domain errors share: the failures of the layers below (device, data, checkpoint,
//! report) that every domain passes through unchanged.

/// Declares a domain error enum (thiserror) with the variants given plus the shared transparent
/// ones, each with its `From`: `Backend(BackendError)`, `Data(DataError)`,
/// `Checkpoint(CheckpointError)` and `Report(ReportError)`. More transparent sources follow the
/// enum as `also_from { Variant(ErrorType), .. }` (declared here, so that thiserror sees every
/// transparent variant with the same hygiene).
macro_rules! domain_error {
    (
        $(#[$meta:meta])* $vis:vis enum $name:ident { $($variants:tt)* }
        $(also_from { $($src:ident($ty:ty)),+ $(,)? })?
    ) => {
        $(#[$meta])*
        #[derive(Debug, thiserror::Error)]
        $vis enum $name {
            $($variants)*
            $($(
                #[error(transparent)]
                $src(#[from] $ty),
            )+)?
            #[error(transparent)]
            Backend(#[from] $crate::backend::BackendError),
            #[error(transparent)]
            Data(#[from] $crate::data::DataError),
            #[error(transparent)]
            Checkpoint(#[from] $crate::checkpoint::CheckpointError),
            #[error(transparent)]
            Report(#[from] $crate::report::ReportError),
        }
    };
}
pub(crate) use domain_error;
