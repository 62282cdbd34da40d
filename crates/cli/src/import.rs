//! `closeout cooldown import FILE.csv [--dry-run]`: loads the closures made before
//! go-live into the cooldown registry, so a phone closed last month is refused at
//! sign-up from the first day.
//!
//! The file has a header row and the columns `phone,scope,closed_at` (any order; extra
//! columns are refused so a misaligned export is noticed). `closed_at` is RFC 3339, or a
//! bare `YYYY-MM-DD` read as midnight in Vietnam (UTC+7), the way closure dates are
//! written in the source systems. Each row is validated on its own: a bad row is
//! reported with its line number and why, never with its phone, and the rest are
//! imported, hashed under the current key, in chunks. Importing the same file again
//! changes nothing (the store keeps the later release of an existing entry).
//!
//! The `csv` crate reads the file: quoting, embedded commas, CRLF line ends and a BOM
//! from spreadsheet exports are all handled, with line numbers for every record: a
//! hand-written split on commas would get exactly those wrong.

use std::collections::HashMap;
use std::io::Read;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};
use closeout_cooldown::{HashKeys, Scope, E164};
use closeout_engine::store::{CooldownEntry, Store};

/// Rows per `insert_cooldowns` call: one transaction each, small enough to keep the
/// store's statements well under parameter limits.
pub const CHUNK: usize = 5_000;

/// A row that was not imported, by its line in the file (the header is line 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub line: u64,
    /// Which column and what is wrong with it; never the row's phone.
    pub reason: String,
}

/// What an import came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Data rows read (the header not counted).
    pub read: u64,
    /// Entries written (new, or an existing one extended to a later release). In a dry
    /// run: entries that would be.
    pub imported: u64,
    pub rejected: Vec<Reject>,
    /// Valid rows the registry already holds with the same or a later release, counting
    /// a row that repeats an earlier one of the file.
    pub already_present: u64,
    /// Valid rows whose six months have already passed: nothing to block.
    pub expired: u64,
}

const COLUMNS: [&str; 3] = ["phone", "scope", "closed_at"];

/// Reads and validates `input`; the valid rows (one per phone and scope, the latest
/// release kept) and the summary so far. Fails only when the file as a whole is
/// unusable (no header, wrong columns).
fn read(
    input: impl Read,
    keys: &HashKeys,
    now: DateTime<Utc>,
) -> anyhow::Result<(Vec<CooldownEntry>, Summary)> {
    let mut input = input;
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes).context("reading the file")?;
    // Line numbers from byte offsets: the csv crate's own line count is one short after
    // CRLF line ends (a record's start lands between the '\r' and the '\n'), and
    // spreadsheet exports are CRLF.
    let newlines: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter_map(|(i, b)| (*b == b'\n').then_some(i))
        .collect();
    let line_of = |byte: u64| -> u64 {
        let mut start = byte as usize;
        while matches!(bytes.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        1 + newlines.partition_point(|&n| n < start) as u64
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let header = reader
        .headers()
        .context(
            "the file has no readable header row; the first line must be phone,scope,closed_at",
        )?
        .clone();
    let names: Vec<String> = header
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    let mut expected = COLUMNS.map(str::to_owned).to_vec();
    expected.sort();
    anyhow::ensure!(
        sorted == expected,
        // Not the names found: a file without a header would have its first phone there.
        "the first line must be the header row naming exactly the columns phone,scope,closed_at \
         (in any order); it has {} other or missing names",
        names.len()
    );
    let at = |name: &str| names.iter().position(|n| n == name).expect("checked above");
    let (phone_at, scope_at, closed_at_at) = (at("phone"), at("scope"), at("closed_at"));

    let mut summary = Summary::default();
    // (scope, hash) → index in `rows`, so a phone listed twice is stored once.
    let mut seen: HashMap<(Scope, String), usize> = HashMap::new();
    let mut rows: Vec<CooldownEntry> = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = line_of(reader.position().byte());
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                // The csv crate's messages can quote the field; ours never do.
                let line = e.position().map_or(line, |p| line_of(p.byte()));
                summary.read += 1;
                summary.rejected.push(Reject {
                    line,
                    reason: match e.kind() {
                        csv::ErrorKind::Utf8 { .. } => "the row is not valid UTF-8".into(),
                        _ => "the row cannot be read as CSV".into(),
                    },
                });
                continue;
            }
        }
        let line = record.position().map_or(line, |p| line_of(p.byte()));
        // A blank line between records is not a row.
        if record.iter().all(str::is_empty) {
            continue;
        }
        summary.read += 1;
        let reject = |reason: String| Reject { line, reason };
        if record.len() != COLUMNS.len() {
            summary.rejected.push(reject(format!(
                "{} fields where the header has 3 (phone,scope,closed_at)",
                record.len()
            )));
            continue;
        }
        let phone = match E164::parse(&record[phone_at]) {
            Ok(phone) => phone,
            Err(e) => {
                summary.rejected.push(reject(format!("phone: {e}")));
                continue;
            }
        };
        let scope: Scope = match record[scope_at].to_ascii_lowercase().parse() {
            Ok(scope) => scope,
            Err(_) => {
                summary
                    .rejected
                    .push(reject("scope: must be skyjoy or wallet".into()));
                continue;
            }
        };
        let closed_at = match parse_closed_at(&record[closed_at_at]) {
            Ok(at) => at,
            Err(problem) => {
                summary
                    .rejected
                    .push(reject(format!("closed_at: {problem}")));
                continue;
            }
        };
        if closed_at > now {
            summary
                .rejected
                .push(reject("closed_at: is in the future".into()));
            continue;
        }
        let release_at = closeout_cooldown::release_at(closed_at);
        if release_at <= now {
            summary.expired += 1;
            continue;
        }
        let hash = keys.current(&phone);
        let entry = CooldownEntry {
            scope: scope.to_string(),
            phone_hash: hash.hex.clone(),
            key_version: hash.key_version,
            closed_at,
            release_at,
            workflow_id: None,
        };
        match seen.get(&(scope, hash.hex.clone())) {
            Some(&index) => {
                // The same phone and scope again: keep the later release, as the store
                // would, and count the other as already present.
                summary.already_present += 1;
                if rows[index].release_at < release_at {
                    rows[index] = entry;
                }
            }
            None => {
                seen.insert((scope, hash.hex), rows.len());
                rows.push(entry);
            }
        }
    }
    Ok((rows, summary))
}

