//! `switchboard crm export`: the contacts that arrived in a time window, read from the built-in
//! CRM store's event log, as a CSV the simulator replays (`docs/operations.md`, "Exporting
//! arrivals").

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::config::{Config, ProcessEnv};
use switchboard_crm::CrmDb;
use switchboard_crm::db::{Arrival, Fate};

/// The simulator parses exactly this; a change here is a change of its input format.
pub const HEADER: &str = "at,interaction_id,channel,queue,priority,handle_secs,patience_secs,wrap_up_secs";

/// Write the contacts that arrived in a time window as CSV, for `switchboard simulate` to replay.
///
/// One row per interaction whose `created` event is in [--since, --until), ordered by that time,
/// then id, after the header line
/// `at,interaction_id,channel,queue,priority,handle_secs,patience_secs,wrap_up_secs`. `at`: RFC 3339
/// UTC with milliseconds. `handle_secs`: from the first `accepted` to the wrap-up (transfers
/// included) or, without one, to `completed`; empty if never answered. `patience_secs`: how long
/// the customer waited before leaving unanswered (hung up, left the chat, withdrawn by the
/// channel), empty otherwise. `wrap_up_secs`: from the wrap-up to `completed`, empty without one.
/// Contacts still open when the log is read keep both empty; those that ended otherwise — the
/// queue closed, a callback taken instead (the callback is a row of its own), withdrawn by a
/// supervisor or admin, erased — are left out, and counted on stderr.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// First arrival time to include (RFC 3339, e.g. 2026-12-07T08:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: DateTime<Utc>,
    /// End of the window, excluded; after --since.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: DateTime<Utc>,
    /// TOML config file, for its crm.database.
    #[arg(long, short, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Overrides crm.database (`sqlite://file.db` or `postgres://...`); never created.
    #[arg(long)]
    pub database: Option<String>,
    /// Write here (replaced only once the export is complete) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}; expected an RFC 3339 time such as 2026-12-07T08:00:00Z"))
}

/// Runs the export; what it read goes to stderr, the CSV only to stdout or `--out`.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    if args.until <= args.since {
        anyhow::bail!("--until: must be after --since ({} is not after {})", rfc3339(args.until), rfc3339(args.since));
    }
    let mut cfg = Config::load(args.config.as_deref(), &ProcessEnv)?;
    if let Some(d) = args.database {
        cfg.crm.database = d;
    }
    let mut opts = crate::server::crm_options(&cfg);
    opts.database_url = never_create(&opts.database_url);
    let db = CrmDb::open(opts).await.context("opening the CRM database (crm.database)")?;
    let (since, until) = (args.since.timestamp_millis(), args.until.timestamp_millis());
    let counts = match &args.out {
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let counts = write_csv(&db, since, until, &mut out).await?;
            out.flush()?;
            counts
        }
        Some(path) => export_to_file(&db, since, until, path).await?,
    };
    eprintln!(
        "exported {} contacts that arrived from {} until {}; left out {} that ended otherwise (queue closed, callback, withdrawn, erased)",
        counts.exported,
        rfc3339(args.since),
        rfc3339(args.until),
        counts.left_out
    );
    Ok(())
}

/// An export reads; pointed at the wrong SQLite path it must say so, not create an empty store.
fn never_create(url: &str) -> String {
    if url.starts_with("sqlite:") { url.replace("mode=rwc", "mode=rw") } else { url.to_string() }
}

