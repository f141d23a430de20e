//! pgward-migrate as a library: one module per command, each turning parsed arguments into
//! a call of the migration engine in [`pgward_shared::migrations`], so the binary is a thin
//! clap layer.

pub mod deploy;
pub mod new;
pub mod resolve;
pub mod rollback;
pub mod seed;
pub mod status;
