//! A `postgres://` URL as libpq reads it: what tokio-postgres takes, and the
//! TLS parameters it does not know (`sslmode=verify-ca|verify-full`,
//! `sslrootcert`, `sslcert`, `sslkey`), which [`super::tls`] acts on. Also the
//! rule for schema names, which are quoted into SQL.

use std::path::PathBuf;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// TLS when the server offers it, else plaintext (libpq's default; `allow`
    /// is read as this too: both end up connected in the same cases).
    Prefer,
    /// TLS or no connection.
    Require,
    /// TLS, and the server's certificate chains to a trusted root.
    VerifyCa,
    /// `VerifyCa`, and the certificate names the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The mode `sslmode=` names; without one, `verify-full` for
    /// `sslrootcert=system` (`system`) and `prefer` otherwise, as in libpq.
    fn parse(mode: Option<&str>, system: bool) -> Result<SslMode, String> {
        Ok(match mode {
            None if system => SslMode::VerifyFull,
            None => SslMode::Prefer,
            Some("disable") => SslMode::Disable,
            Some("allow" | "prefer") => SslMode::Prefer,
            Some("require") => SslMode::Require,
            Some("verify-ca") => SslMode::VerifyCa,
            Some("verify-full") => SslMode::VerifyFull,
            Some(other) => {
                return Err(format!(
                    "sslmode={other} is not one of disable, allow, prefer, require, \
                     verify-ca, verify-full"
                ))
            }
        })
    }
}

/// What the server's certificate is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// The Mozilla roots compiled into the binary (webpki-roots); also what
    /// libpq's `sslrootcert=system` asks for.
    Builtin,
    /// The PEM file of `sslrootcert=PATH`.
    File(PathBuf),
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Nothing: encryption against eavesdroppers only.
    Nothing,
    /// The chain up to a trusted root, but not the host name.
    Chain,
    /// The chain and the host name.
    ChainAndName,
}

/// The TLS settings of a PostgreSQL URL, with libpq's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTls {
    pub mode: SslMode,
    /// `None`: `sslrootcert` not given.
    pub root_certs: Option<RootCerts>,
    /// `sslcert` and `sslkey`: a client certificate chain and its key, PEM.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl PgTls {
    /// What libpq checks in this mode: `require` and `prefer` verify the chain
    /// when `sslrootcert` is given, and nothing otherwise.
    pub fn verify(&self) -> Verify {
        match self.mode {
            SslMode::Disable => Verify::Nothing,
            SslMode::Prefer | SslMode::Require if self.root_certs.is_none() => Verify::Nothing,
            SslMode::Prefer | SslMode::Require | SslMode::VerifyCa => Verify::Chain,
            SslMode::VerifyFull => Verify::ChainAndName,
        }
    }

    /// The roots to verify against: `sslrootcert`, else the built-in ones.
    pub fn roots(&self) -> RootCerts {
        self.root_certs.clone().unwrap_or(RootCerts::Builtin)
    }
}

/// A `postgres://` URL split into what tokio-postgres reads and the TLS
/// parameters of libpq it does not know (`sslmode=verify-ca|verify-full`,
/// `sslrootcert`, `sslcert`, `sslkey`).
#[derive(Debug, Clone)]
pub struct PgUrl {
    /// Everything but TLS; its `ssl_mode` is set from [`PgUrl::tls`].
    pub config: tokio_postgres::Config,
    pub tls: PgTls,
}

