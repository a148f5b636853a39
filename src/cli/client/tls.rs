//! TLS of the client subcommands: the CA and client certificate from PEM
//! files, the one HTTP client built with them, and what a TLS failure means
//! in words.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use reqwest::{Certificate, Identity};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::args::ClientArgs;
use crate::exit::Failure;
use crate::pem;

/// The TLS settings of a client run, read and checked from their PEM files.
#[derive(Default)]
pub(super) struct ClientTls {
    /// `--ca-cert`: its path and the CAs it holds, trusted instead of the built-in roots.
    pub(super) roots: Option<(PathBuf, Vec<Certificate>)>,
    /// `--client-cert` and `--client-key`: their paths and the identity made of them.
    pub(super) identity: Option<(PathBuf, PathBuf, Identity)>,
}

impl ClientTls {
    /// Reads the files named by `--ca-cert`, `--client-cert` and `--client-key`;
    /// a file that is missing or holds no usable PEM is a usage error naming it.
    pub(super) fn load(args: &ClientArgs) -> Result<Self, Failure> {
        ClientTls::from_files(
            args.ca_cert.as_deref(),
            args.client_cert.as_deref(),
            args.client_key.as_deref(),
        )
    }

    /// Reads a CA file and a client certificate and key, each optional.
    pub(super) fn from_files(
        ca_cert: Option<&Path>,
        client_cert: Option<&Path>,
        client_key: Option<&Path>,
    ) -> Result<Self, Failure> {
        let mut tls = ClientTls::default();
        if let Some(path) = ca_cert {
            let certs = pem_certificates("--ca-cert", path)?
                .iter()
                .map(|der| Certificate::from_der(der))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| file_failure("--ca-cert", path, cause(&e)))?;
            tls.roots = Some((path.to_owned(), certs));
        }
        match (client_cert, client_key) {
            (Some(cert_path), Some(key_path)) => {
                let chain = pem_certificates("--client-cert", cert_path)?;
                let key = pem::private_key(key_path)
                    .map_err(|e| file_failure("--client-key", key_path, e))?;
                // reqwest takes the identity as one PEM: rebuilt from what was
                // parsed, so other sections in the files cannot confuse it.
                let mut identity = String::new();
                for cert in &chain {
                    identity.push_str(&pem_section("CERTIFICATE", cert));
                }
                let label = match &key {
                    PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
                    PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
                    _ => "PRIVATE KEY",
                };
                identity.push_str(&pem_section(label, key.secret_der()));
                let identity = Identity::from_pem(identity.as_bytes())
                    .map_err(|e| file_failure("--client-key", key_path, cause(&e)))?;
                tls.identity = Some((cert_path.to_owned(), key_path.to_owned(), identity));
            }
            // clap already makes each of the two require the other.
            (Some(_), None) => return Err(Failure::usage("--client-cert needs --client-key")),
            (None, Some(_)) => return Err(Failure::usage("--client-key needs --client-cert")),
            (None, None) => {}
        }
        Ok(tls)
    }

    /// The failure for a client that could not be built: the TLS files are
    /// left out one at a time to name the one at fault.
    pub(super) fn blame(&self, timeout: Duration, e: reqwest::Error) -> Failure {
        let why = cause(&e);
        if let Some((cert, key, _)) = &self.identity {
            if http_client(timeout, self, false).is_ok() {
                return Failure::usage(format!(
                    "--client-key {key:?} does not fit --client-cert {cert:?}: {why}"
                ));
            }
        }
        if let Some((path, _)) = &self.roots {
            if http_client(timeout, &ClientTls::default(), false).is_ok() {
                return file_failure("--ca-cert", path, format!("not a usable CA ({why})"));
            }
        }
        Failure::error(format!("cannot set up HTTP: {why}"))
    }
}

/// The one HTTP client of a run; `with_identity: false` leaves out the client certificate.
pub(super) fn http_client(
    timeout: Duration,
    tls: &ClientTls,
    with_identity: bool,
) -> reqwest::Result<reqwest::Client> {
    client_builder(timeout, tls, with_identity)
        .timeout(timeout)
        .build()
}

/// A client for responses that never end (`watch`): no bound on the whole
/// response, only on each read, which a stream's keep-alive comments (every
/// 15 s) always beat.
pub(super) fn streaming_client(
    timeout: Duration,
    tls: &ClientTls,
) -> reqwest::Result<reqwest::Client> {
    client_builder(timeout, tls, true)
        .read_timeout(timeout.max(STREAM_SILENCE))
        .build()
}

