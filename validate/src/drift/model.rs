//! The one normalised model both databases are read into, so that "the same schema" means
//! "equal models": objects keyed by kind and names (never OIDs), each with the attributes
//! that define it as the catalogs print them.

use std::collections::BTreeMap;

use serde::Serialize;

/// What kind of object a model entry (or a difference) is. The order is the order
/// differences are reported in: containers before what they contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// A migration recorded as applied in the database but absent from the folder.
    Migration,
    /// `CREATE EXTENSION`.
    Extension,
    /// A schema other than PostgreSQL's own.
    Schema,
    /// An enum type with its values in order.
    Enum,
    /// A domain with its base type, default and checks.
    Domain,
    /// A stand-alone composite type.
    CompositeType,
    /// A table (ordinary, partitioned or foreign).
    Table,
    /// A view.
    View,
    /// A materialized view.
    MaterializedView,
    /// A table column.
    Column,
    /// A primary key, foreign key, unique, check or exclusion constraint.
    Constraint,
    /// An index that backs no constraint (those are compared as the constraint).
    Index,
    /// A sequence (owned by a column or not).
    Sequence,
    /// A function, procedure or aggregate, keyed by its argument types (`name(integer)`).
    Function,
    /// A trigger.
    Trigger,
}

impl ObjectKind {
    /// Every kind the catalogs are read for, in report order.
    pub const INTROSPECTED: [ObjectKind; 14] = [
        ObjectKind::Extension,
        ObjectKind::Schema,
        ObjectKind::Enum,
        ObjectKind::Domain,
        ObjectKind::CompositeType,
        ObjectKind::Table,
        ObjectKind::View,
        ObjectKind::MaterializedView,
        ObjectKind::Column,
        ObjectKind::Constraint,
        ObjectKind::Index,
        ObjectKind::Sequence,
        ObjectKind::Function,
        ObjectKind::Trigger,
    ];

    /// The name the introspection queries give the kind (also its JSON spelling).
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Migration => "migration",
            ObjectKind::Extension => "extension",
            ObjectKind::Schema => "schema",
            ObjectKind::Enum => "enum",
            ObjectKind::Domain => "domain",
            ObjectKind::CompositeType => "composite_type",
            ObjectKind::Table => "table",
            ObjectKind::View => "view",
            ObjectKind::MaterializedView => "materialized_view",
            ObjectKind::Column => "column",
            ObjectKind::Constraint => "constraint",
            ObjectKind::Index => "index",
            ObjectKind::Sequence => "sequence",
            ObjectKind::Function => "function",
            ObjectKind::Trigger => "trigger",
        }
    }

    /// The key of `result.compared` (`tables`, `indexes`, ...).
    pub fn plural(self) -> &'static str {
        match self {
            ObjectKind::Migration => "migrations",
            ObjectKind::Extension => "extensions",
            ObjectKind::Schema => "schemas",
            ObjectKind::Enum => "enums",
            ObjectKind::Domain => "domains",
            ObjectKind::CompositeType => "composite_types",
            ObjectKind::Table => "tables",
            ObjectKind::View => "views",
            ObjectKind::MaterializedView => "materialized_views",
            ObjectKind::Column => "columns",
            ObjectKind::Constraint => "constraints",
            ObjectKind::Index => "indexes",
            ObjectKind::Sequence => "sequences",
            ObjectKind::Function => "functions",
            ObjectKind::Trigger => "triggers",
        }
    }

    /// The kind an introspection query names.
    pub fn from_name(name: &str) -> Option<ObjectKind> {
        ObjectKind::INTROSPECTED
            .into_iter()
            .find(|k| k.name() == name)
    }
}

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
