//! pgward-restore as a library: verify first, guard the target ([`target`]), then load
//! with the archive loader of the common crate ([`pgward_shared::archive::load`]). The
//! binary is a thin clap layer over [`restore::restore`].

pub mod restore;
pub mod target;
