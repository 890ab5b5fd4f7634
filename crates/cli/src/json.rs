//! `--output json`: the proto's canonical JSON mapping (lowerCamelCase names, enums by name,
//! Timestamps as RFC 3339, 64-bit integers as strings), read off the descriptor set the proto crate
//! builds, so it follows the `.proto` without code of its own per message. Every field without
//! presence is written, even at its default (`"waiting": 0`, `"queues": []`), so scripts need not
//! know the defaults; unset message and `optional` fields are left out.

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, SerializeOptions};
use switchboard_proto::v1 as pb;

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET).expect("the proto crate's descriptor set decodes")
});

/// A message `ctl` prints, with its full protobuf name.
pub trait Proto: prost::Message {
    const NAME: &'static str;
}

macro_rules! proto_names {
    ($($t:ident),* $(,)?) => {
        $(impl Proto for pb::$t {
            const NAME: &'static str = concat!("switchboard.v1.", stringify!($t));
        })*
        /// Every message given a name above, for the test that each one maps.
        #[cfg(test)]
        pub(crate) const NAMES: &[&str] = &[$(concat!("switchboard.v1.", stringify!($t))),*];
    };
}

proto_names!(
    Agent,
    AgentExplanation,
    AgentState,
    ApiKey,
    Calendar,
    CreateApiKeyResponse,
    EraseContactResponse,
    Interaction,
    InteractionExplanation,
    ListAgentStatesResponse,
    ListApiKeysResponse,
    ListCalendarsResponse,
    ListOpeningsResponse,
    ListQueuesResponse,
    ListWaitingResponse,
    Message,
    Queue,
    QueueFigures,
    SupervisorEvent,
);

fn write<M: Proto, F: serde_json::ser::Formatter>(message: &M, formatter: F) -> anyhow::Result<String> {
    let desc =
        POOL.get_message_by_name(M::NAME).ok_or_else(|| anyhow::anyhow!("{} is not in the descriptor set", M::NAME))?;
    let dynamic = DynamicMessage::decode(desc.clone(), message.encode_to_vec().as_slice())?;
    let options = SerializeOptions::new().skip_default_fields(false);
    let value = dynamic.serialize_with_options(serde_json::value::Serializer, &options)?;
    let mut out = Vec::new();
    let shaped = Shaped { value: &value, shape: &Shape::Message(desc) };
    serde::Serialize::serialize(&shaped, &mut serde_json::Serializer::with_formatter(&mut out, formatter))?;
    Ok(String::from_utf8(out)?)
}

/// What a JSON value is in the .proto: a message's fields are written in the .proto's order, a
/// map's entries sorted by key (a protobuf map has no order of its own: this makes it stable).
enum Shape {
    Other,
    Message(MessageDescriptor),
    Map(Box<Shape>),
}

impl Shape {
    fn of_kind(kind: Kind) -> Shape {
        match kind {
            // The well-known types have JSON forms of their own (a Timestamp is a string).
            Kind::Message(m) if !m.full_name().starts_with("google.protobuf.") => Shape::Message(m),
            _ => Shape::Other,
        }
    }

    /// A field's values (a list's elements).
    fn of_field(field: &FieldDescriptor) -> Shape {
        match field.kind() {
            Kind::Message(entry) if field.is_map() => {
                Shape::Map(Box::new(Shape::of_kind(entry.map_entry_value_field().kind())))
            }
            kind => Shape::of_kind(kind),
        }
    }
}

struct Shaped<'a> {
    value: &'a serde_json::Value,
    shape: &'a Shape,
}

impl serde::Serialize for Shaped<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        use serde_json::Value;
        match (self.value, self.shape) {
            (Value::Array(items), shape) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for value in items {
                    seq.serialize_element(&Shaped { value, shape })?;
                }
                seq.end()
            }
            (Value::Object(fields), Shape::Message(desc)) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                let known: Vec<(FieldDescriptor, Shape)> =
                    desc.fields().map(|f| (f.clone(), Shape::of_field(&f))).collect();
                for (field, shape) in &known {
                    if let Some(value) = fields.get(field.json_name()) {
                        map.serialize_entry(field.json_name(), &Shaped { value, shape })?;
                    }
                }
                // Nothing else is expected; whatever there is, is not lost.
                for (name, value) in fields {
                    if !known.iter().any(|(f, _)| f.json_name() == name) {
                        map.serialize_entry(name, value)?;
                    }
                }
                map.end()
            }
            // serde_json's objects are sorted by key.
            (Value::Object(entries), Shape::Map(shape)) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, &Shaped { value, shape })?;
                }
                map.end()
            }
            (value, _) => value.serialize(s),
        }
    }
}

/// A message from its JSON mapping (lowerCamelCase names or the .proto's own), as `ctl` reads
/// files; unknown fields are refused.
pub fn parse<M: Proto + Default>(text: &str) -> anyhow::Result<M> {
    let desc =
        POOL.get_message_by_name(M::NAME).ok_or_else(|| anyhow::anyhow!("{} is not in the descriptor set", M::NAME))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let dynamic = DynamicMessage::deserialize(desc, &mut de)?;
    de.end()?;
    Ok(dynamic.transcode_to::<M>()?)
}

