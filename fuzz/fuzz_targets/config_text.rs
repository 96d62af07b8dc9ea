//! Fuzz target: `PerlSetVar` config text and `hosts.tab` text never panic the parsers; a
//! config that loads describes itself into text that loads to the same settings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lonc_core::config::ConfigBuilder;
use lonc_core::hosts::parse_hosts;

fuzz_target!(|input: (&str, &str)| {
    let (config, hosts) = input;
    if let Ok(loaded) = ConfigBuilder::new().add_source("fuzz.conf", config).build() {
        let again: String = loaded
            .settings
            .describe()
            .lines()
            .map(|l| format!("PerlSetVar {l}\n"))
            .collect();
        if let Ok(reloaded) = ConfigBuilder::new()
            .add_source("again.conf", &again)
            .build()
        {
            assert_eq!(reloaded.settings, loaded.settings);
        }
    }
    let tab = parse_hosts("hosts.tab", hosts);
    for h in &tab.hosts {
        assert!(!h.id.is_empty() && !h.ip.is_empty());
    }
});
