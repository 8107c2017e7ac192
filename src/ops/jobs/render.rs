//! Text for people: the jobs table, the summary line, one job's columns.

use super::Status;
use crate::queue::admin::{JobLine, Shown, Summary};

/// Long links would push every other column off the screen.
const URL_WIDTH: usize = 48;
/// Enough of a user id to tell users apart at a glance; `--json` and `show`
/// have the whole id.
const USER_WIDTH: usize = 8;

pub fn table(jobs: &[JobLine]) -> String {
    if jobs.is_empty() {
        return "no jobs\n".into();
    }
    let header = [
        "ID", "STATUS", "PLATFORM", "EGRESS", "ATT", "AGE", "USER", "URL", "ERROR",
    ];
    let rows: Vec<[String; 9]> = jobs
        .iter()
        .map(|j| {
            [
                j.id.to_string(),
                j.status.clone(),
                j.platform.clone().unwrap_or_else(|| "-".into()),
                j.egress.clone().unwrap_or_else(|| "-".into()),
                j.attempts.to_string(),
                j.age_secs.map_or_else(|| "-".into(), age),
                truncate(&j.user_id.to_string(), USER_WIDTH, ""),
                truncate(&j.original_url, URL_WIDTH, "…"),
                j.error_code.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = header.map(String::from);
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `all jobs: 2 pending, …, 1 cancelled; paused: instagram on vm1 until …`
pub fn summary_line(s: &Summary) -> String {
    let counts: Vec<String> = Status::ALL
        .iter()
        .map(|st| {
            format!(
                "{} {}",
                s.counts.get(st.as_str()).unwrap_or(&0),
                st.as_str()
            )
        })
        .collect();
    let paused = if s.paused.is_empty() {
        "none".to_string()
    } else {
        s.paused
            .iter()
            .map(|p| {
                let reason = p
                    .pause_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                format!(
                    "{} on {} until {}{reason}",
                    p.platform,
                    p.egress_key,
                    p.paused_until.format("%Y-%m-%d %H:%M:%S UTC")
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("all jobs: {}; paused: {paused}", counts.join(", "))
}

/// Every column of the job, then its audio row.
pub fn shown(s: &Shown) -> String {
    let mut out = String::from("job\n");
    out.push_str(&columns(&s.job));
    match &s.audio_file {
        Some(audio) => {
            out.push_str("audio_files\n");
            out.push_str(&columns(audio));
        }
        None => out.push_str("audio_files: none\n"),
    }
    out
}

fn columns(row: &serde_json::Value) -> String {
    let Some(map) = row.as_object() else {
        return format!("  {row}\n");
    };
    let width = map.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    map.iter()
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::Null => "-".to_string(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("  {k:<width$}  {value}\n")
        })
        .collect()
}

/// 42s, 5m, 3h, 2d: an age to read at a glance.
pub fn age(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn truncate(s: &str, max: usize, ellipsis: &str) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let keep = max - ellipsis.chars().count();
    format!("{}{ellipsis}", s.chars().take(keep).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_short() {
        assert_eq!(age(4.2), "4s");
        assert_eq!(age(125.0), "2m");
        assert_eq!(age(7300.0), "2h");
        assert_eq!(age(200_000.0), "2d");
    }

    #[test]
    fn long_links_are_cut_with_an_ellipsis() {
        let cut = truncate(&"x".repeat(100), URL_WIDTH, "…");
        assert_eq!(cut.chars().count(), URL_WIDTH);
        assert!(cut.ends_with('…'));
        assert_eq!(truncate("short", URL_WIDTH, "…"), "short");
    }

    #[test]
    fn the_summary_names_every_status_and_each_pause() {
        let mut counts = std::collections::BTreeMap::new();
        counts.insert("failed".to_string(), 2);
        let s = Summary {
            counts,
            paused: vec![crate::queue::admin::Pause {
                platform: "instagram".into(),
                egress_key: "vm1".into(),
                paused_until: chrono::DateTime::from_timestamp(0, 0).unwrap(),
                pause_reason: Some("rate limited".into()),
            }],
        };
        let line = summary_line(&s);
        assert!(line.starts_with("all jobs: 0 pending, 0 processing, 0 completed, 2 failed, 0 cancelled; paused: instagram on vm1 until 1970-01-01 00:00:00 UTC (rate limited)"), "{line}");
    }
}
