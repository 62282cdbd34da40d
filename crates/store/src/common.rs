// The store code both backends share, compiled once per backend: `sqlite.rs` and
// `postgres.rs` each define `type Db` and `type Backend` and `include!` this file. Every
// query is built with `QueryBuilder`, which emits each database's placeholder style, so
// the SQL text is written once. What truly differs (connecting, claiming with
// `SKIP LOCKED`, LISTEN/NOTIFY) lives in the backend files as inherent methods that
// the trait implementation below calls.

use closeout_engine::definition::Definition;
use closeout_engine::id::WorkerId;
use closeout_engine::id::WorkflowId;
use closeout_engine::state::WorkflowState;
use closeout_engine::store::{
    Commit, CooldownEntry, Delivery, Error, Event, Filter, Guard, LeaseAfter, NewWorkflow,
    OutcomeNotice, Record, Result, Started, Store, StuckCutoffs, WorkflowRecord,
};
use sqlx::{QueryBuilder, Row};

use crate::codec::{self, EventColumns, EventRow, WorkflowRow, RUNNABLE, WORKFLOW_COLUMNS};

type Tx<'a> = sqlx::Transaction<'a, Db>;

fn db_error(e: sqlx::Error) -> Error {
    Error::Unavailable(e.to_string())
}

/// Most rows in one multi-row INSERT; keeps under SQLite's bind-variable limit.
const INSERT_CHUNK: usize = 400;

