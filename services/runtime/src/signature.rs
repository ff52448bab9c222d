//! Signed messages between us and a platform, both ways: `Dijkwacht-Timestamp` (Unix
//! seconds) and `Dijkwacht-Signature: sha256=HEX`, the HMAC-SHA256 of `{timestamp}.{body}`.
//! The timestamp inside the signature bounds a replay to the window the receiver allows.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "Dijkwacht-Signature";
pub const TIMESTAMP_HEADER: &str = "Dijkwacht-Timestamp";
pub const KEY_ID_HEADER: &str = "Dijkwacht-Key-Id";

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The signature header's value for `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("{TIMESTAMP_HEADER} is missing or not Unix seconds")]
    NoTimestamp,
    #[error("the timestamp is {skew_secs} s from our clock, more than the {window_secs} s allowed: sign again with the current time")]
    Stale { skew_secs: i64, window_secs: i64 },
    #[error("{SIGNATURE_HEADER} is missing or not sha256=HEX")]
    NoSignature,
    #[error("the signature matches none of the secrets on record")]
    Mismatch,
}

/// Checks a signed request against any of `secrets` (two while one is rotated out), in
/// constant time per secret.
pub fn verify<S: AsRef<[u8]>>(
    secrets: &[S],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
    window_secs: i64,
) -> Result<(), SignatureError> {
    let timestamp: i64 = timestamp
        .and_then(|value| value.trim().parse().ok())
        .ok_or(SignatureError::NoTimestamp)?;
    let skew_secs = (now - timestamp).abs();
    if skew_secs > window_secs {
        return Err(SignatureError::Stale { skew_secs, window_secs });
    }
    let signature = signature
        .and_then(|value| value.trim().strip_prefix("sha256="))
        .and_then(|value| hex::decode(value).ok())
        .ok_or(SignatureError::NoSignature)?;
    let matches = secrets
        .iter()
        .any(|secret| mac(secret.as_ref(), timestamp, body).verify_slice(&signature).is_ok());
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_either_secret_within_the_window_only() {
        let signed = sign(b"new", 1_000, b"{}");
        let secrets = ["old", "new"];
        assert_eq!(verify(&secrets, Some("1000"), Some(&signed), b"{}", 1_200, 300), Ok(()));
        assert_eq!(
            verify(&secrets, Some("1000"), Some(&signed), b"{ }", 1_200, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&["old"], Some("1000"), Some(&signed), b"{}", 1_200, 300),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            verify(&secrets, Some("1000"), Some(&signed), b"{}", 1_400, 300),
            Err(SignatureError::Stale { skew_secs: 400, .. })
        ));
        assert_eq!(
            verify(&secrets, None, Some(&signed), b"{}", 1_000, 300),
            Err(SignatureError::NoTimestamp)
        );
    }
}
