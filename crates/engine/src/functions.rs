//! The Lua operations, as one Redis Functions library: generated prelude (key builders,
//! constants) + `lib.lua` + each operation's body registered as a function, between `begin`
//! (clock, caches, the calling session taken off the arguments) and `end_call` (the pushes for
//! that session appended to the reply).
//!
//! Each operation's arguments are bound to Lua locals named after the fields of its Rust struct
//! (`ops::argv`): `functions!` pairs every function with that struct, and the tests hold each
//! body's `-- ARGV:` header to the same names, so an operation never reads `ARGV` by position.
//!
//! Loaded once (`FUNCTION LOAD`) instead of run as scripts: a script re-creates every shared
//! function and key builder on each run, and Redis keeps a compiled copy of the whole library
//! per script. The library's name and its functions' names carry a digest of its source, so
//! daemons of different versions or key roots on one Redis each call their own.

use switchboard_model::{EventKind, MAX_PRIORITY, PushKind, routing};

use crate::keys;
use crate::ops::argv::Argv;
use crate::ops::figures::FIGURES;
use crate::ops::{
    access, admin, agent, calendars, callbacks, erasure, hours, instances, interactions, supervisor, voice,
};

const LIB: &str = include_str!("lua/lib.lua");

/// Stands for the function-name prefix until the source's digest is known.
const PREFIX: &str = "@@SB_PREFIX@@";

/// A registered function's full name, as FCALL takes it.
#[derive(Debug, Clone)]
pub struct Function(pub String);

/// An operation's arguments ([`Argv`]), tied to the library function that takes them.
pub(crate) trait Operation: Argv {
    /// The function's name in the library, its `lua/<name>.lua` and its metrics label.
    const NAME: &'static str;
    fn function(functions: &Functions) -> &Function;
}

macro_rules! functions {
    ($($name:ident => $args:ty),* $(,)?) => {
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
                        "local function op_{name}(ARGV)\n{}{}\nend\nredis.register_function('{PREFIX}{name}', function(KEYS, ARGV) return end_call(op_{name}(begin(ARGV))) end)\n",
                        bindings(<$args as Argv>::ARGV, <$args as Argv>::REST),
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

        $(impl Operation for $args {
            const NAME: &'static str = stringify!($name);

            fn function(functions: &Functions) -> &Function {
                &functions.$name
            }
        })*

        /// Every operation: its name, its Lua source, and its Rust arguments' names and rest.
        #[cfg(test)]
        fn operations() -> Vec<(&'static str, &'static str, &'static [&'static str], Option<&'static str>)> {
            vec![$((
                stringify!($name),
                include_str!(concat!("lua/", stringify!($name), ".lua")),
                <$args as Argv>::ARGV,
                <$args as Argv>::REST,
            )),*]
        }
    };
}

functions!(
    create => interactions::CreateArgs<'_>,
    accept => agent::AcceptArgs<'_>,
    reject => agent::RejectArgs<'_>,
    complete => agent::CompleteArgs<'_>,
    end_wrap => agent::EndWrapArgs<'_>,
    transfer => agent::TransferArgs<'_>,
    presence => agent::PresenceArgs<'_>,
    login => agent::LoginArgs<'_>,
    disconnect => agent::DisconnectArgs<'_>,
    heartbeat => instances::HeartbeatArgs<'_>,
    timers => instances::TimersArgs,
    message_in => interactions::MessageInArgs<'_>,
    reply => agent::ReplyArgs<'_>,
    withdraw => interactions::WithdrawArgs<'_>,
    move_ix => supervisor::MoveIxArgs<'_>,
    reprioritize => supervisor::ReprioritizeArgs<'_>,
    put_agent => admin::PutAgentArgs<'_>,
    delete_agent => admin::DeleteAgentArgs<'_>,
    put_queue => admin::PutQueueArgs<'_>,
    delete_queue => admin::DeleteQueueArgs<'_>,
    put_calendar => calendars::PutCalendarArgs<'_>,
    delete_calendar => calendars::DeleteCalendarArgs<'_>,
    set_open => hours::SetOpenArgs<'_>,
    lease => instances::LeaseArgs<'_>,
    typing => crate::chat::TypingArgs<'_>,
    api_key => access::ApiKeyArgs<'_>,
    erase => erasure::EraseArgs<'_>,
    call_event => voice::CallEventArgs<'_>,
    phone => voice::PhoneArgs<'_>,
    callback => callbacks::CallbackArgs<'_>,
    delivery => crate::sms::DeliveryArgs<'_>,
    sms_part => crate::sms::PartArgs<'_>,
    opt_out => crate::sms::OptOutArgs<'_>,
);

