//! The agent's configuration: a TOML file, overridden by `VIGIL_AGENT_SECTION__KEY`
//! environment variables, validated before anything starts.

use std::fmt;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

/// The backend token: its `Debug` never shows it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub backend: BackendConfig,
    /// This host's name in every record; the system host name when absent.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub sources: Vec<FileSourceConfig>,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub tail: TailConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Base URL of the backend, such as `https://vigil.example.com`.
    pub url: String,
    /// An API token of scope `ingest` (`vigil token create --scope ingest --name <host>`).
    pub token: Token,
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// PEM file of the certificate authority that signed the backend's certificate, when it is
    /// not one the system trusts. The backend's certificate is always verified.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

fn default_timeout_seconds() -> u64 {
    10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    pub name: String,
    /// The `service` of every record read from these files.
    pub service: String,
    /// Glob patterns of files to tail, such as `/var/log/app/*.log`.
    pub include: Vec<String>,
    /// Glob patterns of files to leave alone.
    #[serde(default)]
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    pub max_records: usize,
    pub max_bytes: usize,
    /// How long the first line of a batch waits for more.
    pub max_wait_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self { max_records: 5000, max_bytes: 4 << 20, max_wait_ms: 500 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailConfig {
    /// How often files and globs are looked at.
    pub poll_interval_ms: u64,
    /// Longer lines are truncated to this many bytes.
    pub max_line_bytes: usize,
}

impl Default for TailConfig {
    fn default() -> Self {
        Self { poll_interval_ms: 250, max_line_bytes: 256 << 10 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl AgentConfig {
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        if !file.exists() {
            return Err(ConfigError::Invalid(format!("configuration file {} does not exist", file.display())));
        }
        let config: Self = Figment::new()
            .merge(Toml::file(file))
            .merge(Env::prefixed("VIGIL_AGENT_").filter(|key| key.as_str().contains("__")).split("__"))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        let url = &self.backend.url;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return invalid(format!("backend.url {url:?} must start with http:// or https://"));
        }
        if self.backend.token.expose().trim().is_empty() {
            return invalid("backend.token must not be empty".to_owned());
        }
        if self.sources.is_empty() {
            return invalid("at least one [[sources]] entry is needed".to_owned());
        }
        for source in &self.sources {
            if source.name.is_empty() || source.service.is_empty() {
                return invalid("every source needs a name and a service".to_owned());
            }
            if source.include.is_empty() {
                return invalid(format!("source {:?} includes no files", source.name));
            }
            for pattern in source.include.iter().chain(&source.exclude) {
                if let Err(error) = glob::Pattern::new(pattern) {
                    return invalid(format!("source {:?}: pattern {pattern:?} is not a glob: {error}", source.name));
                }
            }
        }
        if self.batch.max_records == 0 || self.batch.max_bytes == 0 {
            return invalid("batch.max_records and batch.max_bytes must be greater than 0".to_owned());
        }
        if self.tail.poll_interval_ms == 0 || self.tail.max_line_bytes == 0 {
            return invalid("tail.poll_interval_ms and tail.max_line_bytes must be greater than 0".to_owned());
        }
        Ok(())
    }

    pub fn host(&self) -> String {
        self.host.clone().unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<AgentConfig, ConfigError> {
        let config: AgentConfig = Figment::new().merge(Toml::string(toml)).extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    const VALID: &str = r#"
        [backend]
        url = "http://127.0.0.1:8080"
        token = "vgl_secret"
        [[sources]]
        name = "app"
        service = "app"
        include = ["/var/log/app/*.log"]
    "#;

    #[test]
    fn a_minimal_config_is_valid_and_hides_its_token() {
        let config = parse(VALID).unwrap();
        assert_eq!(config.batch.max_records, 5000);
        assert!(!format!("{config:?}").contains("vgl_secret"));
    }

    #[test]
    fn the_example_file_is_valid() {
        let example = parse(include_str!("../../config/agent.example.toml")).unwrap();
        assert_eq!(example.sources[0].include, ["/var/log/app/*.log"]);
    }

    #[test]
    fn mistakes_are_named() {
        let error = parse(&VALID.replace("http://", "ftp://")).unwrap_err().to_string();
        assert!(error.contains("backend.url"), "{error}");
        let error = parse(&VALID.replace("*.log", "[.log")).unwrap_err().to_string();
        assert!(error.contains("is not a glob"), "{error}");
        assert!(matches!(parse(&VALID.replace("include", "includes")), Err(ConfigError::Load(_))));
    }
}
