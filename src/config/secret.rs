//! `env:NAME` and `file:PATH` references, resolved once at load.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use config::{Value, ValueKind};

use super::{Problem, key_path};

/// Where environment variables are read from: the process, or a fixed map in tests.
#[derive(Clone, Default)]
pub enum Env {
    #[default]
    Process,
    Fixed(HashMap<String, String>),
}

/// The variables' names only: their values may be secrets.
impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Env::Process => f.write_str("Process"),
            Env::Fixed(vars) => {
                let mut names: Vec<&str> = vars.keys().map(String::as_str).collect();
                names.sort_unstable();
                f.debug_tuple("Fixed").field(&names).finish()
            }
        }
    }
}

impl Env {
    pub fn var(&self, name: &str) -> Option<String> {
        match self {
            Env::Process => std::env::var(name).ok(),
            Env::Fixed(map) => map.get(name).cloned(),
        }
    }
}

/// A value after resolving references.
pub struct Resolved {
    pub value: String,
    /// Whether it came from `env:` or `file:` rather than being written in the file.
    pub referenced: bool,
}

/// Resolves `raw`. Errors name the variable or path, never a value.
///
/// Both kinds of reference lose one trailing newline: a file written by an editor or `echo` ends
/// with one, and so does a variable filled from such a file (`kubectl create secret
/// --from-file` passed on as `secretKeyRef`). No header value can hold a newline, and a signing
/// secret that kept it would sign every token wrong.
pub fn resolve(raw: &str, env: &Env) -> Result<Resolved, String> {
    let value = if let Some(name) = raw.strip_prefix("env:") {
        env.var(name)
            .ok_or_else(|| format!("environment variable {name} is not set"))?
    } else if let Some(path) = raw.strip_prefix("file:") {
        std::fs::read_to_string(Path::new(path))
            .map_err(|e| format!("cannot read file {path}: {}", e.kind()))?
    } else {
        return Ok(Resolved {
            value: raw.to_owned(),
            referenced: false,
        });
    };
    Ok(Resolved {
        value: without_trailing_newline(value),
        referenced: true,
    })
}

fn without_trailing_newline(mut value: String) -> String {
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    value
}

/// Resolves, in place, every reference among the string values of the layered configuration,
/// except secrets: those stay as written until the build reads each into a redacting type and
/// checks that it was a reference. A reference that does not resolve is a problem at its key
/// path, and its key is dropped (a list keeps its text), so that the rest is still read and
/// checked: what was written there may be meant as a number, a flag or a string.
///
/// Returns each value read from a reference, so that a problem with it can name the reference
/// instead of printing the value (see [`hide_referenced_values`]).
pub fn resolve_references(
    tree: &mut Value,
    env: &Env,
    problems: &mut Vec<Problem>,
) -> Vec<Referenced> {
    let mut referenced = Vec::new();
    walk(tree, &mut Vec::new(), "", env, problems, &mut referenced);
    referenced
}

/// A setting whose value was read from a reference.
pub struct Referenced {
    path: String,
    reference: String,
    value: String,
}

impl Referenced {
    pub fn new(path: &str, reference: &str, value: &str) -> Self {
        Self {
            path: path.to_owned(),
            reference: reference.to_owned(),
            value: value.to_owned(),
        }
    }
}

/// A setting that is not a secret may still be given a reference to one by mistake (`listen =
/// "file:/run/secrets/api-key"`); the problem with its value must not print it, nor a piece of
/// it, so it names the reference instead.
///
/// A problem with the setting itself (or an element of it) keeps its message with the value
/// replaced by the reference's name, unless the message shows anything else of the value: any
/// other quoted text (a claim or filter name of a template), the value unquoted, or one of its
/// words (a hint built from it). Then the whole message goes. A problem above the setting (the
/// claims an app's grants use) goes whole when it quotes a piece of the value.
pub fn hide_referenced_values(problems: &mut [Problem], referenced: &[Referenced]) {
    for problem in problems {
        for r in referenced {
            let Some(below) = r.path.strip_prefix(problem.path.as_str()) else {
                continue;
            };
            let named = format!("the value of {}", r.reference);
            let shows_value = if below.is_empty() || below.starts_with('[') {
                let quoted = format!("{:?}", r.value);
                let rest = problem.message.replace(&quoted, "");
                if !shows_part(&rest, &r.value) {
                    problem.message = problem.message.replace(&quoted, &named);
                    continue;
                }
                true
            } else {
                below.starts_with('.') && quotes_part(&problem.message, &r.value)
            };
            if shows_value {
                problem.message = format!("{named} is not valid here (not shown)");
            }
        }
    }
}

