//! The agent's configuration: a TOML file, overridden by `VIGIL_AGENT_SECTION__KEY`
//! environment variables, validated before anything starts. Every mistake is reported with the
//! key that holds it (`sources[1].multiline.start: ...`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

use crate::buffer::WhenFull;
use crate::parse::{Fields, FormatName, ParseTimestampFormatError, Parser, TimestampFormat};

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
    /// Checkpoints and the disk buffer live here.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// File sources.
    #[serde(default)]
    pub sources: Vec<FileSourceConfig>,
    /// Prometheus endpoints to scrape.
    #[serde(default)]
    pub scrape: Vec<ScrapeConfig>,
    #[serde(default)]
    pub host_metrics: HostMetricsConfig,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub tail: TailConfig,
    #[serde(default)]
    pub buffer: BufferConfig,
    #[serde(default)]
    pub control: ControlConfig,
    /// What this host deploys for the agent rollout provider; without it the agent never
    /// deploys.
    #[serde(default)]
    pub deploy: Option<DeployConfig>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/vigil-agent")
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
    pub ca_file: Option<PathBuf>,
    /// Batches of one buffer sent at once. They are acknowledged in the buffer in order, so
    /// that the checkpoint never passes a batch the backend has not taken; a crash sends again
    /// at most this many.
    #[serde(default = "default_batches_in_flight")]
    pub batches_in_flight: usize,
}

impl BackendConfig {
    pub const MAX_BATCHES_IN_FLIGHT: usize = 64;

    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: Token::new(token),
            timeout_seconds: default_timeout_seconds(),
            ca_file: None,
            batches_in_flight: default_batches_in_flight(),
        }
    }
}

fn default_batches_in_flight() -> usize {
    4
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
    #[serde(default)]
    pub format: FormatName,
    /// The regex of `format = "regex"`, with named captures (`timestamp`, `level`, `message`
    /// and any others, which become attributes).
    #[serde(default)]
    pub pattern: Option<String>,
    /// Fields of structured lines that hold the timestamp, level and message (first found).
    #[serde(default = "default_timestamp_fields")]
    pub timestamp_fields: Vec<String>,
    #[serde(default = "default_level_fields")]
    pub level_fields: Vec<String>,
    #[serde(default = "default_message_fields")]
    pub message_fields: Vec<String>,
    /// `auto`, `rfc3339`, `unix`, `unix_ms`, `unix_us`, `unix_ns`, or a `time` format
    /// description such as `[year]-[month]-[day] [hour]:[minute]:[second]`.
    #[serde(default = "default_timestamp_format")]
    pub timestamp_format: String,
    #[serde(default)]
    pub multiline: Option<MultilineConfig>,
    /// Static attributes of every record (`env = "prod"`, ...).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl FileSourceConfig {
    /// A plain-text source of `service` over `include`, everything else default.
    pub fn new(name: &str, service: &str, include: Vec<String>) -> Self {
        Self {
            name: name.to_owned(),
            service: service.to_owned(),
            include,
            exclude: Vec::new(),
            format: FormatName::Plain,
            pattern: None,
            timestamp_fields: default_timestamp_fields(),
            level_fields: default_level_fields(),
            message_fields: default_message_fields(),
            timestamp_format: default_timestamp_format(),
            multiline: None,
            labels: BTreeMap::new(),
        }
    }

    /// The parser this source's settings describe.
    pub fn parser(&self) -> Result<Parser, BuildParserError> {
        let regex = match (&self.format, &self.pattern) {
            (FormatName::Regex, None) => return Err(BuildParserError::MissingPattern),
            (FormatName::Regex, Some(pattern)) => {
                let regex = regex::Regex::new(pattern).map_err(BuildParserError::InvalidPattern)?;
                if regex.capture_names().flatten().next().is_none() {
                    return Err(BuildParserError::PatternWithoutCapture);
                }
                Some(regex)
            }
            (_, Some(_)) => return Err(BuildParserError::UnexpectedPattern),
            (_, None) => None,
        };
        let timestamp_format =
            TimestampFormat::parse(&self.timestamp_format).map_err(BuildParserError::TimestampFormat)?;
        for (key, names) in [
            ("timestamp_fields", &self.timestamp_fields),
            ("level_fields", &self.level_fields),
            ("message_fields", &self.message_fields),
        ] {
            if names.is_empty() {
                return Err(BuildParserError::NoField { key });
            }
        }
        let fields = Fields {
            timestamp: self.timestamp_fields.clone(),
            level: self.level_fields.clone(),
            message: self.message_fields.clone(),
        };
        Ok(Parser::new(self.format.clone(), regex, fields, timestamp_format))
    }
}

