//! Keeps secrets out of everything pgward prints or writes.
//!
//! Passwords are registered once, when a connection string is parsed; every message that
//! reaches a person or a file (log lines, error messages, the audit log) passes through
//! [`scrub`], which replaces them with `***`. URLs are also redacted structurally by
//! [`redact_url`], which needs no registration.

use std::sync::{Mutex, OnceLock};

/// Secrets shorter than this are not scrubbed from free text: replacing every `a` of a
/// message would make it unreadable. Such passwords are still never printed by pgward's
/// own code, which redacts URLs structurally.
const MIN_SCRUBBED_SECRET_LEN: usize = 4;

fn secrets() -> &'static Mutex<Vec<String>> {
    static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Remembers a secret (a password) so that [`scrub`] removes it from any text.
pub fn register_secret(secret: &str) {
    if secret.len() < MIN_SCRUBBED_SECRET_LEN {
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

/// Replaces every registered secret and every URL password in `text` with `***`.
pub fn scrub(text: &str) -> String {
    let mut out = redact_urls_in_text(text);
    let list = secrets().lock().unwrap_or_else(|e| e.into_inner());
    for secret in list.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "***");
        }
    }
    out
}

/// `postgresql://user:secret@host/db` becomes `postgresql://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_string();
    };
    format!(
        "{}{}:***{}",
        &url[..scheme_end + 3],
        &userinfo[..colon],
        &rest[at..]
    )
}

/// Finds URLs with a scheme in free text and redacts their passwords.
fn redact_urls_in_text(text: &str) -> String {
    if !text.contains("://") {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if word.contains("://") {
            out.push_str(&redact_url(word));
        } else {
            out.push_str(word);
        }
    }
    out
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
}
