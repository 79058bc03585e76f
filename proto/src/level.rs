//! Detection of a line's severity from the words it usually carries (`ERROR`, `level=warn`,
//! `[INFO]`), as Loki's `detected_level` does; `unknown` when none is found.

/// Only the start of a line is looked at: the level sits near the timestamp.
const SCAN_BYTES: usize = 128;

pub fn detect_level(line: &str) -> &'static str {
    let mut end = line.len().min(SCAN_BYTES);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    for word in line[..end].split(|character: char| !character.is_ascii_alphabetic()) {
        let level = match word.len() {
            3..=8 => match word.to_ascii_lowercase().as_str() {
                "fatal" | "critical" | "crit" | "panic" | "emerg" | "alert" => "fatal",
                "error" | "err" => "error",
                "warn" | "warning" => "warn",
                "info" | "notice" => "info",
                "debug" => "debug",
                "trace" => "trace",
                _ => continue,
            },
            _ => continue,
        };
        return level;
    }
    "unknown"
}

#[cfg(test)]
mod tests {
    use super::detect_level;

    #[test]
    fn finds_common_spellings() {
        assert_eq!(detect_level("2026-11-29T08:00:00Z ERROR payment failed"), "error");
        assert_eq!(detect_level("ts=2026-11-29 level=warn msg=\"slow query\""), "warn");
        assert_eq!(detect_level("[INFO] started"), "info");
        assert_eq!(detect_level("GET /index.html 200"), "unknown");
        assert_eq!(detect_level("an errorless line"), "unknown");
        assert_eq!(detect_level(&format!("{} ERROR late", "x".repeat(200))), "unknown");
    }
}
