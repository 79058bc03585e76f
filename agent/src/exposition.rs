//! Reading Prometheus scrape pages: the text format 0.0.4 and OpenMetrics 1.0.
//!
//! [`parse`] reads the grammar of either format into [`Entry`]s (metadata and samples):
//! OpenMetrics exactly (single spaces, `# EOF` last, no blank lines, no free comments), the
//! text format as Prometheus reads it (free whitespace, comments, optional commas).
//! [`validate_openmetrics`] then applies OpenMetrics' rules on families: one block of
//! metadata before the samples, no clashing names, contiguous groups with timestamps that do
//! not go backwards, counter-like values neither negative nor NaN, histogram buckets ordered
//! and ending with `+Inf` consistent with `_count`, `_sum` and `_gsum` rules, valid `le` and
//! `quantile` labels, states of a stateset and info values, exemplars only where allowed.
//! [`series`] gives the series Prometheus would store: `_created` samples of counters,
//! summaries and histograms are start times, not series; `le` and `quantile` are normalised.

use std::collections::{HashMap, HashSet};

/// Label pairs in the order written (or sorted, as a group's key).
type Labels = Vec<(String, String)>;

/// Which format a page is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    OpenMetrics,
}

impl Format {
    /// The format a `Content-Type` announces (the text format when it says nothing useful).
    pub fn of_content_type(content_type: &str) -> Self {
        if content_type.trim_start().starts_with("application/openmetrics-text") {
            Self::OpenMetrics
        } else {
            Self::Text
        }
    }
}

/// What the scraper asks for, preferring OpenMetrics as Prometheus does.
pub const ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.1";

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// In the order written.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Seconds since the Unix epoch.
    pub timestamp: Option<f64>,
    pub exemplar: Option<Exemplar>,
}

impl Sample {
    pub fn timestamp_ms(&self) -> Option<i64> {
        self.timestamp.map(|seconds| (seconds * 1000.0).round() as i64)
    }

    fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(label, _)| label == name).map(|(_, value)| value.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Help { name: String, text: String },
    Type { name: String, kind: String },
    Unit { name: String, unit: String },
    Sample(Sample),
}

/// What is wrong with a page, and on which line (1-based; 0 for the page as a whole).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

fn error<T>(line: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError { line, message: message.into() })
}

pub fn is_metric_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == ':')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_' || character == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_')
}

/// A float as both formats write it: decimal, exponent, `NaN`, `Inf` with a sign; never hex or
/// underscores.
fn parse_float(token: &str) -> Option<f64> {
    if token.is_empty() || token.contains(['_', 'x', 'X', 'p', 'P']) || token.trim() != token {
        return None;
    }
    token.parse().ok()
}

/// Reads a page. Invalid UTF-8 anywhere refuses the page.
pub fn parse(page: &[u8], format: Format) -> Result<Vec<Entry>, ParseError> {
    let text = std::str::from_utf8(page)
        .map_err(|error| ParseError { line: 0, message: format!("invalid UTF-8: {error}") })?;
    match format {
        Format::OpenMetrics => parse_openmetrics(text),
        Format::Text => parse_text(text),
    }
}

fn parse_openmetrics(text: &str) -> Result<Vec<Entry>, ParseError> {
    let body = match text.strip_suffix("# EOF\n").or_else(|| text.strip_suffix("# EOF")) {
        Some(body) if body.is_empty() || body.ends_with('\n') => body,
        _ => return error(0, "the page does not end with # EOF"),
    };
    let mut entries = Vec::new();
    for (index, line) in body.split_terminator('\n').enumerate() {
        let number = index + 1;
        if line == "# EOF" {
            return error(number, "data after # EOF");
        }
        if let Some(rest) = line.strip_prefix('#') {
            entries.push(openmetrics_metadata(rest, number)?);
        } else {
            entries.push(Entry::Sample(openmetrics_sample(line, number)?));
        }
    }
    Ok(entries)
}

const OPENMETRICS_TYPES: [&str; 8] =
    ["counter", "gauge", "histogram", "gaugehistogram", "stateset", "info", "summary", "unknown"];

