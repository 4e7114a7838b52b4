//! The layout by concern holds: no two top-level modules of `src/` import each other,
//! directly or through others, nor do two sibling modules anywhere in `src/`; every module
//! file opens with a doc line; no function is longer than 80 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/targets/container/undo.rs` → `targets`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Top-level modules named as `crate::NAME` in `text`.
fn used_modules(text: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if known.contains(&name) {
            out.insert(name);
        }
    }
    out
}

#[test]
fn top_level_modules_form_no_import_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let known: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(&src, f))
        .filter(|m| m != "main" && m != "lib")
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let m = module_of(&src, f);
        if !known.contains(&m) {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let uses = used_modules(&text, &known);
        graph
            .entry(m.clone())
            .or_default()
            .extend(uses.into_iter().filter(|u| *u != m));
    }
    // Depth-first search for a cycle, reporting its path.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(at) = path.iter().position(|p| p == m) {
            panic!("import cycle: {} -> {m}", path[at..].join(" -> "));
        }
        if done.contains(m) {
            return;
        }
        path.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
    // The pipeline sits above the targets, and the targets above the engine.
    assert!(graph["rotation"].contains("targets"));
    assert!(graph["targets"].contains("engine"));
}

#[test]
fn every_module_file_opens_with_a_doc_line() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            text.starts_with("//! "),
            "{} has no module doc line",
            f.display()
        );
    }
}

