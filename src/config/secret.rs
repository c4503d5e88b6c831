//! `env:NAME` and `file:PATH` references, resolved once at load.

use std::collections::HashMap;
use std::path::Path;

/// Where environment variables are read from: the process, or a fixed map in tests.
#[derive(Debug, Clone, Default)]
pub enum Env {
    #[default]
    Process,
    Fixed(HashMap<String, String>),
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
pub fn resolve(raw: &str, env: &Env) -> Result<Resolved, String> {
    if let Some(name) = raw.strip_prefix("env:") {
        let value = env
            .var(name)
            .ok_or_else(|| format!("environment variable {name} is not set"))?;
        Ok(Resolved {
            value,
            referenced: true,
        })
    } else if let Some(path) = raw.strip_prefix("file:") {
        let mut value = std::fs::read_to_string(Path::new(path))
            .map_err(|e| format!("cannot read file {path}: {}", e.kind()))?;
        if value.ends_with('\n') {
            value.pop();
            if value.ends_with('\r') {
                value.pop();
            }
        }
        Ok(Resolved {
            value,
            referenced: true,
        })
    } else {
        Ok(Resolved {
            value: raw.to_owned(),
            referenced: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

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
