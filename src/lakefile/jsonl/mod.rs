//! JSON Lines: one JSON object per line, matched as the table's JSON SerDe reads it;
//! forget copies every kept line byte for byte; the read-back checks the rewrite line by
//! line against the source.

pub mod check;
pub mod find;
pub mod forget;
pub mod object;
pub mod serde;
