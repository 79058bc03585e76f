//! `cargo xtask layers`: the backend's layering, checked over the paths its files name.
//!
//! Every top-level module of `backend/src` belongs to one layer; a module may name
//! (`crate::module`, in a `use` or inline) only modules of the layers its own may use:
//!
//! - `config`: nothing of the crate;
//! - domain (the log store, accounts and tokens, dashboards, agents, ingest, PromQL, the
//!   store, ...): config and the domain;
//! - `state` (what start-up builds, held together): config and the domain;
//! - HTTP (`http/`: who calls and their cookies; the error mapping in `error.rs`): all of the
//!   above;
//! - the adapters, the API's routes (`routes/`) and the UI's services (`ui.rs`): all of the
//!   above, but not each other;
//! - start-up (`startup.rs`, `lib.rs`, `main.rs`): everything.
//!
//! A module that is in no layer is an error too, so that a new one is placed on purpose.

use std::fmt;
use std::path::Path;

use anyhow::{Context, bail};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    Config,
    Domain,
    State,
    Http,
    Adapter,
    Start,
}

impl fmt::Display for Layer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::Config => "configuration",
            Self::Domain => "domain",
            Self::State => "state",
            Self::Http => "HTTP layer",
            Self::Adapter => "adapters",
            Self::Start => "start-up",
        })
    }
}

fn layer_of(module: &str) -> Option<Layer> {
    Some(match module {
        "config" => Layer::Config,
        "accounts" | "agents" | "alerts" | "audit" | "auth" | "dashboards" | "ingest" | "integrations" | "rollouts"
        | "prometheus" | "search" | "secrets" | "sessions" | "store" | "tail" | "telemetry" => Layer::Domain,
        "state" => Layer::State,
        "error" | "http" => Layer::Http,
        "routes" | "ui" => Layer::Adapter,
        "startup" | "lib" | "main" => Layer::Start,
        _ => return None,
    })
}

fn may_use(from: Layer, to: Layer) -> bool {
    match from {
        Layer::Config => false,
        Layer::Domain | Layer::State => matches!(to, Layer::Config | Layer::Domain),
        Layer::Http => to <= Layer::Http,
        Layer::Adapter => to < Layer::Adapter,
        Layer::Start => true,
    }
}

/// One import the layering forbids, or a module in no layer.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// The code of a line, without its comment (a `//` outside a string).
fn code_of(line: &str) -> &str {
    let mut in_string = false;
    let mut previous = ' ';
    for (index, character) in line.char_indices() {
        match character {
            '"' if previous != '\\' => in_string = !in_string,
            '/' if !in_string && previous == '/' => return &line[..index - 1],
            _ => {}
        }
        previous = character;
    }
    line
}

/// The top-level modules a line of code names through `crate::`.
fn named_modules(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|character| character.is_alphanumeric() || character == '_') {
            continue; // `vigil_crate::`, not the crate.
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start = 0;
            for (index, character) in group.char_indices() {
                match character {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        names.push(first_segment(&group[start..index]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.push(first_segment(&group[start..index]));
                        start = index + 1;
                    }
                    _ => {}
                }
            }
        } else {
            names.push(first_segment(rest));
        }
    }
    names.retain(|name| !name.is_empty() && name != "self");
    names
}

fn first_segment(path: &str) -> String {
    path.trim().chars().take_while(|character| character.is_alphanumeric() || *character == '_').collect()
}

/// The violations in one file of `backend/src`, named by its path there (`auth/mod.rs`).
pub fn check_file(path: &str, source: &str) -> Vec<Violation> {
    let module = path.split('/').next().unwrap_or(path).trim_end_matches(".rs");
    let Some(from) = layer_of(module) else {
        return vec![Violation {
            file: path.to_owned(),
            line: 1,
            message: format!("module {module} is in no layer: add it to xtask/src/layers.rs"),
        }];
    };
    let mut violations = Vec::new();
    for (index, line) in source.lines().enumerate() {
        for named in named_modules(code_of(line)) {
            let message = match layer_of(&named) {
                Some(to) if named == module || may_use(from, to) => continue,
                Some(to) => format!("{module} ({from}) may not use crate::{named} ({to})"),
                None => format!("crate::{named} is in no layer: add it to xtask/src/layers.rs"),
            };
            violations.push(Violation { file: path.to_owned(), line: index + 1, message });
        }
    }
    violations
}

/// Every violation under `source_dir` (the backend's `src`).
pub fn check_tree(source_dir: &Path) -> anyhow::Result<Vec<Violation>> {
    let mut violations = Vec::new();
    let mut pending = vec![source_dir.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let entries = std::fs::read_dir(&directory).with_context(|| format!("cannot read {}", directory.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                let source =
                    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
                let relative = path.strip_prefix(source_dir).expect("under the source directory");
                violations.extend(check_file(&relative.to_string_lossy().replace('\\', "/"), &source));
            }
        }
    }
    violations.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Ok(violations)
}

/// `cargo xtask layers`.
pub fn run(root: &Path) -> anyhow::Result<()> {
    let violations = check_tree(&root.join("backend/src"))?;
    if violations.is_empty() {
        println!("xtask: the backend's layering holds");
        return Ok(());
    }
    for violation in &violations {
        eprintln!("{violation}");
    }
    bail!("{} imports break the backend's layering (see xtask/src/layers.rs)", violations.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_read_from_use_lines_groups_and_inline_paths() {
        assert_eq!(named_modules("use crate::store::{Database, now_millis};"), ["store"]);
        assert_eq!(
            named_modules("use crate::{audit, routes::header_text, state::{AppState}};"),
            ["audit", "routes", "state"]
        );
        assert_eq!(
            named_modules("let x = crate::startup::AppState::new(crate::config::load());"),
            ["startup", "config"]
        );
        assert_eq!(named_modules("use vigil_crate::x; use super::y;"), Vec::<String>::new());
        assert_eq!(code_of(r#"let url = "http://x"; // crate::routes"#), r#"let url = "http://x"; "#);
    }

    #[test]
    fn a_domain_module_that_uses_the_http_layer_or_start_up_is_refused() {
        let source = "use crate::store::Database;\n/// See crate::routes.\nuse crate::routes::header_text;\n\
                      fn f() { crate::startup::run(); }\n";
        let violations = check_file("auth/mod.rs", source);
        assert_eq!(violations.len(), 2, "{violations:?}");
        assert_eq!(violations[0].line, 3);
        assert_eq!(violations[0].message, "auth (domain) may not use crate::routes (adapters)");
        assert!(violations[1].message.contains("crate::startup (start-up)"));
        assert_eq!(check_file("config.rs", "use crate::auth::oidc;\n").len(), 1, "configuration uses nothing");
        assert!(check_file("routes/logs.rs", "use crate::state::AppState;\nuse crate::search;\n").is_empty());
        assert_eq!(check_file("routes/logs.rs", "use crate::ui::X;\n").len(), 1, "adapters do not use each other");
        assert_eq!(check_file("ui.rs", "use crate::routes::logs;\n").len(), 1, "adapters do not use each other");
        assert_eq!(check_file("http/authorize.rs", "use crate::routes::X;\n").len(), 1);
        assert!(check_file("ui.rs", "use crate::http::cookies;\nuse crate::error::HttpError;\n").is_empty());
        assert_eq!(check_file("unplaced/mod.rs", "").len(), 1, "a new module is placed on purpose");
    }

    #[test]
    fn the_backend_keeps_its_layering() {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../backend/src");
        let violations = check_tree(&source).unwrap();
        assert!(violations.is_empty(), "{}", violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"));
    }
}
