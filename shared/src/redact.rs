//! Keeps secrets out of everything pgward prints or writes.
//!
//! Every message that reaches a person or a file (log lines, error messages, the audit
//! log, notifications, other sessions' query text) passes through [`scrub`], which
//! replaces passwords with `***` in two ways:
//!
//! - by position, whatever their length: the password of a URL (`scheme://user:***@host`),
//!   a libpq key=value string or URL parameter (`password=***`, `PGPASSWORD=***`,
//!   `password='***'`), an SQL password literal (`PASSWORD '***'` of CREATE ROLE, a
//!   foreign server's or user mapping's `OPTIONS (password '***')`), a quoted JSON or
//!   YAML value (`"password": ***`);
//! - by value, anywhere in the text: the passwords registered when a connection string
//!   was read ([`register_secret`]), raw and percent-encoded, when they are at least
//!   [`MIN_SCRUBBED_SECRET_LEN`] characters long. Shorter ones would turn every `1` or `a`
//!   of a message into `***`; they are covered by the positional rules above, which are
//!   where a password appears in text.

use std::sync::{Mutex, OnceLock};

/// Registered secrets shorter than this are not replaced wherever they occur in free text
/// (replacing every `a` of a message would make it unreadable); the positional rules of
/// [`scrub`] still remove them from URLs, key=value strings and SQL password literals.
pub const MIN_SCRUBBED_SECRET_LEN: usize = 4;

/// What a password is replaced with.
const MASK: &str = "***";

fn secrets() -> &'static Mutex<Vec<String>> {
    static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Remembers a secret (a password) so that [`scrub`] removes it from any text: everywhere
