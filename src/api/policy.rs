//! Which role may call which RPC: the one table the daemon's trust boundary checks before any
//! handler runs. Finer checks that depend on the data (an agent's own interactions, a
//! supervisor's queues) are in the handlers, through [`Principal`](crate::model::Principal).

use switchboard_auth::{Policy, Rule};

use crate::model::Role::{self, Admin, Agent, Channel, Supervisor, Telephony};

const ADMIN: &[Role] = &[Admin];
const SUPERVISION: &[Role] = &[Supervisor, Admin];
const CHANNELS: &[Role] = &[Channel, Telephony, Admin];
/// Reading one interaction: its channel, or a supervisor within its queues.
const READ_INTERACTION: &[Role] = &[Channel, Telephony, Supervisor, Admin];
const SCREEN_POP: &[Role] = &[Agent, Supervisor, Admin];

/// Every RPC of `switchboard.v1` and `switchboard.cti.v1`, health and reflection. A test checks that each RPC in the
/// descriptor set has a rule here.
pub fn policy(reflection: bool) -> Policy {
    let mut p = Policy::default()
        .service("/grpc.health.v1.Health/", Rule::Anonymous)
        .rule("/switchboard.v1.AgentDesktop/Session", Rule::AgentLogin)
        .rule("/switchboard.v1.AgentDesktop/Open", Rule::AgentLogin)
        // The session id in the request stands for the credential; the handler checks it.
        .rule("/switchboard.v1.AgentDesktop/Act", Rule::AgentLogin)
        .rule("/switchboard.v1.AgentDesktop/GetScreenPop", Rule::Roles(SCREEN_POP));
    for m in [
        "Watch",
        "GetQueueFigures",
        "ListAgentStates",
        "ForcePresence",
        "LogoutAgent",
        "MoveInteraction",
        "ReprioritizeInteraction",
        "WithdrawInteraction",
        "ListWaiting",
        "ListOpenings",
        "ExplainInteraction",
        "ExplainAgent",
    ] {
        p = p.rule(&format!("/switchboard.v1.Supervisor/{m}"), Rule::Roles(SUPERVISION));
    }
    for m in [
        "PutAgent",
        "GetAgent",
        "ListAgents",
        "DeleteAgent",
        "PutQueue",
        "GetQueue",
        "ListQueues",
        "DeleteQueue",
        "PutCalendar",
        "GetCalendar",
        "ListCalendars",
        "DeleteCalendar",
        "CreateApiKey",
        "ListApiKeys",
        "RevokeApiKey",
        "EraseContact",
    ] {
        p = p.rule(&format!("/switchboard.v1.Admin/{m}"), Rule::Roles(ADMIN));
    }
    for m in ["CreateInteraction", "AppendMessage", "WithdrawInteraction"] {
        p = p.rule(&format!("/switchboard.v1.Interactions/{m}"), Rule::Roles(CHANNELS));
    }
    p = p.rule("/switchboard.v1.Interactions/GetInteraction", Rule::Roles(READ_INTERACTION));
    // The CTI hook: telephony systems only (a key's name is the system's id).
    for m in ["RouteCall", "WatchRoutes", "ReportRoute", "PublishEvents", "RequestCallback", "CreateCallback"] {
        p = p.rule(&format!("/switchboard.cti.v1.Cti/{m}"), Rule::Roles(&[Telephony]));
    }
    if reflection {
        // Any authenticated caller may list the API; without a rule the path needs the same.
        p = p.service("/grpc.reflection.", Rule::Roles(&Role::ALL));
    } else {
        p = p.service("/grpc.reflection.", Rule::Roles(&[]));
    }
    p
}