fn openmetrics_metadata(rest: &str, line: usize) -> Result<Entry, ParseError> {
    let Some(rest) = rest.strip_prefix(' ') else {
        return error(line, "a comment must be # HELP, # TYPE, # UNIT or # EOF");
    };
    let (keyword, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
        return error(line, format!("unknown metadata {keyword:?}"));
    }
    let Some((name, value)) = rest.split_once(' ') else {
        return error(line, format!("# {keyword} needs a metric name and a text"));
    };
    if !is_metric_name(name) {
        return error(line, format!("{name:?} is not a metric name"));
    }
    let name = name.to_owned();
    match keyword {
        "HELP" => Ok(Entry::Help { name, text: unescape(value, false) }),
        "TYPE" if OPENMETRICS_TYPES.contains(&value) => Ok(Entry::Type { name, kind: value.to_owned() }),
        "TYPE" => error(line, format!("invalid metric type {value:?}")),
        _ if value.is_empty() || name.ends_with(&format!("_{value}")) => {
            Ok(Entry::Unit { name, unit: value.to_owned() })
        }
        _ => error(line, format!("unit {value:?} is not a suffix of metric {name:?}")),
    }
}

/// `\\`, `\"` (not in the text format's HELP) and `\n` are escapes; any other backslash stays
/// as written.
fn unescape(text: &str, text_format_help: bool) -> String {
    if !text.contains('\\') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        if character == '\\' {
            match characters.peek() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('"') if !text_format_help => out.push('"'),
                _ => {
                    out.push('\\');
                    continue;
                }
            }
            characters.next();
        } else {
            out.push(character);
        }
    }
    out
}

/// A cursor over one line.
struct Cursor<'a> {
    rest: &'a str,
    line: usize,
}

impl<'a> Cursor<'a> {
    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let end = self.rest.find(|character: char| !keep(character)).unwrap_or(self.rest.len());
        let (taken, rest) = self.rest.split_at(end);
        self.rest = rest;
        taken
    }

    fn eat(&mut self, prefix: &str) -> bool {
        match self.rest.strip_prefix(prefix) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn skip_blanks(&mut self) {
        self.take_while(|character| character == ' ' || character == '\t');
    }

    fn metric_name(&mut self) -> Result<String, ParseError> {
        let name =
            self.take_while(|character| character.is_ascii_alphanumeric() || character == '_' || character == ':');
        if !is_metric_name(name) {
            return error(self.line, "expected a metric name");
        }
        Ok(name.to_owned())
    }

    /// `"value"` with its escapes, the quotes eaten.
    fn quoted(&mut self) -> Result<String, ParseError> {
        if !self.eat("\"") {
            return error(self.line, "expected a label value in double quotes");
        }
        let mut escaped = false;
        for (index, character) in self.rest.char_indices() {
            match character {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    let value = unescape(&self.rest[..index], false);
                    self.rest = &self.rest[index + 1..];
                    return Ok(value);
                }
                _ => escaped = false,
            }
        }
        error(self.line, "a label value is not closed")
    }

    /// `{a="1",b="2"}` as OpenMetrics writes it (no spaces, no trailing comma), or leniently as
    /// the text format allows (spaces anywhere, trailing and missing commas).
    fn labels(&mut self, lenient: bool) -> Result<Vec<(String, String)>, ParseError> {
        let mut labels: Vec<(String, String)> = Vec::new();
        if !self.eat("{") {
            return Ok(labels);
        }
        let blanks = |cursor: &mut Self| {
            if lenient {
                cursor.skip_blanks();
            }
        };
        blanks(self);
        if self.eat("}") {
            return Ok(labels);
        }
        loop {
            blanks(self);
            let name = self.take_while(|character| character.is_ascii_alphanumeric() || character == '_');
            if !is_label_name(name) {
                return error(self.line, "expected a label name");
            }
            blanks(self);
            if !self.eat("=") {
                return error(self.line, format!("expected = after label {name:?}"));
            }
            blanks(self);
            let value = self.quoted()?;
            if labels.iter().any(|(known, _)| known == name) {
                return error(self.line, format!("label {name:?} is repeated"));
            }
            labels.push((name.to_owned(), value));
            blanks(self);
            if self.eat(",") {
                blanks(self);
                if lenient && self.eat("}") {
                    return Ok(labels);
                }
                continue;
            }
            if self.eat("}") {
                return Ok(labels);
            }
            if !lenient {
                return error(self.line, "expected , or } after a label");
            }
        }
    }

    /// A token up to the next space (or the end).
    fn token(&mut self, separators: &[char]) -> &'a str {
        self.take_while(|character| !separators.contains(&character))
    }
}

