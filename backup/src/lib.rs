//! pgward-backup as a library: a consistent, parallel backup engine ([`dump`]), the
//! inventory ([`inventory`]), verification ([`verify`]), retention ([`prune`]) and the
//! loader that restores a backup ([`load`]), its large objects too ([`large_objects`]),
//! which pgward-restore and `verify --deep` share, with the databases they create for
//! their work ([`workdb`]). The binary is a thin clap layer over [`commands`].

pub mod commands;
pub mod copy_rows;
pub mod dump;
pub mod inventory;
pub mod large_objects;
pub mod load;
pub mod pgtools;
pub mod post_data;
pub mod prune;
pub mod snapshot;
pub mod sql_guard;
pub mod verify;
pub mod workdb;
pub mod workers;
