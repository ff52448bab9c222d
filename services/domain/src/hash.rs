//! Media hashes: the only trace of reported media dijkwacht ever keeps.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgorithm {
    Md5,
    Sha1,
    Sha256,
    /// Meta's perceptual hash: 256 bits, compared by Hamming distance.
    Pdq,
}

impl HashAlgorithm {
    /// Length of the value in hexadecimal digits.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Md5 => 32,
            Self::Sha1 => 40,
            Self::Sha256 | Self::Pdq => 64,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "md5",
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Pdq => "pdq",
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hash of one piece of media at a location. Values are lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct MediaHash {
    pub algorithm: HashAlgorithm,
    pub value: String,
    /// PDQ quality, 0–100; absent for exact hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("a {algorithm} hash is {expected} hexadecimal digits, got {actual} characters")]
    WrongLength {
        algorithm: HashAlgorithm,
        expected: usize,
        actual: usize,
    },
    #[error("a hash value is hexadecimal (0-9, a-f)")]
    NotHex,
    #[error("quality is 0 to 100, got {0}")]
    QualityOutOfRange(u8),
    #[error("quality applies to pdq hashes only")]
    QualityWithoutPdq,
}

impl HashError {
    /// The field of a hash the error is about: `value` or `quality`.
    pub fn field(&self) -> &'static str {
        match self {
            HashError::QualityOutOfRange(_) | HashError::QualityWithoutPdq => "quality",
            HashError::WrongLength { .. } | HashError::NotHex => "value",
        }
    }
}

impl MediaHash {
    /// `algorithm:value`: how an analyst's decision on this hash is looked up again.
    pub fn key(&self) -> String {
        format!("{}:{}", self.algorithm, self.value)
    }

    /// Checks a value against its algorithm and normalises it to lower case.
    pub fn parse(algorithm: HashAlgorithm, value: &str, quality: Option<u8>) -> Result<Self, HashError> {
        Self::check(algorithm, value, quality)?;
        Ok(Self {
            algorithm,
            value: value.to_ascii_lowercase(),
            quality,
        })
    }

    /// Whether a value and quality are well formed for the algorithm, without keeping them.
    pub fn check(algorithm: HashAlgorithm, value: &str, quality: Option<u8>) -> Result<(), HashError> {
        if value.len() != algorithm.hex_len() {
            return Err(HashError::WrongLength {
                algorithm,
                expected: algorithm.hex_len(),
                actual: value.chars().count(),
            });
        }
        if !value.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(HashError::NotHex);
        }
        match (algorithm, quality) {
            (HashAlgorithm::Pdq, Some(q)) if q > 100 => Err(HashError::QualityOutOfRange(q)),
            (HashAlgorithm::Pdq, _) | (_, None) => Ok(()),
            (_, Some(_)) => Err(HashError::QualityWithoutPdq),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_per_algorithm_and_lower_cased() {
        let sha = MediaHash::parse(HashAlgorithm::Sha256, &"AB".repeat(32), None).unwrap();
        assert_eq!(sha.value, "ab".repeat(32));
        assert!(matches!(
            MediaHash::parse(HashAlgorithm::Md5, &"a".repeat(40), None),
            Err(HashError::WrongLength { expected: 32, .. })
        ));
        assert_eq!(
            MediaHash::parse(HashAlgorithm::Sha1, &"g".repeat(40), None),
            Err(HashError::NotHex)
        );
        assert_eq!(
            MediaHash::parse(HashAlgorithm::Pdq, &"0".repeat(64), Some(101)),
            Err(HashError::QualityOutOfRange(101))
        );
        assert_eq!(
            MediaHash::parse(HashAlgorithm::Sha256, &"0".repeat(64), Some(90)),
            Err(HashError::QualityWithoutPdq)
        );
        assert!(MediaHash::parse(HashAlgorithm::Pdq, &"0".repeat(64), Some(100)).is_ok());
    }
}
