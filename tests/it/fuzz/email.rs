//! The email channel's parsers: whole MIME messages (`parse::parse`), Message-IDs and subject
//! tokens (`threading`), `Authentication-Results` headers and the verdict drawn from them
//! (`auth_results`).

use proptest::prelude::*;
use switchboard::channels::email::auth_results::{self, AuthResults};
use switchboard::channels::email::parse::{self, Kind, MAX_REFERENCES, ParsedEmail};
use switchboard::channels::email::threading;
use switchboard::model::MAX_SUBJECT_LEN;

use super::{apply, check, edits, run, tricky_string};

/// Real messages to damage: the fixtures of the robustness tests and a few shapes of our own.
const SEEDS: [&[u8]; 13] = [
    include_bytes!("../fixtures/email/bad-address.eml"),
    include_bytes!("../fixtures/email/bad-base64.eml"),
    include_bytes!("../fixtures/email/broken-mime.eml"),
    include_bytes!("../fixtures/email/html-only.eml"),
    include_bytes!("../fixtures/email/nested-rfc822.eml"),
    include_bytes!("../fixtures/email/no-from.eml"),
    include_bytes!("../fixtures/email/unknown-charset.eml"),
    include_bytes!("../fixtures/email/wrong-charset.eml"),
    b"From: Ann Example <Ann@Example.com>\r\nTo: support@acme.test\r\nSubject: Invoice [#SB-ABCDEFGH]\r\n\
      Message-ID: <abc@example.com>\r\nIn-Reply-To: <2@c>\r\nReferences: <1@c> <2@c>\r\nDate: Tue, 1 Jul 2025 10:00:00 +0000\r\n\r\nHello\r\nthere\r\n",
    b"From: a@b.test\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nsee file\r\n\
      --B\r\nContent-Type: application/pdf; name=\"inv.pdf\"\r\nContent-Disposition: attachment; filename=\"inv.pdf\"\r\n\
      Content-Transfer-Encoding: base64\r\n\r\nSGVsbG8gV29ybGQ=\r\n--B--\r\n",
    b"From: Mail Delivery System <MAILER-DAEMON@mx.test>\r\nSubject: Undelivered Mail\r\n\
      Content-Type: multipart/report; report-type=delivery-status; boundary=R\r\n\r\n\
      --R\r\nContent-Type: text/plain\r\n\r\nsorry\r\n--R\r\nContent-Type: message/delivery-status\r\n\r\n\
      Reporting-MTA: dns; mx.test\r\n\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\
      --R\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <sb.1.2@acme.test>\r\n--R--\r\n",
    b"Return-Path: <carol@customer.test>\r\nAuthentication-Results: mx.acme.test;\r\n\tdmarc=pass (p=none) header.from=customer.test\r\n\
      Authentication-Results: evil.test; dmarc=pass header.from=other.test\r\nFrom: Carol <Carol@Customer.test>\r\n\
      Reply-To: Mallory <mallory@evil.test>\r\nAuto-Submitted: auto-replied\r\nSubject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n\
      Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe\r\n",
    b"From: a@b.test\r\nContent-Type: multipart/alternative; boundary=\"=_x\"\r\n\r\n--=_x\r\nContent-Type: text/html\r\n\r\n\
      <p>Hello <b>World</b><script>x</script>\r\n--=_x\r\nContent-Type: message/rfc822\r\n\r\nFrom: c@d.test\r\n\
      Message-ID: <inner@d.test>\r\n\r\ninner\r\n--=_x--\r\n",
];

