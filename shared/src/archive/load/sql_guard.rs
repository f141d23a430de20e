//! What a `--backup-format sql` backup may hold: SQL and COPY data as pg_dump writes them,
//! and no psql meta-command. `verify` and restore's check before the target is touched scan
//! every line with [`scan`]; the load checks every line again as it feeds psql (see
//! `load::load_sql`), which also runs psql in restricted mode.

use std::io::BufRead;

/// Checks a plain pg_dump script line by line, tracking COPY data (where lines are rows,
/// and `\N` begins a row whose first column is NULL).
#[derive(Default)]
pub struct SqlGuard {
    in_copy: bool,
    /// Inside pg_dump's large-object data section (`-- Data for Name: BLOBS; Type: BLOBS`),
    /// which pg_dump wraps in its own `BEGIN;` ... `COMMIT;`.
    in_large_objects: bool,
    /// Lines checked so far (the 1-based number of the last one).
    pub line: u64,
}

impl SqlGuard {
    /// `Ok(true)`: pass the line to psql; `Ok(false)`: drop it (pg_dump's own
    /// `\restrict`/`\unrestrict`, and the `BEGIN;`/`COMMIT;` it writes around large-object
    /// data: psql loads the whole file in one transaction, which pg_dump's COMMIT would end
    /// early, committing everything before it however the rest goes); `Err(line)`: a
    /// meta-command pgward refuses.
    pub fn check(&mut self, line: &[u8]) -> std::result::Result<bool, String> {
        self.line += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if self.in_copy {
            if text == b"\\." {
                self.in_copy = false;
            }
            return Ok(true);
        }
        // pg_dump's section headers: `-- Name: ...` and `-- Data for Name: ...; Type: ...`.
        if text.starts_with(b"-- Name: ") || text.starts_with(b"-- Data for Name: ") {
            self.in_large_objects = text.windows(13).any(|w| w == b"; Type: BLOBS");
        }
        if self.in_large_objects && (text == b"BEGIN;" || text == b"COMMIT;") {
            return Ok(false);
        }
        let trimmed = text.trim_ascii_start();
        if trimmed.first() == Some(&b'\\') {
            let is_restrict = |word: &[u8]| {
                trimmed
                    .strip_prefix(word)
                    .and_then(|rest| rest.strip_prefix(b" "))
                    .is_some_and(|key| !key.is_empty() && key.iter().all(u8::is_ascii_alphanumeric))
            };
            if is_restrict(b"\\restrict") || is_restrict(b"\\unrestrict") {
                return Ok(false);
            }
            let shown: String = String::from_utf8_lossy(text).chars().take(120).collect();
            return Err(shown);
        }
        if text.starts_with(b"COPY ") && text.ends_with(b" FROM stdin;") {
            self.in_copy = true;
        }
        Ok(true)
    }
}

/// Reads a decompressed SQL script to its end: `Ok(None)` when every line may go to psql,
/// `Ok(Some((line, text)))` for the first that may not.
pub fn scan(reader: impl std::io::Read) -> std::io::Result<Option<(u64, String)>> {
    let mut reader = std::io::BufReader::with_capacity(1 << 20, reader);
    let mut guard = SqlGuard::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        if let Err(text) = guard.check(&line) {
            return Ok(Some((guard.line, text)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{scan, SqlGuard};

    /// pg_dump wraps large-object data in BEGIN/COMMIT; inside psql's one transaction
    /// that COMMIT would commit everything before it, so those two lines are dropped there,
    /// and only there.
    #[test]
    fn pg_dumps_own_transaction_around_large_objects_is_dropped() {
        let mut guard = SqlGuard::default();
        assert_eq!(
            guard.check(b"BEGIN;\n"),
            Ok(true),
            "outside the section: as written"
        );
        assert_eq!(
            guard.check(b"-- Data for Name: BLOBS; Type: BLOBS; Schema: -; Owner: -\n"),
            Ok(true)
        );
        assert_eq!(guard.check(b"BEGIN;\n"), Ok(false));
        assert_eq!(
            guard.check(b"SELECT pg_catalog.lo_open('16390', 131072);\n"),
            Ok(true)
        );
        assert_eq!(guard.check(b"COMMIT;\n"), Ok(false));
        assert_eq!(
            guard.check(b"-- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres\n"),
            Ok(true)
        );
        assert_eq!(
            guard.check(b"COMMIT;\n"),
            Ok(true),
            "after the section: as written"
        );
    }

    #[test]
    fn sql_backups_pass_pg_dumps_lines_and_refuse_meta_commands() {
        let mut guard = SqlGuard::default();
        assert_eq!(guard.check(b"\\restrict abcXYZ123\n"), Ok(false));
        assert_eq!(guard.check(b"SET client_encoding = 'UTF8';\n"), Ok(true));
        assert_eq!(guard.check(b"COPY public.t (a, b) FROM stdin;\n"), Ok(true));
        // COPY rows: a NULL first column begins with a backslash.
        assert_eq!(guard.check(b"\\N\tx\n"), Ok(true));
        assert_eq!(
            guard.check(b"\\!\tnot a command inside COPY data\n"),
            Ok(true)
        );
        assert_eq!(guard.check(b"\\.\n"), Ok(true));
        assert!(guard.check(b"\\! touch /tmp/x\n").is_err());
        assert!(guard.check(b"  \\o /tmp/out\n").is_err());
        assert!(guard.check(b"\\connect postgres\n").is_err());
        assert!(
            guard.check(b"\\restrict\n").is_err(),
            "a restrict without its key"
        );
        assert_eq!(guard.check(b"\\unrestrict abcXYZ123\n"), Ok(false));
        assert_eq!(guard.line, 11);
    }

    #[test]
    fn a_script_is_scanned_to_its_first_meta_command() {
        let script = b"SET x = 1;\nCOPY t (a) FROM stdin;\n\\N\n\\.\n\\! id\nSELECT 1;\n";
        assert_eq!(scan(&script[..]).unwrap(), Some((5, "\\! id".to_string())));
        assert_eq!(scan(&b"SELECT 1;\n"[..]).unwrap(), None);
    }
}
