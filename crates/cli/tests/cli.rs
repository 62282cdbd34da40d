//! The binary's own surface: subcommands exist and `migrate` works on a fresh file.
//! (Also makes `cargo test --workspace` build the `closeout` binary that the
//! process tests in `tests/` spawn.)

use std::process::Command;

#[test]
fn help_lists_the_subcommands() {
    let out = Command::new(env!("CARGO_BIN_EXE_closeout"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for sub in ["migrate", "serve", "sandbox", "bench"] {
        assert!(text.contains(sub), "--help lacks {sub}: {text}");
    }
}

#[test]
fn migrate_creates_a_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_closeout"))
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("m.db").exists());
}

#[test]
fn a_bad_database_url_is_explained() {
    let out = Command::new(env!("CARGO_BIN_EXE_closeout"))
        .args(["migrate", "--database-url", "mysql://x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sqlite://") && err.contains("postgres://"),
        "{err}"
    );
}

#[test]
fn cooldown_expire_releases_due_entries_once() {
    use chrono::{Duration, Utc};
    use closeout_engine::store::CooldownEntry;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = closeout_store::AnyStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let entry = |hash: &str, closed_days_ago: i64| {
            let closed_at = Utc::now() - Duration::days(closed_days_ago);
            CooldownEntry {
                scope: "skyjoy".into(),
                phone_hash: hash.into(),
                key_version: 1,
                closed_at,
                release_at: closeout_cooldown::release_at(closed_at),
                workflow_id: None,
            }
        };
        let entries = [
            entry("a", 200),
            entry("b", 190),
            entry("c", 400),
            entry("d", 10),
        ];
        store.into_dyn().insert_cooldowns(&entries).await.unwrap();
    });
    let expire = || {
        let out = Command::new(env!("CARGO_BIN_EXE_closeout"))
            .args(["cooldown", "expire", "--database-url", &url])
            .env("CLOSEOUT_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(
        expire().starts_with("released 3 cooldowns"),
        "three are past six months"
    );
    assert!(
        expire().starts_with("released 0 cooldowns"),
        "a second run changes nothing"
    );
}

/// Runs `closeout <args>` against a fresh SQLite database and returns its stdout.
fn on_fresh_database(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let out = closeout_on(&url, args, env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn audit_verify_reports_an_intact_chain() {
    let text = on_fresh_database(&["audit", "verify"], &[]);
    assert!(
        text.starts_with("audit chain intact: 0 workflows"),
        "{text}"
    );
}

#[test]
fn purge_runs_once_and_reports() {
    let text = on_fresh_database(&["purge"], &[("CLOSEOUT_RETENTION__PERSONAL_DATA", "7d")]);
    assert!(
        text.starts_with("purged the personal data of 0 finished requests"),
        "{text}"
    );
}

/// A SQLite database holding one request that completed `ended_days_ago` days ago, made
/// with the engine and the binary's own `diag.noop` action.
fn with_a_finished_request(ended_days_ago: i64) -> (tempfile::TempDir, String) {
    use std::sync::Arc;

    use closeout_engine::clock::ManualClock;
    use closeout_engine::id::{DefinitionName, StartKey, WorkerId};
    use closeout_engine::state::WorkflowState;
    use closeout_engine::{Config, Engine, StartRequest};

    const NOOP: &str = r#"
name = "close"
version = 1
[[steps]]
id = "only"
kind = "retriable"
action = "diag.noop"
"#;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("f.db").display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = closeout_store::AnyStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let definition = closeout_engine::definition::parse(
            std::path::Path::new("close.toml"),
            NOOP,
            &|_| true,
            &Vec::new,
        )
        .unwrap();
        let clock = Arc::new(ManualClock::new(
            chrono::Utc::now() - chrono::Duration::days(ended_days_ago),
        ));
        let engine = Engine::new(
            store.into_dyn(),
            closeout::actions::registry(&Default::default(), None),
            vec![definition],
            clock,
            Config::new(WorkerId::parse("test-worker").unwrap()),
        )
        .await
        .unwrap();
        let started = engine
            .start(StartRequest {
                definition: DefinitionName::parse("close").unwrap(),
                key: StartKey::parse("k1").unwrap(),
                subject: None,
                channel: None,
                input: serde_json::json!({ "phone": "0900000001" }),
            })
            .await
            .unwrap();
        engine.run_until_idle().await.unwrap();
        let record = engine.get(started.record().id).await.unwrap();
        assert_eq!(record.progress.state, WorkflowState::Completed);
    });
    (dir, url)
}

/// Runs `closeout <args> --database-url <url>` and returns its output.
fn closeout_on(url: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_closeout"))
        .args(args)
        .args(["--database-url", url])
        .env("CLOSEOUT_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn purge_erases_a_request_finished_before_the_retention() {
    let (_dir, url) = with_a_finished_request(10);
    let purge = |retention: &str| {
        let out = closeout_on(
            &url,
            &["purge"],
            &[("CLOSEOUT_RETENTION__PERSONAL_DATA", retention)],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let text = purge("30d");
    assert!(
        text.starts_with("purged the personal data of 0 finished requests"),
        "within the retention it is kept: {text}"
    );
    let text = purge("7d");
    assert!(
        text.starts_with("purged the personal data of 1 finished requests"),
        "{text}"
    );
    let text = purge("7d");
    assert!(
        text.starts_with("purged the personal data of 0 finished requests"),
        "a second run changes nothing: {text}"
    );
}

#[test]
fn audit_verify_exits_1_on_a_broken_chain() {
    let (_dir, url) = with_a_finished_request(1);
    let out = closeout_on(&url, &["audit", "verify"], &[]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("audit chain intact: 1 workflows"),
        "{text}"
    );

    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::Connection as _;
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("DROP TRIGGER history_no_update")
            .execute(&mut db)
            .await
            .unwrap();
        let changed = sqlx::query("UPDATE history SET reason = 'rewritten' WHERE seq = 1")
            .execute(&mut db)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(changed, 1);
    });
    let out = closeout_on(&url, &["audit", "verify"], &[]);
    assert_eq!(out.status.code(), Some(1), "a broken chain exits 1");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("audit chain BROKEN at workflow ") && text.contains(" entry 1: "),
        "{text}"
    );
}

/// `certificate keygen` prints a usable signing key (its public half on stderr), and
/// `certificate public-key` derives the same public key from it once configured, under
/// the configured key ID.
#[test]
fn certificate_keygen_and_public_key_agree() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_closeout"));
        command
            .current_dir(dir.path())
            .env_remove("CLOSEOUT_CONFIG");
        for (k, v) in env {
            command.env(k, v);
        }
        let out = command.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (secret, told) = run(&["certificate", "keygen"], &[]);
    let secret = secret.trim();
    assert_eq!(secret.len(), 44, "32 bytes in base64: {secret:?}");
    let public = told
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .unwrap_or_else(|| panic!("no public key on stderr: {told}"));
    let (printed, _) = run(
        &["certificate", "public-key"],
        &[
            ("CLOSEOUT_CERTIFICATES__SIGNING_KEY", secret),
            ("CLOSEOUT_CERTIFICATES__KEY_ID", "2026-11"),
        ],
    );
    assert_eq!(printed.trim(), format!("2026-11={public}"));
    // Without a key configured it says how to make one.
    let out = Command::new(env!("CARGO_BIN_EXE_closeout"))
        .current_dir(dir.path())
        .env_remove("CLOSEOUT_CONFIG")
        .env_remove("CLOSEOUT_CERTIFICATES__SIGNING_KEY")
        .args(["certificate", "public-key"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("closeout certificate keygen"));
}
