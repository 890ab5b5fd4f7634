//! The TOML config loader (`Config::from_toml_str`): parse, `${VAR}` expansion, typing,
//! `SWITCHBOARD_*` overrides and validation, on the shipped example config damaged every way.

use std::collections::HashMap;

use proptest::prelude::*;
use switchboard::config::{Config, ConfigError};

use super::{apply, check, edits, run, tricky_string};

const EXAMPLE: &str = include_str!("../../../deploy/switchboard.toml");

/// TOML values of every type, at the edges of what the fields take.
fn toml_value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        prop::sample::select(vec![
            "0",
            "-1",
            "1",
            "9223372036854775807",
            "-9223372036854775808",
            "18446744073709551616",
            "4294967296",
            "4294967295",
            "65536",
            "1e308",
            "-0.0",
            "nan",
            "inf",
            "true",
            "false",
            "\"\"",
            "''",
            "1979-05-27T07:32:00Z",
            "\"${HOME}\"",
            "\"${UNSET_VAR}\"",
            "\"${X:-}\"",
            "\"$${literal}\"",
            "\"${\"",
            "\"${1BAD}\"",
            "\"${A:-${B}}\"",
            "\"redis://\"",
            "\"unix://\"",
            "\"rediss://u:p@h:1/0?password=x\"",
            "\"0.0.0.0:0\"",
            "\"[::1]:65535\"",
            "\"Europe/Berlin\"",
            "\"Mars/Olympus\"",
            "\"info,switchboard=debug\"",
            "\"[{a=/.*/}]\"",
        ])
        .prop_map(String::from),
        "-?[0-9]{1,25}",
        tricky_string(20).prop_map(|s| toml::Value::String(s).to_string()),
        "\"[^\"\\\\\\r\\n]{0,30}\"",
    ];
    scalar.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            proptest::collection::vec(("[a-z_]{1,12}", inner), 0..4).prop_map(|v| {
                let kv: Vec<String> = v.into_iter().map(|(k, x)| format!("{k} = {x}")).collect();
                format!("{{ {} }}", kv.join(", "))
            }),
        ]
    })
}

/// The example with one `key = value` line given another value, or a line added to a table.
fn example_with_value() -> impl Strategy<Value = String> {
    let lines: Vec<&'static str> = EXAMPLE.lines().collect();
    let settable: Vec<usize> = (0..lines.len())
        .filter(|&i| {
            let l = lines[i].trim_start();
            !l.starts_with('#') && !l.starts_with('[') && l.contains(" = ")
        })
        .collect();
    let tables: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].starts_with('[')).collect();
    let key = prop_oneof![
        "[a-z_]{1,20}",
        prop::sample::select(vec![
            "enabled",
            "max_body_bytes",
            "gateways",
            "mailboxes",
            "level",
            "keys",
            "url",
            "queue",
            "calendar",
            "closed"
        ])
        .prop_map(String::from),
    ];
    prop_oneof![
        3 => (prop::sample::select(settable), toml_value()).prop_map(move |(i, v)| {
            let mut l: Vec<String> = lines_of(EXAMPLE);
            let (k, _) = l[i].split_once(" = ").map(|(k, v)| (k.to_string(), v.to_string())).unwrap();
            l[i] = format!("{k} = {v}");
            l.join("\n")
        }),
        1 => (prop::sample::select(tables), key, toml_value()).prop_map(|(i, k, v)| {
            let mut l: Vec<String> = lines_of(EXAMPLE);
            l.insert(i + 1, format!("{k} = {v}"));
            l.join("\n")
        }),
    ]
}

fn lines_of(s: &str) -> Vec<String> {
    s.lines().map(String::from).collect()
}

/// Tables of sections the example leaves out, filled with guesses.
fn other_sections() -> impl Strategy<Value = String> {
    let section = prop::sample::select(vec![
        "[email]",
        "[[email.mailboxes]]",
        "[sms]",
        "[[sms.gateways]]",
        "[[sms.numbers]]",
        "[[auth.keys]]",
        "[auth.jwt]",
        "[tls]",
        "[[queues]]",
        "[[calendars]]",
        "[[agents]]",
        "[[webchat.topics]]",
        "[cti.callbacks]",
        "[web]",
    ]);
    let kv = ("[a-z_]{1,16}", toml_value()).prop_map(|(k, v)| format!("{k} = {v}"));
    proptest::collection::vec((section, proptest::collection::vec(kv, 0..6)), 0..4)
        .prop_map(|v| v.into_iter().map(|(s, kvs)| format!("{s}\n{}\n", kvs.join("\n"))).collect::<String>())
}

fn env() -> impl Strategy<Value = HashMap<String, String>> {
    let name = prop_oneof![
        prop::sample::select(vec![
            "SWITCHBOARD_REDIS_URL",
            "SWITCHBOARD_GRPC_LISTEN",
            "SWITCHBOARD_HTTP_LISTEN",
            "SWITCHBOARD_INSTANCE_ID",
            "SWITCHBOARD_LOG_FORMAT",
            "SWITCHBOARD_CRM_DATABASE",
            "SWITCHBOARD_CRM_ENDPOINT",
            "SWITCHBOARD_CRM_API_KEY",
            "SWITCHBOARD_ADMIN_KEY",
            "SWITCHBOARD_AGENT_TOKEN_ALICE",
            "SWITCHBOARD_EMAIL_PASSWORD_SUPPORT",
            "HOME",
            "X",
            "A",
            "B",
        ])
        .prop_map(String::from),
        "[A-Z_]{1,10}",
    ];
    let value =
        prop_oneof![tricky_string(24), Just(String::new()), "[a-z]{1,8}://[a-z0-9.:@/]{0,20}", "[0-9.:\\[\\]]{0,20}"];
    proptest::collection::hash_map(name, value, 0..5)
}

fn config_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => example_with_value(),
        2 => (Just(EXAMPLE), edits(8)).prop_map(|(e, x)| String::from_utf8_lossy(&apply(e.as_bytes().to_vec(), &x)).into_owned()),
        2 => (example_with_value(), other_sections()).prop_map(|(e, o)| format!("{e}\n{o}")),
        1 => other_sections(),
        1 => tricky_string(200),
    ]
}

#[test]
fn fuzz_config_from_toml_str() {
    run("config.from_toml_str", (config_text(), env()), |(text, env)| match Config::from_toml_str(&text, &env) {
        Ok(cfg) => check(cfg.validate().is_ok(), || "a loaded config fails its own validation".into()),
        Err(ConfigError::Invalid { key, message }) => {
            check(!key.is_empty() && !message.is_empty(), || format!("invalid config without a key: {message:?}"))
        }
        Err(e) => check(!e.to_string().is_empty(), || "an empty error".into()),
    });
}

#[test]
fn the_example_config_loads() {
    // The seed the config target damages must itself be valid, or every case tests the same error.
    Config::from_toml_str(EXAMPLE, &HashMap::<String, String>::new()).unwrap();
}
