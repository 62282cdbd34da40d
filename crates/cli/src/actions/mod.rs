//! The actions this binary registers: the closure actions of `closeout-flows`, which call
//! partners through the connectors, and the diagnostic actions the benchmark and the
//! process-level tests use.

pub mod diag;

use closeout_connectors::Connectors;
use closeout_cooldown::HashKeys;
use closeout_engine::action::Registry;

/// Every action the binary offers. The closure actions are registered only when
/// `connectors` is given, so tests and the benchmark, which reach no partner, need none;
/// a definition naming a closure action then fails to load, which says what is missing.
pub fn registry(diag: &diag::Options, closures: Option<(Connectors, HashKeys)>) -> Registry {
    let mut registry = Registry::new();
    diag::register(&mut registry, diag);
    if let Some((connectors, keys)) = closures {
        closeout_flows::register(&mut registry, connectors, keys);
    }
    registry
}
