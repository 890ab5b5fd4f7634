//! The Lua scripts, assembled as: generated prelude (key builders, constants) + `lib.lua` + body.

use redis::Script;

use super::keys;

const LIB: &str = include_str!("lua/lib.lua");

macro_rules! scripts {
    ($($name:ident),* $(,)?) => {
        /// One compiled script per routing operation.
        pub struct Scripts {
            $(pub $name: Script,)*
        }

        impl Scripts {
            pub fn new(consts: &Constants) -> Scripts {
                let head = prelude(consts);
                Scripts {
                    $($name: Script::new(&format!(
                        "{head}\n{LIB}\n-- {}\n{}", stringify!($name),
                        include_str!(concat!("lua/", stringify!($name), ".lua"))
                    )),)*
                }
            }
        }
    };
}

scripts!(
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
    outbox_lease,
    typing,
);

/// Deployment constants baked into the scripts.
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
        "{}local GRACE_MS = {}\nlocal FIG_TTL = {}\nlocal IX_TTL = {}\nlocal IDEM_TTL = {}\nlocal EVENTS_MAXLEN = {}\nlocal INBOX_MAXLEN = {}\nlocal MAX_MSGS = {}\n",
        keys::lua_prelude(&c.key_root),
        c.grace_ms,
        c.figures_ttl_secs,
        c.interaction_ttl_secs,
        c.idempotency_ttl_secs,
        c.events_maxlen,
        c.inbox_maxlen,
        c.max_messages,
    )
}
