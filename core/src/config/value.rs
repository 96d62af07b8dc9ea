//! How a knob's value is written in a config, read back and checked: the valid [`Range`]
//! of a number, and one [`Form`] for each kind of knob (seconds, bytes, counts, a port, a
//! word, a directory, the connect mode).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Seconds in a day: the top of the ranges where a longer wait is nonsense.
pub(crate) const DAY: Duration = Duration::from_secs(86_400);
/// Seconds in an hour.
pub(crate) const HOUR: Duration = Duration::from_secs(3_600);
/// A tenth of a second: the shortest timeout or backoff (zero would fail every request or
/// reconnect in a hot loop).
pub(crate) const TENTH: Duration = Duration::from_millis(100);
/// The longest duration accepted: ten years of seconds (365.25 days a year).
pub const MAX_DURATION_SECS: u64 = 315_576_000;
/// The longest duration accepted by any knob, [`MAX_DURATION_SECS`].
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(MAX_DURATION_SECS);
/// A mebibyte.
pub(crate) const MIB: u64 = 1024 * 1024;
/// A gibibyte: the largest line lonc accepts.
pub(crate) const GIB: u64 = 1024 * MIB;

/// How a peer's connections are opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectMode {
    /// Connect to every peer at start and keep one connection up (the seed).
    Eager,
    /// Connect when a request (or a delayed message) needs it; close after
    /// `idle_timeout` without traffic (loncnew).
    OnDemand,
}

impl ConnectMode {
    /// The spelling used in `loncConnectMode`: `eager` or `on-demand`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectMode::Eager => "eager",
            ConnectMode::OnDemand => "on-demand",
        }
    }
}

impl fmt::Display for ConnectMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The valid values of a knob, both bounds included, and the unit they are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range<T> {
    /// The smallest valid value.
    pub min: T,
    /// The largest valid value.
    pub max: T,
    /// The unit of the written value (`seconds`, `bytes`), or empty for a plain count.
    pub unit: &'static str,
}

impl<T> Range<T> {
    /// The range `min..=max`, written in `unit`.
    pub const fn new(min: T, max: T, unit: &'static str) -> Self {
        Range { min, max, unit }
    }
}

impl<T: PartialOrd> Range<T> {
    /// Whether `value` lies in the range.
    pub fn contains(&self, value: &T) -> bool {
        self.min <= *value && *value <= self.max
    }
}

/// A knob's value as a config file writes it: durations in seconds, numbers in decimal.
pub trait KnobValue {
    /// The value written as in a config file.
    fn written(&self) -> String;
}

impl KnobValue for Duration {
    fn written(&self) -> String {
        seconds(*self)
    }
}

impl KnobValue for u64 {
    fn written(&self) -> String {
        self.to_string()
    }
}

impl<T: KnobValue> fmt::Display for Range<T> {
    /// `min to max unit`, e.g. `1 to 315576000 seconds` or `1 to 64`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", self.min.written(), self.max.written())?;
        if !self.unit.is_empty() {
            write!(f, " {}", self.unit)?;
        }
        Ok(())
    }
}

/// Why a knob's (non-empty) text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// It cannot be read as this kind of value; the text says what was expected.
    Unreadable(String),
    /// It reads, but lies outside [`Form::valid`].
    OutOfRange,
}

/// One kind of knob value, `T` being the type of the settings field it fills.
pub trait Form<T> {
    /// `text` (never empty) read and checked.
    fn read(&self, text: &str) -> Result<T, Refused>;
    /// `value` written as in a config file (what `check-config` prints).
    fn write(&self, value: &T) -> String;
    /// The valid values in words: `1 to 64`, `eager or on-demand`, `a user name`.
    fn valid(&self) -> String;
    /// Whether values are checked against [`Form::valid`] (a range or a list of choices)
    /// rather than taken as written.
    fn checked(&self) -> bool {
        true
    }
}

/// A duration in seconds (`5`, `0.5`), in a range.
#[derive(Debug, Clone, Copy)]
pub struct Seconds(pub Range<Duration>);

impl Seconds {
    /// The range `min..=max`, in seconds.
    pub const fn range(min: Duration, max: Duration) -> Range<Duration> {
        Range::new(min, max, "seconds")
    }
}

impl Form<Duration> for Seconds {
    fn read(&self, text: &str) -> Result<Duration, Refused> {
        let value = parse_duration(text).map_err(Refused::Unreadable)?;
        in_range(value, &self.0)
    }
    fn write(&self, value: &Duration) -> String {
        seconds(*value)
    }
    fn valid(&self) -> String {
        self.0.to_string()
    }
}

