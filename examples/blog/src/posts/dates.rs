//! Dates as pages show them: Unix seconds split into year, month and day (UTC), formatted
//! per locale by the catalogs' `date` message (`December 2, 2026`, `2026年12月2日`).

use serde::{Deserialize, Serialize};

/// A calendar date for templates: `_("date", year=d.year, month=d.month, day=d.day)`, and
/// `d.iso` for `<time datetime>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Date {
    /// The year, as text (so that Fluent does not group its digits).
    pub year: String,
    /// 1 to 12 (the catalogs select the month's name by it).
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    /// `2026-12-02`.
    pub iso: String,
}

impl Date {
    /// The UTC date of `ts` (Unix seconds).
    ///
    /// ```
    /// let d = example_blog::posts::Date::from_unix(1_764_633_600);
    /// assert_eq!((d.year.as_str(), d.month, d.day), ("2025", 12, 2));
    /// assert_eq!(d.iso, "2025-12-02");
    /// ```
    pub fn from_unix(ts: i64) -> Date {
        let (y, m, d) = ymd(ts);
        Date {
            year: y.to_string(),
            month: m,
            day: d,
            iso: format!("{y:04}-{m:02}-{d:02}"),
        }
    }
}

/// Year, month and day (UTC) of `ts` in Unix seconds: the proleptic Gregorian calendar by
/// Howard Hinnant's `civil_from_days`.
///
/// ```
/// assert_eq!(example_blog::posts::ymd(0), (1970, 1, 1));
/// assert_eq!(example_blog::posts::ymd(951_782_400), (2000, 2, 29));
/// assert_eq!(example_blog::posts::ymd(-1), (1969, 12, 31));
/// ```
pub fn ymd(ts: i64) -> (i64, u32, u32) {
    let z = ts.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