fn openmetrics_sample(line: &str, number: usize) -> Result<Sample, ParseError> {
    let mut cursor = Cursor { rest: line, line: number };
    let name = cursor.metric_name()?;
    let labels = cursor.labels(false)?;
    if !cursor.eat(" ") {
        return error(number, "expected one space and a value");
    }
    let value =
        parse_float(cursor.token(&[' '])).ok_or(ParseError { line: number, message: "invalid value".into() })?;
    let mut timestamp = None;
    let mut exemplar = None;
    if cursor.eat(" ") {
        if !cursor.rest.starts_with('#') {
            timestamp = Some(openmetrics_timestamp(cursor.token(&[' ']), number)?);
            if !cursor.rest.is_empty() && !cursor.eat(" ") {
                return error(number, "unexpected text after the timestamp");
            }
        }
        if !cursor.rest.is_empty() {
            if !cursor.eat("# ") || !cursor.rest.starts_with('{') {
                return error(number, "expected an exemplar: # {labels} value [timestamp]");
            }
            let labels = cursor.labels(false)?;
            let runes: usize = labels.iter().map(|(name, value)| name.chars().count() + value.chars().count()).sum();
            if runes > 128 {
                return error(number, "exemplar labels longer than 128 characters");
            }
            if !cursor.eat(" ") {
                return error(number, "expected a value after the exemplar labels");
            }
            let value = parse_float(cursor.token(&[' ']))
                .ok_or(ParseError { line: number, message: "invalid exemplar value".into() })?;
            let timestamp =
                if cursor.eat(" ") { Some(openmetrics_timestamp(cursor.token(&[' ']), number)?) } else { None };
            exemplar = Some(Exemplar { labels, value, timestamp });
        }
    }
    if !cursor.rest.is_empty() {
        return error(number, "unexpected text at the end of the line");
    }
    Ok(Sample { name, labels, value, timestamp, exemplar })
}

fn openmetrics_timestamp(token: &str, line: usize) -> Result<f64, ParseError> {
    match parse_float(token) {
        Some(seconds) if seconds.is_finite() => Ok(seconds),
        _ => error(line, format!("invalid timestamp {token:?}")),
    }
}

const TEXT_TYPES: [&str; 5] = ["counter", "gauge", "histogram", "summary", "untyped"];

