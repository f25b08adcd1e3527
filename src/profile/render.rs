//! The data-quality report as a terminal table and as one self-contained HTML page (inline CSS
//! bars, no scripts, nothing fetched) that a planner can open from a share.

use std::fmt::Write;

use super::{ColumnProfile, Drift, Profile, UnitColumn};

/// Longest value shown in a table cell.
const CELL: usize = 24;

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

fn opt(v: Option<usize>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.abs() >= 1e5 || (v != 0.0 && v.abs() < 1e-3) => format!("{v:.3e}"),
        Some(v) => format!("{}", (v * 1000.0).round() / 1000.0),
        None => "-".into(),
    }
}

fn spelled(v: &Option<String>) -> String {
    match v {
        Some(s) => format!("'{s}'"),
        None => "NULL".into(),
    }
}

/// The report for the terminal.
pub fn text(p: &Profile) -> String {
    let mut s = String::new();
    for v in &p.views {
        let _ = writeln!(s, "{}: {}, {} rows", v.view, v.location, v.rows);
        let width = v
            .columns
            .iter()
            .map(|c| c.column.chars().count())
            .max()
            .unwrap_or(6)
            .max(6);
        let _ = writeln!(
            s,
            "  {:width$}  {:>7}  {:>6}  {:>5}  {:>5}  {:>5}  {:>5}  {:>8}  {:>5}  commonest",
            "column", "missing", "NULL", "''", "nan", "0", "9999", "distinct", "bad"
        );
        for c in &v.columns {
            let _ = writeln!(
                s,
                "  {:width$}  {:>6.1}%  {:>6}  {:>5}  {:>5}  {:>5}  {:>5}  {:>8}  {:>5}  {}",
                c.column,
                100.0 * c.missing_share,
                c.nulls,
                c.blanks,
                c.nan_spelled,
                opt(c.zeros),
                opt(c.nines),
                c.distinct,
                if c.contract_type == "Utf8" {
                    "-".to_string()
                } else {
                    c.not_castable.to_string()
                },
                commonest(c)
            );
        }
        for c in v.columns.iter().filter(|c| c.not_castable > 0) {
            let _ = writeln!(
                s,
                "  {}: {} values are not {} ({}{}); `sources.strict` decides: stop, or read as NULL",
                c.column,
                c.not_castable,
                kind(&c.contract_type),
                c.not_castable_examples.join(", "),
                if c.not_castable > c.not_castable_examples.len() {
                    ", ..."
                } else {
                    ""
                }
            );
        }
    }
    if !p.units.is_empty() {
        let _ = writeln!(s, "units (spelling -> clean value: rows):");
        for u in &p.units {
            let _ = writeln!(s, "  {}: {}", u.name, unit_line(u));
        }
    }
    match &p.drift {
        Some(d) => drift_text(d, &mut s),
        None => {
            let _ = writeln!(s, "drift: no trained model to compare with");
        }
    }
    s
}

/// The contract type in words.
fn kind(contract_type: &str) -> &str {
    match contract_type {
        "Float64" | "Float32" => "numbers",
        "Int32" | "Int64" => "integers",
        "Date32" => "dates",
        t if t.starts_with("Timestamp") => "date-times",
        t => t,
    }
}

