//! Crafted input, collected in one place so that a reviewer sees at a glance what has been
//! tried against pgward: hostile manifests, backup ids and file paths, check SQL, database
//! URLs and `pgward.toml` values, each area in a module of its own. Every case runs the
//! real binaries against a real PostgreSQL (and S3 where storage is involved) and asserts
//! the refusal or the correct result — that nothing was changed, deleted or leaked — never
//! just "no crash". `fuzz` holds the property runs that feed random bytes to every parser.

mod archive;
mod check_sql;
mod config_values;
mod fuzz;
mod large_objects;
mod manifests;
mod urls;
