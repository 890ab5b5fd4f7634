//! Netstrings (`<length>:<bytes>,`), the framing Kamailio's evapi speaks with
//! `netstring_format = 1`.

/// The largest frame accepted: a call event is a few hundred bytes.
pub const MAX_FRAME: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NetstringError {
    #[error("netstring: bad length prefix")]
    BadLength,
    #[error("netstring: frame of {0} bytes is over the limit")]
    TooLong(usize),
    #[error("netstring: frame does not end with ','")]
    BadEnd,
}

pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{}:", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.push(b',');
    out
}

/// Takes the first complete frame off `buf`, if there is one.
pub fn decode(buf: &mut Vec<u8>) -> Result<Option<Vec<u8>>, NetstringError> {
    let Some(colon) = buf.iter().position(|b| *b == b':') else {
        // A length of more than 10 digits is no length we accept.
        if buf.len() > 10 || buf.iter().any(|b| !b.is_ascii_digit()) {
            return Err(NetstringError::BadLength);
        }
        return Ok(None);
    };
    let digits = &buf[..colon];
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(NetstringError::BadLength);
    }
    let len: usize = std::str::from_utf8(digits)
        .map_err(|_| NetstringError::BadLength)?
        .parse()
        .map_err(|_| NetstringError::BadLength)?;
    if len > MAX_FRAME {
        return Err(NetstringError::TooLong(len));
    }
    let end = colon + 1 + len;
    if buf.len() <= end {
        return Ok(None);
    }
    if buf[end] != b',' {
        return Err(NetstringError::BadEnd);
    }
    let frame = buf[colon + 1..end].to_vec();
    buf.drain(..=end);
    Ok(Some(frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_whole_split_and_back_to_back() {
        let mut buf = encode(b"{\"a\":1}");
        buf.extend(encode(b""));
        buf.extend_from_slice(b"3:ab");
        assert_eq!(decode(&mut buf).unwrap(), Some(b"{\"a\":1}".to_vec()));
        assert_eq!(decode(&mut buf).unwrap(), Some(Vec::new()));
        assert_eq!(decode(&mut buf).unwrap(), None, "half a frame waits");
        buf.extend_from_slice(b"c,");
        assert_eq!(decode(&mut buf).unwrap(), Some(b"abc".to_vec()));
        assert!(buf.is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_wait() {
        for bad in [&b"x:abc,"[..], b":abc,", b"12345678901:", b"3:abcd"] {
            let mut buf = bad.to_vec();
            assert!(decode(&mut buf).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let mut buf = format!("{}:", MAX_FRAME + 1).into_bytes();
        assert_eq!(decode(&mut buf), Err(NetstringError::TooLong(MAX_FRAME + 1)));
    }
}
