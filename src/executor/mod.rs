//! The executor, supervisor side: runs generated FreeCAD Python in a pool of
//! `cadloop worker` processes and turns whatever happens into an [`ExecReport`].
//!
//! Stage in the flow: the loop's execute step (`pipeline/execute.rs`) and
//! `cadloop exec` hand code to [`Pool::run`]; the report (ok with
//! geometry facts and a mesh, or an error an LLM can act on) goes on to the
//! renderer or back to the LLM for repair.
//!
//! - [`protocol`]: the length-prefixed frames on the worker's pipes.
//! - [`worker`]: one worker process: spawn with limits, send a job, time out, kill.
//! - [`pool`]: the pool: bounded concurrency, restart of dead workers, recycling.
//! - [`area`]: each worker's temporary folder, and the sweep of those a killed cadloop left.
//! - [`load`]: meshes from model files (STL, OBJ; STEP and FCStd through a pool).
//! - [`sandbox`]: Landlock and seccomp, entered by each worker before Python starts.
//!
//! A failing script is data (an [`Outcome::Error`]), never an `Err`; `Err` is
//! kept for the executor itself failing (FreeCAD missing, a job folder that
//! cannot be written).

pub mod area;
pub mod load;
pub mod pool;
pub mod protocol;
pub mod sandbox;
pub mod worker;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use load::{LoadError, MeshLoader};
pub use pool::Pool;

use crate::mesh::Mesh;

/// Environment variable through which the supervisor names FreeCAD's module
/// folder to a worker (`cadloop worker`, in `freecad.rs`).
pub const FREECAD_LIB_ENV: &str = "CADLOOP_FREECAD_LIB";
/// The worker's own folder (jobs, HOME, TMPDIR): the only place it may write.
pub const AREA_ENV: &str = "CADLOOP_WORKER_AREA";
/// The modules generated code may import, comma-separated; empty turns the check off.
pub const ALLOWED_IMPORTS_ENV: &str = "CADLOOP_ALLOWED_IMPORTS";
/// Debian's `freecad-python3` puts FreeCAD.so and Part.so here.
pub const DEFAULT_FREECAD_LIB: &str = "/usr/lib/freecad-python3/lib";

/// The file in a job folder that receives everything the code prints (stdout and stderr).
pub const OUTPUT_FILE: &str = "output.txt";
/// The generated code as it ran, written into the job folder.
pub const CODE_FILE: &str = "code.py";
/// The models a successful job leaves in its folder.
pub const MODEL_FILES: [&str; 4] = ["model.step", "model.stl", "model.FCStd", "model.glb"];
/// Where the worker stages exports before moving them into place.
pub const STAGING_DIR: &str = ".staging";
/// How much of the captured output a report carries (head and tail, each half).
pub const OUTPUT_KEEP_BYTES: u64 = 8 * 1024;

/// What an executor needs to start workers.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    /// Worker processes kept warm.
    pub workers: usize,
    /// Wall-clock limit for one job, unless the job sets its own.
    pub timeout: Duration,
    /// Address-space limit of each worker process, in MiB.
    pub memory_limit_mib: u64,
    /// A worker is replaced after this many jobs, to shed whatever state scripts leave behind.
    pub jobs_per_worker: u32,
    /// FreeCAD's Python modules (FreeCAD.so, Part.so).
    pub freecad_lib: PathBuf,
    /// The `cadloop` binary that serves `cadloop worker`.
    pub worker_exe: PathBuf,
    /// How long a new worker may take to import FreeCAD and report ready.
    pub startup_timeout: Duration,
    /// Top-level modules generated code may import (checked before it runs);
    /// empty turns the check off. The OS-level sandbox holds either way.
    pub allowed_imports: Vec<String>,
}

impl ExecutorSettings {
    /// The defaults: a worker per core, 60 s per job, 4 GiB of address space,
    /// 200 jobs per worker, Debian's FreeCAD, the default import allow-list.
    pub fn with_defaults(worker_exe: PathBuf) -> ExecutorSettings {
        ExecutorSettings {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            timeout: Duration::from_secs(60),
            memory_limit_mib: 4096,
            jobs_per_worker: 200,
            freecad_lib: PathBuf::from(DEFAULT_FREECAD_LIB),
            worker_exe,
            startup_timeout: Duration::from_secs(60),
            allowed_imports: DEFAULT_ALLOWED_IMPORTS
                .iter()
                .map(|m| m.to_string())
                .collect(),
        }
    }
}

