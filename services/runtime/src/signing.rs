//! Ed25519 signatures over what we hand to regulators (dossiers, checkpoints of the event
//! log), in the formats stock OpenSSL 3 reads: the private key as PKCS#8 PEM, the public key
//! as SubjectPublicKeyInfo PEM, a signature as its 64 raw bytes, so anyone verifies with
//! `openssl pkeyutl -verify -pubin -inkey signing-key.pem -rawin -in FILE -sigfile FILE.sig`.
//! A key is named by its id, the first 16 hex digits of the SHA-256 of its public key; every
//! key ever used is kept in `signing_keys`, so what an old key signed still verifies after
//! the key was rotated.

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::path::Path;

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32 key bytes follow.
const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
/// The DER prefix of an Ed25519 private key in PKCS#8 v1 (RFC 8410), as OpenSSL writes it:
/// the 32-byte seed follows. ring generates v2, which also carries the public key; the seed
/// sits at the same place in both.
const PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("reading the signing key {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("the signing key {path} is not an Ed25519 private key in PKCS#8 PEM ({reason})")]
    NotAKey { path: String, reason: String },
    #[error("writing the signing key {path}: {error}")]
    Write { path: String, error: std::io::Error },
    #[error("{0}")]
    Crypto(String),
}

/// A private signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.id())
    }
}

impl SigningKey {
    /// A new key, written to `path` (PKCS#8 PEM, readable by its owner only); refuses to
    /// overwrite a key.
    pub fn generate(path: &Path) -> Result<Self, SigningError> {
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| SigningError::Crypto("the system's random source failed".into()))?;
        let seed = &document.as_ref()[PKCS8_V1_PREFIX.len()..PKCS8_V1_PREFIX.len() + 32];
        let mut v1 = PKCS8_V1_PREFIX.to_vec();
        v1.extend_from_slice(seed);
        let pem = pem("PRIVATE KEY", &v1);
        let write = |error| SigningError::Write {
            path: path.display().to_string(),
            error,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(write)?;
        std::io::Write::write_all(&mut file, pem.as_bytes()).map_err(write)?;
        let key = Self::from_pkcs8(&v1, path)?;
        // Written as what the generated pair is, or not at all.
        let generated =
            Ed25519KeyPair::from_pkcs8(document.as_ref()).map_err(|e| SigningError::Crypto(e.to_string()))?;
        if generated.public_key().as_ref() != key.pair.public_key().as_ref() {
            return Err(SigningError::Crypto("the written key is not the generated one".into()));
        }
        Ok(key)
    }

    /// The key in `path`: PKCS#8 PEM as `generate` writes it, or as
    /// `openssl genpkey -algorithm ed25519` does.
    pub fn load(path: &Path) -> Result<Self, SigningError> {
        let text = std::fs::read_to_string(path).map_err(|error| SigningError::Read {
            path: path.display().to_string(),
            error,
        })?;
        let der = unpem("PRIVATE KEY", &text).map_err(|reason| SigningError::NotAKey {
            path: path.display().to_string(),
            reason,
        })?;
        Self::from_pkcs8(&der, path)
    }

    fn from_pkcs8(der: &[u8], path: &Path) -> Result<Self, SigningError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|error| SigningError::NotAKey {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        Ok(Self { pair })
    }

    pub fn id(&self) -> String {
        key_id(self.pair.public_key().as_ref())
    }

    /// The public key as SubjectPublicKeyInfo PEM.
    pub fn public_pem(&self) -> String {
        public_pem(self.pair.public_key().as_ref())
    }

    /// The 64-byte signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }

    /// Records the public key, so what it signs verifies after it is rotated out.
    pub async fn register(&self, pool: &PgPool, now: chrono::DateTime<chrono::Utc>) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO signing_keys (key_id, public_key_pem, first_used_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key_id) DO NOTHING",
        )
        .bind(self.id())
        .bind(self.public_pem())
        .bind(now)
        .execute(pool)
        .await?;
        Ok(())
    }
}

/// The id of a public key: the first 16 hex digits of its SHA-256.
pub fn key_id(public_key: &[u8]) -> String {
    hex::encode(&Sha256::digest(public_key)[..8])
}

pub fn public_pem(public_key: &[u8]) -> String {
    let mut der = SPKI_PREFIX.to_vec();
    der.extend_from_slice(public_key);
    pem("PUBLIC KEY", &der)
}

/// The 32 key bytes of an Ed25519 public key in SubjectPublicKeyInfo PEM.
pub fn public_key_of(pem_text: &str) -> Result<Vec<u8>, String> {
    let der = unpem("PUBLIC KEY", pem_text)?;
    match der.strip_prefix(&SPKI_PREFIX[..]) {
        Some(key) if key.len() == 32 => Ok(key.to_vec()),
        _ => Err("not an Ed25519 public key".into()),
    }
}

/// Whether `signature` is the signature of `message` by `public_key`.
pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII"))
        .collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

fn unpem(label: &str, text: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin).ok_or_else(|| format!("no {begin} line"))? + begin.len();
    let stop = text[start..].find(&end).ok_or_else(|| format!("no {end} line"))? + start;
    let body: String = text[start..stop].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|error| format!("its base64 does not decode: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_loads_again_signs_and_its_public_key_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        let key = SigningKey::generate(&path).unwrap();
        let loaded = SigningKey::load(&path).unwrap();
        assert_eq!(loaded.id(), key.id());
        let signature = loaded.sign(b"MANIFEST");
        let public = public_key_of(&key.public_pem()).unwrap();
        assert!(verify(&public, b"MANIFEST", &signature));
        assert!(!verify(&public, b"MANIFESt", &signature));
        assert!(
            SigningKey::generate(&path).is_err(),
            "an existing key is never overwritten"
        );
    }
}
