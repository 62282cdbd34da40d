//! The API's answers as operators read them: tables, a timeline, plain sentences.
//!
//! The views below read only the fields they show and ignore the rest, so a newer API
//! that adds fields still works with this CLI; `--json` prints the answer untouched.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use comfy_table::{presets, ContentArrangement, Table};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Reason {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Deserialize)]
pub struct Summary {
    pub request_id: String,
    pub flow: String,
    #[serde(default)]
    pub definition_version: Option<u32>,
    pub channel: Option<String>,
    pub skyjoy_id: Option<String>,
    pub state: String,
    pub current_step: Option<String>,
    pub reason: Option<Reason>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub state_since: DateTime<Utc>,
    pub age_in_state_secs: u64,
    pub next_run_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub stuck_since: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
pub struct List {
    pub requests: Vec<Summary>,
}

#[derive(Debug, Deserialize)]
pub struct Step {
    pub id: String,
    pub state: String,
    pub attempts: u32,
    pub compensation_attempts: u32,
}

#[derive(Debug, Deserialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub step: Option<String>,
    pub attempt: Option<u32>,
    pub error_code: Option<String>,
    pub actor: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Detail {
    #[serde(flatten)]
    pub summary: Summary,
    #[serde(default)]
    pub phone_masked: Option<String>,
    pub steps: Vec<Step>,
    pub history: Vec<Event>,
}

#[derive(Debug, Deserialize)]
pub struct BulkFailure {
    pub request_id: String,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Deserialize)]
pub struct BulkResult {
    pub dry_run: bool,
    pub count: usize,
    pub request_ids: Vec<String>,
    pub failed: Vec<BulkFailure>,
}

/// Text from the API made safe for a terminal: reasons are typed by people and messages
/// quote them, so control characters (escape sequences, newlines that would break a row),
/// Unicode line separators and bidirectional overrides (which reorder what is shown)
/// become spaces.
pub fn clean(text: &str) -> String {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            )
    };
    text.chars()
        .map(|c| if unsafe_char(c) { ' ' } else { c })
        .collect()
}

/// `45s`, `3m 12s`, `2h 5m`, `3d 4h`: the two largest units, enough to triage by.
pub fn age(secs: u64) -> String {
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let Some(first) = units.iter().position(|(size, _)| secs >= *size) else {
        return "0s".into();
    };
    let (size, unit) = units[first];
    let mut text = format!("{}{unit}", secs / size);
    if let Some((next, next_unit)) = units.get(first + 1) {
        let rest = (secs % size) / next;
        if rest > 0 {
            let _ = write!(text, " {rest}{next_unit}");
        }
    }
    text
}

fn time(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn or_dash(value: Option<&str>) -> String {
    value.map_or_else(|| "-".to_owned(), clean)
}

/// A borderless table (columns two spaces apart, headers in capitals), so that output
/// stays readable in any terminal and greppable in a pipe.
fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    table
}

