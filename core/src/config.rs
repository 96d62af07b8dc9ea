//! The daemon's configuration: `PerlSetVar <name> <value>` lines (PROTOCOL.md 2.1 and
//! 2.3) parsed into typed [`Settings`], every knob with its default.
//!
//! Every knob is declared once, as one entry of the knob table in `config/knobs.rs` (listed
//! at run time as [`KNOBS`]): the settings structs, their defaults, the range constants,
//! `check-config`'s listing, the parse and range checks and the README's knob table all
//! come from that entry.
//!
//! - `config/knobs.rs`: the table, and [`Settings::describe`];
//! - `config/table.rs`: the macro that makes code of the table;
//! - `config/value.rs`: how each kind of value is read, checked and written ([`Range`]);
//! - `config/perlsetvar.rs`: the `PerlSetVar` lines of a text;
//! - `config/build.rs`: [`ConfigBuilder`]: sources in order, errors and warnings.

mod build;
mod knobs;
mod perlsetvar;
mod table;
mod value;

pub use build::{ConfigBuilder, ConfigError, ConfigErrors, Loaded};
pub use knobs::{KNOBS, Knob, LinkSettings, OPTIONAL_VARIABLES, REQUIRED_VARIABLES, Settings};
pub use perlsetvar::{SetVar, parse_perlsetvars};
pub use value::{ConnectMode, KnobValue, MAX_DURATION_SECS, Range};

#[cfg(test)]
mod tests;
