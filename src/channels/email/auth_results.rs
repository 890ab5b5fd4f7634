//! Whether a message's From domain is authenticated, as told by the operator's own MTA in
//! `Authentication-Results` headers (RFC 8601). Pure.
//!
//! Anyone can write an `Authentication-Results` header into a message, so a header counts only
//! when its authserv-id is one the mailbox trusts (its own MTA, which must remove copies of its id
//! that arrive from outside, RFC 8601 §5). Within those headers the From domain is authenticated
//! when DMARC passed for exactly that domain, or (opt-in) when a DKIM signature of that domain or
//! a parent of it verified. A trusted DMARC result that is not a pass for the From domain, even
//! beside one that is, leaves the sender unverified: a forged header that slipped past the
//! MTA's stripping contradicts the MTA's own result rather than replacing it.

/// More `Authentication-Results` headers than this are not looked at (a hostile message could
/// carry thousands; real ones have a handful).
pub const MAX_HEADERS: usize = 50;
/// Longest header value parsed; a real one is well under 2 KiB.
const MAX_HEADER_LEN: usize = 16 * 1024;

/// One `Authentication-Results` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResults {
    /// Lower-cased.
    pub authserv_id: String,
    pub results: Vec<MethodResult>,
}

/// `method=result ptype.property=value ...`; method, result and property names lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodResult {
    pub method: String,
    pub result: String,
    /// `("header.from", "example.com")`, in order; values as written.
    pub props: Vec<(String, String)>,
}

impl MethodResult {
    fn props<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.props.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Atom(String),
    Quoted(String),
    Semi,
    Eq,
}

/// Comments (nested, with quoted-pairs) are dropped; folding is whitespace.
fn lex(s: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => {
                let mut depth = 1;
                while depth > 0 {
                    match chars.next() {
                        None => break,
                        Some('\\') => {
                            chars.next();
                        }
                        Some('(') => depth += 1,
                        Some(')') => depth -= 1,
                        Some(_) => {}
                    }
                }
            }
            // A stray closing parenthesis separates like whitespace.
            ')' => {}
            ';' => out.push(Token::Semi),
            '=' => out.push(Token::Eq),
            '"' => {
                let mut q = String::new();
                loop {
                    match chars.next() {
                        None | Some('"') => break,
                        Some('\\') => q.extend(chars.next()),
                        Some(c) => q.push(c),
                    }
                }
                out.push(Token::Quoted(q));
            }
            c => {
                let mut a = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '(' | ')' | ';' | '=' | '"') {
                        break;
                    }
                    a.push(n);
                    chars.next();
                }
                out.push(Token::Atom(a));
            }
        }
    }
    out
}

fn value(t: Option<&Token>) -> Option<&str> {
    match t {
        Some(Token::Atom(a) | Token::Quoted(a)) => Some(a),
        _ => None,
    }
}

/// Parses one header's value; None when it has no authserv-id (e.g. Exchange Online's, which
/// starts with `spf=`): a header that names no server cannot be attributed to a trusted one.
pub fn parse_header(value_text: &str) -> Option<AuthResults> {
    if value_text.len() > MAX_HEADER_LEN {
        return None;
    }
    let tokens = lex(value_text);
    let mut segments = tokens.split(|t| *t == Token::Semi);
    let first = segments.next()?;
    let authserv_id = match first {
        [Token::Atom(a) | Token::Quoted(a), rest @ ..] if !matches!(rest.first(), Some(Token::Eq)) => {
            a.to_ascii_lowercase()
        }
        _ => return None,
    };
    if authserv_id.is_empty() {
        return None;
    }
    let results = segments.filter_map(resinfo).collect();
    Some(AuthResults { authserv_id, results })
}

/// `method[/version]=result [reason=...] [ptype.property=value ...]`; None for `none` or a
/// malformed one (which can then never count as a pass).
fn resinfo(seg: &[Token]) -> Option<MethodResult> {
    let [Token::Atom(method), Token::Eq, rest @ ..] = seg else { return None };
    let result = value(rest.first())?.to_ascii_lowercase();
    let method = method.split('/').next().unwrap_or("").to_ascii_lowercase();
    let mut props = Vec::new();
    let mut i = 1;
    while i < rest.len() {
        match (&rest[i], rest.get(i + 1), value(rest.get(i + 2))) {
            (Token::Atom(k), Some(Token::Eq), Some(v)) => {
                // `reason=` and Microsoft's `action=` carry no dot: not properties.
                if k.contains('.') {
                    props.push((k.to_ascii_lowercase(), v.to_string()));
                }
                i += 3;
            }
            _ => i += 1,
        }
    }
    Some(MethodResult { method, result, props })
}

