//! The application layer: one file per command (options → config → domain calls → outputs).

pub mod profile;