/// Written beside the target and renamed over it, so a failed export leaves no half a file
/// that reads like a quiet day.
async fn export_to_file(
    db: &CrmDb,
    since: i64,
    until: i64,
    path: &Path,
) -> anyhow::Result<switchboard_crm::db::ArrivalCounts> {
    let name = path.file_name().with_context(|| format!("--out: {} is not a file name", path.display()))?;
    let mut partial = name.to_os_string();
    partial.push(format!(".partial-{}", std::process::id()));
    let partial = path.with_file_name(partial);
    let file = std::fs::File::create(&partial).with_context(|| format!("--out: creating {}", partial.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let written = async {
        let counts = write_csv(db, since, until, &mut out).await?;
        out.flush()?;
        out.get_ref().sync_all()?;
        std::fs::rename(&partial, path).with_context(|| format!("--out: writing {}", path.display()))?;
        anyhow::Ok(counts)
    }
    .await;
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

async fn write_csv(
    db: &CrmDb,
    since: i64,
    until: i64,
    out: &mut impl Write,
) -> anyhow::Result<switchboard_crm::db::ArrivalCounts> {
    writeln!(out, "{HEADER}")?;
    db.arrivals(since, until, |a| -> anyhow::Result<()> {
        writeln!(out, "{}", csv_row(&a))?;
        Ok(())
    })
    .await
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Milliseconds as seconds with three decimals, exactly (no float in between).
fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// RFC 4180 quoting, for a field that would otherwise split the row (ids and queue names are
/// not expected to need it).
fn field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")).into() } else { s.into() }
}

/// One row, without its line ending.
pub fn csv_row(a: &Arrival) -> String {
    let at = DateTime::<Utc>::from_timestamp_millis(a.at_ms).map(rfc3339).unwrap_or_default();
    let (handle, patience, wrap) = match a.fate {
        Fate::Handled { handle_ms, wrap_ms } => (secs(handle_ms), String::new(), wrap_ms.map(secs).unwrap_or_default()),
        Fate::Left { waited_ms } => (String::new(), secs(waited_ms), String::new()),
        Fate::Open => (String::new(), String::new(), String::new()),
    };
    format!(
        "{at},{},{},{},{},{handle},{patience},{wrap}",
        field(&a.interaction_id),
        a.channel,
        field(&a.queue),
        a.priority
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_model::Channel;

    fn arrival(fate: Fate) -> Arrival {
        Arrival {
            // 2026-12-07T09:00:01.250Z
            at_ms: 1_796_634_001_250,
            interaction_id: "ix-1".into(),
            channel: Channel::Voice,
            queue: "sales".into(),
            priority: 2,
            fate,
        }
    }

    #[test]
    fn rows_follow_the_simulators_format() {
        assert_eq!(HEADER.split(',').count(), 8);
        assert_eq!(
            csv_row(&arrival(Fate::Handled { handle_ms: 185_007, wrap_ms: None })),
            "2026-12-07T09:00:01.250Z,ix-1,voice,sales,2,185.007,,"
        );
        assert_eq!(
            csv_row(&arrival(Fate::Handled { handle_ms: 185_007, wrap_ms: Some(30_000) })),
            "2026-12-07T09:00:01.250Z,ix-1,voice,sales,2,185.007,,30.000"
        );
        assert_eq!(
            csv_row(&arrival(Fate::Left { waited_ms: 42_000 })),
            "2026-12-07T09:00:01.250Z,ix-1,voice,sales,2,,42.000,"
        );
        assert_eq!(csv_row(&arrival(Fate::Open)), "2026-12-07T09:00:01.250Z,ix-1,voice,sales,2,,,");
        assert_eq!(csv_row(&arrival(Fate::Handled { handle_ms: 5, wrap_ms: None })).split(',').nth(5), Some("0.005"));
        let odd = Arrival { queue: "a,\"b\"".into(), ..arrival(Fate::Open) };
        assert_eq!(csv_row(&odd), "2026-12-07T09:00:01.250Z,ix-1,voice,\"a,\"\"b\"\"\",2,,,");
    }

    #[test]
    fn times_are_rfc_3339_and_the_database_is_never_created() {
        assert_eq!(parse_time("2026-12-07T10:00:00+02:00").unwrap().timestamp_millis(), 1_796_630_400_000);
        assert!(parse_time("2026-12-07 08:00").unwrap_err().contains("RFC 3339"));
        assert_eq!(never_create("sqlite:///var/crm.db?mode=rwc"), "sqlite:///var/crm.db?mode=rw");
        assert_eq!(never_create("postgres://u@h/db?mode=rwc"), "postgres://u@h/db?mode=rwc");
    }
}
