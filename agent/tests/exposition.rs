//! The exposition parser against the conformance data in `tests/data` (see its README): the
//! OpenMetrics suite's accept/reject verdicts, Prometheus' own error cases, and the series
//! Prometheus extracts from its valid pages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;
use vigil_agent::exposition::{Entry, Format, parse, series, validate_openmetrics};

fn data(path: &str) -> PathBuf {
    // Read at run time: a test binary cached from another checkout must read this one's data.
    Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("tests run through cargo")).join("tests/data").join(path)
}

fn accepts(page: &[u8], format: Format) -> Result<Vec<Entry>, String> {
    let entries = parse(page, format).map_err(|error| error.to_string())?;
    if format == Format::OpenMetrics {
        validate_openmetrics(&entries).map_err(|error| error.to_string())?;
    }
    Ok(entries)
}

#[test]
fn the_openmetrics_suite_accepts_exactly_the_valid_cases() {
    let mut cases = 0;
    let mut wrong = Vec::new();
    for case in std::fs::read_dir(data("openmetrics")).unwrap() {
        let case = case.unwrap().path();
        if !case.is_dir() {
            continue;
        }
        let verdict: Value = serde_json::from_slice(&std::fs::read(case.join("test.json")).unwrap()).unwrap();
        let should_parse = verdict["shouldParse"].as_bool().unwrap();
        let page = std::fs::read(case.join("metrics")).unwrap();
        let result = accepts(&page, Format::OpenMetrics);
        if result.is_ok() != should_parse {
            let name = case.file_name().unwrap().to_string_lossy().into_owned();
            wrong.push(format!(
                "{name}: expected {}, got {result:?}",
                if should_parse { "accepted" } else { "refused" }
            ));
        }
        cases += 1;
    }
    assert_eq!(cases, 211);
    assert!(wrong.is_empty(), "{} of {cases} cases disagree:\n{}", wrong.len(), wrong.join("\n"));
}

fn case_input(case: &Value) -> Vec<u8> {
    match (&case["input"], &case["input_base64"]) {
        (Value::String(text), _) if !text.is_empty() || case["input_base64"].is_null() => text.as_bytes().to_vec(),
        (_, Value::String(encoded)) => base64::engine::general_purpose::STANDARD.decode(encoded).unwrap(),
        (Value::String(text), _) => text.as_bytes().to_vec(),
        _ => panic!("a case without input: {case}"),
    }
}

#[test]
fn prometheus_error_cases_are_refused_and_its_accepted_cases_accepted() {
    for (file, format) in
        [("prom_text_error_cases.json", Format::Text), ("openmetrics_error_cases.json", Format::OpenMetrics)]
    {
        let cases: Vec<Value> =
            serde_json::from_slice(&std::fs::read(data(&format!("prometheus-textparse/{file}"))).unwrap()).unwrap();
        assert!(cases.len() > 20);
        for case in &cases {
            let input = case_input(case);
            // Prometheus' own verdict is on the grammar: its OpenMetrics parser does not apply the
            // family rules, which the suite above checks.
            let result = parse(&input, format);
            match case["expect"].as_str().unwrap() {
                "error" => assert!(result.is_err(), "{file}: {:?} was accepted", String::from_utf8_lossy(&input)),
                _ => assert!(result.is_ok(), "{file}: {:?} was refused: {result:?}", String::from_utf8_lossy(&input)),
            }
        }
    }
}

/// Labels as a map, and the value (NaN compared as NaN).
fn same_value(expected: &str, actual: f64) -> bool {
    let expected: f64 = expected.parse().unwrap();
    (expected.is_nan() && actual.is_nan()) || expected == actual
}

#[test]
fn series_are_extracted_as_prometheus_extracts_them() {
    for (file, format) in
        [("prom_text_valid_case.json", Format::Text), ("openmetrics_valid_case.json", Format::OpenMetrics)]
    {
        let case: Value =
            serde_json::from_slice(&std::fs::read(data(&format!("prometheus-textparse/{file}"))).unwrap()).unwrap();
        let entries = parse(case["input"].as_str().unwrap().as_bytes(), format).unwrap();
        let extracted = series(&entries);
        let expected: Vec<&Value> = case["expected_entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry.get("value").is_some() || entry.get("labels").is_some())
            .collect();
        assert_eq!(
            extracted.len(),
            expected.len(),
            "{file}: {} series, Prometheus extracts {}",
            extracted.len(),
            expected.len()
        );
        for (sample, expected) in extracted.iter().zip(&expected) {
            if let Some(labels) = expected.get("labels") {
                let mut actual: BTreeMap<String, String> = sample.labels.iter().cloned().collect();
                actual.insert("__name__".to_owned(), sample.name.clone());
                let labels: BTreeMap<String, String> = labels
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(key, value)| (key.clone(), value.as_str().unwrap().to_owned()))
                    .collect();
                assert_eq!(actual, labels, "{file}: {}", expected["m"]);
            }
            if let Some(value) = expected.get("value") {
                assert!(
                    same_value(value.as_str().unwrap(), sample.value),
                    "{file}: {} has {}",
                    expected["m"],
                    sample.value
                );
            }
            assert_eq!(
                sample.timestamp_ms(),
                expected.get("timestamp_ms").and_then(Value::as_i64),
                "{file}: {}",
                expected["m"]
            );
        }
        // Metadata too: every HELP and TYPE Prometheus reports.
        for expected in case["expected_entries"].as_array().unwrap() {
            let Some(name) = expected["m"].as_str() else { continue };
            if let Some(help) = expected.get("help") {
                assert!(
                    entries.iter().any(|entry| matches!(entry, Entry::Help { name: n, text } if n == name && text == help.as_str().unwrap())),
                    "{file}: HELP of {name}"
                );
            }
            if let Some(kind) = expected.get("type") {
                assert!(
                    entries.iter().any(|entry| matches!(entry, Entry::Type { name: n, kind: k } if n == name && k == kind.as_str().unwrap())),
                    "{file}: TYPE of {name}"
                );
            }
        }
    }
}

#[test]
fn real_pages_parse_whole() {
    let page = std::fs::read(data("prometheus-textparse/alltypes.237mfs.prom.txt")).unwrap();
    let entries = accepts(&page, Format::Text).unwrap();
    assert_eq!(entries.iter().filter(|entry| matches!(entry, Entry::Type { .. })).count(), 237);
    assert_eq!(series(&entries).len(), 1857);
    let page = std::fs::read(data("prometheus-textparse/1histogram.om.txt")).unwrap();
    accepts(&page, Format::OpenMetrics).unwrap();
    // This page, written by a Prometheus client, gives a histogram with negative buckets a
    // _sum, which OpenMetrics forbids: strict validation refuses it, the grammar accepts it.
    let page = std::fs::read(data("prometheus-textparse/alltypes.5mfs.om.txt")).unwrap();
    let error = accepts(&page, Format::OpenMetrics).unwrap_err();
    assert!(error.contains("rpc_durations_histogram_seconds") || error.contains("sum"), "{error}");
    assert!(series(&parse(&page, Format::OpenMetrics).unwrap()).len() > 40);
}
