//! Errors and warnings of loading and translating a Compose project.

use crate::yaml::Pos;
use std::path::PathBuf;

/// Why a Compose project could not be loaded or translated. Every error about the file's
/// content names the file, line and column.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No Compose file was given and none of the default names exists.
    #[error(
        "no Compose file found in {dir} (looked for compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml); pass one with -f"
    )]
    NoFile {
        /// The directory searched.
        dir: PathBuf,
    },
    /// The file is not valid YAML.
    #[error("{pos}: invalid YAML: {message}")]
    Yaml {
        /// Where.
        pos: Pos,
        /// What the parser said.
        message: String,
    },
    /// The file is YAML but not valid Compose (wrong type, missing field, bad value).
    #[error("{pos}: {message}")]
    Invalid {
        /// Where.
        pos: Pos,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A `.env` or `env_file` line is malformed.
    #[error("{path}:{line}: {message}")]
    EnvFile {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    pub(crate) fn invalid(pos: &Pos, message: impl Into<String>) -> Error {
        Error::Invalid {
            pos: pos.clone(),
            message: message.into(),
        }
    }
}

/// Something in the file that cannot be honoured on a cluster, or was changed to fit
/// one. Never silent, never fatal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The service it concerns (None for top-level keys).
    pub service: Option<String>,
    /// The key, e.g. `build` or `deploy.resources.limits.pids`.
    pub key: String,
    /// What happens instead.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.service {
            Some(s) => write!(f, "service {s:?}: `{}` {}", self.key, self.message),
            None => write!(f, "`{}` {}", self.key, self.message),
        }
    }
}
