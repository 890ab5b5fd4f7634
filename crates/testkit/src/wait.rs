//! Waiting for something to become true, with patience as a budget, not a timing assertion.
//!
//! The timeouts used here (15 s for [`assert_eventually!`](crate::assert_eventually), whatever
//! callers pass to [`eventually`]) are deliberately generous. They only bound how long a *failing*
//! test hangs; a passing test returns as soon as the condition holds. Do not tighten them to
//! "prove" latency: slow or heavily loaded CI machines would turn that into flakiness. Write
//! explicit measurements if a test really is about timing.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::Once;
use std::time::{Duration, Instant};

/// How often the polling helpers re-check their condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Default patience of [`assert_eventually!`](crate::assert_eventually) and of waits for a reply.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// Returns a TCP port on 127.0.0.1 that was free a moment ago (bind `:0`, read the port, drop the listener).
///
/// Inherently racy: something else may grab the port before the caller binds it. Callers that spawn servers should
/// detect a failed bind and retry with a new port, as [`RedisServer::start_with`] does.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0 to find a free port");
    listener.local_addr().expect("local_addr of ephemeral listener").port()
}

/// Installs a test-friendly tracing subscriber (output captured per test, filter from `RUST_LOG`). Safe to call from
/// every test; only the first call in a process does anything, and an already-installed global subscriber is kept.
pub fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    });
}

/// Polls `f` every [`POLL_INTERVAL`] until it yields `Some`, and returns that value. Panics with `what` if `patience`
/// (measured in real wall-clock time, so paused tokio time does not shorten it) runs out first. `f` is always called
/// at least once. Patience is a budget, not a timing assertion: be generous.
pub async fn eventually<F, Fut, T>(what: &str, patience: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = f().await {
            return value;
        }
        if start.elapsed() >= patience {
            panic!("timed out after {patience:?} waiting for: {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Asserts that an async condition becomes true: re-evaluates `$cond` (typically `async { ... bool ... }`; any
/// expression producing a fresh `Future<Output = bool>` each evaluation works) every 20 ms for up to 15 s of real time,
/// then panics with the given message. Patience is a budget, not a timing assertion.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use switchboard_testkit::assert_eventually;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let drained = AtomicUsize::new(0);
/// let queue = "sales";
/// assert_eventually!(async { drained.fetch_add(1, Ordering::Relaxed) >= 2 }, "queue {queue} never drained");
/// # }
/// ```
///
/// Exported at the crate root (`switchboard_testkit::assert_eventually`). Only depends on `std` and `tokio`.
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr $(,)?) => {
        $crate::assert_eventually!($cond, "{}", ::std::stringify!($cond))
    };
    ($cond:expr, $($msg:tt)+) => {{
        let patience = ::std::time::Duration::from_secs(15);
        let start = ::std::time::Instant::now();
        loop {
            if $cond.await {
                break;
            }
            if start.elapsed() >= patience {
                ::std::panic!("condition not met within {:?}: {}", patience, ::std::format_args!($($msg)+));
            }
            ::tokio::time::sleep(::std::time::Duration::from_millis(20)).await;
        }
    }};
}
