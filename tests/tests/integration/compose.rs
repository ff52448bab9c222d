//! The production deployment in `infra/compose`: no container engine runs here, so its
//! structure is checked, and every dijkwacht service's command line, with its environment,
//! is put to `dijkwacht --check-config`; and its one migration job, which the replicas wait
//! for.

use dijkwacht_runtime::db;
use dijkwacht_tests::deployment::{free_port, Deployment};
use dijkwacht_tests::eventually;
use serde_norway::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    let mut every_part: Vec<String> = dijkwacht::parts::runnable().map(str::to_owned).collect();
    every_part.sort();
    assert_eq!(parts_run, every_part, "every part runs, each in a service of its own");
    for scaled in ["intake", "dispatch"] {
        let replicas = service(scaled)["deploy"]["replicas"].as_u64().unwrap();
        assert!(replicas >= 2, "{scaled} runs {replicas} replica(s)");
    }
}

#[tokio::test]
async fn a_replica_that_does_not_migrate_waits_for_the_migrate_job() {
    let deployment = Deployment::embedded().await;
    let admin_url = dijkwacht_tests::admin_database_url();
    let admin = db::connect(&admin_url, 2).await.unwrap();
    let name = format!("dijkwacht_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&name);
    let url = url.to_string();

    let port = free_port();
    let mut replica = deployment.spawn(
        &["classify"],
        port,
        &[("DATABASE_URL", &url), ("DIJKWACHT_MIGRATE_ON_START", "false")],
    );
    eventually(
        "the replica connected to its database",
        Duration::from_secs(60),
        || async {
            let connected: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
                .bind(&name)
                .fetch_one(&admin)
                .await
                .ok()?;
            (connected > 0).then_some(())
        },
    )
    .await;
    let migrated: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&db::connect(&url, 1).await.unwrap())
        .await
        .unwrap();
    assert!(!migrated, "the replica changed the schema itself");
    assert!(
        replica.0.try_wait().unwrap().is_none(),
        "it waits rather than giving up"
    );

    let migrate = std::process::Command::new(dijkwacht_tests::deployment::dijkwacht())
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
    deployment.wait_healthy(port).await;
}
