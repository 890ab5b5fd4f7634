//! The SMPP 3.4 wire format for the PDUs an ESME bound as transceiver meets: bind_transceiver,
//! submit_sm, deliver_sm, enquire_link, unbind, generic_nack and their responses. Anything else
//! decodes as [`Body::Other`] so the session can answer it with generic_nack.
//!
//! Decoding is lenient where SMSCs are known to be sloppy (C-strings longer than the spec's
//! maximum, non-ASCII bytes in addresses, a response body missing on an error status) and strict
//! where a mistake would misframe the stream (command_length). It never panics on any input: a
//! body that runs short is an error naming the field, and the header alone still decodes, so the
//! session can answer a broken request with its sequence number.

use tokio::io::{AsyncRead, AsyncReadExt};

pub const GENERIC_NACK: u32 = 0x8000_0000;
pub const SUBMIT_SM: u32 = 0x0000_0004;
pub const SUBMIT_SM_RESP: u32 = 0x8000_0004;
pub const DELIVER_SM: u32 = 0x0000_0005;
pub const DELIVER_SM_RESP: u32 = 0x8000_0005;
pub const UNBIND: u32 = 0x0000_0006;
pub const UNBIND_RESP: u32 = 0x8000_0006;
pub const BIND_TRANSCEIVER: u32 = 0x0000_0009;
pub const BIND_TRANSCEIVER_RESP: u32 = 0x8000_0009;
pub const ENQUIRE_LINK: u32 = 0x0000_0015;
pub const ENQUIRE_LINK_RESP: u32 = 0x8000_0015;

/// The response bit of command_id.
pub const RESPONSE: u32 = 0x8000_0000;

pub const ESME_ROK: u32 = 0x00;
pub const ESME_RINVCMDLEN: u32 = 0x02;
pub const ESME_RINVCMDID: u32 = 0x03;
pub const ESME_RMSGQFUL: u32 = 0x14;
pub const ESME_RTHROTTLED: u32 = 0x58;
/// "Temporary application error": the SMSC keeps the message and delivers it again.
pub const ESME_RX_T_APPN: u32 = 0x64;
/// "Permanent application error": the SMSC gives the message up.
pub const ESME_RX_P_APPN: u32 = 0x65;

/// TLV tags this adapter reads.
pub const TLV_RECEIPTED_MESSAGE_ID: u16 = 0x001E;
pub const TLV_MESSAGE_PAYLOAD: u16 = 0x0424;
pub const TLV_MESSAGE_STATE: u16 = 0x0427;

pub const HEADER_LEN: usize = 16;
/// Larger than any PDU an SMSC sends (short_message ≤ 254, message_payload ≤ 64 KiB): a
/// command_length past it means the stream is misframed, not that a big PDU is coming.
pub const MAX_PDU_LEN: usize = 70_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    #[error("command_length {0} is out of range (16 to {MAX_PDU_LEN})")]
    Length(u32),
    #[error("PDU of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("{command}: body ends inside {field}")]
    Truncated { command: &'static str, field: &'static str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub command_id: u32,
    pub status: u32,
    pub sequence: u32,
}

impl Header {
    /// The header of a whole PDU (length prefix included).
    pub fn parse(frame: &[u8]) -> Result<Header, PduError> {
        if frame.len() < HEADER_LEN {
            return Err(PduError::Short(frame.len()));
        }
        let word = |i: usize| u32::from_be_bytes([frame[i], frame[i + 1], frame[i + 2], frame[i + 3]]);
        Ok(Header { command_id: word(4), status: word(8), sequence: word(12) })
    }

    pub fn is_response(&self) -> bool {
        self.command_id & RESPONSE != 0
    }
}

/// An address with its type of number and numbering plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    pub ton: u8,
    pub npi: u8,
    pub addr: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    pub tag: u16,
    pub value: Vec<u8>,
}

/// The body shared by submit_sm and deliver_sm.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShortMessage {
    pub service_type: String,
    pub source: Address,
    pub dest: Address,
    pub esm_class: u8,
    pub protocol_id: u8,
    pub priority_flag: u8,
    pub schedule_delivery_time: String,
    pub validity_period: String,
    pub registered_delivery: u8,
    pub replace_if_present: u8,
    pub data_coding: u8,
    pub sm_default_msg_id: u8,
    pub short_message: Vec<u8>,
    pub tlvs: Vec<Tlv>,
}

impl ShortMessage {
    pub fn tlv(&self, tag: u16) -> Option<&[u8]> {
        self.tlvs.iter().find(|t| t.tag == tag).map(|t| t.value.as_slice())
    }

