//! The host's own metrics from `/proc` and `/sys`, named as node_exporter names them so that
//! its dashboards and PromQL carry over: CPU (`node_cpu_seconds_total`), memory
//! (`node_memory_<Field>_bytes`), load (`node_load1/5/15`), disks (`node_disk_*`),
//! filesystems (`node_filesystem_*`), network (`node_network_*`), `node_uname_info`,
//! `node_boot_time_seconds` and a few more. Every series has `job="node"` and
//! `instance="<host>"`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio_util::sync::CancellationToken;
use vigil_proto::metrics::{SampleValue, SeriesSamples};

use crate::buffer::Buffer;
use crate::clock::{every, now_millis};
use crate::config::HostMetricsConfig;
use crate::error_chain::ErrorChain;
use crate::sources::metric_batch;
use crate::stats::AgentStats;

/// `/proc/stat` counts in USER_HZ, which Linux fixes at 100 for user space.
const USER_HZ: f64 = 100.0;
/// `/proc/diskstats` counts 512-byte sectors whatever the device's sector size.
const SECTOR_BYTES: f64 = 512.0;

/// One sample before the host's labels are added.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

fn metric(name: impl Into<String>, labels: Vec<(&'static str, String)>, value: f64) -> Metric {
    Metric { name: name.into(), labels, value }
}

pub struct HostMetrics {
    config: HostMetricsConfig,
    host: String,
    buffer: Arc<Buffer>,
    stats: Arc<AgentStats>,
}

impl HostMetrics {
    pub fn new(config: HostMetricsConfig, host: &str, buffer: Arc<Buffer>, stats: Arc<AgentStats>) -> Self {
        Self { config, host: host.to_owned(), buffer, stats }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        every(self.config.interval_seconds, &shutdown, || async {
            let config = self.config.clone();
            let host = self.host.clone();
            let series = tokio::task::spawn_blocking(move || series(&collect(Path::new("/"), &config), &host)).await;
            let Ok(series) = series else { return };
            self.stats.host_samples.fetch_add(series.len() as u64, Ordering::Relaxed);
            if let Err(error) = metric_batch::push(&self.buffer, series).await {
                tracing::error!(error = %ErrorChain(&error), "cannot buffer host metrics");
            }
        })
        .await;
    }
}

/// The samples with the host's labels, at the current time.
pub fn series(metrics: &[Metric], host: &str) -> Vec<SeriesSamples> {
    let timestamp = now_millis();
    metrics
        .iter()
        .map(|metric| {
            let mut labels: BTreeMap<String, String> =
                metric.labels.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect();
            labels.insert("__name__".to_owned(), metric.name.clone());
            labels.insert("job".to_owned(), "node".to_owned());
            labels.insert("instance".to_owned(), host.to_owned());
            SeriesSamples { labels, samples: vec![(timestamp, SampleValue(metric.value))] }
        })
        .collect()
}

/// Everything readable under `root` (`/` on a host; a copied tree in tests). A file that cannot
/// be read leaves its metrics out rather than failing the rest.
pub fn collect(root: &Path, config: &HostMetricsConfig) -> Vec<Metric> {
    let read = |path: &str| std::fs::read_to_string(root.join(path)).ok();
    let mut metrics = Vec::new();
    if let Some(text) = read("proc/stat") {
        metrics.extend(cpu(&text));
    }
    if let Some(text) = read("proc/meminfo") {
        metrics.extend(memory(&text));
    }
    if let Some(text) = read("proc/loadavg") {
        metrics.extend(load(&text));
    }
    if let Some(text) = read("proc/diskstats") {
        metrics.extend(disks(&text));
    }
    if let Some(text) = read("proc/net/dev") {
        metrics.extend(network(&text, &config.exclude_devices));
    }
    if let Some(text) = read("proc/mounts") {
        metrics.extend(filesystems(&text, &config.exclude_fs_types, root));
    }
    let kernel =
        |name: &str| read(&format!("proc/sys/kernel/{name}")).map(|text| text.trim().to_owned()).unwrap_or_default();
    metrics.push(metric(
        "node_uname_info",
        vec![
            ("sysname", kernel("ostype")),
            ("release", kernel("osrelease")),
            ("version", kernel("version")),
            ("machine", std::env::consts::ARCH.to_owned()),
            ("nodename", kernel("hostname")),
            ("domainname", kernel("domainname")),
        ],
        1.0,
    ));
    metrics.push(metric("node_time_seconds", vec![], now_millis() as f64 / 1000.0));
    metrics
}

/// `/proc/stat`: per-CPU seconds by mode, boot time, context switches, forks, processes.
pub fn cpu(text: &str) -> Vec<Metric> {
    const MODES: [&str; 8] = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"];
    let mut metrics = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(key) = fields.next() else { continue };
        let values: Vec<f64> = fields.filter_map(|field| field.parse().ok()).collect();
        match key {
            "btime" => {
                metrics.push(metric("node_boot_time_seconds", vec![], values.first().copied().unwrap_or_default()))
            }
            "ctxt" => {
                metrics.push(metric("node_context_switches_total", vec![], values.first().copied().unwrap_or_default()))
            }
            "processes" => {
                metrics.push(metric("node_forks_total", vec![], values.first().copied().unwrap_or_default()))
            }
            "procs_running" => {
                metrics.push(metric("node_procs_running", vec![], values.first().copied().unwrap_or_default()))
            }
            "procs_blocked" => {
                metrics.push(metric("node_procs_blocked", vec![], values.first().copied().unwrap_or_default()))
            }
            cpu if cpu.len() > 3 && cpu.starts_with("cpu") => {
                let index = &cpu[3..];
                for (mode, ticks) in MODES.iter().zip(&values) {
                    let labels = vec![("cpu", index.to_owned()), ("mode", (*mode).to_owned())];
                    metrics.push(metric("node_cpu_seconds_total", labels, ticks / USER_HZ));
                }
            }
            _ => {}
        }
    }
    metrics
}

