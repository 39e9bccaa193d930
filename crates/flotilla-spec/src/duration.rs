//! A duration with nanosecond precision that serialises readably (`1m30s`).
//!
//! Compose durations use Go's syntax (`1h2m3.5s`, `500ms`, `10us`), so the
//! model keeps that syntax on the wire and the parser lives here, next to the
//! type, so that `Deserialize` and the Compose reader accept the same text.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A non-negative duration in nanoseconds. Serialised as a Go-style string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub u64);

/// Why a duration string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationError(pub String);

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DurationError {}

const NS: u64 = 1;
const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
const M: u64 = 60 * S;
const H: u64 = 60 * M;

impl Duration {
    pub const fn from_secs(s: u64) -> Self {
        Duration(s * S)
    }
    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms * MS)
    }
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    pub const fn as_millis(self) -> u64 {
        self.0 / MS
    }
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.0)
    }
}

fn unit_factor(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => NS,
        "us" | "µs" | "μs" => US,
        "ms" => MS,
        "s" => S,
        "m" => M,
        "h" => H,
        _ => return None,
    })
}

impl FromStr for Duration {
    type Err = DurationError;

    /// Parses Go duration syntax: a sequence of decimal numbers each with a
    /// unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), e.g. `1h2m3.5s`. A bare
    /// `0` is accepted; a bare number without unit is not (Compose refuses it).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            DurationError(format!(
                "invalid duration {text:?}: {why} (expected e.g. 30s, 1m30s, 500ms, 1h2m3.5s)"
            ))
        };
        let s = text.trim();
        if s == "0" {
            return Ok(Duration(0));
        }
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.starts_with('-') {
            return Err(bad("negative durations are not allowed"));
        }
        let s = s.strip_prefix('+').unwrap_or(s);
        let mut total: u128 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            if num_len == 0 {
                return Err(bad("expected a number"));
            }
            let (num, after) = rest.split_at(num_len);
            let unit_len = after
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(after.len());
            let (unit, after) = after.split_at(unit_len);
            if unit.is_empty() {
                return Err(bad("missing unit"));
            }
            let factor = unit_factor(unit).ok_or_else(|| bad(&format!("unknown unit {unit:?}")))?;
            let (int_part, frac_part) = match num.split_once('.') {
                Some((i, f)) => (i, f),
                None => (num, ""),
            };
            if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
                return Err(bad("malformed number"));
            }
            let int: u128 = if int_part.is_empty() {
                0
            } else {
                int_part.parse().map_err(|_| bad("number too large"))?
            };
            let mut frac_ns: u128 = 0;
            let mut scale: u128 = factor as u128;
            for d in frac_part.bytes().take(18) {
                scale /= 10;
                frac_ns += (d - b'0') as u128 * scale;
            }
            total = total
                .checked_add(
                    int.checked_mul(factor as u128)
                        .ok_or_else(|| bad("too large"))?,
                )
                .and_then(|t| t.checked_add(frac_ns))
                .ok_or_else(|| bad("too large"))?;
            rest = after;
        }
        u64::try_from(total)
            .map(Duration)
            .map_err(|_| bad("too large"))
    }
}

impl fmt::Display for Duration {
    /// Go-style: `0s`, `500ms`, `1m30s`, `1h2m3.5s`, `10us`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n == 0 {
            return f.write_str("0s");
        }
        if n < S {
            let (unit, factor) = if n < US {
                ("ns", NS)
            } else if n < MS {
                ("us", US)
            } else {
                ("ms", MS)
            };
            return write!(f, "{}{}", fmt_frac(n, factor), unit);
        }
        let h = n / H;
        let m = (n % H) / M;
        let s = n % M;
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if h > 0 || m > 0 {
            write!(f, "{m}m")?;
        }
        write!(f, "{}s", fmt_frac(s, S))
    }
}

/// `value / factor` as a decimal without trailing zeros.
fn fmt_frac(value: u64, factor: u64) -> String {
    let int = value / factor;
    let frac = value % factor;
    if frac == 0 {
        return int.to_string();
    }
    let width = factor.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{int}.{}", digits.trim_end_matches('0'))
}

impl Serialize for Duration {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_syntax() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("30s", 30 * S),
            ("1m30s", 90 * S),
            ("500ms", 500 * MS),
            ("1h2m3.5s", H + 2 * M + 3 * S + S / 2),
            ("10us", 10 * US),
            ("10µs", 10 * US),
            ("7ns", 7),
            ("1.5h", H + 30 * M),
            (".5s", S / 2),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Duration>(), Ok(Duration(*want)), "{text}");
        }
    }

    #[test]
    fn refuses_bad_text() {
        for text in ["", "10", "1x", "-1s", "s", "1..2s", "1.2.3s"] {
            assert!(text.parse::<Duration>().is_err(), "{text} should fail");
        }
    }

    #[test]
    fn displays_and_round_trips() {
        let cases = [
            (0, "0s"),
            (500 * MS, "500ms"),
            (90 * S, "1m30s"),
            (H + 2 * M + 3 * S + S / 2, "1h2m3.5s"),
            (10 * US, "10us"),
            (1500 * US, "1.5ms"),
            (H, "1h0m0s"),
        ];
        for (n, text) in cases {
            assert_eq!(Duration(n).to_string(), text);
            assert_eq!(text.parse::<Duration>(), Ok(Duration(n)));
        }
    }
}
