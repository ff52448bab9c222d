use std::path::Path;

#[test]
fn committed_schemas_match_the_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let stale = dijkwacht::schemas::stale(&dir);
    assert!(
        stale.is_empty(),
        "stale schemas (run `make schemas` and commit): {stale:?}"
    );
}
