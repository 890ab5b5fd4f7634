//! Identity normalization: the same person is found whichever way they wrote their number or
//! address. Phone numbers become E.164, email addresses lower case, chat ids are kept as given.

use switchboard_model::Channel;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdentityError(pub String);

pub const MAX_ADDRESS_LEN: usize = 320;

/// Normalizes `address` for `channel`. `default_region` (ISO 3166 alpha-2, e.g. "DE") applies to
/// phone numbers written without a country code.
pub fn normalize(channel: Channel, address: &str, default_region: Option<&str>) -> Result<String, IdentityError> {
    let a = address.trim();
    if a.is_empty() {
        return Err(IdentityError("identity.address: is required".into()));
    }
    if a.len() > MAX_ADDRESS_LEN {
        return Err(IdentityError(format!("identity.address: must be at most {MAX_ADDRESS_LEN} bytes")));
    }
    if a.chars().any(char::is_control) {
        return Err(IdentityError("identity.address: contains control characters".into()));
    }
    match channel {
        Channel::Voice | Channel::Sms => phone(a, default_region),
        Channel::Email => email(a),
        Channel::Chat => Ok(a.to_string()),
    }
}

fn phone(a: &str, default_region: Option<&str>) -> Result<String, IdentityError> {
    let region = match default_region {
        Some(r) => Some(
            r.parse::<phonenumber::country::Id>()
                .map_err(|_| IdentityError(format!("default region {r:?} is not a country code")))?,
        ),
        None => None,
    };
    // "00" is the international prefix in most of the world; the parser wants "+".
    let a = a.strip_prefix("00").map(|rest| format!("+{rest}")).unwrap_or_else(|| a.to_string());
    let n = phonenumber::parse(region, &a)
        .map_err(|e| IdentityError(format!("identity.address: {a:?} is not a phone number ({e})")))?;
    if !phonenumber::is_valid(&n) {
        return Err(IdentityError(format!("identity.address: {a:?} is not a valid phone number")));
    }
    let e164 = n.format().mode(phonenumber::Mode::E164).to_string();
    // E.164 has 15 digits at most; the parser's metadata takes some longer national numbers.
    if e164.len() > 16 {
        return Err(IdentityError(format!("identity.address: {a:?} has more digits than a phone number can")));
    }
    Ok(e164)
}

fn email(a: &str) -> Result<String, IdentityError> {
    // "Name <addr@host>" is common in headers; keep the address.
    let a = match (a.rfind('<'), a.rfind('>')) {
        (Some(l), Some(r)) if l < r => &a[l + 1..r],
        _ => a,
    };
    let a = a.trim().to_lowercase();
    let valid = match a.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !a.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if !valid {
        return Err(IdentityError(format!("identity.address: {a:?} is not an email address")));
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_identity_normalize_alike() {
        // (channel, written, region, normalized)
        let table = [
            (Channel::Voice, "+49 151 12345678", None, "+4915112345678"),
            (Channel::Sms, "0151 12345678", Some("DE"), "+4915112345678"),
            (Channel::Sms, "0049-151-1234-5678", None, "+4915112345678"),
            (Channel::Voice, "(0151) 123 456 78", Some("DE"), "+4915112345678"),
            (Channel::Voice, "+1 (415) 555-2671", Some("DE"), "+14155552671"),
            (Channel::Sms, "415.555.2671", Some("US"), "+14155552671"),
            (Channel::Email, "Ann.Smith@Example.COM", None, "ann.smith@example.com"),
            (Channel::Email, " Ann Smith <ANN.smith@example.com> ", None, "ann.smith@example.com"),
            (Channel::Chat, " visitor-ABC ", None, "visitor-ABC"),
        ];
        for (ch, written, region, want) in table {
            assert_eq!(normalize(ch, written, region).unwrap(), want, "{written}");
        }
    }

    #[test]
    fn malformed_identities_are_refused() {
        let table = [
            (Channel::Voice, "", None),
            (Channel::Voice, "hello", Some("DE")),
            (Channel::Sms, "12", Some("DE")),
            (Channel::Voice, "0151 12345678", None),
            (Channel::Email, "not-an-address", None),
            (Channel::Email, "a@b", None),
            (Channel::Email, "a b@example.com", None),
            (Channel::Chat, "line\nbreak", None),
        ];
        for (ch, written, region) in table {
            assert!(normalize(ch, written, region).is_err(), "{written:?} accepted");
        }
        assert!(normalize(Channel::Chat, &"x".repeat(321), None).is_err());
        assert!(normalize(Channel::Sms, "0151 12345678", Some("XX")).is_err());
    }
}