/// What the trusted headers say about the From domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub verified: bool,
    /// Short, for the agent: `dmarc=pass`, `dkim=pass header.d=example.com`, `dmarc=fail`,
    /// `none` (no trusted header), ...
    pub reason: String,
}

impl Verdict {
    fn no(reason: impl Into<String>) -> Verdict {
        Verdict { verified: false, reason: reason.into() }
    }
    fn yes(reason: impl Into<String>) -> Verdict {
        Verdict { verified: true, reason: reason.into() }
    }
}

/// `from`: the From header's one address (None when the message has none or several: DMARC
/// speaks for one author domain). `headers`: topmost first. `trusted`: authserv-ids, any case.
pub fn verify(headers: &[AuthResults], from: Option<&str>, trusted: &[String], accept_dkim: bool) -> Verdict {
    let Some(domain) = from.and_then(|f| f.rsplit_once('@')).map(|(_, d)| d.trim_end_matches('.')) else {
        return Verdict::no("no single From address");
    };
    let ours: Vec<&AuthResults> = headers
        .iter()
        .take(MAX_HEADERS)
        .filter(|h| trusted.iter().any(|t| t.eq_ignore_ascii_case(&h.authserv_id)))
        .collect();
    if ours.is_empty() {
        return Verdict::no("none");
    }
    let results = || ours.iter().flat_map(|h| h.results.iter());
    let dmarc: Vec<&MethodResult> = results().filter(|r| r.method == "dmarc").collect();
    let mut dmarc_verdict = None;
    for r in &dmarc {
        let froms: Vec<&str> = r.props("header.from").collect();
        let about_from = !froms.is_empty() && froms.iter().all(|f| same_domain(domain_of(f), domain));
        let v = if r.result != "pass" {
            Verdict::no(format!("dmarc={}", short(&r.result)))
        } else if froms.is_empty() {
            Verdict::no("dmarc=pass without header.from")
        } else if !about_from {
            Verdict::no(format!("dmarc=pass for {}", short(froms[0])))
        } else {
            Verdict::yes("dmarc=pass")
        };
        // The first result against the sender decides; a pass needs every result to agree.
        match &dmarc_verdict {
            Some(Verdict { verified: false, .. }) => {}
            _ => dmarc_verdict = Some(v),
        }
    }
    if let Some(v) = &dmarc_verdict
        && v.verified
    {
        return v.clone();
    }
    // DKIM speaks only where DMARC had nothing to say (no check, or no policy published): a
    // DMARC failure with an aligned DKIM pass beside it means one of the two is not the MTA's.
    let dmarc_silent = dmarc.iter().all(|r| r.result == "none");
    if accept_dkim && dmarc_silent {
        for r in results().filter(|r| r.method == "dkim" && r.result == "pass") {
            let d = r.props("header.d").next().or_else(|| r.props("header.i").next().map(domain_of));
            if let Some(d) = d
                && aligned(domain, d)
            {
                return Verdict::yes(format!("dkim=pass header.d={}", short(&d.to_ascii_lowercase())));
            }
        }
    }
    dmarc_verdict.unwrap_or_else(|| Verdict::no("no dmarc result"))
}

/// `user@example.com`, `@example.com` or `example.com` → `example.com`.
fn domain_of(v: &str) -> &str {
    v.rsplit_once('@').map_or(v, |(_, d)| d).trim().trim_end_matches('.')
}

fn same_domain(a: &str, b: &str) -> bool {
    !a.is_empty() && a.eq_ignore_ascii_case(b)
}

/// The signing domain is the From domain or a parent of it (DMARC's relaxed alignment, without
/// the public-suffix list: a parent domain's key can only be published by whoever owns it).
fn aligned(from_domain: &str, d: &str) -> bool {
    let d = d.trim().trim_end_matches('.');
    if d.is_empty() || !d.contains('.') {
        return false;
    }
    let f = from_domain.to_ascii_lowercase();
    let d = d.to_ascii_lowercase();
    f == d || f.strip_suffix(&d).is_some_and(|head| head.ends_with('.'))
}