fn parse_text(text: &str) -> Result<Vec<Entry>, ParseError> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let mut cursor = Cursor { rest: line, line: number };
        cursor.skip_blanks();
        if cursor.rest.is_empty() {
            continue;
        }
        if cursor.eat("#") {
            cursor.skip_blanks();
            let keyword = cursor.take_while(|character| character.is_ascii_alphabetic());
            let separated = cursor.rest.is_empty() || cursor.rest.starts_with([' ', '\t']);
            if !(matches!(keyword, "HELP" | "TYPE") && separated) {
                continue; // a comment
            }
            cursor.skip_blanks();
            let name = cursor.metric_name()?;
            if !cursor.rest.is_empty() && !cursor.rest.starts_with([' ', '\t']) {
                return error(number, "expected a metric name");
            }
            cursor.skip_blanks();
            if keyword == "HELP" {
                entries.push(Entry::Help { name, text: unescape(cursor.rest, true) });
            } else {
                let kind = cursor.rest.trim_end_matches([' ', '\t']);
                if !TEXT_TYPES.contains(&kind) {
                    return error(number, format!("invalid metric type {kind:?}"));
                }
                entries.push(Entry::Type { name, kind: kind.to_owned() });
            }
            continue;
        }
        let name = cursor.metric_name()?;
        let before_blanks = cursor.rest;
        cursor.skip_blanks();
        if !cursor.rest.starts_with('{') {
            cursor.rest = before_blanks;
        }
        let labels = cursor.labels(true)?;
        if !cursor.rest.starts_with([' ', '\t']) {
            return error(number, "expected a value after the metric");
        }
        cursor.skip_blanks();
        let value = parse_float(cursor.token(&[' ', '\t']))
            .ok_or(ParseError { line: number, message: "invalid value".into() })?;
        cursor.skip_blanks();
        let mut timestamp = None;
        if !cursor.rest.is_empty() {
            let token = cursor.token(&[' ', '\t']);
            let milliseconds: i64 = token
                .parse()
                .map_err(|_| ParseError { line: number, message: format!("invalid timestamp {token:?}") })?;
            timestamp = Some(milliseconds as f64 / 1000.0);
            cursor.skip_blanks();
            if !cursor.rest.is_empty() {
                return error(number, "unexpected text after the timestamp");
            }
        }
        entries.push(Entry::Sample(Sample { name, labels, value, timestamp, exemplar: None }));
    }
    Ok(entries)
}

/// The sample names a family of `kind` named `name` may have.
fn suffixes(kind: &str) -> &'static [&'static str] {
    match kind {
        "counter" => &["_total", "_created"],
        "summary" => &["", "_sum", "_count", "_created"],
        "histogram" => &["_bucket", "_sum", "_count", "_created"],
        "gaugehistogram" => &["_bucket", "_gsum", "_gcount"],
        "info" => &["_info"],
        _ => &[""],
    }
}

/// A family being checked.
struct Family {
    name: String,
    kind: Option<String>,
    help: bool,
    unit: Option<String>,
    samples: Vec<(usize, Sample)>,
}

/// OpenMetrics' rules over the families of a parsed page.
pub fn validate_openmetrics(entries: &[Entry]) -> Result<(), ParseError> {
    let mut claimed: HashSet<String> = HashSet::new();
    let mut family: Option<Family> = None;
    let mut finish = |family: Option<Family>| -> Result<(), ParseError> {
        match family {
            Some(family) => check_family(family, &mut claimed),
            None => Ok(()),
        }
    };
    for (index, entry) in entries.iter().enumerate() {
        let line = index + 1;
        match entry {
            Entry::Help { name, .. } | Entry::Type { name, .. } | Entry::Unit { name, .. } => {
                let same = family.as_ref().is_some_and(|current| &current.name == name && current.samples.is_empty());
                if !same {
                    finish(family.take())?;
                    family =
                        Some(Family { name: name.clone(), kind: None, help: false, unit: None, samples: Vec::new() });
                }
                let current = family.as_mut().expect("a family");
                match entry {
                    Entry::Help { .. } if current.help => return error(line, format!("second HELP for {name}")),
                    Entry::Help { .. } => current.help = true,
                    Entry::Type { .. } if current.kind.is_some() => {
                        return error(line, format!("second TYPE for {name}"));
                    }
                    Entry::Type { kind, .. } => current.kind = Some(kind.clone()),
                    Entry::Unit { .. } if current.unit.is_some() => {
                        return error(line, format!("second UNIT for {name}"));
                    }
                    Entry::Unit { unit, .. } => current.unit = Some(unit.clone()),
                    Entry::Sample(_) => unreachable!(),
                }
            }
            Entry::Sample(sample) => {
                let belongs = family.as_ref().is_some_and(|current| {
                    let kind = current.kind.as_deref().unwrap_or("unknown");
                    suffixes(kind).iter().any(|suffix| sample.name == format!("{}{suffix}", current.name))
                });
                if !belongs {
                    finish(family.take())?;
                    family = Some(Family {
                        name: sample.name.clone(),
                        kind: None,
                        help: false,
                        unit: None,
                        samples: Vec::new(),
                    });
                }
                family.as_mut().expect("a family").samples.push((line, sample.clone()));
            }
        }
    }
    finish(family)
}