/// A file source's format settings that describe no parser. The message starts with the key at
/// fault, so that validation can prefix it with the source's (`sources[0].pattern: ...`), and
/// holds the cause's text: validation reports the message alone, so the cause is not also a
/// `source`.
#[derive(Debug, thiserror::Error)]
pub enum BuildParserError {
    #[error("pattern: format \"regex\" needs a pattern")]
    MissingPattern,
    #[error("pattern: {0}")]
    InvalidPattern(regex::Error),
    #[error("pattern: the regex has no named capture (?P<name>...)")]
    PatternWithoutCapture,
    #[error("pattern: only format \"regex\" takes a pattern")]
    UnexpectedPattern,
    #[error("timestamp_format: {0}")]
    TimestampFormat(ParseTimestampFormatError),
    #[error("{key}: name at least one field")]
    NoField { key: &'static str },
}

fn default_timestamp_fields() -> Vec<String> {
    ["timestamp", "time", "ts", "@timestamp"].map(String::from).to_vec()
}

fn default_level_fields() -> Vec<String> {
    ["level", "severity", "lvl", "loglevel"].map(String::from).to_vec()
}

fn default_message_fields() -> Vec<String> {
    ["message", "msg"].map(String::from).to_vec()
}

fn default_timestamp_format() -> String {
    "auto".to_owned()
}

/// Lines that belong together (a stack trace under its first line).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// A regex matching the first line of an event; other lines join the event before them.
    pub start: String,
    /// An event is sent once no line has joined it for this long.
    #[serde(default = "default_multiline_timeout_ms")]
    pub timeout_ms: u64,
    /// An event is sent once it has this many lines.
    #[serde(default = "default_multiline_max_lines")]
    pub max_lines: usize,
}

fn default_multiline_timeout_ms() -> u64 {
    1000
}

fn default_multiline_max_lines() -> usize {
    500
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    pub name: String,
    /// The endpoint, such as `http://127.0.0.1:9100/metrics`.
    pub url: String,
    #[serde(default = "default_scrape_interval")]
    pub interval_seconds: u64,
    #[serde(default = "default_scrape_timeout")]
    pub timeout_seconds: u64,
    /// Labels added to every series (the `job` defaults to the name, `instance` to the URL's
    /// host and port).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// OpenMetrics pages must follow the format's family rules (not only its grammar).
    #[serde(default = "default_strict")]
    pub strict: bool,
}

fn default_strict() -> bool {
    true
}

impl ScrapeConfig {
    pub fn new(name: &str, url: &str) -> Self {
        Self {
            name: name.to_owned(),
            url: url.to_owned(),
            interval_seconds: default_scrape_interval(),
            timeout_seconds: default_scrape_timeout(),
            labels: BTreeMap::new(),
            strict: true,
        }
    }
}

fn default_scrape_interval() -> u64 {
    15
}

fn default_scrape_timeout() -> u64 {
    10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostMetricsConfig {
    pub enabled: bool,
    pub interval_seconds: u64,
    /// Filesystem types left out (node_exporter's list by default).
    pub exclude_fs_types: Vec<String>,
    /// Network devices left out.
    pub exclude_devices: Vec<String>,
}

impl Default for HostMetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_seconds: 15,
            exclude_fs_types: [
                "autofs",
                "binfmt_misc",
                "bpf",
                "cgroup",
                "cgroup2",
                "configfs",
                "debugfs",
                "devpts",
                "devtmpfs",
                "fusectl",
                "hugetlbfs",
                "iso9660",
                "mqueue",
                "nsfs",
                "overlay",
                "proc",
                "procfs",
                "pstore",
                "rpc_pipefs",
                "securityfs",
                "selinuxfs",
                "squashfs",
                "erofs",
                "sysfs",
                "tracefs",
                "tmpfs",
            ]
            .map(String::from)
            .to_vec(),
            exclude_devices: vec!["lo".to_owned()],
        }
    }
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
        Self { max_records: 10_000, max_bytes: 4 << 20, max_wait_ms: 500 }
    }
}

