//! sed scripts: `s/regex/replacement/flags` and `y/abc/xyz/` over the whole value (SPEC §3.1).
//!
//! The regex dialect is the `regex` crate's: linear-time matching, so no script can hang the
//! function. Replacements are expanded here, never by `regex`'s own `$name` syntax, so that
//! `\1a` means group 1 then `a`, and a `$` is always literal.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use regex::{Regex, RegexBuilder};

use super::vars::{Dollar, LoadVars, Vars, lookup, scan_known};
use super::{ApplyError, LoadError, Location, MAX_WORK_BYTES, excerpt};

/// At most this many commands per script.
pub const MAX_COMMANDS: usize = 1000;
/// At most this many chars in one regex as written (before variables are substituted).
pub const MAX_PATTERN_CHARS: usize = 4096;
/// At most this many bytes of script text.
pub const MAX_SCRIPT_BYTES: usize = 256 * 1024;
/// `regex` compiled-program size limit per pattern; bounds memory even after substitution.
pub const REGEX_SIZE_LIMIT: usize = 1024 * 1024;
/// Lazy-DFA cache limit per pattern: scripts may hold up to 1000 patterns in a small Lambda.
pub const REGEX_DFA_SIZE_LIMIT: usize = 512 * 1024;
/// Distinct substituted patterns kept per command before the cache is cleared.
pub const PATTERN_CACHE_ENTRIES: usize = 256;

/// A parsed sed script: commands applied in order to the whole value.
#[derive(Debug)]
pub struct Script {
    commands: Vec<Command>,
}

#[derive(Debug)]
enum Command {
    Subst(Box<Subst>),
    Translit(Box<Translit>),
}

/// An `s` command.
#[derive(Debug)]
struct Subst {
    /// `origin:line:col`, for apply-time errors.
    at: String,
    pattern: Pattern,
    repl: Vec<Repl>,
    /// Only the whole match and literals are needed: use the cheaper `find_iter`.
    whole_match_only: bool,
    has_case: bool,
    global: bool,
    nth: usize,
    icase: bool,
    multiline: bool,
}

/// A piece of a regex as written: regex text, or a variable whose value matches literally.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RePiece {
    Text(String),
    Var(String),
}

enum Pattern {
    /// No per-secret variable: compiled at load. Shared, never cloned: a cloned `Regex` gets a
    /// fresh search cache and would rebuild its lazy DFA on every apply.
    Static(Arc<Regex>),
    /// Uses per-secret variables: compiled on first use per distinct substitution.
    Dynamic {
        pieces: Vec<RePiece>,
        cache: Mutex<HashMap<String, Arc<Regex>>>,
    },
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Static(re) => f.debug_tuple("Static").field(&re.as_str()).finish(),
            Pattern::Dynamic { pieces, .. } => f.debug_tuple("Dynamic").field(pieces).finish(),
        }
    }
}

/// A piece of a replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Repl {
    Lit(String),
    Group(usize),
    Var(String),
    Case(Case),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Upper,
    Lower,
    UpperNext,
    LowerNext,
    End,
}

/// A `y` command: a char-for-char map.
#[derive(Debug)]
struct Translit {
    ascii: [char; 128],
    /// Non-ASCII sources, sorted for binary search.
    other: Vec<(char, char)>,
    /// Pairs as written, for the canonical text.
    pairs: Vec<(char, char)>,
}

