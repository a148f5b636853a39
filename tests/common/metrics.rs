//! A server's `/metrics`, read as the tests read it: the text scraped, its
//! sample lines parsed into series (a name and its labels), and one series'
//! value found by its name and the labels it must have.

use std::collections::BTreeMap;

/// One series of the exposition: its name and labels.
pub type Series = (String, BTreeMap<String, String>);

/// The `/metrics` text at `url` (the full URL of the route).
pub async fn scrape(url: &str) -> String {
    let resp = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.text().await.expect("the /metrics text")
}

/// Parses the sample lines of a Prometheus text exposition.
pub fn samples(text: &str) -> Vec<(Series, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|l| !l.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                    (k.to_owned(), v.trim_end_matches('"').to_owned())
                })
                .collect();
            let value = value
                .parse()
                .unwrap_or_else(|e| panic!("{line:?}: the value is not a number: {e}"));
            ((name.to_owned(), labels), value)
        })
        .collect()
}

/// The value of the series `name` whose labels include `want`.
pub fn value(samples: &[(Series, f64)], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|((n, labels), _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| *v)
}

/// [`value`] read straight from a `/metrics` text.
pub fn sample(metrics: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    value(&samples(metrics), name, want)
}
