//! Locale-aware formatting with ICU4X's compiled data (the `icu` feature): numbers,
//! percentages, currencies, dates, times and relative times; as [`Lang`] methods, template
//! filters and Fluent functions.
//!
//! Dates use the Gregorian fixed-calendar formatter (Flask-Babel's behaviour, and a
//! third of the any-calendar formatter's size). icu_experimental (currency, percent,
//! relative time) is 0.x: its use stays in this file.

use std::str::FromStr;

use fixed_decimal::Decimal;
use flagon::Setup;
use flagon::minijinja::value::{Kwargs, Value, ValueKind, from_args};
use flagon::minijinja::{Error, ErrorKind};
use flagon::templates::RenderRequest;
use fluent_bundle::types::{FluentNumber, FluentNumberStyle};
use fluent_bundle::{FluentArgs, FluentValue};
use icu_calendar::Gregorian;
use icu_datetime::FixedCalendarDateTimeFormatter;
use icu_datetime::fieldsets::{T, YMD, YMDT};
use icu_datetime::input::{Date, DateTime, Time};
use icu_decimal::DecimalFormatter;
use icu_decimal::options::{DecimalFormatterOptions, GroupingStrategy};
use icu_experimental::dimension::currency::CurrencyType;
use icu_experimental::dimension::currency::formatter::CurrencyFormatter;
use icu_experimental::dimension::percent::formatter::PercentFormatter;
use icu_experimental::relativetime::{RelativeTimeFormatter, RelativeTimeFormatterOptions};
use icu_locale::Locale as IcuLocale;

use crate::catalog::Bundle;
use crate::lang::Lang;
use crate::state::Cell;
use crate::timezone::Zone;

/// Why a value could not be formatted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Not a three-letter ISO 4217 code.
    #[error("`{0}` is not a currency code (ISO 4217, e.g. `EUR`)")]
    Currency(String),
    /// Not a finite number.
    #[error("not a finite number")]
    Number,
    /// Not a timezone: an IANA name (`Europe/Paris`) or a fixed UTC offset (`UTC`,
    /// `+08:00`, `-05:30`).
    #[error("`{0}` is not a timezone (an IANA name such as `Europe/Paris`, or `UTC`, `+08:00`)")]
    Timezone(String),
    /// Not a date: a Unix timestamp or `YYYY-MM-DD[THH:MM[:SS]][Z|±HH:MM]`.
    #[error("`{0}` is not a date (a Unix timestamp or `YYYY-MM-DD[THH:MM[:SS]][Z|+HH:MM]`)")]
    Date(String),
    /// ICU4X has no data for this locale and field set.
    #[error("no formatting data: {0}")]
    Data(String),
}

/// How long a date or time is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Length {
    /// `12/1/26`
    Short,
    /// `Dec 1, 2026`
    #[default]
    Medium,
    /// `December 1, 2026`
    Long,
}

impl Length {
    fn parse(s: &str) -> Option<Length> {
        match s {
            "short" => Some(Length::Short),
            "medium" => Some(Length::Medium),
            "long" | "full" => Some(Length::Long),
            _ => None,
        }
    }
}

fn icu_locale(tag: &str) -> IcuLocale {
    IcuLocale::try_from_str(tag).unwrap_or(icu_locale::locale!("und"))
}

fn decimal(n: f64) -> Result<Decimal, FormatError> {
    if !n.is_finite() {
        return Err(FormatError::Number);
    }
    Decimal::from_str(&format!("{n}")).map_err(|_| FormatError::Number)
}

fn data(e: impl std::fmt::Display) -> FormatError {
    FormatError::Data(e.to_string())
}

/// `n` in `tag`'s digits and separators, with between `min` and `max` fraction digits.
pub(crate) fn decimal_in(
    tag: &str,
    n: f64,
    min: usize,
    max: usize,
    grouping: bool,
) -> Result<String, FormatError> {
    let mut d = decimal(n)?;
    d.round(-(max.min(20) as i16));
    d.trim_end();
    d.pad_end(-(min.min(20) as i16));
    let mut opts = DecimalFormatterOptions::default();
    if !grouping {
        opts.grouping_strategy = Some(GroupingStrategy::Never);
    }
    let f = DecimalFormatter::try_new(icu_locale(tag).into(), opts).map_err(data)?;
    Ok(f.format(&d).to_string())
}

