//! The actions this binary registers. Partner actions arrive with the connectors; the
//! diagnostic actions exist for the benchmark and the process-level tests.

pub mod diag;

use closeout_engine::action::Registry;

/// Every action the binary offers, configured from `options`.
pub fn registry(options: &diag::Options) -> Registry {
    let mut registry = Registry::new();
    diag::register(&mut registry, options);
    registry
}
