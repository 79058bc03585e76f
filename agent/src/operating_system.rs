//! The operating system the agent runs on, as heartbeats describe it to the backend's Agents
//! page. Informative only: what cannot be read is left out.

/// `Debian GNU/Linux 13 (trixie), Linux 6.12.0`.
pub(crate) fn description() -> String {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let name = release
        .lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))
        .map(|name| name.trim_matches('"').to_owned())
        .unwrap_or_else(|| std::env::consts::OS.to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{name}, {} {}", std::env::consts::OS, kernel.trim()).trim_end().to_owned()
}
