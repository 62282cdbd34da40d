//! The `closeout` binary's library half: configuration, the action registry the binary
//! offers, process wiring for `serve` and `sandbox`, the cooldown import, and the benchmarks. `main.rs` only parses the
//! command line and calls in here, so integration tests use the same wiring.

pub mod actions;
pub mod bench;
pub mod config;
pub mod import;
pub mod loadbench;
pub mod requests;
pub mod sandbox;
pub mod serve;

use std::path::Path;

use closeout_engine::action::Registry;
use closeout_engine::definition::{self, Definition};

/// Loads and validates every definition in `dir` against `registry`.
pub fn load_definitions(
    dir: &Path,
    registry: &Registry,
) -> Result<Vec<Definition>, definition::Error> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    definition::load_dir(dir, &|a| registry.contains(a), &|| registry.names())
}

/// Peak resident memory of this process in bytes (Linux `VmHWM`).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the peak-RSS mark so the next phase measures its own peak.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
