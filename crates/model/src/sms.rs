//! The SMS channel's text rules: which alphabet a message goes out in, how many parts it costs,
//! the concatenation headers that tie parts together, and the keywords a customer texts to opt
//! out, opt back in or ask for help.
//!
//! The agent's desktop shows [`segments`] while the agent types, so the count a message will cost
//! is known before it is sent; the SMPP adapter sends what [`split`] (or [`encode`] for one part)
//! produces, each concatenated part prefixed with [`concat_udh`] in `submit_sm`, and reads
//! `deliver_sm` through [`parse_udh`] and [`decode`]. [`keyword`] decides whether an inbound
//! message is a STOP/START/HELP rather than something for an agent. [`segments`] and [`split`]
//! share one packing rule, so the count the agent is shown is the count that is billed.
//!
//! GSM-7 here is always the SMPP form: unpacked septets, one per byte (the SMSC packs them).

/// The alphabet a message is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 03.38 default alphabet with its extension table.
    Gsm7,
    /// UTF-16BE; characters outside the BMP take two units.
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
        }
    }

    /// SMPP `data_coding`: 0x00 is "SMSC default alphabet", which SMSCs take as GSM-7.
    pub fn data_coding(self) -> u8 {
        match self {
            Encoding::Gsm7 => 0x00,
            Encoding::Ucs2 => 0x08,
        }
    }

    /// Units (septets or UTF-16 code units) a message of one part holds.
    pub fn single_capacity(self) -> usize {
        match self {
            Encoding::Gsm7 => 160,
            Encoding::Ucs2 => 70,
        }
    }

    /// Units a part of a concatenated message holds: the 6-byte UDH takes the rest of the 140
    /// octets (for GSM-7, 7 septets once padded to a septet boundary).
    pub fn concat_capacity(self) -> usize {
        match self {
            Encoding::Gsm7 => 153,
            Encoding::Ucs2 => 67,
        }
    }
}

/// What a text costs: its alphabet, its size and how many parts it is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    pub encoding: Encoding,
    /// Septets (extension characters count 2) or UTF-16 code units.
    pub units: usize,
    pub count: usize,
    /// 160/153 (GSM-7) or 70/67 (UCS-2), by whether the text is one part or several.
    pub per_segment: usize,
    /// Units still free in the last part before another one is needed.
    pub remaining: usize,
}

const ESC: u8 = 0x1B;

/// GSM 03.38 default alphabet by code. 0x1B is the escape to the extension table: its slot holds
/// U+001B only as a placeholder, which [`gsm7_basic_code`] never hands out.
const GSM7_BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// GSM 03.38 extension table: the code after 0x1B, and the character it stands for.
const GSM7_EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

fn gsm7_basic_code(c: char) -> Option<u8> {
    // Letters, digits and space sit at their ASCII codes; most text never needs the search.
    if c.is_ascii_alphanumeric() || c == ' ' {
        return Some(c as u8);
    }
    let code = GSM7_BASIC.iter().position(|&b| b == c)?;
    (code != usize::from(ESC)).then_some(code as u8)
}

fn gsm7_extension_code(c: char) -> Option<u8> {
    GSM7_EXTENSION.iter().find(|&&(_, e)| e == c).map(|&(code, _)| code)
}

/// A character's septets in the SMPP (unpacked) form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Septets {
    One(u8),
    /// 0x1B, then the code in the extension table.
    Escaped(u8),
}

impl Septets {
    fn len(self) -> usize {
        match self {
            Septets::One(_) => 1,
            Septets::Escaped(_) => 2,
        }
    }

    fn push_to(self, out: &mut Vec<u8>) {
        match self {
            Septets::One(code) => out.push(code),
            Septets::Escaped(code) => out.extend_from_slice(&[ESC, code]),
        }
    }
}

fn gsm7(c: char) -> Option<Septets> {
    gsm7_basic_code(c).map(Septets::One).or_else(|| gsm7_extension_code(c).map(Septets::Escaped))
}

/// Whether `c` can be sent in GSM-7 (the default alphabet or its extension table).
pub fn is_gsm7(c: char) -> bool {
    gsm7(c).is_some()
}

/// The alphabet `text` goes out in: GSM-7 when every character has a GSM-7 code, else UCS-2.
pub fn encoding_of(text: &str) -> Encoding {
    if text.chars().all(is_gsm7) { Encoding::Gsm7 } else { Encoding::Ucs2 }
}

/// Units `c` takes in `encoding`. Only called for a GSM-7 text whose every character has a code,
/// so the fallback of 1 is never taken.
fn units_of(c: char, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Gsm7 => gsm7(c).map_or(1, Septets::len),
        Encoding::Ucs2 => c.len_utf16(),
    }
}

