//! Time partitions of the log store: one tantivy index per UTC day and retention class, in
//! `<root>/<class>/<YYYY-MM-DD>/`. The class is `_all`, or the service's name when the service
//! has a retention of its own, so that retention drops whole directories.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::AllQuery;
use tantivy::schema::Schema;
use tantivy::{Executor, Index, IndexReader, IndexSettings, Order, ReloadPolicy, Searcher};
use time::{Date, format_description::FormatItem, macros::format_description};
use vigil_proto::Timestamp;

use super::schema::Layout;
use super::times::SegmentTimes;

pub const DAY_NANOS: i64 = 86_400_000_000_000;

/// The file of a partition that names the format of its index: `2` is tantivy with a sorted
/// string table as the term dictionary (cheaper to build and merge than the FST of format 1,
/// which had no such file), each stored part of a record a field of its own; `3` is format 2
/// with them packed into one ([`Layout::Packed`]). Partitions of format 2 are read and
/// written as they are; new ones are of format 3.
const FORMAT_FILE: &str = "vigil-format";
const FORMAT: &str = "3";

/// The layout of a partition of a format, for the formats this version reads and writes.
fn layout_of(format: &str) -> Option<Layout> {
    match format {
        "2" => Some(Layout::Fields),
        "3" => Some(Layout::Packed),
        _ => None,
    }
}

/// The class of services without a retention of their own.
pub const DEFAULT_CLASS: &str = "_all";
const DAY_FORMAT: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]");

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionKey {
    pub class: String,
    /// Days since 1970-01-01.
    pub day: i64,
}

impl PartitionKey {
    pub fn of(timestamp: Timestamp, class: &str) -> Self {
        Self { class: class.to_owned(), day: Self::day_of(timestamp) }
    }

    /// Days since 1970-01-01 of a time.
    pub fn day_of(timestamp: Timestamp) -> i64 {
        timestamp.as_unix_nanos().div_euclid(DAY_NANOS)
    }

    pub fn start_nanos(&self) -> i64 {
        self.day.saturating_mul(DAY_NANOS)
    }

    pub fn end_nanos(&self) -> i64 {
        self.day.saturating_add(1).saturating_mul(DAY_NANOS)
    }

    /// Whether the partition holds times in `[start, end)`.
    pub fn overlaps(&self, start: Option<Timestamp>, end: Option<Timestamp>) -> bool {
        start.is_none_or(|start| self.end_nanos() > start.as_unix_nanos())
            && end.is_none_or(|end| self.start_nanos() < end.as_unix_nanos())
    }

    pub fn directory(&self, root: &Path) -> PathBuf {
        let date = Date::from_julian_day(EPOCH_JULIAN_DAY + self.day as i32).expect("partition days are in range");
        root.join(&self.class).join(date.format(DAY_FORMAT).expect("dates format"))
    }

    fn parse(class: &str, day: &str) -> Option<Self> {
        let date = Date::parse(day, DAY_FORMAT).ok()?;
        Some(Self { class: class.to_owned(), day: i64::from(date.to_julian_day() - EPOCH_JULIAN_DAY) })
    }
}

/// The Julian day of 1970-01-01.
const EPOCH_JULIAN_DAY: i32 = 2_440_588;

/// Partitions whose readers stay open at once (each maps its segments' files); the least
/// recently searched are closed beyond it and opened again when searched.
pub const MAX_OPEN_READERS: usize = 32;

/// Bytes of documents compressed together in the doc store. A page reads each of its records
/// from a block of its own when they lie apart in time (a rare word's matches): tantivy's
/// 16 KiB blocks made decompressing them over half of such a search. 4 KiB blocks cost a
/// quarter of that for a slightly larger store. An index keeps the settings it was created
/// with.
const DOC_STORE_BLOCK_BYTES: usize = 4096;

fn index_settings() -> IndexSettings {
    IndexSettings { docstore_blocksize: DOC_STORE_BLOCK_BYTES, ..IndexSettings::default() }
}

/// A partition's reader and the columns of its segments.
struct OpenReader {
    reader: IndexReader,
    times: Arc<SegmentTimes>,
    used: u64,
}

/// The open readers of every partition, least recently used closed first.
#[derive(Default)]
struct Readers {
    open: Mutex<HashMap<PartitionKey, OpenReader>>,
    clock: AtomicU64,
}

