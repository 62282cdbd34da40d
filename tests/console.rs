//! The operations console (`/ops`) in headless Chromium against a real `closeout serve`
//! (SQLite in a temp dir, the built-in partner sandbox, an operations and a channel key).
//! This test seeds requests through the channel and operations APIs and the sandbox's
//! fault injection, then runs `tests/e2e/console.mjs` (playwright-core driving
//! `/usr/bin/chromium`), which signs in, filters, reads a detail, approves, skips a step,
//! runs a bulk dry run and a bulk cancel, and saves screenshots under
//! `target/e2e-artifacts/`. Afterwards the outcome is checked again through the API.
//!
//! Browser policy, like the PostgreSQL one: without Chromium, Node.js or
//! `tests/e2e/node_modules`, the test is listed as ignored and the reason and the install
//! commands are printed; when `CI` is set, it fails instead. Never a silent pass.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use chrono::Utc;
use closeout_api::auth::hash_key;
use closeout_it::harness::{run_plain, PlainTest};
use closeout_it::{Backend, TestDb};
use closeout_sandbox::members;
use reqwest::StatusCode;
use serde_json::{json, Value};

const OPERATOR: &str = "console-e2e";
const OPS_KEY: &str = "console-e2e-operator-key-0123456789";
const CHANNEL_KEY: &str = "console-e2e-vietjet-key-0123456789";
/// The step after the pivot that the sandbox is made to refuse, so the request parks.
const SKIP_STEP: &str = "notify_vietjet";
const INSTALL: &str =
    "apt-get install -y --no-install-recommends chromium && (cd tests/e2e && npm ci)";

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e")
}