/// Header lines as MTAs and mail clients write them, and as attackers might.
fn header() -> impl Strategy<Value = String> {
    let address = prop_oneof![
        "[a-zA-Z0-9._%+-]{1,12}@[a-z0-9-]{1,10}\\.[a-z]{2,4}",
        "\"[^\"\\r\\n]{0,10}\" <[a-z]{1,8}@[a-z]{1,8}\\.test>",
        "=\\?(UTF-8|ISO-8859-1|x-bogus)\\?(Q|B|q)\\?[A-Za-z0-9=_+/]{0,16}\\?= <[a-z]{1,5}@x\\.test>",
        "[^\\r\\n]{0,20}",
        Just("MAILER-DAEMON@mx.test".to_string()),
        Just("<>".to_string()),
    ];
    let id = prop_oneof!["<[a-z0-9.]{1,12}@[a-z.]{1,10}>", "[^\\r\\n]{0,20}", Just("<>".to_string())];
    let ids = proptest::collection::vec(id.clone(), 0..30).prop_map(|v| v.join(" "));
    let ctype = prop_oneof![
        Just("text/plain; charset=utf-8".to_string()),
        Just("text/html".to_string()),
        "multipart/(mixed|alternative|related|report); (boundary=[A-Za-z0-9=_]{0,6}|boundary=\"[^\"\\r\\n]{0,8}\"); report-type=delivery-status",
        Just("message/rfc822".to_string()),
        Just("message/delivery-status".to_string()),
        Just("text/rfc822-headers".to_string()),
        "text/plain; charset=(iso-2022-jp|shift_jis|utf-7|gb18030|koi8-r|x-unknown|utf-16|windows-1252)",
        "[a-z/;= \"]{0,24}",
    ];
    let auth = prop_oneof![
        Just("mx.acme.test; dmarc=pass header.from=customer.test".to_string()),
        "[a-z.]{1,12}( [0-9])?; (dmarc|dkim|spf)=(pass|fail|none) (\\([^)]{0,8}\\) )?header\\.(from|d|i)=@?[a-z.]{1,12}",
        "[();=\"\\\\a-z. ]{0,40}",
    ];
    prop_oneof![
        (prop::sample::select(vec!["From", "Reply-To", "To", "Cc", "Sender"]), address)
            .prop_map(|(n, v)| format!("{n}: {v}")),
        (prop::sample::select(vec!["Message-ID", "In-Reply-To", "References"]), ids)
            .prop_map(|(n, v)| format!("{n}: {v}")),
        tricky_string(40).prop_map(|s| format!("Subject: {s}")),
        "Subject: (=\\?[A-Za-z0-9-]{1,12}\\?[QBqb]\\?[A-Za-z0-9=_+/?]{0,20}\\?= ?){1,4}",
        ctype.prop_map(|v| format!("Content-Type: {v}")),
        "Content-Transfer-Encoding: (base64|quoted-printable|7bit|8bit|binary|x-uuencode|[a-z]{0,6})",
        "Content-Disposition: (attachment|inline); filename\\*?=(\"[^\"\\r\\n]{0,12}\"|UTF-8''[a-z%0-9]{0,12})",
        "Date: [A-Za-z0-9,:+ -]{0,32}",
        "(Auto-Submitted|Precedence|X-Autoreply|Return-Path): [a-z<> -]{0,12}",
        auth.prop_map(|v| format!("Authentication-Results: {v}")),
        "[A-Za-z-]{1,12}: [^\\r\\n]{0,30}",
        "[^:\\r\\n]{0,20}",
    ]
}

/// A body: text, a part tree with (mostly) matching boundaries, or bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        tricky_string(60).prop_map(String::into_bytes),
        "[A-Za-z0-9+/=\\r\\n]{0,80}".prop_map(String::into_bytes),
        "([A-Za-z =]|=[0-9A-F]{2}|=\\r\\n){0,40}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..80),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        (
            "[A-Za-z0-9'()+_,./:=?-]{1,12}",
            proptest::collection::vec((proptest::collection::vec(header(), 0..3), inner), 1..4),
            any::<bool>(),
        )
            .prop_map(|(boundary, parts, close)| {
                let mut out =
                    format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\npreamble\r\n").into_bytes();
                for (headers, body) in parts {
                    out.extend(format!("--{boundary}\r\n").bytes());
                    for h in headers {
                        out.extend(h.bytes());
                        out.extend(b"\r\n");
                    }
                    out.extend(b"\r\n");
                    out.extend(body);
                    out.extend(b"\r\n");
                }
                if close {
                    out.extend(format!("--{boundary}--\r\n").bytes());
                }
                out
            })
    })
}

fn built() -> impl Strategy<Value = Vec<u8>> {
    (proptest::collection::vec(header(), 0..12), body(), any::<bool>()).prop_map(|(headers, body, lf)| {
        let mut out = Vec::new();
        for h in headers {
            out.extend(h.bytes());
            out.extend(if lf { &b"\n"[..] } else { b"\r\n" });
        }
        out.extend(if lf { &b"\n"[..] } else { b"\r\n" });
        out.extend(body);
        out
    })
}

fn message() -> impl Strategy<Value = Vec<u8>> {
    let mutated = (prop::sample::select(SEEDS.to_vec()), edits(12)).prop_map(|(seed, e)| apply(seed.to_vec(), &e));
    let built_mutated = (built(), edits(6)).prop_map(|(m, e)| apply(m, &e));
    prop_oneof![
        3 => built(),
        3 => mutated,
        2 => built_mutated,
        1 => proptest::collection::vec(any::<u8>(), 0..400),
    ]
}

