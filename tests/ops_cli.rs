//! `closeout requests`, the operations CLI, as an operator runs it: the real binary as a
//! subprocess against a real `closeout serve`, on SQLite and on PostgreSQL. Requests are
//! submitted through the channel API; partners are a sandbox in this process, wired in
//! through `[connectors]` so a test can inject faults. Every CLI run is also checked for
//! never printing a credential.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context as _};
use chrono::{DateTime, Utc};
use closeout_connectors::Endpoint;
use closeout_it::harness::{run_per_backend, TestFn, TestFuture};
use closeout_it::serve::{closure_request, free_port, ServeProcess};
use closeout_it::{Backend, TestDb};
use closeout_sandbox::{members, Fault, FaultRule, Injected, Sandbox, SandboxConfig};
use serde_json::Value;

const VIETJET_KEY: &str = "ops-cli-test-vietjet-channel-key-01";
const WRITE_KEY: &str = "ops-cli-test-alice-write-key-0123456";
const READ_KEY: &str = "ops-cli-test-bob-read-only-key-01234";
const UNKNOWN_KEY: &str = "ops-cli-test-key-nobody-configured-0";
/// A fixed test-only Ed25519 seed (bytes 0..32): the certificate check needs the same key
/// as serve.
const SIGNING_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// How the CLI gets its credential in one run.
enum Key {
    /// alice, role write, through `--key-file`.
    Write,
    /// bob, role read, through `CLOSEOUT_OPS_KEY`.
    Read,
    /// This key through `CLOSEOUT_OPS_KEY`.
    Env(&'static str),
    /// `--key-file` naming this path.
    File(PathBuf),
    /// Neither.
    None,
}

/// One finished CLI run.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> anyhow::Result<&Self> {
        ensure!(self.code == 0, "expected success: {self:?}");
        Ok(self)
    }

    /// Exits with `code` and says all of `words` on stderr.
    fn fails(&self, code: i32, words: &[&str]) -> anyhow::Result<&Self> {
        ensure!(self.code == code, "expected exit status {code}: {self:?}");
        for word in words {
            ensure!(
                self.stderr.contains(word),
                "stderr lacks {word:?}: {self:?}"
            );
        }
        Ok(self)
    }

    fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_str(&self.stdout).with_context(|| format!("not JSON: {self:?}"))
    }

    /// Whether some stdout line mentions every one of `words`.
    fn has(&self, words: &[&str]) -> bool {
        self.stdout
            .lines()
            .any(|l| words.iter().all(|w| l.contains(w)))
    }

    /// Whether some stdout line's first cells are `cells` (a table row).
    fn row(&self, cells: &[&str]) -> bool {
        self.stdout.lines().any(|l| {
            l.split_whitespace()
                .take(cells.len())
                .eq(cells.iter().copied())
        })
    }

    /// The one stdout line that starts with `label` (a summary line of `show`).
    fn field(&self, label: &str) -> anyhow::Result<&str> {
        let lines: Vec<&str> = self
            .stdout
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(label))
            .collect();
        ensure!(lines.len() == 1, "one line labelled {label:?}: {self:?}");
        Ok(lines[0])
    }

    /// The one stdout line that mentions `needle`.
    fn line(&self, needle: &str) -> anyhow::Result<&str> {
        let lines: Vec<&str> = self.stdout.lines().filter(|l| l.contains(needle)).collect();
        ensure!(lines.len() == 1, "one line with {needle:?}: {self:?}");
        Ok(lines[0])
    }
}

