//! A scenario's report folder: `summary.json` (every figure), `report.html` (self-contained
//! plots), beside goose's own reports and the started binaries' logs; and the text summary
//! printed after each scenario.

mod html;
mod text;

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::summary::ScenarioSummary;

pub use text::print_summary;

pub const SUMMARY_JSON: &str = "summary.json";
pub const REPORT_HTML: &str = "report.html";

/// Writes `summary.json` and `report.html` into `dir`; returns the HTML report's path.
pub fn write(dir: &Path, summary: &ScenarioSummary) -> Result<PathBuf, Error> {
    let json_path = dir.join(SUMMARY_JSON);
    let json = serde_json::to_string_pretty(summary)?;
    fs::write(&json_path, json).map_err(Error::io(format!("write {}", json_path.display())))?;
    let html_path = dir.join(REPORT_HTML);
    fs::write(&html_path, html::page(summary))
        .map_err(Error::io(format!("write {}", html_path.display())))?;
    Ok(html_path)
}
