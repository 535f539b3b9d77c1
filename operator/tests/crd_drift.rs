//! The chart ships the CRD as YAML; it must be exactly what the Rust types
//! generate, or the API server would validate against a stale schema.

use std::path::Path;

#[test]
fn the_charts_crd_matches_the_rust_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../charts/settings-sync/crds/settingssyncs.yaml");
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = settings_sync_operator::crd::crd_yaml().expect("the CRD renders");
    assert!(
        shipped == generated,
        "{} is stale; regenerate it with\n  cargo run -p settings-sync-operator -- crd > charts/settings-sync/crds/settingssyncs.yaml",
        path.display()
    );
}
