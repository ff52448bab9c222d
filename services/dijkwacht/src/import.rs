//! `dijkwacht import` and `dijkwacht hashes import`: files, with a progress bar and
//! line-numbered errors.

use anyhow::{bail, Context};
use dijkwacht_classify::lists::ListSettings;
use dijkwacht_intake::import::{import, Format};
use dijkwacht_runtime::{EventStore, SharedClock};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

/// The command ran and found problems in its input (exit code 1); every other failure means
/// it could not run (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Findings(pub String);

/// Rejected lines by number: each error's JSON Pointer and message.
type Rejections = BTreeMap<u64, Vec<(String, String)>>;

/// Writes the rejected lines to `errors` as NDJSON, one object per error with the line
/// number, JSON Pointer, message and the line as it was in `input`, so the lines can be
/// fixed and imported again. An import without rejections leaves an empty file.
fn write_errors(errors: &Path, input: &Path, rejections: &Rejections) -> anyhow::Result<()> {
    let mut out = BufWriter::new(File::create(errors).with_context(|| format!("writing {}", errors.display()))?);
    if !rejections.is_empty() {
        let lines = BufReader::new(File::open(input).with_context(|| format!("reading {}", input.display()))?).lines();
        for (number, line) in (1u64..).zip(lines) {
            let line = line?;
            for (pointer, message) in rejections.get(&number).into_iter().flatten() {
                let entry = json!({"line": number, "pointer": pointer, "message": message, "input": line});
                writeln!(out, "{entry}")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// A file to import: its format, a reader, a progress bar over its size, its name.
struct Input {
    format: Format,
    reader: BufReader<File>,
    bar: ProgressBar,
    shown: String,
}

fn open(file: &Path) -> anyhow::Result<Input> {
    let format =
        Format::from_path(file).with_context(|| format!("{}: name a .csv, .ndjson or .jsonl file", file.display()))?;
    let opened = File::open(file).with_context(|| format!("reading {}", file.display()))?;
    let bar = ProgressBar::new(opened.metadata()?.len()).with_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {per_sec} eta {eta}")
            .expect("the progress template is valid"),
    );
    Ok(Input {
        format,
        reader: BufReader::new(opened),
        bar,
        shown: file.display().to_string(),
    })
}

/// `dijkwacht hashes import`.
pub async fn hashes(
    pool: &sqlx::PgPool,
    list: &ListSettings,
    file: &Path,
    errors: Option<&Path>,
    clock: SharedClock,
) -> anyhow::Result<()> {
    let mut rejections = Rejections::new();
    let Input {
        format,
        reader,
        bar,
        shown,
    } = open(file)?;
    let summary = dijkwacht_classify::lists::import(
        pool,
        list,
        reader,
        format == Format::Csv,
        clock.now(),
        |bytes| bar.set_position(bytes),
        |line, message| {
            report(&bar, format!("{shown}:{line}: {message}"));
            rejections.entry(line).or_default().push((String::new(), message));
        },
    )
    .await?;
    if let Some(errors) = errors {
        write_errors(errors, file, &rejections)?;
    }
    bar.finish_and_clear();
    println!(
        "{shown}: {} entries, {} added to {}, {} already listed, {} rejected",
        summary.lines, summary.added, list.name, summary.already_listed, summary.rejected
    );
    if summary.rejected > 0 {
        return Err(Findings(format!("{} line(s) rejected", summary.rejected)).into());
    }
    Ok(())
}

/// `dijkwacht import`.
pub async fn run(
    store: EventStore,
    partner: &str,
    file: &Path,
    errors: Option<&Path>,
    clock: SharedClock,
) -> anyhow::Result<()> {
    let mut rejections = Rejections::new();
    let known: Option<bool> = sqlx::query_scalar("SELECT true FROM partners WHERE partner_id = $1")
        .bind(partner)
        .fetch_optional(store.pool())
        .await?;
    if known.is_none() {
        bail!("no partner {partner}; add it with `dijkwacht partner add {partner} --name ...`");
    }
    let Input {
        format,
        reader,
        bar,
        shown,
    } = open(file)?;
    let summary = import(
        &store,
        partner,
        reader,
        format,
        || clock.now(),
        |bytes| bar.set_position(bytes),
        |rejected| {
            for error in rejected.errors {
                let at = if error.pointer.is_empty() {
                    String::new()
                } else {
                    format!(" at {}", error.pointer)
                };
                report(&bar, format!("{shown}:{}: {}{at}", rejected.line, error.message));
                rejections
                    .entry(rejected.line)
                    .or_default()
                    .push((error.pointer, error.message));
            }
        },
    )
    .await?;
    if let Some(errors) = errors {
        write_errors(errors, file, &rejections)?;
    }
    bar.finish_and_clear();
    println!(
        "{shown}: {} lines, {} reports accepted, {} already imported, {} rejected",
        summary.lines, summary.accepted, summary.already_imported, summary.rejected
    );
    if summary.rejected > 0 {
        return Err(Findings(format!(
            "{} line(s) rejected; fix them and run the import again",
            summary.rejected
        ))
        .into());
    }
    Ok(())
}

/// A rejected line's reason on stderr, whatever stderr is: above the progress bar on a
/// terminal, and as a plain line when the bar is not drawn (a file, a pipe), where
/// `println` on the bar would print nothing.
fn report(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}
