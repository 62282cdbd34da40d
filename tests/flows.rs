//! End-to-end tests of the BRD's three closure flows: the real workflow files, the real
//! connectors, and the partner sandbox over HTTP on loopback, on SQLite and PostgreSQL.
//! Engine time is a manual clock; partner time is real.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use anyhow::{ensure, Context as _};
use chrono::{Duration, Utc};
use closeout_connectors::galaxypay::{VirtualAccountStatus, WalletStatus};
use closeout_connectors::skyjoy::RequestPlatform;
use closeout_connectors::{Connectors, Endpoint, Personal, SkyjoyId};
use closeout_engine::action::Registry;
use closeout_engine::clock::ManualClock;
use closeout_engine::definition;
use closeout_engine::id::{DefinitionName, StartKey, Subject, WorkerId, WorkflowId};
use closeout_engine::saga::Command;
use closeout_engine::state::{EventKind, WorkflowState};
use closeout_engine::{Config, Engine, StartRequest};
use closeout_flows::ClosureInput;
use closeout_it::harness::{run_per_backend, TestFn, TestFuture};
use closeout_it::{Backend, TestDb};
use closeout_sandbox::{members, EffectFilter, Fault, FaultRule, Injected, Sandbox, SandboxConfig};
use closeout_store::AnyStore;

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn hash_keys() -> closeout_cooldown::HashKeys {
    closeout_cooldown::HashKeys::new([(
        1,
        "a test key that is long enough to use".to_owned().into(),
    )])
    .unwrap()
}

struct World {
    db: TestDb,
    connectors: Connectors,
    sandbox: Sandbox,
    clock: Arc<ManualClock>,
    engine: Engine,
}

async fn world(backend: Backend) -> anyhow::Result<World> {
    let db = TestDb::create(backend).await;
    let store = AnyStore::connect(&db.url).await?;
    store.migrate().await?;
    let sandbox = Sandbox::start(SandboxConfig::default()).await?;
    let mut config = sandbox.connectors_config();
    // Short partner timeouts so "applied, then no answer" resolves quickly.
    for http in [
        &mut config.vietjet.http,
        &mut config.skyjoy.http,
        &mut config.galaxypay.http,
        &mut config.kybio.http,
        &mut config.crmx.http,
    ] {
        http.timeout_ms = 700;
    }
    let connectors = Connectors::new(&config)?;
    let mut registry = Registry::new();
    closeout_flows::register(&mut registry, connectors.clone(), hash_keys());
    let workflows = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let defs = definition::load_dir(&workflows, &|a| registry.contains(a), &|| registry.names())?;
    ensure!(defs.len() == 3, "the three BRD flows load");
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let engine = Engine::new(
        store.into_dyn(),
        registry,
        defs,
        clock.clone(),
        Config::new(WorkerId::parse("flows-test")?),
    )
    .await?;
    Ok(World {
        db,
        connectors,
        sandbox,
        clock,
        engine,
    })
}

impl World {
    fn input(&self, member: &str, platform: RequestPlatform) -> ClosureInput {
        let id = SkyjoyId::parse(member).unwrap();
        let known = self.sandbox.member(&id);
        ClosureInput {
            phone: known
                .as_ref()
                .map(|m| m.phone.clone())
                .unwrap_or_else(|| "+84900000000".parse().unwrap()),
            partner_member_ids: known
                .as_ref()
                .map(|m| m.partner_member_ids.clone())
                .unwrap_or_default(),
            kybio_member: known
                .as_ref()
                .and_then(|m| m.kybio.as_ref().map(|k| k.number.clone())),
            crmx_pos_id: known
                .as_ref()
                .and_then(|m| m.crmx.as_ref().map(|c| c.pos_id.clone())),
            skyjoy_id: id,
            reason: Personal::new("moving abroad".into()),
            requested_at: Utc::now(),
            platform,
        }
    }

