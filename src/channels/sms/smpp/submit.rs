//! An outgoing text as submit_sm PDUs (one per segment, concatenation UDH on each of a long
//! text), and what the SMSC's answer to one means for the sender.

use switchboard_model::sms;

use super::pdu::{self, Address, ShortMessage};
use crate::channels::sms::config::SmppConfig;
use crate::channels::sms::gateway::{OutSms, SendError};

/// UDHI: the short message starts with a user data header.
const ESM_UDHI: u8 = 0x40;
/// Ask for the SMSC's final delivery receipt (success or failure).
const FINAL_RECEIPT: u8 = 0x01;

/// One submit_sm body per part, in order. `reference` is asked for only when the text needs
/// several parts (every part of one text carries the same one).
pub fn build(cfg: &SmppConfig, sms: &OutSms, reference: impl FnOnce() -> u8) -> Result<Vec<ShortMessage>, SendError> {
    let (encoding, payloads) = sms::split(&sms.body);
    let total = u8::try_from(payloads.len()).map_err(|_| SendError::Permanent {
        code: "too_long".into(),
        reason: format!("{} parts; a concatenated SMS has at most 255", payloads.len()),
    })?;
    let base = ShortMessage {
        source: Address { ton: cfg.source_ton, npi: cfg.source_npi, addr: strip_plus(&sms.from) },
        dest: Address { ton: 1, npi: 1, addr: strip_plus(&sms.to) },
        registered_delivery: FINAL_RECEIPT,
        data_coding: encoding.data_coding(),
        ..ShortMessage::default()
    };
    if total == 1 {
        let short_message = payloads.into_iter().next().unwrap_or_default();
        return Ok(vec![ShortMessage { short_message, ..base }]);
    }
    let reference = reference();
    Ok(payloads
        .into_iter()
        .enumerate()
        .map(|(i, payload)| {
            let mut short_message = sms::concat_udh(reference, total, i as u8 + 1).to_vec();
            short_message.extend_from_slice(&payload);
            ShortMessage { esm_class: ESM_UDHI, short_message, ..base.clone() }
        })
        .collect())
}

fn strip_plus(number: &str) -> String {
    number.trim().trim_start_matches('+').to_string()
}

/// What a non-zero command_status on submit_sm_resp (or a generic_nack) means.
pub fn refusal(status: u32) -> SendError {
    let reason = pdu::status_name(status).to_string();
    if is_throttling(status) {
        SendError::Transient(format!("the SMSC is busy: {reason}"))
    } else {
        SendError::Permanent { code: format!("0x{status:08X}"), reason }
    }
}

/// The SMSC asks us to slow down; the text was not taken and may be sent again later.
pub fn is_throttling(status: u32) -> bool {
    matches!(status, pdu::ESME_RTHROTTLED | pdu::ESME_RMSGQFUL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn cfg() -> SmppConfig {
        SmppConfig {
            name: "smsc".into(),
            host: "127.0.0.1".into(),
            port: 2775,
            system_id: "sb".into(),
            password: Secret::default(),
            system_type: String::new(),
            window: 10,
            enquire_link_secs: 30,
            response_timeout_secs: 10,
            max_backoff_secs: 60,
            source_ton: 1,
            source_npi: 1,
        }
    }

    fn out(body: &str) -> OutSms {
        OutSms { key: "i|1".into(), from: "+4930123".into(), to: "+491511234567".into(), body: body.into() }
    }

    #[test]
    fn a_short_text_is_one_plain_submit() {
        let parts = build(&cfg(), &out("Hello"), || panic!("no reference for one part")).unwrap();
        assert_eq!(parts.len(), 1);
        let p = &parts[0];
        assert_eq!((p.source.ton, p.source.npi, p.source.addr.as_str()), (1, 1, "4930123"));
        assert_eq!((p.dest.ton, p.dest.npi, p.dest.addr.as_str()), (1, 1, "491511234567"));
        assert_eq!((p.esm_class, p.data_coding, p.registered_delivery), (0, 0, 1));
        assert_eq!(p.short_message, b"Hello");
    }

    #[test]
    fn a_long_text_is_parts_with_one_reference() {
        let body = "x".repeat(400);
        let parts = build(&cfg(), &out(&body), || 77).unwrap();
        assert_eq!(parts.len(), 3);
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.esm_class, 0x40);
            assert_eq!(&p.short_message[..6], &[5, 0, 3, 77, 3, i as u8 + 1]);
        }
        let joined: usize = parts.iter().map(|p| p.short_message.len() - 6).sum();
        assert_eq!(joined, 400);
    }

    #[test]
    fn ucs2_and_alphanumeric_senders() {
        let mut c = cfg();
        (c.source_ton, c.source_npi) = (5, 0);
        let mut sms = out("Привет");
        sms.from = "ACME".into();
        let p = &build(&c, &sms, || 0).unwrap()[0];
        assert_eq!((p.source.ton, p.source.npi, p.source.addr.as_str()), (5, 0, "ACME"));
        assert_eq!(p.data_coding, 8);
        assert_eq!(p.short_message.len(), 12);
    }

    #[test]
    fn throttling_is_transient_and_the_rest_permanent() {
        assert!(matches!(refusal(0x58), SendError::Transient(_)));
        assert!(matches!(refusal(0x14), SendError::Transient(_)));
        match refusal(0x0B) {
            SendError::Permanent { code, reason } => {
                assert_eq!(code, "0x0000000B");
                assert!(reason.contains("ESME_RINVDSTADR"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