impl Script {
    /// Parses and compiles `script`. `origin` names it in errors.
    pub fn parse(origin: &str, script: &str, vars: &LoadVars) -> Result<Script, LoadError> {
        if script.len() > MAX_SCRIPT_BYTES {
            return Err(LoadError::Limit {
                at: Location::new(origin, script, 1, 1),
                what: "script size in bytes",
                limit: MAX_SCRIPT_BYTES,
            });
        }
        let script = script.strip_prefix('\u{feff}').unwrap_or(script);
        let mut commands = Vec::new();
        for (i, line) in script.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let mut p = LineParser {
                origin,
                text: line,
                chars: line.chars().collect(),
                line: i + 1,
                pos: 0,
                vars,
            };
            p.parse_line(&mut commands)?;
        }
        Ok(Script { commands })
    }

    /// Number of commands.
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    /// Whether the script has no commands (comments only).
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// Canonical text: one line per command, independent of delimiters, comments and layout.
    pub fn canonical(&self) -> String {
        let mut out = String::from("sed\n");
        for c in &self.commands {
            match c {
                Command::Subst(s) => {
                    let mut flags = String::new();
                    if s.global {
                        flags.push('g');
                    }
                    if s.nth != 1 {
                        flags.push_str(&s.nth.to_string());
                    }
                    if s.icase {
                        flags.push('i');
                    }
                    if s.multiline {
                        flags.push('m');
                    }
                    out.push_str(&format!(
                        "s {} {} {flags}\n",
                        quote(&s.pattern.canonical()),
                        quote(&repl_canonical(&s.repl))
                    ));
                }
                Command::Translit(t) => {
                    let (a, b): (String, String) = t.pairs.iter().copied().unzip();
                    out.push_str(&format!("y {} {}\n", quote(&a), quote(&b)));
                }
            }
        }
        out
    }

    /// Applies the script. `Ok(None)` = output identical to `input`.
    pub fn apply(&self, input: &str, vars: &Vars) -> Result<Option<String>, ApplyError> {
        let mut current: Option<String> = None;
        for c in &self.commands {
            let text = current.as_deref().unwrap_or(input);
            let step = match c {
                Command::Subst(s) => s.apply(text, vars)?,
                Command::Translit(t) => t.apply(text),
            };
            if let Some(out) = step {
                current = Some(out);
            }
        }
        Ok(current.filter(|out| out != input))
    }
}

/// A JSON string literal (stable across Rust versions, unlike `{:?}`).
fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn repl_canonical(repl: &[Repl]) -> String {
    let mut out = String::new();
    for r in repl {
        match r {
            Repl::Lit(s) => {
                for c in s.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '&' => out.push_str("\\&"),
                        '\n' => out.push_str("\\n"),
                        '\t' => out.push_str("\\t"),
                        _ => out.push(c),
                    }
                }
                // A literal `${` must not read back as a variable.
                out = out.replace("${", "$${");
            }
            Repl::Group(n) => out.push_str(&format!("\\{n}")),
            Repl::Var(n) => out.push_str(&format!("${{{n}}}")),
            Repl::Case(c) => out.push_str(match c {
                Case::Upper => "\\U",
                Case::Lower => "\\L",
                Case::UpperNext => "\\u",
                Case::LowerNext => "\\l",
                Case::End => "\\E",
            }),
        }
    }
    out
}

/// Parses one line of a script.
struct LineParser<'a> {
    origin: &'a str,
    text: &'a str,
    chars: Vec<char>,
    line: usize,
    /// Index into `chars`.
    pos: usize,
    vars: &'a LoadVars,
}

