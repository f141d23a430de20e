//! Crafted input, in one place: the cases of every area that feed pgward what a careless
//! or hostile user, a tampered backup or a strange catalog could hand it (manifests, ids,
//! check SQL, URLs, `pgward.toml` values, object names), so that the next reviewer sees
//! at a glance what has been tried. One module per area.

mod archive;