fn commonest(c: &ColumnProfile) -> String {
    if c.earliest.is_some() {
        return format!(
            "{} .. {}",
            c.earliest.as_deref().unwrap_or("-"),
            c.latest.as_deref().unwrap_or("-")
        );
    }
    if c.contract_type != "Utf8" {
        return format!(
            "min {} / median {} / max {}",
            num(c.min),
            num(c.median),
            num(c.max)
        );
    }
    c.top
        .iter()
        .take(3)
        .map(|(v, n)| format!("{} ({n})", clip(v, CELL)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unit_line(u: &UnitColumn) -> String {
    u.spellings
        .iter()
        .map(|(s, c, n)| format!("{} -> {}: {n}", spelled(s), c.as_deref().unwrap_or("NULL")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn drift_text(d: &Drift, s: &mut String) {
    let flagged: Vec<_> = d.columns.iter().filter(|c| !c.flags.is_empty()).collect();
    let _ = writeln!(
        s,
        "drift against {} ({} training items, {} items now): {} of {} features moved",
        d.model,
        d.items_then,
        d.items_now,
        flagged.len(),
        d.columns.len()
    );
    for c in flagged {
        let _ = writeln!(s, "  {}: {}", c.name, c.flags.join("; "));
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar of `share` (0..1) with its label.
fn bar(share: f64, class: &str) -> String {
    format!(
        "<div class=\"bar\"><div class=\"{class}\" style=\"width:{:.1}%\"></div><span>{:.1} %</span></div>",
        (100.0 * share).clamp(0.0, 100.0),
        100.0 * share
    )
}

/// The report as one HTML page.
pub fn html(p: &Profile) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>trainer: data quality of the ERP sources</title>\n<style>\
         body{font:14px system-ui,sans-serif;margin:2em;color:#222}\
         table{border-collapse:collapse;margin:0.5em 0 2em}\
         td,th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right;vertical-align:top}\
         td:first-child,th:first-child,td.l{text-align:left}\
         .bar{position:relative;width:120px;height:15px;margin:1px 0;background:#eee;white-space:nowrap;overflow:hidden}\
         td.tops .bar{width:280px}\
         .bar div{height:14px}.bar span{position:absolute;left:4px;top:0;font-size:11px}\
         .miss{background:#f2b36f}.top{background:#8bb8e8}.bad{background:#e06666}\
         tr.flag td{background:#fde2e2}</style></head><body>\n\
         <h1>Data quality of the ERP sources</h1>\n",
    );
    for v in &p.views {
        let _ = writeln!(
            s,
            "<h2>{}</h2><p>{} &middot; {} rows</p>",
            esc(&v.view),
            esc(&v.location),
            v.rows
        );
        s.push_str(
            "<table><tr><th>column</th><th>source type</th><th>contract</th><th>missing</th>\
             <th>NULL</th><th>''</th><th>nan</th><th>0</th><th>9999</th><th>distinct</th>\
             <th>not castable</th><th>commonest values</th></tr>\n",
        );
        for c in &v.columns {
            let tops: String = c
                .top
                .iter()
                .map(|(val, n)| {
                    let share = n.to_owned() as f64 / v.rows.max(1) as f64;
                    format!(
                        "<div class=\"bar\" title=\"{}\"><div class=\"top\" style=\"width:{:.1}%\"></div><span>{} ({n})</span></div>",
                        esc(val),
                        100.0 * share,
                        esc(&clip(val, CELL))
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                "<tr{}><td>{}<br><small>{}</small></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l tops\">{}</td></tr>",
                if c.not_castable > 0 {
                    " class=\"flag\""
                } else {
                    ""
                },
                esc(&c.column),
                esc(&c.name),
                esc(&c.source_type),
                esc(&c.contract_type),
                bar(c.missing_share, "miss"),
                c.nulls,
                c.blanks,
                c.nan_spelled,
                opt(c.zeros),
                opt(c.nines),
                c.distinct,
                if c.not_castable > 0 {
                    format!(
                        "{}<br><small>{}</small>",
                        c.not_castable,
                        esc(&c.not_castable_examples.join(", "))
                    )
                } else {
                    "0".into()
                },
                if c.contract_type == "Utf8" {
                    tops
                } else {
                    esc(&commonest(c))
                }
            );
        }
        s.push_str("</table>\n");
    }
    if !p.units.is_empty() {
        s.push_str("<h2>Units</h2><table><tr><th>column</th><th>spelling</th><th>clean value</th><th>rows</th></tr>\n");
        for u in &p.units {
            for (sp, c, n) in &u.spellings {
                let _ = writeln!(
                    s,
                    "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{n}</td></tr>",
                    esc(&u.name),
                    esc(&spelled(sp)),
                    esc(c.as_deref().unwrap_or("NULL"))
                );
            }
        }
        s.push_str("</table>\n");
    }
    match &p.drift {
        Some(d) => {
            let _ = writeln!(
                s,
                "<h2>Drift against the trained model</h2><p>{} &middot; {} training items, {} items now</p>",
                esc(&d.model),
                d.items_then,
                d.items_now
            );
            s.push_str(
                "<table><tr><th>feature</th><th>missing then</th><th>missing now</th>\
                 <th>level shares moved</th><th>unseen values</th><th>median then</th>\
                 <th>median now</th><th>flags</th></tr>\n",
            );
            for c in &d.columns {
                let _ = writeln!(
                    s,
                    "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
                    if c.flags.is_empty() {
                        ""
                    } else {
                        " class=\"flag\""
                    },
                    esc(&c.name),
                    bar(c.missing_then, "miss"),
                    bar(c.missing_now, "miss"),
                    c.levels_moved.map(|v| bar(v, "bad")).unwrap_or_default(),
                    c.unseen_share.map(|v| bar(v, "bad")).unwrap_or_default(),
                    num(c.median_then),
                    num(c.median_now),
                    esc(&c.flags.join("; "))
                );
            }
            s.push_str("</table>\n");
        }
        None => s.push_str("<p>No trained model to compare with.</p>\n"),
    }
    s.push_str("</body></html>\n");
    s
}
