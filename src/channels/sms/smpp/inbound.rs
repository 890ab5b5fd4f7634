//! What a deliver_sm becomes: a delivery receipt → a status report, a customer's text → an
//! inbound SMS (parts of a concatenated one kept in Redis until all are in). The answer to the
//! SMSC is decided here and sent only after the receiver has stored what it was given.
//!
//! **Ids for dedupe.** SMPP 3.4 gives an MO message no id, yet an SMSC delivers again whatever
//! was not answered (a dropped link, a crash between storing and answering). A text is therefore
//! known by a hash of gateway, sender, recipient and text: the first copy's id (the hash and its
//! arrival) is kept in Redis for two minutes, and any copy within them gets that id and is stored
//! once. The price: the very same words from the same customer twice within two minutes of the
//! first are taken once. A redelivery comes seconds after a reconnect, well within that.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use switchboard_engine::sms::SmsState;
use switchboard_model::sms::{self as text, Concat};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::pdu::{self, Body, ShortMessage};
use super::receipt;
use super::session::{Delivered, Link};
use crate::channels::sms::gateway::{InboundSms, Receiver, StatusReport};

/// A concatenated text whose last part never comes is given up after a day.
const PARTS_TTL_SECS: u64 = 86_400;
/// How long after a text's first copy another one counts as a redelivery of it.
const DEDUPE_WINDOW_SECS: u64 = 120;

/// SAR TLVs: the other way SMPP carries concatenation (instead of a UDH).
const TLV_SAR_MSG_REF_NUM: u16 = 0x020C;
const TLV_SAR_TOTAL_SEGMENTS: u16 = 0x020E;
const TLV_SAR_SEGMENT_SEQNUM: u16 = 0x020F;

pub struct Inbound {
    pub gateway: String,
    pub state: SmsState,
    pub rx: Arc<dyn Receiver>,
}

impl Inbound {
    /// Answers each deliver_sm of one link, one at a time (parts of one text must not race to
    /// complete it twice), until the link's session drops its sender. Never aborted midway: a
    /// receiver cut off between two writes could leave half a conversation behind.
    pub async fn work(self: Arc<Self>, link: Arc<Link>, mut queue: mpsc::Receiver<Delivered>) {
        while let Some(d) = queue.recv().await {
            // Its answer could not be sent any more: the SMSC delivers it again on the next bind.
            if link.is_dead() {
                continue;
            }
            let status = self.handle(&d.sm, SystemTime::now()).await;
            if let Err(e) = link.respond(d.sequence, status, Body::DeliverSmResp).await {
                // The SMSC will deliver it again; the id makes that a duplicate.
                debug!(message = "deliver_sm_resp not sent.", gateway = %self.gateway, error = %e);
            }
        }
    }

    /// The command_status to answer a deliver_sm with.
    pub async fn handle(&self, sm: &ShortMessage, arrived: SystemTime) -> u32 {
        if receipt::is_receipt(sm.esm_class) {
            return self.receipt(sm).await;
        }
        let Some((concat, user_data)) = split_udh(sm) else {
            warn!(message = "deliver_sm with a malformed UDH refused.", gateway = %self.gateway);
            return self.outcome("malformed", pdu::ESME_RX_P_APPN);
        };
        let body = match text::decode(sm.data_coding, user_data) {
            Ok(t) => t,
            Err(e) => {
                warn!(message = "deliver_sm text not decodable; refused.", gateway = %self.gateway, reason = %e);
                return self.outcome("undecodable", pdu::ESME_RX_P_APPN);
            }
        };
        let body = match concat {
            None => body,
            Some(c) => {
                let key = format!("{}|{}|{}|{}", self.gateway, sm.source.addr, c.reference, c.total);
                match self.state.add_part(&key, c.total, c.index, &body, PARTS_TTL_SECS).await {
                    Ok(Some(parts)) => {
                        let status = self.deliver(sm, parts.concat(), arrived).await;
                        if status == pdu::ESME_ROK
                            && let Err(e) = self.state.drop_parts(&key).await
                        {
                            // Stored already; the parts expire on their own.
                            warn!(message = "Joined SMS parts not cleared.", gateway = %self.gateway, error = %e);
                        }
                        return status;
                    }
                    Ok(None) => {
                        debug!(message = "SMS part kept.", gateway = %self.gateway, index = c.index, total = c.total);
                        return self.outcome("part", pdu::ESME_ROK);
                    }
                    Err(e) => {
                        warn!(message = "SMS part not stored; SMSC asked to retry.", gateway = %self.gateway, error = %e);
                        return self.outcome("store_failed", pdu::ESME_RX_T_APPN);
                    }
                }
            }
        };
        self.deliver(sm, body, arrived).await
    }

    async fn deliver(&self, sm: &ShortMessage, body: String, arrived: SystemTime) -> u32 {
        let from = customer_number(sm);
        let to = sm.dest.addr.clone();
        let content = content_hash(&self.gateway, &from, &to, &body);
        let millis = arrived.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        let provider_id =
            match self.state.first_id(&content, &format!("smpp-{content}-{millis}"), DEDUPE_WINDOW_SECS).await {
                Ok(id) => id,
                Err(e) => {
                    warn!(message = "SMPP text not stored; SMSC asked to retry.", gateway = %self.gateway, error = %e);
                    return self.outcome("store_failed", pdu::ESME_RX_T_APPN);
                }
            };
        let sms = InboundSms { gateway: self.gateway.clone(), provider_id, from, to, body, media: Vec::new() };
        match self.rx.receive(sms).await {
            Ok(r) => {
                debug!(message = "SMPP text stored.", gateway = %self.gateway, outcome = r.label());
                self.outcome("text", pdu::ESME_ROK)
            }
            Err(e) => {
                warn!(message = "SMPP text not stored; SMSC asked to retry.", gateway = %self.gateway, error = %e);
                self.outcome("store_failed", pdu::ESME_RX_T_APPN)
            }
        }
    }

