//! `hosts.tab` parsing (PROTOCOL.md 2.2): one host per line, `id:domain:role:name:ip`.
//!
//! Blank lines and lines starting with `#` are ignored, as are hosts with an empty `ip`
//! (the original skipped them). Any other line that cannot be a host is reported as a
//! [`HostsProblem`] and skipped; problems are never fatal. Fields after the fifth (added by
//! later LON-CAPA versions) are ignored. Whitespace around each field (including a trailing
//! CR) is stripped.
//!
//! A line that could not work is such a problem too: an id that cannot name a socket in
//! `lonSockDir` (`/`, `.`, `..`, `delayed`, not UTF-8, too long for a Unix socket path),
//! and an `ip` that is neither an IPv4 address nor a host name (an IPv6 address cannot be
//! written in this colon-separated file: its colons split it into fields).

use core::net::{Ipv4Addr, Ipv6Addr};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// The longest path a Unix socket can be bound at, in bytes: `sun_path` holds 108, the
/// last of them the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;

/// The directory of delayed messages in `lonSockDir`: no host id may take its name.
pub const DELAYED_DIR: &str = "delayed";

/// The length in bytes of the socket path of the host `id` in `sock_dir`.
pub fn socket_path_len(sock_dir: &Path, id: &str) -> usize {
    sock_dir.join(id).as_os_str().len()
}

/// One line of `hosts.tab`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Host {
    /// The host id (e.g. `msu1`); also names the peer's socket and delayed files.
    pub id: String,
    /// The LON-CAPA domain.
    pub domain: String,
    /// The role, e.g. `library` or `access`.
    pub role: String,
    /// The host's name.
    pub name: String,
    /// The address lond listens on: an IP address or a name to resolve.
    pub ip: String,
}

/// A `hosts.tab` line that was skipped because it is not a usable host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsProblem {
    /// The source name given to [`parse_hosts`].
    pub source: String,
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for HostsProblem {
    /// `source:line: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.source, self.line, self.message)
    }
}

/// A parsed `hosts.tab`: the usable hosts in file order, ids unique, and the lines skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsTab {
    /// The hosts, in file order; no two share an id.
    pub hosts: Vec<Host>,
    /// The malformed lines, in file order.
    pub problems: Vec<HostsProblem>,
}

impl HostsTab {
    /// The host with this id (ids are case-sensitive).
    pub fn get(&self, id: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.id == id)
    }
}

/// Why `id` cannot be a host id (it names files), if it cannot.
fn bad_id(id: &str) -> Option<String> {
    if id.is_empty() {
        Some("empty host id".to_owned())
    } else if id == "." || id == ".." {
        Some(format!("host id {id:?} cannot be a file name"))
    } else if id.contains('/') {
        Some(format!("host id {id:?} contains '/'"))
    } else if id.chars().any(char::is_control) {
        Some(format!("host id {id:?} contains a control character"))
    } else if id == DELAYED_DIR {
        Some(format!(
            "host id {id:?} is the name of the delayed-message directory in lonSockDir, it cannot be a socket's"
        ))
    } else {
        None
    }
}

/// Why the socket of `id` in `sock_dir` cannot exist, if its path is too long.
fn too_long(sock_dir: &Path, id: &str) -> Option<String> {
    let len = socket_path_len(sock_dir, id);
    (len > MAX_SOCKET_PATH).then(|| {
        format!(
            "host id {id:?} is too long: its socket {} would be {len} bytes, a Unix socket path holds at most {MAX_SOCKET_PATH}",
            sock_dir.join(id).display()
        )
    })
}

/// The IPv6 address that `fields` (the `ip` field and those after it) spell, split at its
/// colons, if they do; with or without brackets and a `%zone`. Only asked when the `ip`
/// field alone is unusable: after a usable one, more fields are those of later LON-CAPA
/// versions, ignored even when they happen to look like the rest of an address.
fn split_ipv6(fields: &[&str]) -> Option<String> {
    // An IPv6 address has at most 8 colons: 9 fields, at least 3 (`::1`).
    (3..=fields.len().min(9)).rev().find_map(|k| {
        let joined = fields[..k].join(":");
        let bare = joined.strip_prefix('[').unwrap_or(&joined);
        let bare = bare.strip_suffix(']').unwrap_or(bare);
        let bare = bare.split('%').next().unwrap_or(bare);
        let is_v6 = bare.bytes().any(|b| b.is_ascii_hexdigit()) && bare.parse::<Ipv6Addr>().is_ok();
        is_v6.then_some(joined)
    })
}

