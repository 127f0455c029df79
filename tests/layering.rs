//! The library's modules depend on each other one way only, and the domain knows nothing of
//! AWS: read from the `crate::` paths in `src/`, so a new import that closes a cycle fails here
//! with the cycle named, not in a review.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The library's top-level modules and the top-level modules each one names (`crate::x`).
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&src) {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative.components().next().unwrap().as_os_str();
        let module = top.to_string_lossy().trim_end_matches(".rs").to_owned();
        if module == "bin" || module == "lib" {
            continue; // the binaries sit on top of everything; lib.rs only declares
        }
        let text = fs::read_to_string(&file).unwrap();
        let uses = graph.entry(module.clone()).or_default();
        for (index, _) in text.match_indices("crate::") {
            let rest = &text[index + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                uses.insert(name);
            }
        }
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// A cycle through `graph`, as the modules along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_depend_on_each_other_one_way_only() {
    let graph = module_graph();
    assert!(graph.contains_key("domain") && graph.contains_key("store"));
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_domain_names_no_other_module_but_the_key_hashing() {
    let graph = module_graph();
    let allowed: BTreeSet<String> = ["keys".to_owned()].into();
    let uses = &graph["domain"];
    assert!(
        uses.is_subset(&allowed),
        "domain uses {:?}",
        uses.difference(&allowed).collect::<Vec<_>>()
    );
}

#[test]
fn the_domain_and_the_features_know_nothing_of_aws() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for room in ["domain", "features"] {
        for file in rust_files(&src.join(room)) {
            let text = fs::read_to_string(&file).unwrap();
            for word in ["aws_sdk", "aws_smithy", "AttributeValue", "lambda_runtime"] {
                assert!(!text.contains(word), "{} names {word}", file.display());
            }
        }
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), ["b".to_owned()].into()),
        ("b".to_owned(), ["c".to_owned()].into()),
        ("c".to_owned(), ["a".to_owned()].into()),
    ]
    .into();
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "c", "a"]);
    let acyclic: BTreeMap<String, BTreeSet<String>> =
        [("a".to_owned(), ["b".to_owned()].into())].into();
    assert_eq!(find_cycle(&acyclic), None);
}
