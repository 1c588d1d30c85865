//! `string.find`, `string.match`, `string.gmatch` and `string.gsub` with a step budget.
//!
//! Lua's own pattern functions are C code: the VM's instruction-count hook never runs inside
//! them, and a backtracking pattern such as `.-.-.-b` over a few hundred bytes runs for
//! minutes with no way to stop it. These replacements keep Lua 5.1's semantics (the
//! matcher follows `lstrlib.c`: classes `%a %c %d %l %p %s %u %w %x %z` and their
//! complements, sets, `%b`, `%f`, back-references, position captures, a pattern ending at
//! its first NUL) and count every matching step: each [`CHECK_EVERY`] steps they ask the
//! run's guard whether the script must stop (its time limit, SCRIPT KILL or shutdown).
//! Recursion is bounded as in Lua 5.2+ (`pattern too complex`), so no pattern can overflow
//! the stack.
//!
//! Why not a crate: the `lua-patterns` crate binds Lua 5.2's C matcher, which has the same
//! unbounded loops; no crate found offers a budget.
//!
//! `gsub`'s result is built outside Lua's allocator, so its size is checked against the
//! memory the VM has left (`not enough memory`, as an allocation failure would say).

use std::cell::Cell;
use std::rc::Rc;

use mlua::{Function, Lua, LuaString, MultiValue, Table, Value};

/// Most captures in one pattern (Lua's `LUA_MAXCAPTURES`).
const MAX_CAPTURES: usize = 32;
/// Deepest recursion of the matcher (Lua 5.2's `MAXCCALLS`).
const MAX_DEPTH: usize = 200;
/// How many steps run between two checks of the guard.
const CHECK_EVERY: u32 = 1024;
const CAP_UNFINISHED: isize = -1;
const CAP_POSITION: isize = -2;

/// Asked every [`CHECK_EVERY`] steps: `Err` stops the match with that error.
pub(super) type Guard = Rc<dyn Fn() -> mlua::Result<()>>;
/// The bytes the VM may still allocate (None: no limit).
pub(super) type Room = Rc<dyn Fn(&Lua) -> Option<usize>>;

/// Why a match stopped early.
enum Stop {
    /// A malformed pattern: Lua's message.
    Bad(&'static str),
    /// The guard's error.
    Guard(mlua::Error),
}

impl From<Stop> for mlua::Error {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Bad(msg) => mlua::Error::runtime(msg),
            Stop::Guard(err) => err,
        }
    }
}

type Step<T> = Result<T, Stop>;

/// One capture's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cap {
    /// `src[start..end]`.
    Str(usize, usize),
    /// A position capture `()`: 1-based.
    Pos(usize),
}

/// Matching state of one attempt: Lua's `MatchState`.
struct Matcher<'a> {
    src: &'a [u8],
    pat: &'a [u8],
    level: usize,
    capture: [(usize, isize); MAX_CAPTURES],
    steps: u32,
    depth: usize,
    guard: &'a dyn Fn() -> mlua::Result<()>,
}

/// The part of `pattern` Lua 5.1 sees: up to its first NUL.
fn effective(pattern: &[u8]) -> &[u8] {
    match pattern.iter().position(|&b| b == 0) {
        Some(end) => &pattern[..end],
        None => pattern,
    }
}

fn class_matches(c: u8, class: u8) -> bool {
    let res = match class.to_ascii_lowercase() {
        b'a' => c.is_ascii_alphabetic(),
        b'c' => c.is_ascii_control(),
        b'd' => c.is_ascii_digit(),
        b'l' => c.is_ascii_lowercase(),
        b'p' => c.is_ascii_punctuation(),
        b's' => matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'),
        b'u' => c.is_ascii_uppercase(),
        b'w' => c.is_ascii_alphanumeric(),
        b'x' => c.is_ascii_hexdigit(),
        b'z' => c == 0,
        _ => return class == c,
    };
    if class.is_ascii_uppercase() {
        !res
    } else {
        res
    }
}

