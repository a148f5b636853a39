//! Tokens: the claims Huly's services mint, HS256 verification on the server
//! side and minting for `hulykvs token` and the client subcommands.

use std::collections::BTreeMap;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod cache;

/// The account that may use every workspace.
pub const SYSTEM_ACCOUNT: Uuid = Uuid::from_u128(0x1749089e_22e6_48de_af4e_165e18fbd2f9);

/// The claims of a Huly token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account the token speaks for.
    pub account: Uuid,
    /// The workspace the token grants, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<Uuid>,
    /// Free-form strings, such as `service`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
    /// Expiry, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Not valid before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

impl Claims {
    /// Claims of the system account for a tool of ours (`extra.service = service`),
    /// expiring `lifetime` from now.
    pub fn system(service: &str, lifetime: std::time::Duration) -> Self {
        Claims {
            account: SYSTEM_ACCOUNT,
            workspace: None,
            extra: BTreeMap::from([("service".to_owned(), service.to_owned())]),
            exp: Some(now_secs() + lifetime.as_secs()),
            nbf: None,
        }
    }

    /// May this token touch `workspace` through API v2?
    pub fn may_use(&self, workspace: Uuid) -> bool {
        self.account == SYSTEM_ACCOUNT || self.workspace == Some(workspace)
    }
}

/// Why a token was refused; the text is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing Authorization header")]
    Missing,
    #[error("Authorization header is not \"Bearer <token>\"")]
    Malformed,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Which configured secret verified a token (SPEC §22).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretUsed {
    /// `HULY_TOKEN_SECRET`.
    Current,
    /// `HULY_TOKEN_SECRET_PREVIOUS`, still accepted during a rotation.
    Previous,
}

/// A token that was accepted: its claims and the secret that verified it.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub claims: Arc<Claims>,
    pub secret: SecretUsed,
}

/// Checks HS256 tokens against the current secret and, during a rotation,
/// the previous one. The cache of verified tokens belongs to one verifier,
/// built from the secrets configured, so it never answers for a secret that
/// is no longer configured.
pub struct Verifier {
    current: DecodingKey,
    previous: Option<DecodingKey>,
    validation: Validation,
    /// Tokens verified before, with their claims and the secret that verified them.
    verified: cache::Verified,
}

impl Verifier {
    /// A verifier for tokens signed with `secret`.
    pub fn new(secret: &str) -> Self {
        Verifier::rotating(secret, None)
    }

    /// A verifier for tokens signed with `secret` or, when given, `previous`;
    /// nothing is signed with `previous`.
    pub fn rotating(secret: &str, previous: Option<&str>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // Service tokens carry no `exp`; `exp` and `nbf` are enforced when present.
        validation.required_spec_claims.clear();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 0;
        validation.validate_aud = false;
        Verifier {
            current: DecodingKey::from_secret(secret.as_bytes()),
            previous: previous.map(|p| DecodingKey::from_secret(p.as_bytes())),
            validation,
            verified: cache::Verified::default(),
        }
    }

    /// Verifies an `Authorization` header value; a token verified before
    /// is not verified again, only its `exp` and `nbf` (see [`cache`]).
    pub fn verify_header(&self, header: Option<&[u8]>) -> Result<Accepted, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let header = std::str::from_utf8(header).map_err(|_| AuthError::Malformed)?;
        let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Malformed);
        }
        let token = token.trim();
        if let Some(known) = self.verified.get(token, now_secs()) {
            return known;
        }
        let (claims, secret) = self.verify_with(token)?;
        let accepted = Accepted {
            claims: Arc::new(claims),
            secret,
        };
        self.verified.insert(token, accepted.clone());
        Ok(accepted)
    }

    /// Verifies a bare token against the current secret, then the previous.
    pub fn verify_with(&self, token: &str) -> Result<(Claims, SecretUsed), AuthError> {
        match self.decode(token, &self.current) {
            Err(AuthError::Invalid(why)) if why == BAD_SIGNATURE => match &self.previous {
                Some(previous) => Ok((self.decode(token, previous)?, SecretUsed::Previous)),
                None => Err(AuthError::Invalid(why)),
            },
            other => other.map(|claims| (claims, SecretUsed::Current)),
        }
    }

    /// Verifies a bare token.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_with(token).map(|(claims, _)| claims)
    }

    fn decode(&self, token: &str, key: &DecodingKey) -> Result<Claims, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidSignature => AuthError::Invalid(BAD_SIGNATURE.into()),
                ErrorKind::InvalidAlgorithm => {
                    AuthError::Invalid("only HS256 tokens are accepted".into())
                }
                ErrorKind::Json(_) => {
                    AuthError::Invalid("claims do not have the expected shape".into())
                }
                _ => AuthError::Invalid("malformed token".into()),
            })
    }
}

/// What a token signed with no configured secret is refused with.
const BAD_SIGNATURE: &str = "bad signature";

