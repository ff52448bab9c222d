//! `dijkwacht`: one binary for every role. Configuration and telemetry here; the work is in
//! the libraries.

use anyhow::{bail, Context};
use chrono::TimeDelta;
use clap::{Parser, Subcommand};
use dijkwacht::{app, schemas, Broker};
use dijkwacht_runtime::config::Settings;
use dijkwacht_runtime::reference::ReferenceData;
use dijkwacht_runtime::{db, telemetry, EventStore, SharedClock, SystemClock};
use dijkwacht_simulator::Simulator;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    version,
    about = "dijkwacht: reports of illegal online content in, complete DSA notices out, removal verified"
)]
struct Cli {
    /// TOML configuration file; environment variables DIJKWACHT_* override it.
    #[arg(long, global = true, env = "DIJKWACHT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process: HTTP intake, outbox relay, every stage, projection.
    Run,
    /// Applies the database migrations and exits.
    Migrate,
    /// Recomputes every case's hash chain; exits 1 if any event was altered.
    Verify,
    /// Loads reference data (partners, keys, platforms, hash lists) from a TOML file.
    LoadReference { file: PathBuf },
    /// Prints the SHA-256 digest of an API key, as reference files store it.
    HashKey { key: String },
    /// Writes the JSON Schemas to a directory, or with --check fails if they are stale.
    Schemas {
        #[arg(long, default_value = "schemas")]
        dir: PathBuf,
        #[arg(long)]
        check: bool,
    },
    /// Runs a simulated platform that receives notices and serves content URLs.
    SimulatePlatform {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        /// Seconds from a notice to the removal of the content it names.
        #[arg(long, default_value_t = 3)]
        removal_delay_secs: i64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let cli = Cli::parse();
    let settings = || Settings::load(cli.config.as_deref());
    let clock: SharedClock = Arc::new(SystemClock);
    match cli.command {
        Command::Run => run(&settings()?, clock).await,
        Command::Migrate => {
            let pool = db::connect(settings()?.database_url(), 2).await?;
            db::migrate(&pool).await?;
            println!("database migrated");
            Ok(())
        }
        Command::Verify => {
            let pool = db::connect(settings()?.database_url(), 2).await?;
            let breaks = EventStore::new(pool).verify().await?;
            if breaks.is_empty() {
                println!("every hash chain verifies");
                return Ok(());
            }
            for b in &breaks {
                println!("case {} version {}: {}", b.case_id, b.version, b.reason);
            }
            bail!("{} event(s) fail verification", breaks.len())
        }
        Command::LoadReference { file } => {
            let pool = db::connect(settings()?.database_url(), 2).await?;
            db::migrate(&pool).await?;
            ReferenceData::from_file(&file)?.load_into(&pool, clock.now()).await?;
            println!("loaded {}", file.display());
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
                    bail!(
                        "stale schemas in {}: {} (run `make schemas`)",
                        dir.display(),
                        stale.join(", ")
                    );
                }
                println!("schemas are up to date");
            } else {
                schemas::write(&dir).with_context(|| format!("writing schemas to {}", dir.display()))?;
                println!("schemas written to {}", dir.display());
            }
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

fn hex_digest(key: &str) -> String {
    dijkwacht_runtime::auth::key_digest(key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
    if let Some((addr, _)) = &running.simulator {
        println!("  platform simulator   http://{addr}  (GET /notices lists what it received)");
    }
    if settings.demo {
        println!("  demo partner key     demo-partner-key");
        println!("  demo regulator token demo-regulator-token");
        println!("  (these keys exist only in the demo configuration; see README.md for curl examples)");
    }
    running.run_until_signal().await;
    Ok(())
}