    async fn start(&self, flow: &str, member: &str) -> anyhow::Result<WorkflowId> {
        let platform = match flow {
            "vietjet" => RequestPlatform::VietjetWeb,
            "skyjoy" => RequestPlatform::SkyjoyApp,
            _ => RequestPlatform::GalaxyPayApp,
        };
        let input = serde_json::to_value(self.input(member, platform))?;
        let started = self
            .engine
            .start(StartRequest {
                definition: DefinitionName::parse(flow)?,
                key: StartKey::parse(format!("{flow}-{member}"))?,
                subject: Some(Subject::parse(member)?),
                channel: None,
                input,
            })
            .await?;
        let id = started.record().id;
        self.engine.run_until_idle().await?;
        Ok(id)
    }

    async fn state(&self, id: WorkflowId) -> anyhow::Result<WorkflowState> {
        Ok(self.engine.get(id).await?.progress.state)
    }

    async fn reason(&self, id: WorkflowId) -> anyhow::Result<String> {
        let record = self.engine.get(id).await?;
        Ok(record
            .progress
            .reason
            .map(|r| format!("{}: {}", r.code, r.message))
            .unwrap_or_default())
    }

    async fn signal(&self, id: WorkflowId, name: &str) -> anyhow::Result<()> {
        let payload = serde_json::json!({ "reason": "checked by SkyJoy operations" });
        self.engine
            .command(
                id,
                Command::Signal {
                    name: name.into(),
                    payload,
                },
                "ops:test",
                "decision",
            )
            .await?;
        self.engine.run_until_idle().await?;
        Ok(())
    }

    /// Moves engine time past every scheduled retry, a few times.
    async fn let_retries_run(&self) -> anyhow::Result<()> {
        for _ in 0..6 {
            self.clock.advance(Duration::minutes(15));
            self.engine.run_until_idle().await?;
        }
        Ok(())
    }

    fn effects(&self, endpoint: Endpoint, member: &str) -> usize {
        self.sandbox
            .effects(&EffectFilter {
                endpoint: Some(endpoint),
                member: Some(SkyjoyId::parse(member).unwrap()),
                ..Default::default()
            })
            .len()
    }

    /// The next `count` calls to `endpoint` answer `status`.
    fn fail_next(&self, endpoint: Endpoint, count: u32, status: u16) -> anyhow::Result<()> {
        let answer = Injected {
            status: Some(status),
            body: None,
        };
        self.sandbox
            .add_fault(FaultRule::on(endpoint, Fault::FailNext { count, answer }))?;
        Ok(())
    }

    /// The next call to `endpoint` takes effect, then gets no answer in time.
    fn apply_then_time_out(&self, endpoint: Endpoint) -> anyhow::Result<()> {
        let fault = Fault::ApplyThenTimeout {
            count: 1,
            hang_ms: 3_000,
        };
        self.sandbox.add_fault(FaultRule::on(endpoint, fault))?;
        Ok(())
    }

    /// When the member's phone may register again in `scope`, per the registry.
    async fn cooldown(
        &self,
        member: &str,
        scope: &str,
    ) -> anyhow::Result<Option<chrono::DateTime<Utc>>> {
        let phone = self.input(member, RequestPlatform::VietjetWeb).phone;
        let phone = closeout_cooldown::E164::parse(phone.as_str())?;
        let hashes: Vec<(u32, String)> = hash_keys()
            .all(&phone)
            .into_iter()
            .map(|h| (h.key_version, h.hex))
            .collect();
        Ok(self
            .engine
            .store()
            .cooldown_until(scope, &hashes, Utc::now())
            .await?)
    }

    fn closed(&self, member: &str) -> bool {
        self.sandbox
            .member(&SkyjoyId::parse(member).unwrap())
            .is_some_and(|m| m.closed_at.is_some())
    }

    /// The deletion certificate of `id`, built as the API builds it.
    async fn certificate(
        &self,
        id: WorkflowId,
    ) -> anyhow::Result<Result<closeout_certificate::Certificate, closeout_certificate::Error>>
    {
        let record = self.engine.get(id).await?;
        let definition = self.engine.pinned(&record.definition_hash).await?;
        let history = self.engine.history(id).await?;
        Ok(closeout_certificate::build(&record, &definition, &history))
    }

