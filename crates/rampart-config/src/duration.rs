//! Durations in the config are human strings: `30s`, `5m`, `1h 30m`, `5d`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// A duration as a person writes it: in its largest whole unit (`90days`, `1h`, `30s`), the way
/// the template shows defaults. humantime alone would write 90 days as months, days and hours.
pub fn format(d: Duration) -> String {
    const UNITS: [(u64, &str, &str); 3] = [(86400, "day", "days"), (3600, "h", "h"), (60, "m", "m")];
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 {
        return humantime::format_duration(d).to_string();
    }
    for (size, one, many) in UNITS {
        if secs >= size && secs.is_multiple_of(size) {
            let n = secs / size;
            return format!("{n}{}", if n == 1 { one } else { many });
        }
    }
    format!("{secs}s")
}

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
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
            seq.serialize_element(&super::format(*x))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_the_largest_whole_unit_and_parses_back() {
        for (secs, text) in [(0, "0s"), (3, "3s"), (90, "90s"), (600, "10m"), (3600, "1h"), (86400, "1day"), (90 * 86400, "90days")] {
            assert_eq!(format(Duration::from_secs(secs)), text);
            assert_eq!(humantime::parse_duration(text).unwrap(), Duration::from_secs(secs));
        }
        let odd = Duration::from_millis(1500);
        assert_eq!(humantime::parse_duration(&format(odd)).unwrap(), odd);
    }
}
