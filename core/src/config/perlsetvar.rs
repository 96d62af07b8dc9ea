//! The `PerlSetVar <name> <value>` lines of a config text (PROTOCOL.md 2.1), with where
//! each came from.

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