fn normalized_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= threading::MAX_MESSAGE_ID_LEN
        && !id.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
}

fn one_line(s: &str, max: usize) -> bool {
    s.len() <= max && !s.chars().any(char::is_control) && s.trim() == s
}

fn address(a: &str) -> bool {
    a.contains('@')
        && a.len() <= 320
        && a == a.to_ascii_lowercase()
        && !a.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn check_parsed(e: &ParsedEmail, max_body: usize) -> Result<(), TestCaseError> {
    check(e.body.len() <= max_body && !e.body.is_empty(), || {
        format!("body of {} bytes (max {max_body})", e.body.len())
    })?;
    check(!e.body.chars().any(|c| c.is_control() && c != '\n' && c != '\t'), || {
        format!("control character in {:?}", e.body)
    })?;
    check(one_line(&e.subject, MAX_SUBJECT_LEN), || format!("subject {:?}", e.subject))?;
    check(one_line(&e.from_name, 200) && one_line(&e.author_name, 200), || "names".into())?;
    for a in [&e.from, &e.author, &e.reply_to].into_iter().flatten() {
        check(address(a), || format!("address {a:?}"))?;
    }
    check(e.author.is_none() || e.author_count >= 1, || "an author but no From address counted".into())?;
    for id in e.message_id.iter().chain(&e.parents).chain(&e.references) {
        check(normalized_id(id), || format!("message id {id:?}"))?;
    }
    check(e.references.len() <= MAX_REFERENCES, || format!("{} references", e.references.len()))?;
    let mut parents = e.parents.clone();
    parents.sort();
    parents.dedup();
    check(parents.len() == e.parents.len(), || "parents repeat".into())?;
    check(e.attachments.len() <= 50, || "attachments".into())?;
    for a in &e.attachments {
        check(one_line(&a.name, 200) && one_line(&a.content_type, 100), || format!("{a:?}"))?;
    }
    check(e.auth_results.len() <= auth_results::MAX_HEADERS, || "auth results".into())?;
    let hex = e.dedupe_key.strip_prefix("email:").unwrap_or_default();
    check(hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), || {
        e.dedupe_key.clone()
    })?;
    match &e.kind {
        Kind::AutoReply(r) => check(!r.chars().any(char::is_control), || r.clone())?,
        Kind::Bounce { original, reason } => {
            check(!reason.chars().any(char::is_control) && reason.len() <= 1000, || reason.clone())?;
            for id in original {
                check(normalized_id(id), || format!("bounced id {id:?}"))?;
            }
        }
        Kind::Customer => {}
    }
    Ok(())
}

#[test]
fn fuzz_email_parse() {
    run("email.parse", (message(), 1024..=65_536usize), |(raw, max_body)| {
        match parse::parse(&raw, max_body) {
            Ok(e) => {
                check_parsed(&e, max_body)?;
                // The same bytes, the same result (the dedupe key depends on it).
                check(parse::parse(&raw, max_body) == Ok(e), || "not deterministic".into())
            }
            Err(_) => Ok(()),
        }
    });
}

/// Found by `fuzz_email_parse`: an auto-reply's reason (logged, and kept as the message's
/// outcome) was the header as written, a folded one with its CR LF and any control character.
#[test]
fn regression_an_auto_reply_reason_is_one_line() {
    for header in ["Auto-Submitted: auto-replied\r\n\tx\x7f", "X-Autoreply: \r\n\t!\x7f0", "Precedence: bulk\r\n "] {
        let raw = format!("From: a@b.test\r\n{header}\r\nSubject: away\r\n\r\nhi");
        match parse::parse(raw.as_bytes(), 4096).unwrap().kind {
            Kind::AutoReply(r) => assert!(!r.chars().any(char::is_control), "{header:?} → {r:?}"),
            k => panic!("{header:?} → {k:?}"),
        }
    }
}

/// Found by `fuzz_email_parse` (the long run, shrunk by hand to these bytes): mail-parser 0.11's
/// `debug_assert!` on its part bookkeeping fired, a panic in a debug build (the ingest contained it
/// and set the message aside; a release build parses on).
#[test]
fn regression_a_message_in_a_message_ended_by_the_outer_boundary() {
    let raw = b"Content-Type:multipart;boundary==_x\n\n--=_xContent-Type:message/rfc822\n\nContent-Type:message/rfc822\n\n\n--=_x--";
    let _ = parse::parse(raw, 4096);
    let _ = parse::parse(&[&b"From: a@b.test\r\n"[..], raw].concat(), 4096);
}