/// Signs `claims` with HS256.
pub fn mint(claims: &Claims, secret: &str) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn claims() -> Claims {
        Claims {
            account: Uuid::new_v4(),
            workspace: Some(Uuid::new_v4()),
            extra: BTreeMap::from([("service".to_owned(), "calendar".to_owned())]),
            exp: None,
            nbf: None,
        }
    }

    fn b64(json: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn minted_tokens_verify() {
        let c = claims();
        let token = mint(&c, "s3").unwrap();
        assert_eq!(Verifier::new("s3").verify(&token), Ok(c));
        let header = format!("Bearer {token}");
        assert!(Verifier::new("s3")
            .verify_header(Some(header.as_bytes()))
            .is_ok());
    }

    #[test]
    fn during_a_rotation_both_secrets_verify_and_say_which() {
        let c = claims();
        let new = mint(&c, "new").unwrap();
        let old = mint(&c, "old").unwrap();
        let other = mint(&c, "other").unwrap();
        let rotating = Verifier::rotating("new", Some("old"));
        let bearer = |t: &str| format!("Bearer {t}");
        for _ in 0..2 {
            // The second round answers from the cache: the same secret is named.
            let a = rotating
                .verify_header(Some(bearer(&new).as_bytes()))
                .unwrap();
            assert_eq!((a.claims.as_ref(), a.secret), (&c, SecretUsed::Current));
            let a = rotating
                .verify_header(Some(bearer(&old).as_bytes()))
                .unwrap();
            assert_eq!((a.claims.as_ref(), a.secret), (&c, SecretUsed::Previous));
        }
        assert!(matches!(
            rotating.verify_header(Some(bearer(&other).as_bytes())),
            Err(AuthError::Invalid(_))
        ));
        // PREVIOUS dropped: a verifier of the new secret alone refuses the old token.
        let after = Verifier::new("new");
        assert!(after.verify_header(Some(bearer(&new).as_bytes())).is_ok());
        assert!(matches!(
            after.verify_header(Some(bearer(&old).as_bytes())),
            Err(AuthError::Invalid(_))
        ));
        // An expired token of the previous secret is expired, not badly signed.
        let mut expired = claims();
        expired.exp = Some(now_secs() - 10);
        let token = mint(&expired, "old").unwrap();
        assert_eq!(rotating.verify(&token), Err(AuthError::Expired));
    }

    #[test]
    fn wrong_secret_and_expiry_are_refused() {
        let mut c = claims();
        let token = mint(&c, "s3").unwrap();
        assert!(matches!(
            Verifier::new("other").verify(&token),
            Err(AuthError::Invalid(_))
        ));
        c.exp = Some(now_secs() - 10);
        let token = mint(&c, "s3").unwrap();
        assert_eq!(Verifier::new("s3").verify(&token), Err(AuthError::Expired));
        c.exp = None;
        c.nbf = Some(now_secs() + 3600);
        let token = mint(&c, "s3").unwrap();
        assert_eq!(
            Verifier::new("s3").verify(&token),
            Err(AuthError::NotYetValid)
        );
    }

    #[test]
    fn alg_none_and_bad_shapes_are_refused() {
        let v = Verifier::new("s3");
        let body = b64(&format!("{{\"account\":\"{}\"}}", SYSTEM_ACCOUNT));
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), body);
        assert!(v.verify(&none).is_err());
        let wrong_types = mint_raw(r#"{"account":42}"#);
        assert!(v.verify(&wrong_types).is_err());
        let wrong_extra = mint_raw(&format!(
            "{{\"account\":\"{SYSTEM_ACCOUNT}\",\"extra\":{{\"a\":1}}}}"
        ));
        assert!(v.verify(&wrong_extra).is_err());
        for header in ["", "Bearer", "Basic abc", "Bearer x.y.z"] {
            assert!(
                v.verify_header(Some(header.as_bytes())).is_err(),
                "{header:?}"
            );
        }
        assert_eq!(v.verify_header(None), Err(AuthError::Missing));
    }

    fn mint_raw(claims_json: &str) -> String {
        use hmac_sign::sign;
        let head = b64(r#"{"alg":"HS256","typ":"JWT"}"#);
        let body = b64(claims_json);
        let input = format!("{head}.{body}");
        format!("{input}.{}", sign(&input, "s3"))
    }

    /// Signs arbitrary claims JSON, which [`mint`] cannot produce.
    mod hmac_sign {
        pub fn sign(input: &str, secret: &str) -> String {
            let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
            jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
                .unwrap()
        }
    }

    #[test]
    fn workspace_rules() {
        let c = claims();
        assert!(c.may_use(c.workspace.unwrap()));
        assert!(!c.may_use(Uuid::new_v4()));
        let system = Claims {
            account: SYSTEM_ACCOUNT,
            workspace: None,
            extra: BTreeMap::new(),
            exp: None,
            nbf: None,
        };
        assert!(system.may_use(Uuid::new_v4()));
    }
}
