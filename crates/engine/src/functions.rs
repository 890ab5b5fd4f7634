//! The Lua operations, as one Redis Functions library: generated prelude (key builders,
//! constants) + `lib.lua` + each operation's body registered as a function, between `begin`
//! (clock, caches, the calling session taken off the arguments) and `end_call` (the pushes for
//! that session appended to the reply).
//!
//! Loaded once (`FUNCTION LOAD`) instead of run as scripts: a script re-creates every shared
//! function and key builder on each run, and Redis keeps a compiled copy of the whole library
//! per script. The library's name and its functions' names carry a digest of its source, so
//! daemons of different versions or key roots on one Redis each call their own.

use switchboard_model::{EventKind, MAX_PRIORITY, PushKind, routing};

use super::keys;

const LIB: &str = include_str!("lua/lib.lua");

/// Stands for the function-name prefix until the source's digest is known.
const PREFIX: &str = "@@SB_PREFIX@@";

/// A registered function's full name, as FCALL takes it.
#[derive(Debug, Clone)]
pub struct Function(pub String);

macro_rules! functions {
    ($($name:ident),* $(,)?) => {
        /// One function per routing operation, and the library that registers them.
        pub struct Functions {
            $(pub $name: Function,)*
            /// The `FUNCTION LOAD` source.
            pub library: String,
            /// `switchboard_<digest>`.
            pub library_name: String,
        }

        impl Functions {
            pub fn new(consts: &Constants) -> Functions {
                let mut body = format!("{}\n{LIB}\n", prelude(consts));
                $(
                    body.push_str(&format!(
                        "local function op_{name}(ARGV)\n{}\nend\nredis.register_function('{PREFIX}{name}', function(KEYS, ARGV) return end_call(op_{name}(begin(ARGV))) end)\n",
                        include_str!(concat!("lua/", stringify!($name), ".lua")),
                        name = stringify!($name),
                    ));
                )*
                let digest = redis::Script::new(&body).get_hash()[..16].to_string();
                let prefix = format!("sb_{digest}_");
                let library_name = format!("switchboard_{digest}");
                Functions {
                    $($name: Function(format!("{prefix}{}", stringify!($name))),)*
                    library: format!("#!lua name={library_name}\n{}", body.replace(PREFIX, &prefix)),
                    library_name,
                }
            }
        }
    };
}

functions!(
    create,
    accept,
    reject,
    complete,
    end_wrap,
    transfer,
    presence,
    login,
    disconnect,
    heartbeat,
    timers,
    message_in,
    reply,
    withdraw,
    move_ix,
    reprioritize,
    put_agent,
    delete_agent,
    put_queue,
    delete_queue,
    lease,
    typing,
);

/// Deployment constants baked into the library.
#[derive(Debug, Clone)]
pub struct Constants {
    pub key_root: String,
    pub grace_ms: u64,
    pub figures_ttl_secs: u64,
    pub interaction_ttl_secs: u64,
    pub idempotency_ttl_secs: u64,
    pub events_maxlen: u64,
    pub inbox_maxlen: u64,
    pub max_messages: u64,
}

fn prelude(c: &Constants) -> String {
    format!(
        "{}{}{}local GRACE_MS = {}\nlocal FIG_TTL = {}\nlocal IX_TTL = {}\nlocal IDEM_TTL = {}\nlocal EVENTS_MAXLEN = {}\nlocal INBOX_MAXLEN = {}\nlocal MAX_MSGS = {}\nlocal SPLIT = {}\nlocal MAX_PRIORITY = {}\n",
        keys::lua_prelude(&c.key_root),
        kinds("EV", EventKind::ALL.iter().map(|k| k.as_str())),
        kinds("PUSH", PushKind::ALL.iter().map(|k| k.as_str())),
        c.grace_ms,
        c.figures_ttl_secs,
        c.interaction_ttl_secs,
        c.idempotency_ttl_secs,
        c.events_maxlen,
        c.inbox_maxlen,
        c.max_messages,
        routing::SPLIT as u64,
        MAX_PRIORITY,
    )
}

/// `local <table> = { name = 'name', ... }` of wire names. A name it lacks reads as nil, which
/// `emit` and `inbox_push` refuse with an error (a typo must not become a new kind).
fn kinds<'a>(table: &str, names: impl Iterator<Item = &'a str>) -> String {
    let entries: Vec<String> = names.map(|n| format!("{n} = '{n}'")).collect();
    format!("local {table} = {{ {} }}\n", entries.join(", "))
}
