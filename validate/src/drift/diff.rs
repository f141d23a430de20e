//! Compares the model the migrations produce (the shadow database, "expected") with the
//! live database's ("actual") and says, object by object, what differs.
//!
//! An object missing or extra as a whole is one difference: what it contains (a table's
//! columns, constraints, indexes, triggers and owned sequences; a schema's objects) is not
//! reported again, so "someone created a table by hand" reads as exactly that.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::model::{ObjectKey, SchemaModel, SchemaObject};
use pgward_shared::findings::ObjectKind;
use pgward_shared::findings::{Change, Difference};

/// Longest attribute value quoted in `detail`; longer ones (function bodies, view
/// definitions) are only named there and shown in `expected` / `actual`.
const DETAIL_VALUE_CHARS: usize = 120;

/// Every difference between `expected` and `actual`, in report order.
pub fn compare(expected: &SchemaModel, actual: &SchemaModel) -> Vec<Difference> {
    let mut keys: Vec<&ObjectKey> = expected
        .objects
        .keys()
        .chain(actual.objects.keys())
        .collect();
    keys.sort();
    keys.dedup();
    let mut differences = Vec::new();
    for key in keys {
        match (expected.objects.get(key), actual.objects.get(key)) {
            (Some(object), None) if !container_absent(object, actual) => {
                differences.push(Difference {
                    kind: key.kind,
                    object: key.display(),
                    change: Change::MissingInDatabase,
                    expected: Some(Value::Object(object.attributes.clone())),
                    actual: None,
                    detail: format!(
                        "the migrations create this {} but the database does not have it",
                        noun(key.kind)
                    ),
                });
            }
            (None, Some(object)) if !container_absent(object, expected) => {
                differences.push(Difference {
                    kind: key.kind,
                    object: key.display(),
                    change: Change::ExtraInDatabase,
                    expected: None,
                    actual: Some(Value::Object(object.attributes.clone())),
                    detail: format!(
                        "the database has this {} but the migrations do not create it",
                        noun(key.kind)
                    ),
                });
            }
            (Some(want), Some(have)) => {
                if let Some(difference) = changed(key, want, have) {
                    differences.push(difference);
                }
            }
            _ => {}
        }
    }
    differences
}

/// How many objects of each kind were compared (present on either side).
pub fn compared_counts(
    expected: &SchemaModel,
    actual: &SchemaModel,
) -> BTreeMap<&'static str, usize> {
    let mut counts: BTreeMap<&'static str, usize> = ObjectKind::INTROSPECTED
        .iter()
        .map(|k| (k.plural(), 0))
        .collect();
    for key in expected.objects.keys() {
        *counts.entry(key.kind.plural()).or_default() += 1;
    }
    for key in actual.objects.keys() {
        if !expected.objects.contains_key(key) {
            *counts.entry(key.kind.plural()).or_default() += 1;
        }
    }
    counts
}

/// Whether `object`'s container is absent from `other` (and so reported, or itself
/// inside something absent): then `object` is not a difference of its own.
fn container_absent(object: &SchemaObject, other: &SchemaModel) -> bool {
    object
        .parent
        .as_ref()
        .is_some_and(|parent| !other.objects.contains_key(parent))
}

/// The difference between two definitions of `key`, if they differ.
fn changed(key: &ObjectKey, want: &SchemaObject, have: &SchemaObject) -> Option<Difference> {
    let mut names: Vec<&String> = want
        .attributes
        .keys()
        .chain(have.attributes.keys())
        .collect();
    names.sort();
    names.dedup();
    let mut expected = Map::new();
    let mut actual = Map::new();
    let mut details = Vec::new();
    for name in names {
        let w = want.attributes.get(name).unwrap_or(&Value::Null);
        let h = have.attributes.get(name).unwrap_or(&Value::Null);
        if w == h {
            continue;
        }
        expected.insert(name.clone(), w.clone());
        actual.insert(name.clone(), h.clone());
        let (w_text, h_text) = (render(w), render(h));
        let quotable = |t: &str| t.chars().count() <= DETAIL_VALUE_CHARS && !t.contains('\n');
        details.push(if quotable(&w_text) && quotable(&h_text) {
            format!("{name}: expected {w_text}, found {h_text}")
        } else {
            format!("{name} differs")
        });
    }
    if details.is_empty() {
        return None;
    }
    Some(Difference {
        kind: key.kind,
        object: key.display(),
        change: Change::Changed,
        expected: Some(Value::Object(expected)),
        actual: Some(Value::Object(actual)),
        detail: details.join("; "),
    })
}