/// Declares a form of whole numbers in a range, its unit and what a bad value should have
/// been.
macro_rules! whole_form {
    ($(#[$doc:meta])* $form:ident, $unit:literal, $expected:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $form(pub Range<u64>);

        impl $form {
            /// The range `min..=max`.
            pub const fn range(min: u64, max: u64) -> Range<u64> {
                Range::new(min, max, $unit)
            }
        }

        impl<T: TryFrom<u64> + fmt::Display> Form<T> for $form {
            fn read(&self, text: &str) -> Result<T, Refused> {
                let value = whole(text).ok_or_else(|| Refused::Unreadable($expected.to_owned()))?;
                let value = in_range(value, &self.0)?;
                T::try_from(value).map_err(|_| Refused::OutOfRange)
            }
            fn write(&self, value: &T) -> String {
                value.to_string()
            }
            fn valid(&self) -> String {
                self.0.to_string()
            }
        }
    };
}

whole_form!(
    /// A number of bytes, in a range.
    Bytes,
    "bytes",
    "expected a whole number of bytes"
);
whole_form!(
    /// A count (attempts, connections, requests), in a range.
    Count,
    "",
    "expected a whole number"
);
whole_form!(
    /// A TCP port number, in a range.
    Port,
    "",
    "expected a TCP port number"
);

/// Any word, taken as written; the text says what it names (`a user name`).
#[derive(Debug, Clone, Copy)]
pub struct Text(pub &'static str);

impl Form<String> for Text {
    fn read(&self, text: &str) -> Result<String, Refused> {
        Ok(text.to_owned())
    }
    fn write(&self, value: &String) -> String {
        value.clone()
    }
    fn valid(&self) -> String {
        self.0.to_owned()
    }
    fn checked(&self) -> bool {
        false
    }
}

/// A directory's path, taken as written.
#[derive(Debug, Clone, Copy)]
pub struct Dir;

impl Form<PathBuf> for Dir {
    fn read(&self, text: &str) -> Result<PathBuf, Refused> {
        Ok(PathBuf::from(text))
    }
    fn write(&self, value: &PathBuf) -> String {
        value.display().to_string()
    }
    fn valid(&self) -> String {
        "a directory".to_owned()
    }
    fn checked(&self) -> bool {
        false
    }
}

/// The connect mode, `eager` or `on-demand` (any letter case).
#[derive(Debug, Clone, Copy)]
pub struct Mode;

impl Form<ConnectMode> for Mode {
    fn read(&self, text: &str) -> Result<ConnectMode, Refused> {
        [ConnectMode::Eager, ConnectMode::OnDemand]
            .into_iter()
            .find(|mode| text.eq_ignore_ascii_case(mode.as_str()))
            .ok_or_else(|| Refused::Unreadable("expected eager or on-demand".to_owned()))
    }
    fn write(&self, value: &ConnectMode) -> String {
        value.to_string()
    }
    fn valid(&self) -> String {
        "eager or on-demand".to_owned()
    }
}

/// `value` if it lies in `range`.
fn in_range<T: PartialOrd>(value: T, range: &Range<T>) -> Result<T, Refused> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(Refused::OutOfRange)
    }
}

/// Only ASCII digits: no sign, no spaces, no exponent.
fn all_digits(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())
}

/// Only ASCII digits, read saturating: a huge number is out of every range, not junk.
fn whole(value: &str) -> Option<u64> {
    all_digits(value).then(|| {
        value.bytes().fold(0u64, |n, b| {
            n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
        })
    })
}

/// A duration in seconds: `5`, `0.5`, `.5` or `5.`; digits beyond nanoseconds are dropped,
/// and a number of seconds too large for a `u64` is read as the largest.
pub(crate) fn parse_duration(value: &str) -> Result<Duration, String> {
    if value.starts_with('-') {
        return Err("expected a number of seconds, a duration cannot be negative".to_owned());
    }
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits_ok(int) || !digits_ok(frac) {
        return Err("expected a number of seconds like 5 or 0.5".to_owned());
    }
    let secs = whole(int).unwrap_or(0);
    let mut nanos: u32 = 0;
    for i in 0..9 {
        let digit = frac.as_bytes().get(i).map_or(0, |b| u32::from(b - b'0'));
        nanos = nanos * 10 + digit;
    }
    Ok(Duration::new(secs, nanos))
}

/// A duration as seconds, shortest exact decimal (`5`, `0.5`, `0.000000001`).
pub(crate) fn seconds(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        d.as_secs().to_string()
    } else {
        let frac = format!("{nanos:09}");
        format!("{}.{}", d.as_secs(), frac.trim_end_matches('0'))
    }
}