impl LineParser<'_> {
    fn at(&self, pos: usize) -> Location {
        Location {
            origin: self.origin.to_string(),
            line: self.line,
            col: pos + 1,
            text: excerpt(self.text, pos + 1),
        }
    }

    fn syntax(&self, pos: usize, what: impl Into<String>) -> LoadError {
        LoadError::Syntax {
            at: self.at(pos),
            what: what.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
    }

    fn parse_line(&mut self, commands: &mut Vec<Command>) -> Result<(), LoadError> {
        loop {
            self.skip_blanks();
            let start = self.pos;
            let cmd = match self.peek() {
                None | Some('#') => return Ok(()),
                Some(';') => {
                    self.pos += 1;
                    continue;
                }
                Some('s') => Command::Subst(Box::new(self.parse_s()?)),
                Some('y') => Command::Translit(Box::new(self.parse_y()?)),
                Some(c) => {
                    return Err(self.syntax(
                        start,
                        format!("unknown command `{c}`; expected `s`, `y`, `#` or end of line"),
                    ));
                }
            };
            if commands.len() == MAX_COMMANDS {
                return Err(LoadError::Limit {
                    at: self.at(start),
                    what: "number of commands",
                    limit: MAX_COMMANDS,
                });
            }
            commands.push(cmd);
            self.skip_blanks();
            match self.peek() {
                None | Some('#') => return Ok(()),
                Some(';') => self.pos += 1,
                Some(c) => {
                    return Err(self.syntax(
                        self.pos,
                        format!(
                            "unexpected `{c}` after the command; expected `;`, `#` or end of line"
                        ),
                    ));
                }
            }
        }
    }

    /// Reads the delimiter after the command letter at `self.pos`.
    fn delimiter(&mut self, cmd: char) -> Result<char, LoadError> {
        self.pos += 1;
        match self.peek() {
            None => Err(self.syntax(
                self.pos,
                format!("expected a delimiter after `{cmd}` (as in `{cmd}/a/b/`)"),
            )),
            Some(d) if d == '\\' || d.is_alphanumeric() => Err(self.syntax(
                self.pos,
                format!(
                    "invalid delimiter `{d}`; expected any character except backslash, newline, letters and digits"
                ),
            )),
            Some(d) => {
                self.pos += 1;
                Ok(d)
            }
        }
    }

    fn unterminated(&self, cmd: char, delim: char, part: &str) -> LoadError {
        self.syntax(
            self.chars.len(),
            format!("unterminated `{cmd}` command; expected `{delim}` to end the {part}"),
        )
    }

    fn var_error(&self, pos: usize, kind: super::vars::TemplateErrorKind) -> LoadError {
        LoadError::Variable {
            at: self.at(pos),
            kind,
        }
    }

    fn parse_s(&mut self) -> Result<Subst, LoadError> {
        let cmd_pos = self.pos;
        let delim = self.delimiter('s')?;
        let re_pos = self.pos;
        let pieces = self.parse_regex(delim)?;
        let re_len = self.pos - 1 - re_pos;
        if re_len > MAX_PATTERN_CHARS {
            return Err(LoadError::Limit {
                at: self.at(re_pos),
                what: "regex length in characters",
                limit: MAX_PATTERN_CHARS,
            });
        }
        if pieces.is_empty() {
            return Err(self.syntax(
                re_pos,
                "empty regex; expected a pattern (GNU sed's reuse of the previous regex is not supported)",
            ));
        }
        let (repl, max_group) = self.parse_replacement(delim)?;
        let flags = self.parse_flags()?;
        let at = self.at(cmd_pos);
        let (pattern, groups) =
            compile_at_load(&pieces, flags.icase, flags.multiline).map_err(|reason| {
                LoadError::Regex {
                    at: self.at(re_pos),
                    reason,
                }
            })?;
        if let Some((n, pos)) = max_group
            && n >= groups
        {
            return Err(self.syntax(
                pos,
                format!(
                    "invalid reference `\\{n}`; the regex has {} group{}",
                    groups - 1,
                    if groups == 2 { "" } else { "s" }
                ),
            ));
        }
        Ok(Subst {
            at: at.to_string(),
            pattern,
            whole_match_only: repl.iter().all(|r| !matches!(r, Repl::Group(n) if *n > 0)),
            has_case: repl.iter().any(|r| matches!(r, Repl::Case(_))),
            repl,
            global: flags.global,
            nth: flags.nth,
            icase: flags.icase,
            multiline: flags.multiline,
        })
    }

    /// Reads the regex up to the closing delimiter, splitting out `${NAME}` references.
    fn parse_regex(&mut self, delim: char) -> Result<Vec<RePiece>, LoadError> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        // Inside `[...]` (nested classes count) the delimiter is literal, as in GNU sed.
        let mut class_depth = 0usize;
        loop {
            let Some(c) = self.peek() else {
                return Err(self.unterminated('s', delim, "regex"));
            };
            if c == '\\' {
                let Some(n) = self.chars.get(self.pos + 1).copied() else {
                    return Err(self.unterminated('s', delim, "regex"));
                };
                if n == delim {
                    text.push_str(&regex::escape(&n.to_string()));
                } else {
                    text.push('\\');
                    text.push(n);
                }
                self.pos += 2;
                continue;
            }
            if c == delim && class_depth == 0 {
                self.pos += 1;
                break;
            }
            if c == delim {
                text.push_str(&regex::escape(&c.to_string()));
                self.pos += 1;
                continue;
            }
            if c == '$' {
                match scan_known(&self.chars, self.pos, self.vars)
                    .map_err(|k| self.var_error(self.pos, k))?
                {
                    Dollar::Var(name, len) => {
                        if class_depth > 0 {
                            return Err(self.syntax(
                                self.pos,
                                "a variable cannot be used inside a `[...]` class; expected it outside the brackets",
                            ));
                        }
                        if let Some(value) = self.vars.fixed(&name) {
                            // Fixed at load: becomes part of the static regex.
                            push_value(&mut text, value);
                        } else {
                            if !text.is_empty() {
                                pieces.push(RePiece::Text(std::mem::take(&mut text)));
                            }
                            pieces.push(RePiece::Var(name));
                        }
                        self.pos += len;
                        continue;
                    }
                    Dollar::Escaped => {
                        text.push_str("\\$\\{");
                        self.pos += 3;
                        continue;
                    }
                    Dollar::Plain => {}
                }
            }
            text.push(c);
            self.pos += 1;
            if c == '[' {
                class_depth += 1;
                // `[]...]` and `[^]...]`: a leading `]` is a member, not the end.
                if self.peek() == Some('^') {
                    text.push('^');
                    self.pos += 1;
                }
                if self.peek() == Some(']') {
                    text.push(']');
                    self.pos += 1;
                }
            } else if c == ']' && class_depth > 0 {
                class_depth -= 1;
            }
        }
        if !text.is_empty() {
            pieces.push(RePiece::Text(text));
        }
        Ok(pieces)
    }

    /// Reads the replacement; returns it and the highest group referenced (with its position).
    #[allow(clippy::type_complexity)]
    fn parse_replacement(
        &mut self,
        delim: char,
    ) -> Result<(Vec<Repl>, Option<(usize, usize)>), LoadError> {
        let mut out: Vec<Repl> = Vec::new();
        let mut max_group: Option<(usize, usize)> = None;
        let push_lit = |out: &mut Vec<Repl>, s: &str| match out.last_mut() {
            Some(Repl::Lit(prev)) => prev.push_str(s),
            _ => out.push(Repl::Lit(s.to_string())),
        };
        loop {
            let Some(c) = self.peek() else {
                return Err(self.unterminated('s', delim, "replacement"));
            };
            if c == delim {
                self.pos += 1;
                break;
            }
            match c {
                '\\' => {
                    let Some(n) = self.chars.get(self.pos + 1).copied() else {
                        return Err(self.unterminated('s', delim, "replacement"));
                    };
                    match n {
                        '0'..='9' => {
                            let g = n as usize - '0' as usize;
                            if max_group.is_none_or(|(m, _)| g > m) {
                                max_group = Some((g, self.pos));
                            }
                            out.push(Repl::Group(g));
                        }
                        'n' => push_lit(&mut out, "\n"),
                        't' => push_lit(&mut out, "\t"),
                        'U' => out.push(Repl::Case(Case::Upper)),
                        'L' => out.push(Repl::Case(Case::Lower)),
                        'u' => out.push(Repl::Case(Case::UpperNext)),
                        'l' => out.push(Repl::Case(Case::LowerNext)),
                        'E' => out.push(Repl::Case(Case::End)),
                        '&' | '\\' => push_lit(&mut out, &n.to_string()),
                        d if d == delim => push_lit(&mut out, &d.to_string()),
                        other => {
                            return Err(self.syntax(
                                self.pos,
                                format!(
                                    "unknown escape `\\{other}` in the replacement; expected \\0-\\9, \\&, \\\\, \\n, \\t, \\U, \\L, \\u, \\l, \\E or \\{delim}"
                                ),
                            ));
                        }
                    }
                    self.pos += 2;
                }
                '&' => {
                    out.push(Repl::Group(0));
                    self.pos += 1;
                }
                '$' => match scan_known(&self.chars, self.pos, self.vars)
                    .map_err(|k| self.var_error(self.pos, k))?
                {
                    Dollar::Var(name, len) => {
                        out.push(match self.vars.fixed(&name) {
                            Some(v) => Repl::Lit(v.to_string()),
                            None => Repl::Var(name),
                        });
                        self.pos += len;
                    }
                    Dollar::Escaped => {
                        push_lit(&mut out, "${");
                        self.pos += 3;
                    }
                    Dollar::Plain => {
                        push_lit(&mut out, "$");
                        self.pos += 1;
                    }
                },
                _ => {
                    push_lit(&mut out, &c.to_string());
                    self.pos += 1;
                }
            }
        }
        // Merge literals split by a fixed variable, so the expander does fewer pushes.
        let mut merged: Vec<Repl> = Vec::with_capacity(out.len());
        for r in out {
            match (merged.last_mut(), r) {
                (Some(Repl::Lit(prev)), Repl::Lit(s)) => prev.push_str(&s),
                (_, r) => merged.push(r),
            }
        }
        Ok((merged, max_group))
    }

    fn parse_flags(&mut self) -> Result<Flags, LoadError> {
        let mut f = Flags {
            global: false,
            nth: 1,
            icase: false,
            multiline: false,
        };
        let mut seen_nth = false;
        loop {
            let pos = self.pos;
            let Some(c) = self.peek() else { break };
            let dup = |name: &str| self.syntax(pos, format!("flag `{name}` given twice"));
            match c {
                ' ' | '\t' | ';' | '#' => break,
                'g' if f.global => return Err(dup("g")),
                'g' => f.global = true,
                'i' | 'I' if f.icase => return Err(dup("i")),
                'i' | 'I' => f.icase = true,
                'm' | 'M' if f.multiline => return Err(dup("m")),
                'm' | 'M' => f.multiline = true,
                '0'..='9' => {
                    let mut end = pos;
                    while self.chars.get(end).is_some_and(char::is_ascii_digit) {
                        end += 1;
                    }
                    let digits: String = self.chars[pos..end].iter().collect();
                    if seen_nth {
                        return Err(self.syntax(pos, "more than one number flag"));
                    }
                    let n: usize = digits
                        .parse()
                        .map_err(|_| self.syntax(pos, "number flag too large"))?;
                    if n == 0 {
                        return Err(self.syntax(pos, "number flag must be 1 or more"));
                    }
                    f.nth = n;
                    seen_nth = true;
                    self.pos = end;
                    continue;
                }
                other => {
                    return Err(self.syntax(
                        pos,
                        format!(
                            "unknown flag `{other}`; expected g, i, I, m, M or a number, then `;`, `#` or end of line"
                        ),
                    ));
                }
            }
            self.pos += 1;
        }
        Ok(f)
    }

    fn parse_y(&mut self) -> Result<Translit, LoadError> {
        let cmd_pos = self.pos;
        let delim = self.delimiter('y')?;
        let from = self.parse_y_part(delim, "source characters")?;
        let to = self.parse_y_part(delim, "target characters")?;
        if from.len() != to.len() {
            return Err(self.syntax(
                cmd_pos,
                format!(
                    "`y` strings have different lengths ({} and {} characters); expected equal lengths",
                    from.len(),
                    to.len()
                ),
            ));
        }
        let mut ascii = ['\0'; 128];
        for (i, slot) in ascii.iter_mut().enumerate() {
            *slot = char::from(i as u8);
        }
        let mut pairs: Vec<(char, char)> = Vec::new();
        for (&a, &b) in from.iter().zip(&to) {
            match pairs.iter().find(|(x, _)| *x == a) {
                Some((_, prev)) if *prev != b => {
                    return Err(self.syntax(
                        cmd_pos,
                        format!("`y` maps `{a}` to both `{prev}` and `{b}`; expected each source character once"),
                    ));
                }
                Some(_) => continue,
                None => pairs.push((a, b)),
            }
        }
        let mut other = Vec::new();
        for &(a, b) in &pairs {
            if a.is_ascii() {
                ascii[a as usize] = b;
            } else {
                other.push((a, b));
            }
        }
        other.sort_unstable();
        Ok(Translit {
            ascii,
            other,
            pairs,
        })
    }

    fn parse_y_part(&mut self, delim: char, part: &str) -> Result<Vec<char>, LoadError> {
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.unterminated('y', delim, part));
            };
            self.pos += 1;
            if c == delim {
                return Ok(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some(n) = self.peek() else {
                return Err(self.unterminated('y', delim, part));
            };
            out.push(match n {
                'n' => '\n',
                't' => '\t',
                '\\' => '\\',
                d if d == delim => d,
                other => {
                    return Err(self.syntax(
                        self.pos - 1,
                        format!(
                            "unknown escape `\\{other}` in `y`; expected \\\\, \\n, \\t or \\{delim}"
                        ),
                    ));
                }
            });
            self.pos += 1;
        }
    }
}

