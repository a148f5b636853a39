//! Encryption at rest (SPEC §15): the keyring built from
//! `HULY_ENCRYPTION_KEYS`, values sealed with AES-256-GCM and opened again,
//! and the keyed digest that replaces a sealed value's MD5.
//!
//! Every primitive is `ring`'s. Each configured key is expanded with HKDF
//! into two keys of their own, one for AES-256-GCM and one for the
//! HMAC-SHA-256 digest, so the two uses never share key material.
//!
//! A sealed value is stored as `nonce (12 bytes) ‖ ciphertext ‖ tag (16
//! bytes)`, the nonce random for each write. The associated data binds it to
//! its row: a sealed value copied to another workspace, namespace or key
//! fails to open. Nothing here logs, and no error carries key bytes.

use std::fmt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{Salt, HKDF_SHA256};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use uuid::Uuid;

use crate::config::EncryptionKeys;

/// Bytes a sealed value has beyond its plaintext: the nonce and the tag.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;
const TAG_LEN: usize = 16;
/// Bytes of a keyed digest: the first half of an HMAC-SHA-256, as long as an
/// MD5, so tags keep their shape and their column.
pub const DIGEST_LEN: usize = 16;
/// HKDF salt: names this use of the configured keys.
const SALT: &[u8] = b"hulykvs encryption at rest";
/// Prefix of the associated data: its layout's version.
const AAD_VERSION: &[u8] = b"hulykvs/1";

/// Where a sealed value belongs: what its associated data binds it to.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub workspace: Uuid,
    pub namespace: &'a str,
    pub key: &'a str,
}

impl Row<'_> {
    /// Version, workspace bytes, namespace length and bytes, key bytes: no
    /// two rows give the same bytes.
    fn aad(&self) -> Vec<u8> {
        let mut aad =
            Vec::with_capacity(AAD_VERSION.len() + 16 + 4 + self.namespace.len() + self.key.len());
        aad.extend_from_slice(AAD_VERSION);
        aad.extend_from_slice(self.workspace.as_bytes());
        let len = u32::try_from(self.namespace.len()).unwrap_or(u32::MAX);
        aad.extend_from_slice(&len.to_be_bytes());
        aad.extend_from_slice(self.namespace.as_bytes());
        aad.extend_from_slice(self.key.as_bytes());
        aad
    }
}

/// One configured key, expanded.
struct Key {
    id: Arc<str>,
    aead: LessSafeKey,
    digest: hmac::Key,
}

impl Key {
    fn new(id: &str, secret: &[u8; 32]) -> Key {
        let prk = Salt::new(HKDF_SHA256, SALT).extract(secret);
        // Expanding 32 bytes (or an HMAC key's length) never fails: HKDF
        // refuses only more than 255 hashes of output.
        let aead = prk
            .expand(&[b"value aes-256-gcm"], &AES_256_GCM)
            .map(UnboundKey::from)
            .map(LessSafeKey::new)
            .expect("HKDF expands 32 bytes");
        let digest = prk
            .expand(&[b"digest hmac-sha-256"], hmac::HMAC_SHA256)
            .map(hmac::Key::from)
            .expect("HKDF expands one HMAC key");
        Key {
            id: Arc::from(id),
            aead,
            digest,
        }
    }
}

/// What a new value is stored as.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The stored bytes: nonce, ciphertext, tag.
    pub bytes: Bytes,
    /// The keyed digest of the plaintext: the value's entity tag.
    pub digest: [u8; DIGEST_LEN],
    /// The id of the key that sealed it.
    pub key_id: Arc<str>,
}

/// Why a stored value does not open. Names the key id, never key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("it was sealed by key {0:?}, which HULY_ENCRYPTION_KEYS does not hold")]
    UnknownKey(String),
    #[error(
        "it does not open under key {0:?}: wrong key, altered bytes, or moved from another row"
    )]
    Rejected(String),
}

