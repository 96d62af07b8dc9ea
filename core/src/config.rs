//! The daemon's configuration: `PerlSetVar <name> <value>` lines (PROTOCOL.md 2.1 and
//! 2.3) parsed into typed [`Settings`], every knob with its default.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::hosts::{MAX_SOCKET_PATH, socket_path_len};

/// How a peer's connections are opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectMode {
    /// Connect to every peer at start and keep one connection up (the seed).
    Eager,
    /// Connect when a request (or a delayed message) needs it; close after
    /// `idle_timeout` without traffic (loncnew).
    OnDemand,
}

/// Everything one peer link needs to know (PROTOCOL.md 2.3).
#[derive(Debug, Clone, PartialEq)]
pub struct LinkSettings {
    /// `loncTransactionTimeout`: a request's reply must arrive within this.
    pub transaction_timeout: Duration,
    /// `loncHandshakeTimeout`: each handshake step, and each delayed message.
    pub handshake_timeout: Duration,
    /// `loncConnectTimeout`: TCP connect.
    pub connect_timeout: Duration,
    /// `loncPongDelay`: pause between `ok` and `pong`.
    pub pong_delay: Duration,
    /// `loncRetryMin`: shortest backoff after a failed attempt.
    pub retry_min: Duration,
    /// `loncRetryMax`: backoff is drawn from `[retry_min, retry_max)`.
    pub retry_max: Duration,
    /// `loncMaxAttempts`: consecutive failed attempts before the peer is dead.
    pub max_attempts: u32,
    /// `loncDelayedRescan`: how often the delayed spool is looked at.
    pub delayed_rescan: Duration,
    /// `loncMaxRequest`: longest request line from a client (bytes, LF not counted).
    pub max_request: usize,
    /// `loncMaxReply`: longest reply line from lond (bytes, LF not counted).
    pub max_reply: usize,
    /// `loncConnectMode`.
    pub connect_mode: ConnectMode,
    /// `loncIdleTimeout`: on-demand mode closes a connection idle this long.
    pub idle_timeout: Duration,
    /// `loncMaxConnections`: TCP connections per peer (at least 1).
    pub max_connections: usize,
    /// `loncPipeline`: requests in flight per connection (at least 1).
    pub pipeline: usize,
}

impl Default for LinkSettings {
    /// The defaults of PROTOCOL.md 2.3.
    fn default() -> Self {
        LinkSettings {
            transaction_timeout: Duration::from_secs(300),
            handshake_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            pong_delay: Duration::ZERO,
            retry_min: Duration::from_secs(120),
            retry_max: Duration::from_secs(360),
            max_attempts: 5,
            delayed_rescan: Duration::from_secs(60),
            max_request: 16 * 1024 * 1024,
            max_reply: 256 * 1024 * 1024,
            connect_mode: ConnectMode::Eager,
            idle_timeout: Duration::from_secs(300),
            max_connections: 1,
            pipeline: 1,
        }
    }
}

/// Seconds in a day: the top of the ranges where a longer wait is nonsense.
const DAY: Duration = Duration::from_secs(86_400);
/// Seconds in an hour.
const HOUR: Duration = Duration::from_secs(3_600);
/// A tenth of a second: the shortest timeout or backoff (zero would fail every request or
/// reconnect in a hot loop).
const TENTH: Duration = Duration::from_millis(100);
/// The longest duration accepted by any knob, [`MAX_DURATION_SECS`].
const MAX_DURATION: Duration = Duration::from_secs(MAX_DURATION_SECS);
/// A gibibyte: the largest line lonc accepts.
const GIB: u64 = 1024 * 1024 * 1024;

/// The valid range of every knob, next to its knob: a value outside it is an error at
/// load (`file:line: knob: value is out of range (min to max unit)`), as an unparsable
/// one is. The README's knob table shows the same ranges (a test keeps them in step).
impl LinkSettings {
    /// `loncTransactionTimeout`: 0.1 s (zero would fail every request) to a day.
    pub const TRANSACTION_TIMEOUT: Range<Duration> = Range::new(TENTH, DAY, "seconds");
    /// `loncHandshakeTimeout`: 0.1 s to an hour.
    pub const HANDSHAKE_TIMEOUT: Range<Duration> = Range::new(TENTH, HOUR, "seconds");
    /// `loncConnectTimeout`: 0.1 s to an hour.
    pub const CONNECT_TIMEOUT: Range<Duration> = Range::new(TENTH, HOUR, "seconds");
    /// `loncPongDelay`: none at all to a minute (the original slept 5 s).
    pub const PONG_DELAY: Range<Duration> =
        Range::new(Duration::ZERO, Duration::from_secs(60), "seconds");
    /// `loncRetryMin`: 0.1 s (no hot reconnect loop) to a day; at most `loncRetryMax`.
    pub const RETRY_MIN: Range<Duration> = Range::new(TENTH, DAY, "seconds");
    /// `loncRetryMax`: 0.1 s to a day; at least `loncRetryMin`.
    pub const RETRY_MAX: Range<Duration> = Range::new(TENTH, DAY, "seconds");
    /// `loncMaxAttempts`: 1 to a million.
    pub const MAX_ATTEMPTS: Range<u64> = Range::new(1, 1_000_000, "");
    /// `loncDelayedRescan`: a second (zero made the daemon spin) to ten years.
    pub const DELAYED_RESCAN: Range<Duration> =
        Range::new(Duration::from_secs(1), MAX_DURATION, "seconds");
    /// `loncMaxRequest`: 1 KiB to 1 GiB.
    pub const MAX_REQUEST: Range<u64> = Range::new(1024, GIB, "bytes");
    /// `loncMaxReply`: 1 KiB to 1 GiB.
    pub const MAX_REPLY: Range<u64> = Range::new(1024, GIB, "bytes");
    /// `loncIdleTimeout`: 0.1 s to ten years.
    pub const IDLE_TIMEOUT: Range<Duration> = Range::new(TENTH, MAX_DURATION, "seconds");
    /// `loncMaxConnections`: 1 to 64 (each one is a lond process on the peer).
    pub const MAX_CONNECTIONS: Range<u64> = Range::new(1, 64, "");
    /// `loncPipeline`: 1 to 1024.
    pub const PIPELINE: Range<u64> = Range::new(1, 1024, "");
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

/// The whole configuration of the daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `lonHostID`: this server's host id.
    pub host_id: String,
    /// `lonTabDir`: the directory holding `hosts.tab`.
    pub tab_dir: PathBuf,
    /// `lonSockDir`: the per-peer sockets and `delayed/`.
    pub sock_dir: PathBuf,
    /// `londPort`: every peer's lond port.
    pub lond_port: u16,
    /// `lonDaemons`: `logs/lonc.pid`, `logs/lonc.log`, `logs/lonnet.perm.log` under it.
    pub daemons_dir: PathBuf,
    /// `lonDocRoot`: `lon-status/loncstatus.txt` under it.
    pub doc_root: PathBuf,
    /// `loncUser`: the user the daemon must run as.
    pub user: String,
    /// The knobs of one link.
    pub link: LinkSettings,
}

impl Settings {
    /// `londPort`: a TCP port.
    pub const LOND_PORT: Range<u64> = Range::new(1, 65_535, "");
}

/// The required variables of PROTOCOL.md 2.1, in the order they are checked.
pub const REQUIRED_VARIABLES: [&str; 6] = [
    "lonHostID",
    "lonTabDir",
    "lonSockDir",
    "londPort",
    "lonDaemons",
    "lonDocRoot",
];

/// The optional knobs of PROTOCOL.md 2.3, in the order [`Settings::describe`] lists them.
pub const OPTIONAL_VARIABLES: [&str; 15] = [
    "loncTransactionTimeout",
    "loncHandshakeTimeout",
    "loncConnectTimeout",
    "loncPongDelay",
    "loncRetryMin",
    "loncRetryMax",
    "loncMaxAttempts",
    "loncDelayedRescan",
    "loncMaxRequest",
    "loncMaxReply",
    "loncConnectMode",
    "loncIdleTimeout",
    "loncMaxConnections",
    "loncPipeline",
    "loncUser",
];

/// The longest duration accepted: ten years of seconds (365.25 days a year).
pub const MAX_DURATION_SECS: u64 = 315_576_000;

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

/// One `PerlSetVar <name> <value>` line, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetVar {
    /// The variable name (2nd field), case kept.
    pub name: String,
    /// The value (3rd field); empty when the line has only two fields. Later fields are
    /// ignored, as the original's `split` did.
    pub value: String,
    /// The source name given to the parser (usually the file's path).
    pub source: String,
    /// The 1-based line number in that source.
    pub line: usize,
}

