//! Building [`Settings`] from config sources: later sources and lines win, every knob of
//! the table is read and checked, the checks that span knobs (`lonSockDir` fits a socket
//! path, `loncRetryMin` at most `loncRetryMax`), warnings for unknown and repeated
//! variables, and every error found, in source and line order.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use super::knobs::{Draft, LinkSettings, OPTIONAL_VARIABLES, REQUIRED_VARIABLES, Settings, Source};
use super::perlsetvar::{SetVar, parse_perlsetvars};
use super::value::{Form, Refused, seconds};
use crate::hosts::{MAX_SOCKET_PATH, socket_path_len};

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
pub(super) struct Build<'a> {
    /// The builder being built.
    builder: &'a ConfigBuilder,
    /// Each variable's effective (last) line.
    last: HashMap<&'a str, &'a SetVar>,
    /// Errors so far, unsorted.
    errors: Vec<ConfigError>,
    /// Every range checked, `(variable, range)`, in the order checked (for the test that
    /// keeps the README's table in step with the code).
    pub(super) ranges: Vec<(&'static str, String)>,
}

impl<'a> Build<'a> {
    /// A build of `builder`'s sources, nothing read yet.
    pub(super) fn new(builder: &'a ConfigBuilder) -> Self {
        let last = builder.vars.iter().map(|v| (v.name.as_str(), v)).collect();
        Build {
            builder,
            last,
            errors: Vec::new(),
            ranges: Vec::new(),
        }
    }

    /// Every knob of the table read and checked, then the checks that span knobs; `None`
    /// if a required variable is missing or bad (the errors say why).
    pub(super) fn settings(&mut self) -> Option<Settings> {
        let draft = Draft::read(self);
        if let Some(dir) = &draft.sock_dir {
            self.check_sock_dir(dir);
        }
        self.check_retry(&draft.link);
        draft.settings()
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

    /// Records that `var`'s line is wrong, and why.
    fn invalid(&mut self, var: &SetVar, message: String) {
        self.errors.push(ConfigError::Invalid {
            file: var.source.clone(),
            line: var.line,
            variable: var.name.clone(),
            message,
        });
    }

    /// The value of `var`, read with `form`, or `None` after recording why not.
    fn value<T>(&mut self, var: &SetVar, form: &impl Form<T>) -> Option<T> {
        if var.value.is_empty() {
            self.invalid(var, "no value given".to_owned());
            return None;
        }
        match form.read(&var.value) {
            Ok(value) => Some(value),
            Err(Refused::Unreadable(expected)) => {
                self.invalid(var, format!("bad value {:?}: {expected}", var.value));
                None
            }
            Err(Refused::OutOfRange) => {
                let message = format!("{} is out of range ({})", var.value, form.valid());
                self.invalid(var, message);
                None
            }
        }
    }

    /// Records `name`'s valid values as checked, when `form` checks them.
    fn checked<T>(&mut self, name: &'static str, form: &impl Form<T>) {
        if form.checked() {
            self.ranges.push((name, form.valid()));
        }
    }

    /// `loncRetryMin` must not exceed `loncRetryMax`; the error goes on `loncRetryMin`'s
    /// line when it was set, else on `loncRetryMax`'s.
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

    /// The errors found, missing variables first, then in source and line order.
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

impl Source for Build<'_> {
    fn required<T>(&mut self, name: &'static str, form: &impl Form<T>) -> Option<T> {
        self.checked(name, form);
        let Some(var) = self.last.get(name).copied() else {
            self.errors.push(ConfigError::Missing {
                variable: name.to_owned(),
                files: self.builder.sources.clone(),
            });
            return None;
        };
        self.value(var, form)
    }

    fn optional<T>(&mut self, name: &'static str, form: &impl Form<T>, default: T) -> T {
        self.checked(name, form);
        match self.last.get(name).copied() {
            Some(var) => self.value(var, form).unwrap_or(default),
            None => default,
        }
    }
}