/// The configured keys, the first one sealing new values (unless the
/// configuration writes plaintext), every one opening.
pub struct Keyring {
    keys: Vec<Key>,
    /// Whether new values are sealed (under `keys[0]`).
    seals: bool,
    random: SystemRandom,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .field("seals", &self.seals)
            .finish()
    }
}

impl Keyring {
    /// The keyring of `config`; `None` when it lists no key.
    pub fn new(config: &EncryptionKeys) -> Option<Keyring> {
        if config.keys.is_empty() {
            return None;
        }
        Some(Keyring {
            keys: config
                .keys
                .iter()
                .map(|(id, secret)| Key::new(id, secret))
                .collect(),
            seals: !config.write_plaintext,
            random: SystemRandom::new(),
        })
    }

    /// The key ids, first (sealing) first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| &*k.id)
    }

    /// The id of the key new values are sealed under; `None` when they are
    /// written plaintext.
    pub fn sealing_id(&self) -> Option<&Arc<str>> {
        self.seals.then(|| &self.keys[0].id)
    }

    /// Whether `id` opens with this keyring.
    pub fn holds(&self, id: &str) -> bool {
        self.keys.iter().any(|k| &*k.id == id)
    }

    /// `plaintext` sealed for `row` under the sealing key, with its keyed
    /// digest; `None` when new values are written plaintext.
    pub fn seal(&self, row: Row<'_>, plaintext: &[u8]) -> Option<Sealed> {
        let key = self.keys.first().filter(|_| self.seals)?;
        let mut nonce = [0u8; NONCE_LEN];
        // The system's random source does not fail once opened; a machine
        // where it does cannot be trusted to seal anything.
        self.random
            .fill(&mut nonce)
            .expect("the system random source answers");
        let mut bytes = Vec::with_capacity(plaintext.len() + OVERHEAD);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(plaintext);
        let tag = key
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(row.aad()),
                &mut bytes[NONCE_LEN..],
            )
            .expect("AES-GCM seals up to 64 GiB");
        bytes.extend_from_slice(tag.as_ref());
        Some(Sealed {
            bytes: bytes.into(),
            digest: digest_under(&key.digest, plaintext),
            key_id: Arc::clone(&key.id),
        })
    }

    /// The plaintext of `stored`, sealed for `row` by key `key_id`. Opens
    /// in place when `stored` is the only handle to its bytes (as a value
    /// just read from the database is), so no copy is made.
    pub fn open(&self, row: Row<'_>, key_id: &str, stored: Bytes) -> Result<Bytes, OpenError> {
        let key = self
            .keys
            .iter()
            .find(|k| &*k.id == key_id)
            .ok_or_else(|| OpenError::UnknownKey(key_id.to_owned()))?;
        let rejected = || OpenError::Rejected(key_id.to_owned());
        if stored.len() < OVERHEAD {
            return Err(rejected());
        }
        let mut bytes = stored
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[..NONCE_LEN]);
        let len = key
            .aead
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(row.aad()),
                &mut bytes[NONCE_LEN..],
            )
            .map_err(|_| rejected())?
            .len();
        Ok(bytes.freeze().slice(NONCE_LEN..NONCE_LEN + len))
    }
}

