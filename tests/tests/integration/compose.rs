//! The production deployment in `infra/compose`: no container engine runs here, so its
//! structure is checked, and every dijkwacht service's command line, with its environment,
//! is put to `dijkwacht --check-config`.

use dijkwacht_runtime::config::Part;
use serde_norway::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn compose_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/compose")
}

/// Compose's `${NAME:-default}` and `${NAME:?message}`; a required value gets one a real
/// deployment would give.
fn interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("a closing brace") + start;
        let expression = &rest[start + 2..end];
        let resolved = match (expression.split_once(":-"), expression.split_once(":?")) {
            (Some((_, default)), _) => default.to_owned(),
            (None, Some((name, _))) if name.contains("MAIL") || name.contains("REPLY_TO") => {
                "notices@flagger.example".to_owned()
            }
            (None, Some((name, _))) => format!("required-{}", name.to_ascii_lowercase()),
            (None, None) => panic!("${{{expression}}} has neither a default nor a requirement"),
        };
        out.push_str(&resolved);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => interpolate(text),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

#[test]
fn the_compose_file_runs_every_part_once_with_configuration_dijkwacht_accepts() {
    let written = std::fs::read_to_string(compose_dir().join("compose.yaml")).unwrap();
    let mut compose: Value = serde_norway::from_str(&written).unwrap();
    compose.apply_merge().unwrap();
    let services = compose["services"].as_mapping().unwrap();
    let service = |name: &str| &services[&Value::String(name.into())];
    for infrastructure in ["postgres", "kafka", "smtp", "otel-collector", "jaeger", "migrate"] {
        assert!(service(infrastructure).is_mapping(), "no {infrastructure} service");
    }
    assert!(
        text(&service("kafka")["environment"]["KAFKA_PROCESS_ROLES"]).contains("controller"),
        "Kafka in KRaft mode"
    );
    let collector = text(&service("otel-collector")["volumes"][0]);
    let collector_config = collector.split(':').next().unwrap();
    assert!(compose_dir().join(collector_config).exists(), "{collector_config}");
    let dockerfile = text(&service("migrate")["build"]["dockerfile"]);
    assert!(compose_dir().join("../..").join(&dockerfile).exists(), "{dockerfile}");

    let mut parts_run: Vec<String> = Vec::new();
    for (name, service) in services {
        let name = text(name);
        if !text(&service["image"]).starts_with("dijkwacht:") {
            continue;
        }
        let command: Vec<String> = service["command"].as_sequence().unwrap().iter().map(text).collect();
        let environment: BTreeMap<String, String> = service["environment"]
            .as_mapping()
            .unwrap()
            .iter()
            .map(|(key, value)| (text(key), text(value)))
            .collect();
        assert!(
            !command.iter().any(|arg| arg == "--config") && !environment.contains_key("DIJKWACHT_CONFIG"),
            "{name}: configuration by environment only"
        );
        if command[0] == "run" {
            assert_eq!(
                environment["DIJKWACHT_MIGRATE_ON_START"], "false",
                "{name}: only the job migrates"
            );
            assert_eq!(
                text(&service["depends_on"]["migrate"]["condition"]),
                "service_completed_successfully",
                "{name} starts after the migrations"
            );
            let only = command.iter().position(|arg| arg == "--only").expect("--only");
            parts_run.extend(command[only + 1].split(',').map(str::to_owned));
        }
        let checked = std::process::Command::new(dijkwacht_tests::deployment::dijkwacht())
            .args(&command)
            .arg("--check-config")
            .env_clear()
            .envs(&environment)
            .output()
            .unwrap();
        assert!(
            checked.status.success(),
            "{name}: dijkwacht {} --check-config refused: {}",
            command.join(" "),
            String::from_utf8_lossy(&checked.stderr)
        );
    }
    parts_run.sort();
    let mut every_part: Vec<String> = Part::ALL.iter().map(|part| part.name().to_owned()).collect();
    every_part.sort();
    assert_eq!(parts_run, every_part, "every part runs, each in a service of its own");
    for scaled in ["intake", "dispatch"] {
        let replicas = service(scaled)["deploy"]["replicas"].as_u64().unwrap();
        assert!(replicas >= 2, "{scaled} runs {replicas} replica(s)");
    }
}