#[test]
fn fuzz_email_parse_large() {
    // Big and deep inputs: long headers, many parts, many references, long bodies.
    let big = (prop::sample::select(SEEDS.to_vec()), 0..6usize, 1..400usize, edits(4)).prop_map(|(seed, how, n, e)| {
        let mut m = seed.to_vec();
        let at = m.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
        let insert: Vec<u8> = match how {
            0 => format!("Subject: {}\r\n", "é".repeat(n * 50)).into_bytes(),
            1 => format!("References: {}\r\n", (0..n * 5).map(|i| format!("<{i}@x>")).collect::<Vec<_>>().join(" "))
                .into_bytes(),
            2 => "Authentication-Results: mx.acme.test; dmarc=pass header.from=x.test\r\n".repeat(n).into_bytes(),
            3 => (0..n)
                .map(|i| format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n"))
                .collect::<String>()
                .into_bytes(),
            4 => "From: a@b.test\r\n".repeat(n).into_bytes(),
            _ => format!("X-Long: {}\r\n", "a ".repeat(n * 200)).into_bytes(),
        };
        m.splice(at..at, insert);
        apply(m, &e)
    });
    run("email.parse_large", big, |raw| {
        if let Ok(e) = parse::parse(&raw, 4096) {
            check_parsed(&e, 4096)?;
        }
        Ok(())
    });
}

#[test]
fn fuzz_email_message_ids() {
    let strategy = prop_oneof![tricky_string(30), "<?[a-z0-9.@ <>]{0,20}>?", Just("x".repeat(251))];
    run("email.message_id", strategy, |s| {
        if let Some(id) = threading::normalize_message_id(&s) {
            check(normalized_id(&id), || format!("{s:?} → {id:?}"))?;
            check(threading::normalize_message_id(&id) == Some(id.clone()), || format!("{id:?} not stable"))?;
            check(threading::normalize_message_id(&format!("<{id}>")) == Some(id.clone()), || "brackets".into())?;
        }
        Ok(())
    });
}

fn subject_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => tricky_string(8),
        1 => prop::sample::select(vec!["[#SB-", "[#sb-", "[#SB-AB", "[#SB-ABCDEFG", "]", "Re: ", "AW:", "Fwd: ", "é", "ü", "ß", "İ", "😀", "[#", "#SB-"]).prop_map(String::from),
    ]
}

#[test]
fn fuzz_email_subject_tokens() {
    // A token in a subject is found wherever it stands and whatever stands around it, and a
    // reply subject carries the conversation's token once.
    let pieces = || proptest::collection::vec(subject_piece(), 0..6).prop_map(|v| v.concat());
    run(
        "email.subject_token",
        ("[a-z0-9-]{1,40}", pieces(), pieces(), any::<bool>()),
        |(iid, before, after, lower)| {
            let token = threading::token_for(&iid);
            let written = if lower { token.to_lowercase() } else { token.clone() };
            let subject = format!("{before}[#{written}]{after}");
            let found = threading::extract_token(&subject);
            // An earlier token in `before` may win; a token there is one of ours too.
            let earlier = threading::extract_token(&before);
            check(found.is_some(), || format!("no token found in {subject:?}"))?;
            if earlier.is_none() {
                check(found.as_deref() == Some(token.as_str()), || format!("{subject:?} → {found:?}, not {token}"))?;
            }
            let _ = threading::extract_token(&after);
            if threading::extract_token(&format!("{before}{after}")).is_none() {
                let reply = threading::reply_subject(&format!("{before}{after}"), &token);
                check(threading::extract_token(&reply).as_deref() == Some(token.as_str()), || format!("{reply:?}"))?;
                check(threading::reply_subject(&reply, &token) == reply, || {
                    format!("{reply:?} grows on the next reply")
                })?;
            }
            Ok(())
        },
    );
}

/// Found by `fuzz_email_subject_tokens`: a "[#SB-" followed by a character of several bytes
/// ended the search, so the conversation's real token after it was never seen.
#[test]
fn regression_a_broken_token_before_the_real_one() {
    let token = threading::token_for("0195f0e2-7c1a-7000-8000-000000000001");
    for before in ["[#SB-AaA\u{80}\u{80}\u{80}", "[#SB-ABCDEFGé]", "[#sb-abcdefg😀", "[#SB-é"] {
        let subject = format!("Re: {before} [#{token}]");
        assert_eq!(threading::extract_token(&subject), Some(token.clone()), "{subject:?}");
    }
}

