//! PEM files, read the one way every TLS setting needs them: `serve`'s
//! certificate, key and client CA, a database URL's `sslcert`, `sslkey` and
//! `sslrootcert`, and the client subcommands' `--ca-cert`, `--client-cert`
//! and `--client-key`. An error says in words what is wrong with the file;
//! the caller names the setting and the path.

use std::path::Path;

use rustls::RootCertStore;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// What is wrong with a PEM file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("cannot read: {0}")]
    Read(String),
    #[error("holds no PEM certificate")]
    NoCertificate,
    #[error("holds no PEM private key (unencrypted PKCS#8, PKCS#1 or SEC1)")]
    NoKey,
    #[error("not valid PEM: {0}")]
    Invalid(String),
    #[error("not a usable CA certificate: {0}")]
    BadCa(String),
}

/// The certificates of the file at `path`, in order; none is an error.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let text = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    if certs.is_empty() {
        return Err(PemError::NoCertificate);
    }
    Ok(certs)
}

/// The (first) private key of the file at `path`.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|e| match e {
        pem::Error::NoItemsFound => PemError::NoKey,
        e => invalid(e),
    })
}

/// The CA certificates of the file at `path` as a trust store.
pub fn roots(path: &Path) -> Result<RootCertStore, PemError> {
    let mut store = RootCertStore::empty();
    for cert in certificates(path)? {
        store
            .add(cert)
            .map_err(|e| PemError::BadCa(e.to_string()))?;
    }
    Ok(store)
}

fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|e| PemError::Read(e.to_string()))
}

/// A parse error in words (the library's own show raw bytes).
fn invalid(e: pem::Error) -> PemError {
    PemError::Invalid(match e {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a malformed BEGIN line".into(),
        pem::Error::Base64Decode(_) => "bad base64".into(),
        e => e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_wrong_file_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let missing = dir.join("missing.pem");
        assert!(matches!(certificates(&missing), Err(PemError::Read(_))));
        let plain = write("plain.pem", "not pem at all\n");
        assert_eq!(certificates(&plain), Err(PemError::NoCertificate));
        assert_eq!(private_key(&plain).err(), Some(PemError::NoKey));
        let cut = write("cut.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n");
        assert!(matches!(certificates(&cut), Err(PemError::Invalid(_))));
        let bad = write(
            "bad.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        assert!(matches!(roots(&bad), Err(PemError::BadCa(_))));
    }
}