fn ids(list: &Value) -> Vec<String> {
    list["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["request_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Runs `closeout requests ARGS` against `url` and checks it printed no credential.
async fn run_cli(url: &str, key: &Key, dir: &Path, args: &[&str]) -> anyhow::Result<Run> {
    let mut command = tokio::process::Command::new(closeout_it::closeout_bin());
    command
        .arg("requests")
        .args(args)
        .env_remove("CLOSEOUT_OPS_KEY")
        .env_remove("CLOSEOUT_LOG")
        .env("CLOSEOUT_OPS_URL", url)
        .kill_on_drop(true);
    match key {
        Key::Write => {
            command.arg("--key-file").arg(dir.join("alice.key"));
        }
        Key::Read => {
            command.env("CLOSEOUT_OPS_KEY", READ_KEY);
        }
        Key::Env(key) => {
            command.env("CLOSEOUT_OPS_KEY", key);
        }
        Key::File(path) => {
            command.arg("--key-file").arg(path);
        }
        Key::None => {}
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .context("the CLI did not finish within 60 s")??;
    let run = Run {
        code: output.status.code().context("killed by a signal")?,
        stdout: String::from_utf8(output.stdout)?,
        stderr: String::from_utf8(output.stderr)?,
    };
    for secret in [VIETJET_KEY, WRITE_KEY, READ_KEY, UNKNOWN_KEY] {
        ensure!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "a credential was printed: {run:?}"
        );
    }
    Ok(run)
}

/// A `closeout serve` process on its own database, with partners played by a sandbox in
/// this process.
struct Server {
    db: TestDb,
    sandbox: Sandbox,
    serve: ServeProcess,
    dir: tempfile::TempDir,
}

impl Server {
    async fn start(backend: Backend) -> anyhow::Result<Self> {
        let db = TestDb::create(backend).await;
        let sandbox = Sandbox::start(SandboxConfig::default()).await?;
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("alice.key"), format!("{WRITE_KEY}\n"))?;
        // The log goes to a file, shown only if serve fails to start. CLOSEOUT_LOG is
        // removed, not set: the configuration reads CLOSEOUT_* variables as keys too.
        let serve = ServeProcess::builder(&db.url, dir.path())
            .channel("vietjet", VIETJET_KEY)
            .operator("alice", "write", WRITE_KEY)
            .operator("bob", "read", READ_KEY)
            .config(&format!(
                r#"[api.rate_limit]
per_second = 1000
burst = 1000
[engine]
poll_interval = "50ms"
[certificates]
signing_key = "{SIGNING_KEY}"
key_id = "ops-cli-test"
{connectors}"#,
                connectors = closeout::sandbox::config_toml(&sandbox),
            ))
            .env_remove("CLOSEOUT_LOG")
            .log_to_file()
            .start()
            .await?;
        Ok(Self {
            db,
            sandbox,
            serve,
            dir,
        })
    }

    async fn cli(&self, key: Key, args: &[&str]) -> anyhow::Result<Run> {
        run_cli(&self.serve.base, &key, self.dir.path(), args).await
    }

    /// Submits `flow` for `member` through the channel API; the request's ID.
    async fn submit(&self, flow: &str, member: &str) -> anyhow::Result<String> {
        let n = member.chars().last().context("member")?;
        let body = closure_request(flow, member, &format!("+8490000000{n}"));
        let key = format!("ops-cli-{flow}-{member}");
        self.serve.submit(VIETJET_KEY, &key, &body).await
    }

    /// Polls the request, as the operations API shows it without the CLI, until `done`
    /// holds; the detail that satisfied it.
    async fn wait_for(
        &self,
        id: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        self.serve.wait_for(READ_KEY, id, what, done).await
    }

    async fn wait_state(&self, id: &str, state: &str) -> anyhow::Result<Value> {
        self.wait_for(id, state, |d| d["state"] == state).await
    }

    async fn state(&self, id: &str) -> anyhow::Result<String> {
        Ok(self.serve.detail(READ_KEY, id).await?["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Checks that nothing moved these requests from `waiting`.
    async fn all_waiting(&self, ids: &[&str]) -> anyhow::Result<()> {
        for id in ids {
            ensure!(self.state(id).await? == "waiting", "{id} was changed");
        }
        Ok(())
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.serve.stop_gracefully().await?;
        self.sandbox.stop().await;
        self.db.drop_db().await;
        Ok(())
    }
}

fn fail_with(status: u16) -> Injected {
    Injected {
        status: Some(status),
        body: None,
    }
}

/// list (table, JSON, filters), show (table, JSON), approve, a refused approve (409),
/// resume after a failure past the pivot, reject, and a missing reason.
fn list_show_and_decide(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = Server::start(backend).await?;
        // The deletion notice to Vietjet fails once, permanently: after the pivot, so the
        // approved request parks as needs_operator for `resume`.
        s.sandbox.add_fault(FaultRule::on(
            Endpoint::VietjetDeletion,
            Fault::FailNext {
                count: 1,
                answer: fail_with(400),
            },
        ))?;
        let a = s.submit("vietjet", members::ACTIVE_FULL).await?;
        s.wait_state(&a, "waiting").await?;
        let b = s.submit("vietjet", members::PENDING).await?;
        s.wait_state(&b, "waiting").await?;

        let list = s.cli(Key::Read, &["list"]).await?;
        list.ok()?;
        let header = list.stdout.lines().next().unwrap_or_default();
        for column in ["REQUEST", "FLOW", "STATE", "STEP", "IN STATE", "CHANNEL"] {
            ensure!(header.contains(column), "{column}: {list:?}");
        }
        for id in [&a, &b] {
            let row = list.line(id)?;
            let cells: Vec<&str> = row.split_whitespace().collect();
            ensure!(
                cells[..4] == [id.as_str(), "vietjet", "waiting", "ops_decision"]
                    && cells.last() == Some(&"vietjet"),
                "{row}"
            );
        }
        ensure!(
            list.stdout.find(&a) < list.stdout.find(&b),
            "oldest in its state first: {list:?}"
        );
        let json = s.cli(Key::Read, &["list", "--json"]).await?;
        ensure!(
            ids(&json.ok()?.json()?) == [a.clone(), b.clone()],
            "{json:?}"
        );
        let one = s
            .cli(
                Key::Read,
                &["list", "--skyjoy-id", members::PENDING, "--json"],
            )
            .await?;
        ensure!(ids(&one.ok()?.json()?) == [b.clone()], "{one:?}");
        let limited = s.cli(Key::Read, &["list", "--limit", "1"]).await?;
        ensure!(
            limited.ok()?.stdout.contains(&a)
                && !limited.stdout.contains(&b)
                && limited.stdout.contains("raise --limit"),
            "{limited:?}"
        );
        let none = s
            .cli(Key::Read, &["list", "--state", "needs_operator"])
            .await?;
        ensure!(none.ok()?.stdout == "no requests match\n", "{none:?}");
        // Nothing has been in its state long enough for the stuck-workflow sweep.
        let stuck = s.cli(Key::Read, &["list", "--stuck"]).await?;
        ensure!(stuck.ok()?.stdout == "no requests match\n", "{stuck:?}");
        let bad = s.cli(Key::Read, &["list", "--state", "sleeping"]).await?;
        bad.fails(2, &["refused the input", "INVALID_FIELD", "`state`"])?;

        let show = s.cli(Key::Read, &["show", &a]).await?;
        show.ok()?;
        ensure!(show.field("request")?.ends_with(&a), "{show:?}");
        ensure!(
            show.field("member")?.ends_with(members::ACTIVE_FULL),
            "{show:?}"
        );
        ensure!(show.field("state")?.contains("waiting for "), "{show:?}");
        ensure!(
            show.row(&[">", "ops_decision", "waiting", "0", "0"]),
            "the current step is marked: {show:?}"
        );
        ensure!(
            show.row(&["eligibility", "succeeded", "1", "0"])
                && show.row(&["confirmation_email", "pending", "0", "0"]),
            "every step with its attempts: {show:?}"
        );
        ensure!(
            show.has(&[
                "TIME (UTC)",
                "KIND",
                "STEP",
                "ATTEMPT",
                "ERROR",
                "ACTOR",
                "REASON"
            ]),
            "{show:?}"
        );
        ensure!(show.has(&["wait_started", "ops_decision"]), "{show:?}");
        let show_json = s.cli(Key::Read, &["show", &a, "--json"]).await?;
        let detail = show_json.ok()?.json()?;
        ensure!(
            detail["request_id"] == a.as_str()
                && detail["steps"].as_array().map(Vec::len) == Some(9)
                && detail["history"].as_array().is_some_and(|h| !h.is_empty()),
            "{show_json:?}"
        );

        let approve = s
            .cli(
                Key::Write,
                &["approve", &a, "--reason", "checked by SkyJoy ops"],
            )
            .await?;
        ensure!(
            approve
                .ok()?
                .stdout
                .starts_with(&format!("approve: applied to {a}")),
            "{approve:?}"
        );
        s.wait_state(&a, "needs_operator").await?;
        let again = s
            .cli(Key::Write, &["approve", &a, "--reason", "again"])
            .await?;
        again.fails(
            1,
            &[
                "not allowed in the request's current state",
                "cannot signal a workflow that is needs_operator: the current step does not wait for a signal",
                "NOT_ALLOWED",
            ],
        )?;
        let again = s
            .cli(Key::Write, &["approve", &a, "--reason", "again", "--json"])
            .await?;
        ensure!(
            again.code == 1 && again.json()?["error"]["code"] == "NOT_ALLOWED",
            "--json prints the API's error body: {again:?}"
        );
        let show = s.cli(Key::Read, &["show", &a]).await?;
        show.ok()?;
        ensure!(
            show.has(&[
                "signal_received",
                "ops_decision",
                "ops:alice",
                "checked by SkyJoy ops"
            ]),
            "the timeline has the decision, its actor and reason: {show:?}"
        );
        ensure!(show.field("state")?.contains("needs_operator"), "{show:?}");
        ensure!(show.row(&[">", "notify_vietjet"]), "{show:?}");
        ensure!(
            show.field("reason")?.split_whitespace().count() > 1,
            "why it needs an operator: {show:?}"
        );

        s.cli(
            Key::Write,
            &["resume", &a, "--reason", "Vietjet fixed their side"],
        )
        .await?
        .ok()?;
        s.wait_state(&a, "completed").await?;
        // The completed closure's certificate, as the documented check reads it.
        let certificate = s.cli(Key::Read, &["certificate", &a]).await?;
        certificate.ok()?;
        let file = s.dir.path().join("certificate.json");
        std::fs::write(&file, &certificate.stdout)?;
        let verified = std::process::Command::new(closeout_it::closeout_bin())
            .arg("--config")
            .arg(&s.serve.config)
            .args(["certificate", "verify"])
            .arg(&file)
            .env_remove("CLOSEOUT_LOG")
            .output()?;
        let said = String::from_utf8_lossy(&verified.stdout);
        ensure!(
            verified.status.success() && said.contains(&format!("request {a}")),
            "{said}{}",
            String::from_utf8_lossy(&verified.stderr)
        );
        s.cli(Key::Write, &["reject", &b, "--reason", "fraud suspected"])
            .await?
            .ok()?;
        s.wait_state(&b, "rejected").await?;
        s.cli(Key::Write, &["cancel", &b, "--reason", "too late"])
            .await?
            .fails(1, &["cannot cancel a workflow that is rejected"])?;
        s.cli(Key::Read, &["certificate", &b])
            .await?
            .fails(1, &["CERTIFICATE_NOT_AVAILABLE", "rejected"])?;
        s.cli(Key::Write, &["approve", &a])
            .await?
            .fails(2, &["--reason"])?;
        s.stop().await
    })
}

/// retry now while a step waits to retry, skip it with an output, then cancel; the
/// actions a state does not allow are refused with the API's hint.
fn retry_skip_and_cancel(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = Server::start(backend).await?;
        s.sandbox.add_fault(FaultRule::on(
            Endpoint::SkyjoyUserProfile,
            Fault::FailMember {
                member: closeout_sandbox::member_id(members::ACTIVE_FULL),
                answer: fail_with(503),
            },
        ))?;
        let id = s.submit("vietjet", members::ACTIVE_FULL).await?;
        // The second failure schedules the third attempt about 4 s later: time enough
        // to ask for it now.
        let due = |d: &Value| {
            d["next_run_at"]
                .as_str()
                .and_then(|t| t.parse::<DateTime<Utc>>().ok())
        };
        let before = s
            .wait_for(&id, "retrying after two attempts", |d| {
                d["state"] == "running"
                    && d["steps"][0]["attempts"] == 2
                    && due(d).is_some_and(|t| t > Utc::now() + chrono::Duration::seconds(1))
            })
            .await?;
        let scheduled = due(&before).context("next_run_at")?;
        let retry = s
            .cli(Key::Write, &["retry", &id, "--reason", "partner back"])
            .await?;
        ensure!(
            retry.ok()?.stdout.starts_with(&format!(
                "retry: applied to {id}; it is now running at eligibility"
            )),
            "{retry:?}"
        );
        let after = s
            .wait_for(&id, "attempted a third time", |d| {
                d["steps"][0]["attempts"] == 3
            })
            .await?;
        let third = after["history"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["attempt"] == 3)
            .context("the third attempt's event")?;
        let third_at: DateTime<Utc> = third["at"].as_str().unwrap_or_default().parse()?;
        ensure!(
            third_at < scheduled,
            "the retry ran at once ({third_at}), not when scheduled ({scheduled})"
        );
        let show = s.cli(Key::Read, &["show", &id]).await?;
        ensure!(
            show.ok()?
                .has(&["retry_requested", "ops:alice", "partner back"]),
            "{show:?}"
        );
        ensure!(
            show.has(&["step_retry_scheduled", "eligibility"]),
            "each failed attempt is on the timeline: {show:?}"
        );

        s.cli(
            Key::Write,
            &["skip", &id, "--reason", "checked", "--output", "{not json"],
        )
        .await?
        .fails(2, &["--output"])?;
        s.cli(
            Key::Write,
            &[
                "skip",
                &id,
                "--reason",
                "eligibility confirmed by phone",
                "--output",
                r#"{"status": "ACTIVE", "email": "member1@sandbox.test"}"#,
            ],
        )
        .await?
        .ok()?;
        s.wait_for(&id, "waiting at ops_decision", |d| {
            d["state"] == "waiting" && d["current_step"] == "ops_decision"
        })
        .await?;
        let show = s.cli(Key::Read, &["show", &id]).await?;
        ensure!(show.ok()?.row(&["eligibility", "skipped"]), "{show:?}");
        ensure!(
            show.has(&[
                "step_skipped",
                "ops:alice",
                "eligibility confirmed by phone"
            ]),
            "{show:?}"
        );
        s.cli(Key::Write, &["resume", &id, "--reason", "x"])
            .await?
            .fails(1, &["only needs_operator workflows are resumed"])?;
        s.cli(Key::Write, &["retry", &id, "--reason", "x"])
            .await?
            .fails(1, &["NOT_ALLOWED"])?;
        let cancel = s
            .cli(Key::Write, &["cancel", &id, "--reason", "member withdrew"])
            .await?;
        cancel.ok()?;
        s.wait_state(&id, "cancelled").await?;
        s.stop().await
    })
}