/// Values end up in an attribute the agent reads: one short line.
fn short(s: &str) -> String {
    super::parse::one_line(s, 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(s: &[&str]) -> Vec<String> {
        s.iter().map(std::string::ToString::to_string).collect()
    }

    fn check(headers: &[&str], from: &str, trusted: &[&str], dkim: bool) -> Verdict {
        let parsed: Vec<AuthResults> = headers.iter().filter_map(|h| parse_header(h)).collect();
        verify(&parsed, Some(from), &ids(trusted), dkim)
    }

    const GMAIL: &str = "mx.google.com;\r\n       dkim=pass header.i=@customer.test header.s=20230601 header.b=AbCdEf12;\r\n       \
        spf=pass (google.com: domain of carol@customer.test designates 209.85.220.41 as permitted sender) smtp.mailfrom=carol@customer.test;\r\n       \
        dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=customer.test";
    /// Exchange Online's own header has no authserv-id.
    const EXCHANGE_ONLINE: &str = "spf=pass (sender IP is 40.107.22.52)\r\n smtp.mailfrom=customer.test; dkim=pass (signature was verified)\r\n \
        header.d=customer.test;dmarc=pass action=none\r\n header.from=customer.test;compauth=pass reason=100";
    /// The form Microsoft uses where it names itself (with a version).
    const MICROSOFT: &str = "mx.microsoft.com 1; spf=pass smtp.mailfrom=customer.test; dmarc=pass action=none\r\n \
        header.from=customer.test; dkim=pass header.d=customer.test; arc=none";
    const OPENDMARC: &str = "mx.acme.test; dmarc=pass (p=none dis=none) header.from=customer.test";
    const OPENDKIM: &str = "mx.acme.test;\r\n\tdkim=pass (2048-bit key; unprotected) header.d=customer.test header.i=@customer.test \
        header.a=rsa-sha256 header.s=mail header.b=aBcD1234;\r\n\tdkim-atps=neutral";
    const SPF: &str = "mx.acme.test; spf=pass smtp.mailfrom=customer.test";

    #[test]
    fn parses_real_world_headers() {
        let g = parse_header(GMAIL).unwrap();
        assert_eq!(g.authserv_id, "mx.google.com");
        let methods: Vec<(&str, &str)> = g.results.iter().map(|r| (r.method.as_str(), r.result.as_str())).collect();
        assert_eq!(methods, [("dkim", "pass"), ("spf", "pass"), ("dmarc", "pass")]);
        assert_eq!(g.results[2].props, [("header.from".to_string(), "customer.test".to_string())]);
        assert_eq!(g.results[0].props[0], ("header.i".to_string(), "@customer.test".to_string()));

        assert_eq!(parse_header(EXCHANGE_ONLINE), None);
        let m = parse_header(MICROSOFT).unwrap();
        assert_eq!(m.authserv_id, "mx.microsoft.com");
        let dmarc = m.results.iter().find(|r| r.method == "dmarc").unwrap();
        assert_eq!(dmarc.props, [("header.from".to_string(), "customer.test".to_string())], "action= is no property");

        let k = parse_header(OPENDKIM).unwrap();
        assert_eq!(k.results.len(), 2);
        assert_eq!(
            k.results[0].props.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["header.d", "header.i", "header.a", "header.s", "header.b"]
        );
        assert_eq!(k.results[1].method, "dkim-atps");
    }

    #[test]
    fn grammar_corners() {
        // RFC 8601 examples: no results, a version, a quoted id, nested comments, a method
        // version, CFWS around "=", a quoted reason.
        assert_eq!(parse_header("example.org 1; none").unwrap().results, []);
        assert_eq!(
            parse_header("\"mx.acme.test\"; dmarc=pass header.from=x.test").unwrap().authserv_id,
            "mx.acme.test"
        );
        let r = parse_header(
            "MX.Acme.Test (a (nested) comment; dmarc=pass header.from=evil.test) ; \
             DKIM/1 = Pass reason=\"good; very\" header.d = customer.test",
        )
        .unwrap();
        assert_eq!(r.authserv_id, "mx.acme.test");
        assert_eq!(r.results.len(), 1);
        assert_eq!(r.results[0].method, "dkim");
        assert_eq!(r.results[0].result, "pass");
        assert_eq!(r.results[0].props, [("header.d".to_string(), "customer.test".to_string())]);
        // Escaped parentheses inside a comment do not end it.
        let r = parse_header("mx.acme.test; dmarc=fail (a \\) b; dmarc=pass) header.from=x.test").unwrap();
        assert_eq!(r.results.len(), 1);
        assert_eq!(r.results[0].result, "fail");
        for bad in ["", ";", "dmarc=pass", "(only a comment)", "; dmarc=pass header.from=x.test", "(unclosed"] {
            assert_eq!(parse_header(bad), None, "{bad:?}");
        }
        // Malformed result sections are dropped, the rest kept.
        let r = parse_header("mx.acme.test; =pass; dmarc; dmarc=pass header.from=x.test;;").unwrap();
        assert_eq!(r.results.len(), 1);
    }

    #[test]
    fn dmarc_pass_from_a_trusted_server_verifies_the_from_domain() {
        let mx = ["mx.acme.test"];
        assert_eq!(check(&[OPENDMARC, OPENDKIM, SPF], "carol@customer.test", &mx, false), Verdict::yes("dmarc=pass"));
        assert!(check(&[SPF, OPENDKIM, OPENDMARC], "Carol@Customer.TEST", &["MX.ACME.TEST"], false).verified);
        assert!(check(&[GMAIL], "carol@customer.test", &["mx.google.com"], false).verified);
        assert!(check(&[MICROSOFT], "carol@customer.test", &["mx.microsoft.com"], false).verified);
        // Not trusted: another server's, or one naming no server.
        assert_eq!(check(&[GMAIL, MICROSOFT, EXCHANGE_ONLINE], "carol@customer.test", &mx, false), Verdict::no("none"));
        assert_eq!(check(&[], "carol@customer.test", &mx, false), Verdict::no("none"));
        // A trusted server that checked no DMARC, or found it failing.
        assert_eq!(check(&[SPF], "carol@customer.test", &mx, false), Verdict::no("no dmarc result"));
        let fail = "mx.acme.test; dmarc=fail (p=reject dis=reject) header.from=customer.test";
        assert_eq!(check(&[fail], "carol@customer.test", &mx, false), Verdict::no("dmarc=fail"));
        assert_eq!(
            check(&["mx.acme.test; dmarc=none header.from=customer.test"], "carol@customer.test", &mx, false),
            Verdict::no("dmarc=none")
        );
        // A pass for another domain than From's (a parser disagreeing about From, or a
        // subdomain).
        assert_eq!(check(&[OPENDMARC], "carol@evil.test", &mx, false), Verdict::no("dmarc=pass for customer.test"));
        assert!(!check(&[OPENDMARC], "carol@sub.customer.test", &mx, false).verified);
        assert_eq!(
            check(&["mx.acme.test; dmarc=pass"], "carol@customer.test", &mx, false),
            Verdict::no("dmarc=pass without header.from")
        );
        // A forged pass beside the MTA's own failure (its stripping missed it) does not win,
        // whichever comes first.
        let forged = "mx.acme.test; dmarc=pass header.from=customer.test";
        assert_eq!(check(&[fail, forged], "carol@customer.test", &mx, false), Verdict::no("dmarc=fail"));
        assert_eq!(check(&[forged, fail], "carol@customer.test", &mx, false), Verdict::no("dmarc=fail"));
        let conflicting = "mx.acme.test; dmarc=pass header.from=customer.test header.from=evil.test";
        assert!(!check(&[conflicting], "carol@customer.test", &mx, false).verified);
        // No single From.
        let none = verify(&[parse_header(OPENDMARC).unwrap()], None, &ids(&mx), true);
        assert_eq!(none, Verdict::no("no single From address"));
    }

    #[test]
    fn aligned_dkim_counts_only_when_allowed() {
        let mx = ["mx.acme.test"];
        let no_dmarc = [OPENDKIM, SPF];
        assert!(!check(&no_dmarc, "carol@customer.test", &mx, false).verified);
        assert_eq!(
            check(&no_dmarc, "carol@customer.test", &mx, true),
            Verdict::yes("dkim=pass header.d=customer.test")
        );
        assert!(check(&no_dmarc, "carol@mail.customer.test", &mx, true).verified, "a parent domain's signature");
        assert!(!check(&no_dmarc, "carol@evilcustomer.test", &mx, true).verified);
        assert!(!check(&no_dmarc, "carol@other.test", &mx, true).verified);
        // Gmail names the signer only through header.i.
        let gmail_dkim = "mx.acme.test; dkim=pass header.i=@customer.test header.s=s header.b=x";
        assert!(check(&[gmail_dkim], "carol@customer.test", &mx, true).verified);
        for bad in [
            "mx.acme.test; dkim=fail header.d=customer.test",
            "mx.acme.test; dkim=pass header.d=test",
            "mx.google.com; dkim=pass header.d=customer.test",
        ] {
            assert!(!check(&[bad], "carol@customer.test", &mx, true).verified, "{bad}");
        }
        // A domain without a DMARC policy is verified by its aligned signature; a DMARC failure
        // stands even with a DKIM pass beside it.
        let no_policy = "mx.acme.test; dmarc=none header.from=customer.test";
        assert!(check(&[no_policy, OPENDKIM], "carol@customer.test", &mx, true).verified);
        let fail = "mx.acme.test; dmarc=fail header.from=customer.test";
        assert_eq!(check(&[fail, OPENDKIM], "carol@customer.test", &mx, true), Verdict::no("dmarc=fail"));
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let long = format!("mx.acme.test; dmarc=pass header.from={}", "a".repeat(100_000));
        assert_eq!(parse_header(&long), None);
        for s in ["(((((", "\"", "\\", "a;b=;c=\"d", "a (\\", "é; dmarc=pass header.from=é", "a; x=y=z=;=;"] {
            let _ = parse_header(s);
        }
    }
}