/// The modules generated code may import unless the settings say otherwise:
/// FreeCAD's modeling modules and pure-computation standard modules.
pub const DEFAULT_ALLOWED_IMPORTS: &[&str] = &[
    "FreeCAD",
    "App",
    "Part",
    "Sketcher",
    "PartDesign",
    "Mesh",
    "MeshPart",
    "Draft",
    "DraftGeomUtils",
    "DraftVecUtils",
    "BOPTools",
    "CompoundTools",
    "Import",
    "Spreadsheet",
    "math",
    "cmath",
    "numpy",
    "random",
    "itertools",
    "functools",
    "collections",
    "dataclasses",
    "typing",
    "enum",
    "copy",
    "fractions",
    "decimal",
    "statistics",
    "operator",
    "bisect",
    "heapq",
    "string",
    "re",
    "time",
    // Macros build paths for their exports with these; the sandbox, not the
    // import check, keeps them from touching anything outside the job.
    "os",
    "sys",
];

/// One piece of code to run, and the folder its files go to.
#[derive(Debug, Clone)]
pub struct Job {
    pub code: String,
    pub dir: PathBuf,
    /// Overrides [`ExecutorSettings::timeout`].
    pub timeout: Option<Duration>,
    /// Files the code may read, copied into its folder under their file names
    /// (the sandbox lets a job read nothing else of the user's).
    pub inputs: Vec<PathBuf>,
    /// Checks run on the shape when the code builds one ([`crate::checks`]).
    pub checks: Vec<crate::checks::CheckCall>,
}

/// A finished job: the report, and the tessellated result when it succeeded.
#[derive(Debug, Clone)]
pub struct JobOutput {
    pub report: ExecReport,
    pub mesh: Option<Mesh>,
    /// The shape the job built but cadloop refused (not a valid solid),
    /// tessellated with its free edges marked, for views that show what is
    /// wrong; `None` when it succeeded or built nothing to draw.
    pub refused: Option<Mesh>,
}

/// Everything known about one run of generated code; serialised as `result.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecReport {
    #[serde(flatten)]
    pub outcome: Outcome,
    #[serde(default)]
    pub timings: Timings,
    #[serde(default)]
    pub output: CapturedOutput,
    /// What the code asked for that did not happen: GUI calls (there is no
    /// GUI) and saves or exports outside its job folder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<Ignored>,
    /// The named number constants at the top of the code ([`crate::params`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<crate::params::Parameter>,
    /// The job's checks, run on the shape it built, in their order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<crate::checks::CheckResult>,
    /// What is wrong with the shape (why it was refused), or what was noticed
    /// or healed in one that was accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnosis: Vec<Defect>,
    /// A refused shape's free (open) edges, as polylines in mm: where its
    /// surface has a gap. Its views draw them in a contrasting colour.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub free_edges: Vec<Vec<[f32; 3]>>,
}

/// One defect of a shape, as the worker's diagnosis finds it
/// (`freecad-scripts/cadloop_diagnose.py`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Defect {
    /// What it is, in a word. Of a shape: "open-profile", "open-shell",
    /// "inside-out", "self-intersecting", "collapsed-face", "invalid-face",
    /// "empty", "null", "invalid", "overlapping", "pieces-apart"; of the
    /// operation that made it or raised: "fillet-failed", "boolean-failed",
    /// "revolve-failed", "edges-not-of-shape", "face-of-open-wire",
    /// "null-shape", "open-sketch", "operation-failed".
    pub kind: String,
    pub severity: Severity,
    /// How many edges, faces or pieces it concerns.
    #[serde(default = "one")]
    pub count: u32,
    /// What and where, in words.
    pub message: String,
    /// The likely cause and the fix, in FreeCAD terms.
    pub hint: String,
    /// The bounding box of the faulty edges or faces, in mm.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    /// The line of code.py that likely made it, when it can be told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// The shape was repaired exactly (reversed), and accepted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub healed: bool,
}