impl PgUrl {
    /// Parses a URL; the error says what is wrong, never quoting a password.
    pub fn parse(url: &str) -> Result<PgUrl, String> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let (mut mode, mut root, mut cert, mut key) = (None, None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |text: &str| {
                percent_encoding::percent_decode_str(text)
                    .decode_utf8()
                    .map(|t| t.into_owned())
                    .map_err(|_| format!("parameter {raw_key} is not UTF-8"))
            };
            let name = decode(raw_key)?;
            let slot = match name.as_str() {
                "sslmode" => &mut mode,
                "sslrootcert" => &mut root,
                "sslcert" => &mut cert,
                "sslkey" => &mut key,
                _ => {
                    kept.push(pair);
                    continue;
                }
            };
            // As in libpq, the last one wins and an empty value means unset.
            *slot = Some(decode(raw_value)?).filter(|v| !v.is_empty());
        }
        let root_certs = root.map(|path| match path.as_str() {
            "system" => RootCerts::Builtin,
            _ => RootCerts::File(PathBuf::from(path)),
        });
        let system = root_certs == Some(RootCerts::Builtin);
        let mode = SslMode::parse(mode.as_deref(), system)?;
        if system && mode != SslMode::VerifyFull {
            // libpq refuses this too: the public roots vouch for names, not for servers.
            return Err("sslrootcert=system needs sslmode=verify-full".to_owned());
        }
        let client_cert = match (cert, key) {
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (None, None) => None,
            (Some(_), None) => return Err("sslcert needs sslkey".to_owned()),
            (None, Some(_)) => return Err("sslkey needs sslcert".to_owned()),
        };
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e| format!("not a usable PostgreSQL URL: {e}"))?;
        config.ssl_mode(match mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            // tokio-postgres knows no verify-*: the connector does the checking.
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        // tokio-postgres names the TLS peer after `host`; with only `hostaddr`
        // given, libpq checks the certificate against that address.
        if config.get_hosts().is_empty() {
            for addr in config.get_hostaddrs().to_vec() {
                config.host(addr.to_string());
            }
        }
        Ok(PgUrl {
            config,
            tls: PgTls {
                mode,
                root_certs,
                client_cert,
            },
        })
    }
}

/// Checks a schema name: a plain identifier, so it can be quoted into SQL safely.
pub fn check_schema(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') || name.len() > 63 {
        return Err(format!(
            "{name:?} is not a plain identifier (letters, digits, _; at most 63)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_modes_read_as_libpq_does() {
        let tls = |url: &str| PgUrl::parse(url).map(|u| (u.tls.mode, u.tls.verify()));
        let base = "postgres://u@db:5432/x";
        assert_eq!(tls(base), Ok((SslMode::Prefer, Verify::Nothing)));
        for (mode, want, verify) in [
            ("disable", SslMode::Disable, Verify::Nothing),
            ("allow", SslMode::Prefer, Verify::Nothing),
            ("prefer", SslMode::Prefer, Verify::Nothing),
            ("require", SslMode::Require, Verify::Nothing),
            ("verify-ca", SslMode::VerifyCa, Verify::Chain),
            ("verify-full", SslMode::VerifyFull, Verify::ChainAndName),
        ] {
            assert_eq!(tls(&format!("{base}?sslmode={mode}")), Ok((want, verify)));
        }
        // With a root file, require checks the chain, as libpq does.
        assert_eq!(
            tls(&format!("{base}?sslmode=require&sslrootcert=/ca.pem")),
            Ok((SslMode::Require, Verify::Chain))
        );
        assert_eq!(
            tls(&format!("{base}?sslrootcert=system")),
            Ok((SslMode::VerifyFull, Verify::ChainAndName))
        );
        assert!(tls(&format!("{base}?sslrootcert=system&sslmode=require")).is_err());
        assert!(tls(&format!("{base}?sslmode=strict")).is_err());
    }

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let url = PgUrl::parse(
            "postgresql://u:pw@db:26257/x?sslmode=verify-full&application_name=kv\
             &sslrootcert=%2Fetc%2Fca%20dir%2Froot.crt&sslcert=/c.pem&sslkey=/k.pem",
        )
        .unwrap();
        assert_eq!(
            url.tls.root_certs,
            Some(RootCerts::File("/etc/ca dir/root.crt".into()))
        );
        assert_eq!(
            url.tls.client_cert,
            Some(("/c.pem".into(), "/k.pem".into()))
        );
        assert_eq!(url.config.get_application_name(), Some("kv"));
        assert_eq!(url.config.get_dbname(), Some("x"));
        assert_eq!(
            url.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert_eq!(
            PgUrl::parse("postgres://db/x").unwrap().tls.roots(),
            RootCerts::Builtin
        );
        assert!(PgUrl::parse("postgres://db/x?sslcert=/c.pem").is_err());
        assert!(PgUrl::parse("postgres://db/x?sslkey=/k.pem").is_err());
        assert!(PgUrl::parse("postgres://db/x?sslcrl=/crl.pem").is_err());
        let only_addr = PgUrl::parse("postgres://u@/x?hostaddr=127.0.0.1").unwrap();
        assert_eq!(
            only_addr.config.get_hosts(),
            [tokio_postgres::config::Host::Tcp("127.0.0.1".to_owned())]
        );
    }

    #[test]
    fn schema_names() {
        assert!(check_schema("hulykvs").is_ok());
        assert!(check_schema("_a1").is_ok());
        for bad in ["", "1a", "a-b", "a\"b", "a b"] {
            assert!(check_schema(bad).is_err(), "{bad:?}");
        }
    }
}