/// HMAC-SHA-256 of `value` under `key`, cut to [`DIGEST_LEN`] bytes.
fn digest_under(key: &hmac::Key, value: &[u8]) -> [u8; DIGEST_LEN] {
    let mut digest = [0u8; DIGEST_LEN];
    digest.copy_from_slice(&hmac::sign(key, value).as_ref()[..DIGEST_LEN]);
    digest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(ids: &[(&str, u8)], write_plaintext: bool) -> Keyring {
        Keyring::new(&EncryptionKeys {
            write_plaintext,
            keys: ids
                .iter()
                .map(|&(id, b)| (id.to_owned(), [b; 32]))
                .collect(),
        })
        .unwrap()
    }

    fn row(key: &str) -> Row<'_> {
        Row {
            workspace: Uuid::nil(),
            namespace: "ns",
            key,
        }
    }

    #[test]
    fn sealed_values_open_for_their_row_only() {
        let ring = keyring(&[("k1", 1)], false);
        for plaintext in [&b""[..], b"x", &[7u8; 100_000]] {
            let sealed = ring.seal(row("a"), plaintext).unwrap();
            assert_eq!(sealed.bytes.len(), plaintext.len() + OVERHEAD);
            assert_eq!(&*sealed.key_id, "k1");
            if plaintext.len() > 4 {
                assert!(!sealed
                    .bytes
                    .windows(plaintext.len())
                    .any(|w| w == plaintext));
            }
            let opened = ring.open(row("a"), "k1", sealed.bytes.clone()).unwrap();
            assert_eq!(&opened[..], plaintext);
            assert_eq!(
                ring.open(row("b"), "k1", sealed.bytes.clone()),
                Err(OpenError::Rejected("k1".into())),
                "moved to another key"
            );
            let other_ns = Row {
                namespace: "nt",
                ..row("a")
            };
            assert!(ring.open(other_ns, "k1", sealed.bytes.clone()).is_err());
        }
    }

    #[test]
    fn the_layout_of_associated_data_separates_namespace_and_key() {
        let a = Row {
            namespace: "ab",
            ..row("c")
        };
        let b = Row {
            namespace: "a",
            ..row("bc")
        };
        assert_ne!(a.aad(), b.aad());
    }

    #[test]
    fn each_write_has_its_own_nonce_and_one_digest() {
        let ring = keyring(&[("k1", 1)], false);
        let one = ring.seal(row("a"), b"same").unwrap();
        let two = ring.seal(row("a"), b"same").unwrap();
        assert_ne!(one.bytes, two.bytes);
        assert_eq!(one.digest, two.digest);
        assert_ne!(one.digest, md5::compute(b"same").0, "keyed, not MD5");
        let other = keyring(&[("k2", 2)], false)
            .seal(row("a"), b"same")
            .unwrap();
        assert_ne!(one.digest, other.digest, "each key digests differently");
    }

    #[test]
    fn every_listed_key_opens_and_unknown_or_altered_values_do_not() {
        let old = keyring(&[("k1", 1)], false);
        let sealed = old.seal(row("a"), b"secret").unwrap();
        let rotated = keyring(&[("k2", 2), ("k1", 1)], false);
        assert_eq!(
            &rotated.open(row("a"), "k1", sealed.bytes.clone()).unwrap()[..],
            b"secret"
        );
        assert_eq!(&*rotated.seal(row("a"), b"x").unwrap().key_id, "k2");
        let without = keyring(&[("k2", 2)], false);
        assert_eq!(
            without.open(row("a"), "k1", sealed.bytes.clone()),
            Err(OpenError::UnknownKey("k1".into()))
        );
        let mut altered = sealed.bytes.to_vec();
        altered[NONCE_LEN] ^= 1;
        assert!(old.open(row("a"), "k1", altered.into()).is_err());
        assert!(old
            .open(row("a"), "k1", Bytes::from_static(b"short"))
            .is_err());
        // Same id, other key bytes: refused, not garbage.
        let impostor = keyring(&[("k1", 9)], false);
        assert!(impostor.open(row("a"), "k1", sealed.bytes).is_err());
    }

    #[test]
    fn a_plaintext_first_entry_seals_nothing_but_still_opens() {
        let ring = keyring(&[("k1", 1)], true);
        assert!(ring.seal(row("a"), b"x").is_none());
        assert!(ring.sealing_id().is_none());
        let sealed = keyring(&[("k1", 1)], false).seal(row("a"), b"x").unwrap();
        assert_eq!(&ring.open(row("a"), "k1", sealed.bytes).unwrap()[..], b"x");
        assert!(ring.holds("k1") && !ring.holds("k2"));
        assert!(!format!("{ring:?}").contains("[1, 1"), "no key bytes");
    }
}
