//! Credentials named in the registry and read where they live (the environment or a file)
//! when they are needed: never written into the registry, an event or a log line.

use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;

/// Where a secret is kept: `env:NAME` or `file:PATH`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

impl TryFrom<String> for SecretRef {
    type Error = String;

    fn try_from(named: String) -> Result<Self, Self::Error> {
        if let Some(name) = named.strip_prefix("env:").filter(|name| !name.is_empty()) {
            Ok(Self::Env(name.to_owned()))
        } else if let Some(path) = named.strip_prefix("file:").filter(|path| !path.is_empty()) {
            Ok(Self::File(path.into()))
        } else {
            // Never echo the value: it may be the secret itself, written in by mistake.
            Err("a secret is named, never written: use env:NAME or file:PATH".to_owned())
        }
    }
}

/// The name only; the value never reaches a formatter.
impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "env:{name}"),
            Self::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl SecretRef {
    /// The secret's current value (read each time, so a rotated secret is picked up).
    pub fn read(&self) -> Result<String, String> {
        let value = match self {
            Self::Env(name) => {
                std::env::var(name).map_err(|_| format!("the environment variable {name} is not set"))?
            }
            Self::File(path) => std::fs::read_to_string(path)
                .map_err(|error| format!("reading the secret file {}: {error}", path.display()))?,
        };
        let value = value.trim().to_owned();
        if value.is_empty() {
            return Err(format!("the secret {self} is empty"));
        }
        Ok(value)
    }
}
