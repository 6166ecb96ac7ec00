//! Secret references in the config: a value is taken literally, or from
//! `${ENV_VAR}` or `file:PATH` (relative to the config file's directory).
//! Errors name the reference, never the value.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("cannot read secret file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("the secret is empty")]
    Empty,
}

/// Resolves one secret reference.
pub fn resolve(value: &str, base_dir: &Path) -> Result<String, SecretError> {
    let out = if let Some(path) = value.strip_prefix("file:") {
        let p = base_dir.join(path.trim());
        std::fs::read_to_string(&p)
            .map_err(|source| SecretError::File {
                path: p.display().to_string(),
                source,
            })?
            .trim()
            .to_string()
    } else if let Some(name) = value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
        std::env::var(name).map_err(|_| SecretError::MissingEnv(name.to_string()))?
    } else {
        value.to_string()
    };
    if out.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_env_and_file() {
        let dir = std::env::temp_dir();
        assert_eq!(resolve("abc", &dir).unwrap(), "abc");
        // SAFETY: single-threaded test setting a unique variable.
        unsafe { std::env::set_var("MCPGW_SECRET_TEST_X", "from-env") };
        assert_eq!(resolve("${MCPGW_SECRET_TEST_X}", &dir).unwrap(), "from-env");
        let err = resolve("${MCPGW_SECRET_TEST_MISSING}", &dir).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable MCPGW_SECRET_TEST_MISSING is not set"
        );
        let f = dir.join(format!("mcpgw-secret-{}", std::process::id()));
        std::fs::write(&f, "from-file\n").unwrap();
        assert_eq!(
            resolve(&format!("file:{}", f.display()), &dir).unwrap(),
            "from-file"
        );
        std::fs::remove_file(f).unwrap();
    }
}