fn push_char(c: char, encoding: Encoding, out: &mut Vec<u8>) {
    match encoding {
        Encoding::Gsm7 => {
            if let Some(septets) = gsm7(c) {
                septets.push_to(out);
            }
        }
        Encoding::Ucs2 => {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.extend_from_slice(&unit.to_be_bytes());
            }
        }
    }
}

/// Fills concatenated parts greedily, a whole character at a time, so an escape pair or a
/// surrogate pair never straddles two parts (a receiver decodes each part on its own).
struct Packer {
    capacity: usize,
    used: usize,
    count: usize,
}

impl Packer {
    fn new(capacity: usize) -> Packer {
        Packer { capacity, used: 0, count: 1 }
    }

    /// Places a character of `units`; true when it opens a new part.
    fn place(&mut self, units: usize) -> bool {
        if self.used + units > self.capacity {
            self.count += 1;
            self.used = units;
            true
        } else {
            self.used += units;
            false
        }
    }
}

/// The alphabet, size and number of parts of `text`. Empty text is one (empty) part.
pub fn segments(text: &str) -> Segments {
    let encoding = encoding_of(text);
    let units: usize = text.chars().map(|c| units_of(c, encoding)).sum();
    let single = encoding.single_capacity();
    if units <= single {
        return Segments { encoding, units, count: 1, per_segment: single, remaining: single - units };
    }
    let per_segment = encoding.concat_capacity();
    let mut packer = Packer::new(per_segment);
    for c in text.chars() {
        packer.place(units_of(c, encoding));
    }
    Segments { encoding, units, count: packer.count, per_segment, remaining: per_segment - packer.used }
}

/// `text` as one payload per part, without the UDH: GSM-7 as unpacked septets (0x1B and the code
/// for extension characters), UCS-2 as UTF-16BE. `segments(text).count` is always the number of
/// payloads.
pub fn split(text: &str) -> (Encoding, Vec<Vec<u8>>) {
    let encoding = encoding_of(text);
    let units: usize = text.chars().map(|c| units_of(c, encoding)).sum();
    if units <= encoding.single_capacity() {
        return (encoding, vec![encode_as(text, encoding)]);
    }
    let mut packer = Packer::new(encoding.concat_capacity());
    let mut payloads = Vec::new();
    let mut current = Vec::new();
    for c in text.chars() {
        if packer.place(units_of(c, encoding)) {
            payloads.push(std::mem::take(&mut current));
        }
        push_char(c, encoding, &mut current);
    }
    payloads.push(current);
    (encoding, payloads)
}

fn encode_as(text: &str, encoding: Encoding) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 2);
    for c in text.chars() {
        push_char(c, encoding, &mut out);
    }
    out
}

/// `text` whole, for a message of one part: (data_coding, short_message).
pub fn encode(text: &str) -> (u8, Vec<u8>) {
    let encoding = encoding_of(text);
    (encoding.data_coding(), encode_as(text, encoding))
}

/// The 6-byte concatenation UDH: UDHL 05, IEI 00 (8-bit reference), IEDL 03, reference, total,
/// index (1-based). Goes before the payload with the UDHI bit (0x40) set in `esm_class`.
pub fn concat_udh(reference: u8, total: u8, index: u8) -> [u8; 6] {
    [0x05, 0x00, 0x03, reference, total, index]
}

/// Which part of which concatenated message a payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concat {
    /// 8-bit references (IEI 0x00) widen to 16 bits; both kinds share one space per sender.
    pub reference: u16,
    pub total: u8,
    /// 1-based.
    pub index: u8,
}

/// Splits a payload that starts with a UDH (`esm_class` has UDHI, 0x40) into its concatenation
/// info, if any, and the user data after the header. Other information elements are skipped; a
/// concatenation element repeated keeps the last one (3GPP 23.040 §9.2.3.24). A header that runs
/// past the payload, an element that runs past the header, a concatenation element of the wrong
/// length, or total 0 / index 0 / index > total → None.
pub fn parse_udh(payload: &[u8]) -> Option<(Option<Concat>, &[u8])> {
    let (&udhl, after) = payload.split_first()?;
    let (mut header, rest) = after.split_at_checked(usize::from(udhl))?;
    let mut concat = None;
    while let [iei, iedl, tail @ ..] = header {
        let (data, tail) = tail.split_at_checked(usize::from(*iedl))?;
        match (iei, data) {
            (0x00, &[reference, total, index]) => concat = Some((u16::from(reference), total, index)),
            (0x08, &[hi, lo, total, index]) => concat = Some((u16::from_be_bytes([hi, lo]), total, index)),
            (0x00 | 0x08, _) => return None,
            _ => {}
        }
        header = tail;
    }
    // One byte left over cannot be an element.
    if !header.is_empty() {
        return None;
    }
    let concat = match concat {
        None => None,
        Some((_, total, index)) if total == 0 || index == 0 || index > total => return None,
        Some((reference, total, index)) => Some(Concat { reference, total, index }),
    };
    Some((concat, rest))
}

