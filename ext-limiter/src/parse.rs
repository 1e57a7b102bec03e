//! Limit strings in Flask-Limiter's grammar: `10/second`, `100 per minute`, `5/10 minutes`,
//! several joined by `;`, `,` or `|`.
//!
//! One limit is `COUNT (/ | per) [MULTIPLES] UNIT[s]`, case-insensitive, spaces allowed
//! around each part; `UNIT` is `second`, `minute`, `hour`, `day`, `month` (30 days) or `year`
//! (360 days, as in Flask-Limiter). A count or multiple of 0 is refused.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use crate::error::LimitParseError;

/// The time unit of a [`Rate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Unit {
    /// One second.
    Second,
    /// 60 seconds.
    Minute,
    /// 3600 seconds.
    Hour,
    /// 86 400 seconds.
    Day,
    /// 30 days.
    Month,
    /// 12 × 30 = 360 days, as in Flask-Limiter.
    Year,
}

impl Unit {
    /// The unit's length in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3600,
            Unit::Day => 86_400,
            Unit::Month => 30 * 86_400,
            Unit::Year => 360 * 86_400,
        }
    }

    /// Its name, singular (`minute`).
    pub fn name(self) -> &'static str {
        match self {
            Unit::Second => "second",
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::Day => "day",
            Unit::Month => "month",
            Unit::Year => "year",
        }
    }

    fn from_word(word: &str) -> Option<Unit> {
        let w = word.to_ascii_lowercase();
        let w = w.strip_suffix('s').unwrap_or(&w);
        Some(match w {
            "second" => Unit::Second,
            "minute" => Unit::Minute,
            "hour" => Unit::Hour,
            "day" => Unit::Day,
            "month" => Unit::Month,
            "year" => Unit::Year,
            _ => return None,
        })
    }
}

/// The longest period a limit may name: 100 years of 360 days.
const MAX_PERIOD_SECS: u64 = 100 * 360 * 86_400;

/// One limit: `count` requests per `multiples` × `unit`.
///
/// ```
/// use flagon_limiter::{Rate, Unit};
///
/// let rate: Rate = "5/10 minutes".parse().unwrap();
/// assert_eq!(rate.count(), 5);
/// assert_eq!(rate.period().as_secs(), 600);
/// assert_eq!(rate.to_string(), "5/10 minutes");
/// assert_eq!(Rate::new(10, 1, Unit::Second).unwrap().to_string(), "10/second");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    count: NonZeroU32,
    multiples: NonZeroU32,
    unit: Unit,
}

impl Rate {
    /// `count` per `multiples` × `unit`; `None` if either number is 0 or the period is longer
    /// than 100 years.
    pub fn new(count: u32, multiples: u32, unit: Unit) -> Option<Rate> {
        let rate = Rate {
            count: NonZeroU32::new(count)?,
            multiples: NonZeroU32::new(multiples)?,
            unit,
        };
        (rate.period_secs() <= MAX_PERIOD_SECS).then_some(rate)
    }

    /// How many requests the period allows (also the burst).
    pub fn count(&self) -> u32 {
        self.count.get()
    }

    /// How many units the period spans (`10` in `5/10 minutes`).
    pub fn multiples(&self) -> u32 {
        self.multiples.get()
    }

    /// The unit.
    pub fn unit(&self) -> Unit {
        self.unit
    }

    fn period_secs(&self) -> u64 {
        u64::from(self.multiples.get()) * self.unit.seconds()
    }

    /// The period the count applies to.
    pub fn period(&self) -> Duration {
        Duration::from_secs(self.period_secs())
    }

    /// The GCRA emission interval: the period divided by the count (one request is
    /// replenished every interval).
    pub fn interval(&self) -> Duration {
        self.period() / self.count.get()
    }

    pub(crate) fn quota(&self) -> governor::Quota {
        // `interval` is at least 1 ns: the period is ≥ 1 s and the count < 2^32.
        governor::Quota::with_period(self.interval())
            .expect("a non-zero interval")
            .allow_burst(self.count)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.multiples.get() == 1 {
            write!(f, "{}/{}", self.count, self.unit.name())
        } else {
            write!(f, "{}/{} {}s", self.count, self.multiples, self.unit.name())
        }
    }
}

impl std::str::FromStr for Rate {
    type Err = LimitParseError;

    fn from_str(s: &str) -> Result<Rate, LimitParseError> {
        parse_one(s)
    }
}

fn bad(input: &str, reason: impl Into<String>) -> LimitParseError {
    LimitParseError {
        input: input.chars().take(120).collect(),
        reason: reason.into(),
    }
}

fn parse_one(item: &str) -> Result<Rate, LimitParseError> {
    let s = item.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(bad(item, "a limit starts with a count, as in `10/minute`"));
    }
    let count: u32 = s[..digits]
        .parse()
        .map_err(|_| bad(item, "the count is too large"))?;
    let rest = s[digits..].trim_start();
    let rest = if let Some(r) = rest.strip_prefix('/') {
        r
    } else if rest.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("per")) {
        &rest[3..]
    } else {
        return Err(bad(item, "expected `/` or `per` after the count"));
    };
    let rest = rest.trim_start();
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let multiples: u32 = if digits == 0 {
        1
    } else {
        rest[..digits]
            .parse()
            .map_err(|_| bad(item, "the number of units is too large"))?
    };
    let word = rest[digits..].trim();
    let unit = Unit::from_word(word).ok_or_else(|| {
        bad(
            item,
            format!(
                "unknown unit `{}`; use second, minute, hour, day, month or year",
                word.chars().take(20).collect::<String>()
            ),
        )
    })?;
    if count == 0 {
        return Err(bad(item, "a count of 0 would refuse every request"));
    }
    if multiples == 0 {
        return Err(bad(item, "a period of 0 units is empty"));
    }
    Rate::new(count, multiples, unit)
        .ok_or_else(|| bad(item, "the period is longer than 100 years"))
}