/// Indented, for one reply.
pub fn pretty<M: Proto>(message: &M) -> anyhow::Result<String> {
    write(message, serde_json::ser::PrettyFormatter::new())
}

/// On one line, for a stream (NDJSON).
pub fn line<M: Proto>(message: &M) -> anyhow::Result<String> {
    write(message, serde_json::ser::CompactFormatter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::Timestamp;
    use serde_json::{Value, json};

    fn value<M: Proto>(message: &M) -> Value {
        serde_json::from_str(&pretty(message).unwrap()).unwrap()
    }

    #[test]
    fn every_printed_message_is_in_the_descriptor_set() {
        for name in NAMES {
            assert!(POOL.get_message_by_name(name).is_some(), "{name}");
        }
    }

    #[test]
    fn the_canonical_mapping() {
        let ix = pb::Interaction {
            id: "0193".into(),
            channel: pb::Channel::Sms as i32,
            customer_address: "+4915123456789".into(),
            state: pb::InteractionState::Queued as i32,
            enqueued_at: Some(Timestamp { seconds: 1_796_034_533, nanos: 475_000_000 }),
            timestamps: [("queued".to_string(), Timestamp { seconds: 1_796_034_533, nanos: 0 })].into(),
            messages: vec![pb::Message {
                seq: 1,
                author: pb::Author::Customer as i32,
                body: "Hi".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let v = value(&ix);
        assert_eq!(v["channel"], "CHANNEL_SMS");
        assert_eq!(v["state"], "INTERACTION_STATE_QUEUED");
        assert_eq!(v["customerAddress"], "+4915123456789");
        assert_eq!(v["enqueuedAt"], "2026-11-30T10:28:53.475Z");
        assert_eq!(v["timestamps"], json!({"queued": "2026-11-30T10:28:53Z"}));
        // uint64 as a string; defaults written; an unset message field left out.
        assert_eq!(v["messages"][0]["seq"], "1");
        assert_eq!(v["messages"][0]["author"], "AUTHOR_CUSTOMER");
        assert_eq!(v["priority"], 0);
        assert_eq!(v["excludedAgentIds"], json!([]));
        assert_eq!(v["agentId"], "");
        assert!(v["messages"][0].get("sentAt").is_none());
        // Fields in the .proto's order, not sorted; map entries sorted.
        let text = pretty(&ix).unwrap();
        let at = |s: &str| text.find(&format!("\"{s}\"")).unwrap_or_else(|| panic!("{s} in {text}"));
        assert!(at("id") < at("channel") && at("channel") < at("customerAddress") && at("subject") < at("attributes"));
        assert!(at("seq") < at("author") && at("author") < at("body"), "nested messages too: {text}");
        let caps = pb::AgentState {
            capacity: [("voice", 1), ("chat", 3), ("sms", 3), ("email", 5), ("a", 0)]
                .map(|(c, n)| (c.into(), n))
                .into(),
            ..Default::default()
        };
        let line = line(&caps).unwrap();
        assert!(line.contains(r#""capacity":{"a":0,"chat":3,"email":5,"sms":3,"voice":1}"#), "{line}");
    }

    #[test]
    fn a_message_reads_back_from_either_spelling() {
        let c = pb::Calendar {
            name: "emea".into(),
            time_zone: "Europe/Berlin".into(),
            weekly: Some(pb::WeeklyHours { mon: vec!["08:00-12:00".into()], ..Default::default() }),
            exceptions: vec![],
        };
        assert_eq!(parse::<pb::Calendar>(&pretty(&c).unwrap()).unwrap(), c);
        let own = r#"{"name": "emea", "time_zone": "Europe/Berlin", "weekly": {"mon": ["08:00-12:00"]}}"#;
        assert_eq!(parse::<pb::Calendar>(own).unwrap(), c);
        assert!(parse::<pb::Calendar>(r#"{"name": "emea", "timezone": "UTC"}"#).is_err(), "unknown field");
    }

    #[test]
    fn an_unset_optional_is_left_out_and_a_set_one_written() {
        let mut f =
            pb::QueueFigures { queue: "sales".into(), waiting: 2, longest_wait_ms: 65_000, ..Default::default() };
        let ev =
            |f: &pb::QueueFigures| pb::SupervisorEvent { kind: Some(pb::supervisor_event::Kind::Queue(f.clone())) };
        let v = value(&ev(&f));
        assert_eq!(v["queue"]["waiting"], 2);
        assert_eq!(v["queue"]["longestWaitMs"], "65000");
        assert!(v["queue"].get("serviceLevelPercent").is_none());
        f.service_level_percent = Some(100.0);
        let line = line(&ev(&f)).unwrap();
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["queue"]["serviceLevelPercent"], 100.0);
    }
}