/// Whether `message` quotes anything, or shows `value` or a word of it of three characters or
/// more.
fn shows_part(message: &str, value: &str) -> bool {
    message.contains('"')
        || message.contains(value)
        || value
            .split(|c: char| !c.is_alphanumeric())
            .any(|word| word.len() >= 3 && message.contains(word))
}

/// Whether `message` shows `value`, or quotes a piece of it.
fn quotes_part(message: &str, value: &str) -> bool {
    message.contains(value)
        || message
            .split('"')
            .skip(1)
            .step_by(2)
            .any(|quoted| !quoted.is_empty() && value.contains(quoted))
}

/// `steps` are the table keys down to `value`, with `[]` for a list index; `path` is the same
/// as problems name it (`accounts.main.signing_keys[0].sid`). Returns whether `value` is a
/// reference that did not resolve.
fn walk(
    value: &mut Value,
    steps: &mut Vec<String>,
    path: &str,
    env: &Env,
    problems: &mut Vec<Problem>,
    referenced: &mut Vec<Referenced>,
) -> bool {
    match &mut value.kind {
        ValueKind::String(text) if !holds_secret(steps) => match resolve(text, env) {
            Ok(resolved) => {
                if resolved.referenced {
                    referenced.push(Referenced::new(path, text, &resolved.value));
                }
                *text = resolved.value;
                false
            }
            Err(message) => {
                problems.push(Problem::new(path, message));
                true
            }
        },
        ValueKind::Table(table) => {
            let mut unresolved = Vec::new();
            for (key, child) in table.iter_mut() {
                steps.push(key.clone());
                if walk(
                    child,
                    steps,
                    &key_path(path, key),
                    env,
                    problems,
                    referenced,
                ) {
                    unresolved.push(key.clone());
                }
                steps.pop();
            }
            for key in unresolved {
                table.remove(&key);
            }
            false
        }
        ValueKind::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                steps.push("[]".into());
                let at = format!("{path}[{i}]");
                walk(child, steps, &at, env, problems, referenced);
                steps.pop();
            }
            false
        }
        _ => false,
    }
}

/// Whether the value at `steps` is a secret the build resolves itself, or lies inside one
/// written in the wrong shape.
fn holds_secret(steps: &[String]) -> bool {
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    matches!(
        steps.as_slice(),
        ["accounts", _, "signing_keys", "[]", "secret", ..]
            | ["accounts", _, "auth_tokens" | "webhook_shared_keys", ..]
            | ["auth", _, "hs256_secret" | "shared_secret", ..]
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn debug_output_names_variables_without_their_values() {
        let env = Env::Fixed(HashMap::from([(
            "API_SECRET".into(),
            "s3cret-value".into(),
        )]));
        let shown = format!("{env:?}");
        assert!(shown.contains("API_SECRET"), "{shown}");
        assert!(!shown.contains("s3cret-value"), "{shown}");
    }

    #[test]
    fn literal_values_pass_through() {
        let r = resolve("plain", &Env::default()).unwrap();
        assert_eq!(r.value, "plain");
        assert!(!r.referenced);
    }

    #[test]
    fn env_references_read_the_variable() {
        let env = Env::Fixed(HashMap::from([("A".into(), "value".into())]));
        let r = resolve("env:A", &env).unwrap();
        assert_eq!(r.value, "value");
        assert!(r.referenced);
        assert_eq!(
            resolve("env:MISSING", &env).err().unwrap(),
            "environment variable MISSING is not set"
        );
    }

    #[test]
    fn env_references_strip_one_trailing_newline() {
        let env = Env::Fixed(HashMap::from([
            ("LF".into(), "s3cret\n\n".into()),
            ("CRLF".into(), "s3cret\r\n".into()),
        ]));
        assert_eq!(resolve("env:LF", &env).unwrap().value, "s3cret\n");
        assert_eq!(resolve("env:CRLF", &env).unwrap().value, "s3cret");
    }

    #[test]
    fn file_references_strip_one_trailing_newline() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"s3cret\n\n").unwrap();
        let r = resolve(&format!("file:{}", file.path().display()), &Env::default()).unwrap();
        assert_eq!(r.value, "s3cret\n");
        assert!(r.referenced);
    }

    #[test]
    fn unreadable_files_are_named() {
        let err = resolve("file:/nonexistent/secret", &Env::default())
            .err()
            .unwrap();
        assert!(err.contains("/nonexistent/secret"), "{err}");
    }
}