/// The Lua locals an operation reads its arguments under: `local aid, iid = ARGV[1], ARGV[2]`,
/// named after its Rust struct's fields, and the list after them (`...rest`) as a table of its own.
fn bindings(argv: &[&str], rest: Option<&str>) -> String {
    let mut lua = String::new();
    if !argv.is_empty() {
        let values: Vec<String> = (1..=argv.len()).map(|i| format!("ARGV[{i}]")).collect();
        lua.push_str(&format!("local {} = {}\n", argv.join(", "), values.join(", ")));
    }
    if let Some(rest) = rest {
        let from = argv.len() + 1;
        lua.push_str(&format!("local {rest} = {{}}\nfor i = {from}, #ARGV do {rest}[#{rest} + 1] = ARGV[i] end\n"));
    }
    lua
}

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
        "{}{}{}{}local GRACE_MS = {}\nlocal FIG_TTL = {}\nlocal IX_TTL = {}\nlocal IDEM_TTL = {}\nlocal EVENTS_MAXLEN = {}\nlocal INBOX_MAXLEN = {}\nlocal MAX_MSGS = {}\nlocal SPLIT = {}\nlocal MAX_PRIORITY = {}\n",
        keys::lua_prelude(&c.key_root),
        kinds("EV", EventKind::ALL.iter().map(|k| k.as_str())),
        kinds("PUSH", PushKind::ALL.iter().map(|k| k.as_str())),
        figure_slots(),
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

/// `local FIG = { offered = '#1', ... }`: each figure's counter in a queue's minute (slot 0, the
/// writes, is fig_incr's own). A name it lacks reads as nil, which fig_incr refuses.
fn figure_slots() -> String {
    let entries: Vec<String> = FIGURES.iter().enumerate().skip(1).map(|(i, name)| format!("{name} = '#{i}'")).collect();
    format!("local FIG = {{ {} }}\n", entries.join(", "))
}

