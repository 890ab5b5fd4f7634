//! Who may call a Kannel gateway's webhooks. Kannel cannot sign a request; what it can do is send
//! the user and password written into its `get-url` / `post-url` / our `dlr-url`
//! (`http://user:password@host/...`) as HTTP Basic auth — as written: Kannel 1.4.5 does not
//! percent-decode them, so `pa%3Ass` arrives as `pa%3Ass`. Both that and the decoded form are
//! accepted. Compared in constant time.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// What a `401` asks for.
pub const CHALLENGE: &str = "Basic realm=\"switchboard-sms\"";

/// Why a call was refused (for the log: never the credentials themselves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Basic` header (or not decodable).
    Missing,
    Wrong,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Wrong => "wrong",
        }
    }
}

/// Whether `headers` carry Basic credentials equal to `user` / `password`.
pub fn check(headers: &HeaderMap, user: &str, password: &str) -> Result<(), Refusal> {
    let (given_user, given_password) = basic(headers).ok_or(Refusal::Missing)?;
    // Both halves compared every time, so the answer's timing does not tell which was wrong.
    let user_ok = matches(&given_user, user);
    let password_ok = matches(&given_password, password);
    if bool::from(user_ok & password_ok) { Ok(()) } else { Err(Refusal::Wrong) }
}

/// `given` equals `want` as sent, or once percent-decoded (the userinfo of a URL).
fn matches(given: &[u8], want: &str) -> subtle::Choice {
    let decoded = percent_decode(given);
    given.ct_eq(want.as_bytes()) | decoded.ct_eq(want.as_bytes())
}

fn basic(headers: &HeaderMap) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(token.trim()).ok()?;
    let colon = raw.iter().position(|&b| b == b':')?;
    Some((raw[..colon].to_vec(), raw[colon + 1..].to_vec()))
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match (s[i], s.get(i + 1).and_then(|&c| hex(c)), s.get(i + 2).and_then(|&c| hex(c))) {
            (b'%', Some(high), Some(low)) => {
                out.push(high << 4 | low);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// `401` asking for Basic credentials.
pub fn unauthorized() -> Response {
    let mut r =
        (StatusCode::UNAUTHORIZED, "HTTP Basic credentials of this gateway's webhooks are required\n").into_response();
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    fn basic_of(user_pass: &str) -> HeaderMap {
        with(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass)))
    }

    #[test]
    fn right_credentials_pass() {
        // What Kannel 1.4.5 sent for `http://hookuser:hookpass@127.0.0.1:.../`.
        assert_eq!(check(&with("Basic aG9va3VzZXI6aG9va3Bhc3M="), "hookuser", "hookpass"), Ok(()));
        assert_eq!(check(&with("basic  aG9va3VzZXI6aG9va3Bhc3M= "), "hookuser", "hookpass"), Ok(()));
        // A password with a colon: only the first colon separates.
        assert_eq!(check(&basic_of("u:pa:ss"), "u", "pa:ss"), Ok(()));
        // As Kannel sends a percent-encoded userinfo (undecoded), and decoded.
        assert_eq!(check(&basic_of("hook%40user:pa%3Ass%25w"), "hook@user", "pa:ss%w"), Ok(()));
        assert_eq!(check(&basic_of("hook@user:pa:ss%w"), "hook@user", "pa:ss%w"), Ok(()));
    }

    #[test]
    fn missing_or_wrong_credentials_are_refused() {
        assert_eq!(check(&HeaderMap::new(), "u", "p"), Err(Refusal::Missing));
        assert_eq!(check(&with("Bearer abc"), "u", "p"), Err(Refusal::Missing));
        assert_eq!(check(&with("Basic !!!"), "u", "p"), Err(Refusal::Missing));
        assert_eq!(check(&basic_of("no-colon"), "u", "p"), Err(Refusal::Missing));
        assert_eq!(check(&basic_of("u:wrong"), "u", "p"), Err(Refusal::Wrong));
        assert_eq!(check(&basic_of("x:p"), "u", "p"), Err(Refusal::Wrong));
        assert_eq!(check(&basic_of("u:p2"), "u", "p"), Err(Refusal::Wrong));
        assert_eq!(check(&basic_of("u:"), "u", "p"), Err(Refusal::Wrong));
        assert_eq!(check(&basic_of(":"), "", ""), Ok(()), "the config refuses empty credentials, not this");
    }

    #[test]
    fn comparison_is_subtles_constant_time_one() {
        // `subtle`'s ct_eq looks at every byte of equal-length inputs whatever they hold;
        // different lengths are unequal at once (the length is not the secret).
        let a = b"correct horse battery staple";
        let b = b"correct horse battery stapld";
        assert!(!bool::from(a.as_slice().ct_eq(b.as_slice())));
        assert!(!bool::from(matches(b"x", "xy")));
        assert!(bool::from(matches(b"xy", "xy")));
    }

    #[test]
    fn refusal_asks_for_basic() {
        let r = unauthorized();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Basic realm=\"switchboard-sms\"");
    }
}