fn percent_in(tag: &str, n: f64) -> Result<String, FormatError> {
    let mut d = decimal(n * 100.0)?;
    d.round(-2);
    d.trim_end();
    let f = PercentFormatter::try_new(icu_locale(tag).into(), Default::default()).map_err(data)?;
    Ok(f.format(&d).to_string())
}

fn currency_in(tag: &str, n: f64, code: &str) -> Result<String, FormatError> {
    let ok = code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic());
    let cur = ok
        .then(|| CurrencyType::try_from_str(&code.to_ascii_lowercase()).ok())
        .flatten()
        .ok_or_else(|| FormatError::Currency(code.to_owned()))?;
    let mut d = decimal(n)?;
    d.round(-2);
    d.pad_end(-2);
    let f = CurrencyFormatter::try_new_symbol(icu_locale(tag).into(), cur, Default::default())
        .map_err(data)?;
    Ok(f.format_fixed_decimal(&d).to_string())
}

/// Seconds since the Unix epoch at `offset` seconds east of UTC, as a Gregorian date
/// and time.
fn civil(unix: i64, offset: i32) -> Result<DateTime<Gregorian>, FormatError> {
    let local = unix + i64::from(offset);
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    let date = Date::try_new_gregorian(y, m, d).map_err(|e| FormatError::Date(e.to_string()))?;
    let time = Time::try_new(
        (secs / 3600) as u8,
        (secs % 3600 / 60) as u8,
        (secs % 60) as u8,
        0,
    )
    .map_err(|e| FormatError::Date(e.to_string()))?;
    Ok(DateTime { date, time })
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD[THH:MM[:SS]][Z|±HH:MM]` as a Unix timestamp (no zone: UTC, as
/// Flask-Babel assumes for naive datetimes).
pub(crate) fn parse_iso(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_at(s.find(['T', ' ']).unwrap_or(s.len()));
    let mut parts = date.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    let rest = rest.get(1..).unwrap_or("");
    if !rest.is_empty() {
        let zone_at = rest.find(['Z', '+', '-']).unwrap_or(rest.len());
        let (time, zone) = rest.split_at(zone_at);
        let mut t = time.split(':');
        let h: i64 = t.next()?.parse().ok()?;
        let mi: i64 = t.next()?.parse().ok()?;
        let sec: f64 = t.next().map_or(Some(0.0), |v| v.parse().ok())?;
        if h > 23 || mi > 59 || !(0.0..61.0).contains(&sec) {
            return None;
        }
        secs += h * 3600 + mi * 60 + sec as i64;
        if !zone.is_empty() {
            secs -= i64::from(crate::config::parse_offset(zone)?);
        }
    }
    Some(secs)
}

fn date_in(tag: &str, unix: i64, zone: &Zone, len: Length) -> Result<String, FormatError> {
    let dt = civil(unix, zone.offset_at(unix)?)?;
    let fs = match len {
        Length::Short => YMD::short(),
        Length::Medium => YMD::medium(),
        Length::Long => YMD::long(),
    };
    let f = FixedCalendarDateTimeFormatter::<Gregorian, _>::try_new(icu_locale(tag).into(), fs)
        .map_err(data)?;
    Ok(f.format(&dt.date).to_string())
}

fn datetime_in(tag: &str, unix: i64, zone: &Zone, len: Length) -> Result<String, FormatError> {
    let dt = civil(unix, zone.offset_at(unix)?)?;
    let fs: YMDT = match len {
        Length::Short => YMD::short().with_time_hm(),
        Length::Medium => YMD::medium().with_time_hm(),
        Length::Long => YMD::long().with_time_hm(),
    };
    let f = FixedCalendarDateTimeFormatter::<Gregorian, _>::try_new(icu_locale(tag).into(), fs)
        .map_err(data)?;
    Ok(f.format(&dt).to_string())
}

fn time_in(tag: &str, unix: i64, zone: &Zone) -> Result<String, FormatError> {
    let dt = civil(unix, zone.offset_at(unix)?)?;
    let f =
        FixedCalendarDateTimeFormatter::<Gregorian, _>::try_new(icu_locale(tag).into(), T::hm())
            .map_err(data)?;
    Ok(f.format(&dt.time).to_string())
}

/// `secs` (negative: past) as a relative time in the largest unit that fits (Babel's
/// `format_timedelta(add_direction=True)` with its 0.85 threshold).
fn relative_in(tag: &str, secs: i64) -> Result<String, FormatError> {
    const UNITS: [(i64, u8); 7] = [
        (365 * 86_400, 0),
        (30 * 86_400, 1),
        (7 * 86_400, 2),
        (86_400, 3),
        (3600, 4),
        (60, 5),
        (1, 6),
    ];
    let abs = secs.unsigned_abs() as f64;
    let (size, unit) = UNITS
        .iter()
        .copied()
        .find(|(size, _)| abs / *size as f64 >= 0.85)
        .unwrap_or((1, 6));
    let n = ((abs / size as f64).round() as i64).max(1) * secs.signum();
    let prefs = icu_locale(tag).into();
    let opts = RelativeTimeFormatterOptions::default();
    let f = match unit {
        0 => RelativeTimeFormatter::try_new_long_year(prefs, opts),
        1 => RelativeTimeFormatter::try_new_long_month(prefs, opts),
        2 => RelativeTimeFormatter::try_new_long_week(prefs, opts),
        3 => RelativeTimeFormatter::try_new_long_day(prefs, opts),
        4 => RelativeTimeFormatter::try_new_long_hour(prefs, opts),
        5 => RelativeTimeFormatter::try_new_long_minute(prefs, opts),
        _ => RelativeTimeFormatter::try_new_long_second(prefs, opts),
    }
    .map_err(data)?;
    Ok(f.format(Decimal::from(n)).to_string())
}

impl Lang {
    /// `n` with this locale's digits, grouping and decimal separator, at most three
    /// fraction digits (Flask-Babel's `format_decimal`).
    pub fn format_decimal(&self, n: f64) -> Result<String, FormatError> {
        decimal_in(self.locale.as_str(), n, 0, 3, true)
    }

    /// `n` as a percentage (`0.25` → `25%`, `25 %` in French; Flask-Babel's `format_percent`).
    pub fn format_percent(&self, n: f64) -> Result<String, FormatError> {
        percent_in(self.locale.as_str(), n)
    }

    /// `amount` of currency `code` (ISO 4217) with this locale's symbol and layout
    /// (Flask-Babel's `format_currency`).
    pub fn format_currency(&self, amount: f64, code: &str) -> Result<String, FormatError> {
        currency_in(self.locale.as_str(), amount, code)
    }

    /// The date of Unix time `unix` in [this `Lang`'s timezone](Lang::timezone)
    /// (Flask-Babel's `format_date`).
    pub fn format_date(&self, unix: i64, length: Length) -> Result<String, FormatError> {
        date_in(self.locale.as_str(), unix, self.zone(), length)
    }

    /// Date and time (hours and minutes) of `unix` in [this `Lang`'s
    /// timezone](Lang::timezone) (Flask-Babel's `format_datetime`).
    pub fn format_datetime(&self, unix: i64, length: Length) -> Result<String, FormatError> {
        datetime_in(self.locale.as_str(), unix, self.zone(), length)
    }

    /// The time (hours and minutes) of `unix` in [this `Lang`'s timezone](Lang::timezone).
    pub fn format_time(&self, unix: i64) -> Result<String, FormatError> {
        time_in(self.locale.as_str(), unix, self.zone())
    }

    /// `seconds` from now as a relative time: `in 3 days`, `5 minutes ago`
    /// (Flask-Babel's `format_timedelta(add_direction=True)`).
    pub fn format_timedelta(&self, seconds: i64) -> Result<String, FormatError> {
        relative_in(self.locale.as_str(), seconds)
    }
}

thread_local! {
    /// The locale of the bundle formatting on this thread (set by the catalogs around each
    /// `format_pattern`), so the fn-pointer number formatter knows it without fluent's
    /// per-locale memoizer lock.
    static FORMATTING: std::cell::RefCell<Option<flagon::Locale>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with `locale` as the formatting locale of this thread.
pub(crate) fn formatting_in<R>(locale: &flagon::Locale, f: impl FnOnce() -> R) -> R {
    let prev = FORMATTING.with(|c| c.replace(Some(locale.clone())));
    let out = f();
    FORMATTING.with(|c| *c.borrow_mut() = prev);
    out
}

/// Fluent's number display made locale-aware (plural selection is unchanged).
fn fluent_number(
    v: &FluentValue<'_>,
    _intls: &intl_memoizer::concurrent::IntlLangMemoizer,
) -> Option<String> {
    let FluentValue::Number(FluentNumber { value, options }) = v else {
        return None;
    };
    let tag = FORMATTING.with(|c| c.borrow().as_ref().map(|l| l.as_str().to_owned()))?;
    let min = options.minimum_fraction_digits.unwrap_or(0);
    let max = options.maximum_fraction_digits.unwrap_or(3).max(min);
    match options.style {
        FluentNumberStyle::Percent => percent_in(&tag, *value).ok(),
        FluentNumberStyle::Currency => currency_in(&tag, *value, options.currency.as_deref()?).ok(),
        FluentNumberStyle::Decimal => decimal_in(&tag, *value, min, max, options.use_grouping).ok(),
    }
}

fn unix_of(v: &FluentValue<'_>) -> Option<i64> {
    match v {
        FluentValue::Number(n) => Some(n.value as i64),
        FluentValue::String(s) => parse_iso(s),
        _ => None,
    }
}

fn length_of(named: &FluentArgs<'_>, key: &str) -> Length {
    match named.get(key) {
        Some(FluentValue::String(s)) => Length::parse(s).unwrap_or_default(),
        _ => Length::Medium,
    }
}

/// Locale-aware `NUMBER()` display, `CURRENCY($n, currency: "EUR")` and
/// `DATETIME($t, dateStyle: "long", timeStyle: "short")`.
pub(crate) fn configure_bundle(bundle: &mut Bundle, timezone: &str) {
    // Checked at startup; the request's or the `Lang`'s zone wins when there is one.
    let default = Zone::parse(timezone).unwrap_or_else(Zone::utc);
    bundle.set_formatter(Some(fluent_number));
    let tag = bundle
        .locales
        .first()
        .map(|l| l.to_string())
        .unwrap_or_default();
    let t = tag.clone();
    let _ = bundle.add_function("CURRENCY", move |pos, named| {
        let code = match named.get("currency") {
            Some(FluentValue::String(s)) => s.to_string(),
            _ => return FluentValue::Error,
        };
        match pos.first() {
            Some(FluentValue::Number(n)) => currency_in(&t, n.value, &code)
                .map(FluentValue::from)
                .unwrap_or(FluentValue::Error),
            _ => FluentValue::Error,
        }
    });
    let _ = bundle.add_function("DATETIME", move |pos, named| {
        let Some(unix) = pos.first().and_then(unix_of) else {
            return FluentValue::Error;
        };
        let len = length_of(named, "dateStyle");
        let zone = crate::timezone::datetime_zone(&default);
        let r = match named.get("timeStyle") {
            Some(_) => datetime_in(&tag, unix, &zone, len),
            None => date_in(&tag, unix, &zone, len),
        };
        r.map(FluentValue::from).unwrap_or(FluentValue::Error)
    });
}

fn number_arg(v: &Value) -> Result<f64, Error> {
    match v.kind() {
        ValueKind::Number => f64::try_from(v.clone()),
        ValueKind::String => v
            .as_str()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "not a number")),
        _ => Err(Error::new(ErrorKind::InvalidOperation, "not a number")),
    }
}

fn unix_arg(v: &Value) -> Result<i64, Error> {
    match v.kind() {
        ValueKind::Number => Ok(f64::try_from(v.clone())? as i64),
        ValueKind::String => v.as_str().and_then(parse_iso).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                FormatError::Date(v.to_string()).to_string(),
            )
        }),
        _ => Err(Error::new(ErrorKind::InvalidOperation, "not a date")),
    }
}

fn fail(e: FormatError) -> Error {
    Error::new(ErrorKind::InvalidOperation, e.to_string())
}

fn length_kw(k: &Kwargs) -> Result<Length, Error> {
    let f: Option<String> = k.get("format")?;
    k.assert_all_used()?;
    match f {
        None => Ok(Length::Medium),
        Some(s) => Length::parse(&s).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                "format is short, medium, long or full",
            )
        }),
    }
}

/// Flask-Babel's filters: `decimalformat`, `percentformat`, `currencyformat(code)`,
/// `dateformat(format=…)`, `datetimeformat(format=…)`, `timeformat`, `timedeltaformat`,
/// each in the render's locale.
pub(crate) fn register_filters(app: &mut Setup<'_>, cell: &Cell) {
    fn lang(cell: &Cell, req: &RenderRequest) -> Result<Lang, Error> {
        Ok(crate::templates::lang_for(
            crate::templates::shared(cell)?,
            req,
        ))
    }
    // The date filters show the request's timezone (asking the selectors now, once).
    fn dated(cell: &Cell, req: &RenderRequest) -> Result<Lang, Error> {
        let mut l = lang(cell, req)?;
        crate::timezone::use_request_zone(&mut l, req);
        Ok(l)
    }
    let c = cell.clone();
    app.template_request_filter("decimalformat", move |req, args| {
        let (v,): (Value,) = from_args(args)?;
        lang(&c, req)?.format_decimal(number_arg(&v)?).map_err(fail)
    });
    let c = cell.clone();
    app.template_request_filter("percentformat", move |req, args| {
        let (v,): (Value,) = from_args(args)?;
        lang(&c, req)?.format_percent(number_arg(&v)?).map_err(fail)
    });
    let c = cell.clone();
    app.template_request_filter("currencyformat", move |req, args| {
        let (v, code): (Value, String) = from_args(args)?;
        lang(&c, req)?
            .format_currency(number_arg(&v)?, &code)
            .map_err(fail)
    });
    let c = cell.clone();
    app.template_request_filter("dateformat", move |req, args| {
        let (v, k): (Value, Kwargs) = from_args(args)?;
        dated(&c, req)?
            .format_date(unix_arg(&v)?, length_kw(&k)?)
            .map_err(fail)
    });
    let c = cell.clone();
    app.template_request_filter("datetimeformat", move |req, args| {
        let (v, k): (Value, Kwargs) = from_args(args)?;
        dated(&c, req)?
            .format_datetime(unix_arg(&v)?, length_kw(&k)?)
            .map_err(fail)
    });
    let c = cell.clone();
    app.template_request_filter("timeformat", move |req, args| {
        let (v,): (Value,) = from_args(args)?;
        dated(&c, req)?.format_time(unix_arg(&v)?).map_err(fail)
    });
    let c = cell.clone();
    app.template_request_filter("timedeltaformat", move |req, args| {
        let (v,): (Value,) = from_args(args)?;
        lang(&c, req)?
            .format_timedelta(number_arg(&v)? as i64)
            .map_err(fail)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        let dt = civil(1_796_141_340, 0).unwrap(); // 2026-12-01T16:09:00Z
        assert_eq!(
            (
                dt.date.era_year().year,
                dt.date.month().ordinal,
                dt.date.day_of_month().0
            ),
            (2026, 12, 1)
        );
        assert_eq!(parse_iso("2026-12-01T16:09:00Z"), Some(1_796_141_340));
        assert_eq!(parse_iso("2026-12-02T00:09+08:00"), Some(1_796_141_340));
        assert_eq!(parse_iso("2026-13-01"), None);
        assert_eq!(parse_iso("1969-12-31"), Some(-86_400));
    }
}
