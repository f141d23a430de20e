//! The one normalised model both databases are read into, so that "the same schema" means
//! "equal models": objects keyed by kind and names (never OIDs), each with the attributes
//! that define it as the catalogs print them.

use std::collections::BTreeMap;

use pgward_shared::findings::ObjectKind;

/// Which object: its kind and its names from the schema down (`["public", "users",
/// "email"]` for a column). Names are compared as the catalogs spell them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The kind.
    pub kind: ObjectKind,
    /// Schema, then table (for columns, constraints, triggers), then the object's name.
    pub path: Vec<String>,
}

impl ObjectKey {
    /// `public.users.email`, as differences name objects.
    pub fn display(&self) -> String {
        self.path.join(".")
    }
}

/// One object as the catalogs describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaObject {
    /// What contains it (a column's table, a table's schema), so that a table missing
    /// as a whole is one difference, not one per column, index and constraint.
    pub parent: Option<ObjectKey>,
    /// Its defining attributes (`type`, `default`, `definition`, ...); an absent
    /// attribute means NULL.
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// Everything compared of one database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchemaModel {
    /// The objects, in report order.
    pub objects: BTreeMap<ObjectKey, SchemaObject>,
}
