//! Identifiers longer than PostgreSQL keeps.

use std::collections::HashSet;

use pg_query::protobuf;

use super::FileLinter;
use crate::lint::display_ident;
use crate::lint::rules::{Family, Rule, RuleInfo};
use pgward_shared::findings::Severity;

pub(super) const FAMILY: Family = Family {
    source: file!(),
    rules: &[RuleInfo {
        rule: Rule::IdentifierTooLong,
        id: "identifier-too-long",
        severity: Severity::Error,
        fires_at: (1, 27),
    }],
};

/// PostgreSQL keeps the first NAMEDATALEN - 1 bytes of an identifier (NAMEDATALEN is 64).
const MAX_IDENTIFIER_BYTES: usize = 63;

impl FileLinter<'_> {
    pub(super) fn long_identifiers(&mut self) {
        let file = self.file;
        let mut seen = HashSet::new();
        for token in file
            .tokens
            .iter()
            .filter(|t| t.kind == Some(protobuf::Token::Ident))
        {
            let Some(written) = self.text.get(token.start..token.end) else {
                continue;
            };
            let name = unquote_identifier(written);
            if name.len() <= MAX_IDENTIFIER_BYTES || !seen.insert(name.clone()) {
                continue;
            }
            let mut cut = MAX_IDENTIFIER_BYTES;
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            self.hit(
                Rule::IdentifierTooLong,
                file.statement_at(token.start).unwrap_or(0),
                token.start,
                Some(display_ident(&name)),
                format!("identifier {} is {} bytes long; PostgreSQL keeps only the first {MAX_IDENTIFIER_BYTES}: {}", display_ident(&name), name.len(), display_ident(&name[..cut])),
                None,
                "PostgreSQL truncates longer identifiers without an error (only a NOTICE): the object gets another name than the one written, so statements and tools using the full name miss it, and two long names sharing their first 63 bytes collide",
                "use a name of at most 63 bytes (in schema.prisma, give the index, unique constraint or relation a shorter name with `map: \"...\"`)",
            );
        }
    }
}

/// `"a""b"` → `a"b`; an unquoted identifier is folded to lower case, as PostgreSQL does.
fn unquote_identifier(written: &str) -> String {
    match written.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => written.to_ascii_lowercase(),
    }
}