    /// The partner systems a completed closure's certificate lists, and that each step
    /// the definition has is listed once.
    async fn certified_systems(&self, id: WorkflowId) -> anyhow::Result<BTreeSet<String>> {
        let certificate = self.certificate(id).await??;
        let definition = self
            .engine
            .pinned(&self.engine.get(id).await?.definition_hash)
            .await?;
        let steps: Vec<&str> = certificate.steps.iter().map(|s| s.step.as_str()).collect();
        let defined: Vec<&str> = definition.steps.iter().map(|s| s.id.as_str()).collect();
        ensure!(steps == defined, "{steps:?} != {defined:?}");
        Ok(certificate.steps.into_iter().map(|s| s.system).collect())
    }

    async fn finish(self) {
        drop(self.engine);
        self.sandbox.stop().await;
        self.db.drop_db().await;
    }
}

fn vietjet_happy_path(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend).await?;
        let m = members::ACTIVE_FULL;
        let id = w.start("vietjet", m).await?;
        ensure!(
            w.state(id).await? == WorkflowState::Waiting,
            "waits for SkyJoy operations"
        );
        ensure!(
            w.effects(Endpoint::VietjetRemoveToken, m) == 1,
            "tokens removed at submission"
        );
        ensure!(!w.closed(m), "nothing closed before the decision");
        w.signal(id, "approve").await?;
        ensure!(
            w.state(id).await? == WorkflowState::Completed,
            "{}",
            w.reason(id).await?
        );
        ensure!(w.closed(m));
        ensure!(w.effects(Endpoint::VietjetDeletion, m) == 1);
        let systems = w.certified_systems(id).await?;
        ensure!(
            systems == set(&["email", "operations", "skyjoy", "vietjet"]),
            "{systems:?}"
        );
        let member = w.sandbox.member(&SkyjoyId::parse(m)?).unwrap();
        ensure!(
            member.partner_member_ids.is_empty(),
            "partner memberships are free to re-link"
        );
        let history = w.engine.history(id).await?;
        let balance = history
            .iter()
            .find(|e| {
                e.step
                    .as_ref()
                    .is_some_and(|s| s.as_str() == "snapshot_balance")
                    && e.kind == EventKind::StepSucceeded
            })
            .and_then(|e| e.data.clone())
            .context("the balance is in the history")?;
        ensure!(balance["total_point"] == 1200, "{balance}");
        let closed_at = w
            .sandbox
            .member(&SkyjoyId::parse(m)?)
            .unwrap()
            .closed_at
            .unwrap();
        let until = w.cooldown(m, "skyjoy").await?;
        // The registry keeps milliseconds.
        let release = closeout_cooldown::release_at(closed_at).timestamp_millis();
        ensure!(
            until.map(|u| u.timestamp_millis()) == Some(release),
            "phone blocked six months: {until:?}"
        );
        ensure!(
            w.cooldown(m, "wallet").await?.is_none(),
            "the wallet scope is untouched"
        );
        let emails = w.sandbox.emails();
        ensure!(
            emails.len() == 1 && emails[0].to == member.email,
            "one confirmation to the verified address"
        );
        let doc = member
            .document_id
            .as_ref()
            .context("the seeded member has a document number")?;
        {
            ensure!(
                !emails[0].text.contains(doc.as_str()) && !emails[0].subject.contains(doc.as_str()),
                "no document number in the email"
            );
        }
        w.finish().await;
        Ok(())
    })
}

fn skyjoy_happy_path_erases_partner_crms(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend).await?;
        let m = members::ACTIVE_FULL;
        let id = w.start("skyjoy", m).await?;
        w.signal(id, "approve").await?;
        ensure!(
            w.state(id).await? == WorkflowState::Completed,
            "{}",
            w.reason(id).await?
        );
        let member = w.sandbox.member(&SkyjoyId::parse(m)?).unwrap();
        let crmx = member.crmx.context("CRMX record")?;
        ensure!(
            crmx.customer.unmasked_fields().is_empty(),
            "CRMX personal fields masked: {:?}",
            crmx.customer.unmasked_fields()
        );
        let kybio = member.kybio.context("KYBIO record")?;
        ensure!(
            kybio.enable != closeout_connectors::kybio::Enable::Available,
            "KYBIO member disabled"
        );
        ensure!(
            w.effects(Endpoint::VietjetDeletion, m) == 1
                && w.effects(Endpoint::VietjetRemoveToken, m) == 1
        );
        let systems = w.certified_systems(id).await?;
        for system in ["skyjoy", "kybio", "crmx", "vietjet"] {
            ensure!(
                systems.contains(system),
                "{system} missing from {systems:?}"
            );
        }
        w.finish().await;
        Ok(())
    })
}

