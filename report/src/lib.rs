//! pgward-report as a library: one module per command, each a plain function over a
//! [`Context`](pgward_shared::output::Context) that returns a typed result, so tests and
//! other tools can call them. Reports only read: they never change the database or a
//! backup location, and so never write an audit line.
//!
//! How a result looks in text, Markdown, HTML or Prometheus is not decided here but in
//! [`pgward_shared::render`], which every binary prints through; `render` is that same
//! printer applied to a document read back from a file.

pub mod audit;
pub mod backups;
pub mod health;
pub mod migrations;
pub mod render;
pub mod scripts;
