//! How the `sluice` command shows things to people: tables, key/value
//! pairs, shortened statements, ages and times to empty. Pure functions of
//! the JSON the admin API (or an offline read) gives; nothing here talks to
//! sluice.

use serde_json::Value;

/// Print rows as aligned columns.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.clone()));
        out.push('\n');
    }
    out
}
pub fn short(s: &str, n: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        format!("{}…", one_line.chars().take(n - 1).collect::<String>())
    }
}
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
/// `table` output without its header line (for `--no-headers`).
pub fn without_header(table: &str) -> String {
    table.lines().skip(1).map(|l| format!("{l}\n")).collect()
}

/// Label/value rows, aligned, without a header line.
pub fn pairs(rows: &[Vec<String>]) -> String {
    without_header(&table(&["", ""], rows))
}
pub fn list_table(items: &[Value]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|w| {
            vec![
                text(&w["seq"]),
                text(&w["id"]),
                text(&w["accepted_at"]),
                text(&w["attempts"]),
                if w["outcome_unknown"] == true {
                    "unknown".into()
                } else {
                    "-".into()
                },
                short(&statement_text(&w["statements"][0]), 60),
            ]
        })
        .collect();
    table(
        &["SEQ", "ID", "ACCEPTED", "ATTEMPTS", "OUTCOME", "STATEMENT"],
        &rows,
    )
}
/// A statement as the API gives it: its text, or (text that is not UTF-8)
/// its bytes in hex.
pub fn statement_text(v: &Value) -> String {
    match (v.as_str(), v["hex"].as_str()) {
        (Some(t), _) => t.to_string(),
        (None, Some(hex)) => format!("X'{hex}' (bytes in the session's character set)"),
        _ => String::new(),
    }
}

/// One write (queued or dead) as label/value lines.
pub fn show_table(w: &Value) -> String {
    let mut rows = vec![
        vec!["seq".into(), text(&w["seq"])],
        vec!["id".into(), text(&w["id"])],
        vec!["accepted at".into(), text(&w["accepted_at"])],
    ];
    for (i, st) in w["statements"].as_array().into_iter().flatten().enumerate() {
        rows.push(vec![format!("statement {}", i + 1), statement_text(st)]);
        rows.push(vec![
            format!("  params {}", i + 1),
            w["params"][i].to_string(),
        ]);
    }
    for (label, key) in [
        ("database", "database"),
        ("sql_mode", "sql_mode"),
        ("time_zone", "time_zone"),
        ("charset", "charset"),
        ("idempotency key", "idempotency_key"),
        ("attempts", "attempts"),
        ("outcome unknown", "outcome_unknown"),
        ("last error", "last_error"),
    ] {
        rows.push(vec![label.into(), text(&w[key])]);
    }
    if !w["error"].is_null() {
        rows.push(vec![
            "MariaDB error".into(),
            format!(
                "{} ({}): {}",
                text(&w["error"]["mysql_errno"]),
                text(&w["error"]["sqlstate"]),
                text(&w["error"]["message"])
            ),
        ]);
        rows.push(vec!["died at".into(), text(&w["died_at"])]);
    }
    pairs(&rows)
}
/// An age in seconds as "12.5 s ago" ("-" when there is none).
pub fn ago(v: &Value) -> String {
    v.as_f64()
        .map(|a| format!("{a:.1} s ago"))
        .unwrap_or_else(|| "-".into())
}
pub fn eta(v: &Value) -> String {
    match v.as_f64() {
        None => "-".into(),
        Some(s) if s < 60.0 => format!("{s:.0} s"),
        Some(s) if s < 3600.0 => format!("{:.1} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_long_text_is_cut() {
        let t = table(&["A", "LONGER"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    LONGER\nxyz  1\n");
        assert_eq!(short("INSERT   INTO\n t", 10), "INSERT IN…");
    }
}

/// The failover epoch from a status, when failover is configured or has
/// happened; `None` where there is nothing to say about failover.
pub fn failover_epoch(status: &Value) -> Option<u64> {
    let epoch = status["target"]["epoch"].as_u64().unwrap_or(0);
    (epoch > 0 || !status["failover"].is_null()).then_some(epoch)
}

/// A size for people: `512 B`, `1.5 KiB`, `3.2 MiB`, `1.0 GiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Seconds as `4.2 s`, `3 min 5 s`, `2 h 10 min`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{} min {} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{} h {} min",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_as_people_write_them() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(524_287), "512.0 KiB");
        assert_eq!(size(3 << 20), "3.0 MiB");
        assert_eq!(duration(4.21), "4.2 s");
        assert_eq!(duration(185.0), "3 min 5 s");
        assert_eq!(duration(7800.0), "2 h 10 min");
    }
}