impl<'a> Matcher<'a> {
    fn new(src: &'a [u8], pat: &'a [u8], guard: &'a dyn Fn() -> mlua::Result<()>) -> Self {
        Matcher {
            src,
            pat,
            level: 0,
            capture: [(0, 0); MAX_CAPTURES],
            steps: 0,
            depth: 0,
            guard,
        }
    }

    fn step(&mut self) -> Step<()> {
        self.steps = self.steps.wrapping_add(1);
        if self.steps.is_multiple_of(CHECK_EVERY) {
            (self.guard)().map_err(Stop::Guard)?;
        }
        Ok(())
    }

    fn pat_at(&self, p: usize) -> u8 {
        self.pat.get(p).copied().unwrap_or(0)
    }

    /// The end of the single-character class starting at `p`.
    fn class_end(&self, mut p: usize) -> Step<usize> {
        let c = self.pat_at(p);
        p += 1;
        if c == b'%' {
            if p >= self.pat.len() {
                return Err(Stop::Bad("malformed pattern (ends with '%')"));
            }
            return Ok(p + 1);
        }
        if c == b'[' {
            if self.pat_at(p) == b'^' {
                p += 1;
            }
            loop {
                if p >= self.pat.len() {
                    return Err(Stop::Bad("malformed pattern (missing ']')"));
                }
                let cc = self.pat[p];
                p += 1;
                if cc == b'%' && p < self.pat.len() {
                    p += 1;
                }
                if self.pat_at(p) == b']' {
                    break;
                }
            }
            return Ok(p + 1);
        }
        Ok(p)
    }

    /// Whether `c` is in the set `[...]` from `p` (at `[`) to `ec` (at `]`).
    fn bracket_matches(&self, c: u8, mut p: usize, ec: usize) -> bool {
        let mut sig = true;
        if self.pat_at(p + 1) == b'^' {
            sig = false;
            p += 1;
        }
        loop {
            p += 1;
            if p >= ec {
                break;
            }
            if self.pat[p] == b'%' {
                p += 1;
                if class_matches(c, self.pat_at(p)) {
                    return sig;
                }
            } else if self.pat_at(p + 1) == b'-' && p + 2 < ec {
                p += 2;
                if self.pat[p - 2] <= c && c <= self.pat[p] {
                    return sig;
                }
            } else if self.pat[p] == c {
                return sig;
            }
        }
        !sig
    }

    fn single_matches(&self, c: u8, p: usize, ep: usize) -> bool {
        match self.pat_at(p) {
            b'.' => true,
            b'%' => class_matches(c, self.pat_at(p + 1)),
            b'[' => self.bracket_matches(c, p, ep - 1),
            other => other == c,
        }
    }