/// Every `PerlSetVar <name> <value>` line of `text`, in order.
///
/// A line counts when its first whitespace-separated field is `PerlSetVar` (any letter
/// case, as Apache accepts) and it has a second field; all other lines are ignored. The
/// name and value are the 2nd and 3rd fields. `source` names the text in [`SetVar::source`].
pub fn parse_perlsetvars(source: &str, text: &str) -> Vec<SetVar> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut vars = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if !first.eq_ignore_ascii_case("PerlSetVar") {
            continue;
        }
        let Some(name) = fields.next() else { continue };
        let value = fields.next().unwrap_or("");
        vars.push(SetVar {
            name: name.to_owned(),
            value: value.to_owned(),
            source: source.to_owned(),
            line: index + 1,
        });
    }
    vars
}

/// One configuration error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable (PROTOCOL.md 2.1) was set in none of the sources.
    #[error("{}: required variable {variable} is not set", files_read(.files))]
    Missing {
        /// The variable's name.
        variable: String,
        /// The names of all sources read, in order.
        files: Vec<String>,
    },
    /// A variable's effective value could not be used.
    #[error("{file}:{line}: {variable}: {message}")]
    Invalid {
        /// The source of the offending line.
        file: String,
        /// Its 1-based line number.
        line: usize,
        /// The variable's name.
        variable: String,
        /// What is wrong, and what was expected.
        message: String,
    },
}

/// How the list of sources read appears in a [`ConfigError::Missing`] message.
fn files_read(files: &[String]) -> String {
    if files.is_empty() {
        "(no configuration read)".to_owned()
    } else {
        files.join(", ")
    }
}

/// All the errors found while building [`Settings`]; never empty when returned by
/// [`ConfigBuilder::build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The errors: missing required variables first, then bad values in source and line
    /// order.
    pub errors: Vec<ConfigError>,
    /// Warnings found on the way (as in [`Loaded::warnings`]); not part of `Display`.
    pub warnings: Vec<String>,
}

impl fmt::Display for ConfigErrors {
    /// One error a line, `file:line: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A successfully built configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The effective settings.
    pub settings: Settings,
    /// Things worth telling the operator that do not stop the daemon, each
    /// `file:line: message` (for example an unknown `lonc…` variable, likely a typo).
    pub warnings: Vec<String>,
}

/// Gathers configuration sources in order and builds [`Settings`]; a variable set in
/// several places takes its last value (later sources win, and later lines within one).
///
/// ```
/// use lonc_core::config::ConfigBuilder;
/// let base = "PerlSetVar lonHostID msu1\nPerlSetVar lonTabDir /t\nPerlSetVar lonSockDir /s\n\
///             PerlSetVar londPort 5663\nPerlSetVar lonDaemons /d\nPerlSetVar lonDocRoot /r\n";
/// let loaded = ConfigBuilder::new()
///     .add_source("loncapa.conf", base)
///     .add_source("lonc.conf", "PerlSetVar loncPongDelay 0.5\n")
///     .build()
///     .unwrap();
/// assert_eq!(loaded.settings.host_id, "msu1");
/// assert_eq!(loaded.settings.link.pong_delay.as_millis(), 500);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConfigBuilder {
    /// The source names, in the order added.
    sources: Vec<String>,
    /// Every `PerlSetVar` line of every source, in order.
    vars: Vec<SetVar>,
}

impl ConfigBuilder {
    /// A builder with no sources.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the text of one source (e.g. a file's contents) named `name` in messages.
    /// Sources added later override earlier ones.
    pub fn add_source(&mut self, name: &str, text: &str) -> &mut Self {
        self.sources.push(name.to_owned());
        self.vars.extend(parse_perlsetvars(name, text));
        self
    }

    /// Checks every variable and builds the settings, or returns every error found.
    pub fn build(&self) -> Result<Loaded, ConfigErrors> {
        let mut b = Build::new(self);
        let warnings = b.warnings();
        match b.settings() {
            Some(settings) if b.errors.is_empty() => Ok(Loaded { settings, warnings }),
            _ => Err(b.into_errors(warnings)),
        }
    }
}

/// The state of one [`ConfigBuilder::build`].
struct Build<'a> {
    /// The builder being built.
    builder: &'a ConfigBuilder,
    /// Each variable's effective (last) line.
    last: HashMap<&'a str, &'a SetVar>,
    /// Errors so far, unsorted.
    errors: Vec<ConfigError>,
    /// Every range checked, `(variable, range)`, in the order checked (for the test that
    /// keeps the README's table in step with the code).
    ranges: Vec<(&'static str, String)>,
}

impl<'a> Build<'a> {
    fn new(builder: &'a ConfigBuilder) -> Self {
        let last = builder.vars.iter().map(|v| (v.name.as_str(), v)).collect();
        Build {
            builder,
            last,
            errors: Vec::new(),
            ranges: Vec::new(),
        }
    }

    /// Every variable read and checked against its range; `None` if a required one is
    /// missing or bad (the errors say why).
    fn settings(&mut self) -> Option<Settings> {
        let host_id = self.required("lonHostID", parse_text);
        let tab_dir = self.required("lonTabDir", parse_path);
        let sock_dir = self.required("lonSockDir", parse_path);
        let lond_port = self.required_in("londPort", parse_port, Settings::LOND_PORT);
        let daemons_dir = self.required("lonDaemons", parse_path);
        let doc_root = self.required("lonDocRoot", parse_path);
        if let Some(dir) = &sock_dir {
            self.check_sock_dir(dir);
        }

        let d = LinkSettings::default();
        type L = LinkSettings;
        let link = LinkSettings {
            transaction_timeout: self.duration(
                "loncTransactionTimeout",
                d.transaction_timeout,
                L::TRANSACTION_TIMEOUT,
            ),
            handshake_timeout: self.duration(
                "loncHandshakeTimeout",
                d.handshake_timeout,
                L::HANDSHAKE_TIMEOUT,
            ),
            connect_timeout: self.duration(
                "loncConnectTimeout",
                d.connect_timeout,
                L::CONNECT_TIMEOUT,
            ),
            pong_delay: self.duration("loncPongDelay", d.pong_delay, L::PONG_DELAY),
            retry_min: self.duration("loncRetryMin", d.retry_min, L::RETRY_MIN),
            retry_max: self.duration("loncRetryMax", d.retry_max, L::RETRY_MAX),
            max_attempts: self.count("loncMaxAttempts", d.max_attempts, L::MAX_ATTEMPTS),
            delayed_rescan: self.duration("loncDelayedRescan", d.delayed_rescan, L::DELAYED_RESCAN),
            max_request: self.size("loncMaxRequest", d.max_request, L::MAX_REQUEST),
            max_reply: self.size("loncMaxReply", d.max_reply, L::MAX_REPLY),
            connect_mode: self.choice(
                "loncConnectMode",
                d.connect_mode,
                parse_mode,
                "eager or on-demand",
            ),
            idle_timeout: self.duration("loncIdleTimeout", d.idle_timeout, L::IDLE_TIMEOUT),
            max_connections: self.count(
                "loncMaxConnections",
                d.max_connections,
                L::MAX_CONNECTIONS,
            ),
            pipeline: self.count("loncPipeline", d.pipeline, L::PIPELINE),
        };
        let user = self.optional("loncUser", "www".to_owned(), parse_text);
        self.check_retry(&link);
        Some(Settings {
            host_id: host_id?,
            tab_dir: tab_dir?,
            sock_dir: sock_dir?,
            lond_port: u16::try_from(lond_port?).ok()?,
            daemons_dir: daemons_dir?,
            doc_root: doc_root?,
            user,
            link,
        })
    }

