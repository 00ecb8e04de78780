//! Durations in the config are human strings: `30s`, `5m`, `1h 30m`, `5d`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!("`{text}` is not a duration like \"30s\" or \"5m\": {e}"))
    })
}

/// A list of durations: `["5m", "30m", "1h"]`.
pub mod list {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeSeq};

    pub fn serialize<S: Serializer>(d: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(d.len()))?;
        for x in d {
            seq.serialize_element(&humantime::format_duration(*x).to_string())?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts
            .iter()
            .map(|t| {
                humantime::parse_duration(t)
                    .map_err(|e| serde::de::Error::custom(format!("`{t}` is not a duration like \"30s\" or \"5m\": {e}")))
            })
            .collect()
    }
}