/// Whether `label` can be part of a host name: 1 to 63 letters, digits, `-` or `_`
/// (resolvers accept it), not starting or ending with `-`.
fn is_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// Why `ip` cannot say where lond listens, if it cannot: it must be an IPv4 address in
/// dotted-quad form or a host name (at most 253 bytes, an optional final dot). A name
/// whose last label is a number must be a valid IPv4 address (a resolver would read
/// `10.1` or `1.2.3.04` as some other address).
fn bad_ip(ip: &str) -> Option<String> {
    if ip.parse::<Ipv4Addr>().is_ok() {
        return None;
    }
    let name = ip.strip_suffix('.').unwrap_or(ip);
    let numeric = name
        .rsplit('.')
        .next()
        .is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()));
    if numeric {
        Some(format!("ip {ip:?} is not a valid IPv4 address"))
    } else if name.len() > 253 || !name.split('.').all(is_label) {
        Some(format!(
            "ip {ip:?} is neither an IPv4 address nor a host name"
        ))
    } else {
        None
    }
}

/// Parses the text of a `hosts.tab`; `source` names it in problems. The ids are not
/// checked against a socket directory (see [`parse_hosts_for`]).
pub fn parse_hosts(source: &str, text: &str) -> HostsTab {
    parse(source, text.as_bytes(), None)
}

/// Parses the bytes of a `hosts.tab` as the daemon reads it: as [`parse_hosts`], and
/// besides, an id whose bytes are not UTF-8 (its socket would be named differently) or
/// whose socket path in `sock_dir` would exceed [`MAX_SOCKET_PATH`] is a problem. Other
/// fields that are not UTF-8 are read lossily.
pub fn parse_hosts_for(source: &str, bytes: &[u8], sock_dir: &Path) -> HostsTab {
    parse(source, bytes, Some(sock_dir))
}

