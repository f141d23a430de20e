//! pgward-restore as a library: verify first, guard the target, then load with
//! pgward-backup's loader. The binary is a thin clap layer over [`restore::restore`].

pub mod restore;
pub mod target;
