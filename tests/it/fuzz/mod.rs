//! Property tests of every parser that takes input from outside ("fuzzed inputs", issue #21 §3),
//! through the daemon's public API: MIME messages and their headers, web chat frames, SMS
//! webhooks and signatures (Twilio, Kannel) and SMPP PDUs, phone numbers and CRM events, the TOML
//! config, the `authorization` value (keys, agent tokens, JWTs), and gRPC requests and web chat
//! frames sent to a real daemon (CTI events, callbacks, interactions, raw protobuf with invalid
//! UTF-8). The model's validators have their own in
//! `crates/model/src/fuzz_tests.rs`.
//!
//! Cases per target: `SWITCHBOARD_FUZZ_CASES` (default 256, the suite's short mode;
//! `scripts/fuzz.sh` runs 100,000). Each target prints one line, `fuzz <target>: <n> cases ...`,
//! with its seed; `SWITCHBOARD_FUZZ_SEED=<seed>` replays a run. A case that panics fails the
//! target with the shrunk input; one slower than `SWITCHBOARD_FUZZ_SLOW_SECS` (default 10) fails
//! as too slow; one still running after `SWITCHBOARD_FUZZ_HANG_SECS` (default 120) aborts the
//! process naming the target, the seed and the case. Cases found are kept as named
//! `regression_*` tests beside their target.

mod auth;
mod config;
mod crm;
mod email;
mod grpc;
mod sms;
mod webchat;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

pub use harness::run;

pub mod harness {
    //! The runner every target goes through: case count, seed, timing and the hang watchdog.
    use std::fmt::Debug;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use proptest::strategy::Strategy;
    use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

    fn env_u64(name: &str) -> Option<u64> {
        std::env::var(name).ok().and_then(|v| v.trim().replace('_', "").parse().ok())
    }

    /// Cases per target: 256 unless `SWITCHBOARD_FUZZ_CASES` says otherwise.
    pub fn cases() -> u32 {
        env_u64("SWITCHBOARD_FUZZ_CASES").map_or(256, |n| n.clamp(1, u64::from(u32::MAX)) as u32)
    }

    fn seed(name: &str) -> u64 {
        if let Some(s) = env_u64("SWITCHBOARD_FUZZ_SEED") {
            return s;
        }
        // The suite's short mode tries the same cases every run: a CI run must not fail on a case
        // no change brought. The long mode (SWITCHBOARD_FUZZ_CASES set) explores new ones each run.
        let base = if env_u64("SWITCHBOARD_FUZZ_CASES").is_some() {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            now.as_nanos() as u64
        } else {
            0xcbf2_9ce4_8422_2325
        };
        name.bytes().fold(base, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3))
    }

    /// Runs `test` on `cases()` values of `strategy`; panics with the shrunk failing input.
    pub fn run<S>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
    where
        S: Strategy,
        S::Value: Debug,
    {
        run_n(name, cases(), strategy, test);
    }

    /// [`run`] with its own number of cases.
    pub fn run_n<S>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
    where
        S: Strategy,
        S::Value: Debug,
    {
        let seed = seed(name);
        let slow = Duration::from_secs(env_u64("SWITCHBOARD_FUZZ_SLOW_SECS").unwrap_or(10));
        let hang = env_u64("SWITCHBOARD_FUZZ_HANG_SECS").unwrap_or(120);
        let config = Config {
            cases,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(seed),
            max_shrink_iters: 2_000,
            max_global_rejects: cases.saturating_mul(4).max(1024),
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        // The watchdog: when one case runs past `hang` seconds, say which and abort (a hang
        // never returns to the runner, so it could not report it).
        let started = Instant::now();
        let case_start = Arc::new(AtomicU64::new(0));
        let count = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let watchdog = {
            let (case_start, count, done, name) = (case_start.clone(), count.clone(), done.clone(), name.to_string());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    let at = case_start.load(Ordering::Relaxed);
                    let now = started.elapsed().as_millis() as u64;
                    if at > 0 && now.saturating_sub(at) > hang * 1000 {
                        eprintln!(
                            "fuzz {name}: HANG: case #{} has run for more than {hang} s (seed {seed}; replay with \
                             SWITCHBOARD_FUZZ_SEED={seed})",
                            count.load(Ordering::Relaxed)
                        );
                        std::process::abort();
                    }
                }
            })
        };
        let slowest = AtomicU64::new(0);
        let result = runner.run(&strategy, |value| {
            count.fetch_add(1, Ordering::Relaxed);
            let t = Instant::now();
            case_start.store(started.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
            let r = test(value);
            case_start.store(0, Ordering::Relaxed);
            let took = t.elapsed();
            slowest.fetch_max(took.as_micros() as u64, Ordering::Relaxed);
            r?;
            if took > slow {
                return Err(TestCaseError::fail(format!("too slow: {took:?} for one case (limit {slow:?})")));
            }
            Ok(())
        });
        done.store(true, Ordering::Relaxed);
        let _ = watchdog.join();
        eprintln!(
            "fuzz {name}: {} cases in {:.2} s (slowest {:.1} ms), seed {seed}: {}",
            count.load(Ordering::Relaxed),
            started.elapsed().as_secs_f64(),
            slowest.load(Ordering::Relaxed) as f64 / 1000.0,
            if result.is_ok() { "ok" } else { "FAILED" }
        );
        if let Err(e) = result {
            panic!("fuzz {name} (replay with SWITCHBOARD_FUZZ_SEED={seed}): {e}");
        }
    }
}