/// RFC 3339, or `YYYY-MM-DD` as midnight in Vietnam.
fn parse_closed_at(text: &str) -> Result<DateTime<Utc>, &'static str> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| "must be RFC 3339 (2024-03-15T04:07:32Z) or a date (2024-03-15)")?;
    date.and_hms_opt(0, 0, 0)
        .and_then(|midnight| {
            midnight
                .and_local_timezone(closeout_cooldown::vietnam())
                .single()
        })
        .map(|at| at.with_timezone(&Utc))
        .ok_or("is not a representable date")
}

/// Imports `input` into `store` (or, with `dry_run`, only says what would change).
pub async fn import(
    store: &dyn Store,
    keys: &HashKeys,
    input: impl Read,
    dry_run: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<Summary> {
    let (rows, mut summary) = read(input, keys, now)?;
    for chunk in rows.chunks(CHUNK) {
        let entries = chunk;
        let written = if dry_run {
            // Present already with this release or a later one: the import would not
            // touch it. One lookup per row; a dry run favours exactness over speed.
            let mut would = 0;
            for entry in entries {
                let hashes = [(entry.key_version, entry.phone_hash.clone())];
                let just_before = entry.release_at - chrono::Duration::microseconds(1);
                let present = store
                    .cooldown_until(&entry.scope, &hashes, just_before)
                    .await?
                    .is_some_and(|until| until >= entry.release_at);
                would += u64::from(!present);
            }
            would
        } else {
            store.insert_cooldowns(entries).await?
        };
        summary.imported += written;
        summary.already_present += entries.len() as u64 - written.min(entries.len() as u64);
    }
    Ok(summary)
}

impl Summary {
    /// The report `closeout cooldown import` prints: rejects first, then the counts.
    pub fn render(&self, dry_run: bool) -> String {
        let mut out = String::new();
        for reject in &self.rejected {
            out.push_str(&format!("line {}: {}\n", reject.line, reject.reason));
        }
        let verb = if dry_run { "would import" } else { "imported" };
        out.push_str(&format!(
            "{}read {}, {verb} {}, rejected {}, already present {}, expired {}\n",
            if dry_run {
                "dry run (nothing written): "
            } else {
                ""
            },
            self.read,
            self.imported,
            self.rejected.len(),
            self.already_present,
            self.expired,
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn keys() -> HashKeys {
        HashKeys::new([(1, "an import test key, long enough!!".to_owned().into())]).unwrap()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0).unwrap()
    }

    #[test]
    fn dates_are_vietnamese_midnight_or_rfc3339() {
        assert_eq!(
            parse_closed_at("2025-08-31").unwrap(),
            Utc.with_ymd_and_hms(2025, 8, 30, 17, 0, 0).unwrap()
        );
        assert_eq!(
            parse_closed_at("2025-08-31T10:00:00+07:00").unwrap(),
            Utc.with_ymd_and_hms(2025, 8, 31, 3, 0, 0).unwrap()
        );
        assert!(parse_closed_at("31/08/2025").is_err());
        assert!(parse_closed_at("2025-02-30").is_err());
    }

    #[test]
    fn rows_are_validated_one_by_one_without_echoing_phones() {
        let file = "\u{feff}Phone,scope,closed_at\r\n\
                    0912 345 678,skyjoy,2025-12-01\r\n\
                    0912abc678,skyjoy,2025-12-01\r\n\
                    0987654321,bank,2025-12-01\r\n\
                    0987654321,wallet,01/12/2025\r\n\
                    \"+84 912 345 678\",skyjoy,2025-12-02\r\n\
                    0354841605,wallet,2024-01-01\r\n\
                    0354841605,wallet\r\n\
                    0945350398,wallet,2027-01-01\r\n";
        let (rows, summary) = read(file.as_bytes(), &keys(), now()).unwrap();
        assert_eq!(summary.read, 8);
        assert_eq!(rows.len(), 1, "the same phone twice is one entry");
        assert_eq!(summary.already_present, 1);
        assert_eq!(
            rows[0].closed_at,
            Utc.with_ymd_and_hms(2025, 12, 1, 17, 0, 0).unwrap(),
            "the later closure is kept"
        );
        assert_eq!(summary.expired, 1);
        let lines: Vec<u64> = summary.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 4, 5, 8, 9]);
        assert!(summary.rejected[0].reason.starts_with("phone:"));
        assert!(summary.rejected[1].reason.starts_with("scope:"));
        assert!(summary.rejected[2].reason.starts_with("closed_at:"));
        assert!(summary.rejected[4].reason.contains("future"));
        let report = summary.render(false);
        for phone in ["0912abc678", "0987654321", "0354841605", "0945350398"] {
            assert!(!report.contains(phone), "{report}");
        }
    }

    #[test]
    fn a_file_without_the_header_is_refused_whole() {
        let err = read("0912345678,skyjoy,2025-12-01\n".as_bytes(), &keys(), now()).unwrap_err();
        assert!(err.to_string().contains("phone,scope,closed_at"), "{err}");
        assert!(!err.to_string().contains("0912345678"), "{err}");
    }
}
