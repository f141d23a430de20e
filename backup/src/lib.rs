//! pgward-backup as a library: one function per command ([`commands`]) that turns the
//! parsed arguments into a call of the backup engine, which lives in
//! [`pgward_shared::archive`] (writing, verifying, listing and pruning backups). The binary
//! is a thin clap layer over [`commands`].

pub mod commands;