/// An attribute value for `detail`: strings bare, absent as `none`, the rest as JSON.
fn render(value: &Value) -> String {
    match value {
        Value::Null => "none".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The kind in words, for `detail`.
fn noun(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::CompositeType => "composite type",
        ObjectKind::MaterializedView => "materialized view",
        other => other.name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(kind: ObjectKind, path: &[&str]) -> ObjectKey {
        ObjectKey {
            kind,
            path: path.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn object(parent: Option<ObjectKey>, attributes: Value) -> SchemaObject {
        SchemaObject {
            parent,
            attributes: attributes.as_object().cloned().unwrap_or_default(),
        }
    }

    fn model(objects: Vec<(ObjectKey, SchemaObject)>) -> SchemaModel {
        SchemaModel {
            objects: objects.into_iter().collect(),
        }
    }

    fn users() -> Vec<(ObjectKey, SchemaObject)> {
        let schema = key(ObjectKind::Schema, &["public"]);
        let table = key(ObjectKind::Table, &["public", "users"]);
        vec![
            (schema.clone(), object(None, json!({}))),
            (
                table.clone(),
                object(Some(schema), json!({"type": "ordinary"})),
            ),
            (
                key(ObjectKind::Column, &["public", "users", "email"]),
                object(
                    Some(table.clone()),
                    json!({"type": "text", "not_null": true}),
                ),
            ),
            (
                key(ObjectKind::Constraint, &["public", "users", "users_pkey"]),
                object(Some(table), json!({"definition": "PRIMARY KEY (id)"})),
            ),
        ]
    }

    #[test]
    fn equal_models_have_no_differences() {
        assert_eq!(compare(&model(users()), &model(users())), vec![]);
    }

    #[test]
    fn an_extra_table_is_one_difference_not_one_per_column() {
        let mut live = users();
        let orders = key(ObjectKind::Table, &["public", "orders"]);
        live.push((
            orders.clone(),
            object(Some(key(ObjectKind::Schema, &["public"])), json!({})),
        ));
        live.push((
            key(ObjectKind::Column, &["public", "orders", "id"]),
            object(Some(orders.clone()), json!({"type": "integer"})),
        ));
        live.push((
            key(ObjectKind::Constraint, &["public", "orders", "orders_pkey"]),
            object(Some(orders), json!({})),
        ));
        let differences = compare(&model(users()), &model(live));
        assert_eq!(differences.len(), 1, "{differences:?}");
        assert_eq!(differences[0].kind, ObjectKind::Table);
        assert_eq!(differences[0].object, "public.orders");
        assert_eq!(differences[0].change, Change::ExtraInDatabase);
    }

    #[test]
    fn a_changed_attribute_is_named_with_both_values() {
        let mut live = users();
        live[2].1.attributes.insert("not_null".into(), json!(false));
        live[2]
            .1
            .attributes
            .insert("default".into(), json!("'x'::text"));
        let differences = compare(&model(users()), &model(live));
        assert_eq!(differences.len(), 1, "{differences:?}");
        let d = &differences[0];
        assert_eq!(
            (d.kind, d.object.as_str(), d.change),
            (ObjectKind::Column, "public.users.email", Change::Changed)
        );
        assert_eq!(d.expected, Some(json!({"default": null, "not_null": true})));
        assert_eq!(
            d.actual,
            Some(json!({"default": "'x'::text", "not_null": false}))
        );
        assert_eq!(
            d.detail,
            "default: expected none, found 'x'::text; not_null: expected true, found false"
        );
    }

    #[test]
    fn counts_cover_every_kind_and_both_sides() {
        let mut live = users();
        live.pop();
        let counts = compared_counts(&model(users()), &model(live));
        assert_eq!(counts["tables"], 1);
        assert_eq!(counts["constraints"], 1);
        assert_eq!(counts["triggers"], 0);
        assert_eq!(counts.len(), ObjectKind::INTROSPECTED.len());
    }
}
