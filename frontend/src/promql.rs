//! Where the caret of a PromQL box is, for completion: typing a metric (or function) name,
//! a label name inside `{...}`, or a label value after `label="` (with the metric the braces
//! belong to, so that values come from that metric's series).

/// What the end of a partial query is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// A name being typed: `rate(http_req`.
    Metric { before: String, partial: String },
    /// A label name inside braces: `up{jo`.
    LabelName { before: String, metric: String, partial: String },
    /// A label value being typed: `up{job="sh`.
    LabelValue { before: String, metric: String, label: String, partial: String },
}

fn is_name_character(character: char) -> bool {
    character.is_ascii_alphanumeric() || character == '_' || character == ':'
}

/// The metric or label name that `text` ends with (empty when it ends otherwise).
fn trailing_name(text: &str) -> String {
    let start = text.rfind(|character: char| !is_name_character(character)).map_or(0, |index| index + 1);
    text[start..].to_owned()
}

/// The completion context at the end of `text`.
pub fn context(text: &str) -> Completion {
    // An unclosed `{` outside strings: inside a label matcher list.
    let mut open_brace = None;
    let mut in_string = false;
    let mut escaped = false;
    for (index, character) in text.char_indices() {
        match character {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' if !in_string => open_brace = Some(index),
            '}' if !in_string => open_brace = None,
            _ => {}
        }
    }
    if let Some(brace) = open_brace {
        let metric = trailing_name(&text[..brace]);
        let inside = &text[brace + 1..];
        if in_string {
            // `label=~"partial`: the label is the name before the operator.
            let quote = inside.rfind('"').expect("an open string has a quote");
            let operator_end = inside[..quote].trim_end();
            let label_end = operator_end.trim_end_matches(['=', '~', '!']).trim_end();
            let label = trailing_name(label_end);
            let partial = inside[quote + 1..].to_owned();
            let before = text[..text.len() - partial.len()].to_owned();
            return Completion::LabelValue { before, metric, label, partial };
        }
        let partial = trailing_name(inside);
        let before = text[..text.len() - partial.len()].to_owned();
        return Completion::LabelName { before, metric, partial };
    }
    let partial = trailing_name(text);
    Completion::Metric { before: text[..text.len() - partial.len()].to_owned(), partial }
}

/// PromQL's functions and aggregations, offered with metric names.
pub const FUNCTIONS: [&str; 24] = [
    "rate(",
    "irate(",
    "increase(",
    "sum(",
    "avg(",
    "max(",
    "min(",
    "count(",
    "topk(",
    "bottomk(",
    "histogram_quantile(",
    "sum by (",
    "avg by (",
    "max by (",
    "delta(",
    "deriv(",
    "abs(",
    "absent(",
    "avg_over_time(",
    "max_over_time(",
    "min_over_time(",
    "quantile_over_time(",
    "label_replace(",
    "predict_linear(",
];

/// Full queries completing `text` with each candidate that starts with what is being typed
/// (at most `limit`).
pub fn completions(text: &str, candidates: &[String], limit: usize) -> Vec<String> {
    let context = context(text);
    let (before, partial, after): (&str, &str, &str) = match &context {
        // Nothing typed yet: names only where one may start (not right after `)` or `]`).
        Completion::Metric { before, partial } if partial.is_empty() && !before.trim_end().is_empty() => {
            if !before.trim_end().ends_with(['(', ',', '+', '-', '*', '/', '^', '%', '=', '<', '>']) {
                return Vec::new();
            }
            (before, partial, "")
        }
        Completion::Metric { before, partial } => (before, partial, ""),
        Completion::LabelName { before, partial, .. } => (before, partial, "=\""),
        Completion::LabelValue { before, partial, .. } => (before, partial, "\""),
    };
    candidates
        .iter()
        .filter(|candidate| candidate.starts_with(partial) && candidate.as_str() != partial)
        .take(limit)
        .map(|candidate| format!("{before}{candidate}{after}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_at_the_end_of_a_query() {
        assert_eq!(
            context("sum(rate(http_req"),
            Completion::Metric { before: "sum(rate(".into(), partial: "http_req".into() }
        );
        assert_eq!(
            context("up{jo"),
            Completion::LabelName { before: "up{".into(), metric: "up".into(), partial: "jo".into() }
        );
        assert_eq!(
            context(r#"rate(http_requests_total{code="500", meth"#),
            Completion::LabelName {
                before: r#"rate(http_requests_total{code="500", "#.into(),
                metric: "http_requests_total".into(),
                partial: "meth".into()
            }
        );
        assert_eq!(
            context(r#"up{job=~"sh"#),
            Completion::LabelValue {
                before: r#"up{job=~""#.into(),
                metric: "up".into(),
                label: "job".into(),
                partial: "sh".into()
            }
        );
        assert_eq!(
            context(r#"{instance!="web-1",job = ""#),
            Completion::LabelValue {
                before: r#"{instance!="web-1",job = ""#.into(),
                metric: String::new(),
                label: "job".into(),
                partial: String::new()
            }
        );
        // A closed brace is behind the caret: back to names.
        assert!(matches!(context(r#"up{job="a"} / on"#), Completion::Metric { .. }));
    }

    #[test]
    fn completions_are_whole_queries() {
        let values = vec!["shop".to_owned(), "shipping".to_owned(), "search".to_owned()];
        assert_eq!(completions(r#"up{job="sh"#, &values, 10), [r#"up{job="shop""#, r#"up{job="shipping""#]);
        let labels = vec!["job".to_owned(), "instance".to_owned()];
        assert_eq!(completions("up{", &labels, 1), [r#"up{job=""#]);
        let names = vec!["node_load1".to_owned(), "rate(".to_owned()];
        assert_eq!(completions("avg(node_", &names, 10), ["avg(node_load1"]);
        assert_eq!(completions("", &names, 10), ["node_load1", "rate("]);
        assert_eq!(completions("sum(up) / ", &names, 1), ["sum(up) / node_load1"]);
        assert!(completions("rate(up[5m])", &names, 10).is_empty(), "nothing follows a closed call");
    }
}
