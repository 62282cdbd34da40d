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
    let out = Command::new(env!("CARGO_BIN_EXE_closeout"))
        .args(args)
        .args(["--database-url", &url])
        .env("CLOSEOUT_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap();
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
