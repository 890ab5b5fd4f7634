//! `switchboard ctl` and `switchboard desktop`: a small gRPC client for trying Switchboard by
//! hand and for scripts. Like `api/`, it speaks protobuf, as a client of the public API.
//!
//! # Layout
//! - `lib.rs` — the commands as clap parses them, where the key comes from, [`ctl`].
//! - `ctl.rs` — each `ctl` command: the call, then its reply as a table or as JSON.
//! - `view.rs` — the tables people read (agents, queues, keys, waiting, figures, one interaction).
//! - `calendar.rs` — calendars and a queue's openings for people; calendar files.
//! - `watch.rs` — `ctl watch`: a board redrawn in place, a log of rows, or NDJSON.
//! - `table.rs` — aligned tables (display width, not bytes; no control characters get through).
//! - `human.rs` — local date-times, durations, percentages, `-` for what is unknown.
//! - `json.rs` — `--output json`: the proto's canonical JSON mapping, off the descriptor set.
//! - `desktop.rs` — `switchboard desktop`.

pub mod calendar;
mod ctl;
mod desktop;
mod explain;
pub mod human;
pub mod json;
pub mod table;
pub mod view;
pub mod watch;

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

pub use ctl::{ctl, ctl_into};
pub use desktop::desktop;

/// How `ctl` prints what the daemon answers.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Output {
    /// Aligned tables for people: local date-times, durations, `-` for what is unknown.
    #[default]
    Table,
    /// The proto's JSON mapping, for scripts; `watch` writes one object per line.
    Json,
}

/// What `ctl explain` explains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Explain {
    Interaction,
    Agent,
}

#[derive(Subcommand, Debug)]
pub enum Ctl {
    /// Create or update an agent.
    PutAgent {
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "")]
        name: String,
        /// skill=level, repeatable.
        #[arg(long = "skill")]
        skills: Vec<String>,
        #[arg(long, default_value = "")]
        token: String,
    },
    /// Create or update a queue.
    PutQueue {
        #[arg(long)]
        name: String,
        /// skill=min_level, repeatable.
        #[arg(long = "skill")]
        skills: Vec<String>,
        #[arg(long, default_value_t = 0)]
        priority: i32,
        #[arg(long, default_value_t = 0)]
        wrap_up_secs: u32,
        /// The calendar (opening hours) it keeps; none: always open.
        #[arg(long, default_value = "")]
        calendar: String,
        /// While closed: CHANNEL=hold|refuse|overflow:QUEUE (CHANNEL voice, chat, sms, email or
        /// all), repeatable. Without: voice and chat refuse, sms and email hold.
        #[arg(long = "closed")]
        closed: Vec<String>,
    },
    /// Enqueue an interaction, as a channel adapter would.
    Create {
        #[arg(long)]
        queue: String,
        /// voice | chat | sms | email
        #[arg(long, default_value = "chat")]
        channel: String,
        #[arg(long)]
        customer: String,
        #[arg(long, default_value = "")]
        subject: String,
        #[arg(long, default_value = "")]
        body: String,
    },
    /// Send a customer message into an interaction.
    Say {
        #[arg(long)]
        interaction: String,
        body: String,
    },
    /// Show one interaction with its thread.
    Show { interaction: String },
    /// Why routing did what it did: `explain interaction ID` (its decisions, and what holds it
    /// back while it waits) or `explain agent ID` (why the agent gets work or not).
    Explain {
        #[arg(value_enum)]
        what: Explain,
        id: String,
    },
    /// Waiting interactions, best first.
    Waiting {
        #[arg(long, default_value = "")]
        queue: String,
    },
    /// Move a waiting interaction to another queue (supervisor), keeping its age.
    Move {
        interaction: String,
        /// The queue to move it to; without it, it stays where it is (with --clear-exclusions).
        #[arg(long, default_value = "")]
        queue: String,
        /// Let the agents who rejected or missed it (and the one who transferred it) be offered it again.
        #[arg(long)]
        clear_exclusions: bool,
    },
    /// Agents and their presence.
    Agents,
    /// Queues and their routing settings (and open / closed, for those with a calendar).
    Queues,
    /// When a queue is open: its calendar's next openings, in the calendar's time zone and yours.
    Calendar {
        #[arg(long)]
        queue: String,
        /// How many days ahead (at most 31).
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// Start at this date (midnight here) or RFC 3339 time instead of now, e.g. to check holidays.
        #[arg(long)]
        from: Option<String>,
    },
    /// Calendars (opening hours) as configured.
    Calendars,
    /// Create or replace a calendar from a file: TOML like a [[calendars]] entry of the config,
    /// or the API's JSON if the name ends in .json.
    PutCalendar { file: PathBuf },
    /// Queue figures, then live updates (Ctrl-C to stop).
    Watch {
        #[arg(long = "queue")]
        queues: Vec<String>,
    },
    /// API keys: create (the secret is shown once), list, revoke.
    #[command(subcommand)]
    Keys(Keys),
    /// Right to erasure: the contact in the CRM store and every copy Switchboard keeps of it
    /// (open interactions of the contact end). Cannot be undone.
    Erase {
        /// The contact's id in the CRM store.
        contact: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum Keys {
    /// Create a key on the daemon and print its secret (only now; the daemon keeps a hash).
    Create {
        #[arg(long)]
        name: String,
        /// agent | supervisor | admin | channel | telephony | crm
        #[arg(long)]
        role: String,
        /// Supervisor keys: a queue it is limited to (repeatable; none = all queues).
        #[arg(long = "queue")]
        queues: Vec<String>,
        /// Agent keys: the agent it acts as.
        #[arg(long, default_value = "")]
        agent: String,
    },
    /// The daemon's runtime keys (never their secrets).
    List,
    /// Stop a key on every instance (within auth.cache_secs).
    Revoke { id: String },
    /// Print a fresh random key for the config file or SWITCHBOARD_ADMIN_KEY (nothing is sent).
    Generate,
}

/// Where `ctl` finds its key without `--key`: the file `scripts/run.sh` writes for the local operator.
pub fn default_key_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("switchboard").join("admin.key"))
}

/// The key to send: `--key` / SWITCHBOARD_API_KEY, else the key file if there is one.
pub fn resolve_key(key: Option<String>, key_file: Option<PathBuf>) -> anyhow::Result<Option<String>> {
    if let Some(k) = key.filter(|k| !k.trim().is_empty()) {
        return Ok(Some(k.trim().to_string()));
    }
    let explicit = key_file.is_some();
    let Some(path) = key_file.or_else(default_key_file) else { return Ok(None) };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_string()).filter(|k| !k.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading the key file {}", path.display())),
    }
}

/// A random key of the runtime keys' strength, for config files and the environment.
pub fn generate_key() -> String {
    format!("sbc_{}", switchboard_auth::key::random_hex(32))
}
