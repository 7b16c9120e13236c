//! How much stack swc would need for a source, bounded before swc sees it. swc's parser, its
//! strip pass and the dropping of its syntax tree all recurse once per level of nesting, with
//! no depth limit of their own: 100 000 nested parentheses, type arguments or `+` operands
//! overflow any stack. [`check`] estimates the stack each point of the source needs, in one
//! pass that recurses nowhere, and refuses a source whose estimate is over the budget.
//!
//! The estimate follows what makes swc recurse:
//!
//! - each bracket, `${` of a template, `<` (type arguments, or a comparison: the two are not
//!   told apart) and `=>` costs a [`HEAVY`] level;
//! - every other token costs a [`LIGHT`] one, because chains without brackets nest too:
//!   `a + b + c` and `a.b.c` are left-deep trees, `!!!a` and `a ? b : c ? d : e` right-deep
//!   ones;
//! - a `,` or `;` ends a run of tokens (what follows is a sibling in a list), except that
//!   `; else` continues an `if` chain, and so does a statement keyword (`if`, `const`,
//!   `return`, ...) unless it follows `.`, `)`, `:`, `else` or `do`, where it may be nested.
//!
//! The figures are measured on an unoptimised build, whose frames are the largest (the test
//! `the_deepest_accepted_nesting_of_each_shape_strips_within_the_stack` runs each shape at the
//! deepest the check accepts). Strings, comments, regular expressions and template text are
//! skipped, but the brackets inside each still count for as long as it lasts, so a source
//! that hides brackets from this scan behind a misread quote or slash still pays for them.
//! This is an estimate that crafted input can still fool (brackets it takes for a regular
//! expression, a string or a comment, nesting that commas seem to end: the sandbox's
//! `typescript.rs` tests have eight such disguises); swc then runs into its stack's guard,
//! which the worker answers as the same error ([`super::stack`]).

/// Estimated stack of one bracket-like level of nesting, in bytes (about 21 KiB measured for
/// parentheses, the largest).
pub const HEAVY: u64 = 32 * 1024;

/// Estimated stack of one token of a chain, in bytes (about 1.5 KiB measured for `!`, the
/// largest).
pub const LIGHT: u64 = 4 * 1024;

/// Where the estimate first went over the budget: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep {
    pub line: usize,
    pub column: usize,
}

/// What a word says about the nesting, if it is a keyword this scan knows.
#[derive(Debug, Clone, Copy, Default)]
struct Keyword {
    /// A reserved word that only starts statements: what comes before it in the same list has
    /// ended, unless it is nested in the statement before (see [`Scan::word`]).
    statement: bool,
    /// A `/` after it starts a regular expression rather than dividing.
    before_expression: bool,
    /// Its parenthesis is a statement's head, after which `/` starts an expression.
    head: bool,
}

/// The keyword `word` is, in one `match` (this runs for every word of every script).
fn keyword(word: &str) -> Keyword {
    let (statement, before_expression, head) = match word {
        "if" | "while" | "for" | "with" => (true, false, true),
        "do" | "return" | "throw" => (true, true, false),
        "var" | "const" | "try" | "switch" | "break" | "continue" | "debugger" => {
            (true, false, false)
        }
        "await" => (false, true, true),
        "typeof" | "instanceof" | "in" | "of" | "new" | "delete" | "void" | "case" | "else"
        | "yield" | "extends" => (false, true, false),
        _ => return Keyword::default(),
    };
    Keyword {
        statement,
        before_expression,
        head,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opener {
    Paren {
        head: bool,
    },
    Bracket,
    Brace,
    /// `${` in a template: its `}` goes back to the template's text.
    Substitution,
}

struct Frame {
    opener: Opener,
    /// The estimate where the frame opened, its own level included.
    base: u64,
    /// The estimate of the run of tokens in the frame since its last separator.
    run: u64,
}

/// What the last token says about the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    /// An operand ends here: a `/` divides.
    Operand,
    /// An operator, keyword or the start: a `/` starts a regular expression.
    Operator,
}

struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
    line: usize,
    line_start: usize,
    budget: u64,
    frames: Vec<Frame>,
    last: Last,
    /// The last token was `.`, `)`, `:`, `else` or `do`: a statement keyword may be nested.
    nests_keyword: bool,
    /// The last word was a statement head (`if`, `while`, ...), for the parenthesis after it.
    head_word: bool,
    /// A `;` ended the run, unless `else` follows.
    ended: bool,
}

/// Refuses `source` when swc would need more than `budget` bytes of stack for it, by the
/// estimate above.
pub fn check(source: &str, budget: u64) -> Result<(), TooDeep> {
    let mut scan = Scan {
        bytes: source.as_bytes(),
        at: 0,
        line: 1,
        line_start: 0,
        budget,
        frames: vec![Frame {
            opener: Opener::Brace,
            base: 0,
            run: 0,
        }],
        last: Last::Operator,
        nests_keyword: false,
        head_word: false,
        ended: false,
    };
    scan.code(source)
}

