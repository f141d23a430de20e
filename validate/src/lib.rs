//! pgward-validate as a library: each check is a plain function returning findings, so the
//! binary is a thin clap layer. `lint` reads migration SQL before it runs; `schema`, `data`
//! and `drift` read the database after.

pub mod data;
pub mod drift;
pub mod lint;
pub mod preflight;
pub mod schema;