fn galaxypay_happy_path(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend).await?;
        let m = members::ACTIVE_FULL;
        let id = w.start("galaxypay", m).await?;
        ensure!(
            w.state(id).await? == WorkflowState::Completed,
            "{}",
            w.reason(id).await?
        );
        let member = w.sandbox.member(&SkyjoyId::parse(m)?).unwrap();
        let wallet = member.wallet.context("wallet")?;
        ensure!(wallet.status == WalletStatus::Closed);
        ensure!(
            wallet.balance.0 == 0 && wallet.virtual_account == Some(VirtualAccountStatus::Closed)
        );
        ensure!(w.closed(m), "the SkyID is closed too");
        let token_removals = w.sandbox.effects(&EffectFilter {
            endpoint: Some(Endpoint::VietjetRemoveToken),
            ..Default::default()
        });
        ensure!(token_removals.len() == 1);
        ensure!(
            w.cooldown(m, "wallet").await?.is_some(),
            "the wallet's phone is blocked"
        );
        ensure!(
            w.cooldown(m, "skyjoy").await?.is_some(),
            "the SkyID's phone is blocked"
        );
        let systems = w.certified_systems(id).await?;
        for system in ["galaxypay", "skyjoy", "vietjet"] {
            ensure!(
                systems.contains(system),
                "{system} missing from {systems:?}"
            );
        }
        w.finish().await;
        Ok(())
    })
}

fn eligibility_refusals_carry_the_brd_codes(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend).await?;
        let cases = [
            ("SJ9999999999", "USER_NOT_FOUND"),
            (members::UNVERIFIED_EMAIL, "EMAIL_NOT_VERIFIED"),
            (members::MERGED, "STATUS_NOT_ALLOWED: member status MERGED"),
            (
                members::BLOCKED,
                "STATUS_NOT_ALLOWED: member status BLOCKED",
            ),
            (
                members::SUSPECTED_FRAUD,
                "STATUS_NOT_ALLOWED: member status SUSPECTED_FRAUD",
            ),
            (members::REQUEST_PENDING, "DUPLICATE_REQUEST"),
        ];
        for (member, expected) in cases {
            let id = w.start("vietjet", member).await?;
            let reason = w.reason(id).await?;
            ensure!(
                w.state(id).await? == WorkflowState::Compensated,
                "{member}: {reason}"
            );
            ensure!(
                reason.starts_with(expected),
                "{member}: expected {expected}, got {reason}"
            );
        }
        ensure!(
            w.effects(Endpoint::VietjetRemoveToken, members::MERGED) == 0,
            "refused before any effect"
        );
        // One open request per member: a second submission is refused by the engine.
        let first = w.start("vietjet", members::PENDING).await?;
        ensure!(w.state(first).await? == WorkflowState::Waiting);
        let again = w
            .engine
            .start(StartRequest {
                definition: DefinitionName::parse("skyjoy")?,
                key: StartKey::parse("another-key")?,
                subject: Some(Subject::parse(members::PENDING)?),
                channel: None,
                input: serde_json::to_value(w.input(members::PENDING, RequestPlatform::SkyjoyApp))?,
            })
            .await;
        ensure!(
            matches!(
                again,
                Err(closeout_engine::Error::Store(
                    closeout_engine::store::Error::SubjectBusy { .. }
                ))
            ),
            "{again:?}"
        );
        w.finish().await;
        Ok(())
    })
}

/// SkyJoy refusing the deletion request with its documented 4xx CLOSE_ACCOUNT_FAILED
/// ends the request with the BRD code.
fn skyjoy_refusal_ends_with_close_account_failed(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend).await?;
        let envelope = serde_json::json!({
            "errors": { "name": "CloseAccountFailed", "message": "Close account failed", "code": "CLOSE_ACCOUNT_FAILED" },
            "message": "Close account failed",
            "statusCode": 400
        });
        let answer = Injected {
            status: Some(400),
            body: Some(envelope),
        };
        w.sandbox.add_fault(FaultRule::on(
            Endpoint::SkyjoyDeletionRequest,
            Fault::FailNext { count: 1, answer },
        ))?;
        let id = w.start("vietjet", members::ACTIVE_FULL).await?;
        let reason = w.reason(id).await?;
        ensure!(w.state(id).await? == WorkflowState::Compensated, "{reason}");
        ensure!(reason.starts_with("CLOSE_ACCOUNT_FAILED"), "{reason}");
        w.finish().await;
        Ok(())
    })
}