impl Readers {
    fn searcher(&self, key: &PartitionKey, index: &Index) -> tantivy::Result<(Searcher, Arc<SegmentTimes>)> {
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        if let Some(open) = self.open.lock().expect("reader lock").get_mut(key) {
            open.used = now;
            return Ok((open.reader.searcher(), open.times.clone()));
        }
        // Opened outside the lock: it reads the index's meta and maps its segments.
        let reader: IndexReader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let searcher = reader.searcher();
        let times = Arc::new(SegmentTimes::default());
        times.refresh(&searcher)?;
        let mut open = self.open.lock().expect("reader lock");
        let entry = open.entry(key.clone()).or_insert(OpenReader { reader, times, used: now });
        let times = entry.times.clone();
        while open.len() > MAX_OPEN_READERS {
            let oldest = open.iter().filter(|(other, _)| *other != key).min_by_key(|(_, open)| open.used);
            let Some(oldest) = oldest.map(|(key, _)| key.clone()) else { break };
            // Searches holding its searcher keep their segments until they finish.
            open.remove(&oldest);
        }
        Ok((searcher, times))
    }

    /// Reloads the reader of `key` when it is open (a closed one opens at the latest commit),
    /// and brings its segments' columns up to date.
    fn reload(&self, key: &PartitionKey) -> tantivy::Result<()> {
        let open =
            self.open.lock().expect("reader lock").get(key).map(|open| (open.reader.clone(), open.times.clone()));
        let Some((reader, times)) = open else { return Ok(()) };
        reader.reload()?;
        times.refresh(&reader.searcher())
    }

    fn forget(&self, key: &PartitionKey) {
        self.open.lock().expect("reader lock").remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.lock().expect("reader lock").len()
    }
}

/// One partition's index, its reader (opened when searched), and the sequence number after
/// its last record.
#[derive(Clone)]
pub struct Partition {
    key: PartitionKey,
    pub index: Index,
    /// How its records' stored parts are laid out: new documents follow it.
    pub layout: Layout,
    readers: Arc<Readers>,
    /// One more than the highest sequence number in the partition; 0 when empty.
    pub sequence_end: Arc<AtomicU64>,
}

impl Partition {
    fn open(
        key: PartitionKey,
        directory: &Path,
        schema: Schema,
        executor: &Executor,
        readers: Arc<Readers>,
    ) -> tantivy::Result<Self> {
        let system = |error: std::io::Error| tantivy::TantivyError::SystemError(error.to_string());
        std::fs::create_dir_all(directory).map_err(system)?;
        let marker = directory.join(FORMAT_FILE);
        let path = directory;
        let directory = MmapDirectory::open(directory)?;
        // An index keeps the schema it was created with: earlier versions indexed the
        // timestamp and sequence fields as terms too; the fields are the same.
        let (mut index, layout) = if Index::exists(&directory)? {
            let format = std::fs::read_to_string(&marker).unwrap_or_default();
            let Some(layout) = layout_of(format.trim()) else {
                return Err(tantivy::TantivyError::SystemError(format!(
                    "log partition {} was written by an earlier Vigil, whose term dictionary (an FST) this \
                     one cannot read: its records stay there untouched; move the directory away to start",
                    path.display()
                )));
            };
            (Index::open(directory)?, layout)
        } else {
            std::fs::write(&marker, FORMAT).map_err(system)?;
            (Index::create(directory, schema, index_settings())?, Layout::Packed)
        };
        // Searches run a partition's segments in parallel.
        index.set_executor(executor.clone());
        // A reader just to find the last sequence; it is not kept.
        let reader: IndexReader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let top = TopDocs::with_limit(1).order_by_fast_field::<u64>(super::schema::SEQUENCE, Order::Desc);
        let last = reader.searcher().search(&AllQuery, &top)?.first().and_then(|(sequence, _)| *sequence);
        let sequence_end = Arc::new(AtomicU64::new(last.map_or(0, |last| last + 1)));
        Ok(Self { key, index, layout, readers, sequence_end })
    }

    /// A searcher of the last commit the reader loaded.
    pub fn searcher(&self) -> tantivy::Result<Searcher> {
        Ok(self.readers.searcher(&self.key, &self.index)?.0)
    }

    /// A searcher of the last commit the reader loaded, with its segments' columns.
    pub fn searcher_with_times(&self) -> tantivy::Result<(Searcher, Arc<SegmentTimes>)> {
        self.readers.searcher(&self.key, &self.index)
    }

    /// Makes the last commit visible to searches.
    pub fn reload(&self) -> tantivy::Result<()> {
        self.readers.reload(&self.key)
    }

