//! A web chat visitor speaking the widget's WebSocket protocol, without a browser.

use std::collections::VecDeque;
use std::net::SocketAddr;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::PATIENCE;

pub struct Visitor {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames received while waiting for something else.
    pub pending: VecDeque<Value>,
    pub closed: bool,
    /// Close code, when the server closed the connection with one.
    pub close_code: Option<u16>,
    /// The server's `hello` frame.
    pub hello: Value,
}

/// The HTTP status and body of a refused WebSocket handshake.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: String,
}

impl Visitor {
    /// Connects as the server's own page (same origin), e.g. the demo page.
    pub async fn connect(http: SocketAddr) -> Visitor {
        Self::connect_from(http, Some(&format!("http://{http}"))).await.expect("web chat connection")
    }

    pub async fn connect_from(http: SocketAddr, origin: Option<&str>) -> Result<Visitor, Refused> {
        let mut req = format!("ws://{http}/chat/ws").into_client_request().unwrap();
        if let Some(o) = origin {
            req.headers_mut().insert("Origin", HeaderValue::from_str(o).unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => {
                let mut v =
                    Visitor { ws, pending: VecDeque::new(), closed: false, close_code: None, hello: Value::Null };
                let hello = v.wait_type("hello").await;
                assert!(hello["topics"].is_array(), "{hello}");
                v.hello = hello;
                Ok(v)
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(Refused {
                status: r.status().as_u16(),
                body: r.body().as_ref().map(|b| String::from_utf8_lossy(b).to_string()).unwrap_or_default(),
            }),
            Err(e) => panic!("web chat connection failed: {e}"),
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws.send(WsMessage::Text(frame.to_string().into())).await.expect("send frame");
    }

    pub async fn send_raw(&mut self, m: WsMessage) -> bool {
        self.ws.send(m).await.is_ok()
    }

    /// The next frame from the server (None once the connection is closed).
    pub async fn recv(&mut self) -> Option<Value> {
        if self.closed {
            return None;
        }
        loop {
            match tokio::time::timeout(PATIENCE, self.ws.next()).await {
                Ok(Some(Ok(WsMessage::Text(t)))) => return Some(serde_json::from_str(t.as_str()).expect("JSON frame")),
                Ok(Some(Ok(WsMessage::Close(c)))) => {
                    self.close_code = c.map(|c| u16::from(c.code));
                    self.closed = true;
                    return None;
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_)) | None) => {
                    self.closed = true;
                    return None;
                }
                Err(_) => panic!("visitor: no frame within {PATIENCE:?}; pending {:?}", self.pending),
            }
        }
    }

    /// Waits for a frame matching `pred` (buffered ones first) and removes it.
    pub async fn wait(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i).unwrap();
        }
        loop {
            let Some(f) = self.recv().await else {
                panic!("visitor: connection closed waiting for {what}; pending {:?}", self.pending)
            };
            if pred(&f) {
                return f;
            }
            self.pending.push_back(f);
        }
    }

    pub async fn wait_type(&mut self, t: &str) -> Value {
        let t2 = t.to_string();
        self.wait(t, move |f| f["type"] == t2.as_str()).await
    }

    pub async fn wait_error(&mut self, code: &str) -> Value {
        let c = code.to_string();
        self.wait(&format!("error {code}"), move |f| f["type"] == "error" && f["code"] == c.as_str()).await
    }

    /// Waits for a thread message with this body.
    pub async fn wait_message(&mut self, body: &str) -> Value {
        let b = body.to_string();
        self.wait(&format!("message {body:?}"), move |f| f["type"] == "message" && f["body"] == b.as_str()).await
    }

    /// Starts a chat; returns (token, interaction id).
    pub async fn start(&mut self, name: &str, message: &str) -> (String, String) {
        self.send(json!({"type": "start", "name": name, "email": "", "message": message})).await;
        let s = self.wait_type("started").await;
        (s["token"].as_str().unwrap().to_string(), s["interaction_id"].as_str().unwrap().to_string())
    }

    pub async fn resume(&mut self, token: &str, last_seq: u64) {
        self.send(json!({"type": "resume", "token": token, "last_seq": last_seq})).await;
    }

    pub async fn say(&mut self, body: &str, client_id: &str) -> u64 {
        self.send(json!({"type": "message", "body": body, "client_id": client_id})).await;
        let c = client_id.to_string();
        let sent = self.wait("sent", move |f| f["type"] == "sent" && f["client_id"] == c.as_str()).await;
        sent["seq"].as_u64().unwrap()
    }

    /// Closes from the visitor's side and waits for the server to finish the close.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(PATIENCE, self.ws.next()).await {}
    }
}
