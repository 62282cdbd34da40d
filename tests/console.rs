//! The operations console (`/ops`) in headless Chromium against a real `closeout serve`
//! (SQLite in a temp dir, the built-in partner sandbox, an operations and a channel key).
//! This test seeds requests through the channel and operations APIs and the sandbox's
//! fault injection, then runs `tests/e2e/console.mjs` (playwright-core driving
//! `/usr/bin/chromium`), which signs in, filters, reads a detail, approves, skips a step,
//! opens and downloads the completed request's deletion certificate, runs a bulk dry run
//! and a bulk cancel, and saves screenshots under `target/e2e-artifacts/`. Afterwards the
//! outcome is checked again through the API, and the downloaded certificate with
//! `closeout certificate verify` against the serve's public key.
//!
//! Browser policy, like the PostgreSQL one: without Chromium, Node.js or
//! `tests/e2e/node_modules`, the test is listed as ignored and the reason and the install
//! commands are printed; when `CI` is set, it fails instead. Never a silent pass.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context as _};
use closeout_it::harness::{run_plain, PlainTest};
use closeout_it::serve::{closure_request, free_port, ServeProcess};
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

/// Submits a Vietjet closure for `member` through the channel API; the request's ID.
async fn submit(serve: &ServeProcess, member: &str) -> anyhow::Result<String> {
    let body = closure_request("vietjet", member, &phone(member));
    serve
        .submit(CHANNEL_KEY, &format!("console-{member}"), &body)
        .await
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
    let sandbox_port = free_port()?;
    let sandbox_admin = format!("http://127.0.0.1:{sandbox_port}/_admin");
    let serve = ServeProcess::builder(&db.url, dir.path())
        .channel("vietjet", CHANNEL_KEY)
        .operator(OPERATOR, "write", OPS_KEY)
        .config(&format!("[sandbox]\nlisten = \"127.0.0.1:{sandbox_port}\""))
        .env("CLOSEOUT_LOG", "warn")
        .start()
        .await?;

    // Two requests wait for the operations decision...
    let (approve_member, bulk_member, skip_member) =
        (members::ACTIVE_FULL, members::WELCOME, members::PENDING);
    let approve = submit(&serve, approve_member).await?;
    let bulk = submit(&serve, bulk_member).await?;
    serve.wait_state(OPS_KEY, &approve, "waiting").await?;
    serve.wait_state(OPS_KEY, &bulk, "waiting").await?;
    // ...and a third, approved, finds Vietjet refusing the deletion notice once: after
    // the pivot a failure parks it for an operator, later than the others started waiting.
    let skip = submit(&serve, skip_member).await?;
    serve.wait_state(OPS_KEY, &skip, "waiting").await?;
    let fault = serve
        .client
        .post(format!("{sandbox_admin}/faults"))
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
    let parked = serve.wait_state(OPS_KEY, &skip, "needs_operator").await?;
    ensure!(parked["current_step"] == SKIP_STEP, "{parked}");

    let artifacts = artifacts_dir()?;
    let downloads = dir.path().join("downloads");
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
        .env("DOWNLOADS", &downloads)
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
    let approved = serve.wait_state(OPS_KEY, &approve, "completed").await?;
    ensure!(
        acted(
            &approved,
            "signal_received",
            "member confirmed on the phone"
        ),
        "{approved}"
    );
    let skipped = serve.wait_state(OPS_KEY, &skip, "completed").await?;
    ensure!(
        acted(
            &skipped,
            "step_skipped",
            "Vietjet confirmed the deletion by email"
        ),
        "{skipped}"
    );
    let cancelled = serve.wait_state(OPS_KEY, &bulk, "cancelled").await?;
    ensure!(
        acted(
            &cancelled,
            "cancel_requested",
            "duplicate submissions from a test"
        ),
        "{cancelled}"
    );
    verify_certificate(
        &serve,
        &downloads.join(format!("closeout-certificate-{approve}.json")),
    )
    .await?;
    for shot in [
        "console-list.png",
        "console-detail.png",
        "console-certificate.png",
        "console-bulk.png",
    ] {
        let path = artifacts.join(shot);
        ensure!(
            std::fs::metadata(&path).is_ok_and(|m| m.len() > 0),
            "{} was not saved",
            path.display()
        );
        println!("console screenshot: {}", path.display());
    }
    serve.stop_gracefully().await?;
    db.drop_db().await;
    Ok(())
}

/// Checks the certificate the browser downloaded with the real binary, trusting the
/// running serve's signing key as `GET /v1/certificates/keys` publishes it.
async fn verify_certificate(serve: &ServeProcess, file: &Path) -> anyhow::Result<()> {
    ensure!(
        file.is_file(),
        "the browser did not save the certificate at {}",
        file.display()
    );
    let keys: Value = serve
        .client
        .get(format!("{}/v1/certificates/keys", serve.base))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = keys["signing_key_id"]
        .as_str()
        .with_context(|| format!("no signing key: {keys}"))?;
    let public = keys["keys"][id]
        .as_str()
        .with_context(|| format!("no public key {id}: {keys}"))?;
    let output = tokio::process::Command::new(closeout_it::closeout_bin())
        .args(["certificate", "verify", "--public-key"])
        .arg(format!("{id}={public}"))
        .arg(file)
        .env_remove("CLOSEOUT_CONFIG")
        .current_dir(file.parent().context("the download directory")?)
        .stdin(Stdio::null())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{}", stdout.trim_end());
    ensure!(
        output.status.success() && stdout.contains("certificate valid"),
        "closeout certificate verify {} exited with {}:\n{stdout}\n{}",
        file.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
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