struct Flags {
    global: bool,
    nth: usize,
    icase: bool,
    multiline: bool,
}

fn build(text: &str, icase: bool, multiline: bool) -> Result<Regex, regex::Error> {
    RegexBuilder::new(text)
        .case_insensitive(icase)
        .multi_line(multiline)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .build()
}

/// The regex crate's error on one line (its syntax errors span several, with a caret diagram).
fn reason(e: &regex::Error) -> String {
    match e {
        regex::Error::CompiledTooBig(limit) => {
            format!("compiled regex exceeds the size limit of {limit} bytes")
        }
        other => {
            let text = other.to_string();
            text.lines()
                .rev()
                .find_map(|l| l.strip_prefix("error: "))
                .unwrap_or(text.lines().last().unwrap_or(""))
                .to_string()
        }
    }
}

/// Value text as regex: escaped, and grouped so a following quantifier applies to all of it.
/// `-x` keeps the value's spaces and `#` literal even inside a `(?x)` pattern.
fn push_value(out: &mut String, value: &str) {
    out.push_str("(?-x:");
    out.push_str(&regex::escape(value));
    out.push(')');
}

/// Compiles a pattern whose variables are all fixed, or checks one that has per-secret
/// variables by compiling it with a placeholder. Returns the pattern and its group count.
fn compile_at_load(
    pieces: &[RePiece],
    icase: bool,
    multiline: bool,
) -> Result<(Pattern, usize), String> {
    let dynamic = pieces.iter().any(|p| matches!(p, RePiece::Var(_)));
    let mut text = String::new();
    for p in pieces {
        match p {
            RePiece::Text(t) => text.push_str(t),
            RePiece::Var(_) => push_value(&mut text, "v"),
        }
    }
    let re = build(&text, icase, multiline).map_err(|e| reason(&e))?;
    let groups = re.captures_len();
    let pattern = if dynamic {
        Pattern::Dynamic {
            pieces: pieces.to_vec(),
            cache: Mutex::new(HashMap::new()),
        }
    } else {
        Pattern::Static(Arc::new(re))
    };
    Ok((pattern, groups))
}