async fn insert_events(tx: &mut Tx<'_>, events: Vec<EventColumns>) -> sqlx::Result<()> {
    for chunk in events.chunks(INSERT_CHUNK) {
        let mut q = QueryBuilder::<Db>::new(
            "INSERT INTO history (workflow_id, seq, at, kind, step, attempt, error_code, message, actor, reason, data, hash) ",
        );
        q.push_values(chunk, |mut b, e| {
            b.push_bind(e.workflow_id)
                .push_bind(e.seq)
                .push_bind(e.at)
                .push_bind(e.kind)
                .push_bind(e.step.clone())
                .push_bind(e.attempt)
                .push_bind(e.error_code.clone())
                .push_bind(e.message.clone())
                .push_bind(e.actor.clone())
                .push_bind(e.reason.clone())
                .push_bind(e.data.clone())
                .push_bind(e.hash.clone());
        });
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn select_one(
    tx: &mut Tx<'_>,
    column: &str,
    value: String,
) -> sqlx::Result<Option<WorkflowRow>> {
    let mut q = QueryBuilder::<Db>::new(format!(
        "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE {column} = "
    ));
    q.push_bind(value);
    q.build_query_as::<WorkflowRow>()
        .fetch_optional(&mut **tx)
        .await
}

/// Inserts one workflow unless its start key or open subject is taken. The unique
/// indexes decide; the follow-up reads only explain which one did.
async fn start_one(tx: &mut Tx<'_>, n: NewWorkflow) -> Result<Result<Started>> {
    let (first_events, head) = codec::event_columns(n.id, 0, "", n.now, &n.events);
    let cols = codec::progress_columns(&n.progress);
    let now = codec::millis(n.now);
    let mut q = QueryBuilder::<Db>::new(format!(
        "INSERT INTO workflows ({WORKFLOW_COLUMNS}, open_subject) VALUES ("
    ));
    let subject = n.subject.as_ref().map(|s| s.as_str().to_owned());
    let events = n.events.len() as i64;
    {
        let mut v = q.separated(", ");
        v.push_bind(n.id.as_uuid())
            .push_bind(n.definition.to_string())
            .push_bind(i64::from(n.definition_version))
            .push_bind(n.definition_hash.clone())
            .push_bind(n.start_key.to_string())
            .push_bind(subject.clone())
            .push_bind(sqlx::types::Json(n.input.clone()))
            .push_bind(cols.state)
            .push_bind(cols.cursor)
            .push_bind(cols.ending)
            .push_bind(cols.steps)
            .push_bind(cols.reason_code)
            .push_bind(cols.reason_message)
            .push_bind(cols.next_run_at)
            .push_bind(cols.state_since)
            .push_bind(None::<String>)
            .push_bind(None::<i64>)
            .push_bind(0i64)
            .push_bind(events)
            .push_bind(now)
            .push_bind(now)
            .push_bind(n.channel.as_ref().map(|c| c.to_string()))
            .push_bind(cols.current_step.clone())
            .push_bind(head.clone())
            .push_bind(None::<i64>)
            .push_bind(if cols.open { subject.clone() } else { None });
    }
    q.push(") ON CONFLICT DO NOTHING RETURNING id");
    let inserted = q
        .build()
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?;
    if inserted.is_some() {
        insert_events(tx, first_events).await.map_err(db_error)?;
        return Ok(Ok(Started::Created(WorkflowRecord {
            id: n.id,
            definition: n.definition,
            definition_version: n.definition_version,
            definition_hash: n.definition_hash,
            start_key: n.start_key,
            subject: n.subject,
            channel: n.channel,
            input: n.input,
            progress: n.progress,
            lease: None,
            fence: 0,
            history_len: events,
            created_at: n.now,
            updated_at: n.now,
            stuck_since: None,
            history_head: Some(head),
        })));
    }
    if let Some(row) = select_one(tx, "start_key", n.start_key.to_string())
        .await
        .map_err(db_error)?
    {
        return Ok(Ok(Started::Existing(row.decode()?)));
    }
    if let Some(subject) = subject {
        if let Some(row) = select_one(tx, "open_subject", subject)
            .await
            .map_err(db_error)?
        {
            return Ok(Err(Error::SubjectBusy {
                existing: WorkflowId::from_uuid(row.id),
            }));
        }
    }
    Ok(Err(Error::Unavailable(
        "a conflicting workflow finished while this one was being started; submit again".into(),
    )))
}

/// Applies one guarded commit; `None` when its guard no longer holds.
async fn commit_one(tx: &mut Tx<'_>, c: &Commit) -> sqlx::Result<Option<Vec<EventColumns>>> {
    let cols = codec::progress_columns(&c.progress);
    let (owner, expires) = match (&c.lease, &c.guard) {
        (LeaseAfter::Keep(until), Guard::Lease { owner, .. }) => {
            (Some(owner.to_string()), Some(codec::millis(*until)))
        }
        _ => (None, None),
    };
    let now = codec::millis(c.now);
    let mut q = QueryBuilder::<Db>::new("UPDATE workflows SET state = ");
    q.push_bind(cols.state)
        .push(", cursor = ")
        .push_bind(cols.cursor)
        .push(", current_step = ")
        .push_bind(cols.current_step)
        .push(", ending = ")
        .push_bind(cols.ending)
        .push(", steps = ")
        .push_bind(cols.steps)
        .push(", reason_code = ")
        .push_bind(cols.reason_code)
        .push(", reason_message = ")
        .push_bind(cols.reason_message)
        .push(", next_run_at = ")
        .push_bind(cols.next_run_at)
        // Every SET expression reads the row as it was, so this compares the old
        // state_since with the new one: a new state clears the stuck flag.
        .push(", stuck_at = CASE WHEN state_since = ")
        .push_bind(cols.state_since)
        .push(" THEN stuck_at END")
        .push(", state_since = ")
        .push_bind(cols.state_since)
        .push(if cols.open {
            ", open_subject = subject"
        } else {
            ", open_subject = NULL"
        })
        .push(", lease_owner = ")
        .push_bind(owner)
        .push(", lease_expires_at = ")
        .push_bind(expires)
        .push(", history_len = history_len + ")
        .push_bind(c.events.len() as i64)
        .push(", updated_at = ")
        .push_bind(now);
    match &c.guard {
        Guard::Lease { owner, fence } => {
            q.push(" WHERE id = ")
                .push_bind(c.id.as_uuid())
                .push(" AND fence = ")
                .push_bind(*fence)
                .push(" AND lease_owner = ")
                .push_bind(owner.to_string());
        }
        Guard::Unleased { fence } => {
            q.push(", fence = fence + 1 WHERE id = ")
                .push_bind(c.id.as_uuid())
                .push(" AND fence = ")
                .push_bind(*fence)
                .push(" AND (lease_owner IS NULL OR lease_expires_at < ")
                .push_bind(now)
                .push(")");
        }
    }
    q.push(" RETURNING history_len, history_head");
    let Some(row) = q.build().fetch_optional(&mut **tx).await? else {
        return Ok(None);
    };
    let len: i64 = row.try_get(0)?;
    let head: Option<String> = row.try_get(1)?;
    let before = len - c.events.len() as i64;
    let (events, new_head) = codec::event_columns(
        c.id,
        before,
        head.as_deref().unwrap_or(""),
        c.now,
        &c.events,
    );
    if !events.is_empty() {
        set_head(tx, c.id, &new_head).await?;
    }
    Ok(Some(events))
}

/// `(state = s AND state_since <= cutoff) OR ...`, false when `cutoffs` is empty.
fn push_cutoffs(q: &mut QueryBuilder<'_, Db>, cutoffs: &StuckCutoffs) {
    q.push("(1 = 0");
    for (state, cutoff) in cutoffs {
        q.push(" OR (state = ")
            .push_bind(<&'static str>::from(*state))
            .push(" AND state_since <= ")
            .push_bind(codec::millis(*cutoff))
            .push(")");
    }
    q.push(")");
}

/// Moves a workflow's chain head to the hash of its newest history entry.
async fn set_head(tx: &mut Tx<'_>, id: WorkflowId, head: &str) -> sqlx::Result<()> {
    let mut q = QueryBuilder::<Db>::new("UPDATE workflows SET history_head = ");
    q.push_bind(head.to_owned())
        .push(" WHERE id = ")
        .push_bind(id.as_uuid());
    q.build().execute(&mut **tx).await?;
    Ok(())
}

/// A phone already in the registry keeps whichever release is later.
const COOLDOWN_UPSERT: &str = " ON CONFLICT (scope, key_version, phone_hash) DO UPDATE SET closed_at = excluded.closed_at, release_at = excluded.release_at, workflow_id = excluded.workflow_id WHERE excluded.release_at > cooldowns.release_at";

/// Writes one record of a step's result. A cooldown for a phone already in the
/// registry keeps whichever release is later, so replays change nothing.
async fn write_record(
    tx: &mut Tx<'_>,
    record: &Record,
    workflow: Option<WorkflowId>,
) -> sqlx::Result<u64> {
    match record {
        Record::Cooldown(entry) => {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO cooldowns (scope, phone_hash, key_version, closed_at, release_at, workflow_id) VALUES (",
            );
            q.separated(", ")
                .push_bind(entry.scope.clone())
                .push_bind(entry.phone_hash.clone())
                .push_bind(i64::from(entry.key_version))
                .push_bind(codec::millis(entry.closed_at))
                .push_bind(codec::millis(entry.release_at))
                .push_bind(entry.workflow_id.or(workflow).map(|w| w.as_uuid()));
            q.push(")").push(COOLDOWN_UPSERT);
            Ok(q.build().execute(&mut **tx).await?.rows_affected())
        }
    }
}

/// Queues the final outcome of a workflow that has a channel, in the transaction that
/// ends it. A workflow ends once, so the primary key only guards against replays.
async fn queue_outcome(tx: &mut Tx<'_>, c: &Commit) -> sqlx::Result<()> {
    let now = codec::millis(c.now);
    let mut q = QueryBuilder::<Db>::new(
        "INSERT INTO outcomes (workflow_id, channel, state, reason_code, at, next_attempt_at) SELECT id, channel, state, reason_code, ",
    );
    q.push_bind(now)
        .push(", ")
        .push_bind(now)
        .push(" FROM workflows WHERE channel IS NOT NULL AND id = ")
        .push_bind(c.id.as_uuid())
        .push(" ON CONFLICT DO NOTHING");
    q.build().execute(&mut **tx).await?;
    Ok(())
}

/// Leases the given due workflows; `previous` holds the owners of expired leases.
async fn lease_rows(
    tx: &mut Tx<'_>,
    ids: &[(uuid::Uuid, Option<String>)],
    owner: &WorkerId,
    now: chrono::DateTime<chrono::Utc>,
    ttl: std::time::Duration,
) -> Result<Vec<WorkflowRecord>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let until = now + chrono::Duration::from_std(ttl).unwrap_or_default();
    let mut q = QueryBuilder::<Db>::new("UPDATE workflows SET lease_owner = ");
    q.push_bind(owner.to_string())
        .push(", lease_expires_at = ")
        .push_bind(codec::millis(until))
        .push(", fence = fence + 1, updated_at = ")
        .push_bind(codec::millis(now))
        .push(", history_len = history_len + (CASE WHEN lease_owner IS NULL THEN 0 ELSE 1 END) WHERE id IN (");
    {
        let mut list = q.separated(", ");
        for (id, _) in ids {
            list.push_bind(*id);
        }
    }
    q.push(format!(") RETURNING {WORKFLOW_COLUMNS}"));
    let rows = q
        .build_query_as::<WorkflowRow>()
        .fetch_all(&mut **tx)
        .await
        .map_err(db_error)?;
    let mut records = Vec::with_capacity(rows.len());
    let mut events = Vec::new();
    for row in rows {
        let mut record = row.decode()?;
        if let Some((_, Some(previous))) = ids.iter().find(|(id, _)| *id == record.id.as_uuid()) {
            let event = codec::takeover_event(previous);
            let (rows, new_head) = codec::event_columns(
                record.id,
                record.history_len - 1,
                record.history_head.as_deref().unwrap_or(""),
                now,
                &[event],
            );
            set_head(tx, record.id, &new_head).await.map_err(db_error)?;
            // The record goes back to the worker: it carries the head it now has.
            record.history_head = Some(new_head);
            events.extend(rows);
        }
        records.push(record);
    }
    insert_events(tx, events).await.map_err(db_error)?;
    records.sort_by_key(|r| r.progress.next_run_at);
    Ok(records)
}

impl Backend {
    /// Recomputes every workflow's history chain and reports the first broken link: an
    /// entry changed, removed, or cut off the end.
    pub async fn verify_audit(&self) -> Result<crate::AuditReport> {
        let mut report = crate::AuditReport::default();
        let mut after: Option<uuid::Uuid> = None;
        loop {
            let mut q =
                QueryBuilder::<Db>::new("SELECT id, history_len, history_head FROM workflows");
            if let Some(after) = after {
                q.push(" WHERE id > ").push_bind(after);
            }
            q.push(" ORDER BY id LIMIT 500");
            let page: Vec<(uuid::Uuid, i64, Option<String>)> = q
                .build_query_as()
                .fetch_all(&self.read)
                .await
                .map_err(db_error)?;
            let Some(last) = page.last() else {
                return Ok(report);
            };
            after = Some(last.0);
            // One query for the whole page's histories, not one per workflow.
            let mut q = QueryBuilder::<Db>::new(
                "SELECT workflow_id, seq, at, kind, step, attempt, error_code, message, actor, reason, data, hash FROM history WHERE workflow_id IN (",
            );
            {
                let mut ids = q.separated(", ");
                for (id, _, _) in &page {
                    ids.push_bind(*id);
                }
            }
            q.push(") ORDER BY workflow_id, seq");
            let mut histories: std::collections::HashMap<uuid::Uuid, Vec<EventRow>> =
                std::collections::HashMap::new();
            for row in q
                .build_query_as::<EventRow>()
                .fetch_all(&self.read)
                .await
                .map_err(db_error)?
            {
                histories.entry(row.workflow_id).or_default().push(row);
            }
            for (id, len, head) in page {
                let rows = histories.remove(&id).unwrap_or_default();
                let broken = |seq: i64, problem: String| crate::BrokenLink {
                    workflow_id: WorkflowId::from_uuid(id),
                    seq,
                    problem,
                };
                let mut previous = String::new();
                let mut expected = 1;
                for row in &rows {
                    if row.seq != expected {
                        report.broken =
                            Some(broken(expected, format!("entry {expected} is missing")));
                        return Ok(report);
                    }
                    let hash = codec::chain_hash(
                        &previous,
                        id,
                        row.seq,
                        row.at,
                        &row.kind,
                        row.step.as_deref(),
                        row.attempt,
                        row.error_code.as_deref(),
                        row.message.as_deref(),
                        row.actor.as_deref(),
                        row.reason.as_deref(),
                        row.data.as_ref().map(|d| &d.0),
                    );
                    if row.hash.as_deref() != Some(hash.as_str()) {
                        report.broken = Some(broken(
                            row.seq,
                            "the entry does not match its chain hash: it was changed".into(),
                        ));
                        return Ok(report);
                    }
                    previous = hash;
                    expected += 1;
                }
                if expected - 1 != len || (len > 0 && head.as_deref() != Some(previous.as_str())) {
                    report.broken = Some(broken(expected, format!("the history ends at entry {} but the workflow recorded {len}: entries were removed", expected - 1)));
                    return Ok(report);
                }
                report.workflows += 1;
                report.entries += rows.len() as u64;
            }
        }
    }

    /// Applies the embedded migrations.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR
            .run(&self.write)
            .await
            .map_err(|e| Error::Unavailable(format!("migration failed: {e}")))
    }

    /// Whether every embedded migration has been applied.
    pub async fn migrations_current(&self) -> Result<bool> {
        let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        match sqlx::query("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.read)
            .await
        {
            Ok(row) => Ok(row.try_get::<i64, _>(0).map_err(db_error)? >= latest),
            // No migrations table yet: nothing is applied.
            Err(_) => Ok(false),
        }
    }

    /// The pool that writes; for raw SQL in tests and the benchmark.
    /// Flags (`Some(now)`) up to `batch` unflagged workflows inside `cutoffs`, or clears
    /// (`None`) up to `batch` flagged ones outside them.
    async fn mark_stuck(
        &self,
        now: Option<chrono::DateTime<chrono::Utc>>,
        cutoffs: &StuckCutoffs,
        batch: u32,
    ) -> Result<u64> {
        let mut q = QueryBuilder::<Db>::new("UPDATE workflows SET stuck_at = ");
        match now {
            Some(now) => q
                .push_bind(codec::millis(now))
                .push(" WHERE id IN (SELECT id FROM workflows WHERE stuck_at IS NULL AND "),
            None => q.push(
                "NULL WHERE id IN (SELECT id FROM workflows WHERE stuck_at IS NOT NULL AND NOT ",
            ),
        };
        push_cutoffs(&mut q, cutoffs);
        q.push(" LIMIT ")
            .push_bind(i64::from(batch))
            .push(Self::SKIP_LOCKED)
            .push(")");
        self.write_rows(q).await
    }

    /// Runs one statement in its own write transaction; the rows it changed.
    async fn write_rows(&self, mut q: QueryBuilder<'_, Db>) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let changed = q
            .build()
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        tx.commit().await.map_err(db_error)?;
        Ok(changed)
    }

    /// Runs a `SELECT state, COUNT(*) ... GROUP BY state` query.
    async fn count_states(&self, sql: &'static str) -> Result<Vec<(WorkflowState, i64)>> {
        let rows = sqlx::query(sql)
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?;
        rows.into_iter()
            .map(|row| {
                let state: String = row.try_get(0).map_err(db_error)?;
                let count: i64 = row.try_get(1).map_err(db_error)?;
                let state = state
                    .parse()
                    .map_err(|_| Error::Corrupt(format!("unknown state {state:?}")))?;
                Ok((state, count))
            })
            .collect()
    }

    pub fn pool(&self) -> &sqlx::Pool<Db> {
        &self.write
    }

    /// Closes every pooled connection; later queries fail.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

#[async_trait::async_trait]
impl Store for Backend {
    async fn put_definition(&self, definition: &Definition) -> Result<()> {
        let mut q = QueryBuilder::<Db>::new(
            "INSERT INTO definitions (hash, name, version, content, created_at) VALUES (",
        );
        q.separated(", ")
            .push_bind(definition.content_hash())
            .push_bind(definition.name.to_string())
            .push_bind(i64::from(definition.version))
            .push_bind(definition.canonical_json())
            .push_bind(chrono::Utc::now().timestamp_millis());
        q.push(") ON CONFLICT (hash) DO NOTHING");
        q.build().execute(&self.write).await.map_err(db_error)?;
        Ok(())
    }

    async fn get_definition(&self, hash: &str) -> Result<Option<Definition>> {
        let mut q = QueryBuilder::<Db>::new("SELECT content FROM definitions WHERE hash = ");
        q.push_bind(hash.to_owned());
        let Some(row) = q
            .build()
            .fetch_optional(&self.read)
            .await
            .map_err(db_error)?
        else {
            return Ok(None);
        };
        let content: String = row.try_get(0).map_err(db_error)?;
        serde_json::from_str(&content)
            .map(Some)
            .map_err(|e| Error::Corrupt(format!("definition {hash}: {e}")))
    }

    async fn start(&self, new: Vec<NewWorkflow>) -> Result<Vec<Result<Started>>> {
        let mut tx = self.begin_write().await?;
        let mut results = Vec::with_capacity(new.len());
        let mut created = false;
        for n in new {
            let result = start_one(&mut tx, n).await?;
            created |= matches!(result, Ok(Started::Created(_)));
            results.push(result);
        }
        if created {
            Self::notify(&mut tx).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(results)
    }

    async fn get(&self, id: WorkflowId) -> Result<Option<WorkflowRecord>> {
        let mut q = QueryBuilder::<Db>::new(format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = "
        ));
        q.push_bind(id.as_uuid());
        q.build_query_as::<WorkflowRow>()
            .fetch_optional(&self.read)
            .await
            .map_err(db_error)?
            .map(WorkflowRow::decode)
            .transpose()
    }

    async fn history(&self, id: WorkflowId) -> Result<Vec<Event>> {
        let mut q = QueryBuilder::<Db>::new(
            "SELECT workflow_id, seq, at, kind, step, attempt, error_code, message, actor, reason, data, hash FROM history WHERE workflow_id = ",
        );
        q.push_bind(id.as_uuid()).push(" ORDER BY seq");
        q.build_query_as::<EventRow>()
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(EventRow::decode)
            .collect()
    }

    async fn list(&self, filter: &Filter) -> Result<Vec<WorkflowRecord>> {
        let mut q = QueryBuilder::<Db>::new(format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE 1 = 1"
        ));
        if !filter.states.is_empty() {
            q.push(" AND state IN (");
            let mut list = q.separated(", ");
            for state in &filter.states {
                list.push_bind(<&'static str>::from(*state));
            }
            q.push(")");
        }
        if let Some(definition) = &filter.definition {
            q.push(" AND definition_name = ")
                .push_bind(definition.to_string());
        }
        if let Some(subject) = &filter.subject {
            q.push(" AND subject = ")
                .push_bind(subject.as_str().to_owned());
        }
        if let Some(channel) = &filter.channel {
            q.push(" AND channel = ").push_bind(channel.to_string());
        }
        if let Some(step) = &filter.step {
            q.push(" AND current_step = ").push_bind(step.to_string());
        }
        if let Some(before) = filter.in_state_before {
            q.push(" AND state_since < ")
                .push_bind(codec::millis(before));
        }
        if filter.stuck {
            q.push(" AND stuck_at IS NOT NULL");
        }
        let limit = if filter.limit == 0 {
            100
        } else {
            filter.limit.min(10_000)
        };
        q.push(" ORDER BY state_since, id LIMIT ")
            .push_bind(i64::from(limit));
        q.build_query_as::<WorkflowRow>()
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(WorkflowRow::decode)
            .collect()
    }

    async fn count_by_state(&self) -> Result<Vec<(WorkflowState, i64)>> {
        self.count_states("SELECT state, COUNT(*) FROM workflows GROUP BY state")
            .await
    }

    async fn claim(
        &self,
        owner: &WorkerId,
        now: chrono::DateTime<chrono::Utc>,
        limit: u32,
        ttl: std::time::Duration,
    ) -> Result<Vec<WorkflowRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.claim_due(owner, now, limit, ttl).await
    }

    async fn commit(&self, batch: &[Commit]) -> Result<Vec<bool>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let mut applied = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let mut wake_others = false;
        for c in batch {
            match commit_one(&mut tx, c).await.map_err(db_error)? {
                Some(rows) => {
                    events.extend(rows);
                    applied.push(true);
                    if c.progress.state.is_terminal() {
                        queue_outcome(&mut tx, c).await.map_err(db_error)?;
                    }
                    for record in &c.records {
                        write_record(&mut tx, record, Some(c.id))
                            .await
                            .map_err(db_error)?;
                    }
                    wake_others |= matches!(c.lease, LeaseAfter::Release)
                        && c.progress.state.is_runnable()
                        && c.progress.next_run_at.is_some_and(|t| t <= c.now);
                }
                None => applied.push(false),
            }
        }
        insert_events(&mut tx, events).await.map_err(db_error)?;
        if wake_others {
            Self::notify(&mut tx).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(applied)
    }

    async fn claim_outcomes(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: u32,
        lease: std::time::Duration,
    ) -> Result<Vec<OutcomeNotice>> {
        let mut tx = self.begin_write().await?;
        let now_ms = codec::millis(now);
        let mut q = QueryBuilder::<Db>::new(
            "SELECT workflow_id FROM outcomes WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ",
        );
        q.push_bind(now_ms)
            .push(" ORDER BY next_attempt_at LIMIT ")
            .push_bind(i64::from(limit))
            .push(Self::SKIP_LOCKED);
        let ids: Vec<(uuid::Uuid,)> = q
            .build_query_as()
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        if ids.is_empty() {
            tx.rollback().await.map_err(db_error)?;
            return Ok(Vec::new());
        }
        let until = now + chrono::Duration::from_std(lease).unwrap_or_default();
        let mut q = QueryBuilder::<Db>::new(
            "UPDATE outcomes SET attempts = attempts + 1, next_attempt_at = ",
        );
        q.push_bind(codec::millis(until))
            .push(" WHERE workflow_id IN (");
        {
            let mut list = q.separated(", ");
            for (id,) in &ids {
                list.push_bind(*id);
            }
        }
        q.push(") RETURNING workflow_id, channel, state, reason_code, at, attempts");
        let rows: Vec<codec::OutcomeRow> = q
            .build_query_as()
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        rows.into_iter().map(codec::OutcomeRow::decode).collect()
    }

    async fn finish_outcome(&self, workflow_id: WorkflowId, delivery: Delivery) -> Result<()> {
        let (next, delivered, error) = match delivery {
            Delivery::Delivered { at } => (None, Some(codec::millis(at)), None),
            Delivery::Retry { at, error } => (Some(codec::millis(at)), None, Some(error)),
            Delivery::GiveUp { error } => (None, None, Some(error)),
        };
        let mut q = QueryBuilder::<Db>::new("UPDATE outcomes SET next_attempt_at = ");
        q.push_bind(next)
            .push(", delivered_at = ")
            .push_bind(delivered)
            .push(", last_error = ")
            .push_bind(error)
            .push(" WHERE workflow_id = ")
            .push_bind(workflow_id.as_uuid());
        q.build().execute(&self.write).await.map_err(db_error)?;
        Ok(())
    }

    async fn cooldown_until(
        &self,
        scope: &str,
        hashes: &[(u32, String)],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        if hashes.is_empty() {
            return Ok(None);
        }
        let mut q = QueryBuilder::<Db>::new("SELECT MAX(release_at) FROM cooldowns WHERE scope = ");
        q.push_bind(scope.to_owned())
            .push(" AND release_at > ")
            .push_bind(codec::millis(now))
            .push(" AND (");
        for (i, (version, hex)) in hashes.iter().enumerate() {
            if i > 0 {
                q.push(" OR ");
            }
            q.push("(key_version = ")
                .push_bind(i64::from(*version))
                .push(" AND phone_hash = ")
                .push_bind(hex.clone())
                .push(")");
        }
        q.push(")");
        let row = q.build().fetch_one(&self.read).await.map_err(db_error)?;
        let until: Option<i64> = row.try_get(0).map_err(db_error)?;
        until.map(codec::time).transpose()
    }

    async fn insert_cooldowns(&self, entries: &[CooldownEntry]) -> Result<u64> {
        // One row per phone and scope, the latest release winning, as the upsert would
        // decide; PostgreSQL refuses a statement that updates the same row twice.
        let mut latest: std::collections::HashMap<(&str, u32, &str), &CooldownEntry> =
            std::collections::HashMap::new();
        for entry in entries {
            let key = (
                entry.scope.as_str(),
                entry.key_version,
                entry.phone_hash.as_str(),
            );
            let slot = latest.entry(key).or_insert(entry);
            if entry.release_at > slot.release_at {
                *slot = entry;
            }
        }
        let entries: Vec<&CooldownEntry> = latest.into_values().collect();
        let mut tx = self.begin_write().await?;
        let mut written = 0;
        // Multi-row inserts: an import of millions of closures is bound by round trips.
        for chunk in entries.chunks(INSERT_CHUNK) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO cooldowns (scope, phone_hash, key_version, closed_at, release_at, workflow_id) ",
            );
            q.push_values(chunk, |mut row, entry| {
                row.push_bind(entry.scope.clone())
                    .push_bind(entry.phone_hash.clone())
                    .push_bind(i64::from(entry.key_version))
                    .push_bind(codec::millis(entry.closed_at))
                    .push_bind(codec::millis(entry.release_at))
                    .push_bind(entry.workflow_id.map(|w| w.as_uuid()));
            });
            q.push(COOLDOWN_UPSERT);
            written += q
                .build()
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected();
        }
        tx.commit().await.map_err(db_error)?;
        Ok(written)
    }

    async fn release_cooldowns(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        batch: u32,
    ) -> Result<u64> {
        let now_ms = codec::millis(now);
        // Released entries are deleted: once the phone is free its hash has no purpose,
        // and a delete writes far less than an update that moves index entries.
        let mut q = QueryBuilder::<Db>::new("DELETE FROM cooldowns WHERE ");
        q.push(Self::ROW_IN.0)
            .push("SELECT ")
            .push(Self::ROW_ID)
            .push(" FROM cooldowns WHERE release_at <= ")
            .push_bind(now_ms)
            .push(" LIMIT ")
            .push_bind(i64::from(batch))
            .push(Self::SKIP_LOCKED)
            .push(Self::ROW_IN.1);
        self.write_rows(q).await
    }

    async fn purge_finished(
        &self,
        ended_before: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
        batch: u32,
    ) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let mut q = QueryBuilder::<Db>::new(
            "SELECT id, steps FROM workflows WHERE purged_at IS NULL AND state IN ('completed', 'compensated', 'rejected', 'cancelled') AND state_since < ",
        );
        q.push_bind(codec::millis(ended_before))
            .push(" LIMIT ")
            .push_bind(i64::from(batch))
            .push(Self::SKIP_LOCKED);
        let rows: Vec<(
            uuid::Uuid,
            sqlx::types::Json<Vec<closeout_engine::store::StepRecord>>,
        )> = q
            .build_query_as()
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        let purged = rows.len() as u64;
        for (id, steps) in rows {
            // Outputs may hold personal data (the verified email); states and attempt
            // counts stay, as do the history entries, which never held any.
            let steps: Vec<_> = steps
                .0
                .into_iter()
                .map(|mut step| {
                    step.output = None;
                    step
                })
                .collect();
            let mut q = QueryBuilder::<Db>::new("UPDATE workflows SET input = ");
            q.push_bind(sqlx::types::Json(serde_json::json!({ "purged": true })))
                .push(", steps = ")
                .push_bind(sqlx::types::Json(steps))
                .push(", purged_at = ")
                .push_bind(codec::millis(now))
                .push(" WHERE id = ")
                .push_bind(id);
            q.build().execute(&mut *tx).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(purged)
    }

    async fn flag_stuck(
        &self,
        cutoffs: &StuckCutoffs,
        now: chrono::DateTime<chrono::Utc>,
        batch: u32,
    ) -> Result<u64> {
        self.mark_stuck(Some(now), cutoffs, batch).await
    }

    async fn unflag_stuck(&self, cutoffs: &StuckCutoffs, batch: u32) -> Result<u64> {
        self.mark_stuck(None, cutoffs, batch).await
    }

    async fn count_stuck(&self) -> Result<Vec<(WorkflowState, i64)>> {
        self.count_states(
            "SELECT state, COUNT(*) FROM workflows WHERE stuck_at IS NOT NULL GROUP BY state",
        )
        .await
    }

    async fn lock_job(
        &self,
        job: &str,
        owner: &WorkerId,
        now: chrono::DateTime<chrono::Utc>,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        let until = now + chrono::Duration::from_std(ttl).unwrap_or_default();
        let mut q =
            QueryBuilder::<Db>::new("INSERT INTO job_locks (job, owner, expires_at) VALUES (");
        q.separated(", ")
            .push_bind(job.to_owned())
            .push_bind(owner.to_string())
            .push_bind(codec::millis(until));
        q.push(") ON CONFLICT (job) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at WHERE job_locks.owner = excluded.owner OR job_locks.expires_at < ")
            .push_bind(codec::millis(now));
        Ok(self.write_rows(q).await? == 1)
    }

    async fn unlock_job(&self, job: &str, owner: &WorkerId) -> Result<()> {
        let mut q = QueryBuilder::<Db>::new("DELETE FROM job_locks WHERE job = ");
        q.push_bind(job.to_owned())
            .push(" AND owner = ")
            .push_bind(owner.to_string());
        q.build().execute(&self.write).await.map_err(db_error)?;
        Ok(())
    }

    async fn next_due(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        let sql = format!(
            "SELECT MIN(CASE WHEN lease_owner IS NOT NULL AND lease_expires_at > next_run_at THEN lease_expires_at ELSE next_run_at END) FROM workflows WHERE next_run_at IS NOT NULL AND state IN {RUNNABLE}"
        );
        let row = sqlx::query(&sql)
            .fetch_one(&self.read)
            .await
            .map_err(db_error)?;
        let due: Option<i64> = row.try_get(0).map_err(db_error)?;
        due.map(codec::time).transpose()
    }

    async fn subscribe(&self) -> Result<Option<tokio::sync::mpsc::Receiver<()>>> {
        self.listen().await
    }
}
