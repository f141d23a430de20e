//! The libpq side of a connection: the environment and `--dbname` argument that make
//! pg_dump, pg_restore and psql connect where a [`crate::connect::Session`] would, and the
//! variables they must not inherit.

use crate::connect::dburl::{ConnectionSettings, Host};

/// The libpq environment (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`,
/// `PGSSLMODE`, ...) that makes pg_dump, pg_restore and psql connect as `settings` says:
/// the password travels in the environment, never on a command line.
pub fn libpq_env(settings: &ConnectionSettings) -> Vec<(&'static str, String)> {
    let mut env = vec![
        (
            "PGHOST",
            match &settings.host {
                Host::Tcp(h) => h.clone(),
                Host::Socket(p) => p.display().to_string(),
            },
        ),
        ("PGPORT", settings.port.to_string()),
        ("PGUSER", settings.user.clone()),
        ("PGDATABASE", settings.dbname.clone()),
        ("PGSSLMODE", settings.sslmode.name().to_string()),
        (
            "PGCONNECT_TIMEOUT",
            settings.connect_timeout.as_secs().max(1).to_string(),
        ),
    ];
    if let Some(pw) = &settings.password {
        env.push(("PGPASSWORD", pw.clone()));
    }
    for (name, path) in [
        ("PGSSLROOTCERT", &settings.sslrootcert),
        ("PGSSLCERT", &settings.sslcert),
        ("PGSSLKEY", &settings.sslkey),
    ] {
        if let Some(p) = path {
            env.push((name, p.display().to_string()));
        }
    }
    env
}

/// The `--dbname` value that makes a libpq tool (pg_restore, psql) connect to the
/// database named `dbname` and nothing else. libpq reads a dbname holding `=`, or starting
/// with `postgresql://` or `postgres://`, as a whole connection string (a database named
/// `x host=evil.example` would send the tool, and the password, to another server), so
/// the name always goes as a quoted `dbname='...'` connection string, `\` and `'`
/// escaped as libpq wants. The rest of the connection comes from [`libpq_env`].
pub fn libpq_dbname_arg(dbname: &str) -> String {
    format!(
        "--dbname=dbname='{}'",
        dbname.replace('\\', "\\\\").replace('\'', "\\'")
    )
}

/// libpq variables a command must not inherit when pgward sets the connection itself.
pub const LIBPQ_VARS_TO_CLEAR: &[&str] = &[
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGOPTIONS",
    "PGHOSTADDR",
    "PGPASSFILE",
    "PGTARGETSESSIONATTRS",
];

#[cfg(test)]
mod tests {
    use super::libpq_dbname_arg;

    #[test]
    fn a_database_name_goes_to_libpq_tools_as_a_quoted_dbname() {
        assert_eq!(libpq_dbname_arg("app"), "--dbname=dbname='app'");
        assert_eq!(
            libpq_dbname_arg("x host=evil"),
            "--dbname=dbname='x host=evil'"
        );
        assert_eq!(libpq_dbname_arg(r"it's\x"), r"--dbname=dbname='it\'s\\x'");
    }
}