fn finish(mut table: Table) -> String {
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `closeout requests list`; `limit` is the page size asked for, to say when there may be
/// more.
pub fn list(list: &List, limit: u32) -> String {
    if list.requests.is_empty() {
        return "no requests match\n".into();
    }
    let mut rows = table(&["REQUEST", "FLOW", "STATE", "STEP", "IN STATE", "CHANNEL"]);
    for r in &list.requests {
        rows.add_row(vec![
            clean(&r.request_id),
            clean(&r.flow),
            clean(&r.state),
            or_dash(r.current_step.as_deref()),
            match r.stuck_since {
                Some(_) => format!("{} (stuck)", age(r.age_in_state_secs)),
                None => age(r.age_in_state_secs),
            },
            or_dash(r.channel.as_deref()),
        ]);
    }
    let mut out = finish(rows);
    let n = list.requests.len();
    if n >= limit as usize {
        let _ = writeln!(
            out,
            "({n} shown, the limit; there may be more: narrow the filter or raise --limit)"
        );
    }
    out
}

/// `closeout requests show`: the summary, the steps, then the history timeline.
pub fn detail(d: &Detail) -> String {
    let s = &d.summary;
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<10}{value}");
    };
    line("request", clean(&s.request_id));
    line(
        "flow",
        match s.definition_version {
            Some(v) => format!("{} (version {v})", clean(&s.flow)),
            None => clean(&s.flow),
        },
    );
    line("channel", or_dash(s.channel.as_deref()));
    line("member", or_dash(s.skyjoy_id.as_deref()));
    if let Some(phone) = &d.phone_masked {
        line("phone", clean(phone));
    }
    line(
        "state",
        format!(
            "{} for {} (since {} UTC)",
            clean(&s.state),
            age(s.age_in_state_secs),
            time(&s.state_since)
        ),
    );
    if let Some(since) = &s.stuck_since {
        line(
            "stuck",
            format!("flagged by the stuck-workflow sweep at {} UTC", time(since)),
        );
    }
    line("step", or_dash(s.current_step.as_deref()));
    if let Some(reason) = &s.reason {
        line(
            "reason",
            format!("{}: {}", clean(&reason.code), clean(&reason.message)),
        );
    }
    if let Some(next) = &s.next_run_at {
        line("next run", format!("{} UTC", time(next)));
    }
    line("created", format!("{} UTC", time(&s.created_at)));
    line("updated", format!("{} UTC", time(&s.updated_at)));

    let mut steps = table(&["", "STEP", "STATE", "ATTEMPTS", "UNDO ATTEMPTS"]);
    for step in &d.steps {
        let current = s.current_step.as_deref() == Some(step.id.as_str());
        steps.add_row(vec![
            if current { ">" } else { "" }.to_owned(),
            clean(&step.id),
            clean(&step.state),
            step.attempts.to_string(),
            step.compensation_attempts.to_string(),
        ]);
    }
    out.push_str("\nsteps\n");
    out.push_str(&finish(steps));

    let mut history = table(&[
        "TIME (UTC)",
        "KIND",
        "STEP",
        "ATTEMPT",
        "ERROR",
        "ACTOR",
        "REASON",
    ]);
    for e in &d.history {
        history.add_row(vec![
            time(&e.at),
            clean(&e.kind),
            or_dash(e.step.as_deref()),
            e.attempt.map_or_else(|| "-".to_owned(), |a| a.to_string()),
            or_dash(e.error_code.as_deref()),
            or_dash(e.actor.as_deref()),
            or_dash(e.reason.as_deref()),
        ]);
    }
    out.push_str("\nhistory\n");
    out.push_str(&finish(history));
    out
}

/// What a single action left behind: the request as the API answered after applying it.
pub fn acted(action: &str, d: &Detail) -> String {
    let s = &d.summary;
    let at = s
        .current_step
        .as_deref()
        .map_or_else(String::new, |step| format!(" at {}", clean(step)));
    format!(
        "{action}: applied to {id}; it is now {state}{at}\n\
         the workers carry on from here: follow it with `closeout requests show {id}`\n",
        id = clean(&s.request_id),
        state = clean(&s.state),
    )
}

