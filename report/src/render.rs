//! `pgward-report render`: a JSON document any pgward binary printed, printed again as
//! text, Markdown, HTML or Prometheus metrics, by the same renderers the binaries use for
//! their own `--format`. Saved JSON from CI or cron becomes a report later, without
//! running anything again.

use std::io::Read;
use std::path::Path;

use pgward_shared::error::{Error, Result};
use pgward_shared::output::Envelope;
use pgward_shared::render::parse_document;

/// Reads the document from `source`: a file, or `-` for stdin.
pub fn read_document(source: &str) -> Result<Envelope> {
    let text = if source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::io("read", "stdin", e))?;
        text
    } else {
        let path = Path::new(source);
        match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::usage(
                    format!("{source} does not exist"),
                    "pass the JSON file a pgward binary printed, or `-` to read stdin",
                ))
            }
            Err(e) => return Err(Error::io("read", path, e)),
        }
    };
    parse_document(&text).map_err(|reason| {
        Error::usage(
            format!("cannot render {}: {reason}", describe(source)),
            "render reads the JSON document a pgward binary prints on stdout (its default --format json), e.g. `pgward-migrate status > status.json`",
        )
    })
}

fn describe(source: &str) -> String {
    if source == "-" {
        "stdin".into()
    } else {
        source.to_string()
    }
}