impl Pattern {
    fn canonical(&self) -> String {
        match self {
            Pattern::Static(re) => re.as_str().to_string(),
            Pattern::Dynamic { pieces, .. } => pieces
                .iter()
                .map(|p| match p {
                    RePiece::Text(t) => t.clone(),
                    RePiece::Var(n) => format!("${{{n}}}"),
                })
                .collect(),
        }
    }
}

impl Subst {
    fn regex(&self, vars: &Vars) -> Result<Arc<Regex>, ApplyError> {
        let (pieces, cache) = match &self.pattern {
            Pattern::Static(re) => return Ok(Arc::clone(re)),
            Pattern::Dynamic { pieces, cache } => (pieces, cache),
        };
        let mut text = String::new();
        for p in pieces {
            match p {
                RePiece::Text(t) => text.push_str(t),
                RePiece::Var(n) => push_value(&mut text, lookup(vars, n)?),
            }
        }
        // A poisoned lock only means another thread panicked mid-insert; the map is still valid.
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(re) = cache.get(&text) {
            return Ok(Arc::clone(re));
        }
        let re = build(&text, self.icase, self.multiline).map_err(|e| ApplyError::Regex {
            at: self.at.clone(),
            reason: match e {
                regex::Error::CompiledTooBig(_) => "it exceeds the regex size limit",
                _ => "syntax error",
            },
        })?;
        let re = Arc::new(re);
        if cache.len() >= PATTERN_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(text, Arc::clone(&re));
        Ok(re)
    }

