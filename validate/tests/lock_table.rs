//! The lint's lock table against a real server: every row's example statement runs on
//! the row's fixture, and the locks `pg_locks` shows for it must be the row's.
//!
//! A statement that can run in a transaction block runs in one, and its own locks are
//! read before the rollback. One that cannot (CONCURRENTLY, VACUUM) runs in a second
//! session while a first holds SHARE UPDATE EXCLUSIVE on its table, so that its first
//! lock request waits; a third session reads its locks then, granted or requested.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pgward_shared::locks::LockMode;
use pgward_tests::{cluster, TestDb};
use pgward_validate::lint::locks::{LockRow, FIXTURE, LOCK_TABLE};
use postgres::Client;

fn mode_of(pg_locks_mode: &str) -> LockMode {
    // Every mode, by the numbers LOCK TABLE parses to.
    (1..=8)
        .filter_map(LockMode::from_number)
        .find(|m| m.pg_locks_name() == pg_locks_mode)
        .unwrap_or_else(|| panic!("unknown pg_locks mode {pg_locks_mode}"))
}

/// The relations of `schema` by oid (as they are now, inside the session's transaction).
fn relations(client: &mut Client, schema: &str) -> HashMap<u32, String> {
    client
        .query(
            "SELECT c.oid, c.relname::text FROM pg_class c WHERE c.relnamespace = $1::text::regnamespace",
            &[&schema],
        )
        .expect("pg_class reads")
        .iter()
        .map(|r| (r.get::<_, u32>(0), r.get::<_, String>(1)))
        .collect()
}

/// The strongest lock mode the backend `pid` holds or waits for on each relation of
/// `names` (by oid), by relation name.
fn strongest_locks(
    client: &mut Client,
    pid: i32,
    names: &HashMap<u32, String>,
) -> HashMap<String, LockMode> {
    let mut strongest: HashMap<String, LockMode> = HashMap::new();
    for row in client
        .query(
            "SELECT relation, mode FROM pg_locks WHERE pid = $1 AND locktype = 'relation'",
            &[&pid],
        )
        .expect("pg_locks reads")
    {
        let oid: u32 = row.get(0);
        let Some(name) = names.get(&oid) else {
            continue;
        };
        let mode = mode_of(row.get(1));
        let entry = strongest.entry(name.clone()).or_insert(mode);
        *entry = (*entry).max(mode);
    }
    strongest
}

/// A schema holding a fresh copy of the fixture; its name.
fn fixture_schema(db: &TestDb, i: usize) -> String {
    let schema = format!("row_{i}");
    let mut client = db.client();
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path = {schema}; {FIXTURE}"
        ))
        .expect("the fixture loads");
    schema
}

/// The locks of a statement that runs in a transaction block, read before its rollback.
fn locks_in_transaction(db: &TestDb, schema: &str, row: &LockRow) -> HashMap<String, LockMode> {
    let mut client = db.client();
    client
        .batch_execute(&format!("SET search_path = {schema}"))
        .expect("search_path");
    let mut names = relations(&mut client, schema);
    client.batch_execute("BEGIN").expect("BEGIN");
    client
        .batch_execute(row.example.sql)
        .unwrap_or_else(|e| panic!("{}: {e:?}", row.example.sql));
    // Relations the statement created are visible only inside its transaction; the ones
    // it renamed keep the name the row's example knows them by.
    for (oid, name) in relations(&mut client, schema) {
        names.entry(oid).or_insert(name);
    }
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .expect("pid")
        .get(0);
    let locks = strongest_locks(&mut client, pid, &names);
    client.batch_execute("ROLLBACK").expect("ROLLBACK");
    locks
}

/// The locks of a statement that cannot run in a transaction block, read while it waits
/// for a session holding SHARE UPDATE EXCLUSIVE on its table: every such statement asks
/// for at least that first, so its first request waits and shows its mode.
fn locks_while_waiting(db: &TestDb, schema: &str, row: &LockRow) -> HashMap<String, LockMode> {
    let mut blocker = db.client();
    blocker
        .batch_execute(&format!(
            "SET search_path = {schema}; BEGIN; LOCK TABLE {} IN SHARE UPDATE EXCLUSIVE MODE;",
            row.example.on
        ))
        .expect("the blocker reads the table");
    let mut observer = db.client();
    let names = relations(&mut observer, schema);

    let mut worker = db.client();
    let pid: i32 = worker
        .query_one("SELECT pg_backend_pid()", &[])
        .expect("pid")
        .get(0);
    // Alone in its query string: several statements in one simple query form a
    // transaction block, where CONCURRENTLY and VACUUM refuse to run.
    worker
        .batch_execute(&format!("SET search_path = {schema}"))
        .expect("search_path");
    let sql = row.example.sql;
    let running =
        std::thread::spawn(move || worker.batch_execute(sql).map_err(|e| format!("{e:?}")));

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: bool = observer
            .query_one(
                "SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .map(|r| r.get(0))
            .unwrap_or(false);
        if waiting {
            break;
        }
        if running.is_finished() {
            let result = running.join().expect("the statement's thread");
            panic!("{sql}: finished without waiting for the blocking session: {result:?}");
        }
        assert!(
            Instant::now() < deadline,
            "{}: never waited for the blocking session",
            row.example.sql
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let locks = strongest_locks(&mut observer, pid, &names);
    blocker.batch_execute("COMMIT").expect("the blocker ends");
    running
        .join()
        .expect("the statement's thread")
        .unwrap_or_else(|e| panic!("{}: {e}", row.example.sql));
    locks
}

#[test]
fn every_row_of_the_lock_table_is_what_postgresql_takes() {
    let db = cluster().create_database();
    let mut wrong = Vec::new();
    for (i, row) in LOCK_TABLE.iter().enumerate() {
        let schema = fixture_schema(&db, i);
        let locks = if row.example.outside_transaction {
            locks_while_waiting(&db, &schema, row)
        } else {
            locks_in_transaction(&db, &schema, row)
        };
        let mut expect = vec![(row.example.on, Some(row.mode))];
        if let Some(other) = row.example.other {
            expect.push((other, row.other));
        }
        for (relation, mode) in expect {
            let seen = locks.get(relation).copied();
            if seen != mode {
                wrong.push(format!(
                    "{:?} `{}`: the table says {} on {relation}, PostgreSQL took {} (all: {locks:?})",
                    row.kind,
                    row.example.sql,
                    mode.map_or("nothing", LockMode::name),
                    seen.map_or("nothing", LockMode::name),
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "rows that differ from PostgreSQL:\n{}",
        wrong.join("\n")
    );
}