/// A bulk answer: what a dry run would touch, or what succeeded and what failed.
pub fn bulk(action: &str, result: &BulkResult, limit: Option<u32>) -> String {
    let mut out = String::new();
    if result.dry_run {
        let _ = writeln!(
            out,
            "dry run: bulk {action} would act on {} request(s); nothing was changed",
            result.count
        );
        for id in &result.request_ids {
            let _ = writeln!(out, "  {}", clean(id));
        }
    } else {
        let _ = writeln!(
            out,
            "bulk {action}: {} of {} request(s) succeeded, {} failed",
            result.request_ids.len(),
            result.count,
            result.failed.len()
        );
        if !result.request_ids.is_empty() {
            out.push_str("succeeded:\n");
            for id in &result.request_ids {
                let _ = writeln!(out, "  {}", clean(id));
            }
        }
        if !result.failed.is_empty() {
            out.push_str("failed:\n");
            let mut failed = table(&["REQUEST", "CODE", "MESSAGE"]);
            for f in &result.failed {
                failed.add_row(vec![
                    clean(&f.request_id),
                    clean(&f.code),
                    clean(&f.message),
                ]);
            }
            for line in finish(failed).lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    // The API takes at most `limit` matches (100 unless told), oldest in their state
    // first, so a full page means the filter may match more than was acted on.
    let page = limit.unwrap_or(super::DEFAULT_LIMIT) as usize;
    if result.count >= page {
        let _ = writeln!(
            out,
            "note: {} is the limit; more requests may match: run again, or raise --limit (at most 1000)",
            result.count
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_show_the_two_largest_units() {
        assert_eq!(age(0), "0s");
        assert_eq!(age(45), "45s");
        assert_eq!(age(192), "3m 12s");
        assert_eq!(age(7200), "2h");
        assert_eq!(age(7500), "2h 5m");
        assert_eq!(age(3 * 86_400 + 4 * 3600 + 59), "3d 4h");
    }

    #[test]
    fn terminal_control_and_bidi_characters_are_neutralised() {
        assert_eq!(clean("ok\u{1b}[2Jx\ny"), "ok [2Jx y");
        assert_eq!(clean("a\u{202E}b\u{2028}c"), "a b c");
        assert_eq!(clean("Đã xác minh"), "Đã xác minh");
    }

    fn summary(id: &str, step: Option<&str>) -> serde_json::Value {
        serde_json::json!({
            "request_id": id, "flow": "vietjet", "definition_version": 1,
            "channel": "vietjet", "skyjoy_id": "SJ1000000001", "state": "waiting",
            "current_step": step, "reason": null,
            "created_at": "2024-03-15T04:07:32Z", "updated_at": "2024-03-15T04:07:33Z",
            "state_since": "2024-03-15T04:07:33Z", "age_in_state_secs": 7500,
            "next_run_at": null, "added_later": true
        })
    }

    #[test]
    fn list_rows_line_up_and_say_when_the_page_is_full() {
        let mut stuck = summary("id-22", None);
        stuck["stuck_since"] = "2024-03-15T05:00:00Z".into();
        let page: List = serde_json::from_value(serde_json::json!({
            "requests": [summary("id-1", Some("ops_decision")), stuck]
        }))
        .unwrap();
        let text = list(&page, 100);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("REQUEST"), "{text}");
        assert!(
            lines[1].contains("ops_decision") && lines[1].contains("2h 5m"),
            "{text}"
        );
        let column = |line: &str| line.find("vietjet").unwrap();
        assert_eq!(column(lines[1]), column(lines[2]), "columns align:\n{text}");
        assert!(
            !lines[1].contains("stuck") && lines[2].contains("2h 5m (stuck)"),
            "{text}"
        );
        assert!(!text.contains("limit"), "{text}");
        assert!(list(&page, 2).contains("raise --limit"));
    }

    #[test]
    fn detail_marks_the_current_step_and_lists_the_timeline() {
        let mut value = summary("id-1", Some("ops_decision"));
        value["steps"] = serde_json::json!([
            {"id": "eligibility", "state": "succeeded", "attempts": 2, "compensation_attempts": 0},
            {"id": "ops_decision", "state": "waiting", "attempts": 0, "compensation_attempts": 0}
        ]);
        value["history"] = serde_json::json!([
            {"seq": 1, "at": "2024-03-15T04:07:32Z", "kind": "step_retry_scheduled", "step": "eligibility",
             "attempt": 1, "error_code": "UNAVAILABLE", "message": "m", "actor": null, "reason": null, "data": null},
            {"seq": 2, "at": "2024-03-15T05:00:00Z", "kind": "signal_received", "step": "ops_decision",
             "attempt": null, "error_code": null, "message": null, "actor": "ops:alice", "reason": "checked\nby phone", "data": null}
        ]);
        value["phone_masked"] = "+84*******001".into();
        let detail: Detail = serde_json::from_value(value).unwrap();
        let text = super::detail(&detail);
        let current = text
            .lines()
            .find(|l| l.starts_with('>'))
            .expect("a marked step");
        assert!(current.contains("ops_decision"), "{text}");
        let decision = text.lines().find(|l| l.contains("ops:alice")).unwrap();
        assert!(
            decision.starts_with("2024-03-15 05:00:00") && decision.contains("checked by phone"),
            "{text}"
        );
        assert!(text.contains("\nphone     +84*******001\n"), "{text}");
        assert!(!text.contains("stuck"), "not flagged: {text}");
        let retry = text.lines().find(|l| l.contains("UNAVAILABLE")).unwrap();
        assert!(retry.contains("step_retry_scheduled"), "{text}");
    }
}
