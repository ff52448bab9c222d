//! `dijkwacht`: one binary for every role. Configuration and telemetry here; the work is in
//! the libraries.

use anyhow::{bail, Context};
use chrono::TimeDelta;
use clap::{Parser, Subcommand};
use dijkwacht::import::Findings;
use dijkwacht::parts::load_settings;
use dijkwacht::{app, import, schemas, Broker};
use dijkwacht_classify::lists::{self, ListSettings};
use dijkwacht_domain::ContentClass;
use dijkwacht_projection::dossier::{self, Breach, DossierRequest};
use dijkwacht_projection::rebuild;
use dijkwacht_projection::remit::PlatformInRemit;
use dijkwacht_projection::settings::RegulatorSettings;
use dijkwacht_runtime::checkpoint;
use dijkwacht_runtime::config::Settings;
use dijkwacht_runtime::reference::{self, ReferenceData};
use dijkwacht_runtime::signing::SigningKey;
use dijkwacht_runtime::{auth, db, telemetry, EventStore, SharedClock, SystemClock};
use dijkwacht_simulator::Simulator;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// The pipeline allocates and frees many small objects on every thread (JSON, events,
/// messages, rows): glibc's allocator took about 30 % of the process under load, much of it
/// consolidating free lists and waiting on its arenas' locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "dijkwacht: reports of illegal online content in, complete DSA notices out, removal verified"
)]
struct Cli {
    /// TOML configuration file; environment variables DIJKWACHT_* override it.
    #[arg(long, global = true, env = "DIJKWACHT_CONFIG")]
    config: Option<PathBuf>,
    /// Loads and checks the configuration the command would run with (every part's section,
    /// the files it names), says what is wrong or that it is valid, and exits: nothing is
    /// connected to or started.
    #[arg(long, global = true)]
    check_config: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the parts of dijkwacht: all of them (HTTP intake, outbox relay, every stage,
    /// projection) unless `--only` names some.
    Run {
        /// Comma-separated parts: intake (the HTTP API), relay, classify, notices, dispatch,
        /// followup, projection, hash-check.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Applies the database migrations and exits.
    Migrate,
    /// Recomputes every case's hash chain and checks the signed checkpoints of the whole
    /// log (the latest against the events as they are); exits 1 if anything was altered or
    /// removed.
    Verify,
    /// Takes a signed checkpoint of the whole event log now (the projection takes one every
    /// `[regulator] checkpoint_every_secs`).
    Checkpoint,
    /// Rebuilds what is derived from the events: read models (case summaries, notice facts,
    /// analysts' prior decisions), every case's wake-up and operator-queue entry. Online: the
    /// API answers from the old read models until the new ones are swapped in.
    Rebuild,
    /// Loads reference data (partners, keys, platforms, hash lists) from a TOML file.
    LoadReference { file: PathBuf },
    /// Prints the SHA-256 digest of an API key, as reference files store it.
    HashKey { key: String },
    /// Imports reports for a partner from a CSV or NDJSON file; safe to run again. Exit
    /// code 0: every line accepted; 1: some lines rejected (each named on stderr); 2: the
    /// import could not run (usage, configuration, file, database).
    Import {
        #[arg(long)]
        partner: String,
        /// Also writes the rejected lines to this file as NDJSON: line, pointer, message and
        /// the line as it was, to fix and import again.
        #[arg(long)]
        errors: Option<PathBuf>,
        file: PathBuf,
    },
    /// Hash lists: import entries, delist one (which retracts the cases it classified).
    Hashes {
        #[command(subcommand)]
        command: HashesCommand,
    },
    /// Partner accounts.
    Partner {
        #[command(subcommand)]
        command: PartnerCommand,
    },
    /// API keys: issue (shown once) and revoke. Rotate by issuing a new key, then revoking the old.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Writes the JSON Schemas to a directory, or with --check fails if they are stale.
    Schemas {
        #[arg(long, default_value = "schemas")]
        dir: PathBuf,
        #[arg(long)]
        check: bool,
    },
    /// Signing keys of dossiers: generate one (rotate by generating another and pointing
    /// `[regulator] signing_key` at it; what the old key signed still verifies).
    SigningKey {
        #[command(subcommand)]
        command: SigningKeyCommand,
    },
    /// Reports: the trusted flagger's yearly report (DSA Art. 22(3)).
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Exports for regulators.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// Verifies an exported dossier: every file against MANIFEST, MANIFEST against its
    /// signature and the key it names, and every event hash against the store. Exit code 1
    /// when anything fails.
    VerifyExport { dir: PathBuf },
    /// Runs a simulated platform that receives notices and serves content URLs.
    SimulatePlatform {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        /// Seconds from a notice to the removal of the content it names.
        #[arg(long, default_value_t = 3)]
        removal_delay_secs: i64,
    },
}

#[derive(Subcommand)]
enum SigningKeyCommand {
    /// Writes a new Ed25519 private key (PKCS#8 PEM, owner-readable only) to FILE and prints
    /// its id and public key; never overwrites a file.
    Generate { file: PathBuf },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// The notices of a year by hosting provider, type of content and action taken, with
    /// the independence procedures: `annual-YEAR.json` and `annual-YEAR.html` in --out.
    /// Counts only, no location or person.
    Annual {
        #[arg(long)]
        year: i32,
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum ExportCommand {
    /// An enforcement dossier on a platform: a signed folder, and a .tar of it, in --out.
    Dossier {
        #[arg(long)]
        platform: String,
        /// RFC 3339; notices delivered from then on.
        #[arg(long)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// RFC 3339; notices delivered before then.
        #[arg(long)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// One class of content; every class when absent.
        #[arg(long)]
        class: Option<String>,
        /// An alleged breach: dsa_16_4, dsa_16_5, dsa_16_6 or dsa_22_1; repeat for more.
        #[arg(long = "breach", value_parser = parse_breach, required = true)]
        breaches: Vec<Breach>,
        /// The measure requested of the regulator; a standard request when absent.
        #[arg(long)]
        measure: Option<String>,
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

fn parse_breach(name: &str) -> Result<Breach, String> {
    Breach::parse(name).ok_or_else(|| {
        let known: Vec<&str> = Breach::ALL.iter().map(|breach| breach.name()).collect();
        format!("{name:?} is not a breach; the breaches are {}", known.join(", "))
    })
}

#[derive(Subcommand)]
enum PartnerCommand {
    /// Adds a partner, or renames an existing one.
    Add {
        id: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum HashesCommand {
    /// Imports entries from CSV (algorithm,value,category[,quality]) or NDJSON; safe to rerun.
    Import {
        #[arg(long)]
        list: String,
        /// Where the list comes from (e.g. "IWF", "NCMEC"); required for a new list.
        #[arg(long)]
        source: Option<String>,
        /// Largest PDQ Hamming distance that matches (31 for a new list; kept otherwise).
        #[arg(long)]
        pdq_max_distance: Option<u32>,
        /// Maps a category of the source to one of our classes: --map A=csam --map B=csam.
        #[arg(long = "map", value_parser = parse_mapping)]
        mappings: Vec<(String, ContentClass)>,
        /// Also writes the rejected lines to this file as NDJSON (as `import --errors`).
        #[arg(long)]
        errors: Option<PathBuf>,
        file: PathBuf,
    },
    /// Delists an entry (a false positive) and retracts every open case classified on it.
    Delist {
        #[arg(long)]
        list: String,
        #[arg(long)]
        reason: String,
        value: String,
    },
}

fn parse_mapping(text: &str) -> Result<(String, ContentClass), String> {
    let (category, class) = text.split_once('=').ok_or("expected SOURCE_CATEGORY=class")?;
    let class = ContentClass::parse(class.trim()).ok_or_else(|| format!("{class:?} is not a class"))?;
    Ok((category.trim().to_owned(), class))
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Issues a key for a partner or a regulator and prints it once.
    Issue {
        #[arg(long, conflicts_with = "regulator", required_unless_present = "regulator")]
        partner: Option<String>,
        #[arg(long)]
        regulator: Option<String>,
        /// Comma-separated: reports:write, reports:read, compliance:read.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        #[arg(long)]
        label: Option<String>,
    },
    /// Revokes a key by its id (the part after `dkw_`, before the second `_`).
    Revoke { key_id: String },
}

/// Exit code 0: done; 1: the command ran and found problems in what it was given (rejected
/// lines, events failing verification, stale schemas); 2: it could not run (usage — clap's
/// own —, configuration, files, the database).
#[tokio::main]
async fn main() -> ExitCode {
    let _crash_points = dijkwacht_runtime::crash::setup();
    let cli = Cli::parse();
    // A configuration that does not load is reported by the command that needs it.
    let settings = load_settings(cli.config.as_deref()).map(|settings| settings.telemetry());
    let telemetry = match telemetry::init(&settings.unwrap_or_default()) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("Error: {error}");
            return ExitCode::from(2);
        }
    };
    let outcome = execute(cli).await;
    telemetry.shutdown();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            if error.is::<Findings>() {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

async fn execute(cli: Cli) -> anyhow::Result<()> {
    let settings = || load_settings(cli.config.as_deref());
    let clock: SharedClock = Arc::new(SystemClock);
    match cli.command {
        Command::Run { only } => {
            let mut settings = settings()?;
            if !only.is_empty() {
                settings.parts = Some(only);
            }
            if cli.check_config {
                let checked = dijkwacht::check::check(&settings)?;
                let parts: Vec<&str> = checked.parts.iter().map(|part| part.name()).collect();
                println!("configuration valid for run --only {}", parts.join(","));
                return Ok(());
            }
            run(&settings, clock).await
        }
        _ if cli.check_config => {
            settings()?;
            println!("configuration valid");
            Ok(())
        }
        Command::Migrate => {
            let pool = db::connect(settings()?.database_url(), 2).await?;
            db::migrate(&pool).await?;
            println!("database migrated");
            Ok(())
        }
        Command::Verify => {
            let pool = db::connect(settings()?.database_url(), 2).await?;
            let breaks = EventStore::new(pool.clone()).verify().await?;
            for b in &breaks {
                println!("case {} version {}: {}", b.case_id, b.version, b.reason);
            }
            let problems = checkpoint::verify(&pool).await?;
            for problem in &problems {
                println!("{problem}");
            }
            if breaks.is_empty() && problems.is_empty() {
                let anchored = match checkpoint::latest(&pool).await? {
                    Some(latest) => format!(
                        "; the log adds up to checkpoint {} ({} streams at position {})",
                        latest.sequence, latest.streams, latest.position
                    ),
                    None => "; no checkpoint has been taken yet".into(),
                };
                println!("every hash chain verifies{anchored}");
                return Ok(());
            }
            Err(Findings(format!(
                "{} event(s) and {} checkpoint problem(s) fail verification",
                breaks.len(),
                problems.len()
            ))
            .into())
        }
        Command::Checkpoint => {
            let settings = settings()?;
            let key = RegulatorSettings::from_settings(&settings)?.key()?.context(
                "no signing key: set [regulator] signing_key (`dijkwacht signing-key generate FILE` makes one)",
            )?;
            let pool = db::connect(settings.database_url(), 2).await?;
            db::migrate(&pool).await?;
            match checkpoint::take(&pool, &key, clock.now()).await? {
                Some(taken) => println!(
                    "checkpoint {}: {} streams at position {}, root {}, signed by key {}",
                    taken.sequence, taken.streams, taken.position, taken.root, taken.key_id
                ),
                None => {
                    println!("no checkpoint taken: the log has not moved since the last one, or one is being taken")
                }
            }
            Ok(())
        }
        Command::Rebuild => {
            let settings = settings()?;
            let pool = db::connect(settings.database_url(), 2).await?;
            db::migrate(&pool).await?;
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} cases, {per_sec}, {eta} left")
                    .expect("the progress template parses"),
            );
            let rebuilt = rebuild::rebuild_with(&store(pool, &settings), clock.now(), rebuild::CHUNK, |progress| {
                bar.set_length(progress.of);
                bar.set_position(progress.cases);
            })
            .await?;
            bar.finish_and_clear();
            println!(
                "read models and wake-ups rebuilt from {} case(s) and swapped in ({} changed meanwhile, caught up)",
                rebuilt.cases, rebuilt.caught_up
            );
            if rebuilt.unreadable > 0 {
                return Err(Findings(format!(
                    "{} case(s) could not be read; `dijkwacht verify` lists them",
                    rebuilt.unreadable
                ))
                .into());
            }
            Ok(())
        }
        Command::LoadReference { file } => {
            let pool = db::connect(settings()?.database_url(), 2).await?;
            db::migrate(&pool).await?;
            ReferenceData::from_file(&file)?.load_into(&pool, clock.now()).await?;
            println!("loaded {}", file.display());
            Ok(())
        }
        Command::Import { partner, errors, file } => {
            let pool = db::connect(settings()?.database_url(), 4).await?;
            db::migrate(&pool).await?;
            let settings = settings()?;
            import::run(store(pool, &settings), &partner, &file, errors.as_deref(), clock).await
        }
        Command::Hashes { command } => {
            let pool = db::connect(settings()?.database_url(), 4).await?;
            db::migrate(&pool).await?;
            match command {
                HashesCommand::Import {
                    list,
                    source,
                    pdq_max_distance,
                    mappings,
                    errors,
                    file,
                } => {
                    let settings = ListSettings {
                        name: list,
                        source,
                        pdq_max_distance,
                        categories: mappings.into_iter().collect(),
                    };
                    import::hashes(&pool, &settings, &file, errors.as_deref(), clock).await
                }
                HashesCommand::Delist { list, reason, value } => {
                    let store = store(pool, &settings()?);
                    let retracted = lists::delist(&store, &list, &value, &reason, clock.now()).await?;
                    println!("delisted {value} from {list}; {} case(s) retracted", retracted.len());
                    for case_id in retracted {
                        println!("  retracted {case_id}");
                    }
                    for blocked in dijkwacht_hashcheck::record::blocked_on(store.pool(), &list, &value).await? {
                        println!(
                            "  hosting provider {} blocked on it {} time(s), {} to {}",
                            blocked.provider_id, blocked.hits, blocked.first, blocked.last
                        );
                    }
                    Ok(())
                }
            }
        }
        Command::Partner {
            command: PartnerCommand::Add { id, name },
        } => {
            let pool = db::connect(settings()?.database_url(), 2).await?;
            db::migrate(&pool).await?;
            reference::save_partner(&mut *pool.acquire().await?, &id, &name).await?;
            println!("partner {id} saved");
            Ok(())
        }
        Command::Key { command } => {
            let pool = db::connect(settings()?.database_url(), 2).await?;
            db::migrate(&pool).await?;
            match command {
                KeyCommand::Issue {
                    partner,
                    regulator,
                    scopes,
                    label,
                } => {
                    let (kind, id) = match (partner, regulator) {
                        (Some(partner), _) => ("partner", partner),
                        (None, Some(regulator)) => ("regulator", regulator),
                        (None, None) => bail!("name --partner or --regulator"),
                    };
                    let issued = auth::issue_key(&pool, kind, &id, &scopes, label.as_deref()).await?;
                    println!("key id {} for {kind} {id}; the key, shown only now:", issued.key_id);
                    println!("{}", issued.key);
                }
                KeyCommand::Revoke { key_id } => {
                    if !auth::revoke_key(&pool, &key_id).await? {
                        bail!("no active key has the id {key_id}");
                    }
                    println!("key {key_id} revoked");
                }
            }
            Ok(())
        }
        Command::HashKey { key } => {
            println!("{}", hex_digest(&key));
            Ok(())
        }
        Command::Schemas { dir, check } => {
            if check {
                let stale = schemas::stale(&dir);
                if !stale.is_empty() {
                    return Err(Findings(format!(
                        "stale schemas in {}: {} (run `make schemas`)",
                        dir.display(),
                        stale.join(", ")
                    ))
                    .into());
                }
                println!("schemas are up to date");
            } else {
                schemas::write(&dir).with_context(|| format!("writing schemas to {}", dir.display()))?;
                println!("schemas written to {}", dir.display());
            }
            Ok(())
        }
        Command::SigningKey {
            command: SigningKeyCommand::Generate { file },
        } => {
            let key = SigningKey::generate(&file)?;
            println!(
                "signing key {} written to {}; its public key:",
                key.id(),
                file.display()
            );
            print!("{}", key.public_pem());
            Ok(())
        }
        Command::Export {
            command:
                ExportCommand::Dossier {
                    platform,
                    from,
                    to,
                    class,
                    breaches,
                    measure,
                    out,
                },
        } => {
            let settings = settings()?;
            let section = RegulatorSettings::from_settings(&settings)?;
            let key = section.key()?.context(
                "no signing key: set [regulator] signing_key (`dijkwacht signing-key generate FILE` makes one)",
            )?;
            if let Some(class) = class.as_deref().filter(|class| ContentClass::parse(class).is_none()) {
                bail!("--class: {class:?} is not a class of content");
            }
            let pool = db::connect(settings.database_url(), 4).await?;
            db::migrate(&pool).await?;
            let provider = PlatformInRemit::load(&pool, &platform)
                .await?
                .with_context(|| format!("--platform: no platform {platform:?} is registered"))?;
            let request = DossierRequest {
                platform_id: platform,
                from,
                to,
                class: class.clone(),
                breaches,
                measure,
            };
            let context = dossier::Context {
                applicant: &settings.notice_policy(),
                coordinator: section.coordinator(&provider.country),
                provider,
                classes: class.map(|class| vec![class]),
                key: &key,
                now: clock.now(),
            };
            std::fs::create_dir_all(&out)?;
            let built = dossier::build(&pool, &request, &context, uuid::Uuid::now_v7(), &out).await?;
            println!(
                "dossier {} on {} notice(s), signed by key {}:\n  {}\n  {}",
                built.dossier_id,
                built.notices,
                key.id(),
                built.folder.display(),
                built.tar.display()
            );
            Ok(())
        }
        Command::Report {
            command: ReportCommand::Annual { year, out },
        } => {
            let settings = settings()?;
            let section = RegulatorSettings::from_settings(&settings)?;
            let pool = db::connect(settings.database_url(), 2).await?;
            db::migrate(&pool).await?;
            let report = dijkwacht_projection::annual::report(
                &pool,
                year,
                &settings.notice_policy(),
                &section.independence_procedures,
                clock.now(),
            )
            .await?;
            std::fs::create_dir_all(&out)?;
            let json = out.join(format!("annual-{year}.json"));
            let html = out.join(format!("annual-{year}.html"));
            std::fs::write(&json, serde_json::to_vec_pretty(&report)?)?;
            std::fs::write(&html, dijkwacht_projection::annual::html(&report)?)?;
            println!(
                "{} notice(s) in {year}: {} and {}",
                report.notices,
                json.display(),
                html.display()
            );
            Ok(())
        }
        Command::VerifyExport { dir } => {
            let pool = db::connect(settings()?.database_url(), 2).await?;
            let found = dossier::verify::verify(&dir, Some(&pool)).await?;
            if !found.problems.is_empty() {
                for problem in &found.problems {
                    println!("{problem}");
                }
                return Err(Findings(format!("{} problem(s) in {}", found.problems.len(), dir.display())).into());
            }
            println!(
                "{} verifies: every file matches MANIFEST, MANIFEST its signature by one of our keys, \
                 and {} event(s) match the store",
                dir.display(),
                found.events_checked
            );
            Ok(())
        }
        Command::SimulatePlatform {
            listen,
            removal_delay_secs,
        } => {
            let simulator = Simulator::new(clock, TimeDelta::seconds(removal_delay_secs));
            let listener = tokio::net::TcpListener::bind(listen).await?;
            println!("platform simulator on http://{listen} (notices: POST/GET /notices, content: /content/...)");
            axum::serve(listener, simulator.router()).await?;
            Ok(())
        }
    }
}

/// The event store as this deployment's settings shape it.
fn store(pool: sqlx::PgPool, settings: &Settings) -> EventStore {
    EventStore::new(pool).with_waits(settings.wait_limits())
}

fn hex_digest(key: &str) -> String {
    auth::key_digest(key).iter().map(|b| format!("{b:02x}")).collect()
}

async fn run(settings: &Settings, clock: SharedClock) -> anyhow::Result<()> {
    let broker = Broker::from_settings(settings)?;
    let running = app::start(settings, clock, broker).await?;
    let broker = match &running.broker {
        Broker::Embedded(b) => format!("embedded Kafka (librdkafka mock cluster) at {}", b.bootstrap_servers()),
        Broker::External(servers) => format!("Kafka at {servers}"),
    };
    println!("dijkwacht is running");
    println!("  HTTP API             http://{}", running.http_addr);
    println!("  broker               {broker}");
    if let Some(simulator) = &running.simulator {
        println!(
            "  platform simulator   http://{}  (GET /notices and GET /mail list what it received)",
            simulator.http_addr
        );
        if let Some(smtp) = simulator.smtp_addr {
            println!("  simulated mail       smtp://{smtp}");
        }
    }
    if settings.demo {
        println!("  demo partner key     demo-partner-key");
        println!("  demo regulator token demo-regulator-token");
        println!(
            "  dashboard            http://{}/dashboard  (sign in with a regulator's, operator's or analyst's key)",
            running.http_addr
        );
        println!("  demo analyst keys    demo-analyst-1-key, demo-analyst-2-key");
        println!("  demo operator key    demo-operator-key  (GET /v1/operator/queue)");
        println!("  demo hosting key     demo-hosting-key   (POST /v1/hash-check)");
        println!("  demo police key      demo-police-key    (GET /v1/police/referrals)");
        println!("  public report form   http://{}/report", running.http_addr);
        println!("  (these keys exist only in the demo configuration; see README.md for curl examples)");
    }
    running.run_until_signal().await;
    Ok(())
}