    /// The user data: short_message, or the message_payload TLV an SMSC may use instead when
    /// short_message is empty.
    pub fn payload(&self) -> &[u8] {
        match self.tlv(TLV_MESSAGE_PAYLOAD) {
            Some(p) if self.short_message.is_empty() => p,
            _ => &self.short_message,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bind {
    pub system_id: String,
    pub password: String,
    pub system_type: String,
    pub interface_version: u8,
    pub addr_ton: u8,
    pub addr_npi: u8,
    pub address_range: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    BindTransceiver(Bind),
    /// The SMSC's system_id (absent on a refused bind).
    BindTransceiverResp {
        system_id: String,
    },
    SubmitSm(ShortMessage),
    SubmitSmResp {
        message_id: String,
    },
    DeliverSm(ShortMessage),
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    Unbind,
    UnbindResp,
    GenericNack,
    /// A command this ESME does not handle, body kept as received.
    Other(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    pub status: u32,
    pub sequence: u32,
    pub body: Body,
}

impl Pdu {
    pub fn request(sequence: u32, body: Body) -> Pdu {
        Pdu { status: ESME_ROK, sequence, body }
    }

    /// For [`Body::Other`] the command_id is not known from the body: see [`Pdu::encode_as`].
    pub fn command_id(&self) -> u32 {
        match &self.body {
            Body::BindTransceiver(_) => BIND_TRANSCEIVER,
            Body::BindTransceiverResp { .. } => BIND_TRANSCEIVER_RESP,
            Body::SubmitSm(_) => SUBMIT_SM,
            Body::SubmitSmResp { .. } => SUBMIT_SM_RESP,
            Body::DeliverSm(_) => DELIVER_SM,
            Body::DeliverSmResp => DELIVER_SM_RESP,
            Body::EnquireLink => ENQUIRE_LINK,
            Body::EnquireLinkResp => ENQUIRE_LINK_RESP,
            Body::Unbind => UNBIND,
            Body::UnbindResp => UNBIND_RESP,
            Body::GenericNack | Body::Other(_) => GENERIC_NACK,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        self.encode_as(self.command_id())
    }

    pub fn encode_as(&self, command_id: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&command_id.to_be_bytes());
        out.extend_from_slice(&self.status.to_be_bytes());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        match &self.body {
            Body::BindTransceiver(b) => {
                cstr(&mut out, &b.system_id);
                cstr(&mut out, &b.password);
                cstr(&mut out, &b.system_type);
                out.extend_from_slice(&[b.interface_version, b.addr_ton, b.addr_npi]);
                cstr(&mut out, &b.address_range);
            }
            Body::BindTransceiverResp { system_id } => cstr(&mut out, system_id),
            Body::SubmitSm(sm) | Body::DeliverSm(sm) => encode_sm(&mut out, sm),
            Body::SubmitSmResp { message_id } => cstr(&mut out, message_id),
            // message_id is unused in deliver_sm_resp and "must be set to NULL".
            Body::DeliverSmResp => out.push(0),
            Body::EnquireLink | Body::EnquireLinkResp | Body::Unbind | Body::UnbindResp | Body::GenericNack => {}
            Body::Other(raw) => out.extend_from_slice(raw),
        }
        let len = out.len() as u32;
        out[..4].copy_from_slice(&len.to_be_bytes());
        out
    }

    /// A whole PDU (length prefix included). The header is checked first, so a caller whose
    /// decode failed can still answer by [`Header::parse`].
    pub fn decode(frame: &[u8]) -> Result<Pdu, PduError> {
        let h = Header::parse(frame)?;
        let declared = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        if declared as usize != frame.len() {
            return Err(PduError::Length(declared));
        }
        let mut r = Reader { buf: &frame[HEADER_LEN..], command: name(h.command_id) };
        let error_status = h.status != ESME_ROK;
        let body = match h.command_id {
            BIND_TRANSCEIVER => Body::BindTransceiver(Bind {
                system_id: r.cstr("system_id")?,
                password: r.cstr("password")?,
                system_type: r.cstr("system_type")?,
                interface_version: r.u8("interface_version")?,
                addr_ton: r.u8("addr_ton")?,
                addr_npi: r.u8("addr_npi")?,
                address_range: r.cstr("address_range")?,
            }),
            // SMSCs often send no body at all with an error status.
            BIND_TRANSCEIVER_RESP => Body::BindTransceiverResp {
                system_id: if r.buf.is_empty() && error_status { String::new() } else { r.cstr("system_id")? },
            },
            SUBMIT_SM => Body::SubmitSm(decode_sm(&mut r)?),
            SUBMIT_SM_RESP => Body::SubmitSmResp {
                message_id: if r.buf.is_empty() && error_status { String::new() } else { r.cstr("message_id")? },
            },
            DELIVER_SM => Body::DeliverSm(decode_sm(&mut r)?),
            DELIVER_SM_RESP => Body::DeliverSmResp,
            ENQUIRE_LINK => Body::EnquireLink,
            ENQUIRE_LINK_RESP => Body::EnquireLinkResp,
            UNBIND => Body::Unbind,
            UNBIND_RESP => Body::UnbindResp,
            GENERIC_NACK => Body::GenericNack,
            _ => Body::Other(r.buf.to_vec()),
        };
        Ok(Pdu { status: h.status, sequence: h.sequence, body })
    }
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    // An interior NUL would end the field early and shift every later field.
    out.extend(s.bytes().filter(|&b| b != 0));
    out.push(0);
}

fn encode_sm(out: &mut Vec<u8>, sm: &ShortMessage) {
    cstr(out, &sm.service_type);
    out.extend_from_slice(&[sm.source.ton, sm.source.npi]);
    cstr(out, &sm.source.addr);
    out.extend_from_slice(&[sm.dest.ton, sm.dest.npi]);
    cstr(out, &sm.dest.addr);
    out.extend_from_slice(&[sm.esm_class, sm.protocol_id, sm.priority_flag]);
    cstr(out, &sm.schedule_delivery_time);
    cstr(out, &sm.validity_period);
    out.extend_from_slice(&[sm.registered_delivery, sm.replace_if_present, sm.data_coding, sm.sm_default_msg_id]);
    // sm_length is one octet: the gateway never builds more than one segment's 140 octets.
    let len = sm.short_message.len().min(255);
    out.push(len as u8);
    out.extend_from_slice(&sm.short_message[..len]);
    for t in &sm.tlvs {
        out.extend_from_slice(&t.tag.to_be_bytes());
        out.extend_from_slice(&(t.value.len() as u16).to_be_bytes());
        out.extend_from_slice(&t.value);
    }
}

fn decode_sm(r: &mut Reader<'_>) -> Result<ShortMessage, PduError> {
    let mut sm = ShortMessage { service_type: r.cstr("service_type")?, ..ShortMessage::default() };
    sm.source = Address { ton: r.u8("source_addr_ton")?, npi: r.u8("source_addr_npi")?, addr: r.cstr("source_addr")? };
    sm.dest = Address { ton: r.u8("dest_addr_ton")?, npi: r.u8("dest_addr_npi")?, addr: r.cstr("destination_addr")? };
    sm.esm_class = r.u8("esm_class")?;
    sm.protocol_id = r.u8("protocol_id")?;
    sm.priority_flag = r.u8("priority_flag")?;
    sm.schedule_delivery_time = r.cstr("schedule_delivery_time")?;
    sm.validity_period = r.cstr("validity_period")?;
    sm.registered_delivery = r.u8("registered_delivery")?;
    sm.replace_if_present = r.u8("replace_if_present_flag")?;
    sm.data_coding = r.u8("data_coding")?;
    sm.sm_default_msg_id = r.u8("sm_default_msg_id")?;
    let len = r.u8("sm_length")?;
    sm.short_message = r.take(usize::from(len), "short_message")?.to_vec();
    while !r.buf.is_empty() {
        let tag = u16::from_be_bytes(r.take(2, "TLV tag")?.try_into().expect("2 bytes"));
        let len = u16::from_be_bytes(r.take(2, "TLV length")?.try_into().expect("2 bytes"));
        sm.tlvs.push(Tlv { tag, value: r.take(usize::from(len), "TLV value")?.to_vec() });
    }
    Ok(sm)
}

struct Reader<'a> {
    buf: &'a [u8],
    command: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], PduError> {
        let Some((head, rest)) = self.buf.split_at_checked(n) else {
            return Err(PduError::Truncated { command: self.command, field });
        };
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, PduError> {
        Ok(self.take(1, field)?[0])
    }

    fn cstr(&mut self, field: &'static str) -> Result<String, PduError> {
        let Some(end) = self.buf.iter().position(|&b| b == 0) else {
            return Err(PduError::Truncated { command: self.command, field });
        };
        let s = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }
}

/// The command's name for logs.
pub fn name(command_id: u32) -> &'static str {
    match command_id {
        GENERIC_NACK => "generic_nack",
        SUBMIT_SM => "submit_sm",
        SUBMIT_SM_RESP => "submit_sm_resp",
        DELIVER_SM => "deliver_sm",
        DELIVER_SM_RESP => "deliver_sm_resp",
        UNBIND => "unbind",
        UNBIND_RESP => "unbind_resp",
        BIND_TRANSCEIVER => "bind_transceiver",
        BIND_TRANSCEIVER_RESP => "bind_transceiver_resp",
        ENQUIRE_LINK => "enquire_link",
        ENQUIRE_LINK_RESP => "enquire_link_resp",
        _ => "unknown command",
    }
}

/// A readable name for a command_status, for logs and the agent's error.
pub fn status_name(status: u32) -> &'static str {
    match status {
        0x00 => "ESME_ROK (no error)",
        0x01 => "ESME_RINVMSGLEN (message length is invalid)",
        0x02 => "ESME_RINVCMDLEN (command length is invalid)",
        0x03 => "ESME_RINVCMDID (invalid command id)",
        0x04 => "ESME_RINVBNDSTS (incorrect bind status for the command)",
        0x05 => "ESME_RALYBND (already bound)",
        0x06 => "ESME_RINVPRTFLG (invalid priority flag)",
        0x07 => "ESME_RINVREGDLVFLG (invalid registered delivery flag)",
        0x08 => "ESME_RSYSERR (system error)",
        0x0A => "ESME_RINVSRCADR (invalid source address)",
        0x0B => "ESME_RINVDSTADR (invalid destination address)",
        0x0C => "ESME_RINVMSGID (message id is invalid)",
        0x0D => "ESME_RBINDFAIL (bind failed)",
        0x0E => "ESME_RINVPASWD (invalid password)",
        0x0F => "ESME_RINVSYSID (invalid system id)",
        0x14 => "ESME_RMSGQFUL (message queue full)",
        0x15 => "ESME_RINVSERTYP (invalid service type)",
        0x43 => "ESME_RINVESMCLASS (invalid esm_class)",
        0x45 => "ESME_RSUBMITFAIL (submit_sm failed)",
        0x48 => "ESME_RINVSRCTON (invalid source address TON)",
        0x49 => "ESME_RINVSRCNPI (invalid source address NPI)",
        0x50 => "ESME_RINVDSTTON (invalid destination address TON)",
        0x51 => "ESME_RINVDSTNPI (invalid destination address NPI)",
        0x53 => "ESME_RINVSYSTYP (invalid system_type)",
        0x58 => "ESME_RTHROTTLED (throttling error: too many messages)",
        0x61 => "ESME_RINVSCHED (invalid scheduled delivery time)",
        0x62 => "ESME_RINVEXPIRY (invalid validity period)",
        0x63 => "ESME_RINVDFTMSGID (predefined message not found)",
        0x64 => "ESME_RX_T_APPN (receiver temporary application error)",
        0x65 => "ESME_RX_P_APPN (receiver permanent application error)",
        0x66 => "ESME_RX_R_APPN (receiver rejected the message)",
        0x67 => "ESME_RQUERYFAIL (query_sm failed)",
        0xC0 => "ESME_RINVOPTPARSTREAM (error in the optional parameters)",
        0xC1 => "ESME_ROPTPARNOTALLWD (optional parameter not allowed)",
        0xC2 => "ESME_RINVPARLEN (invalid parameter length)",
        0xC3 => "ESME_RMISSINGOPTPARAM (expected optional parameter missing)",
        0xC4 => "ESME_RINVOPTPARAMVAL (invalid optional parameter value)",
        0xFE => "ESME_RDELIVERYFAILURE (delivery failure)",
        0xFF => "ESME_RUNKNOWNERR (unknown error)",
        0x0400..=0x04FF => "SMSC vendor-specific error",
        _ => "reserved or unknown command_status",
    }
}

/// Reads one whole PDU (length prefix included). `Ok(None)` on a clean end of stream between
/// PDUs.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let n = u32::from_be_bytes(len);
    if (n as usize) < HEADER_LEN || n as usize > MAX_PDU_LEN {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, PduError::Length(n)));
    }
    let mut frame = vec![0u8; n as usize];
    frame[..4].copy_from_slice(&len);
    r.read_exact(&mut frame[4..]).await?;
    Ok(Some(frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sm() -> ShortMessage {
        ShortMessage {
            service_type: "".into(),
            source: Address { ton: 1, npi: 1, addr: "4930123".into() },
            dest: Address { ton: 1, npi: 1, addr: "491511234567".into() },
            esm_class: 0x40,
            registered_delivery: 1,
            data_coding: 8,
            short_message: vec![5, 0, 3, 7, 2, 1, 0, 0x48],
            tlvs: vec![Tlv { tag: TLV_MESSAGE_STATE, value: vec![2] }],
            ..ShortMessage::default()
        }
    }

    #[test]
    fn every_body_round_trips() {
        let bodies = [
            Body::BindTransceiver(Bind {
                system_id: "switchboard".into(),
                password: "secret".into(),
                system_type: "SB".into(),
                interface_version: 0x34,
                ..Bind::default()
            }),
            Body::BindTransceiverResp { system_id: "SMSC".into() },
            Body::SubmitSm(sm()),
            Body::SubmitSmResp { message_id: "abc-123".into() },
            Body::DeliverSm(sm()),
            Body::DeliverSmResp,
            Body::EnquireLink,
            Body::EnquireLinkResp,
            Body::Unbind,
            Body::UnbindResp,
            Body::GenericNack,
        ];
        for (i, body) in bodies.into_iter().enumerate() {
            let pdu = Pdu { status: 0, sequence: 1000 + i as u32, body };
            let bytes = pdu.encode();
            assert_eq!(u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize, bytes.len());
            assert_eq!(Pdu::decode(&bytes).unwrap(), pdu, "{:?}", pdu.body);
        }
    }

    #[test]
    fn known_bytes_decode() {
        // enquire_link seq 7, as any SMSC sends it.
        let el = [0, 0, 0, 16, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 7];
        assert_eq!(Pdu::decode(&el).unwrap(), Pdu::request(7, Body::EnquireLink));
        // A refused bind without a body.
        let refused = [0, 0, 0, 16, 0x80, 0, 0, 9, 0, 0, 0, 0x0E, 0, 0, 0, 1];
        let p = Pdu::decode(&refused).unwrap();
        assert_eq!((p.status, &p.body), (0x0E, &Body::BindTransceiverResp { system_id: String::new() }));
        // An unknown command keeps its header for the generic_nack.
        let unknown = [0, 0, 0, 18, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 9, 1, 2];
        assert_eq!(Pdu::decode(&unknown).unwrap().body, Body::Other(vec![1, 2]));
        assert_eq!(Header::parse(&unknown).unwrap().command_id, 0x1234);
    }

    #[test]
    fn message_payload_stands_in_for_an_empty_short_message() {
        let mut m = sm();
        m.short_message.clear();
        m.tlvs.push(Tlv { tag: TLV_MESSAGE_PAYLOAD, value: b"long".to_vec() });
        assert_eq!(m.payload(), b"long");
    }

    #[test]
    fn truncated_or_garbage_input_is_an_error_never_a_panic() {
        // Without TLVs every byte is required: any cut lands inside a field.
        let full = Pdu::request(3, Body::DeliverSm(ShortMessage { tlvs: Vec::new(), ..sm() })).encode();
        for cut in 0..full.len() {
            let mut part = full[..cut].to_vec();
            if part.len() >= 4 {
                part[..4].copy_from_slice(&(cut as u32).to_be_bytes());
            }
            assert!(Pdu::decode(&part).is_err(), "cut at {cut}");
        }
        // A deterministic pseudo-random walk over garbage: whatever it is, decoding returns.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 96) as usize;
            let mut buf: Vec<u8> = (0..len).map(|i| (x >> (i % 56)) as u8).collect();
            if buf.len() >= 8 {
                buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
                // Steer towards the commands with bodies.
                let id = [SUBMIT_SM, DELIVER_SM, BIND_TRANSCEIVER, SUBMIT_SM_RESP][(x % 4) as usize];
                buf[4..8].copy_from_slice(&id.to_be_bytes());
            }
            let _ = Pdu::decode(&buf);
        }
    }

    #[tokio::test]
    async fn frames_are_read_whole_and_bad_lengths_refused() {
        let a = Pdu::request(1, Body::EnquireLink).encode();
        let b = Pdu::request(2, Body::SubmitSm(sm())).encode();
        let stream = [a.clone(), b.clone()].concat();
        let mut r = stream.as_slice();
        assert_eq!(read_frame(&mut r).await.unwrap(), Some(a));
        assert_eq!(read_frame(&mut r).await.unwrap(), Some(b));
        assert_eq!(read_frame(&mut r).await.unwrap(), None);
        let mut bad: &[u8] = &[0, 0, 0, 3, 1, 2, 3];
        assert!(read_frame(&mut bad).await.is_err());
        let mut huge: &[u8] = &[0x7F, 0, 0, 0, 0, 0, 0, 0];
        assert!(read_frame(&mut huge).await.is_err());
    }
}
