//! pgward-migrate as a library: Prisma-compatible migrations whose commands are plain
//! functions, so the binary is a thin clap layer and other tools (validate's drift check)
//! reuse the same engine.

pub mod deploy;
pub mod engine;
pub mod lock;
pub mod new;
pub mod resolve;
pub mod rollback;
pub mod seed;
pub mod status;