/// `text` with comments and string and char literals blanked (each character becomes a
/// space, newlines stay), so that braces and paths are seen in code only, on their lines.
fn code_only(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let ident = |ch: char| ch.is_ascii_alphanumeric() || ch == '_';
    let blank = |ch: char| if ch == '\n' { '\n' } else { ' ' };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < c.len() {
        let start = i;
        if c[i] == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c[i] == 'r'
            && (at(i + 1) == '"' || (at(i + 1) == '#' && matches!(at(i + 2), '"' | '#')))
            && (i == 0 || !ident(c[i - 1]) || (c[i - 1] == 'b' && (i < 2 || !ident(c[i - 2]))))
        {
            // A raw string: r"…", r#"…"#.
            let mut hashes = 0;
            i += 1;
            while at(i) == '#' {
                hashes += 1;
                i += 1;
            }
            i += 1;
            while i < c.len() && !(c[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#')) {
                i += 1;
            }
            i += 1 + hashes;
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c[i] == '\'' && at(i + 1) == '\\' {
            // A char literal with an escape: '\n', '\'', '\u{…}'.
            i += 3;
            while i < c.len() && c[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c[i] == '\'' && at(i + 2) == '\'' {
            i += 3; // a char literal; anything else after `'` is a lifetime
        } else {
            out.push(c[i]);
            i += 1;
            continue;
        }
        let end = i.min(c.len());
        out.extend(c[start..end].iter().map(|&ch| blank(ch)));
        i = end;
    }
    out
}

/// Every `fn` item with a body in `code` (from [`code_only`]): its name, the line of its
/// `fn` (from 1) and its length in lines, from that line to its closing brace inclusive.
fn functions(code: &str) -> Vec<(String, usize, usize)> {
    let b = code.as_bytes();
    let ident = |ch: u8| ch.is_ascii_alphanumeric() || ch == b'_';
    let line_of = |pos: usize| code[..pos].matches('\n').count() + 1;
    let mut out = Vec::new();
    for (pos, _) in code.match_indices("fn") {
        let before_ok = pos == 0 || !ident(b[pos - 1]);
        let after = pos + 2;
        if !before_ok || !b.get(after).is_some_and(|ch| ch.is_ascii_whitespace()) {
            continue; // part of a word, or a `fn(…)` pointer type
        }
        let rest = code[after..].trim_start();
        let name: String = rest.chars().take_while(|&ch| ident(ch as u8)).collect();
        if name.is_empty() {
            continue;
        }
        // The body opens at the first `{` outside parentheses and brackets; a `;` first
        // means a declaration without one.
        let mut depth = 0i32;
        let mut open = None;
        for (i, &ch) in b.iter().enumerate().skip(after) {
            match ch {
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                b';' if depth == 0 => break,
                b'{' if depth == 0 => {
                    open = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(open) = open else { continue };
        let mut braces = 0i32;
        let mut close = None;
        for (i, &ch) in b.iter().enumerate().skip(open) {
            match ch {
                b'{' => braces += 1,
                b'}' => {
                    braces -= 1;
                    if braces == 0 {
                        close = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let close = close.unwrap_or(b.len() - 1);
        let first = line_of(pos);
        out.push((name, first, line_of(close) - first + 1));
    }
    out
}

/// The longest a function may be, in lines from its `fn` to its closing brace.
const MAX_FN_LINES: usize = 80;

/// Functions still over [`MAX_FN_LINES`], as `(file under src/, name)`: each is to be
/// split, and then removed from here (the test fails for an entry that is no longer over,
/// so the list only shrinks). Nothing else may join it.
const LONG_FUNCTIONS_ALLOWED: &[(&str, &str)] = &[];

#[test]
fn no_function_is_longer_than_80_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut too_long = Vec::new();
    let mut allowed_seen = BTreeSet::new();
    for f in &files {
        let rel = f
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let code = code_only(&std::fs::read_to_string(f).unwrap());
        for (name, line, len) in functions(&code) {
            if len <= MAX_FN_LINES {
                continue;
            }
            if LONG_FUNCTIONS_ALLOWED.contains(&(rel.as_str(), name.as_str())) {
                allowed_seen.insert((rel.clone(), name));
            } else {
                too_long.push(format!("src/{rel}:{line} fn {name}: {len} lines"));
            }
        }
    }
    assert!(
        too_long.is_empty(),
        "functions longer than {MAX_FN_LINES} lines (split them into named steps):\n{}",
        too_long.join("\n")
    );
    for (file, name) in LONG_FUNCTIONS_ALLOWED {
        assert!(
            allowed_seen.contains(&(file.to_string(), name.to_string())),
            "src/{file} fn {name} is no longer over {MAX_FN_LINES} lines (or is gone): remove it from LONG_FUNCTIONS_ALLOWED"
        );
    }
}

#[test]
fn the_scans_see_code_only() {
    let text = "fn a() {\n    let s = \"}\"; // }\n    let c = '}';\n    /* } */\n}\nfn b(x: fn(u8)) -> u8 { x(1) }\nfn c();\n";
    let found = functions(&code_only(text));
    assert_eq!(
        found,
        [("a".to_string(), 1, 5), ("b".to_string(), 6, 1)],
        "{found:?}"
    );
    let code = code_only("use super::{x, y::z}; // super::w\nlet r = r#\"crate::q\"#;");
    assert!(
        !code.contains("super::w") && !code.contains("crate::q"),
        "{code}"
    );
}

/// A file's module path: `src/targets/container/undo.rs` → `targets::container::undo`,
/// `src/targets/mod.rs` → `targets`, `src/lib.rs` → the crate root (empty).
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut path: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(path.last().map(String::as_str), Some("mod" | "lib")) {
        path.pop();
    }
    path
}

/// The paths a `use` tree or an inline path names, from `s` on (just after its `crate::`
/// or `super::`), each appended to `prefix`: `a::b::C`, `a::{b, c::D}` and so on.
fn tree_paths(s: &str, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let ident = |ch: char| ch.is_ascii_alphanumeric() || ch == '_';
    let mut i = s.len() - s.trim_start().len();
    if s[i..].starts_with('{') {
        i += 1;
        loop {
            i += tree_paths(&s[i..], prefix, out);
            // Skip an `as` rename, up to the next item or the group's end.
            let rest = &s[i..];
            let Some(stop) = rest.find([',', '}']) else {
                return s.len();
            };
            i += stop + 1;
            if rest.as_bytes()[stop] == b'}' {
                return i;
            }
        }
    }
    let name: String = s[i..].chars().take_while(|&ch| ident(ch)).collect();
    if name.is_empty() {
        out.push(prefix.to_vec()); // `*`, or an empty group's end
        return i;
    }
    i += name.len();
    let mut path = prefix.to_vec();
    path.push(name);
    let after = &s[i..];
    let gap = after.len() - after.trim_start().len();
    if after.trim_start().starts_with("::") {
        i += gap + 2;
        i += tree_paths(&s[i..], &path, out);
    } else {
        out.push(path);
    }
    i
}

/// The module paths `code` (of the file whose module is `this`) names through `crate::`
/// and `super::` paths, in `use` items and inline alike. Modules written inline
/// (`mod tests { … }`) count as their file's: their `super` is the file's module.
fn named_modules(code: &str, this: &[String]) -> Vec<Vec<String>> {
    let ident = |ch: u8| ch.is_ascii_alphanumeric() || ch == b'_';
    let b = code.as_bytes();
    // Brace depths at which an inline `mod NAME {` opened, to resolve `super` inside one.
    let mut inline: Vec<i32> = Vec::new();
    let mut depth = 0i32;
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts_word = i == 0 || !(ident(b[i - 1]) || b[i - 1] == b':');
        let rest = &code[i..];
        if b[i] == b'{' {
            depth += 1;
        } else if b[i] == b'}' {
            depth -= 1;
            if inline.last() == Some(&depth) {
                inline.pop();
            }
        } else if starts_word && rest.starts_with("mod ") {
            let after = rest[4..].trim_start();
            let name_len = after.bytes().take_while(|&ch| ident(ch)).count();
            if after[name_len..].trim_start().starts_with('{') {
                inline.push(depth);
            }
        } else if starts_word && (rest.starts_with("crate::") || rest.starts_with("super::")) {
            let mut base: Vec<String> = this.to_vec();
            base.extend((0..inline.len()).map(|k| format!("<inline {k}>")));
            let mut j = i;
            if code[j..].starts_with("crate::") {
                base.clear();
                j += "crate::".len();
            }
            while code[j..].starts_with("super::") {
                base.pop();
                j += "super::".len();
            }
            let mut paths = Vec::new();
            j += tree_paths(&code[j..], &base, &mut paths);
            out.extend(paths);
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

#[test]
fn no_sibling_modules_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.retain(|f| !f.ends_with("main.rs")); // the binary: its `crate` is another crate
    files.sort();
    let modules: Vec<Vec<String>> = files.iter().map(|f| module_path(&src, f)).collect();
    let known: BTreeSet<&[String]> = modules.iter().map(Vec::as_slice).collect();
    // Edges between siblings: a file under sibling A naming something under sibling B.
    let mut graph: BTreeMap<Vec<String>, BTreeMap<Vec<String>, String>> = BTreeMap::new();
    for (f, this) in files.iter().zip(&modules) {
        let code = code_only(&std::fs::read_to_string(f).unwrap());
        for named in named_modules(&code, this) {
            // The module named: the longest prefix of the path that is a module file.
            let Some(target) = (0..=named.len())
                .rev()
                .map(|n| &named[..n])
                .find(|p| known.contains(p))
            else {
                continue;
            };
            let common = this.iter().zip(target).take_while(|(a, b)| a == b).count();
            if common == this.len() || common == target.len() {
                continue; // itself, an ancestor or a descendant: not a sibling
            }
            let rel = f.strip_prefix(&src).unwrap().display().to_string();
            graph
                .entry(this[..=common].to_vec())
                .or_default()
                .entry(target[..=common].to_vec())
                .or_insert(rel);
        }
    }
    // Depth-first search for cycles, each reported with the files that make its edges.
    fn visit(
        m: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeMap<Vec<String>, String>>,
        path: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
        cycles: &mut Vec<Vec<Vec<String>>>,
    ) {
        if let Some(at) = path.iter().position(|p| p == m) {
            cycles.push(path[at..].to_vec());
            return;
        }
        if done.contains(m) {
            return;
        }
        path.push(m.clone());
        for next in graph.get(m).into_iter().flat_map(|e| e.keys()) {
            visit(next, graph, path, done, cycles);
        }
        path.pop();
        done.insert(m.clone());
    }
    let mut cycles = Vec::new();
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done, &mut cycles);
    }
    let mut found = Vec::new();
    for cycle in cycles {
        let parent = cycle[0][..cycle[0].len() - 1].join("/");
        let names: Vec<&str> = cycle.iter().map(|m| m.last().unwrap().as_str()).collect();
        let edges: Vec<String> = cycle
            .iter()
            .zip(cycle.iter().cycle().skip(1))
            .map(|(a, b)| {
                let file = &graph[a][b];
                format!("{} -> {} (in src/{file})", a.join("::"), b.join("::"))
            })
            .collect();
        found.push(format!(
            "in src/{parent}: {}\n  {}",
            names.join(" -> "),
            edges.join("\n  ")
        ));
    }
    assert!(
        found.is_empty(),
        "sibling modules that import each other (move what both need into a module of its own):\n{}",
        found.join("\n")
    );
    // The scan sees edges at every level: top-level modules, and siblings in a folder.
    let edge = |a: &str, b: &str| {
        let path = |m: &str| m.split("::").map(str::to_string).collect::<Vec<_>>();
        graph
            .get(&path(a))
            .is_some_and(|e| e.contains_key(&path(b)))
    };
    assert!(edge("rotation", "targets"));
    assert!(edge("targets::service", "targets::container"));
    assert!(edge(
        "targets::container::undo",
        "targets::container::dependents"
    ));
}
