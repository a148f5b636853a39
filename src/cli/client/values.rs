//! `list --values`: every value of a namespace (or of a prefix), page after
//! page, one JSON object a line as the API writes each item; with `--json`,
//! one document with every item. A page is printed before the next is
//! fetched, so memory holds one page (at most 8 MiB of values) at a time,
//! unless `--json` merges them.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::args::ListArgs;
use super::service::{shown, Api, Service};
use super::{advance, fetch_page, finish, stdout_failure};
use crate::exit::Failure;
use crate::wire::ValueItem;

/// A page of a listing with values.
#[derive(Debug, Serialize, Deserialize)]
struct ValuePage {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    workspace: Option<String>,
    namespace: String,
    count: usize,
    items: Vec<ValueItem>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    cursor: Option<String>,
}

pub(super) async fn list_values(args: &ListArgs) -> Result<(), Failure> {
    let what = format!("list {} --values", shown(&args.namespace));
    let service = Service::new(&args.client)?;
    let mut out = tokio::io::BufWriter::new(tokio::io::stdout());
    let mut merged: Option<ValuePage> = None;
    let mut cursor: Option<String> = None;
    loop {
        let mut url = service.list_url(
            &what,
            &args.namespace,
            args.prefix.as_deref(),
            args.page_size,
            cursor.as_deref(),
        )?;
        url.query_pairs_mut().append_key_only("values");
        if let (Api::Legacy, Some(cursor)) = (service.api, &cursor) {
            // Key listings of the legacy API have no pages; with values a
            // page ends at 8 MiB, so its cursor goes back too.
            url.query_pairs_mut().append_pair("cursor", cursor);
        }
        let mut page: ValuePage = fetch_page(&service, &what, url).await?;
        let next = page.cursor.take();
        if !args.json {
            if let Err(e) = write_items(&mut out, &page.items).await {
                return stdout_failure(&what, e);
            }
            page.items.clear();
        }
        match &mut merged {
            Some(all) if args.json => all.items.append(&mut page.items),
            _ => merged = Some(page),
        }
        if !advance(&what, &mut cursor, next)? {
            break;
        }
    }
    let merged = merged.filter(|_| args.json).map(|mut all| {
        all.count = all.items.len();
        all
    });
    finish(&what, &mut out, merged).await
}

/// Writes one item a line.
async fn write_items<W: AsyncWrite + Unpin>(
    out: &mut W,
    items: &[ValueItem],
) -> std::io::Result<()> {
    for item in items {
        let mut line = serde_json::to_vec(item)?;
        line.push(b'\n');
        out.write_all(&line).await?;
    }
    Ok(())
}