    /// The highest sequence number committed to the partition.
    pub fn last_sequence(&self) -> Option<u64> {
        self.sequence_end.load(Ordering::Acquire).checked_sub(1)
    }

    pub fn holds_sequences_after(&self, after: Option<u64>) -> bool {
        let end = self.sequence_end.load(Ordering::Acquire);
        after.map_or(end > 0, |after| end > after.saturating_add(1))
    }
}

/// Every partition, shared by the writer (which adds and drops them) and the readers.
#[derive(Clone)]
pub struct Partitions {
    root: PathBuf,
    schema: Schema,
    /// The search threads, one per core, shared by every partition.
    executor: Executor,
    readers: Arc<Readers>,
    map: Arc<RwLock<BTreeMap<PartitionKey, Partition>>>,
}

impl Partitions {
    /// Opens every partition under `root`.
    pub fn open(root: &Path, schema: Schema) -> tantivy::Result<Self> {
        std::fs::create_dir_all(root).map_err(|error| tantivy::TantivyError::SystemError(error.to_string()))?;
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let executor = Executor::multi_thread(threads, "log-search-")?;
        let readers = Arc::new(Readers::default());
        let mut map = BTreeMap::new();
        let entries = |path: &Path| -> Vec<(String, PathBuf)> {
            std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter(|entry| entry.path().is_dir())
                .map(|entry| (entry.file_name().to_string_lossy().into_owned(), entry.path()))
                .collect()
        };
        for (class, class_path) in entries(root) {
            for (day, path) in entries(&class_path) {
                if let Some(key) = PartitionKey::parse(&class, &day) {
                    let partition = Partition::open(key.clone(), &path, schema.clone(), &executor, readers.clone())?;
                    map.insert(key, partition);
                }
            }
        }
        Ok(Self { root: root.to_owned(), schema, executor, readers, map: Arc::new(RwLock::new(map)) })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The partition of `key`, created when missing.
    pub fn get_or_create(&self, key: &PartitionKey) -> tantivy::Result<Partition> {
        if let Some(partition) = self.map.read().expect("partition lock").get(key) {
            return Ok(partition.clone());
        }
        let partition = Partition::open(
            key.clone(),
            &key.directory(&self.root),
            self.schema.clone(),
            &self.executor,
            self.readers.clone(),
        )?;
        Ok(self.map.write().expect("partition lock").entry(key.clone()).or_insert(partition).clone())
    }

    /// The partitions whose days overlap `[start, end)`.
    pub fn overlapping(&self, start: Option<Timestamp>, end: Option<Timestamp>) -> Vec<(PartitionKey, Partition)> {
        let map = self.map.read().expect("partition lock");
        map.iter()
            .filter(|(key, _)| key.overlaps(start, end))
            .map(|(key, partition)| (key.clone(), partition.clone()))
            .collect()
    }

    /// How many partitions have their reader open.
    #[cfg(test)]
    pub fn open_readers(&self) -> usize {
        self.readers.len()
    }

    pub fn all(&self) -> Vec<(PartitionKey, Partition)> {
        self.overlapping(None, None)
    }

    /// Forgets a partition and deletes its directory.
    pub fn drop_partition(&self, key: &PartitionKey) -> std::io::Result<()> {
        self.map.write().expect("partition lock").remove(key);
        self.readers.forget(key);
        let directory = key.directory(&self.root);
        match std::fs::remove_dir_all(&directory) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }
}

/// Whole days of retention, globally and per service; 0 keeps forever.
#[derive(Debug, Clone, Default)]
pub struct Retention {
    pub days: u32,
    pub days_by_service: BTreeMap<String, u32>,
}

impl Retention {
    /// The oldest timestamp a service's records may carry at `now` to be kept; `None` keeps
    /// forever.
    pub fn earliest(days: u32, now: Timestamp) -> Option<Timestamp> {
        (days > 0).then(|| now.saturating_add_nanos(-(i64::from(days) * 86_400_000_000_000)))
    }