impl Scan<'_> {
    fn code(&mut self, source: &str) -> Result<(), TooDeep> {
        while let Some(&byte) = self.bytes.get(self.at) {
            match byte {
                b'\n' => {
                    self.at += 1;
                    self.new_line();
                }
                b' ' | b'\t' | b'\r' | 0x0b | 0x0c => self.at += 1,
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'$' | 0x80.. => {
                    if byte >= 0x80 && self.space_beyond_ascii(source) {
                        continue;
                    }
                    let start = self.at;
                    while let Some(&byte) = self.bytes.get(self.at) {
                        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'$') {
                            self.at += 1;
                        } else if byte >= 0x80 && !starts_with_space(&source[self.at..]) {
                            self.at += char_length(byte);
                        } else {
                            break;
                        }
                    }
                    self.word(&source[start..self.at])?;
                }
                b'(' | b'[' | b'{' => {
                    let opener = match byte {
                        b'(' => Opener::Paren {
                            head: self.head_word,
                        },
                        b'[' => Opener::Bracket,
                        _ => Opener::Brace,
                    };
                    self.at += 1;
                    self.open(opener)?;
                }
                b')' | b']' | b'}' => {
                    self.at += 1;
                    match self.close() {
                        Some(Opener::Substitution) => self.template()?,
                        closed => self.after_close(byte, closed)?,
                    }
                }
                b';' => {
                    self.at += 1;
                    self.ended = true;
                    self.punctuator(false);
                }
                b',' => {
                    self.at += 1;
                    self.top().run = 0;
                    self.punctuator(false);
                }
                b'\'' | b'"' => self.string(byte)?,
                b'`' => {
                    self.at += 1;
                    self.token(LIGHT)?;
                    self.template()?;
                }
                b'/' => self.slash()?,
                b'<' => {
                    self.at += 1;
                    self.token(HEAVY)?;
                    self.punctuator(false);
                }
                b'>' => {
                    let arrow = self.at > 0 && self.bytes[self.at - 1] == b'=';
                    self.at += 1;
                    self.token(if arrow { HEAVY } else { LIGHT })?;
                    self.punctuator(false);
                }
                b'.' => {
                    self.at += 1;
                    self.token(LIGHT)?;
                    self.punctuator(true);
                }
                // Labels nest statements, as `? :` nests expressions.
                b':' => {
                    self.at += 1;
                    self.token(HEAVY)?;
                    self.punctuator(true);
                }
                _ => {
                    self.at += 1;
                    self.token(LIGHT)?;
                    self.punctuator(false);
                }
            }
        }
        Ok(())
    }

    fn top(&mut self) -> &mut Frame {
        self.frames.last_mut().expect("the outermost frame stays")
    }

    fn estimate(&self) -> u64 {
        let top = self.frames.last().expect("the outermost frame stays");
        top.base + top.run
    }

    fn over(&self, estimate: u64) -> Result<(), TooDeep> {
        if estimate <= self.budget {
            return Ok(());
        }
        let column = String::from_utf8_lossy(&self.bytes[self.line_start..self.at])
            .chars()
            .count();
        Err(TooDeep {
            line: self.line,
            column: column.max(1),
        })
    }

    /// One more token of `cost` in the current run.
    fn token(&mut self, cost: u64) -> Result<(), TooDeep> {
        if std::mem::take(&mut self.ended) {
            self.top().run = 0;
        }
        self.top().run += cost;
        self.over(self.estimate())
    }

    fn punctuator(&mut self, nests_keyword: bool) {
        self.last = Last::Operator;
        self.nests_keyword = nests_keyword;
        self.head_word = false;
    }

    fn word(&mut self, word: &str) -> Result<(), TooDeep> {
        if word == "else" {
            // `; else` goes on with the `if` before it.
            self.ended = false;
        }
        let keyword = keyword(word);
        let statement = keyword.statement;
        if statement && !self.nests_keyword {
            self.top().run = 0;
        }
        // A statement nested in another (`if (a) if (b) ...`) is a level of its own.
        self.token(if statement { HEAVY } else { LIGHT })?;
        self.last = if keyword.before_expression {
            Last::Operator
        } else {
            Last::Operand
        };
        self.nests_keyword = matches!(word, "else" | "do");
        self.head_word = keyword.head;
        Ok(())
    }

    fn open(&mut self, opener: Opener) -> Result<(), TooDeep> {
        if std::mem::take(&mut self.ended) {
            self.top().run = 0;
        }
        let base = self.estimate() + HEAVY;
        self.frames.push(Frame {
            opener,
            base,
            run: 0,
        });
        self.punctuator(false);
        self.over(base)
    }

    /// Closes the innermost frame (never the outermost), which it returns.
    fn close(&mut self) -> Option<Opener> {
        self.ended = false;
        if self.frames.len() == 1 {
            return None;
        }
        self.frames.pop().map(|frame| frame.opener)
    }

    /// The closed group is one operand of the run around it.
    fn after_close(&mut self, byte: u8, closed: Option<Opener>) -> Result<(), TooDeep> {
        self.token(LIGHT)?;
        self.last = match (byte, closed) {
            (b']', _) | (b')', Some(Opener::Paren { head: false })) => Last::Operand,
            // A statement's head, or a block or an object: either may be followed by an
            // expression, so a `/` is taken to start one.
            _ => Last::Operator,
        };
        self.nests_keyword = byte == b')';
        self.head_word = false;
        Ok(())
    }

    /// A string literal from its opening quote: to the same quote, or to the end of the line
    /// where it is left unterminated.
    fn string(&mut self, quote: u8) -> Result<(), TooDeep> {
        let mut end = self.at + 1;
        loop {
            match self.bytes.get(end) {
                None | Some(b'\n') => break,
                Some(b'\\') => end += 2,
                Some(&byte) if byte == quote => {
                    end += 1;
                    break;
                }
                Some(_) => end += 1,
            }
        }
        self.skip_to(end.min(self.bytes.len()))?;
        self.token(LIGHT)?;
        self.operand();
        Ok(())
    }

    /// A template's text, from after its backtick or a substitution's `}`: up to its closing
    /// backtick, or into its next `${`.
    fn template(&mut self) -> Result<(), TooDeep> {
        let mut end = self.at;
        loop {
            match self.bytes.get(end) {
                None => {
                    self.skip_to(self.bytes.len())?;
                    return Ok(());
                }
                Some(b'\\') => end += 2,
                Some(b'`') => {
                    self.skip_to(end + 1)?;
                    self.operand();
                    return Ok(());
                }
                Some(b'$') if self.bytes.get(end + 1) == Some(&b'{') => {
                    self.skip_to(end + 2)?;
                    return self.open(Opener::Substitution);
                }
                Some(_) => end += 1,
            }
        }
    }

    /// A comment, a regular expression or a division.
    fn slash(&mut self) -> Result<(), TooDeep> {
        let rest = &self.bytes[self.at..];
        if rest.starts_with(b"//") {
            let end = rest
                .iter()
                .position(|&byte| byte == b'\n')
                .map_or(self.bytes.len(), |offset| self.at + offset);
            return self.skip_to(end);
        }
        if rest.starts_with(b"/*") {
            let end = rest[2..]
                .windows(2)
                .position(|pair| pair == b"*/")
                .map_or(self.bytes.len(), |offset| self.at + 2 + offset + 2);
            return self.skip_to(end);
        }
        if self.last == Last::Operator
            && let Some(end) = self.regular_expression_end()
        {
            self.skip_to(end)?;
            while self
                .bytes
                .get(self.at)
                .is_some_and(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'$'))
            {
                self.at += 1;
            }
            self.token(LIGHT)?;
            self.operand();
            return Ok(());
        }
        self.at += 1;
        self.token(LIGHT)?;
        self.punctuator(false);
        Ok(())
    }

    /// Where a regular expression starting at the current `/` ends (after its closing `/`);
    /// `None` when the line ends first, and the `/` divides.
    fn regular_expression_end(&self) -> Option<usize> {
        let mut end = self.at + 1;
        let mut in_class = false;
        loop {
            match *self.bytes.get(end)? {
                b'\n' => return None,
                b'\\' => {
                    if matches!(self.bytes.get(end + 1), None | Some(b'\n')) {
                        return None;
                    }
                    end += 2;
                }
                b'[' => {
                    in_class = true;
                    end += 1;
                }
                b']' => {
                    in_class = false;
                    end += 1;
                }
                b'/' if !in_class => return Some(end + 1),
                _ => end += 1,
            }
        }
    }

    /// Moves past text this scan does not read as code (a string, comment, regular
    /// expression or template text), counting its lines; the brackets in it still count
    /// while it lasts, as if they nested, in case it was misread and is code after all.
    fn skip_to(&mut self, end: usize) -> Result<(), TooDeep> {
        let mut depth: u64 = 0;
        let mut deepest: u64 = 0;
        for offset in self.at..end {
            match self.bytes[offset] {
                b'(' | b'[' | b'{' | b'<' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b')' | b']' | b'}' | b'>' => depth = depth.saturating_sub(1),
                b'\n' => {
                    self.line += 1;
                    self.line_start = offset + 1;
                }
                _ => {}
            }
        }
        self.at = end;
        self.over(self.estimate() + deepest * HEAVY)
    }

    fn operand(&mut self) {
        self.last = Last::Operand;
        self.nests_keyword = false;
        self.head_word = false;
    }

    /// Moves past a space or line break beyond ASCII at the current position, if there is
    /// one; any other character beyond ASCII is part of a word.
    fn space_beyond_ascii(&mut self, source: &str) -> bool {
        let Some(space) = source[self.at..]
            .chars()
            .next()
            .filter(|_| starts_with_space(&source[self.at..]))
        else {
            return false;
        };
        self.at += space.len_utf8();
        if matches!(space, '\u{2028}' | '\u{2029}') {
            self.new_line();
        }
        true
    }

    fn new_line(&mut self) {
        self.line += 1;
        self.line_start = self.at;
    }
}

