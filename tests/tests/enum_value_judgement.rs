//! "An enum value used in the transaction that adds it", judged once: the migration engine
//! (which then runs the file statement by statement) and lint (which reports it) both ask
//! `pgward_shared::sql::enum_values_used_before_commit`. Each case is first sent to a real
//! server as Prisma sends a migration file, as one query (one implicit transaction up to
//! any explicit COMMIT): PostgreSQL's verdict ("unsafe use of new value" or not) must be
//! the engine's and lint's.
//!
//! The two used to judge on their own, and differently. The engine counted any later
//! string literal equal to the value, wherever the file's transactions ended and even in
//! another `ALTER TYPE ... ADD VALUE`: it ran the last two cases statement by statement,
//! giving up their atomicity for nothing. Lint exempted the values of a type created in
//! the same transaction, which PostgreSQL 13 to 16 refuse (the second case): it passed a
//! migration that `prisma migrate deploy` fails on.

use pgward_tests::{cluster, path_str, run, temp_dir, write_migration, write_migrations};

struct Case {
    name: &'static str,
    /// Run before, on its own.
    setup: &'static str,
    /// The migration file.
    file: &'static str,
    /// Whether PostgreSQL refuses the file as one transaction (and so the engine and lint
    /// judge it unsafe).
    refused: bool,
    /// The `server_version_num` from which PostgreSQL accepts it all the same: the engine
    /// and lint keep to the older servers' rule.
    accepted_from: Option<i32>,
}

const CASES: &[Case] = &[
    Case {
        name: "used_in_the_transaction_that_adds_it",
        setup: "CREATE TYPE mood AS ENUM ('ok'); CREATE TABLE person (m mood);",
        file: "ALTER TYPE mood ADD VALUE 'meh';\nINSERT INTO person VALUES ('meh');\n",
        refused: true,
        accepted_from: None,
    },
    Case {
        name: "a_type_created_in_the_same_transaction",
        setup: "",
        file: "CREATE TYPE mood AS ENUM ('ok');\nALTER TYPE mood ADD VALUE 'meh' AFTER 'ok';\nCREATE TABLE person (m mood DEFAULT 'meh');\nINSERT INTO person DEFAULT VALUES;\n",
        refused: true,
        accepted_from: Some(170000),
    },
    Case {
        name: "named_only_by_other_added_values",
        setup: "CREATE TYPE mood AS ENUM ('ok'); CREATE TYPE colour AS ENUM ('red');",
        file: "ALTER TYPE mood ADD VALUE 'meh';\nALTER TYPE mood ADD VALUE 'sad' AFTER 'meh';\nALTER TYPE colour ADD VALUE 'meh';\n",
        refused: false,
        accepted_from: None,
    },
    Case {
        name: "used_after_the_commit_that_ends_its_transaction",
        setup: "CREATE TYPE mood AS ENUM ('ok'); CREATE TABLE person (m mood);",
        file: "BEGIN;\nALTER TYPE mood ADD VALUE 'meh';\nCOMMIT;\nINSERT INTO person VALUES ('meh');\n",
        refused: false,
        accepted_from: None,
    },
];

#[test]
fn the_engine_and_lint_judge_a_new_enum_value_as_postgresql_does() {
    for case in CASES {
        let name = case.name;

        // PostgreSQL: the file as one query, as Prisma sends it.
        let db = cluster().create_database();
        if !case.setup.is_empty() {
            db.psql(case.setup);
        }
        let mut client = db.client();
        let server: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .expect("server version")
            .get(0);
        let refused = case.refused && case.accepted_from.is_none_or(|v| server < v);
        let verdict = client.simple_query(case.file).map(|_| ());
        match (&verdict, refused) {
            (Err(e), true) => assert!(
                e.as_db_error()
                    .is_some_and(|db| db.message().contains("unsafe use of new value")),
                "{name}: {e}"
            ),
            (Ok(()), false) => {}
            _ => panic!(
                "{name}: PostgreSQL {server} says {verdict:?}, the case says refused={refused}"
            ),
        }

        // The engine: one transaction unless PostgreSQL would refuse it; applied either way.
        // The setup is a migration of its own before the case's.
        let db = cluster().create_database();
        let dir = temp_dir("pgward-enum-judgement-");
        if !case.setup.is_empty() {
            write_migration(dir.path(), "20240101000000_setup", case.setup, None);
        }
        write_migrations(dir.path(), &[("20240102000000_enum", case.file)]);
        let file = dir.path().join("20240102000000_enum").join("migration.sql");
        let url = db.url();
        let out = run(
            "migrate",
            &[
                "deploy",
                "--dir",
                path_str(dir.path()),
                "--database-url",
                &url,
            ],
            &[],
        );
        out.assert_code(0);
        let envelope = out.json();
        let applied = envelope["result"]["applied"]
            .as_array()
            .and_then(|a| a.last())
            .unwrap_or_else(|| panic!("{name}: nothing applied: {out}"));
        assert_eq!(applied["name"], "20240102000000_enum", "{name}: {out}");
        let expected_mode = if case.refused {
            "statements"
        } else {
            "transaction"
        };
        assert_eq!(applied["mode"], expected_mode, "{name}: {out}");
        if case.refused {
            assert!(
                applied["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("'meh'"),
                "{name}: the reason names the value: {out}"
            );
        }

        // Lint: the finding exactly when PostgreSQL refuses.
        let out = run("validate", &["lint", path_str(&file)], &[]);
        let envelope = out.json();
        let reported = envelope["result"]["findings"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no findings in {out}"))
            .iter()
            .any(|f| f["rule"] == "enum-value-used-in-same-transaction");
        assert_eq!(reported, case.refused, "{name}: {out}");
    }
}
