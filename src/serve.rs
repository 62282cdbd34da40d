//! A real `closeout serve` process for the integration tests, and the channel and
//! operations API calls they make against it.
//!
//! [`ServeProcess::builder`] writes `closeout.toml` into a test's directory (the
//! database, the repository's `workflows/`, `[api] listen` on a free port, the channel
//! and operator keys as hashes, then whatever sections the test adds), spawns
//! `closeout serve --config FILE` and waits for `/readyz`; [`ServeProcess::stop_gracefully`]
//! sends SIGTERM and checks for a clean exit.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// How long serve may take to answer `/readyz`, and a request to reach a state.
const DEADLINE: Duration = Duration::from_secs(30);
/// How long serve may take to exit after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The repository's `workflows/` directory.
pub fn workflows_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows")
}

/// A channel's closure request body, as a channel partner submits it.
pub fn closure_request(flow: &str, member: &str, phone: &str) -> Value {
    json!({
        "flow": flow,
        "skyjoy_id": member,
        "phone": phone,
        "reason": "moving abroad",
        "requested_at": Utc::now(),
        "platform": "Vietjet web",
    })
}

/// Posts `body` to `/v1/requests` with a channel key and an `Idempotency-Key`, checks
/// for 202 Accepted and returns the request's ID.
pub async fn submit_closure(
    client: &reqwest::Client,
    base: &str,
    channel_key: &str,
    idempotency_key: &str,
    body: &Value,
) -> anyhow::Result<String> {
    let answer = client
        .post(format!("{base}/v1/requests"))
        .bearer_auth(channel_key)
        .header("Idempotency-Key", idempotency_key)
        .json(body)
        .send()
        .await?;
    let answer = expect_json(
        answer,
        StatusCode::ACCEPTED,
        &format!("submit {idempotency_key}"),
    )
    .await?;
    Ok(answer["request_id"]
        .as_str()
        .context("request_id")?
        .to_owned())
}

/// `GET /v1/ops/requests/{id}` with an operator's key; checks for 200 OK.
pub async fn request_detail(
    client: &reqwest::Client,
    base: &str,
    ops_key: &str,
    id: &str,
) -> anyhow::Result<Value> {
    let answer = client
        .get(format!("{base}/v1/ops/requests/{id}"))
        .bearer_auth(ops_key)
        .send()
        .await?;
    expect_json(answer, StatusCode::OK, &format!("detail {id}")).await
}

/// The answer's JSON body, once its status is `expected`; `what` names the call.
async fn expect_json(
    answer: reqwest::Response,
    expected: StatusCode,
    what: &str,
) -> anyhow::Result<Value> {
    let status = answer.status();
    let text = answer.text().await?;
    ensure!(status == expected, "{what}: {status}: {text}");
    serde_json::from_str(&text).with_context(|| format!("{what}: not JSON: {text}"))
}

/// What to write into `closeout.toml` and how to run serve; see
/// [`ServeProcess::builder`].
#[derive(Debug)]
pub struct ServeBuilder {
    database_url: String,
    dir: PathBuf,
    api: String,
    extra: String,
    env: Vec<(String, Option<String>)>,
    log_to_file: bool,
}

impl ServeBuilder {
    /// `[api.channels.NAME]` accepting `key`.
    pub fn channel(mut self, name: &str, key: &str) -> Self {
        let hash = closeout_api::auth::hash_key(key);
        let _ = write!(
            self.api,
            "[api.channels.{name}]\nkey_hashes = [\"{hash}\"]\n"
        );
        self
    }

    /// `[api.operators.NAME]` with `role`, accepting `key`.
    pub fn operator(mut self, name: &str, role: &str, key: &str) -> Self {
        let hash = closeout_api::auth::hash_key(key);
        let _ = write!(
            self.api,
            "[api.operators.{name}]\nrole = \"{role}\"\nkey_hashes = [\"{hash}\"]\n"
        );
        self
    }

    /// More of `closeout.toml`, written after the `[api…]` tables.
    pub fn config(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        if !self.extra.ends_with('\n') {
            self.extra.push('\n');
        }
        self
    }