/// `/proc/meminfo`: every field as `node_memory_<Field>_bytes` (`Active(anon)` →
/// `Active_anon`); fields without a unit (huge page counts) without `_bytes`.
pub fn memory(text: &str) -> Vec<Metric> {
    text.lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let mut fields = rest.split_whitespace();
            let value: f64 = fields.next()?.parse().ok()?;
            let key = key.replace('(', "_").replace(')', "");
            Some(match fields.next() {
                Some("kB") => metric(format!("node_memory_{key}_bytes"), vec![], value * 1024.0),
                _ => metric(format!("node_memory_{key}"), vec![], value),
            })
        })
        .collect()
}

/// `/proc/loadavg`.
pub fn load(text: &str) -> Vec<Metric> {
    ["node_load1", "node_load5", "node_load15"]
        .into_iter()
        .zip(text.split_whitespace())
        .filter_map(|(name, value)| Some(metric(name, vec![], value.parse().ok()?)))
        .collect()
}

/// Whether node_exporter leaves a block device out by default: RAM disks, loop devices,
/// floppies and partitions (`sda1`, `nvme0n1p1`).
fn ignored_disk(device: &str) -> bool {
    let trailing_digits = device.trim_end_matches(|character: char| character.is_ascii_digit());
    if device.starts_with("ram") || device.starts_with("zram") || device.starts_with("loop") || device.starts_with("fd")
    {
        return true;
    }
    let partition_of_letters = ["sd", "hd", "vd", "xvd"].iter().any(|prefix| {
        trailing_digits.len() > prefix.len()
            && trailing_digits.starts_with(prefix)
            && trailing_digits[prefix.len()..].chars().all(|character| character.is_ascii_lowercase())
            && trailing_digits.len() < device.len()
    });
    let nvme_partition =
        device.starts_with("nvme") && trailing_digits.ends_with('p') && trailing_digits.len() < device.len();
    partition_of_letters || nvme_partition
}