/// Whether `text` starts with a space or line break beyond ASCII, which JavaScript counts as
/// white space (or a line terminator) between tokens.
fn starts_with_space(text: &str) -> bool {
    text.chars()
        .next()
        .is_some_and(|first| first.is_whitespace() || first == '\u{feff}')
}

fn char_length(lead: u8) -> usize {
    match lead {
        0xf0.. => 4,
        0xe0.. => 3,
        0xc0.. => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: u64 = 12 * 1024 * 1024;

    fn accepted(source: &str) -> bool {
        check(source, BUDGET).is_ok()
    }

    #[test]
    fn long_flat_code_is_accepted_however_long() {
        let statements = "const total: number = items.reduce((sum, x) => sum + x.price, 0);\n";
        assert!(accepted(&statements.repeat(20_000)));
        // Without semicolons, statement keywords end the runs.
        let asi = "const a = f(x)\nif (a) { g(a) }\nreturn a\n";
        assert!(accepted(&format!(
            "function f() {{\n{}}}",
            asi.repeat(5_000)
        )));
        let elements = format!(
            "const rows = [{}];",
            "{ id: 1, name: 'a' },\n".repeat(20_000)
        );
        assert!(accepted(&elements));
    }

    #[test]
    fn deep_nesting_is_refused_where_the_estimate_passes_the_budget() {
        let deep = format!("x = {}1{}", "(".repeat(1_000), ")".repeat(1_000));
        let refused = check(&deep, BUDGET).unwrap_err();
        assert_eq!(refused.line, 1);
        let levels = (BUDGET / HEAVY) as usize;
        assert!(
            (levels - 2..=levels + 4).contains(&refused.column),
            "refused at column {}",
            refused.column
        );
        let on_line_three = format!("a;\nb;\n{}", "[".repeat(1_000));
        assert_eq!(check(&on_line_three, BUDGET).unwrap_err().line, 3);
    }

    #[test]
    fn brackets_in_strings_comments_and_patterns_count_while_they_last() {
        let hidden = "(".repeat(1_000);
        for source in [
            format!("'{hidden}'"),
            format!("\"{hidden}\""),
            format!("`{hidden}`"),
            format!("// {hidden}"),
            format!("/* {hidden} */"),
            format!("x = /{hidden}/"),
            // A division taken for a pattern: the brackets still count.
            format!("x = {{}} / \"x/\"; {hidden}1"),
        ] {
            assert!(!accepted(&source), "{source:.20}");
        }
        // A few unbalanced brackets in text are nothing.
        assert!(accepted(
            &"x = '(((' + /\\(/.source; // :-(\n".repeat(10_000)
        ));
    }

    #[test]
    fn words_beyond_ascii_are_one_token_and_spaces_beyond_ascii_part_them() {
        let names = "const größe = maß + 数据 * ünïcödé\n";
        assert!(accepted(&names.repeat(20_000)));
        // A chain of prefix operators spaced by no-break spaces is still a chain.
        let chain = format!("x = {}1", "typeof\u{a0}".repeat(100_000));
        assert!(!accepted(&chain));
    }

    #[test]
    fn templates_nest_through_their_substitutions() {
        let depth = 1_000;
        let nested = format!("{}1{}", "`${".repeat(depth), "}`".repeat(depth));
        assert!(!accepted(&nested));
        // A closed template leaves nothing open.
        assert!(accepted(&"x = `a ${b} c ${`d ${e}`}`;\n".repeat(10_000)));
    }

    #[test]
    fn chains_without_brackets_count_token_by_token() {
        for chain in ["+1", ".a", "!", "a?b:", "x=>", " as any", "a="] {
            let source = format!("x = {}1", chain.repeat(100_000));
            assert!(!accepted(&source), "{chain}");
        }
        // `; else` goes on with its `if`.
        let chain = format!("if (a) a;{}", "else if (a) a;".repeat(10_000));
        assert!(!accepted(&chain));
    }
}
