//! Reading a config: the file is merged over the defaults as TOML *values* first and
//! deserialized second, so role-specific defaults (the `submissions` listener is implicit TLS,
//! `submission` is STARTTLS) survive a table that sets only `bind`. `--set key.path=VALUE`
//! overrides are applied to the same value tree ([`apply_override`]).

use std::path::{Path, PathBuf};

use crate::{Config, ConfigError};

/// Applies one `--set KEY=VALUE` to a TOML tree. VALUE is a TOML value (`25`, `"x"`,
/// `["127.0.0.1:25"]`); a bare word that is not TOML is taken as a string, so
/// `--set server.hostname=mx.example.org` works without shell-quoted quotes.
pub fn apply_override(root: &mut toml::Table, arg: &str) -> Result<(), ConfigError> {
    let err = |message: &str| ConfigError::Override { arg: arg.into(), message: message.into() };
    let (key, raw) = arg.split_once('=').ok_or_else(|| err("expected KEY=VALUE"))?;
    let key = key.trim();
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").expect("the table was parsed from `v = ...`"),
        Err(_) if !raw.trim_start().starts_with(['[', '{', '"', '\'']) => toml::Value::String(raw.trim().to_string()),
        Err(e) => return Err(err(&format!("value is not TOML: {}", e.message()))),
    };
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(err("empty key segment"));
    }
    let (last, parents) = parts.split_last().expect("split always yields one part");
    let mut table = root;
    for part in parents {
        let entry = table.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry.as_table_mut().ok_or_else(|| err(&format!("`{part}` is not a table")))?;
    }
    table.insert(last.to_string(), value);
    Ok(())
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// A deserialization error's place as a key path: `queue.route[0].tls`, with keys TOML could
/// not write bare (addresses in `submission.allowed_senders`) quoted as TOML quotes them.
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => push_key(&mut out, key),
            Segment::Enum { variant } => push_key(&mut out, variant),
            Segment::Unknown => push_key(&mut out, "?"),
        }
    }
    out
}

fn push_key(out: &mut String, key: &str) {
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(&crate::quoted_key(key));
}

impl Config {
    /// Reads `path`, applies `overrides`, and resolves relative paths against the file's
    /// directory. Does not validate: call [`Config::validate`].
    pub fn load(path: &Path, overrides: &[String]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_toml(&text, overrides, &base).map_err(|e| match e {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax { path: path.into(), message },
            other => other,
        })
    }

    /// Parses a config text. `base` is the directory relative paths are resolved against.
    pub fn from_toml(text: &str, overrides: &[String], base: &Path) -> Result<Config, ConfigError> {
        let file: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: PathBuf::new(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        let mut tree = Config::default().to_toml();
        merge(&mut tree, file);
        for arg in overrides {
            apply_override(&mut tree, arg)?;
        }
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(tree)).map_err(|e| {
            let key = key_path(e.path());
            // toml appends "in `table`" on a second line; the key path already says where.
            let message = e.into_inner().to_string();
            let message = message.lines().next().unwrap_or_default().to_string();
            ConfigError::invalid(key, message)
        })?;
        config.resolve_paths(base);
        Ok(config)
    }

    /// The config as a TOML table (what the template shows, and what a file is merged over).
    pub(crate) fn to_toml(&self) -> toml::Table {
        match toml::Value::try_from(self) {
            Ok(toml::Value::Table(t)) => t,
            _ => unreachable!("Config serializes to a table"),
        }
    }

    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.server.data_dir);
        fix(&mut self.store.encryption.key_file);
        self.tls.resolve_paths(fix);
        self.acme.resolve_paths(fix);
        self.queue.resolve_paths(fix);
        self.gateway.resolve_paths(fix);
        self.mta_sts.resolve_paths(fix);
        self.store.resolve_paths(fix);
    }
}