fn chromium() -> PathBuf {
    std::env::var_os("CLOSEOUT_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// `Err(why)` when the browser test cannot run on this machine.
fn availability() -> Result<(), String> {
    let browser = chromium();
    if !browser.is_file() {
        return Err(format!(
            "no Chromium at {} (set CLOSEOUT_CHROMIUM to use another)",
            browser.display()
        ));
    }
    match std::process::Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => return Err(format!("`node --version` exited with {}", out.status)),
        Err(e) => return Err(format!("no Node.js on PATH ({e})")),
    }
    let module = e2e_dir().join("node_modules/playwright-core/package.json");
    if !module.is_file() {
        return Err(format!(
            "{} is missing (run `npm ci` in tests/e2e)",
            module.display()
        ));
    }
    Ok(())
}

/// `target/e2e-artifacts`, next to the profile directory holding the test binaries (so
/// `CARGO_TARGET_DIR` is honoured).
fn artifacts_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let target = exe
        .ancestors()
        .nth(3)
        .context("the test binary is in target/<profile>/deps")?;
    Ok(target.join("e2e-artifacts"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Serve {
    base: String,
    sandbox_admin: String,
    client: reqwest::Client,
    process: tokio::process::Child,
}

impl Serve {
    async fn start(db: &TestDb, dir: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let sandbox_port = free_port()?;
        let config = dir.join("closeout.toml");
        std::fs::write(
            &config,
            format!(
                r#"database_url = "{db}"
workflows = "{workflows}"
[api]
listen = "127.0.0.1:{port}"
[api.channels.vietjet]
key_hashes = ["{channel}"]
[api.operators.{OPERATOR}]
role = "write"
key_hashes = ["{operator}"]
[sandbox]
listen = "127.0.0.1:{sandbox_port}"
"#,
                db = db.url,
                workflows = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("workflows")
                    .display(),
                channel = hash_key(CHANNEL_KEY),
                operator = hash_key(OPS_KEY),
            ),
        )?;
        let mut process = tokio::process::Command::new(closeout_it::closeout_bin())
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("CLOSEOUT_LOG", "warn")
            .kill_on_drop(true)
            .spawn()?;
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client.get(format!("{base}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if let Some(status) = process.try_wait()? {
                bail!("serve exited early with {status}");
            }
            ensure!(Instant::now() < deadline, "serve was not ready in 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            base,
            sandbox_admin: format!("http://127.0.0.1:{sandbox_port}/_admin"),
            client,
            process,
        })
    }

    async fn submit(&self, member: &str, phone: &str) -> anyhow::Result<String> {
        let answer = self
            .client
            .post(format!("{}/v1/requests", self.base))
            .bearer_auth(CHANNEL_KEY)
            .header("Idempotency-Key", format!("console-{member}"))
            .json(&json!({
                "flow": "vietjet",
                "skyjoy_id": member,
                "phone": phone,
                "reason": "moving abroad",
                "requested_at": Utc::now(),
                "platform": "Vietjet web",
            }))
            .send()
            .await?;
        let status = answer.status();
        let body: Value = answer.json().await?;
        ensure!(status == StatusCode::ACCEPTED, "submit {member}: {body}");
        Ok(body["request_id"]
            .as_str()
            .context("request_id")?
            .to_owned())
    }

    async fn detail(&self, id: &str) -> anyhow::Result<Value> {
        let answer = self
            .client
            .get(format!("{}/v1/ops/requests/{id}", self.base))
            .bearer_auth(OPS_KEY)
            .send()
            .await?;
        ensure!(
            answer.status() == StatusCode::OK,
            "{}",
            answer.text().await?
        );
        Ok(answer.json().await?)
    }

    /// Waits until the request is in `state`.
    async fn until(&self, id: &str, state: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let detail = self.detail(id).await?;
            if detail["state"] == state {
                return Ok(detail);
            }
            ensure!(
                Instant::now() < deadline,
                "{id} did not reach {state}: {} at {} ({})",
                detail["state"],
                detail["current_step"],
                detail["reason"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.process.id().context("serve's pid")?.to_string();
        ensure!(std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()?
            .success());
        let exit = tokio::time::timeout(Duration::from_secs(20), self.process.wait()).await??;
        ensure!(exit.success(), "serve exited with {exit}");
        Ok(())
    }
}

fn phone(member: &str) -> String {
    format!("+8490000000{}", member.chars().last().unwrap_or('0'))
}

async fn browser(available: Result<(), String>) -> anyhow::Result<()> {
    if let Err(reason) = available {
        bail!("the console browser test must run (CI is set) but cannot: {reason}; install with: {INSTALL}");
    }
    let db = TestDb::create(Backend::Sqlite).await;
    let dir = tempfile::tempdir()?;
    let serve = Serve::start(&db, dir.path()).await?;

    // Two requests wait for the operations decision...
    let (approve_member, bulk_member, skip_member) =
        (members::ACTIVE_FULL, members::WELCOME, members::PENDING);
    let approve = serve.submit(approve_member, &phone(approve_member)).await?;
    let bulk = serve.submit(bulk_member, &phone(bulk_member)).await?;
    serve.until(&approve, "waiting").await?;
    serve.until(&bulk, "waiting").await?;
    // ...and a third, approved, finds Vietjet refusing the deletion notice once: after
    // the pivot a failure parks it for an operator, later than the others started waiting.
    let skip = serve.submit(skip_member, &phone(skip_member)).await?;
    serve.until(&skip, "waiting").await?;
    let fault = serve
        .client
        .post(format!("{}/faults", serve.sandbox_admin))
        .json(&json!({"endpoint": "vietjet.deletion", "kind": "fail_next", "count": 1, "status": 400}))
        .send()
        .await?;
    ensure!(
        fault.status() == StatusCode::CREATED,
        "{}",
        fault.text().await?
    );
    let approved = serve
        .client
        .post(format!("{}/v1/ops/requests/{skip}/approve", serve.base))
        .bearer_auth(OPS_KEY)
        .json(&json!({"reason": "seeded by tests/console.rs"}))
        .send()
        .await?;
    ensure!(
        approved.status() == StatusCode::OK,
        "{}",
        approved.text().await?
    );
    let parked = serve.until(&skip, "needs_operator").await?;
    ensure!(parked["current_step"] == SKIP_STEP, "{parked}");

    let artifacts = artifacts_dir()?;
    let phones = [approve_member, bulk_member, skip_member].map(phone);
    let output = tokio::process::Command::new("node")
        .arg("console.mjs")
        .current_dir(e2e_dir())
        .env("CONSOLE_URL", &serve.base)
        .env("OPS_KEY", OPS_KEY)
        .env("OPS_ACTOR", format!("ops:{OPERATOR}"))
        .env("CHANNEL_KEY", CHANNEL_KEY)
        .env("APPROVE_ID", &approve)
        .env("APPROVE_MEMBER", approve_member)
        .env("SKIP_ID", &skip)
        .env("SKIP_STEP", SKIP_STEP)
        .env("BULK_ID", &bulk)
        .env("PHONES", phones.join(","))
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", chromium())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), output)
        .await
        .context("the browser test took more than 4 minutes")??;
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    ensure!(
        output.status.success(),
        "tests/e2e/console.mjs failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // What the browser did, as the API sees it.
    let actor = format!("ops:{OPERATOR}");
    let acted = |detail: &Value, kind: &str, reason: &str| {
        detail["history"].as_array().is_some_and(|h| {
            h.iter()
                .any(|e| e["kind"] == kind && e["actor"] == actor && e["reason"] == reason)
        })
    };
    let approved = serve.until(&approve, "completed").await?;
    ensure!(
        acted(
            &approved,
            "signal_received",
            "member confirmed on the phone"
        ),
        "{approved}"
    );
    let skipped = serve.until(&skip, "completed").await?;
    ensure!(
        acted(
            &skipped,
            "step_skipped",
            "Vietjet confirmed the deletion by email"
        ),
        "{skipped}"
    );
    let cancelled = serve.until(&bulk, "cancelled").await?;
    ensure!(
        acted(
            &cancelled,
            "cancel_requested",
            "duplicate submissions from a test"
        ),
        "{cancelled}"
    );
    for shot in ["console-list.png", "console-detail.png", "console-bulk.png"] {
        let path = artifacts.join(shot);
        ensure!(
            std::fs::metadata(&path).is_ok_and(|m| m.len() > 0),
            "{} was not saved",
            path.display()
        );
        println!("console screenshot: {}", path.display());
    }
    serve.stop().await?;
    db.drop_db().await;
    Ok(())
}

fn main() {
    let available = availability();
    let ignored = match &available {
        Ok(()) => false,
        Err(_) if std::env::var_os("CI").is_some() => false,
        Err(reason) => {
            eprintln!(
                "console: browser test NOT RUN: {reason}. Install with: {INSTALL} (with CI set, this fails instead)"
            );
            true
        }
    };
    let test: PlainTest = (
        "browser".to_owned(),
        ignored,
        Box::new(move || Box::pin(browser(available))),
    );
    run_plain("console", vec![test]);
}
