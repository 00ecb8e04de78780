//! How a config section is declared: its struct, each key's default and each key's
//! documentation in one place, so none of them can be written twice.
//!
//! [`section!`] takes a struct whose fields read `pub key: Type = default` (the syntax of Rust's
//! unstable default field values) and emits the plain struct, its `Default` impl, and
//! [`Section::KEYS`]: every key's name with its `///` text. The template `rampart init` writes
//! ([`crate::template`]) renders those docs above `key = value` lines taken from
//! `Config::default()`, so the file, the docs and the defaults come from this one declaration.
//! Validation lives beside each section, in its module.

use crate::ConfigError;

/// One key of a section: its name and the text of its `///` lines, one line each.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    pub doc: &'static str,
}

/// A field's key: its name, without the `r#` of a raw identifier (`r#override` is the key
/// `override`, a Rust keyword).
pub const fn key_name(field: &'static str) -> &'static str {
    let b = field.as_bytes();
    if b.len() > 2 && b[0] == b'r' && b[1] == b'#' {
        match std::str::from_utf8(b.split_at(2).1) {
            Ok(name) => name,
            Err(_) => field,
        }
    } else {
        field
    }
}

/// A config table declared with [`section!`].
pub trait Section {
    /// The keys in declaration order (the order the template shows them in).
    const KEYS: &'static [Key];
}

/// Declares a section; see the module doc. Doc comments must come before other attributes on
/// each field (only `///` lines are collected as the key's documentation).
macro_rules! section {
    (
        $(#[$($meta:tt)*])*
        pub struct $name:ident {
            $(
                $(#[$($field_meta:tt)*])*
                pub $field:ident : $ty:ty = $default:expr
            ),* $(,)?
        }
    ) => {
        $(#[$($meta)*])*
        pub struct $name {
            $( $(#[$($field_meta)*])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name { $( $field: $default, )* }
            }
        }

        impl $crate::section::Section for $name {
            const KEYS: &'static [$crate::section::Key] = &[
                $( $crate::section::Key {
                    name: $crate::section::key_name(stringify!($field)),
                    doc: concat!($( doc_line!($($field_meta)*) ),*),
                } ),*
            ];
        }
    };
}

/// The text of a `///` line (with a newline), or nothing for any other attribute.
macro_rules! doc_line {
    (doc = $text:literal) => {
        concat!($text, "\n")
    };
    ($($other:tt)*) => {
        ""
    };
}

/// Collects validation problems; each names its key path. Every section adds its own, so one
/// `rampart config check` lists them all.
#[derive(Debug, Default)]
pub struct Problems(Vec<ConfigError>);

impl Problems {
    pub fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError::invalid(key, message));
    }

    /// `key` must be at least 1.
    pub fn at_least_one(&mut self, key: impl Into<String>, value: u64) {
        if value == 0 {
            self.add(key, "must be at least 1");
        }
    }

    /// `file` must exist (certificates, keys, CA and password files).
    pub fn file_exists(&mut self, key: impl Into<String>, file: &std::path::Path) {
        if !file.is_file() {
            self.add(key, format!("file {} does not exist", file.display()));
        }
    }

    pub fn into_vec(self) -> Vec<ConfigError> {
        self.0
    }
}