    /// Matches `pat[p..]` at `src[s..]`: the end of the match.
    fn do_match(&mut self, s: usize, p: usize) -> Step<Option<usize>> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Stop::Bad("pattern too complex"));
        }
        let out = self.match_here(s, p);
        self.depth -= 1;
        out
    }

    fn match_here(&mut self, mut s: usize, mut p: usize) -> Step<Option<usize>> {
        loop {
            self.step()?;
            if p >= self.pat.len() {
                return Ok(Some(s));
            }
            match self.pat[p] {
                b'(' => {
                    return if self.pat_at(p + 1) == b')' {
                        self.start_capture(s, p + 2, CAP_POSITION)
                    } else {
                        self.start_capture(s, p + 1, CAP_UNFINISHED)
                    };
                }
                b')' => return self.end_capture(s, p + 1),
                b'%' if self.pat_at(p + 1) == b'b' => match self.match_balance(s, p + 2)? {
                    Some(end) => {
                        s = end;
                        p += 4;
                        continue;
                    }
                    None => return Ok(None),
                },
                b'%' if self.pat_at(p + 1) == b'f' => {
                    p += 2;
                    if self.pat_at(p) != b'[' {
                        return Err(Stop::Bad("missing '[' after '%f' in pattern"));
                    }
                    let ep = self.class_end(p)?;
                    let previous = if s == 0 { 0 } else { self.src[s - 1] };
                    let current = self.src.get(s).copied().unwrap_or(0);
                    if self.bracket_matches(previous, p, ep - 1)
                        || !self.bracket_matches(current, p, ep - 1)
                    {
                        return Ok(None);
                    }
                    p = ep;
                    continue;
                }
                b'%' if self.pat_at(p + 1).is_ascii_digit() => {
                    match self.match_capture(s, self.pat_at(p + 1))? {
                        Some(end) => {
                            s = end;
                            p += 2;
                            continue;
                        }
                        None => return Ok(None),
                    }
                }
                b'$' if p + 1 == self.pat.len() => {
                    return Ok((s == self.src.len()).then_some(s));
                }
                _ => {}
            }
            let ep = self.class_end(p)?;
            let m = s < self.src.len() && self.single_matches(self.src[s], p, ep);
            match self.pat_at(ep) {
                b'?' => {
                    if m {
                        if let Some(end) = self.do_match(s + 1, ep + 1)? {
                            return Ok(Some(end));
                        }
                    }
                    p = ep + 1;
                }
                b'*' => return self.max_expand(s, p, ep),
                b'+' => {
                    return if m {
                        self.max_expand(s + 1, p, ep)
                    } else {
                        Ok(None)
                    }
                }
                b'-' => return self.min_expand(s, p, ep),
                _ => {
                    if !m {
                        return Ok(None);
                    }
                    s += 1;
                    p = ep;
                }
            }
        }
    }

    fn max_expand(&mut self, s: usize, p: usize, ep: usize) -> Step<Option<usize>> {
        let mut i = 0;
        while s + i < self.src.len() && self.single_matches(self.src[s + i], p, ep) {
            i += 1;
            self.step()?;
        }
        loop {
            if let Some(end) = self.do_match(s + i, ep + 1)? {
                return Ok(Some(end));
            }
            if i == 0 {
                return Ok(None);
            }
            i -= 1;
        }
    }

    fn min_expand(&mut self, mut s: usize, p: usize, ep: usize) -> Step<Option<usize>> {
        loop {
            if let Some(end) = self.do_match(s, ep + 1)? {
                return Ok(Some(end));
            }
            if s < self.src.len() && self.single_matches(self.src[s], p, ep) {
                s += 1;
            } else {
                return Ok(None);
            }
        }
    }

    fn start_capture(&mut self, s: usize, p: usize, what: isize) -> Step<Option<usize>> {
        if self.level >= MAX_CAPTURES {
            return Err(Stop::Bad("too many captures"));
        }
        self.capture[self.level] = (s, what);
        self.level += 1;
        let out = self.do_match(s, p)?;
        if out.is_none() {
            self.level -= 1;
        }
        Ok(out)
    }

    fn end_capture(&mut self, s: usize, p: usize) -> Step<Option<usize>> {
        let l = (0..self.level)
            .rev()
            .find(|&l| self.capture[l].1 == CAP_UNFINISHED)
            .ok_or(Stop::Bad("invalid pattern capture"))?;
        self.capture[l].1 = (s - self.capture[l].0) as isize;
        let out = self.do_match(s, p)?;
        if out.is_none() {
            self.capture[l].1 = CAP_UNFINISHED;
        }
        Ok(out)
    }

    fn match_balance(&mut self, s: usize, p: usize) -> Step<Option<usize>> {
        if p + 1 >= self.pat.len() {
            return Err(Stop::Bad("unbalanced pattern"));
        }
        let (open, close) = (self.pat[p], self.pat[p + 1]);
        if self.src.get(s) != Some(&open) {
            return Ok(None);
        }
        let mut depth = 1;
        let mut s = s + 1;
        while s < self.src.len() {
            self.step()?;
            let c = self.src[s];
            if c == close {
                depth -= 1;
                if depth == 0 {
                    return Ok(Some(s + 1));
                }
            } else if c == open {
                depth += 1;
            }
            s += 1;
        }
        Ok(None)
    }

    fn match_capture(&mut self, s: usize, digit: u8) -> Step<Option<usize>> {
        let l = usize::from(digit.wrapping_sub(b'1'));
        if l >= self.level || self.capture[l].1 == CAP_UNFINISHED {
            return Err(Stop::Bad("invalid capture index"));
        }
        let (init, len) = self.capture[l];
        // A position capture has no text: Lua 5.1 compares a huge length, which never fits.
        let Ok(len) = usize::try_from(len) else {
            return Ok(None);
        };
        let fits = self.src.len() - s >= len;
        Ok((fits && self.src[init..init + len] == self.src[s..s + len]).then_some(s + len))
    }

    /// Capture `i` of a match of `src[s..e]` (the whole match when there are none).
    fn capture(&self, i: usize, s: usize, e: usize) -> Step<Cap> {
        if i >= self.level {
            return if i == 0 {
                Ok(Cap::Str(s, e))
            } else {
                Err(Stop::Bad("invalid capture index"))
            };
        }
        match self.capture[i] {
            (_, CAP_UNFINISHED) => Err(Stop::Bad("unfinished capture")),
            (init, CAP_POSITION) => Ok(Cap::Pos(init + 1)),
            (init, len) => Ok(Cap::Str(init, init + len as usize)),
        }
    }

    /// Every capture of a match of `src[s..e]`; `whole`: the match itself when there are
    /// no captures (false for `find`).
    fn captures(&self, s: usize, e: usize, whole: bool) -> Step<Vec<Cap>> {
        let n = if self.level == 0 && whole {
            1
        } else {
            self.level
        };
        (0..n).map(|i| self.capture(i, s, e)).collect()
    }

    /// Tries the pattern at every position from `init` (only there when anchored).
    fn search(&mut self, init: usize, anchor: bool, p: usize) -> Step<Option<(usize, usize)>> {
        let mut s = init;
        loop {
            self.level = 0;
            self.depth = 0;
            if let Some(e) = self.do_match(s, p)? {
                return Ok(Some((s, e)));
            }
            s += 1;
            if anchor || s > self.src.len() {
                return Ok(None);
            }
        }
    }
}