    /// The partition class of a service's records.
    pub fn class_of<'a>(&self, service: &'a str) -> &'a str {
        if self.days_by_service.contains_key(service) { service } else { DEFAULT_CLASS }
    }

    fn days_of_class(&self, class: &str) -> u32 {
        self.days_by_service.get(class).copied().unwrap_or(self.days)
    }

    /// Whether every record a partition can hold is past its retention at `now`.
    pub fn expired(&self, key: &PartitionKey, now: Timestamp) -> bool {
        let days = self.days_of_class(&key.class);
        days > 0 && key.end_nanos() <= now.as_unix_nanos() - i64::from(days) * DAY_NANOS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_day_and_class() {
        let at: Timestamp = "2026-11-29T23:59:59.999999999Z".parse().unwrap();
        let key = PartitionKey::of(at, DEFAULT_CLASS);
        assert_eq!(key.directory(Path::new("/logs")), Path::new("/logs/_all/2026-11-29"));
        assert_eq!(PartitionKey::parse("_all", "2026-11-29"), Some(key.clone()));
        assert!(key.overlaps(Some(at), None));
        assert!(!key.overlaps(Some("2026-11-30T00:00:00Z".parse().unwrap()), None));
        assert!(!key.overlaps(None, Some("2026-11-29T00:00:00Z".parse().unwrap())));
        assert_eq!(PartitionKey::parse("_all", "not-a-day"), None);
    }

    #[test]
    fn a_partition_of_another_index_format_is_refused_and_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let (schema, _) = super::super::schema::LogFields::schema();
        let key = PartitionKey { class: DEFAULT_CLASS.to_owned(), day: 20_000 };
        let created = Partitions::open(root.path(), schema.clone()).unwrap().get_or_create(&key).unwrap();
        assert_eq!(created.index.settings().docstore_blocksize, DOC_STORE_BLOCK_BYTES);
        let directory = key.directory(root.path());
        assert_eq!(std::fs::read_to_string(directory.join(FORMAT_FILE)).unwrap(), FORMAT);
        // Reopened as it is: the same format and doc-store blocks.
        let reopened = Partitions::open(root.path(), schema.clone()).unwrap().get_or_create(&key).unwrap();
        assert_eq!(reopened.index.settings().docstore_blocksize, DOC_STORE_BLOCK_BYTES);

        // An index without the file is one an earlier version wrote, with an FST dictionary.
        std::fs::remove_file(directory.join(FORMAT_FILE)).unwrap();
        let files = std::fs::read_dir(&directory).unwrap().count();
        let error = Partitions::open(root.path(), schema).err().expect("refused");
        assert!(error.to_string().contains("was written by an earlier Vigil"), "{error}");
        assert!(error.to_string().contains(&directory.display().to_string()), "{error}");
        assert_eq!(std::fs::read_dir(&directory).unwrap().count(), files, "nothing of it is touched");
    }

    #[test]
    fn at_most_max_open_readers_stay_open() {
        let root = tempfile::tempdir().unwrap();
        let (schema, _) = super::super::schema::LogFields::schema();
        let partitions = Partitions::open(root.path(), schema).unwrap();
        let keys: Vec<_> = (0..MAX_OPEN_READERS as i64 + 8)
            .map(|day| PartitionKey { class: DEFAULT_CLASS.to_owned(), day: 20_000 + day })
            .collect();
        for key in &keys {
            let partition = partitions.get_or_create(key).unwrap();
            assert_eq!(partition.searcher().unwrap().num_docs(), 0);
        }
        assert_eq!(partitions.open_readers(), MAX_OPEN_READERS);
        // The least recently searched went; searching it again opens it.
        let first = partitions.get_or_create(&keys[0]).unwrap();
        assert!(first.searcher().is_ok());
        assert_eq!(partitions.open_readers(), MAX_OPEN_READERS);
        partitions.drop_partition(&keys[0]).unwrap();
        assert_eq!(partitions.open_readers(), MAX_OPEN_READERS - 1);
    }

    #[test]
    fn retention_is_global_or_per_service() {
        let retention = Retention { days: 7, days_by_service: BTreeMap::from([("audit".to_owned(), 365)]) };
        let now: Timestamp = "2026-11-29T12:00:00Z".parse().unwrap();
        assert_eq!(retention.class_of("audit"), "audit");
        assert_eq!(retention.class_of("api"), DEFAULT_CLASS);
        let day = |text: &str, class: &str| PartitionKey::of(text.parse().unwrap(), class);
        assert!(retention.expired(&day("2026-11-21T10:00:00Z", DEFAULT_CLASS), now));
        assert!(!retention.expired(&day("2026-11-22T10:00:00Z", DEFAULT_CLASS), now));
        assert!(!retention.expired(&day("2026-11-21T10:00:00Z", "audit"), now));
        assert!(!Retention::default().expired(&day("1970-01-01T00:00:00Z", DEFAULT_CLASS), now));
    }
}