    fn outcome(&self, kind: &'static str, status: u32) -> u32 {
        metrics::counter!("switchboard_smpp_inbound_total", "gateway" => self.gateway.clone(), "kind" => kind)
            .increment(1);
        status
    }

    async fn receipt(&self, sm: &ShortMessage) -> u32 {
        let Some(r) = receipt::parse(sm) else {
            warn!(message = "Delivery receipt without a message id refused.", gateway = %self.gateway);
            return self.outcome("malformed", pdu::ESME_RX_P_APPN);
        };
        let Some(state) = r.state else {
            debug!(message = "Delivery receipt in state unknown; nothing to record.", gateway = %self.gateway);
            return self.outcome("receipt_unknown", pdu::ESME_ROK);
        };
        let report = StatusReport { gateway: self.gateway.clone(), provider_id: r.id, state, code: r.code };
        match self.rx.status(report).await {
            Ok(()) => self.outcome("receipt", pdu::ESME_ROK),
            Err(e) => {
                warn!(message = "Delivery receipt not stored; SMSC asked to retry.", gateway = %self.gateway, error = %e);
                self.outcome("store_failed", pdu::ESME_RX_T_APPN)
            }
        }
    }
}

/// Concatenation info (UDH when UDHI is set, else SAR TLVs) and the user data to decode.
fn split_udh(sm: &ShortMessage) -> Option<(Option<Concat>, &[u8])> {
    let payload = sm.payload();
    if sm.esm_class & 0x40 != 0 {
        return text::parse_udh(payload);
    }
    let sar = (sm.tlv(TLV_SAR_MSG_REF_NUM), sm.tlv(TLV_SAR_TOTAL_SEGMENTS), sm.tlv(TLV_SAR_SEGMENT_SEQNUM));
    match sar {
        (Some(&[hi, lo]), Some(&[total]), Some(&[index])) if total >= 1 && (1..=total).contains(&index) => {
            let concat = (total > 1).then_some(Concat { reference: u16::from_be_bytes([hi, lo]), total, index });
            Some((concat, payload))
        }
        _ => Some((None, payload)),
    }
}

/// The sender as a number we can match to a contact: TON 1 (international) means it already has
/// its country code, so it is E.164 once it has a '+'.
pub fn customer_number(sm: &ShortMessage) -> String {
    let a = sm.source.addr.trim();
    if sm.source.ton == 1 && !a.starts_with('+') && !a.is_empty() { format!("+{a}") } else { a.to_string() }
}

/// What a customer text is known by (see the module doc for why not an id from the SMSC).
pub fn content_hash(gateway: &str, from: &str, to: &str, body: &str) -> String {
    let mut h = Sha256::new();
    for part in [gateway, from, to, body] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::sms::smpp::pdu::{Address, Tlv};

    #[test]
    fn the_content_hash_covers_every_field_and_their_boundaries() {
        let h = content_hash("gw", "+491", "4900", "hi");
        assert_eq!(h, content_hash("gw", "+491", "4900", "hi"));
        assert_ne!(h, content_hash("gw", "+491", "4900", "hi!"));
        assert_ne!(h, content_hash("gw2", "+491", "4900", "hi"));
        // Field boundaries count: "ab"+"c" is not "a"+"bc".
        assert_ne!(content_hash("gw", "ab", "c", ""), content_hash("gw", "a", "bc", ""));
        assert_eq!(h.len(), 32);
    }

    #[test]
    fn international_senders_get_a_plus() {
        let sm = |ton, addr: &str| ShortMessage {
            source: Address { ton, npi: 1, addr: addr.into() },
            ..ShortMessage::default()
        };
        assert_eq!(customer_number(&sm(1, "491511")), "+491511");
        assert_eq!(customer_number(&sm(1, "+491511")), "+491511");
        assert_eq!(customer_number(&sm(2, "01511")), "01511");
        assert_eq!(customer_number(&sm(5, "ACME")), "ACME");
    }

    #[test]
    fn sar_tlvs_concatenate_like_a_udh() {
        let sm = ShortMessage {
            short_message: b"abc".to_vec(),
            tlvs: vec![
                Tlv { tag: TLV_SAR_MSG_REF_NUM, value: vec![1, 2] },
                Tlv { tag: TLV_SAR_TOTAL_SEGMENTS, value: vec![3] },
                Tlv { tag: TLV_SAR_SEGMENT_SEQNUM, value: vec![2] },
            ],
            ..ShortMessage::default()
        };
        let (c, data) = split_udh(&sm).unwrap();
        assert_eq!(c, Some(Concat { reference: 0x0102, total: 3, index: 2 }));
        assert_eq!(data, b"abc");
        let udh =
            ShortMessage { esm_class: 0x40, short_message: vec![5, 0, 3, 9, 2, 1, b'x'], ..ShortMessage::default() };
        assert_eq!(split_udh(&udh).unwrap(), (Some(Concat { reference: 9, total: 2, index: 1 }), &b"x"[..]));
        let broken = ShortMessage { esm_class: 0x40, short_message: vec![9, 0], ..ShortMessage::default() };
        assert_eq!(split_udh(&broken), None);
    }
}
