//! The API's messages as the pages' protobuf codec reads them (`web/schema.json`), made from the
//! descriptor set the daemon is built with: the browser code names fields, never numbers, and
//! cannot drift from the proto.

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};
use serde_json::{Map, Value, json};

/// `{"messages": {name: {"f": [field...], "map": bool}}, "enums": {name: {number: NAME}},
/// "methods": {"pkg.Service/Method": [input, output]}}`; a
/// field is `{"n": jsonName, "no": number, "t": type, "m": type name, "r": repeated, "o": oneof,
/// "opt": explicit presence}` (type: descriptor.proto's numbers).
pub fn schema_json(descriptor_set: &[u8]) -> Result<String, prost::DecodeError> {
    let set = FileDescriptorSet::decode(descriptor_set)?;
    let mut messages = Map::new();
    let mut enums = Map::new();
    let mut methods = Map::new();
    for file in &set.file {
        let package = file.package();
        for s in &file.service {
            for m in &s.method {
                let types = json!([m.input_type().trim_start_matches('.'), m.output_type().trim_start_matches('.')]);
                methods.insert(format!("{package}.{}/{}", s.name(), m.name()), types);
            }
        }
        for e in &file.enum_type {
            add_enum(&mut enums, package, e);
        }
        for m in &file.message_type {
            add_message(&mut messages, &mut enums, package, m);
        }
    }
    // The one well-known type the API uses, written out: the set holds only our own files.
    messages.insert(
        "google.protobuf.Timestamp".into(),
        json!({"f": [{"n": "seconds", "no": 1, "t": Type::Int64 as i32}, {"n": "nanos", "no": 2, "t": Type::Int32 as i32}], "map": false}),
    );
    let all = [("messages", messages), ("enums", enums), ("methods", methods)];
    Ok(Value::Object(all.into_iter().map(|(k, v)| (k.to_string(), Value::Object(v))).collect()).to_string())
}

fn add_enum(enums: &mut Map<String, Value>, scope: &str, e: &prost_types::EnumDescriptorProto) {
    let values: Map<String, Value> = e.value.iter().map(|v| (v.number().to_string(), json!(v.name()))).collect();
    enums.insert(format!("{scope}.{}", e.name()), values.into());
}

fn add_message(messages: &mut Map<String, Value>, enums: &mut Map<String, Value>, scope: &str, m: &DescriptorProto) {
    let name = format!("{scope}.{}", m.name());
    for e in &m.enum_type {
        add_enum(enums, &name, e);
    }
    for nested in &m.nested_type {
        add_message(messages, enums, &name, nested);
    }
    let fields: Vec<Value> = m
        .field
        .iter()
        .map(|f| {
            let mut o = Map::new();
            o.insert("n".into(), json!(f.json_name()));
            o.insert("no".into(), json!(f.number()));
            o.insert("t".into(), json!(f.r#type));
            if matches!(f.r#type(), Type::Message | Type::Enum) {
                o.insert("m".into(), json!(f.type_name().trim_start_matches('.')));
            }
            if f.label() == Label::Repeated {
                o.insert("r".into(), json!(true));
            }
            if f.proto3_optional() {
                o.insert("opt".into(), json!(true));
            } else if let Some(i) = f.oneof_index {
                let oneof =
                    m.oneof_decl.get(i as usize).map(prost_types::OneofDescriptorProto::name).unwrap_or_default();
                o.insert("o".into(), json!(oneof));
            }
            Value::Object(o)
        })
        .collect();
    let map = m.options.as_ref().is_some_and(prost_types::MessageOptions::map_entry);
    messages.insert(name, json!({"f": fields, "map": map}));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_messages_are_described_by_name() {
        let s: Value = serde_json::from_str(&schema_json(crate::api::FILE_DESCRIPTOR_SET).unwrap()).unwrap();
        let ev = &s["messages"]["switchboard.v1.AgentEvent"]["f"];
        let offer = ev.as_array().unwrap().iter().find(|f| f["n"] == "offer").unwrap();
        assert_eq!(offer["no"], 5);
        assert_eq!(offer["m"], "switchboard.v1.Offer");
        assert_eq!(offer["o"], "kind");
        assert_eq!(s["messages"]["switchboard.v1.Interaction.AttributesEntry"]["map"], true);
        assert_eq!(s["enums"]["switchboard.v1.Channel"]["3"], "CHANNEL_SMS");
        let sl = s["messages"]["switchboard.v1.QueueFigures"]["f"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["n"] == "serviceLevelPercent")
            .cloned()
            .unwrap();
        assert_eq!(sl["opt"], true);
        assert_eq!(
            s["methods"]["switchboard.v1.Supervisor/Watch"],
            json!(["switchboard.v1.WatchRequest", "switchboard.v1.SupervisorEvent"])
        );
        // The wallboard's explanations: an agent eligible at stage 0 and at no stage differ
        // only by presence, so `stage` must keep it.
        assert_eq!(
            s["methods"]["switchboard.v1.Supervisor/ExplainAgent"],
            json!(["switchboard.v1.ExplainAgentRequest", "switchboard.v1.AgentExplanation"])
        );
        let field =
            |m: &str, n: &str| s["messages"][m]["f"].as_array().unwrap().iter().find(|f| f["n"] == n).cloned().unwrap();
        assert_eq!(field("switchboard.v1.QueueStanding", "stage")["opt"], true);
        assert_eq!(field("switchboard.v1.WaitingExplanation", "nextStep")["m"], "switchboard.v1.NextEscalationStep");
        assert_eq!(field("switchboard.v1.RoutingDecision", "occupancyPermille")["opt"], true);
    }
}
