//! `txn`: sends a transaction, `{"ops":[…]}` as the API takes it, from a
//! file or stdin, and prints the service's answer, one JSON document on one
//! line. A `412` names the ops whose condition failed and exits 4; nothing
//! was written then.

use std::path::Path;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::args::TxnArgs;
use super::service::{refused, Service};
use super::stdout_failure;
use crate::exit::{Exit, Failure};
use crate::wire::ErrorBody;

pub async fn txn(args: &TxnArgs) -> Result<(), Failure> {
    let what = "txn";
    let service = Service::new(&args.client)?;
    service.needs_v2(what, "txn")?;
    let body = read_ops(what, args.file.as_deref()).await?;
    // Checked here too, so a typo is a usage error with its position, not a 400.
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&body) {
        return Err(Failure::usage(format!("{what}: the ops are not JSON: {e}")));
    }
    let url = service.txn_url(what)?;
    let request = service
        .request(Method::POST, url)
        .header(CONTENT_TYPE, "application/json")
        .body(body);
    let response = service.send(what, request).await?;
    match response.status() {
        StatusCode::OK => {}
        StatusCode::PRECONDITION_FAILED => {
            let body = response.bytes().await.unwrap_or_default();
            let failed = serde_json::from_slice::<ErrorBody>(&body)
                .ok()
                .and_then(|e| e.failed)
                .unwrap_or_default();
            let ops: Vec<String> = failed.iter().map(usize::to_string).collect();
            return Err(Failure::new(
                Exit::PreconditionFailed,
                format!(
                    "{what}: precondition failed (ops {}); nothing was written",
                    ops.join(", ")
                ),
            ));
        }
        _ => return Err(refused(what, response, "").await),
    }
    let mut answer = response
        .bytes()
        .await
        .map_err(|e| service.transport(what, e))?
        .to_vec();
    answer.push(b'\n');
    let mut stdout = tokio::io::stdout();
    match stdout.write_all(&answer).await {
        Ok(()) => stdout.flush().await.or_else(|e| stdout_failure(what, e)),
        Err(e) => stdout_failure(what, e),
    }
}

/// The ops: the file, or stdin for `-` or no file.
async fn read_ops(what: &str, file: Option<&Path>) -> Result<Vec<u8>, Failure> {
    match file.filter(|p| *p != Path::new("-")) {
        Some(path) => tokio::fs::read(path)
            .await
            .map_err(|e| Failure::error(format!("{what}: cannot read {}: {e}", path.display()))),
        None => {
            let mut ops = Vec::new();
            tokio::io::stdin()
                .read_to_end(&mut ops)
                .await
                .map_err(|e| Failure::error(format!("{what}: cannot read stdin: {e}")))?;
            Ok(ops)
        }
    }
}