/// Runs `f` on a thread with a large stack: the strategies of the bigger targets nest deeply,
/// and a debug build's frames for them are large.
pub fn with_big_stack(f: impl FnOnce() + Send + 'static) {
    let t = std::thread::Builder::new().stack_size(256 << 20).spawn(f).unwrap();
    if let Err(panic) = t.join() {
        std::panic::resume_unwind(panic);
    }
}

/// `Err(fail(what))` unless `ok`.
pub fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if ok { Ok(()) } else { Err(TestCaseError::fail(what())) }
}

/// Characters that find the corners: ASCII, control characters (C0, DEL, C1), multi-byte text,
/// astral emoji, zero-width and bidi marks, the replacement character.
pub fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => proptest::char::range(' ', '~'),
        1 => proptest::char::range('\u{0}', '\u{1f}'),
        1 => Just('\u{7f}'),
        1 => proptest::char::range('\u{80}', '\u{9f}'),
        2 => proptest::char::range('\u{a0}', '\u{2ff}'),
        1 => prop_oneof![Just('\u{200b}'), Just('\u{202e}'), Just('\u{feff}'), Just('\u{fffd}'), Just('\u{2028}')],
        2 => proptest::char::range('\u{4e00}', '\u{4e80}'),
        1 => proptest::char::range('\u{1f600}', '\u{1f64f}'),
        1 => any::<char>(),
    ]
}

pub fn tricky_string(max_chars: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(tricky_char(), 0..=max_chars).prop_map(|v| v.into_iter().collect())
}

/// A string of exactly `bytes` bytes: `unit` repeated, topped up with ASCII `x`.
pub fn sized(unit: &str, bytes: usize) -> String {
    let mut s = unit.repeat(bytes / unit.len().max(1));
    while s.len() < bytes {
        s.push('x');
    }
    s
}

/// One edit of a valid input: the ways a message gets damaged or crafted.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Overwrite the byte at (fraction of the length) with this one.
    Set(f64, u8),
    Insert(f64, Vec<u8>),
    Delete(f64, usize),
    /// Repeat a slice of the input (a header or boundary line twice, a part many times).
    Repeat(f64, usize, usize),
    Truncate(f64),
}

pub fn edits(max: usize) -> impl Strategy<Value = Vec<Edit>> {
    let bytes = prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 1..8),
        2 => prop::sample::select(vec![
            b"\r\n".to_vec(), b"\n".to_vec(), b"\r\n\r\n".to_vec(), b"\r\n ".to_vec(), b":".to_vec(), b";".to_vec(),
            b"=".to_vec(), b"\"".to_vec(), b"<".to_vec(), b">".to_vec(), b"--".to_vec(), b"=?".to_vec(), b"?=".to_vec(),
            b"\0".to_vec(), b"\xff\xfe".to_vec(), b"\xc3".to_vec(), b"\xf0\x9f\x98".to_vec(), b"(".to_vec(), b")".to_vec(),
            b"\\".to_vec(), b"{".to_vec(), b"}".to_vec(), b"[".to_vec(), b"]".to_vec(), b",".to_vec(), b"%".to_vec(), b"%0".to_vec(),
        ]),
    ];
    let edit = prop_oneof![
        3 => (0.0..1.0f64, any::<u8>()).prop_map(|(at, b)| Edit::Set(at, b)),
        3 => (0.0..1.0f64, bytes).prop_map(|(at, b)| Edit::Insert(at, b)),
        2 => (0.0..1.0f64, 1..64usize).prop_map(|(at, n)| Edit::Delete(at, n)),
        1 => (0.0..1.0f64, 1..200usize, 2..50usize).prop_map(|(at, n, times)| Edit::Repeat(at, n, times)),
        1 => (0.0..1.0f64).prop_map(Edit::Truncate),
    ];
    proptest::collection::vec(edit, 0..max)
}

pub fn apply(mut v: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    let at = |f: f64, len: usize| ((len as f64 * f) as usize).min(len);
    for e in edits {
        let len = v.len();
        match e {
            Edit::Set(f, b) if len > 0 => {
                let i = at(*f, len - 1);
                v[i] = *b;
            }
            Edit::Set(..) => {}
            Edit::Insert(f, bytes) => {
                let i = at(*f, len);
                v.splice(i..i, bytes.iter().copied());
            }
            Edit::Delete(f, n) => {
                let i = at(*f, len);
                v.drain(i..(i + n).min(len));
            }
            Edit::Repeat(f, n, times) => {
                let i = at(*f, len);
                let piece = v[i..(i + n).min(len)].to_vec();
                let copies: Vec<u8> = piece.iter().copied().cycle().take(piece.len() * times).collect();
                v.splice(i..i, copies);
            }
            Edit::Truncate(f) => v.truncate(at(*f, len)),
        }
    }
    v
}
