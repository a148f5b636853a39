//! `hulykvs bench`: a load generator for a running service, in the manner of
//! redis-benchmark. It writes the keys it needs, then keeps `--connections`
//! HTTP/1.1 keep-alive connections busy, each with one request in flight, and
//! reports throughput, latency percentiles (an HDR histogram merged across
//! connections), answers by status and connection errors.
//!
//! The generator must not be what limits the figures on a small machine, so it
//! speaks hyper's connection-level client directly on one thread by default,
//! builds every path and header once, and shares value buffers between requests.
//!
//! Keys are the decimal numbers `0`..`keys`, so other tools (such as the
//! `pgbench` scripts of `scripts/bench`) can address the same rows.

use std::io::Write;

mod args;
mod load;
mod plan;
mod report;
mod watch;

pub use args::{BenchArgs, Workload};
pub use plan::{key_name, BENCH_WORKSPACE};
pub use report::{Latency, Report};

use self::plan::Plan;
use crate::exit::Failure;

/// `hulykvs bench`: validates the flags, starts its own runtime, writes the
/// keys, runs the workload and prints the report.
pub fn run(args: &BenchArgs) -> Result<(), Failure> {
    if args.workload == Workload::Watch {
        return watch::run(args);
    }
    let plan = Plan::from_args(args)?;
    let runtime = if plan.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(plan.threads)
            .enable_all()
            .build()
    }
    .map_err(|e| Failure::error(format!("cannot start the async runtime: {e}")))?;
    let report = runtime.block_on(load::execute(plan.clone()))?;
    let text = if plan.json {
        let mut json = serde_json::to_string(&report)
            .map_err(|e| Failure::error(format!("cannot write JSON: {e}")))?;
        json.push('\n');
        json
    } else {
        report::human(&report, &plan)
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::error(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}