/// An SMPP `short_message` as text, by `data_coding`:
///
/// - 0x00: GSM-7 unpacked septets. An escape to a code the extension table lacks shows the base
///   character (3GPP 23.038 §6.2.1.1), escape-escape and a trailing escape show a space, a byte
///   above 0x7F shows U+FFFD.
/// - 0x01: IA5 (ASCII); bytes above 0x7F show U+FFFD.
/// - 0x03: Latin-1.
/// - 0x08: UCS-2 read as UTF-16BE, U+FFFD for lone surrogates and an odd last byte.
/// - 0x10–0x1F and 0xF0–0xFF (GSM 03.38 groups carrying a message class, e.g. flash SMS) and
///   0xC0–0xEF (message waiting indication): by the alphabet their bits name.
///
/// 8-bit binary (0x02, 0x04 and the 8-bit DCS groups) and the other codings are errors naming
/// the coding.
pub fn decode(data_coding: u8, bytes: &[u8]) -> Result<String, String> {
    let alphabet = match data_coding {
        0x00 => Alphabet::Gsm7,
        0x01 => return Ok(bytes.iter().map(|&b| if b.is_ascii() { char::from(b) } else { '\u{FFFD}' }).collect()),
        0x03 => return Ok(bytes.iter().map(|&b| char::from(b)).collect()),
        0x08 => Alphabet::Ucs2,
        0x02 | 0x04 => Alphabet::Binary,
        // General data coding, uncompressed, with a message class: bits 3..2 name the alphabet.
        0x10..=0x1F => match (data_coding >> 2) & 0b11 {
            0b00 => Alphabet::Gsm7,
            0b01 => Alphabet::Binary,
            0b10 => Alphabet::Ucs2,
            _ => return Err(unsupported(data_coding, "reserved GSM 03.38 alphabet")),
        },
        0xC0..=0xDF => Alphabet::Gsm7,
        0xE0..=0xEF => Alphabet::Ucs2,
        // Data coding / message class: bit 2 is 8-bit data, else GSM-7.
        0xF0..=0xFF if data_coding & 0b100 == 0 => Alphabet::Gsm7,
        0xF0..=0xFF => Alphabet::Binary,
        0x05 => return Err(unsupported(data_coding, "JIS (X 0208-1990)")),
        0x06 => return Err(unsupported(data_coding, "Cyrillic (ISO-8859-5)")),
        0x07 => return Err(unsupported(data_coding, "Latin/Hebrew (ISO-8859-8)")),
        0x09 => return Err(unsupported(data_coding, "Pictogram")),
        0x0A => return Err(unsupported(data_coding, "ISO-2022-JP (music codes)")),
        0x0D => return Err(unsupported(data_coding, "extended Kanji JIS (X 0212-1990)")),
        0x0E => return Err(unsupported(data_coding, "KS C 5601")),
        0x20..=0x3F => return Err(unsupported(data_coding, "compressed GSM 03.38 text")),
        _ => return Err(unsupported(data_coding, "reserved")),
    };
    match alphabet {
        Alphabet::Gsm7 => Ok(decode_gsm7(bytes)),
        Alphabet::Ucs2 => Ok(decode_ucs2(bytes)),
        Alphabet::Binary => Err(format!("data_coding 0x{data_coding:02X} is 8-bit binary data, not text")),
    }
}

enum Alphabet {
    Gsm7,
    Ucs2,
    Binary,
}

fn unsupported(data_coding: u8, name: &str) -> String {
    format!("data_coding 0x{data_coding:02X} ({name}) is not a supported text coding")
}

fn decode_gsm7(bytes: &[u8]) -> String {
    let basic = |b: u8| GSM7_BASIC.get(usize::from(b)).copied().unwrap_or('\u{FFFD}');
    let mut out = String::with_capacity(bytes.len());
    let mut bytes = bytes.iter().copied();
    while let Some(b) = bytes.next() {
        if b != ESC {
            out.push(basic(b));
            continue;
        }
        let c = match bytes.next() {
            // 0x1B 0x1B is reserved for a further table (23.038: shown as a space); a lone
            // escape at the end has nothing to show.
            None | Some(ESC) => ' ',
            Some(code) => GSM7_EXTENSION.iter().find(|&&(e, _)| e == code).map_or_else(|| basic(code), |&(_, c)| c),
        };
        out.push(c);
    }
    out
}

fn decode_ucs2(bytes: &[u8]) -> String {
    let chunks = bytes.chunks_exact(2);
    let odd = !chunks.remainder().is_empty();
    let units = chunks.map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
    let mut out: String = char::decode_utf16(units).map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER)).collect();
    if odd {
        out.push(char::REPLACEMENT_CHARACTER);
    }
    out
}