    /// Sets a variable in serve's environment.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), Some(value.to_owned())));
        self
    }

    /// Removes a variable from serve's environment.
    pub fn env_remove(mut self, name: &str) -> Self {
        self.env.push((name.to_owned(), None));
        self
    }

    /// Sends serve's stdout to `serve.out` and its stderr (the log) to `serve.log` in the
    /// directory, instead of the test's own; the log is shown if serve fails to start.
    pub fn log_to_file(mut self) -> Self {
        self.log_to_file = true;
        self
    }

    /// Writes `closeout.toml`, spawns `closeout serve --config FILE` and waits until
    /// `/readyz` answers (at most 30 s), failing if serve exits first.
    pub async fn start(self) -> anyhow::Result<ServeProcess> {
        let port = free_port()?;
        let config = self.dir.join("closeout.toml");
        let toml = format!(
            "database_url = \"{db}\"\nworkflows = \"{workflows}\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n{api}{extra}",
            db = self.database_url,
            workflows = workflows_dir().display(),
            api = self.api,
            extra = self.extra,
        );
        std::fs::write(&config, toml).with_context(|| format!("writing {}", config.display()))?;
        let mut command = tokio::process::Command::new(crate::closeout_bin());
        command
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .kill_on_drop(true);
        for (name, value) in &self.env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        let log = if self.log_to_file {
            let log = self.dir.join("serve.log");
            command
                .stdout(Stdio::from(std::fs::File::create(
                    self.dir.join("serve.out"),
                )?))
                .stderr(Stdio::from(std::fs::File::create(&log)?));
            Some(log)
        } else {
            None
        };
        let mut child = command.spawn().context("spawning closeout serve")?;
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let ready = client.get(format!("{base}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if let Some(status) = child.try_wait()? {
                let shown = log
                    .as_ref()
                    .map(|log| format!(":\n{}", std::fs::read_to_string(log).unwrap_or_default()))
                    .unwrap_or_default();
                bail!("serve exited early with {status}{shown}");
            }
            ensure!(
                Instant::now() < deadline,
                "serve was not ready within {} s",
                DEADLINE.as_secs()
            );
            tokio::time::sleep(POLL).await;
        }
        Ok(ServeProcess {
            base,
            client,
            config,
            log,
            child,
        })
    }
}

/// A running `closeout serve`, killed if dropped; stop it with
/// [`stop_gracefully`](Self::stop_gracefully) to check it shuts down cleanly.
#[derive(Debug)]
pub struct ServeProcess {
    /// `http://127.0.0.1:PORT`, the API's address.
    pub base: String,
    /// The client that saw serve ready, for the test's own calls.
    pub client: reqwest::Client,
    /// The `closeout.toml` serve runs with.
    pub config: PathBuf,
    /// serve's log file, with [`ServeBuilder::log_to_file`].
    pub log: Option<PathBuf>,
    child: tokio::process::Child,
}

impl ServeProcess {
    /// A serve on `database_url`, with its `closeout.toml` (and log files) in `dir`.
    pub fn builder(database_url: &str, dir: &Path) -> ServeBuilder {
        ServeBuilder {
            database_url: database_url.to_owned(),
            dir: dir.to_owned(),
            api: String::new(),
            extra: String::new(),
            env: Vec::new(),
            log_to_file: false,
        }
    }

    /// [`submit_closure`] against this serve; the request's ID.
    pub async fn submit(
        &self,
        channel_key: &str,
        idempotency_key: &str,
        body: &Value,
    ) -> anyhow::Result<String> {
        submit_closure(&self.client, &self.base, channel_key, idempotency_key, body).await
    }

    /// [`request_detail`] against this serve.
    pub async fn detail(&self, ops_key: &str, id: &str) -> anyhow::Result<Value> {
        request_detail(&self.client, &self.base, ops_key, id).await
    }

    /// Polls the request's detail until `done` holds (at most 30 s); the detail that
    /// satisfied it. `what` names the awaited condition in the error.
    pub async fn wait_for(
        &self,
        ops_key: &str,
        id: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let detail = self.detail(ops_key, id).await?;
            if done(&detail) {
                return Ok(detail);
            }
            ensure!(
                Instant::now() < deadline,
                "{id} never became {what}: {detail}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the request is in `state`.
    pub async fn wait_state(&self, ops_key: &str, id: &str, state: &str) -> anyhow::Result<Value> {
        self.wait_for(ops_key, id, state, |d| d["state"] == state)
            .await
    }

    /// Sends SIGTERM, waits (at most 20 s) and checks serve exited successfully.
    pub async fn stop_gracefully(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().context("serve's pid")?.to_string();
        ensure!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()?
                .success(),
            "kill -TERM {pid} failed"
        );
        let exit = tokio::time::timeout(STOP_DEADLINE, self.child.wait())
            .await
            .context("serve did not exit within 20 s of SIGTERM")??;
        ensure!(exit.success(), "serve exited with {exit}");
        Ok(())
    }
}