/// Parses a limit string: one or more limits joined by `;`, `,` or `|`.
///
/// ```
/// let rates = flagon_limiter::parse_limits("100/day; 10 per minute").unwrap();
/// assert_eq!(rates.len(), 2);
/// assert!(flagon_limiter::parse_limits("10 per fortnight").is_err());
/// ```
pub fn parse_limits(s: &str) -> Result<Vec<Rate>, LimitParseError> {
    if s.trim().is_empty() {
        return Err(bad(s, "the limit string is empty"));
    }
    if s.len() > 1024 {
        return Err(bad(s, "the limit string is longer than 1024 bytes"));
    }
    s.split([';', ',', '|']).map(parse_one).collect()
}

/// Formats rates as a limit string that [`parse_limits`] reads back.
#[cfg(test)]
pub(crate) fn format_limits(rates: &[Rate]) -> String {
    rates
        .iter()
        .map(Rate::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_strings() {
        let table: &[(&str, &[(u32, u64)])] = &[
            ("10/second", &[(10, 1)]),
            ("10/seconds", &[(10, 1)]),
            ("100 per minute", &[(100, 60)]),
            ("100 PER Minute", &[(100, 60)]),
            ("5/10 minutes", &[(5, 600)]),
            ("2 per 30 seconds", &[(2, 30)]),
            ("  7 / hour  ", &[(7, 3600)]),
            ("1/day", &[(1, 86_400)]),
            ("3/month", &[(3, 30 * 86_400)]),
            ("3/year", &[(3, 360 * 86_400)]),
            ("100/day;10 per minute", &[(100, 86_400), (10, 60)]),
            ("5/2 seconds;10/hour", &[(5, 2), (10, 3600)]),
            ("100/day, 500/7 days", &[(100, 86_400), (500, 7 * 86_400)]),
            ("1/second|2/minute", &[(1, 1), (2, 60)]),
            ("10per minute", &[(10, 60)]),
        ];
        for (input, want) in table {
            let got = parse_limits(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            let got: Vec<(u32, u64)> = got
                .iter()
                .map(|r| (r.count(), r.period().as_secs()))
                .collect();
            assert_eq!(&got, want, "{input}");
        }
    }

    #[test]
    fn invalid_strings() {
        let table: &[(&str, &str)] = &[
            ("", "empty"),
            ("   ", "empty"),
            ("minute", "starts with a count"),
            ("10", "expected `/` or `per`"),
            ("10 minute", "expected `/` or `per`"),
            ("10/", "unknown unit"),
            ("10/fortnight", "unknown unit `fortnight`"),
            ("10/10", "unknown unit"),
            ("0/minute", "count of 0"),
            ("10/0 minutes", "period of 0"),
            ("99999999999/second", "count is too large"),
            ("1/99999999999 seconds", "number of units is too large"),
            ("1/4000000 days", "longer than 100 years"),
            ("10/minute;", "starts with a count"),
            ("10/minute;;5/second", "starts with a count"),
            ("-1/minute", "starts with a count"),
            ("10/minute extra", "unknown unit"),
            ("10 / minutes s", "unknown unit"),
            ("1.5/second", "expected `/` or `per`"),
        ];
        for (input, want) in table {
            let err = parse_limits(input).expect_err(input);
            assert!(err.to_string().contains(want), "{input}: {err}");
        }
        assert!(
            parse_limits(&"1/second;".repeat(200))
                .unwrap_err()
                .to_string()
                .contains("1024")
        );
    }

    #[test]
    fn quota_is_burst_then_interval() {
        let rate: Rate = "10/minute".parse().unwrap();
        let q = rate.quota();
        assert_eq!(q.burst_size().get(), 10);
        assert_eq!(q.replenish_interval(), Duration::from_secs(6));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn unit() -> impl Strategy<Value = Unit> {
            prop_oneof![
                Just(Unit::Second),
                Just(Unit::Minute),
                Just(Unit::Hour),
                Just(Unit::Day),
                Just(Unit::Month),
                Just(Unit::Year),
            ]
        }

        fn rate() -> impl Strategy<Value = Rate> {
            (1u32..=u32::MAX, 1u32..=1000, unit())
                .prop_filter_map("period too long", |(c, m, u)| Rate::new(c, m, u))
        }

        proptest! {
            #[test]
            fn display_round_trips(rates in proptest::collection::vec(rate(), 1..5)) {
                let text = format_limits(&rates);
                prop_assert_eq!(parse_limits(&text).unwrap(), rates);
            }

            #[test]
            fn any_spelling_round_trips(
                r in rate(),
                per in prop_oneof![Just("/"), Just(" per "), Just("PER"), Just(" / ")],
                plural in any::<bool>(),
                upper in any::<bool>(),
            ) {
                let mut unit = r.unit().name().to_owned();
                if plural { unit.push('s'); }
                if upper { unit = unit.to_uppercase(); }
                let text = format!("{}{per}{} {unit}", r.count(), r.multiples());
                prop_assert_eq!(parse_limits(&text).unwrap(), vec![r]);
            }

            #[test]
            fn never_panics(s in "\\PC{0,64}") {
                let _ = parse_limits(&s);
            }
        }
    }
}