/// `/proc/diskstats`.
pub fn disks(text: &str) -> Vec<Metric> {
    let mut metrics = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 14 || ignored_disk(fields[2]) {
            continue;
        }
        let device = fields[2].to_owned();
        let number = |index: usize| fields[index].parse::<f64>().unwrap_or_default();
        let labels = || vec![("device", device.clone())];
        metrics.push(metric("node_disk_reads_completed_total", labels(), number(3)));
        metrics.push(metric("node_disk_read_bytes_total", labels(), number(5) * SECTOR_BYTES));
        metrics.push(metric("node_disk_read_time_seconds_total", labels(), number(6) / 1000.0));
        metrics.push(metric("node_disk_writes_completed_total", labels(), number(7)));
        metrics.push(metric("node_disk_written_bytes_total", labels(), number(9) * SECTOR_BYTES));
        metrics.push(metric("node_disk_write_time_seconds_total", labels(), number(10) / 1000.0));
        metrics.push(metric("node_disk_io_now", labels(), number(11)));
        metrics.push(metric("node_disk_io_time_seconds_total", labels(), number(12) / 1000.0));
    }
    metrics
}

/// `/proc/net/dev`.
pub fn network(text: &str, exclude: &[String]) -> Vec<Metric> {
    const RECEIVE: [&str; 8] = ["bytes", "packets", "errs", "drop", "fifo", "frame", "compressed", "multicast"];
    const TRANSMIT: [&str; 8] = ["bytes", "packets", "errs", "drop", "fifo", "colls", "carrier", "compressed"];
    let mut metrics = Vec::new();
    for line in text.lines().skip(2) {
        let Some((device, counters)) = line.split_once(':') else { continue };
        let device = device.trim();
        if exclude.iter().any(|excluded| excluded == device) {
            continue;
        }
        let values: Vec<f64> = counters.split_whitespace().filter_map(|value| value.parse().ok()).collect();
        if values.len() < 16 {
            continue;
        }
        for (index, name) in RECEIVE.iter().enumerate() {
            metrics.push(metric(
                format!("node_network_receive_{name}_total"),
                vec![("device", device.to_owned())],
                values[index],
            ));
        }
        for (index, name) in TRANSMIT.iter().enumerate() {
            metrics.push(metric(
                format!("node_network_transmit_{name}_total"),
                vec![("device", device.to_owned())],
                values[8 + index],
            ));
        }
    }
    metrics
}

/// `/proc/mounts` and `statvfs` of each mount point.
pub fn filesystems(text: &str, exclude_types: &[String], root: &Path) -> Vec<Metric> {
    let mut metrics = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [device, mountpoint, fstype, options, ..] = fields[..] else { continue };
        if exclude_types.iter().any(|excluded| excluded == fstype) || !seen.insert(mountpoint.to_owned()) {
            continue;
        }
        // Octal escapes of /proc/mounts (`\040` is a space).
        let mountpoint = unescape_octal(mountpoint);
        let path = root.join(mountpoint.trim_start_matches('/'));
        let Ok(stat) = rustix::fs::statvfs(&path) else { continue };
        let labels =
            || vec![("device", device.to_owned()), ("fstype", fstype.to_owned()), ("mountpoint", mountpoint.clone())];
        let block = stat.f_frsize as f64;
        metrics.push(metric("node_filesystem_size_bytes", labels(), stat.f_blocks as f64 * block));
        metrics.push(metric("node_filesystem_free_bytes", labels(), stat.f_bfree as f64 * block));
        metrics.push(metric("node_filesystem_avail_bytes", labels(), stat.f_bavail as f64 * block));
        metrics.push(metric("node_filesystem_files", labels(), stat.f_files as f64));
        metrics.push(metric("node_filesystem_files_free", labels(), stat.f_ffree as f64));
        let readonly = options.split(',').any(|option| option == "ro");
        metrics.push(metric("node_filesystem_readonly", labels(), if readonly { 1.0 } else { 0.0 }));
    }
    metrics
}

