//! Resources: a guide an agent reads before it writes code for cadloop
//! (`cadloop://guide`: the rules, cheat sheet, check library and examples
//! the loop's own LLM is given), and each run's files under
//! `cadloop://runs/ID/FILE`.

use std::path::Path;

use base64::Engine as _;
use rmcp::model::{
    ListResourceTemplatesResult, ListResourcesResult, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate,
};
use rmcp::ErrorData;

use super::Cadloop;

/// The guide's URI.
pub const GUIDE_URI: &str = "cadloop://guide";
/// Where a run's files are: `cadloop://runs/ID/FILE`.
const RUNS_PREFIX: &str = "cadloop://runs/";

/// The files of a run served as resources: its result's model files, its
/// record and its report.
fn run_files() -> impl Iterator<Item = &'static str> {
    crate::executor::MODEL_FILES
        .into_iter()
        .chain([crate::report::RUN_FILE, crate::report::html::REPORT_FILE])
}

/// A run's per-part STL files (a result of named parts), as
/// `parts/NAME.stl`: only plain files whose names cadloop gives
/// (lower-case letters, digits and `-`).
fn part_files(folder: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(folder.join(crate::mesh::PARTS_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| is_part_file(name))
        .map(|name| format!("{}/{name}", crate::mesh::PARTS_DIR))
        .collect();
    files.sort();
    files
}

fn is_part_file(name: &str) -> bool {
    name.strip_suffix(".stl").is_some_and(|stem| {
        !stem.is_empty()
            && stem
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

/// What comes before the system prompt's text in the guide.
const GUIDE_HEAD: &str = "# Writing parts for cadloop\n\n\
cadloop runs your FreeCAD Python headless, in a sandbox, and answers with the \
solid's geometry facts, its named parameters, the results of your checks and \
a contact sheet of seven views. A loop: `build` a script with the request's \
checks; read the facts, the failing checks and the views; `tweak` the named \
parameters or `build` again; `views` for a closer look, `check` for more \
checks without a rebuild. Each build is a run whose files are resources \
(`cadloop://runs/ID/model.step`, `.stl`, `.glb`, `.FCStd`, `run.json`, \
`report.html`).\n\nWhat follows is what cadloop's own LLM is told.\n\n";

/// Runs whose files one page of `resources/list` holds.
const RUNS_PER_PAGE: usize = 50;
/// How a cursor starts: the rest is the id of the last run listed.
const AFTER: &str = "after:";

/// The id of the run a cursor this server gave lists after.
fn cursor_after(cursor: &str) -> Result<&str, ErrorData> {
    cursor.strip_prefix(AFTER).ok_or_else(|| {
        ErrorData::invalid_params(
            format!(
                "{cursor:?} is not a cursor of resources/list; send the nextCursor of the \
                 page before, or none for the first page"
            ),
            None,
        )
    })
}

impl Cadloop {
    /// One page of resources: the first holds the guide; each holds the
    /// files of up to `RUNS_PER_PAGE` runs in the order of their ids, and
    /// while runs are left, a cursor naming the last one. Paged by id, a
    /// run made or changed between pages neither repeats nor hides another.
    pub(super) fn list_resources_now(
        &self,
        cursor: Option<&str>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let after = cursor.map(cursor_after).transpose()?;
        let mut resources = Vec::new();
        if after.is_none() {
            resources.push(
                Resource::new(GUIDE_URI, "guide")
                    .with_title("How to write FreeCAD Python and checks for cadloop")
                    .with_mime_type("text/markdown"),
            );
        }
        let mut rows = crate::studio::list_runs(&self.runs);
        rows.retain(|row| after.is_none_or(|after| row.id.as_str() > after));
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        let more = rows.len() > RUNS_PER_PAGE;
        rows.truncate(RUNS_PER_PAGE);
        let next_cursor = more.then(|| rows.last().map(|row| format!("{AFTER}{}", row.id)));
        for row in rows {
            let Ok(folder) = self.run_folder(&row.id) else {
                continue;
            };
            for file in run_files().map(String::from).chain(part_files(&folder)) {
                let file = file.as_str();
                let Ok(meta) = std::fs::metadata(folder.join(file)) else {
                    continue;
                };
                resources.push(
                    Resource::new(format!("{RUNS_PREFIX}{}/{file}", row.id), file)
                        .with_title(format!("{file} of {}", row.title))
                        .with_mime_type(crate::files::media_type(Path::new(file)))
                        .with_size(meta.len()),
                );
            }
        }
        let mut page = ListResourcesResult::with_all_items(resources);
        page.next_cursor = next_cursor.flatten();
        Ok(page)
    }

    pub(super) fn resource_templates() -> ListResourceTemplatesResult {
        ListResourceTemplatesResult::with_all_items(vec![ResourceTemplate::new(
            format!("{RUNS_PREFIX}{{run}}/{{file}}"),
            "run file",
        )
        .with_description(format!(
            "A file of a run (the id `build`, `generate` or `runs` gave): {}; and for a \
             result of named parts, parts/NAME.stl for each",
            run_files().collect::<Vec<_>>().join(", ")
        ))])
    }

    pub(super) async fn read_resource_now(
        &self,
        uri: &str,
    ) -> Result<ReadResourceResult, ErrorData> {
        if uri == GUIDE_URI {
            let guide = self
                .engine
                .guide()
                .map_err(|err| ErrorData::internal_error(crate::error_chain(&err), None))?;
            return Ok(ReadResourceResult::new(vec![ResourceContents::text(
                format!("{GUIDE_HEAD}{guide}"),
                uri,
            )
            .with_mime_type("text/markdown")]));
        }
        let not_found = |why: String| ErrorData::resource_not_found(why, None);
        let Some((id, file)) = uri
            .strip_prefix(RUNS_PREFIX)
            .and_then(|rest| rest.split_once('/'))
        else {
            return Err(not_found(format!(
                "{uri:?} is not a cadloop resource: use {GUIDE_URI} or {RUNS_PREFIX}RUN/FILE"
            )));
        };
        let part = file
            .strip_prefix(crate::mesh::PARTS_DIR)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(is_part_file);
        if !part && !run_files().any(|f| f == file) {
            return Err(not_found(format!(
                "a run has no resource {file:?}; its files are {}, and parts/NAME.stl for each \
                 named part",
                run_files().collect::<Vec<_>>().join(", ")
            )));
        }
        let folder = self
            .run_folder(id)
            .map_err(|_| not_found(format!("there is no run {id}; the `runs` tool lists them")))?;
        let path = folder.join(file);
        // A part's STL only as the plain file cadloop wrote, never through a link.
        if part && !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            return Err(not_found(format!("run {id} has no {file}")));
        }
        let bytes = tokio::fs::read(&path).await.map_err(|_| {
            not_found(format!(
                "run {id} has no {file} (a run that built no solid has no model files)"
            ))
        })?;
        let media = crate::files::media_type(&path);
        let textual =
            media.starts_with("text/") || media == "application/json" || media == "model/step";
        let blob = |bytes: &[u8]| {
            ResourceContents::blob(base64::engine::general_purpose::STANDARD.encode(bytes), uri)
        };
        let contents = if textual {
            match String::from_utf8(bytes) {
                Ok(text) => ResourceContents::text(text, uri),
                Err(err) => blob(err.as_bytes()),
            }
        } else {
            blob(&bytes)
        };
        Ok(ReadResourceResult::new(
            vec![contents.with_mime_type(media)],
        ))
    }
}
