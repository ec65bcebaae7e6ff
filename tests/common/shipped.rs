//! The shipped scenario files, loaded the way every test that checks them needs.
#![allow(dead_code)]

use std::path::Path;

use models::scenario::{FailureKind, FailureSpec, Scenario};

/// `scenarios/<file>` of this repository.
pub fn scenario(file: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(file);
    Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The row of failure `kind` in `s`'s matrix.
pub fn failure(s: &Scenario, kind: FailureKind) -> FailureSpec {
    s.failures
        .iter()
        .find(|f| f.kind == kind)
        .unwrap_or_else(|| panic!("the scenario has no {kind:?} row"))
        .clone()
}
