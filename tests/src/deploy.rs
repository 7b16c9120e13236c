//! Reading the deploy files at the repository root (`Dockerfile`, `docker-compose.yml`,
//! `cloudrun.yaml`, `cloudbuild.yaml`) and the workspace manifest, so tests can check them
//! against what the binaries really do.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

pub use yaml_rust2::Yaml;
use yaml_rust2::YamlLoader;

/// The repository root: the parent of this crate's directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e crate sits in the repository")
        .to_path_buf()
}

/// The text of `file`, relative to the repository root.
pub fn read(file: &str) -> String {
    let path = repo_root().join(file);
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

/// Parses `file` as a single YAML document.
pub fn load_yaml(file: &str) -> Yaml {
    parse_yaml(&read(file)).unwrap_or_else(|error| panic!("{file}: {error}"))
}

/// Parses `text` as a single YAML document.
pub fn parse_yaml(text: &str) -> Result<Yaml, String> {
    let mut documents = YamlLoader::load_from_str(text).map_err(|error| error.to_string())?;
    match documents.len() {
        1 => Ok(documents.remove(0)),
        count => Err(format!("expected one YAML document, found {count}")),
    }
}

/// A scalar as text: YAML reads `8080`, `"8080"` and `true` as different types, but an
/// environment variable or a port is the same either way.
pub fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(text) | Yaml::Real(text) => Some(text.clone()),
        Yaml::Integer(number) => Some(number.to_string()),
        Yaml::Boolean(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// The items of a sequence; empty when `value` is missing or not a sequence.
pub fn items(value: &Yaml) -> &[Yaml] {
    value.as_vec().map(Vec::as_slice).unwrap_or_default()
}

/// The scalars of a sequence, as text.
pub fn strings(value: &Yaml) -> Vec<String> {
    items(value).iter().filter_map(scalar).collect()
}

/// The keys of a mapping, as text; empty when `value` is not a mapping.
pub fn keys(value: &Yaml) -> Vec<String> {
    value
        .as_hash()
        .map(|hash| hash.keys().filter_map(scalar).collect())
        .unwrap_or_default()
}

/// The `${NAME}` placeholders in `text` (the form `envsubst` fills when NAME is in its list).
pub fn placeholders(text: &str) -> BTreeSet<String> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}'))
        .map(|(name, _)| name)
        .filter(|name| is_variable_name(name))
        .map(str::to_owned)
        .collect()
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Replaces each `${NAME}` whose NAME is in `values`, as `envsubst` with an explicit list does.
pub fn substitute(text: &str, values: &BTreeMap<String, String>) -> String {
    values.iter().fold(text.to_owned(), |text, (name, value)| {
        text.replace(&format!("${{{name}}}"), value)
    })
}

/// `cloudrun.yaml`: the Knative service deployed to Cloud Run.
pub mod cloud_run {
    use super::*;

    pub const FILE: &str = "cloudrun.yaml";

    pub fn service() -> Yaml {
        load_yaml(FILE)
    }

    /// `spec.template.spec` of `service`: containers, concurrency, timeout, service account.
    pub fn revision_spec(service: &Yaml) -> &Yaml {
        &service["spec"]["template"]["spec"]
    }

    /// The revision annotation `name`, if set.
    pub fn annotation(service: &Yaml, name: &str) -> Option<String> {
        scalar(&service["spec"]["template"]["metadata"]["annotations"][name])
    }

    pub fn containers(service: &Yaml) -> &[Yaml] {
        items(&revision_spec(service)["containers"])
    }

    pub fn container<'a>(service: &'a Yaml, name: &str) -> &'a Yaml {
        containers(service)
            .iter()
            .find(|container| container["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("{FILE} has no container named {name}"))
    }

    /// A container's `env` list as a map of name to value.
    pub fn env(container: &Yaml) -> BTreeMap<String, String> {
        items(&container["env"])
            .iter()
            .filter_map(|var| Some((scalar(&var["name"])?, scalar(&var["value"])?)))
            .collect()
    }
}

/// `docker-compose.yml`: the local two-container demo.
pub mod compose {
    use super::*;

    pub const FILE: &str = "docker-compose.yml";

    pub fn file() -> Yaml {
        load_yaml(FILE)
    }

    pub fn service<'a>(compose: &'a Yaml, name: &str) -> &'a Yaml {
        let service = &compose["services"][name];
        assert!(!service.is_badvalue(), "{FILE} has no service named {name}");
        service
    }

    /// A service's `environment`, written either as a mapping or as `NAME=value` items.
    pub fn env(service: &Yaml) -> BTreeMap<String, String> {
        let environment = &service["environment"];
        match environment.as_hash() {
            Some(hash) => hash
                .iter()
                .filter_map(|(name, value)| Some((scalar(name)?, scalar(value)?)))
                .collect(),
            None => strings(environment)
                .iter()
                .filter_map(|item| item.split_once('='))
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
        }
    }

    /// The networks a service joins, from either the list or the mapping form.
    pub fn networks(service: &Yaml) -> Vec<String> {
        let networks = &service["networks"];
        if networks.is_hash() {
            keys(networks)
        } else {
            strings(networks)
        }
    }
}

