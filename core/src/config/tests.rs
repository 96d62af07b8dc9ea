//! The configuration's tests: parsing, defaults, ranges, errors, warnings, `describe`, the
//! README's knob table, and properties over generated configs.

use std::path::PathBuf;
use std::time::Duration;

use super::build::Build;
use super::value::{Bytes, Count, DAY, GIB, Port, Seconds, TENTH, parse_duration, seconds};
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
                format!("extra.conf:1: {name}: {out} is out of range (1024 to 1073741824 bytes)")
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
    let readme = include_str!("../../../README.md");
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

/// The README's knob table as the knob table writes it: one row per optional knob, its
/// name, default, valid values and meaning.
fn knob_rows() -> Vec<String> {
    KNOBS
        .iter()
        .filter(|knob| !knob.required)
        .map(|knob| {
            let default = (knob.default)().expect("an optional knob has a default");
            let number = default.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            let default = if number {
                default
            } else {
                format!("`{default}`")
            };
            let valid = (knob.valid)();
            format!(
                "| `{}` | {default} | {valid} | {} |",
                knob.name, knob.meaning
            )
        })
        .collect()
}

#[test]
fn readme_table_is_the_knob_table_row_by_row() {
    let rows: Vec<&str> = readme_knobs()
        .lines()
        .filter(|line| line.starts_with("| `"))
        .collect();
    let want = knob_rows();
    assert_eq!(
        rows,
        want,
        "README's knob table should read:\n{}",
        want.join("\n")
    );
}

#[test]
fn the_knob_table_lists_every_variable_once_in_describe_order() {
    let names: Vec<&str> = KNOBS.iter().map(|knob| knob.name).collect();
    let known: Vec<&str> = REQUIRED_VARIABLES
        .iter()
        .chain(OPTIONAL_VARIABLES.iter())
        .copied()
        .collect();
    assert_eq!(names, known);
    for knob in KNOBS {
        assert_eq!(knob.required, REQUIRED_VARIABLES.contains(&knob.name));
        assert_eq!((knob.default)().is_none(), knob.required, "{}", knob.name);
        assert!(!knob.meaning.is_empty() && knob.meaning.trim() == knob.meaning);
        assert!(!knob.meaning.contains('|'), "{}", knob.name);
    }
}

#[test]
fn the_const_defaults_are_the_defaults() {
    const MAX_REPLY: usize = LinkSettings::DEFAULT.max_reply;
    assert_eq!(MAX_REPLY, 256 * 1024 * 1024);
    assert_eq!(LinkSettings::DEFAULT, LinkSettings::default());
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
fn each_form_writes_its_own_unit() {
    // The constants above are built at compile time; the same constructors at run time.
    assert_eq!(
        Seconds::range(TENTH, DAY).to_string(),
        "0.1 to 86400 seconds"
    );
    assert_eq!(
        Bytes::range(1024, GIB).to_string(),
        "1024 to 1073741824 bytes"
    );
    assert_eq!(Count::range(1, 64).to_string(), "1 to 64");
    assert_eq!(Port::range(1, 65_535).to_string(), "1 to 65535");
    assert_eq!(Range::new(2u64, 3, "tries").to_string(), "2 to 3 tries");
}

#[test]
fn required_variables_say_what_they_take() {
    let valid: Vec<(&str, String)> = KNOBS
        .iter()
        .filter(|knob| knob.required)
        .map(|knob| (knob.name, (knob.valid)()))
        .collect();
    let want = [
        ("lonHostID", "a host id"),
        ("lonTabDir", "a directory"),
        ("lonSockDir", "a directory"),
        ("londPort", "1 to 65535"),
        ("lonDaemons", "a directory"),
        ("lonDocRoot", "a directory"),
    ];
    let want: Vec<(&str, String)> = want.iter().map(|(n, v)| (*n, v.to_string())).collect();
    assert_eq!(valid, want);
    assert!(
        KNOBS
            .iter()
            .filter(|k| k.required)
            .all(|k| (k.default)().is_none())
    );
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
            |(host_id, tab_dir, sock_dir, lond_port, daemons_dir, doc_root, user, link)| Settings {
                host_id,
                tab_dir,
                sock_dir,
                lond_port,
                daemons_dir,
                doc_root,
                user,
                link,
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
    fn written_seconds_read_back_exactly(secs in any::<u64>(), nanos in 0u32..1_000_000_000) {
        let d = Duration::new(secs, nanos);
        prop_assert_eq!(parse_duration(&seconds(d)), Ok(d));
    }

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