fn cap_value(lua: &Lua, src: &[u8], cap: Cap) -> mlua::Result<Value> {
    Ok(match cap {
        Cap::Str(s, e) => Value::String(lua.create_string(&src[s..e])?),
        Cap::Pos(at) => Value::Integer(at as i64),
    })
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Nil => "no value",
        other => other.type_name(),
    }
}

/// `luaL_checklstring`: a string, or a number converted to one.
fn check_string(lua: &Lua, args: &MultiValue, n: usize, fname: &str) -> mlua::Result<LuaString> {
    let value = args.get(n - 1).cloned().unwrap_or(Value::Nil);
    let got = type_name(&value);
    match value {
        Value::String(s) => Ok(s),
        v @ (Value::Integer(_) | Value::Number(_)) => lua
            .coerce_string(v)?
            .ok_or_else(|| mlua::Error::runtime("string expected")),
        _ => Err(mlua::Error::runtime(format!(
            "bad argument #{n} to '{fname}' (string expected, got {got})"
        ))),
    }
}

/// `luaL_optinteger`.
fn opt_integer(
    lua: &Lua,
    args: &MultiValue,
    n: usize,
    fname: &str,
    default: i64,
) -> mlua::Result<i64> {
    match args.get(n - 1).cloned() {
        None | Some(Value::Nil) => Ok(default),
        Some(Value::Number(f)) => Ok(f as i64),
        Some(value) => {
            let got = type_name(&value);
            lua.coerce_integer(value)?.ok_or_else(|| {
                mlua::Error::runtime(format!(
                    "bad argument #{n} to '{fname}' (number expected, got {got})"
                ))
            })
        }
    }
}

