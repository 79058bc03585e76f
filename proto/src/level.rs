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

/// A level's name as one of Vigil's levels (`fatal`, `error`, `warn`, `info`, `debug`,
/// `trace`): the usual spellings (`WARNING`, `err`, `CRITICAL`, `notice`) and single letters
/// or abbreviations (`E`, `wrn`, `dbg`); `None` for a word that names none of them.
pub fn normalise(text: &str) -> Option<&'static str> {
    match text.trim().to_ascii_lowercase().as_str() {
        "e" | "eror" => Some("error"),
        "w" | "wrn" => Some("warn"),
        "i" | "inf" => Some("info"),
        "d" | "dbg" | "dbug" => Some("debug"),
        "t" | "trc" => Some("trace"),
        "f" | "crit" => Some("fatal"),
        _ => match detect_level(text) {
            "unknown" => None,
            level => Some(level),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{detect_level, normalise};

    #[test]
    fn level_names_become_vigils_levels() {
        assert_eq!(normalise("WARNING"), Some("warn"));
        assert_eq!(normalise("critical"), Some("fatal"));
        assert_eq!(normalise("Notice"), Some("info"));
        assert_eq!(normalise("E"), Some("error"));
        assert_eq!(normalise("audit"), None);
    }

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