fn parse(source: &str, bytes: &[u8], sock_dir: Option<&Path>) -> HostsTab {
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let mut tab = HostsTab::default();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let text = String::from_utf8_lossy(raw);
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut problem = |message: String| {
            tab.problems.push(HostsProblem {
                source: source.to_owned(),
                line,
                message,
            })
        };
        let fields: Vec<&str> = trimmed.split(':').map(str::trim).collect();
        let [id, domain, role, name, ip, ..] = fields[..] else {
            problem(format!(
                "expected id:domain:role:name:ip, found {} field{}",
                fields.len(),
                if fields.len() == 1 { "" } else { "s" }
            ));
            continue;
        };
        let ip_unusable = ip.is_empty() || bad_ip(ip).is_some();
        if let Some(v6) = split_ipv6(&fields[4..]).filter(|_| ip_unusable) {
            problem(format!(
                "host {id:?}: the ip field holds the IPv6 address {v6:?}, which hosts.tab cannot carry (its fields are separated by ':'); give an IPv4 address or a host name"
            ));
            continue;
        }
        if ip.is_empty() {
            continue;
        }
        let raw_id = raw.split(|&b| b == b':').next().unwrap_or_default();
        if std::str::from_utf8(raw_id).is_err() {
            problem(format!(
                "host id \"{}\" is not valid UTF-8 (its socket would be named otherwise)",
                raw_id.trim_ascii().escape_ascii()
            ));
            continue;
        }
        let unusable = bad_id(id)
            .or_else(|| sock_dir.and_then(|dir| too_long(dir, id)))
            .or_else(|| bad_ip(ip).map(|why| format!("host {id:?}: {why}")));
        if let Some(message) = unusable {
            problem(message);
            continue;
        }
        if let Some(first) = first_line.get(id) {
            problem(format!(
                "duplicate host id {id:?} (first on line {first}), line skipped"
            ));
            continue;
        }
        first_line.insert(id.to_owned(), line);
        tab.hosts.push(Host {
            id: id.to_owned(),
            domain: domain.to_owned(),
            role: role.to_owned(),
            name: name.to_owned(),
            ip: ip.to_owned(),
        });
    }
    tab
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn host(id: &str, domain: &str, role: &str, name: &str, ip: &str) -> Host {
        Host {
            id: id.into(),
            domain: domain.into(),
            role: role.into(),
            name: name.into(),
            ip: ip.into(),
        }
    }

    /// The problems of parsing `text` as `hosts.tab`, displayed.
    fn problems(text: &str) -> Vec<String> {
        parse_hosts("hosts.tab", text)
            .problems
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn hosts_are_parsed_in_file_order() {
        let tab = parse_hosts(
            "hosts.tab",
            "msu2:msu:access:two.msu.edu:10.0.0.2\nmsu1:msu:library:one.msu.edu:10.0.0.1\n",
        );
        assert_eq!(
            tab.hosts,
            [
                host("msu2", "msu", "access", "two.msu.edu", "10.0.0.2"),
                host("msu1", "msu", "library", "one.msu.edu", "10.0.0.1"),
            ]
        );
        assert!(tab.problems.is_empty());
    }

    #[test]
    fn get_finds_by_exact_id() {
        let tab = parse_hosts("t", "a:d:r:n:1.2.3.4\nb:d:r:n:5.6.7.8");
        assert_eq!(tab.get("b").map(|h| h.ip.as_str()), Some("5.6.7.8"));
        assert_eq!(tab.get("a").map(|h| h.ip.as_str()), Some("1.2.3.4"));
        assert_eq!(tab.get("A"), None);
        assert_eq!(tab.get(""), None);
        assert_eq!(HostsTab::default().get("a"), None);
    }

    #[test]
    fn empty_ip_lines_are_ignored_silently() {
        let tab = parse_hosts("t", "a:d:r:n:\nb:d:r:n:  \r\nc:d:r:n:\t\nd:d:r:n:ip\n");
        assert_eq!(tab.hosts, [host("d", "d", "r", "n", "ip")]);
        assert!(tab.problems.is_empty());
    }

    #[test]
    fn empty_ip_wins_over_a_bad_id() {
        let tab = parse_hosts("t", ":d:r:n:\n../x:d:r:n:\n");
        assert!(tab.hosts.is_empty());
        assert!(tab.problems.is_empty());
    }

    #[test]
    fn trailing_cr_lf_and_whitespace_are_stripped() {
        let tab = parse_hosts(
            "t",
            "a:d:r:n:1.2.3.4\r\nb:d:r:n:5.6.7.8 \t\r\nc:d:r:n:9.9.9.9",
        );
        let ips: Vec<&str> = tab.hosts.iter().map(|h| h.ip.as_str()).collect();
        assert_eq!(ips, ["1.2.3.4", "5.6.7.8", "9.9.9.9"]);
        assert!(tab.problems.is_empty());
    }

    #[test]
    fn whitespace_around_fields_is_stripped() {
        let tab = parse_hosts("t", "  a : d :r: n :ip\n");
        assert_eq!(tab.hosts, [host("a", "d", "r", "n", "ip")]);
    }

    #[test]
    fn blank_and_comment_lines_are_ignored() {
        let tab = parse_hosts(
            "t",
            "\n   \n# a:d:r:n:ip\n  #indented comment\n\t\r\na:d:r:n:ip\n#\n",
        );
        assert_eq!(tab.hosts, [host("a", "d", "r", "n", "ip")]);
        assert!(tab.problems.is_empty());
    }

    #[test]
    fn a_leading_bom_is_ignored() {
        let tab = parse_hosts("t", "\u{feff}a:d:r:n:ip\n");
        assert_eq!(tab.hosts, [host("a", "d", "r", "n", "ip")]);
    }

    #[test]
    fn extra_fields_are_accepted_and_ignored() {
        let tab = parse_hosts("t", "a:d:r:n:ip:https:intdom\nb:d:r:n:ip2::\n");
        assert_eq!(
            tab.hosts,
            [
                host("a", "d", "r", "n", "ip"),
                host("b", "d", "r", "n", "ip2")
            ]
        );
        assert!(tab.problems.is_empty());
    }

    #[test]
    fn empty_middle_fields_are_allowed() {
        let tab = parse_hosts("t", "a::::ip\n");
        assert_eq!(tab.hosts, [host("a", "", "", "", "ip")]);
    }

    #[test]
    fn too_few_fields_is_a_problem_with_line_number() {
        assert_eq!(
            problems("a:d:r:n:ip\njunk\na:b\na:d:r:n\n"),
            [
                "hosts.tab:2: expected id:domain:role:name:ip, found 1 field",
                "hosts.tab:3: expected id:domain:role:name:ip, found 2 fields",
                "hosts.tab:4: expected id:domain:role:name:ip, found 4 fields",
            ]
        );
    }

    #[test]
    fn bad_ids_are_problems() {
        assert_eq!(
            problems(
                ":d:r:n:ip\n.:d:r:n:ip\n..:d:r:n:ip\na/b:d:r:n:ip\n/:d:r:n:ip\na\0b:d:r:n:ip\na\u{7f}:d:r:n:ip\n"
            ),
            [
                "hosts.tab:1: empty host id",
                "hosts.tab:2: host id \".\" cannot be a file name",
                "hosts.tab:3: host id \"..\" cannot be a file name",
                "hosts.tab:4: host id \"a/b\" contains '/'",
                "hosts.tab:5: host id \"/\" contains '/'",
                "hosts.tab:6: host id \"a\\0b\" contains a control character",
                "hosts.tab:7: host id \"a\\u{7f}\" contains a control character",
            ]
        );
        assert!(parse_hosts("t", ":d:r:n:ip\n..:d:r:n:ip").hosts.is_empty());
    }

    #[test]
    fn ids_with_dots_that_are_not_dot_or_dotdot_are_fine() {
        let tab = parse_hosts("t", "...:d:r:n:ip\n.a:d:r:n:ip\nmsu1.x:d:r:n:ip\n");
        assert_eq!(tab.hosts.len(), 3);
        assert!(tab.problems.is_empty());
    }

    #[test]
    fn duplicate_ids_keep_the_first() {
        let tab = parse_hosts(
            "hosts.tab",
            "a:d:r:n:first\nb:d:r:n:ip\n\na:d:r:n:second\nA:d:r:n:other-case\n",
        );
        assert_eq!(
            tab.hosts,
            [
                host("a", "d", "r", "n", "first"),
                host("b", "d", "r", "n", "ip"),
                host("A", "d", "r", "n", "other-case"),
            ]
        );
        let shown: Vec<String> = tab.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["hosts.tab:4: duplicate host id \"a\" (first on line 1), line skipped"]
        );
    }

    #[test]
    fn an_ignored_or_bad_line_does_not_claim_an_id() {
        let tab = parse_hosts("t", "a:d:r:n:\na:d:r:n:ip\na:b\n");
        assert_eq!(tab.hosts, [host("a", "d", "r", "n", "ip")]);
        assert_eq!(tab.problems.len(), 1);
    }

    #[test]
    fn problem_fields_and_display() {
        let tab = parse_hosts("/etc/lonTabs/hosts.tab", "\n\nx\n");
        assert_eq!(
            tab.problems,
            [HostsProblem {
                source: "/etc/lonTabs/hosts.tab".into(),
                line: 3,
                message: "expected id:domain:role:name:ip, found 1 field".into(),
            }]
        );
        assert_eq!(
            tab.problems[0].to_string(),
            "/etc/lonTabs/hosts.tab:3: expected id:domain:role:name:ip, found 1 field"
        );
    }

    /// The problems of parsing `bytes` as the daemon does, with `lonSockDir` `sock_dir`.
    fn problems_for(bytes: &[u8], sock_dir: &str) -> Vec<String> {
        parse_hosts_for("hosts.tab", bytes, Path::new(sock_dir))
            .problems
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn hosts_tab_line_that_cannot_work_is_a_numbered_warning() {
        let dir = "/home/httpd/sockets"; // 19 bytes, and a '/': 87 left for an id
        let fits = "f".repeat(87);
        let long = "l".repeat(88);
        let mut text = format!("ok:d:r:n:10.0.0.1\n{fits}:d:r:n:10.0.0.2\n{long}:d:r:n:10.0.0.3\n")
            .into_bytes();
        text.extend_from_slice(
            b"delayed:d:r:n:10.0.0.4\n\
              bracketed:d:r:n:[::1]\n\
              loopback6:d:r:n:::1\n\
              linklocal:d:r:n:[fe80::1%eth0]\n\
              spaced:d:r:n:my host\n\
              bad\xffid:d:r:n:10.0.0.5\n\
              name\xff:d:r:n\xff:\xff.example\n\
              last:d:r:n:host.example\n",
        );
        let tab = parse_hosts_for("hosts.tab", &text, Path::new(dir));
        let ids: Vec<&str> = tab.hosts.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["ok", fits.as_str(), "last"]);
        let shown: Vec<String> = tab.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                format!(
                    "hosts.tab:3: host id {long:?} is too long: its socket {dir}/{long} would be 108 bytes, a Unix socket path holds at most 107"
                ),
                "hosts.tab:4: host id \"delayed\" is the name of the delayed-message directory in lonSockDir, it cannot be a socket's".to_owned(),
                "hosts.tab:5: host \"bracketed\": the ip field holds the IPv6 address \"[::1]\", which hosts.tab cannot carry (its fields are separated by ':'); give an IPv4 address or a host name".to_owned(),
                "hosts.tab:6: host \"loopback6\": the ip field holds the IPv6 address \"::1\", which hosts.tab cannot carry (its fields are separated by ':'); give an IPv4 address or a host name".to_owned(),
                "hosts.tab:7: host \"linklocal\": the ip field holds the IPv6 address \"[fe80::1%eth0]\", which hosts.tab cannot carry (its fields are separated by ':'); give an IPv4 address or a host name".to_owned(),
                "hosts.tab:8: host \"spaced\": ip \"my host\" is neither an IPv4 address nor a host name".to_owned(),
                "hosts.tab:9: host id \"bad\\xffid\" is not valid UTF-8 (its socket would be named otherwise)".to_owned(),
                "hosts.tab:10: host id \"name\\xff\" is not valid UTF-8 (its socket would be named otherwise)".to_owned(),
            ]
        );
    }

    #[test]
    fn socket_path_limit_is_exact() {
        for dir in ["/s", "/s/", "/home/httpd/sockets", "relative/dir"] {
            // `dir.join("")` is the directory with one trailing '/'.
            let room = MAX_SOCKET_PATH - socket_path_len(Path::new(dir), "");
            let fits = "a".repeat(room);
            let over = "a".repeat(room + 1);
            assert_eq!(socket_path_len(Path::new(dir), &fits), MAX_SOCKET_PATH);
            let text = format!("{fits}:d:r:n:1.2.3.4\n{over}:d:r:n:1.2.3.4\n");
            let tab = parse_hosts_for("t", text.as_bytes(), Path::new(dir));
            assert_eq!(tab.hosts.len(), 1, "{dir}");
            assert_eq!(tab.hosts[0].id, fits);
            assert_eq!(tab.problems.len(), 1, "{dir}");
            assert_eq!(tab.problems[0].line, 2);
            // Without a socket directory, length is no problem.
            assert_eq!(parse_hosts("t", &text).hosts.len(), 2);
        }
    }

    #[test]
    fn an_id_that_is_not_utf8_is_a_problem_other_fields_are_read_lossily() {
        let tab = parse_hosts_for(
            "t",
            b"a:d\xff:r:n\xfe:1.2.3.4\n\xc3:d:r:n:1.2.3.4\n",
            Path::new("/s"),
        );
        assert_eq!(
            tab.hosts,
            [host("a", "d\u{fffd}", "r", "n\u{fffd}", "1.2.3.4")]
        );
        assert_eq!(
            problems_for(b"\xc3:d:r:n:1.2.3.4", "/s"),
            [
                "hosts.tab:1: host id \"\\xc3\" is not valid UTF-8 (its socket would be named otherwise)"
            ]
        );
        // A genuine U+FFFD (valid UTF-8) names its socket as written.
        assert!(problems_for("\u{fffd}:d:r:n:1.2.3.4".as_bytes(), "/s").is_empty());
    }

    #[test]
    fn bytes_and_text_parse_alike() {
        let text = "\u{feff}a:d:r:n:1.2.3.4\r\n# c\n\nb:d:r:n:\nc:d:r:n:x.example\njunk\n";
        assert_eq!(
            parse_hosts_for("t", text.as_bytes(), Path::new("/s")),
            parse_hosts("t", text)
        );
    }

    #[test]
    fn delayed_is_not_a_host_id() {
        assert_eq!(
            problems("delayed:d:r:n:1.2.3.4\nDelayed:d:r:n:1.2.3.4\ndelayed.x:d:r:n:1.2.3.4\n"),
            [
                "hosts.tab:1: host id \"delayed\" is the name of the delayed-message directory in lonSockDir, it cannot be a socket's"
            ]
        );
    }

    #[test]
    fn ip_must_be_an_ipv4_address_or_a_host_name() {
        for good in [
            "10.0.0.1",
            "255.255.255.255",
            "localhost",
            "lond.msu.edu",
            "lond.msu.edu.",
            "a-b.c_d.example",
            "x1",
            "1host.example",
            "0xff",
        ] {
            let text = format!("a:d:r:n:{good}\n");
            assert_eq!(parse_hosts("t", &text).hosts.len(), 1, "{good}");
        }
        let not_v4 =
            |ip: &str| format!("hosts.tab:1: host \"a\": ip {ip:?} is not a valid IPv4 address");
        let neither = |ip: &str| {
            format!("hosts.tab:1: host \"a\": ip {ip:?} is neither an IPv4 address nor a host name")
        };
        let long_label = "l".repeat(64);
        let long_name = [
            "n".repeat(63),
            "n".repeat(63),
            "n".repeat(63),
            "n".repeat(62),
        ]
        .join(".");
        let cases = [
            ("10.0.0.256", not_v4("10.0.0.256")),
            ("10.1", not_v4("10.1")),
            ("1.2.3.04", not_v4("1.2.3.04")),
            ("1.2.3.4.5", not_v4("1.2.3.4.5")),
            ("my host", neither("my host")),
            ("[", neither("[")),
            ("a..b", neither("a..b")),
            (".a", neither(".a")),
            ("-a.example", neither("-a.example")),
            ("a-.example", neither("a-.example")),
            ("h\u{e9}te", neither("h\u{e9}te")),
            ("a/b", neither("a/b")),
            (long_label.as_str(), neither(&long_label)),
            (long_name.as_str(), neither(&long_name)),
        ];
        for (ip, want) in cases {
            assert_eq!(problems(&format!("a:d:r:n:{ip}\n")), [want], "{ip}");
        }
        // 253 bytes is the longest name.
        let longest = long_name[1..].to_owned();
        assert_eq!(longest.len(), 253);
        assert!(problems(&format!("a:d:r:n:{longest}\n")).is_empty());
    }

    #[test]
    fn ipv6_addresses_are_reported_not_mangled_or_dropped() {
        for (line, v6) in [
            ("a:d:r:n:::1", "::1"),
            ("a:d:r:n:[::1]", "[::1]"),
            ("a:d:r:n:[::1]:extra", "[::1]"),
            ("a:d:r:n:2001:db8::5", "2001:db8::5"),
            ("a:d:r:n:1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
            ("a:d:r:n:::ffff:10.0.0.1", "::ffff:10.0.0.1"),
        ] {
            let tab = parse_hosts("hosts.tab", line);
            assert!(tab.hosts.is_empty(), "{line}");
            assert_eq!(tab.problems.len(), 1, "{line}");
            assert!(
                tab.problems[0]
                    .message
                    .contains(&format!("IPv6 address {v6:?}")),
                "{line}: {}",
                tab.problems[0]
            );
        }
        // Extra fields after a usable ip stay ignored, even when they and the ip would
        // spell an IPv6 address (`cafe::1`: the host named cafe, as the original read
        // it); an empty ip stays silent.
        assert_eq!(parse_hosts("t", "a:d:r:n:cafe::1").hosts[0].ip, "cafe");
        for line in [
            "a:d:r:n:1.2.3.4:https:intdom",
            "a:d:r:n:10.0.0.1::",
            "a:d:r:n:cafe::1",
            "a:d:r:n:::",
            "a:d:r:n::https",
        ] {
            assert!(parse_hosts("t", line).problems.is_empty(), "{line}");
        }
    }

    #[test]
    fn empty_text_gives_an_empty_tab() {
        assert_eq!(parse_hosts("t", ""), HostsTab::default());
    }

    // ---- properties ----

    fn id() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.-]{1,12}".prop_filter("not . or .. or delayed", |s| {
            s != "." && s != ".." && s != DELAYED_DIR
        })
    }

    fn field() -> impl Strategy<Value = String> {
        "([A-Za-z0-9_.-]([A-Za-z0-9_. -]{0,8}[A-Za-z0-9_.-])?)?"
    }

    /// An IPv4 address or a host name.
    fn ip() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(|b| Ipv4Addr::from(b).to_string()),
            "[a-z]([a-z0-9-]{0,6}[a-z0-9])?(\\.[a-z]([a-z0-9-]{0,6}[a-z0-9])?){0,3}\\.?",
        ]
    }

    /// A line that adds no host and no problem.
    fn ignored_line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[ \t]{1,4}",
            "[ \t]{0,2}#[ -~]{0,30}",
            (id(), field(), field(), field(), "[ \t]{0,3}")
                .prop_map(|(i, d, r, n, w)| format!("{i}:{d}:{r}:{n}:{w}")),
        ]
    }

    proptest! {
        #[test]
        fn parser_never_panics(text in "\\PC*", text2 in "[:#/.\0\r\n a-z]*") {
            for t in [&text, &text2] {
                let tab = parse_hosts("t", t);
                for h in &tab.hosts {
                    prop_assert_eq!(tab.get(&h.id), Some(h));
                }
                for p in &tab.problems {
                    prop_assert!(p.line >= 1 && p.line <= t.lines().count());
                    let _ = p.to_string();
                }
            }
        }

        #[test]
        fn generated_table_round_trips(
            hosts in proptest::collection::btree_map(id(), (field(), field(), field(), ip()), 0..20)
                .prop_map(|m| m.into_iter()
                    .map(|(i, (d, r, n, ip))| Host { id: i, domain: d, role: r, name: n, ip })
                    .collect::<Vec<_>>())
                .prop_shuffle(),
            ignored in proptest::collection::vec(ignored_line(), 0..20),
            extras in proptest::collection::vec("(:[A-Za-z0-9.]{0,6}){0,3}", 20),
            crlf in any::<bool>(),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut text = String::new();
            for (i, h) in hosts.iter().enumerate() {
                if let Some(line) = ignored.get(i) {
                    text.push_str(line);
                    text.push_str(eol);
                }
                text.push_str(&format!("{}:{}:{}:{}:{}{}{eol}", h.id, h.domain, h.role, h.name, h.ip, extras[i]));
            }
            for line in ignored.iter().skip(hosts.len()) {
                text.push_str(line);
                text.push_str(eol);
            }
            let tab = parse_hosts("t", &text);
            prop_assert!(tab.problems.is_empty(), "{:?}", tab.problems);
            prop_assert_eq!(&tab.hosts, &hosts);
            for h in &hosts {
                prop_assert_eq!(tab.get(&h.id), Some(h));
            }
        }

        #[test]
        fn bad_lines_are_reported_at_their_line_and_skipped(
            lines in proptest::collection::vec(
                prop_oneof![
                    (id(), ip()).prop_map(|(i, ip)| (format!("{i}:d:r:n:{ip}"), false)),
                    "[a-z0-9]{1,6}(:[a-z0-9]{0,4}){0,3}".prop_map(|l| (l, true)),
                    ip().prop_map(|ip| (format!("a/b:d:r:n:{ip}"), true)),
                    ip().prop_map(|ip| (format!("..:d:r:n:{ip}"), true)),
                ],
                0..30,
            ),
        ) {
            let text: String = lines.iter().map(|(l, _)| format!("{l}\n")).collect();
            let tab = parse_hosts("t", &text);
            // Good lines whose id was already seen are duplicates: problems too.
            let mut seen = std::collections::HashSet::new();
            let mut want_problems = Vec::new();
            let mut want_ids = Vec::new();
            for (n, (line, bad)) in lines.iter().enumerate() {
                let id = line.split(':').next().unwrap().to_owned();
                if *bad || !seen.insert(id.clone()) {
                    want_problems.push(n + 1);
                } else {
                    want_ids.push(id);
                }
            }
            let got_problems: Vec<usize> = tab.problems.iter().map(|p| p.line).collect();
            let got_ids: Vec<String> = tab.hosts.iter().map(|h| h.id.clone()).collect();
            prop_assert_eq!(got_problems, want_problems);
            prop_assert_eq!(got_ids, want_ids);
        }
    }
}