fn unescape_octal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(index) = rest.find('\\') {
        out.push_str(&rest[..index]);
        match rest.get(index + 1..index + 4).and_then(|digits| u8::from_str_radix(digits, 8).ok()) {
            Some(byte) => {
                out.push(byte as char);
                rest = &rest[index + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[index + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(metrics: &'a [Metric], name: &str, labels: &[(&str, &str)]) -> Option<&'a Metric> {
        metrics.iter().find(|metric| {
            metric.name == name
                && labels.iter().all(|(key, value)| metric.labels.iter().any(|(k, v)| k == key && v == value))
        })
    }

    #[test]
    fn proc_files_become_node_exporter_series() {
        let stat = "cpu  100 0 50 1000 5 0 2 0 0 0\ncpu0 60 0 30 500 3 0 1 0 0 0\nctxt 12345\nbtime 1795939200\nprocesses 999\nprocs_running 3\n";
        let metrics = cpu(stat);
        assert_eq!(find(&metrics, "node_cpu_seconds_total", &[("cpu", "0"), ("mode", "idle")]).unwrap().value, 5.0);
        assert!(find(&metrics, "node_cpu_seconds_total", &[("cpu", "")]).is_none(), "the total line is not a CPU");
        assert_eq!(find(&metrics, "node_boot_time_seconds", &[]).unwrap().value, 1_795_939_200.0);

        let meminfo =
            "MemTotal:       16384 kB\nMemAvailable:    8192 kB\nActive(anon):      4 kB\nHugePages_Total:       0\n";
        let metrics = memory(meminfo);
        assert_eq!(find(&metrics, "node_memory_MemTotal_bytes", &[]).unwrap().value, 16_777_216.0);
        assert!(find(&metrics, "node_memory_Active_anon_bytes", &[]).is_some());
        assert!(find(&metrics, "node_memory_HugePages_Total", &[]).is_some());

        let metrics = load("0.52 0.38 0.30 2/301 12345\n");
        assert_eq!(metrics.iter().map(|metric| metric.value).collect::<Vec<_>>(), [0.52, 0.38, 0.30]);

        let diskstats = "   8       0 sda 100 0 2048 10 200 0 4096 20 0 30 30 0 0 0 0\n   8       1 sda1 1 0 8 0 0 0 0 0 0 0 0 0 0 0 0\n   7       0 loop0 1 0 8 0 0 0 0 0 0 0 0 0 0 0 0\n 259 0 nvme0n1 5 0 10 0 0 0 0 0 0 0 0\n 259 1 nvme0n1p1 5 0 10 0 0 0 0 0 0 0 0\n";
        let metrics = disks(diskstats);
        assert_eq!(find(&metrics, "node_disk_read_bytes_total", &[("device", "sda")]).unwrap().value, 2048.0 * 512.0);
        assert_eq!(
            find(&metrics, "node_disk_written_bytes_total", &[("device", "sda")]).unwrap().value,
            4096.0 * 512.0
        );
        let devices: std::collections::BTreeSet<&str> =
            metrics.iter().map(|metric| metric.labels[0].1.as_str()).collect();
        assert_eq!(devices.into_iter().collect::<Vec<_>>(), ["nvme0n1", "sda"]);

        let dev = "Inter-|   Receive                            |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n  eth0: 5000 40 1 0 0 0 0 0 7000 50 0 0 0 0 0 0\n";
        let metrics = network(dev, &["lo".to_owned()]);
        assert_eq!(find(&metrics, "node_network_receive_bytes_total", &[("device", "eth0")]).unwrap().value, 5000.0);
        assert_eq!(find(&metrics, "node_network_transmit_bytes_total", &[("device", "eth0")]).unwrap().value, 7000.0);
        assert!(find(&metrics, "node_network_receive_bytes_total", &[("device", "lo")]).is_none());
        assert_eq!(unescape_octal(r"/mnt/with\040space"), "/mnt/with space");
    }

    #[test]
    fn this_host_reports_what_the_hosts_dashboard_needs() {
        let metrics = collect(Path::new("/"), &HostMetricsConfig::default());
        for name in [
            "node_cpu_seconds_total",
            "node_memory_MemAvailable_bytes",
            "node_memory_MemTotal_bytes",
            "node_load1",
            "node_load15",
            "node_filesystem_avail_bytes",
            "node_filesystem_size_bytes",
            "node_network_receive_bytes_total",
            "node_uname_info",
        ] {
            assert!(metrics.iter().any(|metric| metric.name == name), "no {name} on this host");
        }
        let series = series(&metrics, "web-1");
        assert!(series.iter().all(|series| series.labels["instance"] == "web-1" && series.labels["job"] == "node"));
    }
}