/// when it is long enough, else where it stands as a URL's password.
pub fn register_secret(secret: &str) {
    if secret.is_empty() || secret == MASK {
        return;
    }
    let mut list = secrets().lock().unwrap_or_else(|e| e.into_inner());
    for form in [
        secret.to_string(),
        percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
            .to_string(),
    ] {
        if !list.contains(&form) {
            list.push(form);
        }
    }
    // Longest first, so a secret that contains another is replaced whole.
    list.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Replaces every password in `text` with `***`: URL passwords, `password=` values and SQL
/// password literals by position, registered secrets by value (see the module).
pub fn scrub(text: &str) -> String {
    let list = secrets().lock().unwrap_or_else(|e| e.into_inner()).clone();
    let out = redact_urls_in_text(text, &list);
    let mut out = redact_password_fields(&out);
    for secret in list
        .iter()
        .filter(|s| s.chars().count() >= MIN_SCRUBBED_SECRET_LEN)
    {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

/// `postgresql://user:secret@host/db` becomes `postgresql://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    redact_urls_in_text(url, &[])
}

/// Redacts the password of every `scheme://user:password@host` in free text. The
/// password ends at the last `@` before the host's `/`, `?`, `#` or a blank; a registered
/// secret that stands there ends it instead, so a password with a blank or a `/` in it
/// (written unencoded) is still removed whole.
fn redact_urls_in_text(text: &str, known: &[String]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.find("://") {
        let (head, tail) = rest.split_at(found + 3);
        out.push_str(head);
        rest = tail;
        let user_end = rest
            .find(|c: char| matches!(c, ':' | '@' | '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(rest.len());
        if !rest[user_end..].starts_with(':') {
            continue;
        }
        let password = &rest[user_end + 1..];
        let known_end = known
            .iter()
            .find(|k| password.starts_with(k.as_str()) && password[k.len()..].starts_with('@'))
            .map(|k| k.len());
        let end = known_end.or_else(|| {
            let authority_end = password
                .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
                .unwrap_or(password.len());
            password[..authority_end].rfind('@')
        });
        if let Some(end) = end {
            out.push_str(&rest[..user_end + 1]);
            out.push_str(MASK);
            rest = &password[end..];
        }
    }
    out.push_str(rest);
    out
}

/// Redacts the value after every `password` key (any case, also `PGPASSWORD`,
/// `sslpassword`): `password=VALUE` (libpq, URL parameters, shell), `password 'VALUE'`
/// (SQL: CREATE/ALTER ROLE, foreign servers' OPTIONS), `"password": "VALUE"` (JSON, YAML).
fn redact_password_fields(text: &str) -> String {
    const KEY: &str = "password";
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(KEY) {
        let key_end = search + found + KEY.len();
        search = key_end;
        let Some((value_start, value_end)) = password_value(text, key_end) else {
            continue;
        };
        out.push_str(&text[copied..value_start]);
        out.push_str(MASK);
        copied = value_end;
        search = value_end;
    }
    out.push_str(&text[copied..]);
    out
}

/// The byte range of the value that follows a `password` key ending at `key_end`, if one
/// does: after `=` anything up to a blank (or a quoted string), after `:` or blanks only a
/// quoted string (so `password authentication failed` stays readable).
fn password_value(text: &str, key_end: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut i = key_end;
    // The closing quote of a quoted key: "password": or 'password' =.
    if matches!(bytes.get(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    let skip_blanks = |mut i: usize| {
        while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        i
    };
    let after_key = skip_blanks(i);
    let (start, any_value) = match bytes.get(after_key) {
        Some(b'=') => (skip_blanks(after_key + 1), true),
        Some(b':') => (skip_blanks(after_key + 1), false),
        Some(b'\'' | b'"') if after_key > i => (after_key, false),
        _ => return None,
    };
    match bytes.get(start) {
        Some(&q @ (b'\'' | b'"')) => Some((start, quoted_end(bytes, start, q))),
        Some(_) if any_value => {
            let mut end = start;
            while end < bytes.len() && !bytes[end].is_ascii_whitespace() {
                // libpq: a backslash escapes the next character, also a blank.
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            (end > start).then_some((start, end.min(bytes.len())))
        }
        _ => None,
    }
}

/// The end of a string quoted with `q` starting at `start`: past the closing quote, with
/// backslash escapes (libpq, JSON) and doubled quotes (SQL) inside; a value quoted inside an
/// SQL literal (`''secret''`) ends at the doubled closing quote. The end of the text when
/// it is not closed.
fn quoted_end(bytes: &[u8], start: usize, q: u8) -> usize {
    let doubled = bytes.get(start + 1) == Some(&q) && bytes.get(start + 2).is_some_and(|&b| b != q);
    let mut i = if doubled { start + 2 } else { start + 1 };
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == q && doubled => {
                if bytes.get(i + 1) == Some(&q) {
                    return i + 2;
                }
                i += 1;
            }
            b if b == q => {
                if bytes.get(i + 1) == Some(&q) {
                    i += 2;
                } else {
                    return i + 1;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_password_is_replaced() {
        assert_eq!(
            redact_url("postgresql://app:p%40ss@db:5432/app?schema=x"),
            "postgresql://app:***@db:5432/app?schema=x"
        );
        assert_eq!(
            redact_url("postgresql://app@db/app"),
            "postgresql://app@db/app"
        );
        assert_eq!(redact_url("s3://bucket/prefix"), "s3://bucket/prefix");
    }

    #[test]
    fn registered_secrets_are_scrubbed_in_plain_and_encoded_form() {
        register_secret("hunter2/secret");
        assert_eq!(
            scrub("password hunter2/secret leaked"),
            "password *** leaked"
        );
        assert_eq!(scrub("as hunter2%2Fsecret too"), "as *** too");
        assert_eq!(
            scrub("see postgres://u:zz@h/d now"),
            "see postgres://u:***@h/d now"
        );
    }

    #[test]
    fn short_passwords_are_masked_by_position_and_text_stays_readable() {
        register_secret("x1");
        let text = "1 migration applied, x1 left alone, postgresql://app:x1@db/app";
        assert_eq!(
            scrub(text),
            "1 migration applied, x1 left alone, postgresql://app:***@db/app"
        );
        assert_eq!(
            scrub("host=db password=x1 dbname=app"),
            "host=db password=*** dbname=app"
        );
        assert_eq!(scrub("PGPASSWORD=a psql"), "PGPASSWORD=*** psql");
        assert_eq!(
            scrub("password authentication failed for user \"app\""),
            "password authentication failed for user \"app\""
        );
    }

    #[test]
    fn conninfo_sql_and_json_password_values_are_masked() {
        for (text, masked) in [
            (
                "host=db password='p w\\' x' port=1",
                "host=db password=*** port=1",
            ),
            ("password = secret user=u", "password = *** user=u"),
            (
                "SELECT dblink_connect('host=db password=s3 dbname=x')",
                "SELECT dblink_connect('host=db password=*** dbname=x')",
            ),
            (
                "SELECT dblink_connect('host=db password=''a b'' dbname=x')",
                "SELECT dblink_connect('host=db password=*** dbname=x')",
            ),
            (
                "ALTER ROLE app PASSWORD 'it''s'",
                "ALTER ROLE app PASSWORD ***",
            ),
            (
                "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'u', password 'pw')",
                "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'u', password ***)",
            ),
            (
                "{\"password\": \"a\\\"b\", \"x\": 1}",
                "{\"password\": ***, \"x\": 1}",
            ),
            (
                "postgresql://u@h/d?sslmode=require&password=ab",
                "postgresql://u@h/d?sslmode=require&password=***",
            ),
        ] {
            assert_eq!(scrub(text), masked, "{text}");
        }
    }

    #[test]
    fn a_registered_password_with_blanks_is_masked_whole_in_a_url() {
        register_secret("p w/x");
        assert_eq!(
            scrub("at postgresql://app:p w/x@db/app now"),
            "at postgresql://app:***@db/app now"
        );
        assert_eq!(
            scrub("http://host:8080/x s3://b/p"),
            "http://host:8080/x s3://b/p"
        );
    }
}
