//! Crafted input, in one place: every area's hostile manifests, ids, check SQL, URLs and
//! pgward.toml values, each fed to the real binaries and scripts, so the next reviewer
//! sees at a glance what has been tried. One module per area.

mod config_values;
