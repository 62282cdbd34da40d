//! `closeout cooldown import` as operators run it: the real binary on a temporary SQLite
//! database, then the registry read back through the store the check API uses.

use std::path::Path;
use std::process::{Command, Output};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use closeout_cooldown::{HashKeys, E164};

const KEY: &str = "the import test's phone-hash key, long enough";

fn run(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_closeout"))
        .args(["cooldown", "import"])
        .args(args)
        .args(["--database-url", url])
        .env("CLOSEOUT_COOLDOWN__HASH_KEYS__1", KEY)
        .env("CLOSEOUT_LOG", "warn")
        .env_remove("CLOSEOUT_CONFIG")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The latest release in force for `phone` in `scope`, as the check API would see it.
async fn until(url: &str, phone: &str, scope: &str) -> Option<DateTime<Utc>> {
    let store = closeout_store::AnyStore::connect(url).await.unwrap();
    let keys = HashKeys::new([(1, KEY.to_owned().into())]).unwrap();
    let hashes: Vec<(u32, String)> = keys
        .all(&E164::parse(phone).unwrap())
        .into_iter()
        .map(|h| (h.key_version, h.hex))
        .collect();
    store
        .into_dyn()
        .cooldown_until(scope, &hashes, Utc::now())
        .await
        .unwrap()
}

fn vn_midnight(date: NaiveDate) -> DateTime<Utc> {
    closeout_cooldown::vietnam()
        .from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn write_csv(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn import_validates_rows_is_idempotent_and_dry_runs_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("import.db").display());
    let day = (Utc::now() - Duration::days(30)).date_naive();
    let exact = (Utc::now() - Duration::days(5))
        .with_timezone(&closeout_cooldown::vietnam())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    let future = (Utc::now() + Duration::days(3)).date_naive();
    let file = write_csv(
        dir.path(),
        "closures.csv",
        &format!(
            "phone,scope,closed_at\n\
             0912 345 678,skyjoy,{day}\n\
             +84987654321,wallet,{exact}\n\
             0912abc678,skyjoy,{day}\n\
             0354841605,bank,{day}\n\
             0945350398,wallet,15/01/2026\n\
             0979921380,skyjoy,{future}\n\
             0387255954,wallet\n"
        ),
    );

    // A dry run validates and counts, and writes nothing.
    let dry = run(&url, &[&file, "--dry-run"]);
    let report = stdout(&dry);
    assert_eq!(dry.status.code(), Some(2), "{report}");
    assert!(
        report.contains("read 7, would import 2, rejected 5, already present 0"),
        "{report}"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(
        runtime.block_on(until(&url, "+84912345678", "skyjoy")),
        None,
        "a dry run must write nothing"
    );

    // The import: good rows in, bad ones reported by line and reason, never by phone.
    let first = run(&url, &[&file]);
    let report = stdout(&first);
    assert_eq!(first.status.code(), Some(2), "{report}");
    assert!(
        report.contains("read 7, imported 2, rejected 5, already present 0"),
        "{report}"
    );
    for (line, reason) in [
        (4, "line 4: phone:"),
        (5, "line 5: scope:"),
        (6, "line 6: closed_at:"),
        (7, "line 7: closed_at: is in the future"),
        (8, "line 8: 2 fields"),
    ] {
        assert!(report.contains(reason), "line {line}: {report}");
    }
    for phone in [
        "0912abc678",
        "0354841605",
        "0945350398",
        "0979921380",
        "0387255954",
    ] {
        assert!(
            !report.contains(phone),
            "the report names a phone: {report}"
        );
    }
    let skyjoy = runtime.block_on(until(&url, "+84912345678", "skyjoy"));
    assert_eq!(
        skyjoy,
        Some(closeout_cooldown::release_at(vn_midnight(day))),
        "a bare date is midnight in Vietnam, released six months later"
    );
    let exact_at = DateTime::parse_from_rfc3339(&exact)
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        runtime.block_on(until(&url, "0987 654 321", "wallet")),
        Some(closeout_cooldown::release_at(exact_at))
    );
    assert_eq!(
        runtime.block_on(until(&url, "0987654321", "skyjoy")),
        None,
        "scopes are separate"
    );

    // Again: nothing changes.
    let second = run(&url, &[&file]);
    let report = stdout(&second);
    assert!(
        report.contains("read 7, imported 0, rejected 5, already present 2"),
        "{report}"
    );
    let dry_again = run(&url, &[&file, "--dry-run"]);
    assert!(
        stdout(&dry_again).contains("would import 0, rejected 5, already present 2"),
        "{}",
        stdout(&dry_again)
    );
    assert_eq!(
        runtime.block_on(until(&url, "0912345678", "skyjoy")),
        skyjoy
    );
}

#[test]
fn a_clean_file_exits_zero_and_a_headerless_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("clean.db").display());
    let day = (Utc::now() - Duration::days(1)).date_naive();
    let clean = write_csv(
        dir.path(),
        "clean.csv",
        &format!("closed_at,phone,scope\r\n{day},\"0912 345 678\",wallet\r\n"),
    );
    let out = run(&url, &[&clean]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("read 1, imported 1, rejected 0"));

    let headerless = write_csv(
        dir.path(),
        "bare.csv",
        &format!("0912345678,wallet,{day}\n"),
    );
    let out = run(&url, &[&headerless]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("phone,scope,closed_at"), "{err}");
    assert!(
        !err.contains("0912345678"),
        "the error names a phone: {err}"
    );
}
