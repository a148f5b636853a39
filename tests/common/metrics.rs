//! A server's `/metrics`, read as the tests read it: the text scraped, and
//! one series' value found by its name and labels as the text spells them.

/// The `/metrics` text at `url` (the full URL of the route).
pub async fn scrape(url: &str) -> String {
    let resp = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.text().await.expect("the /metrics text")
}

/// The value of `series` (a metric's name with its labels, as in
/// `hulykvs_db_batch_size_count{db_operation_name="get"}`) in a `/metrics`
/// text; `None` when no line holds it. A value that is not a number fails
/// the test.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        Some(
            value
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("{series}: {value:?} is not a number: {e}")),
        )
    })
}