fn check_family(family: Family, claimed: &mut HashSet<String>) -> Result<(), ParseError> {
    let Family { name, kind, unit, samples, .. } = family;
    let first_line = samples.first().map_or(0, |(line, _)| *line);
    let kind = kind.unwrap_or_else(|| "unknown".to_owned());
    let mut names: HashSet<&str> = suffixes(&kind).iter().copied().collect();
    names.insert("");
    for suffix in names {
        if !claimed.insert(format!("{name}{suffix}")) {
            return error(first_line, format!("clashing name {name}{suffix}"));
        }
    }
    if let Some(unit) = unit.filter(|unit| !unit.is_empty())
        && (kind == "info" || kind == "stateset")
    {
        return error(first_line, format!("a {kind} cannot have a unit ({unit})"));
    }
    let mut seen_groups: HashSet<Labels> = HashSet::new();
    let mut group: Option<Labels> = None;
    let mut group_timestamp: Option<Option<f64>> = None;
    for (line, sample) in &samples {
        let line = *line;
        let suffix = &sample.name[name.len()..];
        let value = sample.value;
        let counter_like = |what: &str| -> Result<(), ParseError> {
            if value.is_nan() || value < 0.0 {
                return error(line, format!("{what} must be a number not below 0"));
            }
            Ok(())
        };
        let integer = |what: &str| -> Result<(), ParseError> {
            if value.fract() != 0.0 || !value.is_finite() {
                return error(line, format!("{what} must be an integer"));
            }
            Ok(())
        };
        match (kind.as_str(), suffix) {
            ("counter", "_total") => counter_like("a counter")?,
            ("histogram", "_bucket") | ("gaugehistogram", "_bucket") => {
                counter_like("a bucket")?;
                integer("a bucket")?;
                match sample.label("le") {
                    Some(le) if canonical_bound(le).is_some() => {}
                    _ => return error(line, "a bucket needs an le label with a number"),
                }
            }
            ("histogram", "_count") | ("gaugehistogram", "_gcount") | ("summary", "_count") => {
                counter_like("a count")?;
                integer("a count")?;
            }
            ("histogram", "_sum") | ("summary", "_sum") => counter_like("a sum")?,
            ("gaugehistogram", "_gsum") if value.is_nan() => return error(line, "a gsum must be a number"),
            ("summary", "") => {
                if value < 0.0 {
                    return error(line, "a quantile value must not be negative");
                }
                match sample.label("quantile").and_then(canonical_bound) {
                    Some(quantile) if (0.0..=1.0).contains(&quantile) => {}
                    _ => return error(line, "a summary quantile needs a quantile label between 0 and 1"),
                }
            }
            ("stateset", "") => {
                if sample.label(&name).is_none() {
                    return error(line, format!("a stateset sample needs the label {name}"));
                }
                if value != 0.0 && value != 1.0 {
                    return error(line, "a state is 0 or 1");
                }
            }
            ("info", "_info") if value != 1.0 => return error(line, "an info value is 1"),
            _ => {}
        }
        if let Some(exemplar) = &sample.exemplar {
            let allowed =
                matches!((kind.as_str(), suffix), ("counter", "_total") | ("histogram" | "gaugehistogram", "_bucket"));
            if !allowed {
                return error(line, "exemplars are only allowed on counter totals and histogram buckets");
            }
            if exemplar.timestamp.is_some_and(|timestamp| !timestamp.is_finite()) {
                return error(line, "invalid exemplar timestamp");
            }
        }
        // Groups: a sample's labels without le / quantile (all of them for info metrics).
        let mut key: Vec<(String, String)> = sample
            .labels
            .iter()
            .filter(|(label, _)| !(matches!(kind.as_str(), "histogram" | "gaugehistogram") && label == "le"))
            .filter(|(label, _)| !(kind == "summary" && label == "quantile"))
            .cloned()
            .collect();
        key.sort();
        if group.as_ref() == Some(&key) {
            let previous = group_timestamp.flatten();
            if group_timestamp.is_some_and(|previous| previous.is_some() != sample.timestamp.is_some()) {
                return error(line, "a group mixes samples with and without timestamps");
            }
            if let (Some(previous), Some(current)) = (previous, sample.timestamp)
                && current < previous
                && kind != "info"
            {
                return error(line, "timestamps went backwards within a group");
            }
        } else if seen_groups.contains(&key) {
            return error(line, "the samples of a group are not together");
        }
        seen_groups.insert(key.clone());
        group = Some(key);
        group_timestamp = Some(sample.timestamp);
    }
    if kind == "histogram" || kind == "gaugehistogram" {
        check_histogram(&name, &samples)?;
    }
    Ok(())
}

