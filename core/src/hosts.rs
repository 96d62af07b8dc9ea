//! `hosts.tab` parsing (PROTOCOL.md 2.2): one host per line, `id:domain:role:name:ip`.