/// What an inbound message asks for when it is a keyword rather than a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    OptOut,
    OptIn,
    Help,
}

/// The keyword a whole message is, case, spaces, punctuation and emoji aside: STOP, STOPALL,
/// STOP ALL, UNSUBSCRIBE, END, QUIT, CANCEL, REVOKE, OPTOUT, OPT OUT / OPT-OUT → opt-out; START,
/// UNSTOP → opt-in; HELP, INFO → help.
///
/// Courtesy around the keyword is allowed ("stop please", "Stop. Thank you", "please stop"), and
/// so is the keyword repeated ("STOP STOP") — missing an opt-out is the costly mistake. Anything
/// else makes it a sentence for an agent: "please don't stop", "stop by tomorrow", "stopped",
/// "I want to stop" are None.
pub fn keyword(text: &str) -> Option<Keyword> {
    let words = words(text);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let mut rest = words.as_slice();
    while let [first, tail @ ..] = rest
        && LEADING_COURTESY.contains(first)
    {
        rest = tail;
    }
    let (kind, tail) = keyword_prefix(rest)?;
    rest = tail;
    while !rest.is_empty() {
        rest = match keyword_prefix(rest) {
            Some((again, tail)) if again == kind => tail,
            _ => courtesy_prefix(rest)?,
        };
    }
    Some(kind)
}

const LEADING_COURTESY: [&str; 3] = ["please", "pls", "plz"];
const COURTESY: [&str; 9] = ["thank", "thanks", "thankyou", "thx", "ty", "please", "pls", "plz", "now"];

fn keyword_prefix<'a, 'w>(words: &'a [&'w str]) -> Option<(Keyword, &'a [&'w str])> {
    match words {
        ["opt", "out", tail @ ..] | ["stop", "all", tail @ ..] => Some((Keyword::OptOut, tail)),
        [word, tail @ ..] => {
            let kind = match *word {
                "stop" | "stopall" | "unsubscribe" | "end" | "quit" | "cancel" | "revoke" | "optout" => Keyword::OptOut,
                "start" | "unstop" => Keyword::OptIn,
                "help" | "info" => Keyword::Help,
                _ => return None,
            };
            Some((kind, tail))
        }
        [] => None,
    }
}

fn courtesy_prefix<'a, 'w>(words: &'a [&'w str]) -> Option<&'a [&'w str]> {
    match words {
        ["thank", "you", tail @ ..] => Some(tail),
        [word, tail @ ..] if COURTESY.contains(word) => Some(tail),
        _ => None,
    }
}

