//! Column types as the parser spells them, reduced to what decides whether changing one
//! rewrites the table, and the default expressions PostgreSQL evaluates once per row.
//!
//! The parser already folds SQL's keyword spellings (`INTEGER`, `VARCHAR(255)`,
//! `TIMESTAMP WITH TIME ZONE`) into catalog names (`pg_catalog.int4`, ...); what is left
//! here is the aliases it leaves alone (`int`, `serial`, `decimal` written unquoted as a
//! plain name) and the rules of PostgreSQL's length-coercion support functions.

use pg_query::protobuf::{a_const, TypeName};
use pg_query::NodeEnum;

/// A column's type: base name without `pg_catalog.`, its modifiers, whether it is an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnType {
    /// `int4`, `varchar`, `timestamptz`, `Role` (a user type keeps its case).
    pub name: String,
    /// `varchar(255)` → `[255]`, `numeric(65,30)` → `[65, 30]`.
    pub modifiers: Vec<i64>,
    /// `text[]`.
    pub array: bool,
}

impl ColumnType {
    /// The type a parse tree names.
    pub fn from_type_name(type_name: &TypeName) -> ColumnType {
        let written = type_name
            .names
            .last()
            .and_then(|n| match &n.node {
                Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
                _ => None,
            })
            .unwrap_or_default();
        let name = match written {
            "int" | "integer" => "int4",
            "smallint" => "int2",
            "bigint" => "int8",
            "decimal" => "numeric",
            "boolean" => "bool",
            "serial4" => "serial",
            "serial8" => "bigserial",
            "serial2" => "smallserial",
            other => other,
        }
        .to_string();
        let modifiers = type_name
            .typmods
            .iter()
            .filter_map(|m| match &m.node {
                Some(NodeEnum::AConst(c)) => match &c.val {
                    Some(a_const::Val::Ival(i)) => Some(i64::from(i.ival)),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        ColumnType {
            name,
            modifiers,
            array: !type_name.array_bounds.is_empty(),
        }
    }

    /// The type the column really gets: `serial` is `int4` with a sequence default.
    pub fn stored(&self) -> ColumnType {
        let name = match self.name.as_str() {
            "serial" => "int4",
            "bigserial" => "int8",
            "smallserial" => "int2",
            other => other,
        };
        ColumnType {
            name: name.to_string(),
            ..self.clone()
        }
    }

    /// Whether the column fills itself from a sequence (`serial` and friends).
    pub fn is_serial(&self) -> bool {
        matches!(self.name.as_str(), "serial" | "bigserial" | "smallserial")
    }

    /// Whether it is a 16- or 32-bit integer (plain or serial), too small for a busy key.
    pub fn is_small_integer(&self) -> bool {
        !self.array
            && matches!(
                self.name.as_str(),
                "int2" | "int4" | "serial" | "smallserial"
            )
    }

    /// As SQL would spell it back: `varchar(255)`, `"Role"[]`.
    pub fn display(&self) -> String {
        // Type names are shown bare even when they are keywords (`varchar`, `int4`).
        let mut out = if crate::lint::is_plain_name(&self.name) {
            self.name.clone()
        } else {
            pgward_shared::sql::quote_ident(&self.name)
        };
        if !self.modifiers.is_empty() {
            let mods: Vec<String> = self.modifiers.iter().map(i64::to_string).collect();
            out.push_str(&format!("({})", mods.join(",")));
        }
        if self.array {
            out.push_str("[]");
        }
        out
    }
}

/// Whether `ALTER COLUMN ... TYPE new` (without USING) keeps the table's files when the
/// column is `old` today: binary-coercible changes, and the typmod changes that
/// PostgreSQL's support functions (`varchar_support`, `numeric_support`,
/// `timestamp_support`) prove harmless. Anything else rewrites the table and its indexes.
/// Arrays are only exempt when nothing changes: an element-wise length coercion is not
/// simplified away.
pub fn change_skips_rewrite(old: &ColumnType, new: &ColumnType) -> bool {
    if old == new {
        return true;
    }
    if old.array || new.array {
        return false;
    }
    let widened = |old_max: Option<&i64>, new_max: Option<&i64>| match (old_max, new_max) {
        (_, None) => true,
        (Some(o), Some(n)) => n >= o,
        (None, Some(_)) => false,
    };
    match (old.name.as_str(), new.name.as_str()) {
        ("varchar", "text") => true,
        ("text", "varchar") => new.modifiers.is_empty(),
        ("varchar", "varchar") | ("timestamp", "timestamp") | ("timestamptz", "timestamptz") => {
            widened(old.modifiers.first(), new.modifiers.first())
        }
        ("numeric", "numeric") => {
            if new.modifiers.is_empty() {
                return true;
            }
            // numeric(p) is numeric(p,0); an unconstrained numeric cannot be narrowed freely.
            let scale = |t: &ColumnType| t.modifiers.get(1).copied().unwrap_or(0);
            !old.modifiers.is_empty()
                && scale(old) == scale(new)
                && widened(old.modifiers.first(), new.modifiers.first())
        }
        _ => false,
    }
}

/// Whether a change keeps the rows but not the indexes: text or varchar to citext and back
/// are binary-coercible (the citext extension declares the casts WITHOUT FUNCTION), but the
/// operator class changes, so every index on the column is rebuilt.
pub fn change_rebuilds_indexes_only(old: &ColumnType, new: &ColumnType) -> bool {
    !old.array
        && !new.array
        && match (old.name.as_str(), new.name.as_str()) {
            ("text" | "varchar", "citext") | ("citext", "text") => true,
            ("citext", "varchar") => new.modifiers.is_empty(),
            _ => false,
        }
}

/// Whether a type change could be one of the cheap ones above for some old type; used when
/// the old type is unknown (the table was not created by the migrations linted).
pub fn could_skip_rewrite(new: &ColumnType) -> bool {
    !new.array
        && matches!(
            new.name.as_str(),
            "text" | "varchar" | "numeric" | "timestamp" | "timestamptz"
        )
}

/// Functions a migration may use as a column default whose result differs from row to
/// row (`provolatile = 'v'` in `pg_proc`): such a default makes `ADD COLUMN` evaluate it
/// for every existing row, rewriting the table. `now()` and `CURRENT_TIMESTAMP` are
/// stable, evaluated once, and need no rewrite since PostgreSQL 11.
const VOLATILE_FUNCTIONS: &[&str] = &[
    "random",
    "random_normal",
    "gen_random_uuid",
    "gen_random_bytes",
    "uuidv4",
    "uuidv7",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "setval",
];

/// The first volatile function call in a default expression, with its byte offset.
pub fn volatile_call(expr: &NodeEnum) -> Option<(String, usize)> {
    expr.nodes().into_iter().find_map(|(node, ..)| match node {
        pg_query::NodeRef::FuncCall(call) => {
            let name = call.funcname.last().and_then(|n| match &n.node {
                Some(NodeEnum::String(s)) => Some(s.sval.to_lowercase()),
                _ => None,
            })?;
            VOLATILE_FUNCTIONS
                .contains(&name.as_str())
                .then(|| (name, call.location.max(0) as usize))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(name: &str, modifiers: &[i64]) -> ColumnType {
        ColumnType {
            name: name.into(),
            modifiers: modifiers.to_vec(),
            array: false,
        }
    }

    #[test]
    fn binary_coercible_changes_skip_the_rewrite() {
        assert!(change_skips_rewrite(
            &ty("varchar", &[50]),
            &ty("varchar", &[100])
        ));
        assert!(change_skips_rewrite(
            &ty("varchar", &[50]),
            &ty("varchar", &[])
        ));
        assert!(change_skips_rewrite(
            &ty("varchar", &[50]),
            &ty("text", &[])
        ));
        assert!(change_skips_rewrite(&ty("text", &[]), &ty("varchar", &[])));
        assert!(change_skips_rewrite(
            &ty("numeric", &[10, 2]),
            &ty("numeric", &[12, 2])
        ));
        assert!(change_skips_rewrite(
            &ty("numeric", &[10, 2]),
            &ty("numeric", &[])
        ));
        assert!(change_skips_rewrite(
            &ty("timestamp", &[3]),
            &ty("timestamp", &[6])
        ));
    }

    #[test]
    fn other_changes_rewrite() {
        assert!(!change_skips_rewrite(
            &ty("varchar", &[100]),
            &ty("varchar", &[50])
        ));
        assert!(!change_skips_rewrite(
            &ty("text", &[]),
            &ty("varchar", &[10])
        ));
        assert!(!change_skips_rewrite(&ty("int4", &[]), &ty("int8", &[])));
        assert!(!change_skips_rewrite(
            &ty("numeric", &[10, 2]),
            &ty("numeric", &[12, 3])
        ));
        assert!(!change_skips_rewrite(
            &ty("numeric", &[]),
            &ty("numeric", &[12, 2])
        ));
        assert!(!change_skips_rewrite(
            &ty("timestamp", &[]),
            &ty("timestamptz", &[])
        ));
    }
}