fn partner_5xx_then_success(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend).await?;
        w.fail_next(Endpoint::SkyjoyDeletionRequest, 2, 503)?;
        let m = members::ACTIVE_FULL;
        let id = w.start("vietjet", m).await?;
        ensure!(
            w.state(id).await? == WorkflowState::Running,
            "retrying after a 503"
        );
        w.let_retries_run().await?;
        ensure!(
            w.state(id).await? == WorkflowState::Waiting,
            "{}",
            w.reason(id).await?
        );
        ensure!(w.effects(Endpoint::SkyjoyDeletionRequest, m) == 1);
        let history = w.engine.history(id).await?;
        ensure!(
            history
                .iter()
                .filter(|e| e.kind == EventKind::StepRetryScheduled)
                .count()
                == 2
        );
        w.finish().await;
        Ok(())
    })
}

fn applied_then_timed_out_converges_to_one_effect(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend).await?;
        w.apply_then_time_out(Endpoint::VietjetRemoveToken)?;
        let m = members::ACTIVE_FULL;
        let id = w.start("vietjet", m).await?;
        let history = w.engine.history(id).await?;
        ensure!(
            history
                .iter()
                .any(|e| e.kind == EventKind::StepRetryScheduled
                    && e.error_code.as_deref() == Some("TIMEOUT")),
            "the timeout is retried"
        );
        w.let_retries_run().await?;
        ensure!(
            w.state(id).await? == WorkflowState::Waiting,
            "{}",
            w.reason(id).await?
        );
        ensure!(
            w.effects(Endpoint::VietjetRemoveToken, m) == 1,
            "applied once"
        );
        w.finish().await;
        Ok(())
    })
}

fn failure_before_the_pivot_reactivates_the_wallet(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend).await?;
        w.fail_next(Endpoint::GalaxypayCloseVirtualAccount, 1, 400)?;
        let m = members::ACTIVE_FULL;
        let id = w.start("galaxypay", m).await?;
        ensure!(
            w.state(id).await? == WorkflowState::Compensated,
            "{:?}",
            w.state(id).await?
        );
        let reason = w.reason(id).await?;
        ensure!(
            reason.starts_with("CLIENT_ERROR"),
            "a reason the channel can show: {reason}"
        );
        let wallet = w
            .sandbox
            .member(&SkyjoyId::parse(m)?)
            .unwrap()
            .wallet
            .unwrap();
        ensure!(
            wallet.status == WalletStatus::Active,
            "the wallet is Active again"
        );
        ensure!(!w.closed(m));
        w.finish().await;
        Ok(())
    })
}

fn failure_after_the_pivot_parks_then_resumes(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend).await?;
        w.fail_next(Endpoint::VietjetDeletion, 1, 400)?;
        let m = members::ACTIVE_FULL;
        let id = w.start("vietjet", m).await?;
        w.signal(id, "approve").await?;
        ensure!(
            w.state(id).await? == WorkflowState::NeedsOperator,
            "{}",
            w.reason(id).await?
        );
        ensure!(
            w.closed(m),
            "the account stays closed: after the pivot only forward"
        );
        w.engine
            .command(id, Command::Resume, "ops:test", "Vietjet fixed their side")
            .await?;
        w.engine.run_until_idle().await?;
        ensure!(
            w.state(id).await? == WorkflowState::Completed,
            "{}",
            w.reason(id).await?
        );
        ensure!(
            w.effects(Endpoint::VietjetDeletion, m) == 1,
            "exactly one deletion notification"
        );
        w.finish().await;
        Ok(())
    })
}