/// Lua's `posrelat` made 0-based and clamped to `0..=len`.
fn start_at(init: i64, len: usize) -> usize {
    let pos = if init < 0 {
        init + len as i64 + 1
    } else {
        init
    };
    (pos.max(1) as usize - 1).min(len)
}

/// Installs the four functions into the real `string` table.
pub(super) fn install(lua: &Lua, string: &Table, guard: Guard, room: Room) -> mlua::Result<()> {
    for find in [true, false] {
        let guard = guard.clone();
        let name = if find { "find" } else { "match" };
        let f = lua.create_function(move |lua, args: MultiValue| {
            find_or_match(lua, &args, find, &*guard)
        })?;
        string.raw_set(name, f)?;
    }
    {
        let guard = guard.clone();
        let f = lua.create_function(move |lua, args: MultiValue| {
            let src = check_string(lua, &args, 1, "gmatch")?;
            let pat = check_string(lua, &args, 2, "gmatch")?;
            let guard = guard.clone();
            let pos = Cell::new(0usize);
            lua.create_function(move |lua, ()| {
                let bytes = src.as_bytes();
                let pattern = pat.as_bytes();
                let mut m = Matcher::new(&bytes, effective(&pattern), &*guard);
                let mut s = pos.get();
                while s <= bytes.len() {
                    m.level = 0;
                    m.depth = 0;
                    if let Some(e) = m.do_match(s, 0)? {
                        pos.set(if e == s { e + 1 } else { e });
                        let caps = m.captures(s, e, true)?;
                        return caps
                            .into_iter()
                            .map(|c| cap_value(lua, &bytes, c))
                            .collect::<mlua::Result<MultiValue>>();
                    }
                    s += 1;
                }
                pos.set(bytes.len() + 1);
                Ok(MultiValue::new())
            })
        })?;
        string.raw_set("gmatch", f)?;
    }
    let f = lua.create_function(move |lua, args: MultiValue| gsub(lua, &args, &*guard, &*room))?;
    string.raw_set("gsub", f)?;
    Ok(())
}

fn find_or_match(
    lua: &Lua,
    args: &MultiValue,
    find: bool,
    guard: &dyn Fn() -> mlua::Result<()>,
) -> mlua::Result<MultiValue> {
    let fname = if find { "find" } else { "match" };
    let src = check_string(lua, args, 1, fname)?;
    let pat = check_string(lua, args, 2, fname)?;
    let src = src.as_bytes();
    let pat_bytes = pat.as_bytes();
    let init = start_at(opt_integer(lua, args, 3, fname, 1)?, src.len());
    let plain = matches!(args.get(3), Some(v) if !matches!(v, Value::Nil | Value::Boolean(false)));
    let specials = effective(&pat_bytes)
        .iter()
        .any(|b| b"^$*+?.([%-".contains(b));
    let mut out = MultiValue::new();
    if find && (plain || !specials) {
        let hay = &src[init..];
        let at = if pat_bytes.is_empty() {
            Some(0)
        } else {
            hay.windows(pat_bytes.len())
                .position(|w| w == &pat_bytes[..])
        };
        match at {
            Some(at) => {
                out.push_back(Value::Integer((init + at + 1) as i64));
                out.push_back(Value::Integer((init + at + pat_bytes.len()) as i64));
            }
            None => out.push_back(Value::Nil),
        }
        return Ok(out);
    }
    let pattern = effective(&pat_bytes);
    let (anchor, p) = if pattern.first() == Some(&b'^') {
        (true, 1)
    } else {
        (false, 0)
    };
    let mut m = Matcher::new(&src, pattern, guard);
    match m.search(init, anchor, p)? {
        Some((s, e)) => {
            if find {
                out.push_back(Value::Integer((s + 1) as i64));
                out.push_back(Value::Integer(e as i64));
            }
            for cap in m.captures(s, e, !find)? {
                out.push_back(cap_value(lua, &src, cap)?);
            }
        }
        None => out.push_back(Value::Nil),
    }
    Ok(out)
}

