//! What operators load from files: the demo configuration, report imports, hash lists, and
//! the URL rules they contain.

use dijkwacht::parts::load_settings;
use dijkwacht_classify::evidence;
use dijkwacht_classify::lists::{self, ListSettings};
use dijkwacht_domain::ContentClass;
use dijkwacht_intake::import::{import, Format};
use dijkwacht_runtime::reference::{ReferenceData, UrlRuleEntry};
use dijkwacht_tests::{reference_data, TestDatabase, TestOptions, TestSystem};
use serde_json::{json, Value};
use std::path::Path;

async fn list_version(db: &TestDatabase, list: &str) -> i64 {
    sqlx::query_scalar("SELECT version FROM hash_lists WHERE name = $1")
        .bind(list)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

fn repository(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

#[tokio::test]
async fn the_demo_configuration_and_reference_data_load() {
    let settings = load_settings(Some(&repository("infra/demo/dijkwacht.toml"))).unwrap();
    assert!(settings.demo);
    assert_eq!(settings.resolver, "static");
    let reference =
        ReferenceData::from_file(&repository(settings.reference_file.as_ref().unwrap().to_str().unwrap())).unwrap();
    let db = TestDatabase::create().await.unwrap();
    reference.load_into(&db.pool, chrono::Utc::now()).await.unwrap();
    // Loading twice changes nothing: reference data is upserted at every start.
    reference.load_into(&db.pool, chrono::Utc::now()).await.unwrap();
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        keys, 8,
        "partner, hotline abroad, police, two analysts, regulator, operator, hosting provider"
    );
    dijkwacht_classify::police_first::PoliceFirstSettings::from_settings(&settings)
        .expect("the demo's police-first rules are valid");
    let directory = dijkwacht_dispatch::registry::Directory::load(&db.pool)
        .await
        .expect("the demo registry is valid");
    assert!(
        directory.police("demo-police").is_some(),
        "the demo police take referrals"
    );
    let providers = dijkwacht_hashcheck::providers::Providers::load(&db.pool, 1, 1)
        .await
        .expect("the demo provider's hash_check entry is valid");
    assert!(providers.get("demo-hosting").is_some_and(|p| p.settings.open_cases));
    assert_eq!(
        list_version(&db, "demo-national").await,
        2,
        "bumped once, when the entries first arrived"
    );
}

#[tokio::test]
async fn an_unknown_configuration_key_or_variable_names_itself_and_the_nearest_known_one() {
    let dir = std::env::temp_dir().join(format!("dijkwacht-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dijkwacht.toml");
    std::fs::write(&file, "http_listen = \"127.0.0.1:1\"\nbatch_sise = 10\n").unwrap();
    let error = load_settings(Some(&file)).unwrap_err().to_string();
    assert!(
        error.contains("unknown key `batch_sise`") && error.contains("did you mean `batch_size`?"),
        "{error}"
    );
    assert!(error.contains("dijkwacht.toml"), "names the file: {error}");

    // A part's section is the part's to read, by the same rules.
    std::fs::write(&file, "[dispach]\nsmtp_host = \"relay.example\"\n").unwrap();
    let error = load_settings(Some(&file)).unwrap_err().to_string();
    assert!(
        error.contains("unknown key `dispach`") && error.contains("did you mean `dispatch`?"),
        "{error}"
    );
    std::fs::write(&file, "[dispatch]\nsmtp_hots = \"relay.example\"\n").unwrap();
    let settings = load_settings(Some(&file)).expect("the part reads its own section");
    let error = dijkwacht_dispatch::settings::DispatchSettings::from_settings(&settings)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("unknown key `dispatch.smtp_hots`; did you mean `dispatch.smtp_host`?"),
        "{error}"
    );

    std::fs::write(&file, "http_listen = \"127.0.0.1:1\"\n").unwrap();
    let status = std::process::Command::new(dijkwacht_tests::deployment::dijkwacht())
        .args(["--config".as_ref(), file.as_os_str(), "migrate".as_ref()])
        .env("DIJKWACHT_BATCH_SISE", "10")
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .status()
        .unwrap();
    let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown environment variable DIJKWACHT_BATCH_SISE; did you mean DIJKWACHT_BATCH_SIZE?"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_report_import_reports_bad_lines_by_number_and_is_safe_to_rerun() {
    let db = TestDatabase::create().await.unwrap();
    reference_data("p", "r", "http://127.0.0.1:9/notices")
        .load_into(&db.pool, chrono::Utc::now())
        .await
        .unwrap();
    let store = db.store();
    let csv = "partner_reference,url,sha256,claimed_category\n\
               F-1,https://files.example/1,abababababababababababababababababababababababababababababababab,csam\n\
               F-2,ftp://files.example/2,,\n\
               \n\
               F-3,https://files.example/3,,ncii\n";
    let run = || async {
        let mut rejected = Vec::new();
        let summary = import(
            &store,
            "partner-a",
            csv.as_bytes(),
            Format::Csv,
            chrono::Utc::now,
            |_| {},
            |e| rejected.push((e.line, e.errors[0].pointer.clone())),
        )
        .await
        .unwrap();
        (summary, rejected)
    };
    let (first, rejected) = run().await;
    assert_eq!((first.lines, first.accepted, first.rejected), (3, 2, 1));
    assert_eq!(
        rejected,
        vec![(3, "/items/0/url".to_owned())],
        "line numbers count the header"
    );
    let (second, _) = run().await;
    assert_eq!((second.accepted, second.already_imported), (0, 2));
    let reports: i64 = sqlx::query_scalar("SELECT count(*) FROM reports")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(reports, 2);
}

#[tokio::test]
async fn a_hash_list_import_maps_source_categories_and_is_idempotent() {
    let db = TestDatabase::create().await.unwrap();
    let list = ListSettings {
        name: "iwf".into(),
        source: Some("IWF".into()),
        pdq_max_distance: Some(31),
        categories: [("A".to_owned(), ContentClass::Csam)].into(),
    };
    let file = format!(
        "algorithm,value,category,quality\nsha256,{},A\npdq,{},A,80\nmd5,{},Z\nsha1,{},csam\n",
        "ab".repeat(32),
        "cd".repeat(32),
        "ef".repeat(16),
        "12".repeat(20),
    );
    let mut rejected = Vec::new();
    let summary = lists::import(
        &db.pool,
        &list,
        file.as_bytes(),
        true,
        chrono::Utc::now(),
        |_| {},
        |line, message| rejected.push((line, message)),
    )
    .await
    .unwrap();
    assert_eq!((summary.added, summary.rejected), (3, 1));
    assert_eq!(rejected[0].0, 4);
    assert!(rejected[0].1.contains("\"Z\""), "{rejected:?}");
    let again = lists::import(
        &db.pool,
        &list,
        file.as_bytes(),
        true,
        chrono::Utc::now(),
        |_| {},
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!((again.added, again.already_listed), (0, 3));
    let (_, index) = dijkwacht_classify::loaded_index::build(&db.pool).await.unwrap();
    assert_eq!(index.len(), 3);
    assert_eq!(
        list_version(&db, "iwf").await,
        2,
        "only the import that added entries bumps the version"
    );
}

#[tokio::test]
async fn url_rules_match_exactly_by_prefix_or_by_domain_most_specific_first() {
    let db = TestDatabase::create().await.unwrap();
    let rule = |id: &str, kind: &str, pattern: &str, class: &str| UrlRuleEntry {
        id: id.into(),
        kind: kind.into(),
        pattern: pattern.into(),
        class: class.into(),
    };
    ReferenceData {
        url_rules: vec![
            rule("domain", "domain", "board.example", "hate_speech"),
            rule("prefix", "prefix", "https://board.example/threads/doxing/", "doxing"),
            rule(
                "exact",
                "exact",
                "https://board.example/threads/doxing/42",
                "cyber_harassment",
            ),
        ],
        ..ReferenceData::default()
    }
    .load_into(&db.pool, chrono::Utc::now())
    .await
    .unwrap();
    let found = |url: &'static str| {
        let pool = db.pool.clone();
        async move { evidence::url_rule(&pool, url).await.unwrap().map(|f| f.class) }
    };
    assert_eq!(
        found("https://board.example/threads/doxing/42").await,
        Some(ContentClass::CyberHarassment)
    );
    assert_eq!(
        found("https://board.example/threads/doxing/43").await,
        Some(ContentClass::Doxing)
    );
    assert_eq!(
        found("https://cdn.board.example/x").await,
        Some(ContentClass::HateSpeech)
    );
    assert_eq!(found("https://otherboard.example/x").await, None);
}

/// Runs the binary with stderr sent to `dir/NAME.err`; returns the exit code and stderr.
fn run_cli(dir: &Path, name: &str, args: &[&std::ffi::OsStr]) -> (i32, String) {
    let stderr_path = dir.join(format!("{name}.err"));
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let status = std::process::Command::new(dijkwacht_tests::deployment::dijkwacht())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .status()
        .unwrap();
    (status.code().unwrap(), std::fs::read_to_string(stderr_path).unwrap())
}

/// An operator's scheduled job sends stderr to a file: every rejected line's number and
/// reason must be there, not only the summary (the progress bar is not drawn there); with
/// `--errors` the rejected lines come back as NDJSON to fix and import again; the exit code
/// tells rejected lines (1) from an import that could not run (2).
#[tokio::test]
async fn the_imports_name_each_rejected_line_on_stderr_and_in_their_errors_file() {
    let database = TestDatabase::create().await.unwrap();
    reference_data("import-key", "import-regulator", "http://127.0.0.1:9/notices")
        .load_into(&database.pool, chrono::Utc::now())
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("dijkwacht-import-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("dijkwacht.toml");
    std::fs::write(&config, format!("database_url = {:?}\n", database.url)).unwrap();
    let reports = dir.join("reports.csv");
    std::fs::write(
        &reports,
        "partner_reference,url\nR-1,https://videos.example/v/1\nR-2,ftp://videos.example/v/2\nR-3,https://videos.example/v/3\n",
    )
    .unwrap();
    let errors = dir.join("rejected.ndjson");
    fn import<'a>(config: &'a Path, errors: &'a Path, file: &'a Path) -> [&'a std::ffi::OsStr; 8] {
        [
            "--config".as_ref(),
            config.as_os_str(),
            "import".as_ref(),
            "--partner".as_ref(),
            "partner-a".as_ref(),
            "--errors".as_ref(),
            errors.as_os_str(),
            file.as_os_str(),
        ]
    }
    let (code, stderr) = run_cli(&dir, "first", &import(&config, &errors, &reports));
    assert_eq!(code, 1, "some lines rejected: {stderr}");
    assert!(stderr.contains("reports.csv:3: ") && stderr.contains("ftp"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no terminal escapes in a file: {stderr:?}");
    let written = std::fs::read_to_string(&errors).unwrap();
    let rejected: Vec<serde_json::Value> = written.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rejected.len(), 1, "{written}");
    assert_eq!(rejected[0]["line"], 3);
    assert_eq!(rejected[0]["pointer"], "/items/0/url");
    assert_eq!(rejected[0]["input"], "R-2,ftp://videos.example/v/2");
    assert!(rejected[0]["message"].as_str().unwrap().contains("ftp"));

    // Fixed, the rejected line imports; the others were accepted the first time.
    let fixed = dir.join("fixed.csv");
    let line = rejected[0]["input"].as_str().unwrap().replace("ftp://", "https://");
    std::fs::write(&fixed, format!("partner_reference,url\n{line}\n")).unwrap();
    let (code, stderr) = run_cli(&dir, "fixed", &import(&config, &errors, &fixed));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read_to_string(&errors).unwrap(), "", "nothing rejected");

    // The hash-list import the same way.
    let hashes = dir.join("hashes.csv");
    std::fs::write(
        &hashes,
        format!(
            "algorithm,value,category\nsha256,{},A\nmd5,{},Z\n",
            "ab".repeat(32),
            "ef".repeat(16)
        ),
    )
    .unwrap();
    let hash_errors = dir.join("rejected-hashes.ndjson");
    let (code, stderr) = run_cli(
        &dir,
        "hashes",
        &[
            "--config".as_ref(),
            config.as_os_str(),
            "hashes".as_ref(),
            "import".as_ref(),
            "--list".as_ref(),
            "iwf".as_ref(),
            "--source".as_ref(),
            "IWF".as_ref(),
            "--map".as_ref(),
            "A=csam".as_ref(),
            "--errors".as_ref(),
            hash_errors.as_os_str(),
            hashes.as_os_str(),
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("hashes.csv:3: ") && stderr.contains("\"Z\""),
        "{stderr}"
    );
    let written = std::fs::read_to_string(&hash_errors).unwrap();
    let rejected: Vec<serde_json::Value> = written.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rejected.len(), 1, "{written}");
    assert_eq!(rejected[0]["line"], 3);
    assert_eq!(rejected[0]["input"], format!("md5,{},Z", "ef".repeat(16)));

    let missing = dir.join("missing.toml");
    let (code, stderr) = run_cli(
        &dir,
        "unconfigured",
        &[
            "--config".as_ref(),
            missing.as_os_str(),
            "import".as_ref(),
            "--partner".as_ref(),
            "partner-a".as_ref(),
            reports.as_os_str(),
        ],
    );
    assert_eq!(code, 2, "a configuration error is not a rejected line: {stderr}");
}

/// Each kind of schema error reads as its own sentence, and the same sentence whether the
/// report came through the API or through an import.
#[tokio::test]
async fn each_kind_of_schema_error_reads_the_same_sentence_in_the_api_and_the_import() {
    let system = TestSystem::start(TestOptions::default()).await.unwrap();
    let item = json!({"url": "https://videos.example/v/1"});
    let mut classes: Vec<&str> = ContentClass::ALL.iter().map(|class| class.as_str()).collect();
    classes.sort_unstable();
    let kinds = [
        (
            "type",
            json!({"partner_reference": 7, "items": [item]}),
            "/partner_reference",
            "must be a string, not a number".to_owned(),
        ),
        (
            "enumeration",
            json!({"partner_reference": "r", "items": [{"url": "https://videos.example/v/1", "claimed_category": "notaclass"}]}),
            "/items/0/claimed_category",
            format!("unknown content class \"notaclass\"; one of: {}", classes.join(", ")),
        ),
        (
            "pattern",
            json!({"partner_reference": "r", "items": [{"url": "https://videos.example/v/1", "hashes": [{"algorithm": "sha256", "value": "not hex"}]}]}),
            "/items/0/hashes/0/value",
            "a sha256 hash is 64 hexadecimal digits, got 7 characters".to_owned(),
        ),
        (
            "length",
            json!({"partner_reference": "r".repeat(201), "items": [item]}),
            "/partner_reference",
            "must be at most 200 characters long, not 201".to_owned(),
        ),
        (
            "required",
            json!({"partner_reference": "r"}),
            "/items",
            "is required, but missing".to_owned(),
        ),
        (
            "unknown property",
            json!({"partner_reference": "r", "items": [item], "priority": 1}),
            "/priority",
            "unknown property \"priority\"; known: items, partner_reference".to_owned(),
        ),
        (
            "array size",
            json!({"partner_reference": "r", "items": []}),
            "/items",
            "must hold at least one item".to_owned(),
        ),
    ];
    for (kind, body, pointer, sentence) in &kinds {
        let (status, answer) = system.post("/v1/reports", &system.partner_key, body).await;
        assert_eq!(status, 422, "{kind}: {answer}");
        assert_eq!(
            answer["errors"],
            json!([{"pointer": pointer, "message": sentence}]),
            "{kind}"
        );
    }

    let dir = std::env::temp_dir().join(format!("dijkwacht-sentences-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("dijkwacht.toml");
    std::fs::write(&config, format!("database_url = {:?}\n", system.database.url)).unwrap();
    let reports = dir.join("reports.ndjson");
    let lines: Vec<String> = kinds.iter().map(|(_, body, _, _)| body.to_string()).collect();
    std::fs::write(&reports, lines.join("\n") + "\n").unwrap();
    let errors = dir.join("rejected.ndjson");
    let (code, stderr) = run_cli(
        &dir,
        "import",
        &[
            "--config".as_ref(),
            config.as_os_str(),
            "import".as_ref(),
            "--partner".as_ref(),
            "partner-a".as_ref(),
            "--errors".as_ref(),
            errors.as_os_str(),
            reports.as_os_str(),
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    let written = std::fs::read_to_string(&errors).unwrap();
    let rejected: Vec<Value> = written.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rejected.len(), kinds.len(), "{written}");
    for ((kind, _, pointer, sentence), (line, found)) in kinds.iter().zip(rejected.iter().enumerate()) {
        assert_eq!(found["line"], line + 1, "{kind}");
        assert_eq!(
            (&found["pointer"], &found["message"]),
            (&json!(pointer), &json!(sentence)),
            "{kind}"
        );
        assert!(
            stderr.contains(&format!("reports.ndjson:{}: {sentence}", line + 1)),
            "{kind}: {stderr}"
        );
    }
}

#[test]
fn check_config_accepts_the_demo_and_refuses_an_unknown_key_by_name() {
    let check = |extra: &[(&str, &str)]| {
        let mut command = std::process::Command::new(dijkwacht_tests::deployment::dijkwacht());
        command.current_dir(repository("")).args([
            "--config",
            "infra/demo/dijkwacht.toml",
            "run",
            "--only",
            "dispatch",
            "--check-config",
        ]);
        for (key, value) in extra {
            command.env(key, value);
        }
        command.output().unwrap()
    };
    let valid = check(&[]);
    assert!(valid.status.success(), "{}", String::from_utf8_lossy(&valid.stderr));
    assert_eq!(
        String::from_utf8_lossy(&valid.stdout),
        "configuration valid for run --only dispatch\n"
    );
    let typo = check(&[("DIJKWACHT_DISPATCH__SMTP_PORTT", "25")]);
    assert_eq!(typo.status.code(), Some(2));
    let said = String::from_utf8_lossy(&typo.stderr);
    assert!(
        said.contains("smtp_portt") && said.contains("did you mean `dispatch.smtp_port`?"),
        "{said}"
    );
}