fn operations_reject_closes_nothing(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend).await?;
        let m = members::ACTIVE_FULL;
        let id = w.start("skyjoy", m).await?;
        w.signal(id, "reject").await?;
        ensure!(w.state(id).await? == WorkflowState::Rejected);
        ensure!(w
            .reason(id)
            .await?
            .starts_with("REJECTED: checked by SkyJoy operations"));
        ensure!(!w.closed(m), "nothing closed");
        ensure!(
            w.effects(Endpoint::VietjetDeletion, m) == 0
                && w.effects(Endpoint::SkyjoyClose, m) == 0
        );
        ensure!(
            w.certificate(id).await?
                == Err(closeout_certificate::Error::NotCompleted(
                    WorkflowState::Rejected
                )),
            "no certificate for a closure that closed nothing"
        );
        w.finish().await;
        Ok(())
    })
}

/// A worker that sent the Vietjet notification and died before committing: its
/// lease expires, another worker repeats the step with the same key, and Vietjet
/// counts one notification.
fn one_vietjet_notification_across_a_crash(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend).await?;
        w.apply_then_time_out(Endpoint::VietjetDeletion)?;
        let m = members::ACTIVE_FULL;
        let id = w.start("vietjet", m).await?;
        w.signal(id, "approve").await?;
        // The first notification was applied but not answered: a retry is scheduled.
        ensure!(
            w.state(id).await? == WorkflowState::Running,
            "{}",
            w.reason(id).await?
        );
        // A worker claims the retry, sends the notification and dies before committing:
        // only its lease and the partner's record of its call remain.
        let store = w.engine.store().clone();
        w.clock.advance(Duration::minutes(15));
        let claimed = store
            .claim(
                &WorkerId::parse("doomed")?,
                w.clock_now(),
                10,
                std::time::Duration::from_secs(60),
            )
            .await?;
        ensure!(claimed.len() == 1);
        let step = closeout_engine::id::StepId::parse("notify_vietjet")?;
        let key = closeout_engine::id::IdempotencyKey::for_step(id, &step);
        let member = closeout_connectors::vietjet::MemberRef {
            skyjoy_id: SkyjoyId::parse(m)?,
            phone: w.input(m, RequestPlatform::VietjetWeb).phone,
        };
        let sent = w
            .connectors
            .vietjet
            .notify_deletion(&member, key.as_str())
            .await;
        ensure!(
            sent.is_ok(),
            "the doomed worker's call reached Vietjet: {sent:?}"
        );
        w.clock.advance(Duration::minutes(2));
        w.engine.run_until_idle().await?;
        ensure!(
            w.state(id).await? == WorkflowState::Completed,
            "{}",
            w.reason(id).await?
        );
        let history = w.engine.history(id).await?;
        ensure!(
            history.iter().any(|e| e.kind == EventKind::LeaseTakenOver),
            "takeover recorded"
        );
        ensure!(
            w.effects(Endpoint::VietjetDeletion, m) == 1,
            "one notification per closed account"
        );
        w.finish().await;
        Ok(())
    })
}

impl World {
    fn clock_now(&self) -> chrono::DateTime<Utc> {
        use closeout_engine::clock::Clock;
        self.clock.now()
    }
}

fn main() {
    let tests: &[(&str, TestFn)] = &[
        ("vietjet_happy_path", vietjet_happy_path),
        (
            "skyjoy_happy_path_erases_partner_crms",
            skyjoy_happy_path_erases_partner_crms,
        ),
        ("galaxypay_happy_path", galaxypay_happy_path),
        (
            "eligibility_refusals_carry_the_brd_codes",
            eligibility_refusals_carry_the_brd_codes,
        ),
        (
            "skyjoy_refusal_ends_with_close_account_failed",
            skyjoy_refusal_ends_with_close_account_failed,
        ),
        ("partner_5xx_then_success", partner_5xx_then_success),
        (
            "applied_then_timed_out_converges_to_one_effect",
            applied_then_timed_out_converges_to_one_effect,
        ),
        (
            "failure_before_the_pivot_reactivates_the_wallet",
            failure_before_the_pivot_reactivates_the_wallet,
        ),
        (
            "failure_after_the_pivot_parks_then_resumes",
            failure_after_the_pivot_parks_then_resumes,
        ),
        (
            "operations_reject_closes_nothing",
            operations_reject_closes_nothing,
        ),
        (
            "one_vietjet_notification_across_a_crash",
            one_vietjet_notification_across_a_crash,
        ),
    ];
    run_per_backend("flows", tests)
}