fn gsub(
    lua: &Lua,
    args: &MultiValue,
    guard: &dyn Fn() -> mlua::Result<()>,
    room: &dyn Fn(&Lua) -> Option<usize>,
) -> mlua::Result<(Value, i64)> {
    let src_s = check_string(lua, args, 1, "gsub")?;
    let pat_s = check_string(lua, args, 2, "gsub")?;
    let repl = args.get(2).cloned().unwrap_or(Value::Nil);
    let repl = match repl {
        Value::Integer(_) | Value::Number(_) => Value::String(check_string(lua, args, 3, "gsub")?),
        v @ (Value::String(_) | Value::Table(_) | Value::Function(_)) => v,
        _ => {
            return Err(mlua::Error::runtime(
                "bad argument #3 to 'gsub' (string/function/table expected)",
            ))
        }
    };
    let src = src_s.as_bytes();
    let max_n = opt_integer(lua, args, 4, "gsub", src.len() as i64 + 1)?;
    let pat_bytes = pat_s.as_bytes();
    let pattern = effective(&pat_bytes);
    let (anchor, p) = if pattern.first() == Some(&b'^') {
        (true, 1)
    } else {
        (false, 0)
    };
    let repl_bytes = match &repl {
        Value::String(s) => Some(s.as_bytes()),
        _ => None,
    };
    let mut m = Matcher::new(&src, pattern, guard);
    let mut out: Vec<u8> = Vec::new();
    let mut s = 0;
    let mut n = 0i64;
    let check_room = |out: &Vec<u8>| match room(lua) {
        Some(left) if out.len() > left => Err(mlua::Error::MemoryError("not enough memory".into())),
        _ => Ok(()),
    };
    while n < max_n {
        m.level = 0;
        m.depth = 0;
        let end = m.do_match(s, p)?;
        if let Some(e) = end {
            n += 1;
            add_value(lua, &mut m, &mut out, s, e, &repl, repl_bytes.as_deref())?;
            check_room(&out)?;
        }
        match end {
            Some(e) if e > s => s = e,
            _ if s < src.len() => {
                out.push(src[s]);
                s += 1;
            }
            _ => break,
        }
        if anchor {
            break;
        }
    }
    out.extend_from_slice(&src[s.min(src.len())..]);
    check_room(&out)?;
    Ok((Value::String(lua.create_string(&out)?), n))
}

fn add_value(
    lua: &Lua,
    m: &mut Matcher<'_>,
    out: &mut Vec<u8>,
    s: usize,
    e: usize,
    repl: &Value,
    repl_bytes: Option<&[u8]>,
) -> mlua::Result<()> {
    let src = m.src;
    let value = match repl {
        Value::Table(t) => {
            let key = cap_value(lua, src, m.capture(0, s, e)?)?;
            t.get::<Value>(key)?
        }
        Value::Function(f) => {
            let caps = m.captures(s, e, true)?;
            let args = caps
                .into_iter()
                .map(|c| cap_value(lua, src, c))
                .collect::<mlua::Result<MultiValue>>()?;
            call_first(f, args)?
        }
        _ => {
            let news = repl_bytes.unwrap_or_default();
            let mut i = 0;
            while i < news.len() {
                let c = news[i];
                i += 1;
                if c != b'%' {
                    out.push(c);
                    continue;
                }
                let d = news.get(i).copied().unwrap_or(0);
                i += 1;
                if !d.is_ascii_digit() {
                    out.push(d);
                } else if d == b'0' {
                    out.extend_from_slice(&src[s..e]);
                } else {
                    match m.capture(usize::from(d - b'1'), s, e)? {
                        Cap::Str(a, b) => out.extend_from_slice(&src[a..b]),
                        Cap::Pos(at) => out.extend_from_slice(at.to_string().as_bytes()),
                    }
                }
            }
            return Ok(());
        }
    };
    match value {
        Value::Nil | Value::Boolean(false) => out.extend_from_slice(&src[s..e]),
        Value::String(text) => out.extend_from_slice(&text.as_bytes()),
        v @ (Value::Integer(_) | Value::Number(_)) => {
            if let Some(text) = lua.coerce_string(v)? {
                out.extend_from_slice(&text.as_bytes());
            }
        }
        other => {
            return Err(mlua::Error::runtime(format!(
                "invalid replacement value (a {})",
                other.type_name()
            )))
        }
    }
    Ok(())
}