/// bulk: a dry run counts and lists and changes nothing, no --yes applies nothing, a
/// real run reports what succeeded and what failed.
fn bulk(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = Server::start(backend).await?;
        let a = s.submit("vietjet", members::ACTIVE_FULL).await?;
        s.wait_state(&a, "waiting").await?;
        let b = s.submit("vietjet", members::PENDING).await?;
        s.wait_state(&b, "waiting").await?;
        // Another flow, also waiting: outside the filter below.
        let c = s.submit("skyjoy", members::WELCOME).await?;
        s.wait_state(&c, "waiting").await?;
        let filter = ["--state", "waiting", "--flow", "vietjet"];
        let with = |extra: &[&'static str]| -> Vec<&'static str> {
            let mut args = vec!["bulk", "cancel"];
            args.extend(filter);
            args.extend(["--reason", "campaign withdrawn"]);
            args.extend(extra);
            args
        };
        let all = [a.as_str(), b.as_str(), c.as_str()];

        let dry = s.cli(Key::Write, &with(&["--dry-run"])).await?;
        ensure!(
            dry.ok()?
                .stdout
                .starts_with("dry run: bulk cancel would act on 2 request(s)")
                && dry.stdout.contains(&a)
                && dry.stdout.contains(&b)
                && !dry.stdout.contains(&c),
            "{dry:?}"
        );
        let dry = s.cli(Key::Write, &with(&["--dry-run", "--json"])).await?;
        let answer = dry.ok()?.json()?;
        ensure!(
            answer["dry_run"] == true
                && answer["count"] == 2
                && strings(&answer["request_ids"]) == [a.clone(), b.clone()],
            "{dry:?}"
        );
        let first = s
            .cli(Key::Write, &with(&["--dry-run", "--limit", "1"]))
            .await?;
        ensure!(
            first.ok()?.stdout.contains("would act on 1 request(s)")
                && first.stdout.contains(&a)
                && !first.stdout.contains(&b)
                && first.stdout.contains("raise --limit"),
            "oldest first, and a full page says so: {first:?}"
        );
        s.all_waiting(&all).await?;

        let unconfirmed = s.cli(Key::Write, &with(&[])).await?;
        unconfirmed.fails(2, &["NOT applied", "--yes"])?;
        ensure!(
            unconfirmed.stdout.contains(&a) && unconfirmed.stdout.contains(&b),
            "it lists what it would touch: {unconfirmed:?}"
        );
        s.all_waiting(&all).await?;

        let mut resume = vec!["bulk", "resume"];
        resume.extend(filter);
        resume.extend(["--reason", "x", "--yes"]);
        let resumed = s.cli(Key::Write, &resume).await?;
        resumed.fails(1, &["bulk resume: 2 of 2 request(s) failed"])?;
        ensure!(
            resumed
                .stdout
                .starts_with("bulk resume: 0 of 2 request(s) succeeded, 2 failed")
                && resumed.line(&a)?.contains("NOT_ALLOWED")
                && resumed.line(&b)?.contains("NOT_ALLOWED"),
            "{resumed:?}"
        );
        s.cli(Key::Read, &with(&["--yes"]))
            .await?
            .fails(4, &["FORBIDDEN", "write"])?;
        s.cli(
            Key::Write,
            &["bulk", "cancel", "--reason", "everything", "--yes"],
        )
        .await?
        .fails(2, &["at least one of --state"])?;
        s.all_waiting(&all).await?;

        let real = s.cli(Key::Write, &with(&["--yes"])).await?;
        ensure!(
            real.ok()?
                .stdout
                .starts_with("bulk cancel: 2 of 2 request(s) succeeded, 0 failed")
                && real.stdout.contains(&a)
                && real.stdout.contains(&b)
                && !real.stdout.contains("failed:"),
            "{real:?}"
        );
        s.wait_state(&a, "cancelled").await?;
        s.wait_state(&b, "cancelled").await?;
        ensure!(s.state(&c).await? == "waiting", "outside the filter");
        let show = s.cli(Key::Read, &["show", &a]).await?;
        ensure!(
            show.ok()?
                .has(&["cancel_requested", "ops:alice", "campaign withdrawn"]),
            "{show:?}"
        );
        s.stop().await
    })
}

