//! Environment overrides: `LIMITER_` and the field's path.

use toml::{Table, Value};

/// How an override's text becomes a value.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// The text as a string.
    Text,
    /// `true` or `false`.
    Flag,
    /// A whole number.
    Number,
    /// One limit set: the text in the limit grammar; empty for no limits.
    Limits,
    /// A comma-separated list of strings.
    List,
}

/// Every field an environment variable overrides, by its path in the file. The
/// variable's name is `LIMITER_` followed by the path upper-cased, with `.` as `_`.
const FIELDS: &[(&str, Kind)] = &[
    ("storage.uri", Kind::Text),
    ("strategy", Kind::Text),
    ("namespace", Kind::Text),
    ("enabled", Kind::Flag),
    ("shadow", Kind::Flag),
    ("key_prefix", Kind::Text),
    ("default_limits", Kind::Limits),
    ("application_limits", Kind::Limits),
    ("meta_limits", Kind::Limits),
    ("key.source", Kind::Text),
    ("key.header", Kind::Text),
    ("key.trusted_hops", Kind::Number),
    ("key.trusted_networks", Kind::List),
    ("key.ipv6_prefix", Kind::Number),
    ("headers.style", Kind::Text),
    ("headers.retry_after", Kind::Text),
    ("rejection_body", Kind::Text),
    ("failure.policy", Kind::Text),
    ("failure.deadline", Kind::Text),
    ("failure.first_probe", Kind::Text),
    ("failure.max_probe", Kind::Text),
    ("charge.unmatched", Kind::Flag),
    ("charge.options", Kind::Flag),
    ("charge.method_not_allowed", Kind::Flag),
];

/// The variable that overrides the field at `path`.
pub(crate) fn variable(path: &str) -> String {
    format!("LIMITER_{}", path.replace('.', "_").to_ascii_uppercase())
}

/// Every variable the configuration reads, with the path it overrides.
pub fn variables() -> impl Iterator<Item = (String, &'static str)> {
    FIELDS.iter().map(|(path, _)| (variable(path), *path))
}

/// One override found in the environment.
#[derive(Debug, Clone)]
pub(crate) struct Override {
    pub(crate) variable: String,
    pub(crate) path: &'static str,
    value: Value,
}

/// The overrides among `vars`, in the order of [`FIELDS`]; `Err` names a variable
/// whose value has the wrong form.
pub(crate) fn overrides(vars: &[(String, String)]) -> Result<Vec<Override>, (String, String)> {
    let mut found = Vec::new();
    for (path, kind) in FIELDS {
        let name = variable(path);
        let Some((_, text)) = vars.iter().rev().find(|(n, _)| *n == name) else {
            continue;
        };
        let value = convert(*kind, text).map_err(|message| (name.clone(), message))?;
        found.push(Override {
            variable: name,
            path,
            value,
        });
    }
    Ok(found)
}

fn convert(kind: Kind, text: &str) -> Result<Value, String> {
    Ok(match kind {
        Kind::Text => Value::String(text.to_owned()),
        Kind::Flag => Value::Boolean(limiter_options::flag(text)?),
        Kind::Number => Value::Integer(
            text.trim()
                .parse()
                .map_err(|_| format!("{text:?} is not a whole number"))?,
        ),
        Kind::Limits if text.trim().is_empty() => Value::Array(Vec::new()),
        Kind::Limits => Value::Array(vec![Value::String(text.to_owned())]),
        Kind::List => Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
    })
}

/// Writes `o` into `table`; `storage.uri` replaces the whole storage table.
pub(crate) fn apply(table: &mut Table, o: &Override) {
    let mut parts: Vec<&str> = o.path.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut at = table;
    for part in parts {
        let entry = at
            .entry(part.to_owned())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() || o.path == "storage.uri" {
            *entry = Value::Table(Table::new());
        }
        let Value::Table(next) = entry else { return };
        at = next;
    }
    at.insert(last.to_owned(), o.value.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        assert_eq!(variable("storage.uri"), "LIMITER_STORAGE_URI");
        assert_eq!(variable("failure.deadline"), "LIMITER_FAILURE_DEADLINE");
        assert_eq!(variable("default_limits"), "LIMITER_DEFAULT_LIMITS");
    }
}
