//! The modules of `src/` form no cycle: within every folder, and between
//! the crate's top-level modules, the "uses" relation between sibling
//! modules is acyclic, so each folder reads bottom-up. A module uses a
//! sibling when its code (tests left out) names a path into it through
//! `crate::` or `super::`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::common::files_under;

/// Module path of a source file: `src/db/plain.rs` -> `["db", "plain"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The code of a file without its test module and comments (a doc link
/// is not a use).
fn without_tests(text: &str) -> String {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    code.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a::b` and `super::a` path in `code`, as absolute module
/// paths (brace groups expanded one level: `crate::a::{b, c}`).
fn paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    // `super` is the module above, for a file module and a mod.rs alike.
    let parent = module[..module.len().saturating_sub(1)].to_vec();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut from = 0;
        while let Some(i) = code[from..].find(prefix) {
            let at = from + i;
            from = at + prefix.len();
            // Not part of a longer identifier (e.g. `my_crate::`).
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let rest = &code[from..];
            let mut path = base.clone();
            let mut rest_iter = rest;
            loop {
                let ident: String = rest_iter
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if ident.is_empty() {
                    if let Some(group) = rest_iter.strip_prefix('{') {
                        let end = group.find('}').unwrap_or(group.len());
                        for item in group[..end].split(',') {
                            let first: String = item
                                .trim()
                                .chars()
                                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                                .collect();
                            if !first.is_empty() {
                                let mut p = path.clone();
                                p.push(first);
                                out.push(p);
                            }
                        }
                    }
                    break;
                }
                path.push(ident.clone());
                rest_iter = &rest_iter[ident.len()..];
                match rest_iter.strip_prefix("::") {
                    Some(r) => rest_iter = r,
                    None => break,
                }
            }
            out.push(path);
        }
    }
    out
}

/// A cycle in `edges` (node -> nodes it uses), if any.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|s| s == m).unwrap();
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(c) = visit(n, edges, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

/// Sibling edges of the source tree: folder -> (module -> siblings used).
fn sibling_edges(src: &Path) -> BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> {
    let files: Vec<PathBuf> = files_under(src)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "rs"))
        .collect();
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let mut folders: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in &files {
        if file.file_name().is_some_and(|n| n == "main.rs") {
            continue; // the binary is a separate crate
        }
        let module = module_of(src, file);
        let code = without_tests(&std::fs::read_to_string(file).unwrap());
        for used in paths(&code, &module) {
            // Compare the two modules at the first level where they part.
            let common = module.iter().zip(&used).take_while(|(a, b)| a == b).count();
            if common >= module.len() || common >= used.len() {
                continue; // a module and its own ancestors or children
            }
            let (from, to) = (&module[common], &used[common]);
            let mut sibling = module[..common].to_vec();
            sibling.push(to.clone());
            if from == to || !modules.contains(&sibling) {
                continue; // an item of the folder's mod.rs, not a module
            }
            folders
                .entry(module[..common].to_vec())
                .or_default()
                .entry(from.clone())
                .or_default()
                .insert(to.clone());
        }
    }
    folders
}

#[test]
fn no_module_uses_a_sibling_that_uses_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let folders = sibling_edges(&src);
    assert!(
        folders
            .get(&Vec::new())
            .is_some_and(|top| top.contains_key("db")),
        "the top-level graph is read: {folders:?}"
    );
    let cycles: Vec<String> = folders
        .iter()
        .filter_map(|(folder, edges)| {
            find_cycle(edges).map(|c| format!("{}: {}", folder.join("::"), c.join(" -> ")))
        })
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn a_cycle_is_found() {
    let edges: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        find_cycle(&edges),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let mut tree = edges.clone();
    tree.remove("c");
    assert_eq!(find_cycle(&tree), None);
    // Paths are read from `use` lines and inline paths alike.
    let module = vec!["db".to_string(), "plain".to_string()];
    let found = paths(
        "use super::{write, views::load};\nlet x = crate::sql::image_scan::IMAGE_COLUMN;",
        &module,
    );
    assert!(found.contains(&vec!["db".to_string(), "write".to_string()]));
    assert!(found.contains(&vec!["db".to_string(), "views".to_string()]));
    assert!(found.contains(&vec![
        "sql".to_string(),
        "image_scan".to_string(),
        "IMAGE_COLUMN".to_string()
    ]));
}
