//! Crafted input, in one place: every hostile value a reviewer tried against pgward (check
//! SQL, manifests and backup ids, URLs, `pgward.toml` values), one module per area, each
//! case asserting that nothing was changed, deleted or leaked, and the fuzz-style property
//! runs that feed random bytes to every parser.

mod check_sql;
mod fuzz;
