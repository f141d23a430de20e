//! Crafted input, in one place: every case where pgward is handed something hostile or
//! malformed on purpose (manifests, backup ids and file paths, SQL backups, check SQL,
//! URLs, `pgward.toml` values) and must refuse it loudly, never act on it. One module per
//! area, so the next reviewer sees at a glance what has been tried.

mod manifests;