/// What happens to a line longer than `tail.max_line_bytes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LongLines {
    /// Kept up to the limit, ending with `…`; the rest is skipped.
    #[default]
    Truncate,
    /// Cut into records of at most the limit.
    Split,
}

/// Where files the agent has never seen are read from on its first start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    Beginning,
    #[default]
    End,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailConfig {
    /// How often files and globs are looked at.
    pub poll_interval_ms: u64,
    pub max_line_bytes: usize,
    pub long_lines: LongLines,
    /// Files found at the agent's first start (no checkpoint yet) are read from their
    /// beginning or only from their end; files that appear later are always read whole.
    pub start_at: StartAt,
    /// A file that left the globs (rotated away, deleted) is let go once it has not grown for
    /// this long after being read to its end.
    pub rotate_wait_ms: u64,
}

impl Default for TailConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: 250,
            max_line_bytes: 256 << 10,
            long_lines: LongLines::Truncate,
            start_at: StartAt::End,
            rotate_wait_ms: 5000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    /// The disk buffer's size, logs and metrics each.
    pub max_bytes: u64,
    pub when_full: WhenFull,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self { max_bytes: 256 << 20, when_full: WhenFull::Block }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// How often the agent reports to the backend.
    pub heartbeat_seconds: u64,
    /// Where the agent serves its own `/metrics`; empty turns it off.
    pub listen: String,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self { heartbeat_seconds: 15, listen: "127.0.0.1:9465".to_owned() }
    }
}

/// The `[deploy]` section: the one command this host runs for a rollout, fixed here. The
/// backend sends a version only; the agent runs `command` (without a shell) for a version
/// that `version_pattern` matches whole, and refuses any other.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    /// The service this host deploys; orders for another are refused.
    pub service: String,
    /// The program (an absolute path) and its arguments; `{version}` in an argument becomes
    /// the version. The version is also in the environment as `VIGIL_DEPLOY_VERSION` (with
    /// `VIGIL_DEPLOY_SERVICE`, `VIGIL_DEPLOY_ENVIRONMENT` and `VIGIL_DEPLOY_ORDER`).
    pub command: Vec<String>,
    /// A regex the whole version must match, such as `[0-9]+\.[0-9]+\.[0-9]+`.
    pub version_pattern: String,
    /// The command is killed after this long, and the deploy fails.
    #[serde(default = "default_deploy_timeout_seconds")]
    pub timeout_seconds: u64,
    /// How often the agent asks the backend for a deploy order.
    #[serde(default = "default_deploy_poll_seconds")]
    pub poll_seconds: u64,
}

/// The longest version the agent accepts, whatever its pattern.
pub const MAX_VERSION_CHARS: usize = 128;

impl DeployConfig {
    /// `version_pattern` anchored at both ends.
    pub fn version_regex(&self) -> Result<regex::Regex, regex::Error> {
        regex::Regex::new(&format!(r"\A(?:{})\z", self.version_pattern))
    }

    /// Why this host will not deploy `version` of `service`, if it will not.
    pub fn refusal(&self, pattern: &regex::Regex, service: &str, version: &str) -> Option<String> {
        if service != self.service {
            return Some(format!("this host deploys service {:?}, not {service:?}", self.service));
        }
        if version.is_empty() || version.chars().count() > MAX_VERSION_CHARS || !pattern.is_match(version) {
            return Some(format!(
                "version {:?} does not match this host's version_pattern {:?}",
                version.chars().take(MAX_VERSION_CHARS).collect::<String>(),
                self.version_pattern
            ));
        }
        None
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(format!("deploy.{message}")));
        if self.service.trim().is_empty() {
            return invalid("service: must not be empty".to_owned());
        }
        match self.command.first() {
            None => return invalid("command: name the program to run, as an absolute path".to_owned()),
            Some(program) if !Path::new(program).is_absolute() => {
                return invalid(format!(
                    "command: the program {program:?} must be an absolute path (no shell, no PATH)"
                ));
            }
            Some(_) => {}
        }
        if self.version_pattern.is_empty() {
            return invalid("version_pattern: must not be empty (say which versions this host accepts)".to_owned());
        }
        if let Err(error) = self.version_regex() {
            return invalid(format!("version_pattern: {error}"));
        }
        if self.timeout_seconds == 0 || self.poll_seconds == 0 {
            return invalid("timeout_seconds, poll_seconds: must be greater than 0".to_owned());
        }
        Ok(())
    }
}