    fn apply(&self, input: &str, vars: &Vars) -> Result<Option<String>, ApplyError> {
        let re = self.regex(vars)?;
        let mut run = Run {
            // With `M`, the empty text after a trailing newline is not a line of its own
            // (`s/^/> /Mg` on "a\nb\n" gives "> a\n> b\n", as line-oriented sed would).
            skip_end: self.multiline && input.ends_with('\n'),
            input,
            out: String::with_capacity(input.len() + input.len() / 8),
            last: 0,
            count: 0,
            replaced: false,
        };
        if self.whole_match_only {
            for m in re.find_iter(input) {
                if !run.step(self, m, &m, vars)? {
                    break;
                }
            }
        } else {
            let mut groups = Locations {
                input,
                locs: re.capture_locations(),
            };
            let mut matches = CaptureMatches::new(input);
            while let Some(m) = matches.next(&re, &mut groups.locs) {
                if !run.step(self, m, &groups, vars)? {
                    break;
                }
            }
        }
        if !run.replaced {
            return Ok(None);
        }
        let mut out = run.out;
        out.push_str(&input[run.last..]);
        Ok(if out == input { None } else { Some(out) })
    }

    fn expand(&self, out: &mut String, groups: &dyn Groups, vars: &Vars) -> Result<(), ApplyError> {
        if !self.has_case {
            for r in &self.repl {
                match r {
                    Repl::Lit(s) => out.push_str(s),
                    Repl::Group(n) => out.push_str(groups.group(*n)),
                    Repl::Var(n) => out.push_str(lookup(vars, n)?),
                    Repl::Case(_) => {}
                }
            }
            return Ok(());
        }
        let mut conv = CaseConv::default();
        for r in &self.repl {
            match r {
                Repl::Lit(s) => conv.push(out, s),
                Repl::Group(n) => conv.push(out, groups.group(*n)),
                Repl::Var(n) => conv.push(out, lookup(vars, n)?),
                Repl::Case(c) => conv.set(*c),
            }
        }
        Ok(())
    }
}

