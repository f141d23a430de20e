//! The backup format and everything that reads or writes it.
//!
//! A backup is a folder (or S3 prefix) of files whose last one written is `manifest.json`
//! ([`manifest`]). [`write`](mod@write) makes one: a consistent snapshot, the schema by pg_dump, every
//! table's rows as zstd COPY chunks from a pool of workers ([`workers`]), large objects
//! ([`large_objects`]). [`load`] reads one back into a database: pre-data, data chunks in
//! parallel, post-data on a dependency schedule. [`verify`] checks a backup's files (and,
//! deep, loads it into a scratch database); [`inventory`] lists what a location holds and
//! [`prune`] applies retention to it; the databases restores and deep verifies create for
//! their work are [`crate::workdb`]'s. [`sources`] says which database a backup came
//! from and chooses among them; it and [`manifest`] are plain data, so binaries built
//! without storage (migrate, validate) read them too.
//!
//! Everything that touches storage (local folders, S3) is behind the `storage` feature.

#[cfg(feature = "storage")]
pub mod crypt;
#[cfg(feature = "storage")]
pub mod inventory;
#[cfg(feature = "storage")]
pub mod large_objects;
#[cfg(feature = "storage")]
pub mod load;
pub mod manifest;
#[cfg(feature = "storage")]
pub mod prune;
#[cfg(feature = "storage")]
pub mod results;
pub mod sources;
#[cfg(feature = "storage")]
pub mod verify;
#[cfg(feature = "storage")]
pub mod workers;
#[cfg(feature = "storage")]
pub mod write;
