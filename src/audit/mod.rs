//! The audit trail's tamper evidence, pure (no database, no HTTP):
//!
//! - `chain`: the canonical encoding of an audit row and its hash, exactly as the
//!   `audit_event_chain` trigger computes them, and the walk that checks a chain row by
//!   row (`lethe audit verify`), naming the first row that does not hold;
//! - `checkpoint`: a signed statement of the chain's head (seq, hash, row count, time,
//!   issuer), a compact JWS made with the receipt signer, and its offline check.
//!
//! `db::audit_event` reads the chain, `jobs::audit_checkpoint` writes checkpoints,
//! `api::v1::audit_events` serves the head and the checkpoints.

pub mod chain;
pub mod checkpoint;

pub use chain::{Broken, ChainRow, Intact, Walker};
pub use checkpoint::Checkpoint;
