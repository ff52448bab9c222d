//! schemathesis (from PyPI) against the live `/openapi.json`: no 5xx, no response outside
//! the spec, authentication enforced. `make test` installs it; the seed is fixed so a
//! failure reproduces.

use dijkwacht_tests::{TestOptions, TestSystem};
use std::path::PathBuf;
use tokio::process::Command;

fn schemathesis() -> PathBuf {
    std::env::var_os("DIJKWACHT_SCHEMATHESIS").map_or_else(
        || PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/dijkwacht-venv/bin/schemathesis"),
        PathBuf::from,
    )
}

async fn run(system: &TestSystem, key: &str, selection: &[&str], extra_exclusions: &str) {
    let binary = schemathesis();
    assert!(
        binary.exists(),
        "{} is missing: `make tools` installs schemathesis",
        binary.display()
    );
    let hooks = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemathesis");
    // schemathesis and hypothesis keep their caches in the working directory: one of its
    // own, so a test run leaves the work tree as it was.
    let workdir = tempfile::tempdir().expect("a working directory for schemathesis");
    let output = Command::new(&binary)
        .current_dir(workdir.path())
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", &hooks)
        .env("NO_COLOR", "1")
        .arg("run")
        .arg(system.api("/openapi.json"))
        .args(["-H", &format!("Authorization: Bearer {key}")])
        .args(["--checks", "all"])
        .args([
            "--exclude-checks",
            &format!("positive_data_acceptance{extra_exclusions}"),
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "40"])
        .args(["--seed", "20261125"])
        .args(selection)
        .output()
        .await
        .expect("schemathesis runs");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "schemathesis {selection:?} failed:\n{report}");
    assert!(report.contains(" passed"), "schemathesis ran no tests:\n{report}");
}

#[tokio::test]
async fn the_live_api_keeps_to_its_openapi_description() {
    let system = TestSystem::start(TestOptions {
        public_reports_per_hour: 100_000,
        ..TestOptions::default()
    })
    .await
    .unwrap();
    // Before the stages joined their groups /readyz answers 503, as it should.
    system.wait_until_ready().await;
    // The partner API and the public form, everything checked.
    run(
        &system,
        &system.partner_key,
        &[
            "--exclude-path",
            "/v1/reports/bulk",
            "--exclude-path-regex",
            "^/v1/regulator/",
        ],
        "",
    )
    .await;
    // Bulk answers a malformed line in its result line, by design, not with a 4xx.
    run(
        &system,
        &system.partner_key,
        &["--include-path", "/v1/reports/bulk"],
        ",negative_data_rejection",
    )
    .await;
    // A hosting provider's key on the hash check (with a partner's key above it is a 403).
    run(
        &system,
        &system.provider_key("a"),
        &["--include-path", "/v1/hash-check"],
        "",
    )
    .await;
    run(
        &system,
        &system.regulator_key,
        &["--include-path-regex", "^/v1/regulator/"],
        "",
    )
    .await;
    system.app.stop().await;
}
