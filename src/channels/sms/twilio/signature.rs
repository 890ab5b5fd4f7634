//! `X-Twilio-Signature`: base64(HMAC-SHA1(auth token, the full URL as called + every POST
//! parameter sorted by name, name then value, no separators)). Every parameter received counts,
//! not only those we read: providers add fields, and a signature over a subset would let anyone
//! change the rest.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// The signature of a request to `url` carrying `params` (form fields; none for a GET).
pub fn sign(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // By name, then value, so repeated names (MediaUrl lists) sign the same in any order.
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `given` is the signature of the request, compared in constant time.
pub fn verify(token: &str, url: &str, params: &[(String, String)], given: &str) -> bool {
    let want = sign(token, url, params);
    want.as_bytes().ct_eq(given.trim().as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// Twilio's published example (security docs).
    #[test]
    fn twilios_published_example_verifies() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params = p(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(sign("12345", url, &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(verify("12345", url, &params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    }

    #[test]
    fn any_change_breaks_it() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params = p(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        let good = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
        assert!(!verify("12346", url, &params, good), "another token");
        assert!(!verify("12345", "https://mycompany.com/myapp.php?foo=1&bar=3", &params, good), "another URL");
        let mut more = params.clone();
        more.push(("Extra".into(), "x".into()));
        assert!(!verify("12345", url, &more, good), "a field added");
        let mut changed = params.clone();
        changed[2].1 = "1235".into();
        assert!(!verify("12345", url, &changed, good), "a field changed");
        assert!(!verify("12345", url, &params, ""), "no signature");
        assert!(!verify("12345", url, &params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ"), "truncated");
        // Order of the fields as sent does not matter.
        let mut reversed = params.clone();
        reversed.reverse();
        assert!(verify("12345", url, &reversed, good));
    }
}