fn one() -> u32 {
    1
}

/// Whether a defect refused the shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The shape was refused.
    Error,
    /// The shape was accepted; the note says what was noticed or healed.
    Note,
}

/// An axis-aligned box, in mm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Region {
    pub min: [f64; 3],
    pub max: [f64; 3],
}

impl Defect {
    /// "kind: message. Fix: hint", as the studio and the critique give it.
    pub fn with_fix(&self) -> String {
        format!("{self}. Fix: {}", self.hint)
    }
}

impl std::fmt::Display for Defect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// One line of the code whose effect was left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ignored {
    pub kind: IgnoredKind,
    /// The line of code.py, when the call came from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// The call as cadloop saw it, e.g. `Gui.SendMsgToActiveView()`.
    pub call: String,
    /// What happened instead, in words.
    pub detail: String,
}

/// Why a call was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IgnoredKind {
    /// A call into FreeCAD's GUI, which headless FreeCAD does not have.
    Gui,
    /// A save or export to a path outside the job folder.
    Write,
}

impl ExecReport {
    /// A report of `outcome` alone: no timings, output, notes or checks.
    pub fn of(outcome: Outcome) -> ExecReport {
        ExecReport {
            outcome,
            timings: Timings::default(),
            output: CapturedOutput::default(),
            ignored: Vec::new(),
            parameters: Vec::new(),
            checks: Vec::new(),
            diagnosis: Vec::new(),
            free_edges: Vec::new(),
        }
    }

    /// Whether the script built a valid result.
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok { .. })
    }

    /// The error kind, when the job failed.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        match &self.outcome {
            Outcome::Ok { .. } => None,
            Outcome::Error { kind, .. } => Some(*kind),
        }
    }

    /// The geometry facts, when the script got as far as a shape.
    pub fn facts(&self) -> Option<&GeometryFacts> {
        match &self.outcome {
            Outcome::Ok { facts } => Some(facts),
            Outcome::Error { facts, .. } => facts.as_ref(),
        }
    }
}

/// How the job ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// The code produced a valid solid; models were exported.
    Ok { facts: GeometryFacts },
    /// The code failed; `message` is written for an LLM to repair it.
    Error {
        kind: ErrorKind,
        message: String,
        /// The line of code.py the failure points at, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line: Option<u32>,
        /// Measurements of a shape that exists but failed a check.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        facts: Option<GeometryFacts>,
    },
}

/// Why generated code failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    Syntax,
    Exception,
    NoSolid,
    InvalidShape,
    Timeout,
    OutOfMemory,
    Crashed,
    /// The code tried something the sandbox forbids: a forbidden import, a
    /// file outside its job folder, the network, a new process.
    Sandbox,
}