    /// A warning for every line setting an unknown `lonc<Upper>…` variable, and for every
    /// line setting a known variable again (naming the line it overrides), in order.
    fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let mut previous: HashMap<&str, &SetVar> = HashMap::new();
        for var in &self.builder.vars {
            let name = var.name.as_str();
            let known = REQUIRED_VARIABLES.contains(&name) || OPTIONAL_VARIABLES.contains(&name);
            if known && let Some(before) = previous.insert(name, var) {
                warnings.push(format!(
                    "{}:{}: {name} is set again, overriding {}:{} (the last one wins)",
                    var.source, var.line, before.source, before.line
                ));
            }
            let looks_ours = var
                .name
                .strip_prefix("lonc")
                .and_then(|rest| rest.chars().next())
                .is_some_and(|c| c.is_ascii_uppercase());
            if !looks_ours || OPTIONAL_VARIABLES.contains(&var.name.as_str()) {
                continue;
            }
            let hint = OPTIONAL_VARIABLES
                .iter()
                .chain(REQUIRED_VARIABLES.iter())
                .find(|known| known.eq_ignore_ascii_case(&var.name))
                .map(|known| format!(" (did you mean {known}?)"))
                .unwrap_or_default();
            warnings.push(format!(
                "{}:{}: unknown variable {} ignored{hint}",
                var.source, var.line, var.name
            ));
        }
        warnings
    }

    /// `lonSockDir` must leave room for a host id in a Unix socket path.
    fn check_sock_dir(&mut self, dir: &Path) {
        let shortest = socket_path_len(dir, "x");
        if shortest <= MAX_SOCKET_PATH {
            return;
        }
        if let Some(var) = self.last.get("lonSockDir").copied() {
            let message = format!(
                "{} is too long: the socket of a one-letter host id would be {shortest} bytes, a Unix socket path holds at most {MAX_SOCKET_PATH}",
                dir.display()
            );
            self.invalid(var, message);
        }
    }

    fn invalid(&mut self, var: &SetVar, message: String) {
        self.errors.push(ConfigError::Invalid {
            file: var.source.clone(),
            line: var.line,
            variable: var.name.clone(),
            message,
        });
    }

    /// The parsed value of `name`, or `None` after recording why not.
    fn required<T>(&mut self, name: &str, parse: fn(&str) -> Result<T, String>) -> Option<T> {
        let Some(var) = self.last.get(name).copied() else {
            self.errors.push(ConfigError::Missing {
                variable: name.to_owned(),
                files: self.builder.sources.clone(),
            });
            return None;
        };
        self.value(var, parse)
    }

    /// The parsed value of `name`, or `default` when unset (or bad, after recording why).
    fn optional<T>(&mut self, name: &str, default: T, parse: fn(&str) -> Result<T, String>) -> T {
        match self.last.get(name).copied() {
            Some(var) => self.value(var, parse).unwrap_or(default),
            None => default,
        }
    }

    /// `value` (the parsed value of `name`, `None` if unparsable) if it lies in `range`;
    /// else `None` after recording that it is out of range. Records `range` as checked.
    fn in_range<T: KnobValue + PartialOrd>(
        &mut self,
        name: &'static str,
        value: Option<T>,
        range: Range<T>,
    ) -> Option<T> {
        self.ranges.push((name, range.to_string()));
        let value = value?;
        if range.contains(&value) {
            return Some(value);
        }
        if let Some(var) = self.last.get(name).copied() {
            self.invalid(var, format!("{} is out of range ({range})", var.value));
        }
        None
    }

    /// [`Build::required`], then [`Build::in_range`].
    fn required_in<T: KnobValue + PartialOrd>(
        &mut self,
        name: &'static str,
        parse: fn(&str) -> Result<T, String>,
        range: Range<T>,
    ) -> Option<T> {
        let value = self.required(name, parse);
        self.in_range(name, value, range)
    }

    /// The value of `name` if set, parsed and in `range`; `default` when unset (or bad,
    /// after recording why).
    fn optional_in<T: KnobValue + PartialOrd + Copy>(
        &mut self,
        name: &'static str,
        default: T,
        parse: fn(&str) -> Result<T, String>,
        range: Range<T>,
    ) -> T {
        let value = match self.last.get(name).copied() {
            Some(var) => self.value(var, parse),
            None => Some(default),
        };
        self.in_range(name, value, range).unwrap_or(default)
    }

    /// A duration knob, in seconds.
    fn duration(
        &mut self,
        name: &'static str,
        default: Duration,
        range: Range<Duration>,
    ) -> Duration {
        self.optional_in(name, default, parse_duration, range)
    }

    /// A whole-number knob read with `parse`, checked as a `u64`, stored as a `T`.
    fn whole<T>(
        &mut self,
        name: &'static str,
        default: T,
        parse: fn(&str) -> Result<u64, String>,
        range: Range<u64>,
    ) -> T
    where
        T: Copy + TryFrom<u64>,
        u64: TryFrom<T>,
    {
        let Ok(wide) = u64::try_from(default) else {
            return default;
        };
        let value = self.optional_in(name, wide, parse, range);
        T::try_from(value).unwrap_or(default)
    }

    /// A count knob (attempts, connections, requests).
    fn count<T>(&mut self, name: &'static str, default: T, range: Range<u64>) -> T
    where
        T: Copy + TryFrom<u64>,
        u64: TryFrom<T>,
    {
        self.whole(name, default, parse_count, range)
    }

    /// A size knob, in bytes.
    fn size(&mut self, name: &'static str, default: usize, range: Range<u64>) -> usize {
        self.whole(name, default, parse_size, range)
    }

    /// A knob with a few spelled-out values, `choices` saying which.
    fn choice<T>(
        &mut self,
        name: &'static str,
        default: T,
        parse: fn(&str) -> Result<T, String>,
        choices: &str,
    ) -> T {
        self.ranges.push((name, choices.to_owned()));
        self.optional(name, default, parse)
    }

    fn value<T>(&mut self, var: &SetVar, parse: fn(&str) -> Result<T, String>) -> Option<T> {
        if var.value.is_empty() {
            self.invalid(var, "no value given".to_owned());
            return None;
        }
        match parse(&var.value) {
            Ok(value) => Some(value),
            Err(expected) => {
                self.invalid(var, format!("bad value {:?}: {expected}", var.value));
                None
            }
        }
    }

    /// `loncRetryMin` must not exceed `loncRetryMax`; the error goes on whichever of the
    /// two was set later (or the one that was set at all).
    fn check_retry(&mut self, link: &LinkSettings) {
        let bad = |e: &ConfigError| {
            matches!(e, ConfigError::Invalid { variable, .. }
                if variable == "loncRetryMin" || variable == "loncRetryMax")
        };
        if link.retry_min <= link.retry_max || self.errors.iter().any(bad) {
            return;
        }
        let min = self.last.get("loncRetryMin").copied();
        let max = self.last.get("loncRetryMax").copied();
        let at = |v: Option<&SetVar>| match v {
            Some(v) => format!("{}:{}", v.source, v.line),
            None => "default".to_owned(),
        };
        let (min_s, max_s) = (seconds(link.retry_min), seconds(link.retry_max));
        if let Some(var) = min {
            let message = format!(
                "{min_s} is greater than loncRetryMax ({max_s}, {})",
                at(max)
            );
            self.invalid(var, message);
        } else if let Some(var) = max {
            let message = format!("{max_s} is less than loncRetryMin ({min_s}, {})", at(min));
            self.invalid(var, message);
        }
    }

    fn into_errors(mut self, warnings: Vec<String>) -> ConfigErrors {
        let order: HashMap<&str, usize> = self
            .builder
            .sources
            .iter()
            .enumerate()
            .rev()
            .map(|(i, s)| (s.as_str(), i))
            .collect();
        // Stable sort: missing variables keep the order of REQUIRED_VARIABLES.
        self.errors.sort_by_key(|e| match e {
            ConfigError::Missing { .. } => (0, 0, 0),
            ConfigError::Invalid { file, line, .. } => (
                1,
                order.get(file.as_str()).copied().unwrap_or(usize::MAX),
                *line,
            ),
        });
        ConfigErrors {
            errors: self.errors,
            warnings,
        }
    }
}

/// A non-empty string (emptiness is checked before parsing).
fn parse_text(value: &str) -> Result<String, String> {
    Ok(value.to_owned())
}

fn parse_path(value: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(value))
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

/// A port number; its range is [`Settings::LOND_PORT`].
fn parse_port(value: &str) -> Result<u64, String> {
    whole(value).ok_or_else(|| "expected a TCP port number".to_owned())
}

/// A duration in seconds: `5`, `0.5`, `.5` or `5.`; digits beyond nanoseconds are dropped,
/// and a number of seconds too large for a `u64` is read as the largest.
fn parse_duration(value: &str) -> Result<Duration, String> {
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

/// A number of bytes.
fn parse_size(value: &str) -> Result<u64, String> {
    whole(value).ok_or_else(|| "expected a whole number of bytes".to_owned())
}

/// A count.
fn parse_count(value: &str) -> Result<u64, String> {
    whole(value).ok_or_else(|| "expected a whole number".to_owned())
}

fn parse_mode(value: &str) -> Result<ConnectMode, String> {
    if value.eq_ignore_ascii_case("eager") {
        Ok(ConnectMode::Eager)
    } else if value.eq_ignore_ascii_case("on-demand") {
        Ok(ConnectMode::OnDemand)
    } else {
        Err("expected eager or on-demand".to_owned())
    }
}

/// A duration as seconds, shortest exact decimal (`5`, `0.5`, `0.000000001`).
fn seconds(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        d.as_secs().to_string()
    } else {
        let frac = format!("{nanos:09}");
        format!("{}.{}", d.as_secs(), frac.trim_end_matches('0'))
    }
}

