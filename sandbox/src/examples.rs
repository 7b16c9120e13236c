//! The bundled example scripts, compiled into the binary.

use std::{collections::BTreeMap, sync::Arc};

use contract::api::Example;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../example-scripts/"]
struct Files;

/// All examples by name, loaded once at start-up.
#[derive(Debug, Clone, Default)]
pub struct Examples {
    by_name: BTreeMap<String, Example>,
}

impl Examples {
    pub fn load() -> Self {
        let by_name = Files::iter()
            .filter(|name| name.ends_with(".js"))
            .filter_map(|name| {
                let file = Files::get(&name)?;
                let source = String::from_utf8_lossy(&file.data);
                let example = Example {
                    name: name.to_string(),
                    source: Arc::from(source.as_ref()),
                };
                Some((name.to_string(), example))
            })
            .collect();
        Self { by_name }
    }

    pub fn get(&self, name: &str) -> Option<&Example> {
        self.by_name.get(name)
    }

    /// Every example, sorted by name.
    pub fn all(&self) -> impl Iterator<Item = &Example> {
        self.by_name.values()
    }
}