/// A bound (`le`, `quantile`): a number, infinities spelled `+Inf` / `-Inf`, never NaN.
fn canonical_bound(text: &str) -> Option<f64> {
    let value = parse_float(text)?;
    if value.is_nan() || (value.is_infinite() && text != "+Inf" && text != "-Inf") {
        return None;
    }
    Some(value)
}

fn check_histogram(name: &str, samples: &[(usize, Sample)]) -> Result<(), ParseError> {
    #[derive(Default)]
    struct State {
        bucket: Option<f64>,
        value: f64,
        count: Option<f64>,
        negative_buckets: bool,
        sum: bool,
        gsum: bool,
        negative_gsum: bool,
    }
    let check = |state: &State, line: usize| -> Result<(), ParseError> {
        if state.bucket != Some(f64::INFINITY) {
            return error(line, format!("{name}: the +Inf bucket is missing"));
        }
        if state.count.is_some_and(|count| count != state.value) {
            return error(line, format!("{name}: the count is not the +Inf bucket's value"));
        }
        if (state.sum || state.gsum) && state.count.is_none() {
            return error(line, format!("{name}: a sum needs a count"));
        }
        if !(state.sum || state.gsum) && state.count.is_some() {
            return error(line, format!("{name}: a count needs a sum"));
        }
        if state.negative_buckets && state.sum {
            return error(line, format!("{name}: a histogram with negative buckets has no _sum"));
        }
        if !state.negative_buckets && state.negative_gsum {
            return error(line, format!("{name}: a negative _gsum needs negative buckets"));
        }
        Ok(())
    };
    let mut state = State::default();
    let mut group: Option<(Labels, Option<f64>)> = None;
    let mut last_line = 0;
    for (line, sample) in samples {
        let suffix = &sample.name[name.len()..];
        if suffix == "_created" {
            continue;
        }
        let mut key: Vec<(String, String)> = sample.labels.iter().filter(|(label, _)| label != "le").cloned().collect();
        key.sort();
        let current = (key, sample.timestamp);
        if group.as_ref() != Some(&current) {
            if group.is_some() {
                check(&state, last_line)?;
            }
            state = State::default();
            group = Some(current);
        }
        last_line = *line;
        match suffix {
            "_bucket" => {
                let bound = sample.label("le").and_then(canonical_bound).unwrap_or(f64::NAN);
                if bound < 0.0 {
                    state.negative_buckets = true;
                }
                if state.bucket.is_some_and(|previous| bound <= previous) {
                    return error(*line, format!("{name}: buckets out of order"));
                }
                if sample.value < state.value {
                    return error(*line, format!("{name}: bucket values go down"));
                }
                state.bucket = Some(bound);
                state.value = sample.value;
            }
            "_count" | "_gcount" => state.count = Some(sample.value),
            "_sum" => state.sum = true,
            "_gsum" => {
                state.gsum = true;
                state.negative_gsum |= sample.value < 0.0;
            }
            _ => {}
        }
    }
    if group.is_some() {
        check(&state, last_line)?;
    }
    Ok(())
}