/// Longest a stream may stay silent before `watch` reconnects: two missed
/// keep-alives and some.
const STREAM_SILENCE: Duration = Duration::from_secs(45);

pub(super) fn client_builder(
    timeout: Duration,
    tls: &ClientTls,
    with_identity: bool,
) -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(timeout)
        // A redirect would change POST to GET and carry the token elsewhere: report it instead.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("hulykvs/", env!("CARGO_PKG_VERSION")));
    if let Some((_, certs)) = &tls.roots {
        // Only the CAs given: a private service's certificate comes from its
        // own CA, and any public CA could otherwise vouch for an impostor.
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert.clone());
        }
    }
    if let (Some((_, _, identity)), true) = (&tls.identity, with_identity) {
        builder = builder.identity(identity.clone());
    }
    builder
}

/// The certificates of a PEM file named by `flag`; none is an error.
fn pem_certificates(flag: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Failure> {
    pem::certificates(path).map_err(|e| file_failure(flag, path, e))
}

/// A usage failure about the file `path` given to `flag`.
fn file_failure(flag: &str, path: &Path, why: impl std::fmt::Display) -> Failure {
    Failure::usage(format!("{flag} {path:?}: {why}"))
}

/// One PEM section of `der` under `label`.
fn pem_section(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    // Base64 is ASCII, so every 64-byte chunk is whole characters.
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The errors an error is made of, outermost first.
fn chain<'e>(
    e: &'e (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'e (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

/// What TLS said about a failed request. rustls reaches us only as text
/// inside an `io::Error`, so the text is what there is to go by.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TlsProblem {
    /// The server's certificate is signed by no trusted CA.
    UnknownIssuer,
    /// The server ended the connection with an alert (such as `CertificateRequired`).
    Alert,
}

impl TlsProblem {
    /// Reads `why`, the innermost cause of a failed request.
    pub(super) fn of(why: &str) -> Option<TlsProblem> {
        if why.starts_with("invalid peer certificate") && why.contains("UnknownIssuer") {
            Some(TlsProblem::UnknownIssuer)
        } else if why.starts_with("received fatal alert") {
            Some(TlsProblem::Alert)
        } else {
            None
        }
    }
}

/// Whether a request failed because its connection went away under it.
pub(super) fn closed_early(e: &reqwest::Error) -> bool {
    use std::io::ErrorKind::*;
    chain(e).any(|e| {
        if let Some(hyper) = e.downcast_ref::<hyper::Error>() {
            hyper.is_closed() || hyper.is_canceled() || hyper.is_incomplete_message()
        } else if let Some(io) = e.downcast_ref::<std::io::Error>() {
            matches!(
                io.kind(),
                BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof
            )
        } else {
            false
        }
    })
}

/// The innermost cause of an error, worded for one line: reqwest's own
/// messages ("error sending request") say less than the socket's.
pub(crate) fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(source) = inner.source() {
        inner = source;
    }
    if let Some(io) = inner.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind::*;
        let plain = match io.kind() {
            ConnectionRefused => Some("connection refused"),
            ConnectionReset => Some("connection reset"),
            ConnectionAborted => Some("connection aborted"),
            TimedOut => Some("timed out"),
            UnexpectedEof => Some("connection closed early"),
            _ => None,
        };
        if let Some(plain) = plain {
            return plain.to_owned();
        }
    }
    inner.to_string().replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_sections_parse_back() {
        let der: Vec<u8> = (0..=255).cycle().take(700).collect();
        let pem = pem_section("CERTIFICATE", &der);
        assert!(pem.lines().all(|l| l.len() <= 64), "{pem}");
        let parsed =
            <CertificateDer as rustls_pki_types::pem::PemObject>::from_pem_slice(pem.as_bytes())
                .unwrap();
        assert_eq!(parsed.as_ref(), der.as_slice());
    }

    #[test]
    fn tls_problems_are_told_apart() {
        let unknown = "invalid peer certificate: UnknownIssuer";
        assert_eq!(TlsProblem::of(unknown), Some(TlsProblem::UnknownIssuer));
        let alert = "received fatal alert: CertificateRequired";
        assert_eq!(TlsProblem::of(alert), Some(TlsProblem::Alert));
        assert_eq!(TlsProblem::of("invalid peer certificate: Expired"), None);
        assert_eq!(TlsProblem::of("connection refused"), None);
    }
}
