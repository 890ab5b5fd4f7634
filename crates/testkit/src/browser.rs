//! A real headless Chromium driven over WebDriver: a private `chromedriver` on a free port, in
//! its own process group, with a fresh profile directory. Dropping it ends the browser session
//! and kills exactly that process group (chromedriver and the Chromium it started).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::wait::{PATIENCE, eventually, free_port, init_tracing};

pub struct Browser {
    pub client: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

/// The chromedriver process group; killed on drop, so a failing test leaves nothing behind.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // `kill -KILL -- -PGID`: the group created with process_group(0), nothing else.
            let _ = Command::new("kill").arg("-KILL").arg("--").arg(format!("-{}", self.0.id())).status();
            let _ = self.0.wait();
        }
    }
}

const CHROMIUM: &str = "/usr/lib/chromium/chromium";

impl Browser {
    pub async fn start() -> Browser {
        init_tracing();
        let profile = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={port}")).arg("--allowed-ips=127.0.0.1").stdout(Stdio::null()).stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = Driver(cmd.spawn().expect("chromedriver (apt-get install chromium chromium-driver)"));
        let url = format!("http://127.0.0.1:{port}");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1000,800",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = eventually("chromedriver session", Duration::from_secs(30), || {
            let (url, caps) = (url.clone(), caps.clone());
            // WebDriver on loopback is plain HTTP: no TLS stack needed for it.
            let connector = HttpConnector::new();
            async move { ClientBuilder::new(connector).capabilities(caps).connect(&url).await.ok() }
        })
        .await;
        Browser { client, _driver: driver, _profile: profile }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Waits for an element to exist and be displayed.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        eventually(&format!("element {css}"), PATIENCE, || async {
            let e = self.client.find(Locator::Css(css)).await.ok()?;
            e.is_displayed().await.ok()?.then_some(e)
        })
        .await
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        self.find(css).await.send_keys(text).await.expect("type");
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("click");
    }

    /// Runs JavaScript in the page and returns its JSON result.
    pub async fn js(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.expect("execute script")
    }

    /// Waits until `script` returns something truthy, and returns it.
    pub async fn wait_js(&self, what: &str, script: &str) -> serde_json::Value {
        eventually(what, PATIENCE, || async {
            let v = self.client.execute(script, vec![]).await.ok()?;
            let truthy = !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0));
            truthy.then_some(v)
        })
        .await
    }

    /// Ends the session (Chromium quits); chromedriver stops when `self` drops.
    pub async fn stop(self) {
        let _ = self.client.clone().close().await;
    }
}
