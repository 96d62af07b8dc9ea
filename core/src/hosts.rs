//! `hosts.tab` parsing (PROTOCOL.md 2.2): one host per line, `id:domain:role:name:ip`.
//!
//! Blank lines and lines starting with `#` are ignored, as are hosts with an empty `ip`
//! (the original skipped them). Any other line that cannot be a host is reported as a
//! [`HostsProblem`] and skipped; problems are never fatal. Fields after the fifth (added by
//! later LON-CAPA versions) are ignored. Whitespace around each field (including a trailing
//! CR) is stripped.

use std::collections::HashMap;
use std::fmt;

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
    } else {
        None
    }
}

/// Parses the text of a `hosts.tab`; `source` names it in problems.
pub fn parse_hosts(source: &str, text: &str) -> HostsTab {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut tab = HostsTab::default();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
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
        if ip.is_empty() {
            continue;
        }
        if let Some(message) = bad_id(id) {
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

    #[test]
    fn empty_text_gives_an_empty_tab() {
        assert_eq!(parse_hosts("t", ""), HostsTab::default());
    }

    // ---- properties ----

    fn id() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.-]{1,12}".prop_filter("not . or ..", |s| s != "." && s != "..")
    }

    fn field() -> impl Strategy<Value = String> {
        "([A-Za-z0-9_.-]([A-Za-z0-9_. -]{0,8}[A-Za-z0-9_.-])?)?"
    }

    fn ip() -> impl Strategy<Value = String> {
        "[0-9a-z.]{1,15}"
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