/// The series Prometheus stores from a page: `_created` samples of counters, summaries and
/// histograms left out, `le` of histogram buckets and `quantile` of summaries normalised
/// (`1` → `1.0`), `__name__` first.
pub fn series(entries: &[Entry]) -> Vec<Sample> {
    let mut kinds: HashMap<&str, &str> = HashMap::new();
    for entry in entries {
        if let Entry::Type { name, kind } = entry {
            kinds.insert(name, kind);
        }
    }
    let family_of = |sample: &str| -> Option<(&str, &str)> {
        for suffix in ["_created", "_bucket", "_count", "_sum", "_total", "_gcount", "_gsum", "_info", ""] {
            if let Some(base) = sample.strip_suffix(suffix)
                && let Some(kind) = kinds.get(base)
            {
                return Some((suffix, kind));
            }
        }
        None
    };
    entries
        .iter()
        .filter_map(|entry| match entry {
            Entry::Sample(sample) => Some(sample),
            _ => None,
        })
        .filter_map(|sample| {
            let (suffix, kind) = family_of(&sample.name).unwrap_or(("", "unknown"));
            if suffix == "_created" && matches!(kind, "counter" | "summary" | "histogram") {
                return None;
            }
            let normalise = match (kind, suffix) {
                ("histogram" | "gaugehistogram", "_bucket") => Some("le"),
                ("summary", "") => Some("quantile"),
                _ => None,
            };
            let mut sample = sample.clone();
            if let Some(label) = normalise {
                for (name, value) in &mut sample.labels {
                    if name == label
                        && let Some(number) = parse_float(value)
                    {
                        *value = format_float(number);
                    }
                }
            }
            Some(sample)
        })
        .collect()
}

/// `1` → `1.0`, `0.25` → `0.25`, infinities as `+Inf` / `-Inf`.
pub fn format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.1}")
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(page: &str, format: Format) -> Result<(), ParseError> {
        let entries = parse(page.as_bytes(), format)?;
        if format == Format::OpenMetrics {
            validate_openmetrics(&entries)?;
        }
        Ok(())
    }

    #[test]
    fn text_pages_as_prometheus_reads_them() {
        let page = "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n\
                    http_requests_total{method=\"get\", code=\"200\",} 1027 1395066363000\n\n# a comment\n\
                    rpc_duration_seconds{quantile=\"0.5\"} 4773\nup 1\n";
        let entries = parse(page.as_bytes(), Format::Text).unwrap();
        let samples = series(&entries);
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].labels, [("method".to_owned(), "get".to_owned()), ("code".to_owned(), "200".to_owned())]);
        assert_eq!(samples[0].timestamp_ms(), Some(1_395_066_363_000));
        for bad in ["a\n", "a{b='c'} 1\n", "a 1_2\n", "a 0 1.5\n", "{a=\"b\"} 1\n", "# TYPE a untyped x\n"] {
            assert!(accepts(bad, Format::Text).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn openmetrics_needs_its_eof_and_its_rules() {
        assert!(
            accepts("# TYPE a counter\na_total 1 # {trace_id=\"1\"} 0.5 123\n# EOF\n", Format::OpenMetrics).is_ok()
        );
        for bad in [
            "a 1\n",                                             // no EOF
            "a 1\n\n# EOF\n",                                    // blank line
            "# TYPE a gauge\na 1 # {a=\"b\"} 1\n# EOF\n",        // exemplar on a gauge
            "# TYPE a histogram\na_bucket{le=\"1\"} 0\n# EOF\n", // no +Inf bucket
            "# TYPE a counter\na_total -1\n# EOF\n",
        ] {
            assert!(accepts(bad, Format::OpenMetrics).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(Format::of_content_type("application/openmetrics-text; version=1.0.0"), Format::OpenMetrics);
        assert_eq!(Format::of_content_type("text/plain; version=0.0.4"), Format::Text);
    }

    #[test]
    fn created_samples_are_start_times_not_series() {
        let page = "# TYPE a counter\na_total 1\na_created 1700000000\n# TYPE b_created gauge\nb_created 5\n# EOF\n";
        let names: Vec<String> =
            series(&parse(page.as_bytes(), Format::OpenMetrics).unwrap()).into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["a_total", "b_created"]);
    }
}