fn auth_header() -> impl Strategy<Value = String> {
    let method = prop::sample::select(vec!["dmarc", "dkim", "spf", "arc", "DMARC", "dkim/1", "dkim-atps"]);
    let result = prop::sample::select(vec!["pass", "fail", "none", "Pass", "neutral", "temperror"]);
    let prop_name =
        prop::sample::select(vec!["header.from", "header.d", "header.i", "smtp.mailfrom", "reason", "action"]);
    let value = prop_oneof![
        "[a-z]{1,6}\\.test",
        "@[a-z]{1,6}\\.test",
        Just("customer.test".to_string()),
        Just("\"quoted; value\"".to_string()),
        "[^;\\r\\n]{0,8}"
    ];
    let resinfo = (
        method,
        result,
        proptest::collection::vec((prop_name, value), 0..4),
        prop_oneof![Just(String::new()), "\\([^)]{0,10}\\)"],
    )
        .prop_map(|(m, r, props, comment)| {
            let props: Vec<String> = props.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{m}={r} {comment} {}", props.join(" "))
        });
    let id = prop_oneof![
        Just("mx.acme.test".to_string()),
        Just("MX.Acme.Test 1".to_string()),
        "[a-z.]{1,10}",
        Just("\"mx.acme.test\"".to_string())
    ];
    prop_oneof![
        4 => (id, proptest::collection::vec(resinfo, 0..5)).prop_map(|(id, r)| format!("{id}; {}", r.join(";\r\n\t"))),
        1 => "[();=\"\\\\a-z. \\r\\n\\t]{0,60}",
        1 => tricky_string(60),
    ]
}

#[test]
fn fuzz_email_authentication_results() {
    let strategy = (
        proptest::collection::vec(auth_header(), 0..6),
        prop_oneof![
            Just(Some("carol@customer.test".to_string())),
            Just(None),
            "[a-z]{1,4}@[a-z.]{0,14}".prop_map(Some)
        ],
        proptest::collection::vec(
            prop::sample::select(vec!["mx.acme.test", "MX.ACME.TEST", "evil.test"]).prop_map(String::from),
            0..3,
        ),
        any::<bool>(),
    );
    run("email.auth_results", strategy, |(headers, from, trusted, dkim)| {
        let parsed: Vec<AuthResults> = headers.iter().filter_map(|h| auth_results::parse_header(h)).collect();
        for p in &parsed {
            check(!p.authserv_id.is_empty() && p.authserv_id == p.authserv_id.to_ascii_lowercase(), || {
                format!("{p:?}")
            })?;
            for r in &p.results {
                check(r.method == r.method.to_ascii_lowercase() && !r.method.contains('/'), || format!("{r:?}"))?;
                check(r.props.iter().all(|(k, _)| k.contains('.')), || format!("{r:?}"))?;
            }
        }
        let v = auth_results::verify(&parsed, from.as_deref(), &trusted, dkim);
        check(v.reason.len() <= 150 && !v.reason.chars().any(char::is_control), || format!("{v:?}"))?;
        if v.verified {
            // Only a trusted server's result can verify, and only for the From domain.
            let domain =
                from.as_deref().and_then(|f| f.rsplit_once('@')).map(|(_, d)| d.to_string()).unwrap_or_default();
            let ours: Vec<&AuthResults> =
                parsed.iter().filter(|p| trusted.iter().any(|t| t.eq_ignore_ascii_case(&p.authserv_id))).collect();
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            // The From domain, or (DKIM) a parent of it.
            let covers = |val: &str| {
                let d = val.rsplit('@').next().unwrap_or_default().trim().trim_end_matches('.').to_ascii_lowercase();
                !d.is_empty() && (domain == d || domain.ends_with(&format!(".{d}")))
            };
            let vouched = ours.iter().flat_map(|p| &p.results).any(|r| {
                r.result == "pass"
                    && (r.method == "dmarc" || (dkim && r.method == "dkim"))
                    && r.props.iter().any(|(_, val)| covers(val))
            });
            check(vouched, || format!("verified ({v:?}) without a trusted pass for {domain:?}"))?;
            let failed = ours
                .iter()
                .flat_map(|p| &p.results)
                .any(|r| r.method == "dmarc" && r.result != "pass" && r.result != "none");
            check(!failed, || format!("verified ({v:?}) beside a trusted DMARC failure"))?;
        }
        Ok(())
    });
}