impl ErrorKind {
    /// The word result.json and the prompts use.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "syntax",
            ErrorKind::Exception => "exception",
            ErrorKind::NoSolid => "no-solid",
            ErrorKind::InvalidShape => "invalid-shape",
            ErrorKind::Timeout => "timeout",
            ErrorKind::OutOfMemory => "out-of-memory",
            ErrorKind::Crashed => "crashed",
            ErrorKind::Sandbox => "sandbox",
        }
    }

    /// What to do about a failure of this kind, in a line, for whoever
    /// writes the next script (an agent over MCP).
    pub fn hint(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "fix the Python syntax at the line named",
            ErrorKind::Exception => {
                "the line named raised: check the names it uses and the arguments of the FreeCAD \
                 calls on it (the guide's cheat sheet has their order)"
            }
            ErrorKind::NoSolid => {
                "assign one closed solid to `result`: fuse the pieces into one, and extrude or \
                 revolve faces, not wires or edges"
            }
            ErrorKind::InvalidShape => {
                "the solid is not valid: close every profile (repeat the first point), keep \
                 booleans from touching only along a face or an edge, and see the diagnosis"
            }
            ErrorKind::Timeout => {
                "the script ran past its time limit: fewer booleans (fuse a list at once), \
                 fewer loop passes, smaller fillets"
            }
            ErrorKind::OutOfMemory => "the script ran out of memory: fewer or simpler features",
            ErrorKind::Crashed => {
                "FreeCAD crashed on it, usually on a degenerate shape (a zero size, a fillet \
                 larger than its face): check the values reaching the line named"
            }
            ErrorKind::Sandbox => {
                "use only FreeCAD, Part and the allowed modules; no files, network or processes"
            }
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Measurements of the result shape, in mm, mm² and mm³.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeometryFacts {
    pub valid: bool,
    pub solids: u32,
    pub shells: u32,
    pub faces: u32,
    pub edges: u32,
    pub vertices: u32,
    pub volume: f64,
    pub area: f64,
    pub bbox: BoundingBox,
    pub center_of_mass: [f64; 3],
    /// Faces by surface type (Plane, Cylinder, Cone, Sphere, Toroid, BSplineSurface, …).
    pub face_types: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tessellation: Option<Tessellation>,
    /// The named parts of a result of several (`result = {"box": box, "lid":
    /// lid}`), in the code's order; empty for a single part. The facts
    /// above are of their union.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartFacts>,
    /// Every two parts: the gap between them and the volume they share
    /// (none past 24 parts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<PartPair>,
}

impl GeometryFacts {
    /// Where each part's mesh lies in the job's mesh, for
    /// [`Mesh::split_parts`]: name, colour, vertices and triangles.
    pub fn part_layout(&self) -> Vec<crate::mesh::PartLayout> {
        self.parts
            .iter()
            .filter_map(|p| {
                p.mesh.map(|m| crate::mesh::PartLayout {
                    name: p.name.clone(),
                    color: p.rgb(),
                    vertices: m.vertices,
                    triangles: m.triangles,
                })
            })
            .collect()
    }
}

/// One named part of the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartFacts {
    pub name: String,
    /// sRGB, `#rrggbb`: the colour the code gave it, else one of cadloop's.
    pub color: String,
    pub valid: bool,
    pub solids: u32,
    pub volume: f64,
    pub bbox: BoundingBox,
    pub center_of_mass: [f64; 3],
    /// Where its own mesh lies in the job's mesh, after the union's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<PartMesh>,
}

impl PartFacts {
    /// Its colour as sRGB bytes; cadloop's grey-blue when it cannot be read.
    pub fn rgb(&self) -> [u8; 3] {
        let hex = self.color.trim_start_matches('#');
        let channel = |i: usize| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        };
        match (hex.len(), channel(0), channel(2), channel(4)) {
            (6, Some(r), Some(g), Some(b)) => [r, g, b],
            _ => [150, 172, 205],
        }
    }
}

/// A part's vertices and triangles in the job's mesh, each `[first, count]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PartMesh {
    pub vertices: [u64; 2],
    pub triangles: [u64; 2],
}

/// Two parts: how far apart they are and how much they overlap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartPair {
    pub parts: [String; 2],
    /// mm between them; 0 when they touch or overlap.
    pub gap: f64,
    /// mm³ they share; 0 when they only touch or are apart.
    pub overlap: f64,
}

/// An axis-aligned bounding box, in mm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoundingBox {
    pub min: [f64; 3],
    pub max: [f64; 3],
    pub size: [f64; 3],
}

/// How the shape was tessellated for the mesh files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tessellation {
    /// Largest chord deviation of the mesh from the exact surface.
    pub deflection_mm: f64,
    pub triangles: u64,
}

/// Milliseconds spent in each stage of a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Running the generated code (inside the worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_ms: Option<f64>,
    /// Measuring, exporting and tessellating (inside the worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_ms: Option<f64>,
    /// Running the checks on the built shape (inside the worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks_ms: Option<f64>,
    /// The whole job as the supervisor saw it, waiting for a worker included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<f64>,
}

/// What the code printed, cut to its head and tail when long; the whole of it
/// stays in the job folder's `output.txt`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CapturedOutput {
    pub text: String,
    pub bytes: u64,
    pub truncated: bool,
}