/// `cloudbuild.yaml`: the Cloud Build pipeline.
pub mod cloud_build {
    use super::*;

    pub const FILE: &str = "cloudbuild.yaml";

    pub fn pipeline() -> Yaml {
        load_yaml(FILE)
    }

    pub fn steps(pipeline: &Yaml) -> &[Yaml] {
        items(&pipeline["steps"])
    }

    pub fn step<'a>(pipeline: &'a Yaml, id: &str) -> &'a Yaml {
        steps(pipeline)
            .iter()
            .find(|step| step["id"].as_str() == Some(id))
            .unwrap_or_else(|| panic!("{FILE} has no step with id {id}"))
    }

    /// The ids of the steps that `step` waits for (`-` means none: it starts at once).
    pub fn wait_for(step: &Yaml) -> Vec<String> {
        strings(&step["waitFor"])
    }

    /// A step's `env` entries (`NAME=value`) as a map.
    pub fn env(step: &Yaml) -> BTreeMap<String, String> {
        strings(&step["env"])
            .iter()
            .filter_map(|item| item.split_once('='))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    }

    /// The user-defined substitutions and their defaults.
    pub fn substitutions(pipeline: &Yaml) -> BTreeMap<String, String> {
        pipeline["substitutions"]
            .as_hash()
            .map(|hash| {
                hash.iter()
                    .filter_map(|(name, value)| Some((scalar(name)?, scalar(value)?)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The user-defined substitutions (`$_NAME`, `${_NAME}`) that `pipeline` refers to, in every
    /// value Cloud Build substitutes into: everything but `script`s.
    pub fn substitutions_used(pipeline: &Yaml) -> BTreeSet<String> {
        fn walk(value: &Yaml, found: &mut BTreeSet<String>) {
            match value {
                Yaml::Hash(hash) => hash
                    .iter()
                    .filter(|(key, _)| key.as_str() != Some("script"))
                    .for_each(|(_, value)| walk(value, found)),
                Yaml::Array(items) => items.iter().for_each(|item| walk(item, found)),
                other => {
                    let text = scalar(other).unwrap_or_default();
                    found.extend(
                        text.split('$')
                            .skip(1)
                            .map(|rest| rest.strip_prefix('{').unwrap_or(rest))
                            .map(|rest| {
                                rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                            })
                            .filter_map(|mut words| words.next())
                            .filter(|name| name.starts_with('_'))
                            .map(str::to_owned),
                    );
                }
            }
        }
        let mut found = BTreeSet::new();
        walk(pipeline, &mut found);
        found
    }

    /// `text` with Cloud Build's substitutions applied: the user-defined ones from `defaults`
    /// (which may refer to built-ins) and the built-ins from `builtins`, in both the `$NAME` and
    /// `${NAME}` forms.
    pub fn apply_substitutions(
        text: &str,
        defaults: &BTreeMap<String, String>,
        builtins: &BTreeMap<String, String>,
    ) -> String {
        let resolve = |text: &str| {
            builtins
                .iter()
                .fold(text.to_owned(), |text, (name, value)| {
                    text.replace(&format!("${{{name}}}"), value)
                        .replace(&format!("${name}"), value)
                })
        };
        let user: BTreeMap<String, String> = defaults
            .iter()
            .map(|(name, value)| (name.clone(), resolve(value)))
            .collect();
        // Longest names first, so `$_REPO` is not mistaken for a prefix of a longer name.
        let mut names: Vec<&String> = user.keys().collect();
        names.sort_by_key(|name| std::cmp::Reverse(name.len()));
        let text = names.into_iter().fold(text.to_owned(), |text, name| {
            text.replace(&format!("${{{name}}}"), &user[name])
                .replace(&format!("${name}"), &user[name])
        });
        resolve(&text)
    }
}

/// One `FROM` stage of the Dockerfile: its base image, its name and its instructions.
#[derive(Debug)]
pub struct DockerStage {
    pub base: String,
    pub name: Option<String>,
    /// `(KEYWORD, arguments)` for every instruction after `FROM`, continuation lines joined.
    pub instructions: Vec<(String, String)>,
}

impl DockerStage {
    /// The arguments of every instruction named `keyword` (upper case).
    pub fn all(&self, keyword: &str) -> Vec<&str> {
        self.instructions
            .iter()
            .filter(|(name, _)| name == keyword)
            .map(|(_, arguments)| arguments.as_str())
            .collect()
    }

    /// The arguments of the last instruction named `keyword`: the one in force.
    pub fn last(&self, keyword: &str) -> Option<&str> {
        self.all(keyword).pop()
    }
}

/// The stages of `Dockerfile`, in order.
pub fn dockerfile_stages() -> Vec<DockerStage> {
    parse_dockerfile(&read("Dockerfile"))
}

/// Splits a Dockerfile into stages. Comments (and parser directives) are dropped and lines
/// ending in `\` are joined with the next.
pub fn parse_dockerfile(text: &str) -> Vec<DockerStage> {
    let mut logical_lines = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(continued) => {
                current.push_str(continued.trim_end());
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical_lines.push(std::mem::take(&mut current));
            }
        }
    }

    let mut stages: Vec<DockerStage> = Vec::new();
    for line in logical_lines {
        let (keyword, arguments) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let keyword = keyword.to_ascii_uppercase();
        let arguments = arguments.trim().to_owned();
        if keyword == "FROM" {
            let words: Vec<&str> = arguments
                .split_whitespace()
                .filter(|word| !word.starts_with("--"))
                .collect();
            let name = match words.as_slice() {
                [_, as_keyword, name] if as_keyword.eq_ignore_ascii_case("as") => {
                    Some((*name).to_owned())
                }
                _ => None,
            };
            stages.push(DockerStage {
                base: words
                    .first()
                    .map(|word| (*word).to_owned())
                    .unwrap_or_default(),
                name,
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push((keyword, arguments));
        }
    }
    stages
}

/// The folders the workspace crates embed at compile time (`#[folder = "..."]` of rust-embed),
/// relative to the repository root: the image build needs them in its context.
pub fn embedded_folders() -> BTreeSet<String> {
    fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, found);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                found.push(path);
            }
        }
    }
    let mut folders = BTreeSet::new();
    for crate_dir in ["sandbox", "ingress"] {
        let mut files = Vec::new();
        rust_files(&repo_root().join(crate_dir).join("src"), &mut files);
        for file in files {
            let text = fs::read_to_string(&file).unwrap_or_default();
            for rest in text.split("#[folder = \"").skip(1) {
                let folder = rest.split('"').next().unwrap_or_default();
                let from_root = folder.trim_start_matches("../").trim_end_matches('/');
                folders.insert(from_root.to_owned());
            }
        }
    }
    folders
}

/// The package names of the workspace members that have a binary (`src/main.rs`) and are
/// deployed (not developer tools), read from the root `Cargo.toml` and each member's manifest.
pub fn workspace_binaries() -> Vec<String> {
    let manifest = read("Cargo.toml");
    let members = manifest
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("members"))
        .and_then(|rest| rest.split_once('[')?.1.split_once(']'))
        .map(|(list, _)| list)
        .expect("the root Cargo.toml lists its members on one line");
    members
        .split(',')
        .map(|member| member.trim().trim_matches('"'))
        .filter(|member| !member.is_empty())
        .filter(|member| repo_root().join(member).join("src/main.rs").is_file())
        .map(|member| read(&format!("{member}/Cargo.toml")))
        // Developer tools (the load test) say `deployed = false` under [package.metadata.jsbox].
        .filter(|manifest| !manifest.contains("[package.metadata.jsbox]\ndeployed = false"))
        .map(|manifest| package_name(&manifest))
        .collect()
}

fn package_name(manifest: &str) -> String {
    manifest
        .lines()
        .map(str::trim)
        .find_map(|line| {
            let value = line.strip_prefix("name")?.trim_start().strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_owned())
        })
        .expect("a member manifest names its package")
}
