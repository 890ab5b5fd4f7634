//! SMSC delivery receipts: a deliver_sm whose esm_class says "SMSC delivery receipt", naming
//! one of our submits by its message id and saying how far it got.
//!
//! SMPP 3.4 puts the facts in two places: the TLVs receipted_message_id and message_state
//! (optional, but most SMSCs send them), and the de-facto text of Appendix B
//! (`id:… sub:… dlvrd:… submit date:… done date:… stat:DELIVRD err:000 text:…`). The TLVs win
//! where both are present; the text covers SMSCs that only write it.

use switchboard_model::DeliveryState;

use super::pdu::{ShortMessage, TLV_MESSAGE_STATE, TLV_RECEIPTED_MESSAGE_ID};

/// esm_class bits 2–5 are the message type; 0b0001 there is an SMSC delivery receipt.
pub fn is_receipt(esm_class: u8) -> bool {
    esm_class & 0x3C == 0x04
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The message_id our submit_sm_resp carried.
    pub id: String,
    /// `None`: the SMSC does not know (UNKNOWN) — nothing to record.
    pub state: Option<DeliveryState>,
    /// The `err:` code, empty when none or all zeros.
    pub code: String,
}

/// The receipt in a deliver_sm, or `None` when it names no message.
pub fn parse(sm: &ShortMessage) -> Option<Receipt> {
    let text = String::from_utf8_lossy(sm.payload());
    let field = |key: &str| field(&text, key);
    let id = sm
        .tlv(TLV_RECEIPTED_MESSAGE_ID)
        .map(|v| String::from_utf8_lossy(v.split(|&b| b == 0).next().unwrap_or_default()).trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| field("id"))?;
    let state = match sm.tlv(TLV_MESSAGE_STATE) {
        Some(&[s, ..]) => from_message_state(s),
        _ => field("stat").and_then(|s| from_stat(&s)),
    };
    let code = field("err").filter(|e| e.bytes().any(|b| b != b'0')).unwrap_or_default();
    Some(Receipt { id, state, code })
}

/// The message_state TLV (SMPP 3.4 §5.2.28).
fn from_message_state(state: u8) -> Option<DeliveryState> {
    Some(match state {
        1 | 6 => DeliveryState::Sent, // ENROUTE, ACCEPTED
        2 => DeliveryState::Delivered,
        3 | 5 => DeliveryState::Undelivered, // EXPIRED, UNDELIVERABLE
        4 | 8 => DeliveryState::Failed,      // DELETED, REJECTED
        _ => return None,                    // 7 UNKNOWN, and values 3.4 does not define
    })
}

/// The `stat:` word of the receipt text (SMPP 3.4 Appendix B).
fn from_stat(stat: &str) -> Option<DeliveryState> {
    Some(match stat.to_ascii_uppercase().as_str() {
        "DELIVRD" => DeliveryState::Delivered,
        "EXPIRED" | "UNDELIV" => DeliveryState::Undelivered,
        "DELETED" | "REJECTD" => DeliveryState::Failed,
        "ACCEPTD" | "ENROUTE" => DeliveryState::Sent,
        _ => return None,
    })
}

/// The value after `key:` at the start of a word, up to the next space ("submit date:" and
/// "done date:" end in "date:", so they never match "id:" or "err:").
fn field(text: &str, key: &str) -> Option<String> {
    let mut rest = text;
    loop {
        let at = find_ignore_case(rest, key)?;
        let starts_word = at == 0 || rest[..at].ends_with(char::is_whitespace);
        let after = &rest[at + key.len()..];
        if starts_word && let Some(v) = after.strip_prefix(':') {
            let v: String = v.chars().take_while(|c| !c.is_whitespace()).collect();
            return (!v.is_empty()).then_some(v);
        }
        rest = after;
    }
}

fn find_ignore_case(hay: &str, needle: &str) -> Option<usize> {
    hay.as_bytes().windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::sms::smpp::pdu::Tlv;

    fn receipt(text: &str, tlvs: Vec<Tlv>) -> ShortMessage {
        ShortMessage { esm_class: 0x04, short_message: text.as_bytes().to_vec(), tlvs, ..ShortMessage::default() }
    }

    const TEXT: &str =
        "id:7f3a9c sub:001 dlvrd:001 submit date:2611071200 done date:2611071201 stat:DELIVRD err:000 text:Hello";

    #[test]
    fn the_esm_class_type_bits_name_a_receipt() {
        assert!(is_receipt(0x04));
        assert!(is_receipt(0x44)); // with UDHI
        assert!(!is_receipt(0x00));
        assert!(!is_receipt(0x40));
        assert!(!is_receipt(0x08)); // SME delivery acknowledgement
    }

    #[test]
    fn the_text_alone_is_enough() {
        let r = parse(&receipt(TEXT, vec![])).unwrap();
        assert_eq!(r, Receipt { id: "7f3a9c".into(), state: Some(DeliveryState::Delivered), code: String::new() });
        let r = parse(&receipt("id:42 sub:001 dlvrd:000 submit date:x done date:y stat:UNDELIV err:011 text:", vec![]))
            .unwrap();
        assert_eq!((r.state, r.code.as_str()), (Some(DeliveryState::Undelivered), "011"));
        // Keys in capitals, as some SMSCs write them.
        let r = parse(&receipt("ID:9 SUB:001 DLVRD:000 SUBMIT DATE:x DONE DATE:y STAT:REJECTD ERR:0A1 TEXT:", vec![]))
            .unwrap();
        assert_eq!((r.id.as_str(), r.state, r.code.as_str()), ("9", Some(DeliveryState::Failed), "0A1"));
    }

    #[test]
    fn tlvs_win_over_the_text() {
        let tlvs = vec![
            Tlv { tag: TLV_RECEIPTED_MESSAGE_ID, value: b"ABC\0".to_vec() },
            Tlv { tag: TLV_MESSAGE_STATE, value: vec![5] },
        ];
        let r = parse(&receipt(TEXT, tlvs)).unwrap();
        assert_eq!((r.id.as_str(), r.state), ("ABC", Some(DeliveryState::Undelivered)));
    }

    #[test]
    fn every_state_maps() {
        let cases = [
            ("DELIVRD", 2, Some(DeliveryState::Delivered)),
            ("EXPIRED", 3, Some(DeliveryState::Undelivered)),
            ("DELETED", 4, Some(DeliveryState::Failed)),
            ("UNDELIV", 5, Some(DeliveryState::Undelivered)),
            ("ACCEPTD", 6, Some(DeliveryState::Sent)),
            ("UNKNOWN", 7, None),
            ("REJECTD", 8, Some(DeliveryState::Failed)),
            ("ENROUTE", 1, Some(DeliveryState::Sent)),
        ];
        for (stat, state, want) in cases {
            let text = format!("id:1 stat:{stat} err:000");
            assert_eq!(parse(&receipt(&text, vec![])).unwrap().state, want, "{stat}");
            let tlv = vec![Tlv { tag: TLV_MESSAGE_STATE, value: vec![state] }];
            assert_eq!(parse(&receipt("id:1", tlv)).unwrap().state, want, "{state}");
        }
    }

    #[test]
    fn no_id_is_no_receipt() {
        assert_eq!(parse(&receipt("stat:DELIVRD err:000", vec![])), None);
        assert_eq!(parse(&receipt("", vec![])), None);
        // "id:" inside another word is not the id.
        assert_eq!(parse(&receipt("xid:5 stat:DELIVRD", vec![])), None);
    }
}