fn default_deploy_timeout_seconds() -> u64 {
    600
}

fn default_deploy_poll_seconds() -> u64 {
    5
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl AgentConfig {
    /// A configuration with defaults everywhere but the backend and the data directory.
    pub fn new(backend: BackendConfig, data_dir: PathBuf) -> Self {
        Self {
            backend,
            host: None,
            data_dir,
            sources: Vec::new(),
            scrape: Vec::new(),
            host_metrics: HostMetricsConfig { enabled: false, ..HostMetricsConfig::default() },
            batch: BatchConfig::default(),
            tail: TailConfig::default(),
            buffer: BufferConfig::default(),
            control: ControlConfig { listen: String::new(), ..ControlConfig::default() },
            deploy: None,
        }
    }

    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        if !file.exists() {
            return Err(ConfigError::Invalid(format!("configuration file {} does not exist", file.display())));
        }
        Self::from_figment(Figment::new().merge(Toml::file(file)))
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Self = figment
            // Sections as VIGIL_AGENT_SECTION__KEY; of the top-level keys only these two (so
            // that VIGIL_AGENT_LOG, the log filter, is not taken for a key).
            .merge(
                Env::prefixed("VIGIL_AGENT_")
                    .filter(|key| key.as_str().contains("__") || key == "data_dir" || key == "host")
                    .split("__"),
            )
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        let url = &self.backend.url;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return invalid(format!("backend.url: {url:?} must start with http:// or https://"));
        }
        if self.backend.token.expose().trim().is_empty() {
            return invalid("backend.token: must not be empty".to_owned());
        }
        if self.backend.timeout_seconds == 0 {
            return invalid("backend.timeout_seconds: must be greater than 0".to_owned());
        }
        if !(1..=BackendConfig::MAX_BATCHES_IN_FLIGHT).contains(&self.backend.batches_in_flight) {
            return invalid(format!(
                "backend.batches_in_flight: {} must be between 1 and {}",
                self.backend.batches_in_flight,
                BackendConfig::MAX_BATCHES_IN_FLIGHT
            ));
        }
        if self.sources.is_empty() && self.scrape.is_empty() && !self.host_metrics.enabled && self.deploy.is_none() {
            return invalid(
                "sources: nothing to collect: add a [[sources]] or [[scrape]] entry, or host_metrics".to_owned(),
            );
        }
        if let Some(deploy) = &self.deploy {
            deploy.validate()?;
        }
        let mut names = std::collections::HashSet::new();
        for (index, source) in self.sources.iter().enumerate() {
            let key = format!("sources[{index}]");
            if source.name.is_empty() {
                return invalid(format!("{key}.name: must not be empty"));
            }
            if !names.insert(&source.name) {
                return invalid(format!("{key}.name: {:?} is used twice", source.name));
            }
            if source.service.is_empty() {
                return invalid(format!("{key}.service: must not be empty"));
            }
            if source.include.is_empty() {
                return invalid(format!("{key}.include: names no file"));
            }
            for (list, patterns) in [("include", &source.include), ("exclude", &source.exclude)] {
                for pattern in patterns {
                    if let Err(error) = glob::Pattern::new(pattern) {
                        return invalid(format!("{key}.{list}: {pattern:?} is not a glob: {error}"));
                    }
                }
            }
            if let Err(error) = source.parser() {
                return invalid(format!("{key}.{error}"));
            }
            if let Some(multiline) = &source.multiline {
                if let Err(error) = regex::Regex::new(&multiline.start) {
                    return invalid(format!("{key}.multiline.start: {error}"));
                }
                if multiline.timeout_ms == 0 || multiline.max_lines == 0 {
                    return invalid(format!("{key}.multiline: timeout_ms and max_lines must be greater than 0"));
                }
            }
        }
        for (index, scrape) in self.scrape.iter().enumerate() {
            let key = format!("scrape[{index}]");
            if scrape.name.is_empty() {
                return invalid(format!("{key}.name: must not be empty"));
            }
            if reqwest::Url::parse(&scrape.url).map_or(true, |url| !matches!(url.scheme(), "http" | "https")) {
                return invalid(format!("{key}.url: {:?} is not an http(s) URL", scrape.url));
            }
            if scrape.interval_seconds == 0 || scrape.timeout_seconds == 0 {
                return invalid(format!("{key}: interval_seconds and timeout_seconds must be greater than 0"));
            }
            if let Some(label) = scrape.labels.keys().find(|label| !vigil_proto::metrics::is_label_name(label)) {
                return invalid(format!("{key}.labels: {label:?} is not a label name"));
            }
        }
        if self.host_metrics.enabled && self.host_metrics.interval_seconds == 0 {
            return invalid("host_metrics.interval_seconds: must be greater than 0".to_owned());
        }
        if self.batch.max_records == 0 || self.batch.max_bytes == 0 {
            return invalid("batch: max_records and max_bytes must be greater than 0".to_owned());
        }
        if self.tail.poll_interval_ms == 0 || self.tail.max_line_bytes == 0 {
            return invalid("tail: poll_interval_ms and max_line_bytes must be greater than 0".to_owned());
        }
        if self.buffer.max_bytes < self.batch.max_bytes as u64 {
            return invalid("buffer.max_bytes: must hold at least one batch (batch.max_bytes)".to_owned());
        }
        if self.control.heartbeat_seconds == 0 {
            return invalid("control.heartbeat_seconds: must be greater than 0".to_owned());
        }
        if !self.control.listen.is_empty() && self.control.listen.parse::<std::net::SocketAddr>().is_err() {
            return invalid(format!("control.listen: {:?} is not an address and port", self.control.listen));
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
        AgentConfig::from_figment(Figment::new().merge(Toml::string(toml)))
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
        assert_eq!(config.batch.max_records, 10_000);
        assert_eq!(config.data_dir, Path::new("/var/lib/vigil-agent"));
        assert!(config.host_metrics.enabled);
        assert!(!format!("{config:?}").contains("vgl_secret"));
    }

    #[test]
    fn the_example_file_is_valid() {
        let example = parse(include_str!("../../config/agent.example.toml")).unwrap();
        assert_eq!(example.sources[0].include, ["/var/log/app/*.log"]);
        assert!(!example.scrape.is_empty());
    }

    /// Each mistake, and the key the message must name.
    #[test]
    fn mistakes_are_reported_with_their_key() {
        let source = |extra: &str| format!("{VALID}{extra}");
        let cases: Vec<(String, &str)> = vec![
            (VALID.replace("http://", "ftp://"), "backend.url"),
            (VALID.replace("vgl_secret", " "), "backend.token"),
            (VALID.replace("*.log", "[.log"), "sources[0].include"),
            (source("format = \"regex\""), "sources[0].pattern"),
            (source("format = \"regex\"\npattern = \"(unclosed\""), "sources[0].pattern"),
            (source("format = \"regex\"\npattern = \"no captures\""), "sources[0].pattern"),
            (source("pattern = \"(?P<a>.)\""), "sources[0].pattern"),
            (source("timestamp_format = \"[nonsense]\""), "sources[0].timestamp_format"),
            (source("level_fields = []"), "sources[0].level_fields"),
            (source("[sources.multiline]\nstart = \"(\""), "sources[0].multiline.start"),
            (source("[[sources]]\nname = \"app\"\nservice = \"b\"\ninclude = [\"/b\"]"), "sources[1].name"),
            (source("[[scrape]]\nname = \"node\"\nurl = \"localhost:9100\""), "scrape[0].url"),
            (
                source("[[scrape]]\nname = \"node\"\nurl = \"http://a/metrics\"\nlabels = { \"1bad\" = \"x\" }"),
                "scrape[0].labels",
            ),
            (source("[buffer]\nmax_bytes = 10"), "buffer.max_bytes"),
            (source("[control]\nlisten = \"nowhere\""), "control.listen"),
        ];
        for (toml, key) in cases {
            let error = parse(&toml).unwrap_err().to_string();
            assert!(error.contains(key), "{error:?} does not name {key}");
        }
        // Unknown and mistyped keys are refused by name too.
        let error = parse(&VALID.replace("include", "includes")).unwrap_err().to_string();
        assert!(error.contains("includes"), "{error}");
        let error = parse(&source("[buffer]\nwhen_full = \"explode\"")).unwrap_err().to_string();
        assert!(error.contains("explode") && error.contains("when_full"), "{error}");
    }

    const PATTERN: &str = r"'[0-9]+\.[0-9]+\.[0-9]+'";
    const COMMAND: &str = r#"["/usr/local/bin/deploy-shop", "--version", "{version}"]"#;

    fn deploy_section(service: &str, command: &str, pattern: &str, extra: &str) -> String {
        format!(
            "{VALID}\n[deploy]\nservice = \"{service}\"\ncommand = {command}\nversion_pattern = {pattern}\n{extra}\n"
        )
    }

    #[test]
    fn a_deploy_section_is_checked_field_by_field() {
        let config = parse(&deploy_section("shop", COMMAND, PATTERN, "")).unwrap();
        let deploy = config.deploy.unwrap();
        assert_eq!((deploy.timeout_seconds, deploy.poll_seconds), (600, 5));
        assert!(parse(VALID).unwrap().deploy.is_none(), "no [deploy], no deploys");
        let cases = [
            (deploy_section("shop", COMMAND, "'([0-9]+'", ""), "deploy.version_pattern"),
            (deploy_section("shop", COMMAND, "''", ""), "deploy.version_pattern"),
            (deploy_section("shop", r#"["deploy-shop"]"#, PATTERN, ""), "deploy.command"),
            (deploy_section("shop", "[]", PATTERN, ""), "deploy.command"),
            (deploy_section(" ", COMMAND, PATTERN, ""), "deploy.service"),
            (deploy_section("shop", COMMAND, PATTERN, "timeout_seconds = 0"), "deploy.timeout_seconds"),
        ];
        for (toml, key) in cases {
            let error = parse(&toml).unwrap_err().to_string();
            assert!(error.contains(key), "{error:?} does not name {key}");
        }
        let unclosed = parse(&deploy_section("shop", COMMAND, "'([0-9]+'", "")).unwrap_err().to_string();
        assert!(unclosed.contains("unclosed group"), "the regex error is shown: {unclosed}");
        let renamed = deploy_section("shop", COMMAND, PATTERN, "").replace("version_pattern", "version_regex");
        let error = parse(&renamed).unwrap_err().to_string();
        assert!(error.contains("version_regex"), "{error}");
        let missing = deploy_section("shop", COMMAND, PATTERN, "").replace("version_pattern = ", "# ");
        let error = parse(&missing).unwrap_err().to_string();
        assert!(error.contains("version_pattern"), "a command needs a pattern: {error}");
    }

    #[test]
    fn a_version_must_match_the_whole_pattern_and_the_service_must_be_this_hosts() {
        let deploy = parse(&deploy_section("shop", COMMAND, PATTERN, "")).unwrap().deploy.unwrap();
        let pattern = deploy.version_regex().unwrap();
        assert_eq!(deploy.refusal(&pattern, "shop", "1.2.3"), None);
        for bad in ["1.2", "1.2.3; rm -rf /", "v1.2.3", "1.2.3\n", " 1.2.3", "", "1.2.3.4", "x1.2.3", "1.2.3 "] {
            let refusal = deploy.refusal(&pattern, "shop", bad).unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(refusal.contains("version_pattern"), "{refusal}");
        }
        // An alternation is anchored as a whole, not only its first and last branches.
        let alternation = parse(&deploy_section("shop", COMMAND, "'1\\.0|2\\.0'", "")).unwrap().deploy.unwrap();
        let alternation_pattern = alternation.version_regex().unwrap();
        assert_eq!(alternation.refusal(&alternation_pattern, "shop", "2.0"), None);
        assert!(alternation.refusal(&alternation_pattern, "shop", "1.0; id").is_some());
        let long = format!("1.2.{}", "3".repeat(200));
        assert!(deploy.refusal(&pattern, "shop", &long).is_some(), "longer than any version");
        let other = deploy.refusal(&pattern, "billing", "1.2.3").unwrap();
        assert!(other.contains("\"shop\"") && other.contains("\"billing\""), "{other}");
    }
}