impl Settings {
    /// Every effective setting, one `name value` line each, in the order of
    /// [`REQUIRED_VARIABLES`] then [`OPTIONAL_VARIABLES`], durations in seconds, sizes in
    /// bytes (for `check-config`). Prefixing each line with `PerlSetVar ` gives a config
    /// that builds the same settings (as long as no value contains whitespace).
    pub fn describe(&self) -> String {
        let l = &self.link;
        let lines: [(&str, String); 21] = [
            ("lonHostID", self.host_id.clone()),
            ("lonTabDir", self.tab_dir.display().to_string()),
            ("lonSockDir", self.sock_dir.display().to_string()),
            ("londPort", self.lond_port.to_string()),
            ("lonDaemons", self.daemons_dir.display().to_string()),
            ("lonDocRoot", self.doc_root.display().to_string()),
            ("loncTransactionTimeout", seconds(l.transaction_timeout)),
            ("loncHandshakeTimeout", seconds(l.handshake_timeout)),
            ("loncConnectTimeout", seconds(l.connect_timeout)),
            ("loncPongDelay", seconds(l.pong_delay)),
            ("loncRetryMin", seconds(l.retry_min)),
            ("loncRetryMax", seconds(l.retry_max)),
            ("loncMaxAttempts", l.max_attempts.to_string()),
            ("loncDelayedRescan", seconds(l.delayed_rescan)),
            ("loncMaxRequest", l.max_request.to_string()),
            ("loncMaxReply", l.max_reply.to_string()),
            ("loncConnectMode", l.connect_mode.to_string()),
            ("loncIdleTimeout", seconds(l.idle_timeout)),
            ("loncMaxConnections", l.max_connections.to_string()),
            ("loncPipeline", l.pipeline.to_string()),
            ("loncUser", self.user.clone()),
        ];
        let mut out = String::new();
        for (name, value) in lines {
            out.push_str(name);
            out.push(' ');
            out.push_str(&value);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BASE: &str = "\
PerlSetVar lonHostID msu1
PerlSetVar lonTabDir /home/httpd/lonTabs
PerlSetVar lonSockDir /home/httpd/sockets
PerlSetVar londPort 5663
PerlSetVar lonDaemons /home/httpd/perl
PerlSetVar lonDocRoot /home/httpd/html
";

    fn base_settings() -> Settings {
        Settings {
            host_id: "msu1".into(),
            tab_dir: "/home/httpd/lonTabs".into(),
            sock_dir: "/home/httpd/sockets".into(),
            lond_port: 5663,
            daemons_dir: "/home/httpd/perl".into(),
            doc_root: "/home/httpd/html".into(),
            user: "www".into(),
            link: LinkSettings::default(),
        }
    }

    fn build(sources: &[(&str, &str)]) -> Result<Loaded, ConfigErrors> {
        let mut b = ConfigBuilder::new();
        for (name, text) in sources {
            b.add_source(name, text);
        }
        b.build()
    }

    /// Builds BASE plus `extra` (in a second source `extra.conf`).
    fn with(extra: &str) -> Result<Loaded, ConfigErrors> {
        build(&[("base.conf", BASE), ("extra.conf", extra)])
    }

    /// The single error message of BASE plus `extra`.
    fn error_of(extra: &str) -> String {
        let errors = with(extra).unwrap_err();
        assert_eq!(errors.errors.len(), 1, "{errors}");
        errors.to_string()
    }

    fn link_of(extra: &str) -> LinkSettings {
        with(extra).unwrap().settings.link
    }

    // ---- parse_perlsetvars ----

    #[test]
    fn perlsetvar_lines_are_parsed_with_source_and_line() {
        let text = "# comment\n\
                    <Location />\n\
                    PerlSetVar lonHostID msu1\n\
                    \n\
                    \tperlsetvar\tlonTabDir   /tabs  trailing junk\r\n\
                    PERLSETVAR londPort\n\
                    PerlSetVar\n\
                    PerlSetVarX lonFoo bar\n\
                    SetVar lonFoo bar\n\
                    PerlSetVar lonDocRoot /r";
        let vars = parse_perlsetvars("a.conf", text);
        let got: Vec<_> = vars
            .iter()
            .map(|v| (v.name.as_str(), v.value.as_str(), v.source.as_str(), v.line))
            .collect();
        assert_eq!(
            got,
            [
                ("lonHostID", "msu1", "a.conf", 3),
                ("lonTabDir", "/tabs", "a.conf", 5),
                ("londPort", "", "a.conf", 6),
                ("lonDocRoot", "/r", "a.conf", 10),
            ]
        );
    }

    #[test]
    fn perlsetvar_handles_bom_and_crlf() {
        let vars = parse_perlsetvars("a", "\u{feff}PerlSetVar a b\r\nPerlSetVar c d\r\n");
        assert_eq!(vars.len(), 2);
        assert_eq!((vars[0].name.as_str(), vars[0].value.as_str()), ("a", "b"));
        assert_eq!((vars[1].value.as_str(), vars[1].line), ("d", 2));
    }

    #[test]
    fn perlsetvar_of_empty_text_is_empty() {
        assert!(parse_perlsetvars("a", "").is_empty());
        assert!(parse_perlsetvars("a", "\n\n  \n").is_empty());
    }

    // ---- required variables and defaults ----

    #[test]
    fn minimal_config_gets_every_default() {
        let loaded = build(&[("base.conf", BASE)]).unwrap();
        assert_eq!(loaded.settings, base_settings());
        assert!(loaded.warnings.is_empty());
        assert_eq!(loaded.settings.user, "www");
        assert_eq!(loaded.settings.link.connect_mode, ConnectMode::Eager);
    }

    #[test]
    fn each_missing_required_variable_is_named_with_the_files() {
        for name in REQUIRED_VARIABLES {
            let text: String = BASE
                .lines()
                .filter(|l| l.split_whitespace().nth(1) != Some(name))
                .map(|l| format!("{l}\n"))
                .collect();
            let errors = build(&[("a.conf", &text), ("b.conf", "")]).unwrap_err();
            assert_eq!(
                errors.errors,
                [ConfigError::Missing {
                    variable: name.to_owned(),
                    files: vec!["a.conf".into(), "b.conf".into()],
                }]
            );
            assert_eq!(
                errors.to_string(),
                format!("a.conf, b.conf: required variable {name} is not set")
            );
        }
    }

    #[test]
    fn no_sources_reports_every_required_variable() {
        let errors = ConfigBuilder::new().build().unwrap_err();
        let expected: Vec<String> = REQUIRED_VARIABLES
            .iter()
            .map(|n| format!("(no configuration read): required variable {n} is not set"))
            .collect();
        assert_eq!(errors.to_string(), expected.join("\n"));
    }

    #[test]
    fn required_names_are_case_sensitive() {
        let text = BASE.replace("lonHostID", "lonhostid");
        let errors = build(&[("a.conf", &text)]).unwrap_err();
        assert_eq!(
            errors.to_string(),
            "a.conf: required variable lonHostID is not set"
        );
    }

    #[test]
    fn empty_value_is_an_error() {
        assert_eq!(
            error_of("PerlSetVar lonHostID\n"),
            "extra.conf:1: lonHostID: no value given"
        );
        assert_eq!(
            error_of("\nPerlSetVar loncUser\n"),
            "extra.conf:2: loncUser: no value given"
        );
    }

    #[test]
    fn port_must_be_1_to_65535() {
        assert_eq!(
            with("PerlSetVar londPort 1\n").unwrap().settings.lond_port,
            1
        );
        assert_eq!(
            with("PerlSetVar londPort 65535\n")
                .unwrap()
                .settings
                .lond_port,
            65535
        );
        for bad in [
            "0",
            "65536",
            "+1",
            "-1",
            "abc",
            "56 63",
            "0x10",
            "99999999999999999999",
        ] {
            let text = format!("PerlSetVar londPort {bad}\n");
            // "56 63": only the third field counts, which is "56": fine.
            if bad == "56 63" {
                assert_eq!(with(&text).unwrap().settings.lond_port, 56);
                continue;
            }
            let want = if bad.bytes().all(|b| b.is_ascii_digit()) {
                format!("extra.conf:1: londPort: {bad} is out of range (1 to 65535)")
            } else {
                format!("extra.conf:1: londPort: bad value {bad:?}: expected a TCP port number")
            };
            assert_eq!(error_of(&text), want);
        }
    }

    // ---- durations ----

    #[test]
    fn durations_accept_whole_and_decimal_seconds() {
        let cases = [
            ("0", Duration::ZERO),
            ("5", Duration::from_secs(5)),
            ("0.5", Duration::from_millis(500)),
            (".5", Duration::from_millis(500)),
            ("5.", Duration::from_secs(5)),
            ("007.250", Duration::from_millis(7250)),
            ("0.000000001", Duration::from_nanos(1)),
            (
                "1.0000000019",
                Duration::from_secs(1) + Duration::from_nanos(1),
            ),
            ("315576000", Duration::from_secs(MAX_DURATION_SECS)),
            ("315576000.000", Duration::from_secs(MAX_DURATION_SECS)),
            ("0000000000000000000000000000001", Duration::from_secs(1)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn durations_reject_junk_negative_nan_and_inf() {
        let junk = "expected a number of seconds like 5 or 0.5";
        let neg = "expected a number of seconds, a duration cannot be negative";
        let cases = [
            ("abc", junk),
            (".", junk),
            ("1.2.3", junk),
            ("+1", junk),
            ("1e3", junk),
            ("NaN", junk),
            ("nan", junk),
            ("inf", junk),
            ("infinity", junk),
            ("5s", junk),
            ("٣", junk),
            ("-1", neg),
            ("-0.5", neg),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Err(expected.to_owned()), "{text}");
        }
    }

    #[test]
    fn huge_durations_parse_and_are_left_to_the_ranges() {
        let cases = [
            ("315576001", Duration::from_secs(315_576_001)),
            ("315576000.000000001", Duration::new(MAX_DURATION_SECS, 1)),
            ("18446744073709551616", Duration::from_secs(u64::MAX)),
            (
                "999999999999999999999999999.5",
                Duration::new(u64::MAX, 500_000_000),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
        for (name, range) in [
            ("loncDelayedRescan", "1 to 315576000 seconds"),
            ("loncIdleTimeout", "0.1 to 315576000 seconds"),
        ] {
            for huge in ["315576000.000000001", "18446744073709551616"] {
                assert_eq!(
                    error_of(&format!("PerlSetVar {name} {huge}\n")),
                    format!("extra.conf:1: {name}: {huge} is out of range ({range})")
                );
            }
        }
    }

    /// Reads one duration field of [`LinkSettings`].
    type DurationField = fn(&LinkSettings) -> Duration;

    #[test]
    fn every_duration_knob_is_read_and_reported() {
        let knobs: [(&str, DurationField); 8] = [
            ("loncTransactionTimeout", |l| l.transaction_timeout),
            ("loncHandshakeTimeout", |l| l.handshake_timeout),
            ("loncConnectTimeout", |l| l.connect_timeout),
            ("loncPongDelay", |l| l.pong_delay),
            ("loncRetryMin", |l| l.retry_min),
            ("loncRetryMax", |l| l.retry_max),
            ("loncDelayedRescan", |l| l.delayed_rescan),
            ("loncIdleTimeout", |l| l.idle_timeout),
        ];
        for (name, get) in knobs {
            // 150.25 lies between the retry defaults, so min <= max still holds; a pong
            // delay is at most 60 s.
            let (text, want) = match name {
                "loncPongDelay" => ("50.25", Duration::from_millis(50_250)),
                _ => ("150.25", Duration::from_millis(150_250)),
            };
            let link = link_of(&format!("PerlSetVar {name} {text}\n"));
            assert_eq!(get(&link), want, "{name}");
            assert_eq!(
                error_of(&format!("PerlSetVar {name} soon\n")),
                format!(
                    "extra.conf:1: {name}: bad value \"soon\": expected a number of seconds like 5 or 0.5"
                )
            );
        }
    }

    // ---- sizes and counts ----

    #[test]
    fn sizes_are_byte_counts_from_1_kib_to_1_gib() {
        let link = link_of("PerlSetVar loncMaxRequest 1024\nPerlSetVar loncMaxReply 1000000\n");
        assert_eq!((link.max_request, link.max_reply), (1024, 1_000_000));
        for name in ["loncMaxRequest", "loncMaxReply"] {
            for bad in ["-1", "+5", "1k", "1.5"] {
                assert_eq!(
                    error_of(&format!("PerlSetVar {name} {bad}\n")),
                    format!(
                        "extra.conf:1: {name}: bad value {bad:?}: expected a whole number of bytes"
                    )
                );
            }
            for out in ["0", "1", "1023", "1073741825", "99999999999999999999999"] {
                assert_eq!(
                    error_of(&format!("PerlSetVar {name} {out}\n")),
                    format!(
                        "extra.conf:1: {name}: {out} is out of range (1024 to 1073741824 bytes)"
                    )
                );
            }
        }
    }

    #[test]
    fn counts_are_from_one_to_their_cap() {
        let link = link_of(
            "PerlSetVar loncMaxAttempts 1\nPerlSetVar loncMaxConnections 4\nPerlSetVar loncPipeline 8\n",
        );
        assert_eq!(
            (link.max_attempts, link.max_connections, link.pipeline),
            (1, 4, 8)
        );
        assert_eq!(
            link_of("PerlSetVar loncMaxAttempts 1000000\n").max_attempts,
            1_000_000
        );
        for (name, cap) in [
            ("loncMaxAttempts", "1000000"),
            ("loncMaxConnections", "64"),
            ("loncPipeline", "1024"),
        ] {
            for bad in ["-1", "+1", "one", "1.0"] {
                assert_eq!(
                    error_of(&format!("PerlSetVar {name} {bad}\n")),
                    format!("extra.conf:1: {name}: bad value {bad:?}: expected a whole number")
                );
            }
            let above = (cap.parse::<u64>().unwrap() + 1).to_string();
            for out in ["0", above.as_str(), "4294967296", "99999999999999999999999"] {
                assert_eq!(
                    error_of(&format!("PerlSetVar {name} {out}\n")),
                    format!("extra.conf:1: {name}: {out} is out of range (1 to {cap})")
                );
            }
        }
    }

    #[test]
    fn connect_mode_is_eager_or_on_demand() {
        assert_eq!(
            link_of("PerlSetVar loncConnectMode on-demand\n").connect_mode,
            ConnectMode::OnDemand
        );
        assert_eq!(
            link_of("PerlSetVar loncConnectMode On-Demand\n").connect_mode,
            ConnectMode::OnDemand
        );
        assert_eq!(
            link_of("PerlSetVar loncConnectMode eager\n").connect_mode,
            ConnectMode::Eager
        );
        assert_eq!(
            error_of("PerlSetVar loncConnectMode ondemand\n"),
            "extra.conf:1: loncConnectMode: bad value \"ondemand\": expected eager or on-demand"
        );
        assert_eq!(ConnectMode::OnDemand.to_string(), "on-demand");
        assert_eq!(ConnectMode::Eager.as_str(), "eager");
    }

    #[test]
    fn user_is_read() {
        let loaded = with("PerlSetVar loncUser daemon\n").unwrap();
        assert_eq!(loaded.settings.user, "daemon");
    }

    // ---- ranges ----

    /// A knob's range, as a `Duration` or a whole number.
    #[derive(Debug, Clone, Copy)]
    enum AnyRange {
        Seconds(Range<Duration>),
        Whole(Range<u64>),
    }

    /// Every knob with a numeric range, and that range.
    fn numeric_ranges() -> Vec<(&'static str, AnyRange)> {
        use AnyRange::{Seconds, Whole};
        type L = LinkSettings;
        vec![
            ("londPort", Whole(Settings::LOND_PORT)),
            ("loncTransactionTimeout", Seconds(L::TRANSACTION_TIMEOUT)),
            ("loncHandshakeTimeout", Seconds(L::HANDSHAKE_TIMEOUT)),
            ("loncConnectTimeout", Seconds(L::CONNECT_TIMEOUT)),
            ("loncPongDelay", Seconds(L::PONG_DELAY)),
            ("loncRetryMin", Seconds(L::RETRY_MIN)),
            ("loncRetryMax", Seconds(L::RETRY_MAX)),
            ("loncMaxAttempts", Whole(L::MAX_ATTEMPTS)),
            ("loncDelayedRescan", Seconds(L::DELAYED_RESCAN)),
            ("loncMaxRequest", Whole(L::MAX_REQUEST)),
            ("loncMaxReply", Whole(L::MAX_REPLY)),
            ("loncIdleTimeout", Seconds(L::IDLE_TIMEOUT)),
            ("loncMaxConnections", Whole(L::MAX_CONNECTIONS)),
            ("loncPipeline", Whole(L::PIPELINE)),
        ]
    }

    /// Every range the build checks, `(variable, range)`, in the order checked.
    fn checked_ranges() -> Vec<(&'static str, String)> {
        let mut builder = ConfigBuilder::new();
        builder.add_source("base.conf", BASE);
        let mut b = Build::new(&builder);
        assert!(b.settings().is_some());
        b.ranges
    }

    /// The config of BASE with `name` set to `value` (in `extra.conf`; the retry bounds
    /// both set, so that min <= max does not get in the way).
    fn with_value(name: &str, value: &str) -> Result<Loaded, ConfigErrors> {
        let retry = match name {
            "loncRetryMin" => format!("PerlSetVar loncRetryMax {}\n", seconds(DAY)),
            "loncRetryMax" => format!("PerlSetVar loncRetryMin {}\n", seconds(TENTH)),
            _ => String::new(),
        };
        build(&[
            ("base.conf", BASE),
            ("extra.conf", &format!("{retry}PerlSetVar {name} {value}\n")),
        ])
    }

    #[test]
    fn knob_out_of_range_is_rejected_at_load() {
        for (name, range) in numeric_ranges() {
            let (text, inside, outside) = match range {
                AnyRange::Seconds(r) => {
                    let one = Duration::from_nanos(1);
                    let mut outside = vec![seconds(r.max + one)];
                    if let Some(below) = r.min.checked_sub(one) {
                        outside.push(seconds(below));
                    }
                    (r.to_string(), [seconds(r.min), seconds(r.max)], outside)
                }
                AnyRange::Whole(r) => {
                    let mut outside = vec![(r.max + 1).to_string()];
                    if r.min > 0 {
                        outside.push((r.min - 1).to_string());
                    }
                    (
                        r.to_string(),
                        [r.min.to_string(), r.max.to_string()],
                        outside,
                    )
                }
            };
            for value in inside {
                let loaded = with_value(name, &value);
                assert!(loaded.is_ok(), "{name} {value}: {}", loaded.unwrap_err());
            }
            for value in outside {
                let errors = with_value(name, &value).unwrap_err();
                let line = if name.starts_with("loncRetry") { 2 } else { 1 };
                assert_eq!(
                    errors.to_string(),
                    format!("extra.conf:{line}: {name}: {value} is out of range ({text})")
                );
            }
        }
    }

    #[test]
    fn zero_delayed_rescan_is_rejected() {
        assert_eq!(
            error_of("PerlSetVar loncDelayedRescan 0\n"),
            "extra.conf:1: loncDelayedRescan: 0 is out of range (1 to 315576000 seconds)"
        );
        assert_eq!(
            error_of("PerlSetVar loncDelayedRescan 0.999\n"),
            "extra.conf:1: loncDelayedRescan: 0.999 is out of range (1 to 315576000 seconds)"
        );
        assert_eq!(
            link_of("PerlSetVar loncDelayedRescan 1\n").delayed_rescan,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn zero_timeouts_are_rejected() {
        for (name, range) in [
            ("loncTransactionTimeout", "0.1 to 86400 seconds"),
            ("loncHandshakeTimeout", "0.1 to 3600 seconds"),
            ("loncConnectTimeout", "0.1 to 3600 seconds"),
            ("loncIdleTimeout", "0.1 to 315576000 seconds"),
        ] {
            for zero in ["0", "0.0", ".0", "0.000000000"] {
                assert_eq!(
                    error_of(&format!("PerlSetVar {name} {zero}\n")),
                    format!("extra.conf:1: {name}: {zero} is out of range ({range})")
                );
            }
        }
        assert_eq!(
            link_of("PerlSetVar loncPongDelay 0\n").pong_delay,
            Duration::ZERO
        );
    }

    #[test]
    fn an_out_of_range_value_overridden_later_is_not_an_error() {
        let a = "PerlSetVar loncDelayedRescan 0\nPerlSetVar londPort 0\n";
        let b = "PerlSetVar loncDelayedRescan 5\nPerlSetVar londPort 80\n";
        let loaded = build(&[("base.conf", BASE), ("a.conf", a), ("b.conf", b)]).unwrap();
        assert_eq!(loaded.settings.link.delayed_rescan, Duration::from_secs(5));
    }

    #[test]
    fn every_knob_has_a_range_and_the_defaults_lie_in_it() {
        let checked = checked_ranges();
        let names: Vec<&str> = checked.iter().map(|(n, _)| *n).collect();
        let mut want: Vec<&str> = OPTIONAL_VARIABLES
            .iter()
            .copied()
            .filter(|n| *n != "loncUser")
            .collect();
        want.insert(0, "londPort");
        assert_eq!(names, want);
        // The test's table of numeric ranges is the code's.
        for (name, range) in numeric_ranges() {
            let text = match range {
                AnyRange::Seconds(r) => r.to_string(),
                AnyRange::Whole(r) => r.to_string(),
            };
            assert!(checked.contains(&(name, text)), "{name}");
        }
        let d = LinkSettings::default();
        type L = LinkSettings;
        assert!(L::TRANSACTION_TIMEOUT.contains(&d.transaction_timeout));
        assert!(L::HANDSHAKE_TIMEOUT.contains(&d.handshake_timeout));
        assert!(L::CONNECT_TIMEOUT.contains(&d.connect_timeout));
        assert!(L::PONG_DELAY.contains(&d.pong_delay));
        assert!(L::RETRY_MIN.contains(&d.retry_min));
        assert!(L::RETRY_MAX.contains(&d.retry_max));
        assert!(L::MAX_ATTEMPTS.contains(&u64::from(d.max_attempts)));
        assert!(L::DELAYED_RESCAN.contains(&d.delayed_rescan));
        assert!(L::MAX_REQUEST.contains(&(d.max_request as u64)));
        assert!(L::MAX_REPLY.contains(&(d.max_reply as u64)));
        assert!(L::IDLE_TIMEOUT.contains(&d.idle_timeout));
        assert!(L::MAX_CONNECTIONS.contains(&(d.max_connections as u64)));
        assert!(L::PIPELINE.contains(&(d.pipeline as u64)));
    }

    #[test]
    fn ranges_read_as_written() {
        assert_eq!(
            LinkSettings::DELAYED_RESCAN.to_string(),
            "1 to 315576000 seconds"
        );
        assert_eq!(
            LinkSettings::TRANSACTION_TIMEOUT.to_string(),
            "0.1 to 86400 seconds"
        );
        assert_eq!(
            LinkSettings::MAX_REPLY.to_string(),
            "1024 to 1073741824 bytes"
        );
        assert_eq!(LinkSettings::PIPELINE.to_string(), "1 to 1024");
        assert_eq!(Settings::LOND_PORT.to_string(), "1 to 65535");
    }

    /// The README's "Configuration knobs" section.
    fn readme_knobs() -> &'static str {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("### Configuration knobs")
            .expect("a Configuration knobs section");
        let rest = &readme[start..];
        let end = rest[4..].find("\n#").map_or(rest.len(), |i| i + 4);
        &rest[..end]
    }

    #[test]
    fn readme_shows_every_range_the_code_enforces() {
        let section = readme_knobs();
        for (name, range) in checked_ranges() {
            let quoted = format!("`{name}`");
            assert!(
                section
                    .lines()
                    .any(|l| l.contains(&quoted) && l.contains(&range)),
                "README's knob table has no line with {quoted} and {range:?}:\n{section}"
            );
        }
    }

    // ---- retry bounds ----

    #[test]
    fn retry_min_may_equal_max() {
        let link = link_of("PerlSetVar loncRetryMin 10\nPerlSetVar loncRetryMax 10\n");
        assert_eq!(
            (link.retry_min, link.retry_max),
            (Duration::from_secs(10), Duration::from_secs(10))
        );
    }

    #[test]
    fn retry_min_above_max_is_an_error() {
        assert_eq!(
            error_of("PerlSetVar loncRetryMin 20\nPerlSetVar loncRetryMax 10.5\n"),
            "extra.conf:1: loncRetryMin: 20 is greater than loncRetryMax (10.5, extra.conf:2)"
        );
        assert_eq!(
            error_of("PerlSetVar loncRetryMin 400\n"),
            "extra.conf:1: loncRetryMin: 400 is greater than loncRetryMax (360, default)"
        );
        assert_eq!(
            error_of("PerlSetVar loncRetryMax 60\n"),
            "extra.conf:1: loncRetryMax: 60 is less than loncRetryMin (120, default)"
        );
    }

    #[test]
    fn bad_retry_value_gives_no_extra_conflict_error() {
        assert_eq!(
            error_of("PerlSetVar loncRetryMin x\nPerlSetVar loncRetryMax 60\n"),
            "extra.conf:1: loncRetryMin: bad value \"x\": expected a number of seconds like 5 or 0.5"
        );
    }

    // ---- several errors, several sources ----

    #[test]
    fn all_errors_are_collected_in_source_and_line_order() {
        let a = "PerlSetVar lonHostID msu1\nPerlSetVar loncPipeline 0\nPerlSetVar londPort x\n";
        let b = "PerlSetVar loncConnectMode lazy\nPerlSetVar loncPongDelay -1\n";
        let errors = build(&[("a.conf", a), ("b.conf", b)]).unwrap_err();
        assert_eq!(
            errors.to_string(),
            "\
a.conf, b.conf: required variable lonTabDir is not set
a.conf, b.conf: required variable lonSockDir is not set
a.conf, b.conf: required variable lonDaemons is not set
a.conf, b.conf: required variable lonDocRoot is not set
a.conf:2: loncPipeline: 0 is out of range (1 to 1024)
a.conf:3: londPort: bad value \"x\": expected a TCP port number
b.conf:1: loncConnectMode: bad value \"lazy\": expected eager or on-demand
b.conf:2: loncPongDelay: bad value \"-1\": expected a number of seconds, a duration cannot be negative"
        );
        assert_eq!(errors.errors.len(), 8);
        assert_eq!(
            errors.errors[4],
            ConfigError::Invalid {
                file: "a.conf".into(),
                line: 2,
                variable: "loncPipeline".into(),
                message: "0 is out of range (1 to 1024)".into(),
            }
        );
    }

    #[test]
    fn later_sources_and_later_lines_win() {
        let a = "PerlSetVar loncUser a\nPerlSetVar loncPipeline 2\nPerlSetVar loncPipeline 3\n";
        let b = "PerlSetVar loncUser b\nPerlSetVar lonHostID msu2\n";
        let loaded = build(&[("base.conf", BASE), ("a.conf", a), ("b.conf", b)]).unwrap();
        assert_eq!(loaded.settings.user, "b");
        assert_eq!(loaded.settings.host_id, "msu2");
        assert_eq!(loaded.settings.link.pipeline, 3);
    }

    #[test]
    fn an_overridden_bad_value_is_not_an_error() {
        let a = "PerlSetVar loncPipeline zero\nPerlSetVar londPort 0\n";
        let b = "PerlSetVar loncPipeline 2\nPerlSetVar londPort 80\n";
        let loaded = build(&[("base.conf", BASE), ("a.conf", a), ("b.conf", b)]).unwrap();
        assert_eq!(loaded.settings.link.pipeline, 2);
        assert_eq!(loaded.settings.lond_port, 80);
    }

    #[test]
    fn a_later_bad_value_is_an_error_even_if_an_earlier_was_fine() {
        assert_eq!(
            error_of("PerlSetVar lonHostID\n"),
            "extra.conf:1: lonHostID: no value given"
        );
    }

    #[test]
    fn builder_can_be_used_step_by_step_and_rebuilt() {
        let mut b = ConfigBuilder::new();
        b.add_source("base.conf", BASE);
        assert_eq!(b.build().unwrap().settings, base_settings());
        b.add_source("more.conf", "PerlSetVar loncUser nobody\n");
        assert_eq!(b.build().unwrap().settings.user, "nobody");
    }

    // ---- warnings ----

    #[test]
    fn unknown_lonc_variables_warn() {
        let extra = "\
PerlSetVar loncFoo 1
PerlSetVar loncmaxattempts 3
PerlSetVar loncMaxattempts 3
PerlSetVar loncapaVersion 2.11
PerlSetVar lonFoo 1
PerlSetVar lonc 1
PerlSetVar lonc1 1
PerlSetVar loncUser www
PerlSetVar SomethingElse x
";
        let loaded = with(extra).unwrap();
        assert_eq!(
            loaded.warnings,
            [
                "extra.conf:1: unknown variable loncFoo ignored",
                "extra.conf:3: unknown variable loncMaxattempts ignored (did you mean loncMaxAttempts?)",
            ]
        );
        assert_eq!(loaded.settings.link, LinkSettings::default());
    }

    #[test]
    fn duplicate_perlsetvar_warns() {
        let a = "PerlSetVar loncPipeline 2\nPerlSetVar lonFoo 1\nPerlSetVar loncPipeline 3\n\
                 PerlSetVar lonFoo 2\nPerlSetVar loncBogus 1\nPerlSetVar loncBogus 2\n";
        let b = "# b\nPerlSetVar loncPipeline 4\nPerlSetVar lonHostID msu2\n";
        let loaded = build(&[("base.conf", BASE), ("a.conf", a), ("b.conf", b)]).unwrap();
        assert_eq!(loaded.settings.link.pipeline, 4, "the last one wins");
        assert_eq!(loaded.settings.host_id, "msu2");
        assert_eq!(
            loaded.warnings,
            [
                "a.conf:3: loncPipeline is set again, overriding a.conf:1 (the last one wins)",
                "a.conf:5: unknown variable loncBogus ignored",
                "a.conf:6: unknown variable loncBogus ignored",
                "b.conf:2: loncPipeline is set again, overriding a.conf:3 (the last one wins)",
                "b.conf:3: lonHostID is set again, overriding base.conf:1 (the last one wins)",
            ]
        );
        // The same value twice is still said: one of the lines is useless.
        let twice = with("PerlSetVar loncUser www\nPerlSetVar loncUser www\n").unwrap();
        assert_eq!(
            twice.warnings,
            ["extra.conf:2: loncUser is set again, overriding extra.conf:1 (the last one wins)"]
        );
        // Also when the config has errors.
        let errors = with("PerlSetVar loncPipeline 0\nPerlSetVar loncPipeline 0\n").unwrap_err();
        assert_eq!(errors.warnings.len(), 1);
    }

    #[test]
    fn sock_dir_must_leave_room_for_a_socket() {
        let fits = format!("/{}", "s".repeat(104)); // + "/x" = 107 bytes
        let text = BASE.replace("/home/httpd/sockets", &fits);
        assert_eq!(
            build(&[("a.conf", &text)]).unwrap().settings.sock_dir,
            PathBuf::from(&fits)
        );
        let over = format!("{fits}s");
        let text = BASE.replace("/home/httpd/sockets", &over);
        assert_eq!(
            build(&[("a.conf", &text)]).unwrap_err().to_string(),
            format!(
                "a.conf:3: lonSockDir: {over} is too long: the socket of a one-letter host id would be 108 bytes, a Unix socket path holds at most 107"
            )
        );
    }

    #[test]
    fn warnings_come_with_errors_too() {
        let errors = with("PerlSetVar loncPipelin 2\nPerlSetVar loncPipeline 0\n").unwrap_err();
        assert_eq!(
            errors.warnings,
            ["extra.conf:1: unknown variable loncPipelin ignored"]
        );
        assert_eq!(errors.errors.len(), 1);
    }

    // ---- describe ----

    #[test]
    fn describe_lists_every_setting() {
        let mut settings = base_settings();
        settings.link.pong_delay = Duration::from_millis(500);
        settings.link.connect_mode = ConnectMode::OnDemand;
        assert_eq!(
            settings.describe(),
            "\
lonHostID msu1
lonTabDir /home/httpd/lonTabs
lonSockDir /home/httpd/sockets
londPort 5663
lonDaemons /home/httpd/perl
lonDocRoot /home/httpd/html
loncTransactionTimeout 300
loncHandshakeTimeout 60
loncConnectTimeout 5
loncPongDelay 0.5
loncRetryMin 120
loncRetryMax 360
loncMaxAttempts 5
loncDelayedRescan 60
loncMaxRequest 16777216
loncMaxReply 268435456
loncConnectMode on-demand
loncIdleTimeout 300
loncMaxConnections 1
loncPipeline 1
loncUser www
"
        );
    }

    #[test]
    fn describe_names_exactly_the_known_variables() {
        let names: Vec<String> = base_settings()
            .describe()
            .lines()
            .map(|l| l.split(' ').next().unwrap().to_owned())
            .collect();
        let known: Vec<&str> = REQUIRED_VARIABLES
            .iter()
            .chain(OPTIONAL_VARIABLES.iter())
            .copied()
            .collect();
        assert_eq!(names, known);
    }

    #[test]
    fn seconds_are_shortest_exact_decimals() {
        assert_eq!(seconds(Duration::ZERO), "0");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5");
        assert_eq!(seconds(Duration::from_nanos(1)), "0.000000001");
        assert_eq!(
            seconds(Duration::from_nanos(120_000_000_100)),
            "120.0000001"
        );
    }

    // ---- properties ----

    /// Durations in `r`: its bounds, any nanosecond, whole milliseconds, whole seconds.
    fn duration(r: Range<Duration>) -> impl Strategy<Value = Duration> {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap();
        let (lo, hi) = (nanos(r.min), nanos(r.max));
        prop_oneof![
            Just(r.min),
            Just(r.max),
            (lo..=hi).prop_map(Duration::from_nanos),
            (lo.div_ceil(1_000_000)..=hi / 1_000_000).prop_map(Duration::from_millis),
            (lo.div_ceil(1_000_000_000)..=hi / 1_000_000_000).prop_map(Duration::from_secs),
        ]
    }

    /// Whole numbers in `r`, as a `T`.
    fn whole<T: TryFrom<u64> + std::fmt::Debug>(r: Range<u64>) -> impl Strategy<Value = T>
    where
        T::Error: std::fmt::Debug,
    {
        prop_oneof![Just(r.min), Just(r.max), r.min..=r.max].prop_map(|n| T::try_from(n).unwrap())
    }

    fn word() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.,:@-]{1,12}"
    }

    fn path() -> impl Strategy<Value = PathBuf> {
        "(/[A-Za-z0-9_.-]{1,8}){1,4}/?".prop_map(PathBuf::from)
    }

    fn link_settings() -> impl Strategy<Value = LinkSettings> {
        type L = LinkSettings;
        (
            (
                duration(L::TRANSACTION_TIMEOUT),
                duration(L::HANDSHAKE_TIMEOUT),
                duration(L::CONNECT_TIMEOUT),
                duration(L::PONG_DELAY),
            ),
            (
                duration(L::RETRY_MIN),
                duration(L::RETRY_MAX),
                whole(L::MAX_ATTEMPTS),
                duration(L::DELAYED_RESCAN),
            ),
            (
                whole(L::MAX_REQUEST),
                whole(L::MAX_REPLY),
                any::<bool>(),
                duration(L::IDLE_TIMEOUT),
            ),
            (whole(L::MAX_CONNECTIONS), whole(L::PIPELINE)),
        )
            .prop_map(
                |((t, h, c, p), (r1, r2, a, d), (mq, mr, od, i), (mc, pl))| LinkSettings {
                    transaction_timeout: t,
                    handshake_timeout: h,
                    connect_timeout: c,
                    pong_delay: p,
                    retry_min: r1.min(r2),
                    retry_max: r1.max(r2),
                    max_attempts: a,
                    delayed_rescan: d,
                    max_request: mq,
                    max_reply: mr,
                    connect_mode: if od {
                        ConnectMode::OnDemand
                    } else {
                        ConnectMode::Eager
                    },
                    idle_timeout: i,
                    max_connections: mc,
                    pipeline: pl,
                },
            )
    }

    fn settings() -> impl Strategy<Value = Settings> {
        (
            word(),
            path(),
            path(),
            1..=u16::MAX,
            path(),
            path(),
            word(),
            link_settings(),
        )
            .prop_map(
                |(host_id, tab_dir, sock_dir, lond_port, daemons_dir, doc_root, user, link)| {
                    Settings {
                        host_id,
                        tab_dir,
                        sock_dir,
                        lond_port,
                        daemons_dir,
                        doc_root,
                        user,
                        link,
                    }
                },
            )
    }

    /// Seconds written independently of `seconds()`: always 9 fraction digits, or none.
    fn secs_text(d: Duration) -> String {
        if d.subsec_nanos() == 0 {
            d.as_secs().to_string()
        } else {
            format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
        }
    }

    /// (name, value) for every variable of `s`.
    fn pairs(s: &Settings) -> Vec<(&'static str, String)> {
        let l = &s.link;
        vec![
            ("lonHostID", s.host_id.clone()),
            ("lonTabDir", s.tab_dir.to_str().unwrap().to_owned()),
            ("lonSockDir", s.sock_dir.to_str().unwrap().to_owned()),
            ("londPort", s.lond_port.to_string()),
            ("lonDaemons", s.daemons_dir.to_str().unwrap().to_owned()),
            ("lonDocRoot", s.doc_root.to_str().unwrap().to_owned()),
            ("loncTransactionTimeout", secs_text(l.transaction_timeout)),
            ("loncHandshakeTimeout", secs_text(l.handshake_timeout)),
            ("loncConnectTimeout", secs_text(l.connect_timeout)),
            ("loncPongDelay", secs_text(l.pong_delay)),
            ("loncRetryMin", secs_text(l.retry_min)),
            ("loncRetryMax", secs_text(l.retry_max)),
            ("loncMaxAttempts", l.max_attempts.to_string()),
            ("loncDelayedRescan", secs_text(l.delayed_rescan)),
            ("loncMaxRequest", l.max_request.to_string()),
            ("loncMaxReply", l.max_reply.to_string()),
            (
                "loncConnectMode",
                match l.connect_mode {
                    ConnectMode::Eager => "eager".into(),
                    ConnectMode::OnDemand => "on-demand".into(),
                },
            ),
            ("loncIdleTimeout", secs_text(l.idle_timeout)),
            ("loncMaxConnections", l.max_connections.to_string()),
            ("loncPipeline", l.pipeline.to_string()),
            ("loncUser", s.user.clone()),
        ]
    }

    /// How a generated line is dressed: keyword spelling, leading whitespace, the two
    /// separators, and whether it ends in CRLF.
    type Style = (String, String, String, String, bool);

    /// A random [`Style`].
    fn style() -> impl Strategy<Value = Style> {
        (
            prop_oneof![
                Just("PerlSetVar".to_owned()),
                Just("perlsetvar".to_owned()),
                Just("PERLSETVAR".to_owned())
            ],
            "[ \t]{0,3}",
            "[ \t]{1,3}",
            "[ \t]{1,3}",
            any::<bool>(),
        )
    }

    /// Lines that are not PerlSetVar lines of known variables.
    fn junk_line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "#[ -~]{0,30}",
            "<[A-Za-z]{1,10}>",
            "(PerlModule|SetHandler|Alias) [ -~]{0,20}",
            "PerlSetVar (lonLocal|lonRole|lonExpire)[A-Za-z]{0,5} [!-~]{1,10}",
        ]
    }

    /// The text of a config setting `vars`, with junk lines and random style.
    fn render(vars: &[(&str, String)], styles: &[Style], junk: &[String]) -> String {
        let mut text = String::new();
        for (i, (name, value)) in vars.iter().enumerate() {
            if let Some(j) = junk.get(i) {
                text.push_str(j);
                text.push('\n');
            }
            let (kw, lead, sep1, sep2, crlf) = &styles[i % styles.len()];
            text.push_str(&format!("{lead}{kw}{sep1}{name}{sep2}{value}"));
            text.push_str(if *crlf { "\r\n" } else { "\n" });
        }
        text
    }

    proptest! {
        #[test]
        fn parser_and_builder_never_panic(text in "\\PC*", text2 in "(PerlSetVar|lonc|[ \t\r\n.0-9a-zA-Z-])*") {
            let _ = parse_perlsetvars("a", &text);
            let _ = parse_perlsetvars("b", &text2);
            let mut b = ConfigBuilder::new();
            b.add_source("a", &text).add_source("b", &text2);
            let _ = b.build().map(|l| l.settings.describe()).map_err(|e| e.to_string());
        }

        #[test]
        fn builder_never_panics_on_arbitrary_values(
            values in proptest::collection::vec(("[A-Za-z]{0,3}", "\\PC{0,12}"), 0..21),
        ) {
            let known: Vec<&str> = REQUIRED_VARIABLES.iter().chain(OPTIONAL_VARIABLES.iter()).copied().collect();
            let mut text = String::new();
            for (i, (prefix, value)) in values.iter().enumerate() {
                text.push_str(&format!("PerlSetVar {prefix}{} {value}\n", known[i]));
            }
            let mut b = ConfigBuilder::new();
            b.add_source("a", &text);
            match b.build() {
                Ok(l) => { let _ = l.settings.describe(); }
                Err(e) => prop_assert!(!e.errors.is_empty()),
            }
        }

        #[test]
        fn parser_finds_every_perlsetvar_line(
            vars in proptest::collection::vec(("[A-Za-z][A-Za-z0-9]{0,10}", "[!-~]{0,10}"), 0..20),
            styles in proptest::collection::vec(style(), 1..5),
            junk in proptest::collection::vec(junk_line().prop_filter("no PerlSetVar", |l| !l.starts_with("PerlSetVar")), 0..20),
        ) {
            let refs: Vec<(&str, String)> = vars.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
            let text = render(&refs, &styles, &junk);
            let got: Vec<(String, String)> = parse_perlsetvars("x", &text)
                .into_iter()
                .map(|v| (v.name, v.value))
                .collect();
            prop_assert_eq!(got, vars);
        }

        #[test]
        fn generated_config_round_trips(
            s in settings(),
            styles in proptest::collection::vec(style(), 1..5),
            junk in proptest::collection::vec(junk_line(), 0..25),
            split in 0..=21usize,
        ) {
            let vars = pairs(&s);
            // Split the variables over two sources at a random point.
            let a = render(&vars[..split], &styles, &junk);
            let b = render(&vars[split..], &styles, &[]);
            let loaded = build(&[("a.conf", &a), ("b.conf", &b)]).map_err(|e| e.to_string());
            prop_assert_eq!(loaded.as_ref().map(|l| &l.settings), Ok(&s));
            prop_assert!(loaded.unwrap().warnings.is_empty());
        }

        #[test]
        fn describe_output_builds_the_same_settings(s in settings()) {
            let text: String = s.describe().lines().map(|l| format!("PerlSetVar {l}\n")).collect();
            let loaded = build(&[("described", &text)]).map_err(|e| e.to_string());
            prop_assert_eq!(loaded.map(|l| l.settings), Ok(s));
        }

        #[test]
        fn later_sources_win(
            first in settings(),
            second in settings(),
            overridden in proptest::collection::vec(any::<bool>(), 21),
        ) {
            let a = render(&pairs(&first), &[("PerlSetVar".into(), String::new(), " ".into(), " ".into(), false)], &[]);
            let chosen: Vec<(&str, String)> = pairs(&second)
                .into_iter()
                .zip(&overridden)
                .filter(|(_, o)| **o)
                .map(|(p, _)| p)
                .collect();
            let b = render(&chosen, &[("PerlSetVar".into(), String::new(), " ".into(), " ".into(), false)], &[]);
            let got = build(&[("a.conf", &a), ("b.conf", &b)]);
            // Expected: each variable from `second` where overridden, else from `first`.
            let expected: Vec<(&str, String)> = pairs(&first)
                .into_iter()
                .zip(pairs(&second))
                .zip(&overridden)
                .map(|((f, s), o)| if *o { s } else { f })
                .collect();
            let min = expected.iter().find(|(n, _)| *n == "loncRetryMin").unwrap().1.clone();
            let max = expected.iter().find(|(n, _)| *n == "loncRetryMax").unwrap().1.clone();
            let retry_ok = parse_duration(&min).unwrap() <= parse_duration(&max).unwrap();
            match got {
                Ok(loaded) => {
                    prop_assert!(retry_ok);
                    let want = render(&expected, &[("PerlSetVar".into(), String::new(), " ".into(), " ".into(), false)], &[]);
                    prop_assert_eq!(loaded.settings, build(&[("want", &want)]).unwrap().settings);
                }
                Err(e) => {
                    prop_assert!(!retry_ok);
                    prop_assert_eq!(e.errors.len(), 1);
                }
            }
        }
    }
}