/// What goes wrong says what to do next, with its own exit status.
fn errors(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = Server::start(backend).await?;
        let id = s.submit("vietjet", members::ACTIVE_FULL).await?;
        s.wait_state(&id, "waiting").await?;
        let dir = s.dir.path();

        let closed = format!("http://127.0.0.1:{}", free_port()?);
        run_cli(&closed, &Key::Write, dir, &["list"]).await?.fails(
            3,
            &[
                &format!("cannot reach the Closeout API at {closed}: "),
                "check --url or CLOSEOUT_OPS_URL",
            ],
        )?;
        let prefixed = format!("{}/closeout", s.serve.base);
        run_cli(&prefixed, &Key::Write, dir, &["list"])
            .await?
            .fails(
                3,
                &["does not answer like the Closeout API", "ROUTE_NOT_FOUND"],
            )?;
        run_cli("localhost:8080", &Key::Write, dir, &["list"])
            .await?
            .fails(2, &["--url", "http://127.0.0.1:8080"])?;

        s.cli(Key::Env(UNKNOWN_KEY), &["list"]).await?.fails(
            4,
            &[
                "does not accept this credential",
                "UNAUTHENTICATED",
                "CLOSEOUT_OPS_KEY",
            ],
        )?;
        s.cli(Key::None, &["list"]).await?.fails(
            4,
            &["no operations credential", "CLOSEOUT_OPS_KEY", "--key-file"],
        )?;
        let missing = dir.join("missing.key");
        s.cli(Key::File(missing.clone()), &["list"])
            .await?
            .fails(4, &[&missing.display().to_string(), "--key-file"])?;
        s.cli(Key::Env(VIETJET_KEY), &["list"])
            .await?
            .fails(4, &["FORBIDDEN", "channel key"])?;
        s.cli(Key::Read, &["approve", &id, "--reason", "looks fine"])
            .await?
            .fails(4, &["may not do that", "read role", "FORBIDDEN"])?;
        ensure!(
            s.state(&id).await? == "waiting",
            "a refused approve changes nothing"
        );

        let unknown = uuid::Uuid::new_v4().to_string();
        s.cli(Key::Read, &["show", &unknown])
            .await?
            .fails(1, &["no such request", "NOT_FOUND"])?;
        s.cli(Key::Write, &["approve", &unknown, "--reason", "x"])
            .await?
            .fails(1, &["no such request"])?;
        let json = s.cli(Key::Read, &["show", &unknown, "--json"]).await?;
        ensure!(
            json.code == 1 && json.json()?["error"]["code"] == "NOT_FOUND",
            "{json:?}"
        );
        s.cli(Key::Read, &["show", "SJ1000000001"])
            .await?
            .fails(2, &["invalid value"])?;
        let long = "x".repeat(1001);
        s.cli(Key::Write, &["approve", &id, "--reason", &long])
            .await?
            .fails(2, &["refused the input", "`reason`"])?;
        ensure!(s.state(&id).await? == "waiting");
        s.stop().await
    })
}

fn main() {
    let tests: &[(&'static str, TestFn)] = &[
        ("list_show_and_decide", list_show_and_decide),
        ("retry_skip_and_cancel", retry_skip_and_cancel),
        ("bulk", bulk),
        ("errors", errors),
    ];
    run_per_backend("ops_cli", tests)
}
