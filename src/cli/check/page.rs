//! `report.html`: one self-contained page (no script, no file beside it)
//! with the verdicts at the top and, for each key, its operations on a
//! timeline: a lane per client, a bar from call to answer (an unknown
//! outcome runs to the end, dashed), the operation the linearizability
//! search could not place marked in red.

use std::fmt::Write as _;

use super::report::{describe, describe_violation, Judgement};
use super::Recording;
use crate::check::history::{Call, Outcome};

const WIDTH: f64 = 1200.0;
const LANE: f64 = 14.0;

/// The page, as text.
pub(super) fn page(recording: &Recording, judgement: &Judgement) -> String {
    let mut html = String::from(HEAD);
    let stuck = judgement.first_violation().map(|v| v.stuck);
    match judgement.first_violation() {
        Some(v) => {
            let _ = writeln!(
                html,
                "<p class=\"verdict bad\" id=\"violation\">Violation of linearizability: {}</p>",
                escape(&describe_violation(recording, v))
            );
        }
        None => html.push_str("<p class=\"verdict good\">Linearizability held.</p>\n"),
    }
    if judgement.watch.violations.is_empty() {
        html.push_str("<p class=\"verdict good\">Every watch guarantee held.</p>\n");
    } else {
        html.push_str("<h2>Watch violations</h2>\n<ul class=\"watch\">\n");
        for v in &judgement.watch.violations {
            let _ = writeln!(
                html,
                "<li><b>{}</b>: {}</li>",
                escape(&v.guarantee),
                escape(&v.detail)
            );
        }
        html.push_str("</ul>\n");
    }
    let end = recording
        .history
        .operations
        .iter()
        .map(|o| o.returned.unwrap_or(o.called))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    for (index, name) in recording.history.keys.iter().enumerate() {
        timeline(&mut html, recording, index as u16, name, end, stuck);
    }
    html.push_str("</body>\n</html>\n");
    html
}

/// One key's section: a lane per client, a bar per operation on the key.
fn timeline(
    html: &mut String,
    recording: &Recording,
    key: u16,
    name: &str,
    end: f64,
    stuck: Option<usize>,
) {
    let ops: Vec<_> = recording
        .history
        .operations
        .iter()
        .filter(|o| o.call.keys().contains(&key))
        .collect();
    let lanes = ops.iter().map(|o| o.client).max().map_or(1, |c| c + 1);
    let height = lanes as f64 * LANE + 4.0;
    let marked = ops.iter().any(|o| Some(o.id) == stuck);
    let _ = writeln!(
        html,
        "<section{}><h2>key {} <small>{} operations</small></h2>\n<svg viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\" aria-label=\"operations on key {}\">",
        if marked { " class=\"marked\"" } else { "" },
        escape(name),
        ops.len(),
        escape(name)
    );
    for op in ops {
        let x = op.called as f64 / end * WIDTH;
        let until = op.returned.map_or(end, |r| r as f64);
        let w = ((until - op.called as f64) / end * WIDTH).max(1.5);
        let y = op.client as f64 * LANE + 2.0;
        let class = match (&op.call, &op.outcome) {
            (_, Outcome::Unknown { .. }) => "unknown",
            (Call::Get { .. }, _) => "read",
            (Call::Txn { .. }, _) => "txn",
            (_, Outcome::Refused | Outcome::NotFound) => "refused",
            _ => "write",
        };
        let class = if Some(op.id) == stuck {
            format!("{class} stuck")
        } else {
            class.to_owned()
        };
        let _ = writeln!(
            html,
            "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\"><title>#{} {}</title></rect>",
            LANE - 3.0,
            op.id,
            escape(&describe(op, &recording.history.keys))
        );
    }
    html.push_str("</svg></section>\n");
}

/// Text as HTML: nothing from the history is ever markup.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const HEAD: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>hulykvs check</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; }
.verdict { padding: .5rem .8rem; border-radius: 4px; }
.good { background: #e6f4ea; }
.bad { background: #fde8e8; border: 2px solid #c00; font-weight: 600; }
section { margin: 1rem 0; }
section.marked h2 { color: #c00; }
h2 small { color: #777; font-weight: normal; }
rect.read { fill: #7aa7d8; }
rect.write { fill: #5cb85c; }
rect.txn { fill: #9b6bc6; }
rect.refused { fill: #c9c9c9; }
rect.unknown { fill: #f0ad4e; stroke: #b07000; stroke-dasharray: 3 2; }
rect.stuck { stroke: #c00; stroke-width: 3; }
</style>
</head>
<body>
<h1>hulykvs check</h1>
<p>Each key's operations over time: a lane per client, a bar from call to answer (blue: reads,
green: writes, purple: transactions, grey: refused, orange and dashed: outcome unknown). Hover a
bar for the operation.</p>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<b a=\"x\">&'"),
            "&lt;b a=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