/// `local <table> = { name = 'name', ... }` of wire names. A name it lacks reads as nil, which
/// `emit` and `inbox_push` refuse with an error (a typo must not become a new kind).
fn kinds<'a>(table: &str, names: impl Iterator<Item = &'a str>) -> String {
    let entries: Vec<String> = names.map(|n| format!("{n} = '{n}'")).collect();
    format!("local {table} = {{ {} }}\n", entries.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names an operation's `-- ARGV:` header lists, and its rest (`...name`): the header is
    /// its first line, continued on the next comment lines while it ends with a comma.
    fn header(source: &str) -> Result<(Vec<String>, Option<String>), String> {
        let mut lines = source.lines();
        let first = lines.next().and_then(|l| l.strip_prefix("-- ARGV:")).ok_or("its first line is not `-- ARGV:`")?;
        let mut text = first.trim().to_string();
        while text.ends_with(',') {
            let next = lines.next().and_then(|l| l.strip_prefix("--")).ok_or("the header ends with a comma")?;
            text = format!("{text} {}", next.trim());
        }
        let mut names: Vec<String> = text.split(',').map(|n| n.trim().to_string()).collect();
        let rest = names.last().and_then(|n| n.strip_prefix("...")).map(str::to_string);
        if rest.is_some() {
            names.pop();
        }
        let is_name = |n: &str| {
            n.starts_with(|c: char| c.is_ascii_lowercase())
                && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        match names.iter().chain(&rest).find(|n| !is_name(n)) {
            Some(bad) => Err(format!("{bad:?} is not a Lua name (say what it means on the next line)")),
            None => Ok((names, rest)),
        }
    }

    #[test]
    fn every_operation_s_header_names_its_rust_arguments() {
        for (name, source, argv, rest) in operations() {
            let (names, header_rest) = header(source).unwrap_or_else(|e| panic!("lua/{name}.lua: {e}"));
            assert_eq!(names, argv, "lua/{name}.lua: the `-- ARGV:` header against its Rust struct's fields");
            assert_eq!(
                header_rest.as_deref(),
                rest,
                "lua/{name}.lua: the header's `...rest` against its Rust struct's"
            );
        }
    }

    /// A figure the functions count must have a slot, or fig_incr fails the call at run time.
    #[test]
    fn every_figure_the_functions_count_has_a_slot() {
        let mut sources = vec![("lib", LIB)];
        sources.extend(operations().into_iter().map(|(name, source, _, _)| (name, source)));
        let mut counted = 0;
        for (name, source) in sources {
            // `fig_incr(<queue>, '<figure>', n)`, or `fig = '<figure>'` for one chosen by a branch.
            let calls = source.split("fig_incr(").skip(1).filter_map(|c| c.split(')').next()?.split('\'').nth(1));
            let chosen = source.split("fig = '").skip(1).filter_map(|c| c.split('\'').next());
            for figure in calls.chain(chosen) {
                assert!(FIGURES[1..].contains(&figure), "lua/{name}.lua counts {figure:?}, which has no slot");
                counted += 1;
            }
        }
        assert!(counted >= 15, "{counted}");
        let mut unique = FIGURES.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), FIGURES.len());
        let fig = figure_slots();
        assert!(fig.starts_with("local FIG = { offered = '#1', accepted = '#2', "), "{fig}");
        assert!(!fig.contains("writes"));
    }

    #[test]
    fn no_operation_reads_argv_by_position() {
        for (name, source, _, _) in operations() {
            let mut code = source.lines().filter(|l| !l.trim_start().starts_with("--"));
            if let Some(line) = code.find(|l| l.contains("ARGV")) {
                panic!("lua/{name}.lua reads ARGV itself instead of its named arguments: {line}");
            }
        }
    }

    #[test]
    fn every_lua_operation_is_registered() {
        let registered: Vec<&str> = operations().iter().map(|op| op.0).collect();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/lua");
        for entry in std::fs::read_dir(dir).expect("lua dir") {
            let file = entry.expect("lua dir entry").file_name().into_string().expect("utf-8 name");
            let op = file.strip_suffix(".lua").expect("only .lua files");
            assert!(op == "lib" || registered.contains(&op), "lua/{file} is not in functions!");
        }
    }

    /// A call keeps what a push carried of an interaction (`CARRIED` in `lib.lua`: the reply
    /// reuses it) and what it read of an agent (`ACACHE`: routing and pushes read it); a write past
    /// the helpers that drop or update those copies would leave a call routing on, or returning,
    /// stale data.
    #[test]
    fn every_write_to_an_interaction_or_an_agent_keeps_the_calls_copy() {
        let mut sources = vec![("lib", LIB)];
        sources.extend(operations().into_iter().map(|(name, source, _, _)| (name, source)));
        let hash_writes = ["HSET", "HINCRBY", "HINCRBYFLOAT", "HDEL", "HSETNX", "HMSET", "DEL", "UNLINK", "RENAME"];
        let thread_writes = ["RPUSH", "LPUSH", "LSET", "LREM", "LTRIM", "LINSERT", "DEL", "UNLINK"];
        for (name, source) in sources {
            let (mut previous, mut function) = ("", "");
            for line in source.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--")) {
                if let Some(f) = line.strip_prefix("local function ") {
                    function = f.split('(').next().unwrap_or_default();
                } else if line == "end" {
                    function = "";
                }
                assert!(
                    !line.contains("= K.agent(") && !line.contains("= K.ix("),
                    "lua/{name}.lua names an agent's or interaction's key, which hides its writes from this test: {line}"
                );
                for cmd in hash_writes {
                    let ix_ok = ["ix_set", "ix_incr"].contains(&function) || previous.contains("ix_changed()");
                    assert!(
                        ix_ok || !line.contains(&format!("redis.call('{cmd}', K.ix(")),
                        "lua/{name}.lua writes an interaction hash past ix_set / ix_incr / ix_changed: {line}"
                    );
                    let agent_ok =
                        ["agent_set", "agent_incr"].contains(&function) || previous.contains("agent_changed()");
                    assert!(
                        agent_ok || !line.contains(&format!("redis.call('{cmd}', K.agent(")),
                        "lua/{name}.lua writes an agent hash past agent_set / agent_incr / agent_changed: {line}"
                    );
                }
                for cmd in thread_writes {
                    let writes = line.contains(&format!("redis.call('{cmd}', K.ix_msgs("));
                    let dropped = ["ix_changed()", "ix_incr("].iter().any(|d| previous.contains(d));
                    assert!(
                        !writes || dropped,
                        "lua/{name}.lua writes a thread without ix_changed() / ix_incr on the line before: {line}"
                    );
                }
                previous = line;
            }
        }
    }

    #[test]
    fn a_header_in_prose_is_refused() {
        assert_eq!(header("-- ARGV: aid, iid\nlocal x"), Ok((vec!["aid".into(), "iid".into()], None)));
        assert_eq!(
            header("-- ARGV: name, spec,\n--       ...pools\n"),
            Ok((vec!["name".into(), "spec".into()], Some("pools".into())))
        );
        assert!(header("-- ARGV: agent, interaction ('' = none)").is_err());
        assert!(header("local aid = ARGV[1]").is_err());
    }

    #[test]
    fn arguments_are_bound_by_name_and_the_rest_as_a_table() {
        assert_eq!(bindings(&["aid", "iid"], None), "local aid, iid = ARGV[1], ARGV[2]\n");
        assert_eq!(
            bindings(&["name"], Some("pools")),
            "local name = ARGV[1]\nlocal pools = {}\nfor i = 2, #ARGV do pools[#pools + 1] = ARGV[i] end\n"
        );
    }
}
