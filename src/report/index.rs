//! `index.html` of a batch or bench folder: one row per item, linking to its
//! run's report and sheet. Batch and bench fill the same [`Index`] and
//! [`write_index`] writes it through the report pages' templates.

use std::path::Path;

use serde::Serialize;

use crate::files;
use crate::render::SHEET_FILE;

use super::html::{fill, present, title_of, REPORT_FILE};

/// A batch or bench folder's index page.
pub const INDEX_FILE: &str = "index.html";

/// One row of an index page.
#[derive(Debug, Clone, Serialize)]
pub struct IndexRow {
    /// The item's id.
    pub id: String,
    /// The prompt's first line.
    pub prompt: String,
    /// The item's result in one word ("match", "failed", …; "missing" for a bench case with no result).
    pub outcome: String,
    /// Attempts the item made.
    pub attempts: usize,
    /// The item's report, relative to the index.
    pub page: Option<String>,
    /// The item's contact sheet, relative to the index.
    pub thumbnail: Option<String>,
    /// Further pages (a bench case's comparison page).
    pub links: Vec<Link>,
    /// One value per [`Index::metrics`] column, formatted.
    pub metrics: Vec<String>,
}

/// A link on an index page.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    /// The link's text.
    pub name: String,
    /// Where it goes, relative to the index.
    pub href: String,
}

/// `index.html` of a batch or bench folder.
#[derive(Debug, Clone, Serialize)]
pub struct Index {
    /// What the folder is ("cadloop batch", "cadloop bench").
    pub kind: String,
    /// The page's heading.
    pub title: String,
    /// Lines under the title (counts, rates).
    pub summary: Vec<String>,
    /// Metric column names.
    pub metrics: Vec<String>,
    /// One row per item.
    pub rows: Vec<IndexRow>,
}

impl IndexRow {
    /// A row for the run folder `dir/relative`, its page and sheet linked when present.
    pub fn for_run(
        dir: &Path,
        relative: &str,
        id: &str,
        prompt: &str,
        outcome: &str,
        attempts: usize,
    ) -> IndexRow {
        IndexRow {
            id: id.to_string(),
            prompt: title_of(prompt),
            outcome: outcome.to_string(),
            attempts,
            page: present(dir, &format!("{relative}/{REPORT_FILE}")),
            thumbnail: present(dir, &format!("{relative}/{SHEET_FILE}")),
            links: Vec::new(),
            metrics: Vec::new(),
        }
    }
}

/// Writes `index` as `dir`'s index page.
pub fn write_index(dir: &Path, index: &Index) -> std::io::Result<()> {
    let html = index_page(index)?;
    files::write_atomically(&dir.join(INDEX_FILE), html.as_bytes())
}

fn index_page(index: &Index) -> std::io::Result<String> {
    #[derive(Serialize)]
    struct Context<'a> {
        version: &'static str,
        #[serde(flatten)]
        index: &'a Index,
    }
    fill(
        "index.html",
        Context {
            version: env!("CARGO_PKG_VERSION"),
            index,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_is_escaped_in_every_template() {
        let evil = "<script>alert(1)</script> & \"quotes\"";
        let index = Index {
            kind: "cadloop batch".into(),
            title: evil.into(),
            summary: vec![evil.into()],
            metrics: vec!["PCD".into()],
            rows: vec![IndexRow {
                id: evil.into(),
                prompt: evil.into(),
                outcome: "match".into(),
                attempts: 1,
                page: Some("items/x/report.html".into()),
                thumbnail: None,
                links: vec![Link {
                    name: evil.into(),
                    href: "cases/x/case.md".into(),
                }],
                metrics: vec!["0.1".into()],
            }],
        };
        let html = index_page(&index).unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{html}"
        );
    }
}