/// Match groups for the expander: a bare match (group 0 only) or full captures.
trait Groups {
    /// Text of group `i`; empty when it did not participate (as in GNU sed).
    fn group(&self, i: usize) -> &str;
}

impl Groups for regex::Match<'_> {
    fn group(&self, i: usize) -> &str {
        if i == 0 { self.as_str() } else { "" }
    }
}

/// The groups of the current match, in capture locations reused from match to match.
struct Locations<'h> {
    input: &'h str,
    locs: regex::CaptureLocations,
}

impl Groups for Locations<'_> {
    fn group(&self, i: usize) -> &str {
        self.locs.get(i).map_or("", |(s, e)| &self.input[s..e])
    }
}

/// The matches of `Regex::captures_iter`, without its allocation per match: each match's
/// groups go into one reused [`regex::CaptureLocations`]. The iteration rule is the regex
/// crate's: search on from the end of the previous match, and skip an empty match right where
/// the previous match ended by searching again one character further.
struct CaptureMatches<'h> {
    input: &'h str,
    at: usize,
    last_end: Option<usize>,
}

impl<'h> CaptureMatches<'h> {
    fn new(input: &'h str) -> Self {
        CaptureMatches {
            input,
            at: 0,
            last_end: None,
        }
    }

    fn next(&mut self, re: &Regex, locs: &mut regex::CaptureLocations) -> Option<regex::Match<'h>> {
        loop {
            if self.at > self.input.len() {
                return None;
            }
            let m = re.captures_read_at(locs, self.input, self.at)?;
            if m.is_empty() && Some(m.end()) == self.last_end {
                let step = self.input[m.end()..].chars().next()?.len_utf8();
                self.at = m.end() + step;
                continue;
            }
            self.at = m.end();
            self.last_end = Some(m.end());
            return Some(m);
        }
    }
}

