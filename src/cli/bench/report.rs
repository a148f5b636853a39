//! What a bench run measured: the tally of each connection, merged into the
//! report `--json` prints, and the table for people.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use super::args::Workload;
use super::plan::{Op, Plan};
use crate::exit::Failure;

/// Highest latency the histogram holds, in microseconds; longer ones count as this.
const MAX_LATENCY_US: u64 = 60_000_000;

/// The result of a run, as `--json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `get`, `put`, `cas`, `list` or `mixed`.
    pub workload: String,
    /// Connections, each with one request in flight.
    pub connections: usize,
    /// The measured time, warmup excluded.
    pub duration_s: f64,
    /// Responses received within the measured time.
    pub requests: u64,
    /// `requests` per second.
    pub rps: f64,
    /// Latency of those responses.
    pub latency_us: Latency,
    /// Responses by HTTP status code.
    pub status: BTreeMap<String, u64>,
    /// Requests that got no response: connection refused, reset or closed, or too slow.
    pub errors: u64,
    /// `cas` writes that lost a race (412) and were tried again.
    pub cas_retries: u64,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Slowest.
    pub max: u64,
    /// Average.
    pub mean: f64,
}

/// What one connection measured.
pub(super) struct Tally {
    pub(super) latency: Histogram<u64>,
    /// Responses by status code, indexed by the code.
    pub(super) status: Vec<u64>,
    pub(super) errors: u64,
    pub(super) cas_retries: u64,
}

impl Tally {
    pub(super) fn new() -> Result<Tally, Failure> {
        Ok(Tally {
            // Grows with the slowest answer, so 256 connections cost little memory.
            latency: Histogram::new(3)
                .map_err(|e| Failure::error(format!("cannot make a histogram: {e}")))?,
            status: vec![0; 600],
            errors: 0,
            cas_retries: 0,
        })
    }

    pub(super) fn merge(&mut self, other: &Tally) -> Result<(), Failure> {
        self.latency
            .add(&other.latency)
            .map_err(|e| Failure::error(format!("cannot merge histograms: {e}")))?;
        for (mine, theirs) in self.status.iter_mut().zip(&other.status) {
            *mine += theirs;
        }
        self.errors += other.errors;
        self.cas_retries += other.cas_retries;
        Ok(())
    }

    /// Counts one response that took `latency`.
    pub(super) fn record(&mut self, latency: Duration, status: StatusCode) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        // Only an allocation failure could refuse the value; it would not be counted.
        let _ = self.latency.record(micros.min(MAX_LATENCY_US));
        self.status[usize::from(status.as_u16()).min(599)] += 1;
    }

    /// The report of a run of `plan`, from the merged tally of every connection.
    pub(super) fn report(&self, plan: &Plan) -> Report {
        let requests = self.latency.len();
        let seconds = plan.duration.as_secs_f64();
        let status = self
            .status
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(|(code, &n)| (code.to_string(), n))
            .collect();
        let (p50, p90, p99, max, mean) = if requests == 0 {
            (0, 0, 0, 0, 0.0)
        } else {
            let h = &self.latency;
            (
                h.value_at_quantile(0.50),
                h.value_at_quantile(0.90),
                h.value_at_quantile(0.99),
                h.max(),
                h.mean(),
            )
        };
        Report {
            workload: plan.workload.name().to_owned(),
            connections: plan.connections,
            duration_s: seconds,
            requests,
            rps: requests as f64 / seconds,
            latency_us: Latency {
                p50,
                p90,
                p99,
                max,
                mean: (mean * 10.0).round() / 10.0,
            },
            status,
            errors: self.errors,
            cas_retries: self.cas_retries,
        }
    }
}

/// The report for people.
pub(super) fn human(report: &Report, plan: &Plan) -> String {
    let ms = |us: u64| format!("{:.2}ms", us as f64 / 1000.0);
    let status = report
        .status
        .iter()
        .map(|(code, n)| format!("{code}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut text = format!(
        "workload     {}{}\n\
         connections  {}\n\
         duration     {:.1}s (after {:.1}s warmup)\n\
         requests     {} ({:.1}/s)\n\
         latency      p50 {}  p90 {}  p99 {}  max {}  mean {:.2}ms\n\
         status       {}\n\
         errors       {}\n",
        report.workload,
        if plan.workload == Workload::Mixed {
            format!(" ({})", plan.mix_text())
        } else {
            String::new()
        },
        report.connections,
        report.duration_s,
        plan.warmup.as_secs_f64(),
        report.requests,
        report.rps,
        ms(report.latency_us.p50),
        ms(report.latency_us.p90),
        ms(report.latency_us.p99),
        ms(report.latency_us.max),
        report.latency_us.mean / 1000.0,
        if status.is_empty() { "-" } else { &status },
        report.errors,
    );
    if plan.mix.has(Op::Cas) {
        text.push_str(&format!("cas retries  {}\n", report.cas_retries));
    }
    text
}