impl CapturedOutput {
    /// Reads a capture file, keeping at most [`OUTPUT_KEEP_BYTES`] (head and tail).
    /// A missing file is an empty capture.
    pub fn read(path: &Path) -> std::io::Result<CapturedOutput> {
        let mut file = match fs::File::open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(CapturedOutput::default())
            }
            Err(err) => return Err(err),
        };
        let bytes = file.metadata()?.len();
        if bytes <= OUTPUT_KEEP_BYTES {
            let mut raw = Vec::with_capacity(bytes as usize);
            file.read_to_end(&mut raw)?;
            return Ok(CapturedOutput {
                text: String::from_utf8_lossy(&raw).into_owned(),
                bytes,
                truncated: false,
            });
        }
        let half = OUTPUT_KEEP_BYTES / 2;
        let mut head = vec![0; half as usize];
        file.read_exact(&mut head)?;
        file.seek(SeekFrom::End(-(half as i64)))?;
        let mut tail = vec![0; half as usize];
        file.read_exact(&mut tail)?;
        let text = format!(
            "{}\n[… {} bytes left out; the whole output is in {OUTPUT_FILE} …]\n{}",
            String::from_utf8_lossy(&head),
            bytes - 2 * half,
            String::from_utf8_lossy(&tail)
        );
        Ok(CapturedOutput {
            text,
            bytes,
            truncated: true,
        })
    }
}

/// The executor itself failed (not the code it ran).
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("could not start `{exe} worker`", exe = exe.display())]
    Spawn {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the FreeCAD worker did not start: {message}")]
    Startup { message: String },
    #[error("the FreeCAD worker did not report ready within {0:?}")]
    StartupTimeout(Duration),
    #[error("could not prepare the job folder {}", dir.display())]
    JobDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot give the job its input {}", path.display())]
    Input {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the worker broke the protocol: {0}")]
    Protocol(String),
    #[error("the worker sent a mesh that cannot be read")]
    Mesh(#[source] crate::mesh::MeshError),
    #[error("a worker's start-up task failed")]
    Starting(#[source] tokio::task::JoinError),
    #[error("the executor pool is shut down")]
    Closed,
}

#[cfg(test)]
mod tests {
    use super::ErrorKind;

    /// Every kind, and whether the worker's Python side reports it (the
    /// supervisor reports the others). A new kind must be added here.
    fn reported_by_python(kind: ErrorKind) -> bool {
        match kind {
            ErrorKind::Syntax
            | ErrorKind::Exception
            | ErrorKind::NoSolid
            | ErrorKind::InvalidShape
            | ErrorKind::OutOfMemory
            | ErrorKind::Sandbox => true,
            ErrorKind::Timeout | ErrorKind::Crashed => false,
        }
    }

    #[test]
    fn the_python_side_reports_exactly_the_kinds_rust_reads() {
        const ALL: [ErrorKind; 8] = [
            ErrorKind::Syntax,
            ErrorKind::Exception,
            ErrorKind::NoSolid,
            ErrorKind::InvalidShape,
            ErrorKind::Timeout,
            ErrorKind::OutOfMemory,
            ErrorKind::Crashed,
            ErrorKind::Sandbox,
        ];
        let source = include_str!("../../freecad-scripts/cadloop_job.py");
        // The constants `NAME = "word"` before `KINDS = (...)`.
        let python: Vec<&str> = source
            .lines()
            .take_while(|l| !l.starts_with("KINDS"))
            .filter_map(|l| {
                let (name, value) = l.split_once(" = ")?;
                let word = value.strip_prefix('"')?.strip_suffix('"')?;
                (name.chars().all(|c| c.is_ascii_uppercase() || c == '_') && name != "CODE_NAME")
                    .then_some(word)
            })
            .collect();
        let listed = source
            .lines()
            .find_map(|l| l.strip_prefix("KINDS = ("))
            .expect("KINDS in cadloop_job.py");
        assert_eq!(
            listed.trim_end_matches(')').split(", ").count(),
            python.len(),
            "KINDS lists every kind constant"
        );
        for word in &python {
            let kind: ErrorKind = serde_json::from_value(serde_json::json!(word))
                .unwrap_or_else(|_| panic!("{word:?} (cadloop_job.py) is no ErrorKind"));
            assert!(reported_by_python(kind), "{word:?}");
            assert_eq!(kind.as_str(), *word);
        }
        for kind in ALL {
            assert_eq!(
                python.contains(&kind.as_str()),
                reported_by_python(kind),
                "{kind}: cadloop_job.py and ErrorKind disagree"
            );
        }
    }
}