fn call_first(f: &Function, args: MultiValue) -> mlua::Result<Value> {
    let mut values: MultiValue = f.call(args)?;
    Ok(values.pop_front().unwrap_or(Value::Nil))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str, pat: &str) -> Option<(usize, usize, Vec<Cap>)> {
        let guard = || Ok(());
        let pattern = effective(pat.as_bytes());
        let (anchor, p) = if pattern.first() == Some(&b'^') {
            (true, 1)
        } else {
            (false, 0)
        };
        let mut m = Matcher::new(src.as_bytes(), pattern, &guard);
        let (s, e) = m.search(0, anchor, p).ok()??;
        let caps = m.captures(s, e, true).ok()?;
        Some((s, e, caps))
    }

    #[test]
    fn matches_as_lua_5_1() {
        assert_eq!(run("hello world", "o w").map(|r| (r.0, r.1)), Some((4, 7)));
        assert_eq!(run("aaab", "a-b").map(|r| (r.0, r.1)), Some((0, 4)));
        assert_eq!(
            run("key=val", "(%w+)=(%w+)").map(|r| r.2),
            Some(vec![Cap::Str(0, 3), Cap::Str(4, 7)])
        );
        assert_eq!(run("f(a(b)c)d", "%b()").map(|r| (r.0, r.1)), Some((1, 8)));
        assert_eq!(
            run("THE (quick) fox", "%f[%a]%a+").map(|r| (r.0, r.1)),
            Some((0, 3))
        );
        assert_eq!(run("abcabc", "(abc)%1").map(|r| (r.0, r.1)), Some((0, 6)));
        assert_eq!(
            run("abc", "()b()").map(|r| r.2),
            Some(vec![Cap::Pos(2), Cap::Pos(3)])
        );
        assert_eq!(run("abc", "^b"), None);
        assert_eq!(run("abc", "c$").map(|r| (r.0, r.1)), Some((2, 3)));
        assert_eq!(run("a]b", "[]]").map(|r| (r.0, r.1)), Some((1, 2)));
        assert_eq!(run("x-y", "[%-]").map(|r| (r.0, r.1)), Some((1, 2)));
        assert_eq!(run("abc", "[^a-b]").map(|r| (r.0, r.1)), Some((2, 3)));
    }

    #[test]
    fn a_runaway_pattern_asks_the_guard_and_stops() {
        let asked = Cell::new(0u32);
        let guard = || {
            asked.set(asked.get() + 1);
            if asked.get() > 10 {
                Err(mlua::Error::runtime("script killed"))
            } else {
                Ok(())
            }
        };
        let src = "a".repeat(600);
        let mut m = Matcher::new(src.as_bytes(), b".-.-.-b", &guard);
        assert!(matches!(m.search(0, false, 0), Err(Stop::Guard(_))));
        assert_eq!(asked.get(), 11);
    }

    #[test]
    fn deep_patterns_are_refused_not_overflowed() {
        let guard = || Ok(());
        let pat = "a-".repeat(5000);
        let mut m = Matcher::new(b"aaaa", pat.as_bytes(), &guard);
        assert!(matches!(
            m.search(0, false, 0),
            Err(Stop::Bad("pattern too complex"))
        ));
    }
}