/// The lower-cased runs of letters and digits in `text`: everything else (spaces, ASCII and
/// Unicode punctuation, emoji and their modifiers) separates words.
fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        // Zero-width and soft-hyphen characters are invisible to the sender: "ST\u{200B}OP" is STOP.
        if matches!(c, '\u{AD}' | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}') {
            continue;
        }
        // Phones with East Asian keyboards send full-width forms: "ＳＴＯＰ" is STOP.
        let c = match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
            _ => c,
        };
        if c.is_alphanumeric() {
            current.extend(c.to_lowercase());
        } else if !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default alphabet in code order (0x1B, the escape, left out), written out independently
    /// of `GSM7_BASIC` so a slip in either shows.
    const GSM7_ALPHABET: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                                 ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

    #[test]
    fn the_default_alphabet_is_gsm_03_38() {
        let codes: Vec<u8> = (0u8..128).filter(|&b| b != ESC).collect();
        assert_eq!(GSM7_ALPHABET.chars().count(), 127);
        assert_eq!(encode(GSM7_ALPHABET), (0x00, codes.clone()));
        assert_eq!(decode(0x00, &codes).unwrap(), GSM7_ALPHABET);
        let s = segments(GSM7_ALPHABET);
        assert_eq!((s.encoding, s.units, s.count), (Encoding::Gsm7, 127, 1));
    }

    #[test]
    fn the_extension_table_takes_an_escape_each() {
        for (c, code) in [
            ('\u{0C}', 0x0A),
            ('^', 0x14),
            ('{', 0x28),
            ('}', 0x29),
            ('\\', 0x2F),
            ('[', 0x3C),
            ('~', 0x3D),
            (']', 0x3E),
        ]
        .into_iter()
        .chain([('|', 0x40), ('€', 0x65)])
        {
            let text = c.to_string();
            assert_eq!(encode(&text), (0x00, vec![ESC, code]), "{c:?}");
            assert_eq!(decode(0x00, &[ESC, code]).unwrap(), text, "{c:?}");
            let s = segments(&text);
            assert_eq!((s.encoding, s.units, s.remaining), (Encoding::Gsm7, 2, 158), "{c:?}");
        }
    }

    #[test]
    fn which_characters_are_gsm7() {
        let cases = [
            ('é', true),
            ('É', true),
            ('è', true),
            ('à', true),
            ('ñ', true),
            ('Ñ', true),
            ('Ç', true),
            ('ç', false),
            ('á', false),
            ('í', false),
            ('ó', false),
            ('ú', false),
            ('ê', false),
            ('À', false),
            ('ü', true),
            ('ß', true),
            ('Ω', true),
            ('Σ', true),
            ('α', false),
            ('€', true),
            ('£', true),
            ('¥', true),
            ('¤', true),
            ('¢', false),
            ('@', true),
            ('_', true),
            ('`', false),
            ('\t', false),
            ('\u{1B}', false),
            ('\u{0C}', true),
            ('\n', true),
            ('\r', true),
            ('😀', false),
            ('Ж', false),
        ];
        for (c, gsm) in cases {
            assert_eq!(is_gsm7(c), gsm, "{c:?}");
            let expected = if gsm { Encoding::Gsm7 } else { Encoding::Ucs2 };
            assert_eq!(encoding_of(&format!("Hello {c}")), expected, "{c:?}");
        }
    }

    #[test]
    fn printable_ascii_but_the_backtick_is_gsm7() {
        for c in (' '..='~').filter(|&c| c != '`') {
            assert!(is_gsm7(c), "{c:?}");
        }
    }

    fn seg(encoding: Encoding, units: usize, count: usize, per_segment: usize, remaining: usize) -> Segments {
        Segments { encoding, units, count, per_segment, remaining }
    }

    #[test]
    fn segment_counts_at_the_boundaries() {
        use Encoding::{Gsm7, Ucs2};
        let a = |n| "a".repeat(n);
        let zh = |n| "Ж".repeat(n);
        let cases = [
            (String::new(), seg(Gsm7, 0, 1, 160, 160)),
            (a(1), seg(Gsm7, 1, 1, 160, 159)),
            (a(160), seg(Gsm7, 160, 1, 160, 0)),
            (a(161), seg(Gsm7, 161, 2, 153, 145)),
            (a(153 * 2), seg(Gsm7, 306, 2, 153, 0)),
            (a(153 * 2 + 1), seg(Gsm7, 307, 3, 153, 152)),
            (a(153 * 3), seg(Gsm7, 459, 3, 153, 0)),
            ("€".repeat(80), seg(Gsm7, 160, 1, 160, 0)),
            // 76 euros fill 152 of 153 septets: the 77th cannot be split across parts.
            ("€".repeat(81), seg(Gsm7, 162, 2, 153, 143)),
            (a(158) + "€", seg(Gsm7, 160, 1, 160, 0)),
            (a(159) + "€", seg(Gsm7, 161, 2, 153, 145)),
            (a(152) + "€" + &a(10), seg(Gsm7, 164, 2, 153, 141)),
            ("Ç".repeat(161), seg(Gsm7, 161, 2, 153, 145)),
            (zh(70), seg(Ucs2, 70, 1, 70, 0)),
            (zh(71), seg(Ucs2, 71, 2, 67, 63)),
            (zh(67 * 2), seg(Ucs2, 134, 2, 67, 0)),
            (zh(67 * 2 + 1), seg(Ucs2, 135, 3, 67, 66)),
            ("ç".to_string(), seg(Ucs2, 1, 1, 70, 69)),
            // One non-GSM character turns the whole text UCS-2.
            (a(69) + "ç", seg(Ucs2, 70, 1, 70, 0)),
            (a(70) + "ç", seg(Ucs2, 71, 2, 67, 63)),
            ("😀".repeat(35), seg(Ucs2, 70, 1, 70, 0)),
            // 33 emoji fill 66 of 67 units.
            ("😀".repeat(36), seg(Ucs2, 72, 2, 67, 61)),
            (zh(66) + "😀" + &zh(5), seg(Ucs2, 73, 2, 67, 60)),
        ];
        for (text, expected) in cases {
            let got = segments(&text);
            assert_eq!(got, expected, "{text:?}");
            assert_eq!(split(&text).1.len(), got.count, "{text:?}");
        }
    }

    #[test]
    fn an_escape_pair_at_a_boundary_moves_to_the_next_part() {
        let text = "a".repeat(152) + "€" + &"a".repeat(10);
        let (encoding, parts) = split(&text);
        assert_eq!(encoding, Encoding::Gsm7);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], vec![b'a'; 152]);
        assert_eq!(&parts[1][..3], &[ESC, 0x65, b'a']);
        assert_eq!(parts[1].len(), 12);
    }

    #[test]
    fn a_surrogate_pair_at_a_boundary_moves_to_the_next_part() {
        let text = "Ж".repeat(66) + "😀" + &"Ж".repeat(5);
        let (encoding, parts) = split(&text);
        assert_eq!(encoding, Encoding::Ucs2);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].len(), 132);
        assert_eq!(&parts[0][..2], &[0x04, 0x16]);
        assert_eq!(&parts[1][..6], &[0xD8, 0x3D, 0xDE, 0x00, 0x04, 0x16]);
        assert_eq!(parts[1].len(), 14);
    }

    #[test]
    fn parts_fit_their_pdus() {
        let (_, one) = split(&"a".repeat(160));
        assert_eq!(one[0].len(), 160);
        let (_, one) = split(&"Ж".repeat(70));
        assert_eq!(one[0].len(), 140);
        let (_, many) = split(&"a".repeat(400));
        assert_eq!(many.iter().map(Vec::len).collect::<Vec<_>>(), [153, 153, 94]);
        let (_, many) = split(&"Ж".repeat(150));
        assert_eq!(many.iter().map(Vec::len).collect::<Vec<_>>(), [134, 134, 32]);
    }

    fn round_trip(text: &str) {
        let (encoding, parts) = split(text);
        let decoded: String = parts.iter().map(|p| decode(encoding.data_coding(), p).unwrap()).collect();
        assert_eq!(decoded, text);
    }

    #[test]
    fn split_then_decode_gives_the_text_back() {
        for text in [
            "",
            "Hello, your order #123 ships today.",
            "Café — ça va?",
            "Prices: 5€ [net] {gross} ~approx | a\\b ^up",
            &"€".repeat(200),
            &("a".repeat(152) + "€[]" + &"b".repeat(300)),
            "Привет! Ваш заказ готов.",
            &"😀👍🏽".repeat(40),
            &("Ж".repeat(66) + "😀" + &"Ж".repeat(100)),
            GSM7_ALPHABET,
            &GSM7_ALPHABET.repeat(5),
        ] {
            round_trip(text);
            let (data_coding, bytes) = encode(text);
            assert_eq!(decode(data_coding, &bytes).unwrap(), text);
        }
    }

    /// xorshift64: enough randomness for fuzzing without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn segments_and_split_agree_on_random_texts() {
        let pool = ['a', ' ', '€', '[', '\u{0C}', 'é', '\n', 'Ç', 'ç', 'Ж', '😀', '🏽'];
        let mut rng = Rng(0x5EED_F5A5);
        for _ in 0..3000 {
            let len = rng.below(420);
            // Mostly-GSM texts often stay GSM-7, so escapes land on boundaries as well.
            let gsm_only = rng.below(2) == 0;
            let choices = if gsm_only { 7 } else { pool.len() };
            let text: String = (0..len).map(|_| pool[rng.below(choices)]).collect();
            let s = segments(&text);
            let (encoding, parts) = split(&text);
            assert_eq!(s.encoding, encoding, "{text:?}");
            assert_eq!(s.count, parts.len(), "{text:?}");
            let unit_bytes = if encoding == Encoding::Gsm7 { 1 } else { 2 };
            assert_eq!(s.units, parts.iter().map(Vec::len).sum::<usize>() / unit_bytes, "{text:?}");
            let last = parts.last().unwrap().len() / unit_bytes;
            assert_eq!(s.remaining, s.per_segment - last, "{text:?}");
            for part in &parts {
                assert!(part.len() / unit_bytes <= s.per_segment, "{text:?}");
            }
            round_trip(&text);
        }
    }

    #[test]
    fn data_codings() {
        assert_eq!(Encoding::Gsm7.data_coding(), 0x00);
        assert_eq!(Encoding::Ucs2.data_coding(), 0x08);
        assert_eq!(Encoding::Gsm7.as_str(), "gsm7");
        assert_eq!(Encoding::Ucs2.as_str(), "ucs2");
        assert_eq!(encode("hello"), (0x00, b"hello".to_vec()));
        assert_eq!(encode("@$_"), (0x00, vec![0x00, 0x02, 0x11]));
        assert_eq!(encode("ç"), (0x08, vec![0x00, 0xE7]));
        assert_eq!(encode("a😀"), (0x08, vec![0x00, 0x61, 0xD8, 0x3D, 0xDE, 0x00]));
        assert_eq!(encode(""), (0x00, vec![]));
    }

    #[test]
    fn decoding() {
        let ok = [
            (0x00, &b"Hi"[..], "Hi"),
            (0x00, &[0x00, 0x01, 0x09, 0x7D][..], "@£Çñ"),
            (0x00, &[ESC, 0x65, b'5'][..], "€5"),
            // An escape the extension table does not know shows its base character.
            (0x00, &[ESC, 0x41][..], "A"),
            (0x00, &[ESC, ESC, b'x'][..], " x"),
            (0x00, &[b'a', ESC][..], "a "),
            (0x00, &[0x80, 0xFF][..], "\u{FFFD}\u{FFFD}"),
            (0x00, &[ESC, 0x80][..], "\u{FFFD}"),
            (0x01, &b"Hello!"[..], "Hello!"),
            (0x01, &[b'a', 0xE9][..], "a\u{FFFD}"),
            (0x03, &[b'C', b'a', b'f', 0xE9][..], "Café"),
            (0x08, &[0x04, 0x16, 0x00, 0x41][..], "ЖA"),
            (0x08, &[0xD8, 0x3D, 0xDE, 0x00][..], "😀"),
            (0x08, &[0xD8, 0x3D, 0x00, 0x41][..], "\u{FFFD}A"),
            (0x08, &[0xDE, 0x00][..], "\u{FFFD}"),
            (0x08, &[0x00, 0x41, 0x00][..], "A\u{FFFD}"),
            (0x08, &[][..], ""),
            // Flash SMS and other message classes.
            (0xF0, &b"Hi"[..], "Hi"),
            (0x10, &b"Hi"[..], "Hi"),
            (0x18, &[0x04, 0x16][..], "Ж"),
            (0xE0, &[0x04, 0x16][..], "Ж"),
        ];
        for (data_coding, bytes, text) in ok {
            assert_eq!(decode(data_coding, bytes).as_deref(), Ok(text), "0x{data_coding:02X} {bytes:?}");
        }
        let err = [
            (0x02, "binary"),
            (0x04, "binary"),
            (0xF4, "binary"),
            (0x14, "binary"),
            (0x05, "JIS"),
            (0x06, "Cyrillic"),
            (0x07, "Hebrew"),
            (0x09, "Pictogram"),
            (0x0E, "KS C 5601"),
            (0x24, "compressed"),
            (0x0B, "reserved"),
            (0x80, "reserved"),
        ];
        for (data_coding, named) in err {
            let message = decode(data_coding, b"x").unwrap_err();
            assert!(message.contains(&format!("0x{data_coding:02X}")), "{message}");
            assert!(message.contains(named), "{message}");
        }
    }

    #[test]
    fn decode_never_panics() {
        let mut rng = Rng(0x00DE_C0DE);
        for data_coding in 0..=255u8 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..rng.below(12)).map(|_| rng.next() as u8).collect();
                let result = decode(data_coding, &bytes);
                if matches!(data_coding, 0x00 | 0x01 | 0x03 | 0x08) {
                    assert!(result.is_ok());
                }
            }
        }
    }

    #[test]
    fn udh_concatenation() {
        assert_eq!(concat_udh(0x42, 3, 2), [0x05, 0x00, 0x03, 0x42, 0x03, 0x02]);
        let payload = [&concat_udh(0x42, 3, 2)[..], b"hi"].concat();
        assert_eq!(parse_udh(&payload), Some((Some(Concat { reference: 0x42, total: 3, index: 2 }), &b"hi"[..])));
    }

    #[test]
    fn udh_parsing() {
        let concat = |reference, total, index| Some(Concat { reference, total, index });
        let ok: [(&[u8], Option<Concat>, &[u8]); 8] = [
            (&[0x05, 0x00, 0x03, 0xFF, 0x02, 0x02, b'x'], concat(0xFF, 2, 2), b"x"),
            (&[0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x01, b'x', b'y'], concat(0x1234, 2, 1), b"xy"),
            (&[0x05, 0x00, 0x03, 0x01, 0x01, 0x01], concat(1, 1, 1), b""),
            // Port addressing before the concatenation element is skipped.
            (&[0x0B, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x00, 0x03, 0x07, 0x02, 0x01, b'z'], concat(7, 2, 1), b"z"),
            // Only port addressing: no concatenation.
            (&[0x06, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, b'z'], None, b"z"),
            // An element with no data.
            (&[0x02, 0x70, 0x00, b'z'], None, b"z"),
            (&[0x00, b'a'], None, b"a"),
            // Repeated: the last one counts.
            (&[0x0A, 0x00, 0x03, 0x01, 0x02, 0x01, 0x00, 0x03, 0x09, 0x03, 0x03], concat(9, 3, 3), b""),
        ];
        for (payload, expected, rest) in ok {
            assert_eq!(parse_udh(payload), Some((expected, rest)), "{payload:02X?}");
        }
        let malformed: [&[u8]; 13] = [
            &[],
            &[0x05],
            &[0x05, 0x00, 0x03, 0x01, 0x02],
            &[0x05, 0x00, 0x03, 0x01, 0x00, 0x00],
            &[0x05, 0x00, 0x03, 0x01, 0x02, 0x00],
            &[0x05, 0x00, 0x03, 0x01, 0x02, 0x03],
            &[0x06, 0x08, 0x04, 0x12, 0x34, 0x00, 0x01],
            &[0x06, 0x08, 0x04, 0x12, 0x34, 0x01, 0x02],
            &[0x04, 0x00, 0x02, 0x01, 0x02],
            &[0x05, 0x08, 0x03, 0x01, 0x02, 0x01],
            &[0x02, 0x00, 0x03, 0x01, 0x02, 0x01],
            &[0x01, 0x00, 0x00],
            &[0x03, 0x70, 0x00, 0x70],
        ];
        for payload in malformed {
            assert_eq!(parse_udh(payload), None, "{payload:02X?}");
        }
    }

    fn check_udh(payload: &[u8]) {
        if let Some((concat, rest)) = parse_udh(payload) {
            assert_eq!(rest.len(), payload.len() - 1 - usize::from(payload[0]), "{payload:02X?}");
            if let Some(c) = concat {
                assert!(c.total >= 1 && c.index >= 1 && c.index <= c.total, "{payload:02X?}");
            }
        }
    }

    #[test]
    fn udh_parsing_never_panics() {
        check_udh(&[]);
        for a in 0..=255u8 {
            check_udh(&[a]);
            for b in 0..=255u8 {
                check_udh(&[a, b]);
            }
        }
        let mut rng = Rng(0x00DD_BA11);
        for _ in 0..200_000 {
            let len = rng.below(24);
            let mut payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Small lengths and the concatenation IEIs, so headers often parse far enough to matter.
            for (i, byte) in payload.iter_mut().enumerate() {
                if rng.below(2) == 0 {
                    *byte = if i % 2 == 1 { [0x00, 0x08, 0x05][rng.below(3)] } else { rng.below(8) as u8 };
                }
            }
            check_udh(&payload);
        }
    }

    #[test]
    fn keywords() {
        use Keyword::{Help, OptIn, OptOut};
        let cases = [
            ("STOP", Some(OptOut)),
            ("stop", Some(OptOut)),
            ("Stop", Some(OptOut)),
            ("  sToP \n", Some(OptOut)),
            ("STOP!!", Some(OptOut)),
            ("stop.", Some(OptOut)),
            ("\"STOP\"", Some(OptOut)),
            ("stop 🙏", Some(OptOut)),
            ("🛑 STOP 🛑", Some(OptOut)),
            ("STOP‼️", Some(OptOut)),
            ("¡STOP!", Some(OptOut)),
            ("«stop»", Some(OptOut)),
            ("STOPALL", Some(OptOut)),
            ("stop all", Some(OptOut)),
            ("UNSUBSCRIBE", Some(OptOut)),
            ("unsubscribe.", Some(OptOut)),
            ("END", Some(OptOut)),
            ("quit", Some(OptOut)),
            ("Cancel", Some(OptOut)),
            ("REVOKE", Some(OptOut)),
            ("OPTOUT", Some(OptOut)),
            ("opt out", Some(OptOut)),
            ("Opt-Out", Some(OptOut)),
            ("OPT  OUT!", Some(OptOut)),
            ("Stop. Thank you", Some(OptOut)),
            ("stop thanks", Some(OptOut)),
            ("STOP please", Some(OptOut)),
            ("stop pls", Some(OptOut)),
            ("stop now!", Some(OptOut)),
            ("STOP NOW PLEASE THANK YOU", Some(OptOut)),
            ("stop thx", Some(OptOut)),
            ("stop, ty", Some(OptOut)),
            ("opt-out, thanks!", Some(OptOut)),
            ("please stop", Some(OptOut)),
            ("STOP STOP STOP", Some(OptOut)),
            ("stop. unsubscribe.", Some(OptOut)),
            ("ＳＴＯＰ", Some(OptOut)),
            ("ST\u{200B}OP", Some(OptOut)),
            ("START", Some(OptIn)),
            ("start", Some(OptIn)),
            (" Unstop! ", Some(OptIn)),
            ("start please", Some(OptIn)),
            ("HELP", Some(Help)),
            ("help?", Some(Help)),
            ("Help me please", None),
            ("info", Some(Help)),
            ("INFO.", Some(Help)),
            ("please don't stop", None),
            ("stop by tomorrow", None),
            ("stopped", None),
            ("I want to stop", None),
            ("stop you", None),
            ("thank you", None),
            ("please", None),
            ("opt", None),
            ("out", None),
            ("opt in", None),
            ("yes", None),
            ("unsub", None),
            ("start stop", None),
            ("stop start", None),
            ("end of the day", None),
            ("quit it", None),
            ("can you help", None),
            ("", None),
            ("   ", None),
            ("!!!", None),
            ("🙏", None),
            ("stop2", None),
            ("s t o p", None),
        ];
        for (text, expected) in cases {
            assert_eq!(keyword(text), expected, "{text:?}");
        }
    }
}
