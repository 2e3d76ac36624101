//! `lethe bench …`: benchmarks that print numbers (never timed tests).

pub mod find;
pub mod forget;
pub mod job;
pub mod lake;
pub mod memory;
pub mod queue;

/// SplitMix64's finaliser: deterministic pseudo-random values for generated data (the
/// benchmark lakes and `lethe demo`'s lake).
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
