//! `lethe bench …`: benchmarks that print numbers (never timed tests).

pub mod find;
pub mod forget;
pub mod job;
pub mod lake;
pub mod memory;
pub mod queue;

/// The random schedule of injected faults (worker kills, restarts): seeded by
/// `LETHE_FAULT_SEED` when set (to replay a run), else by the clock; the seed is printed.
/// Shared by `lethe bench job --kill-every-secs` and the fault tests.
#[derive(Debug, Clone)]
pub struct FaultRng(u64);

impl FaultRng {
    /// Seeded from `LETHE_FAULT_SEED` or the clock; prints `LETHE_FAULT_SEED=<seed>` to
    /// standard error.
    pub fn seeded() -> Self {
        let seed = std::env::var("LETHE_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
            .max(1);
        eprintln!("LETHE_FAULT_SEED={seed}");
        FaultRng(seed)
    }

    /// A generator of its own from `seed` (one schedule derived from another).
    pub fn with_seed(seed: u64) -> Self {
        FaultRng(seed.max(1))
    }

    /// The next value (xorshift64*).
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A duration from `from` to `to` milliseconds (`to` excluded; `from` when empty).
    pub fn millis(&mut self, from: u64, to: u64) -> std::time::Duration {
        std::time::Duration::from_millis(from + self.next_u64() % to.saturating_sub(from).max(1))
    }
}