/// State of one `s` pass over a value.
struct Run<'h> {
    input: &'h str,
    out: String,
    /// End of the previous replaced match.
    last: usize,
    /// Matches seen (for the N flag).
    count: usize,
    replaced: bool,
    skip_end: bool,
}

impl Run<'_> {
    /// Handles one match; returns whether to go on to the next.
    fn step(
        &mut self,
        s: &Subst,
        m: regex::Match<'_>,
        groups: &dyn Groups,
        vars: &Vars,
    ) -> Result<bool, ApplyError> {
        if self.skip_end && m.is_empty() && m.start() == self.input.len() {
            return Ok(false);
        }
        self.count += 1;
        if self.count < s.nth {
            return Ok(true);
        }
        self.out.push_str(&self.input[self.last..m.start()]);
        s.expand(&mut self.out, groups, vars)?;
        self.last = m.end();
        self.replaced = true;
        if self.out.len() > MAX_WORK_BYTES {
            return Err(ApplyError::TooLarge {
                bytes: self.out.len(),
            });
        }
        Ok(s.global)
    }
}

/// GNU case conversion state: `\U`/`\L` until `\E`; `\u`/`\l` for the next char only.
/// Setting `\U`, `\L` or `\E` cancels a pending `\u`/`\l` (GNU: `\u\Lfoo` gives `foo`).
#[derive(Default)]
struct CaseConv {
    mode: Option<bool>,
    next: Option<bool>,
}

impl CaseConv {
    fn set(&mut self, c: Case) {
        match c {
            Case::Upper => (self.mode, self.next) = (Some(true), None),
            Case::Lower => (self.mode, self.next) = (Some(false), None),
            Case::End => (self.mode, self.next) = (None, None),
            Case::UpperNext => self.next = Some(true),
            Case::LowerNext => self.next = Some(false),
        }
    }

    fn push(&mut self, out: &mut String, s: &str) {
        if self.next.is_none() && s.is_ascii() {
            match self.mode {
                Some(true) => out.extend(s.bytes().map(|b| char::from(b.to_ascii_uppercase()))),
                Some(false) => out.extend(s.bytes().map(|b| char::from(b.to_ascii_lowercase()))),
                None => out.push_str(s),
            }
            return;
        }
        for ch in s.chars() {
            match self.next.take().or(self.mode) {
                Some(true) => out.extend(ch.to_uppercase()),
                Some(false) => out.extend(ch.to_lowercase()),
                None => out.push(ch),
            }
        }
    }
}

impl Translit {
    fn map(&self, c: char) -> char {
        if c.is_ascii() {
            return self.ascii[c as usize];
        }
        match self.other.binary_search_by(|(a, _)| a.cmp(&c)) {
            Ok(i) => self.other[i].1,
            Err(_) => c,
        }
    }

    fn apply(&self, input: &str) -> Option<String> {
        // Most values contain none of a short `y` list: memchr-speed `contains` per source
        // character beats mapping every character of the value.
        if self.pairs.len() <= 8 && !self.pairs.iter().any(|&(a, b)| a != b && input.contains(a)) {
            return None;
        }
        let first = input.char_indices().find(|&(_, c)| self.map(c) != c)?.0;
        let mut out = String::with_capacity(input.len());
        out.push_str(&input[..first]);
        out.extend(input[first..].chars().map(|c| self.map(c)));
        (out != input).then_some(out)
    }
}

#[cfg(test)]
mod tests;
