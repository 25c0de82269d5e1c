//! The command line, as clap types only; `config` turns them into checked settings.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::config;

/// Text to CAD: an LLM writes FreeCAD Python, cadloop runs it, looks at the
/// result and refines it.
#[derive(Debug, Parser)]
#[command(name = "cadloop", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// More log output on stderr (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Settings file [default: ./cadloop.toml when it exists].
    #[arg(long, env = config::env::CONFIG, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Turn a description into a CAD model.
    ///
    /// The LLM writes FreeCAD Python; cadloop runs it (failures go back for
    /// repair), renders seven views, captions them, and has the LLM compare
    /// what was built with what was asked, rewriting until they match or the
    /// budget is spent. Writes the run folder: run.json, model.step/.stl/.FCStd/.glb,
    /// views/, sheet.png, attempts/NN/, transcript.jsonl and report.html.
    /// Exit status: 0 a model was made, 1 no attempt built a solid, 2 usage,
    /// environment or LLM endpoint error.
    Generate(GenerateArgs),
    /// Change a part made earlier: apply a follow-up request to a run folder.
    ///
    /// Starts from the run's result (or --from-attempt N), asks the LLM to
    /// change that code, and goes through the same loop (run, repair, render,
    /// caption, critique against the prompt and every change so far). The new
    /// attempts are added to the run folder; earlier ones stay in attempts/NN/.
    /// run.json records the chain of requests.
    Refine(RefineArgs),
    /// Change a part's parameters without the LLM: new values for the named
    /// numbers at the top of its code.
    ///
    /// Rewrites only those literals of the run's result (or --from-attempt
    /// N), runs, renders and captions it as a new attempt in the run folder,
    /// and makes it the result. No LLM endpoint is needed. --list prints the
    /// parameters. Exit status: 0 rebuilt, 1 an unknown name, a value of the
    /// wrong kind, or values FreeCAD could not build (the run's result is
    /// kept), 2 usage or environment error.
    Tweak(TweakArgs),
    /// The studio: a local web app over a runs folder.
    ///
    /// Lists the runs; starts, watches, refines and stops runs of the loop;
    /// shows each in a 3D viewer with its parameters as controls that rebuild
    /// the part (tweak, no LLM); opens the example parts as runs. The LLM and
    /// captioner settings are generate's; without an endpoint everything but
    /// new runs and refine still works. Binds 127.0.0.1 unless --host says
    /// otherwise; a non-loopback address needs the token printed in the URL.
    /// Stops on Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// A Model Context Protocol server on stdin and stdout, for agent hosts.
    ///
    /// Tools: `build` (FreeCAD Python run in the sandbox, made a run with its
    /// facts, parameters and contact sheet), `tweak` (new parameter values),
    /// `views` (the seven views as PNG images), `check` (requirement checks
    /// on a run's result) and `runs`. Runs go to the
    /// runs folder, where the studio opens them. Logs go to stderr.
    Mcp(McpArgs),
    /// Run many prompts: JSONL, CSV (Text2CAD's annotations) or a plain list.
    ///
    /// Each item's run folder is OUT/items/<id>/; OUT/results.jsonl gets one
    /// record per finished item. Resumable: a rerun with the same --out skips
    /// finished ids. `cadloop batch summary OUT` merges every shard's results.
    /// Exit status: 0 every item taken was finished, 2 usage or environment
    /// errors, or items cut short by the LLM endpoint, 130/143 stopped by
    /// SIGINT/SIGTERM.
    Batch(BatchArgs),
    /// Benchmark on a dataset: run the loop on every case, then score it.
    ///
    /// DATASET is a CADPrompt folder (<id>/ with the prompt files and
    /// Ground_Truth.stl, optional strata.csv), a JSONL file ({"id", "prompt",
    /// "reference"}) or a text file of prompts (Query2CAD: no references).
    /// Runs go to OUT/items/ through the batch engine (same resume, --jobs,
    /// --shard); the scores to OUT/bench.json, OUT/bench.md and OUT/cases/.
    /// `cadloop bench score` scores another system's <id>.stl files.
    Bench(BenchArgs),
    /// Run a FreeCAD Python script in a separate, limited process and export its solid.
    ///
    /// Writes DIR/result.json (outcome, geometry facts or the error), DIR/code.py,
    /// and on success DIR/model.step, DIR/model.stl, DIR/model.FCStd, DIR/model.glb, the seven
    /// views in DIR/views/ and DIR/sheet.png.
    /// Exit status: 0 ok, 1 the script failed, 2 usage or environment error.
    Exec(ExecArgs),
    /// Render the seven standard views of a model and a contact sheet.
    ///
    /// Writes DIR/views/{front,back,left,right,top,bottom,iso}.png and DIR/sheet.png.
    /// STL and GLB files are read directly; STEP and FCStd files are meshed by FreeCAD.
    Render(RenderArgs),
    /// Make a captioner training set from a CAD dataset: each reference
    /// rendered as the loop renders attempts, paired with its text.
    ///
    /// Reads a CADPrompt folder, a JSONL file with references, or a
    /// Text2CAD CSV with --meshes DIR. Writes DIR/images/<id>_<view>.png and
    /// DIR/metadata.jsonl (file_name, text, id, view, split), split into
    /// train and validation by model id. Images already there are kept, so a
    /// stopped run resumes.
    CaptionsDataset(CaptionsDatasetArgs),
    /// Turn runs into training data for code models: each request's dialogue
    /// with the LLM, kept when execution verified its final script.
    ///
    /// Reads run folders, batch and bench output folders (their items) and
    /// folders of runs. Writes FILE (JSON lines, one record per request) and
    /// FILE.stats.json (what was read, kept and left out, and why), and
    /// prints the summary on stderr.
    /// Exit status: 0 written (even with no records), 2 usage or read errors.
    ExportData(ExportDataArgs),
    /// Caption images with the BLIP model in --captioner DIR.
    ///
    /// Prints one caption per image, in the order given; --json prints a list of
    /// {"image", "caption", "score"} objects instead.
    Caption(CaptionArgs),
    /// Check FreeCAD, the embedded interpreter, ONNX Runtime, the captioner
    /// model and the LLM settings; say how to fix what is missing.
    ///
    /// Settings come from the same flags, environment variables and
    /// cadloop.toml as the other commands'.
    /// Exit status: 0 ready (warnings allowed), 2 a required part fails.
    Doctor(DoctorArgs),
    /// Serve jobs to a supervisor over stdin/stdout (internal).
    #[command(hide = true)]
    Worker,
}

/// `cadloop exec`'s arguments.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The FreeCAD Python script to run: a .py file or a FreeCAD macro
    /// (.FCMacro), GUI lines and all.
    #[arg(value_name = "SCRIPT")]
    pub script: PathBuf,
    /// Folder for result.json and the models (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Print result.json on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Width and height of each rendered view, in pixels [default: 384].
    #[arg(long, value_name = "PX")]
    pub size: Option<u32>,
    /// A file of checks (`CHECKS = [bbox(40, 20, 10), ...]`, the library the
    /// loop uses) to run on the solid the script builds.
    #[arg(long, value_name = "FILE")]
    pub checks: Option<PathBuf>,
}

/// `cadloop export-data`'s arguments.
#[derive(Debug, Args)]
pub struct ExportDataArgs {
    /// Run folders, batch or bench output folders, or folders of runs.
    #[arg(value_name = "RUNS_OR_BATCH", required = true)]
    pub sources: Vec<PathBuf>,
    /// The JSON lines file to write (replaced whole, never left half-written).
    #[arg(long, value_name = "FILE.jsonl")]
    pub out: PathBuf,
    /// openai: {"messages": [...]}, as OpenAI fine-tuning takes it;
    /// sharegpt: {"conversations": [{"from", "value"}]}.
    #[arg(long, value_enum, default_value = "openai")]
    pub format: crate::export::Format,
    /// all: every exchange that led to the final script; final: the
    /// request and the final script, one pair.
    #[arg(long, value_enum, default_value = "all")]
    pub turns: crate::export::Turns,
    /// What execution must have verified: match (a valid solid, every
    /// check passed, judged MATCH), passed (a valid solid, checks that all
    /// passed, any verdict), any (a valid solid).
    #[arg(long, value_enum, default_value = "match")]
    pub only: crate::export::Only,
    /// A file of source ids to leave out (one a line, or a JSON list), such
    /// as a benchmark's case ids, so no test case is trained on.
    #[arg(long, value_name = "FILE")]
    pub exclude_ids: Option<PathBuf>,
}

/// `cadloop captions-dataset`'s arguments.
#[derive(Debug, Args)]
pub struct CaptionsDatasetArgs {
    /// The dataset: a CADPrompt folder, a JSONL file with `reference`s, or a Text2CAD CSV.
    #[arg(value_name = "DATASET")]
    pub dataset: PathBuf,
    /// The output folder.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// All seven views of each model, or the isometric one only.
    #[arg(long, value_enum, default_value = "all")]
    pub views: ViewSet,
    /// Share of the models in the training split; the rest validate.
    #[arg(long, value_name = "SHARE", default_value_t = 0.9)]
    pub split: f64,
    /// CADPrompt: the plain prompt or the one with measurements.
    #[arg(long, value_enum, default_value = "plain")]
    pub variant: PromptVariant,
    /// Text2CAD CSV: the level whose text describes the model.
    #[arg(long, value_enum, default_value = "abstract")]
    pub level: Text2CadLevel,
    /// Text2CAD CSV: the folder of the models, <uid>.stl (or .step, .stp, .obj, .glb).
    #[arg(long, value_name = "DIR")]
    pub meshes: Option<PathBuf>,
    /// Width and height of each image, in pixels [default: 384, BLIP's input].
    #[arg(long, value_name = "PX")]
    pub size: Option<u32>,
    /// Models loaded and rendered at once (FreeCAD workers for STEP files)
    /// [default: one per core].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
}

/// Which images of a captions dataset `cadloop caption --eval` scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EvalSplit {
    Train,
    Validation,
    All,
}

/// Which views a captions dataset holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ViewSet {
    All,
    Iso,
}

/// `cadloop render`'s arguments.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The model: .stl (binary or ASCII), .glb (binary glTF), .step/.stp or .FCStd.
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// Folder for views/ and sheet.png (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Width and height of each view, in pixels [default: 384].
    #[arg(long, value_name = "PX")]
    pub size: Option<u32>,
}

/// `cadloop caption`'s arguments.
#[derive(Debug, Args)]
pub struct CaptionArgs {
    /// The images (PNG or JPEG).
    #[arg(
        value_name = "IMAGE",
        required_unless_present = "eval",
        conflicts_with = "eval"
    )]
    pub images: Vec<PathBuf>,
    /// Caption a captions dataset's images (its metadata.jsonl, made by
    /// `cadloop captions-dataset`) and score them against their texts:
    /// BLEU-4, ROUGE-L, CAD-word recall.
    #[arg(long, value_name = "METADATA")]
    pub eval: Option<PathBuf>,
    /// With --eval: the images of this side of the split.
    #[arg(long, value_enum, default_value = "validation", requires = "eval")]
    pub split: EvalSplit,
    /// The captioner model folder (made by captioner/export.py).
    #[arg(long, env = config::env::CAPTIONER, value_name = "DIR")]
    pub captioner: Option<PathBuf>,
    /// Beams for beam search; 1 decodes greedily [default: 3].
    #[arg(long, value_name = "N")]
    pub beams: Option<usize>,
    /// Tokens per caption, the start token and prefix included [default: the model's].
    #[arg(long, value_name = "N")]
    pub max_length: Option<usize>,
    /// Above 1 discourages repeated words [default: 1].
    #[arg(long, value_name = "X")]
    pub repetition_penalty: Option<f32>,
    /// Text every caption starts with, e.g. "a cad model of".
    #[arg(long, value_name = "TEXT")]
    pub prefix: Option<String>,
    /// Print JSON instead of plain text.
    #[arg(long)]
    pub json: bool,
}

/// The flags of one run of the loop: the LLM, the budgets, the limits, the summary's form.
#[derive(Debug, Args)]
pub struct RunFlags {
    #[command(flatten)]
    pub llm: LlmArgs,
    #[command(flatten)]
    pub budget: LoopArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `cadloop refine`'s arguments.
#[derive(Debug, Args)]
pub struct RefineArgs {
    /// The run folder to change (written by `cadloop generate` or an earlier refine).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// The change, in words; "-" reads it from standard input.
    #[arg(value_name = "CHANGE", required_unless_present = "change_file")]
    pub change: Option<String>,
    /// Read the change from a file instead.
    #[arg(long, value_name = "FILE", conflicts_with = "change")]
    pub change_file: Option<PathBuf>,
    /// Start from this attempt's code instead of the run's result (it must have built a solid).
    #[arg(long, value_name = "N")]
    pub from_attempt: Option<u32>,
    #[command(flatten)]
    pub run: RunFlags,
}

/// `cadloop tweak`'s arguments.
#[derive(Debug, Args)]
pub struct TweakArgs {
    /// The run folder (written by `cadloop generate`, refine or tweak).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// New values, e.g. LENGTH=45 HOLE_D=8.
    #[arg(value_name = "NAME=VALUE", required_unless_present = "list")]
    pub values: Vec<String>,
    /// Start from this attempt's code instead of the run's result.
    #[arg(long, value_name = "N")]
    pub from_attempt: Option<u32>,
    /// Print the parameters (of the result, or of --from-attempt N) and stop.
    #[arg(long, conflicts_with = "values")]
    pub list: bool,
    /// Print the summary (or the --list) as JSON.
    #[arg(long)]
    pub json: bool,
    /// The captioner model folder; without one the views are not captioned.
    #[arg(long, env = config::env::CAPTIONER, value_name = "DIR")]
    pub captioner: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// `cadloop serve`'s arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The runs folder (created if missing).
    #[arg(long, value_name = "DIR", default_value = "runs")]
    pub runs: PathBuf,
    /// The address to listen on; anything but loopback needs a token.
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// The port (0: any free one; the URL is printed).
    #[arg(long, value_name = "PORT", default_value_t = 8420)]
    pub port: u16,
    /// Open the studio in the default browser.
    #[arg(long)]
    pub open: bool,
    #[command(flatten)]
    pub llm: LlmArgs,
    #[command(flatten)]
    pub budget: LoopArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// `cadloop mcp`'s arguments.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// The runs folder (created if missing).
    #[arg(long, value_name = "DIR", default_value = "runs")]
    pub runs: PathBuf,
    /// Serve streamable HTTP at http://ADDR:PORT/mcp instead of stdio
    /// (port 0: any free one; the URL is printed); anything but loopback
    /// needs the printed token.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        num_args = 0..=1,
        default_missing_value = "127.0.0.1:8421"
    )]
    pub http: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub llm: LlmArgs,
    #[command(flatten)]
    pub budget: LoopArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// `cadloop generate`'s arguments.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The part, in words; "-" reads it from standard input.
    #[arg(value_name = "PROMPT", required_unless_present = "prompt_file")]
    pub prompt: Option<String>,
    /// Read the prompt from a file instead.
    #[arg(long, value_name = "FILE", conflicts_with = "prompt")]
    pub prompt_file: Option<PathBuf>,
    /// Run folder (created; must be new or empty) [default: runs/<words of the prompt>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunFlags,
}

/// `cadloop doctor`: the flags whose settings it checks.
#[derive(Debug, Default, Args)]
pub struct DoctorArgs {
    /// The captioner model folder to load.
    #[arg(long, env = config::env::CAPTIONER, value_name = "DIR")]
    pub captioner: Option<PathBuf>,
    #[command(flatten)]
    pub endpoint: EndpointArgs,
}

/// Which endpoint and model. The API key comes from OPENAI_API_KEY.
#[derive(Debug, Default, Args)]
pub struct EndpointArgs {
    /// The OpenAI-compatible API root, e.g. http://127.0.0.1:11434/v1 (Ollama)
    /// [default: OpenAI's, when OPENAI_API_KEY is set].
    #[arg(long, env = config::env::BASE_URL, value_name = "URL")]
    pub base_url: Option<String>,
    /// The model to ask [default at OpenAI: gpt-4.1-mini].
    #[arg(long, env = config::env::MODEL, value_name = "NAME")]
    pub model: Option<String>,
}

/// Where the LLM is and how to ask it.
#[derive(Debug, Args)]
pub struct LlmArgs {
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    /// Sampling temperature, 0 to 2 [default: the server's].
    #[arg(long, value_name = "T")]
    pub temperature: Option<f32>,
    /// Most tokens in one reply [default: the server's].
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<u32>,
    /// Limit for one LLM request answered whole, in seconds; a streamed
    /// reply may take longer while its tokens keep coming (see
    /// --idle-timeout) [default: 300].
    #[arg(long, value_name = "SECS")]
    pub request_timeout: Option<f64>,
    /// Retries of a request that failed with 429, 5xx, a timeout or a
    /// connection error, with exponential backoff [default: 5].
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Wait for whole replies instead of streaming them token by token.
    #[arg(long)]
    pub no_stream: bool,
    /// Fail a streamed reply that sends no token for this long, in seconds
    /// (the wait for the first token included) [default: 120].
    #[arg(long, value_name = "SECS")]
    pub idle_timeout: Option<f64>,
    /// When replies with code are held to the asked layout, on servers that
    /// take a grammar (llama.cpp's llama-server, llama-cpp-python)
    /// [default: always].
    #[arg(long, value_name = "WHEN")]
    pub constrain: Option<crate::llm::Constrain>,
    /// Append every LLM request and reply to FILE (JSON lines).
    #[arg(long, value_name = "FILE", conflicts_with = "replay")]
    pub record: Option<PathBuf>,
    /// Take the replies from a recording made with --record instead of an
    /// endpoint, matched by the messages sent (no endpoint is needed).
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
}

/// Limits for the generated code.
#[derive(Debug, Default, Args)]
pub struct LimitArgs {
    /// Wall-clock limit for each script, in seconds [default: 60].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Address-space limit of each FreeCAD worker, in MiB [default: 4096].
    #[arg(long, value_name = "MIB")]
    pub memory_limit: Option<u64>,
}

/// The loop's budgets and helpers.
#[derive(Debug, Args)]
pub struct LoopArgs {
    /// Repairs of failing code per generation or rewrite [default: 3].
    #[arg(long, value_name = "N")]
    pub max_repairs: Option<u32>,
    /// Rounds of critique and rewrite [default: 3]; 0 skips the critique.
    #[arg(long, value_name = "N")]
    pub max_refines: Option<u32>,
    /// The captioner model folder; without one the critique uses the geometry alone.
    #[arg(long, env = config::env::CAPTIONER, value_name = "DIR")]
    pub captioner: Option<PathBuf>,
    /// A folder of prompt templates (system.md, generate.md, repair.md,
    /// critique.md, reminder.md) replacing the built-in ones it has.
    #[arg(long, value_name = "DIR")]
    pub prompts: Option<PathBuf>,
    /// Whether the LLM writes the request's checks (sizes, holes, counts)
    /// with its first script, and every attempt must pass them to be a match
    /// [default: on].
    #[arg(long, value_name = "on|off")]
    pub checks: Option<OnOff>,
}

/// A switch given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

impl OnOff {
    /// Whether the switch is on.
    pub fn is_on(self) -> bool {
        self == OnOff::On
    }
}

/// `cadloop batch`'s arguments.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BatchArgs {
    #[command(subcommand)]
    pub action: Option<BatchAction>,
    /// The prompts: .jsonl ({"id", "prompt", …} per line), .csv, or a text
    /// file with one prompt per line (id = line number).
    #[arg(value_name = "INPUT", required = true)]
    pub input: Option<PathBuf>,
    /// The output folder, shared by all shards and reruns.
    #[arg(long, value_name = "DIR", required = true)]
    pub out: Option<PathBuf>,
    /// Items in flight at once [default: 4].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Take shard K of N (K from 0), e.g. --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Stop before any work when a line of the input is malformed (default: report and skip it).
    #[arg(long)]
    pub strict: bool,
    /// The input's format [default: by extension: .jsonl/.ndjson, .csv, else text].
    #[arg(long, value_enum)]
    pub format: Option<BatchFormat>,
    /// CSV: the id column.
    #[arg(long, value_name = "NAME", default_value = "uid")]
    pub id_column: String,
    /// CSV: the prompt column [default: the --level column].
    #[arg(long, value_name = "NAME")]
    pub prompt_column: Option<String>,
    /// CSV: Text2CAD's annotation level, used as the prompt column.
    #[arg(long, value_enum, default_value = "expert")]
    pub level: Text2CadLevel,
    /// Seconds in-flight items may take to finish after Ctrl-C [default: 120].
    #[arg(long, value_name = "SECS")]
    pub grace: Option<u64>,
    #[command(flatten)]
    pub llm: LlmArgs,
    #[command(flatten)]
    pub budget: LoopArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// `cadloop batch`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum BatchAction {
    /// Merge every shard's results in DIR into totals.
    Summary {
        /// The batch output folder.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A batch input file's format, when its extension does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BatchFormat {
    Jsonl,
    Csv,
    Text,
}

/// Which of a Text2CAD CSV's four prompt columns to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Text2CadLevel {
    Abstract,
    Beginner,
    Intermediate,
    Expert,
}

impl Text2CadLevel {
    /// The CSV column that holds this level's prompts.
    pub fn column(self) -> &'static str {
        match self {
            Text2CadLevel::Abstract => "abstract",
            Text2CadLevel::Beginner => "beginner",
            Text2CadLevel::Intermediate => "intermediate",
            Text2CadLevel::Expert => "expert",
        }
    }
}

/// `cadloop bench`'s arguments.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub action: Option<BenchAction>,
    /// The dataset.
    #[arg(value_name = "DATASET", required = true)]
    pub dataset: Option<PathBuf>,
    /// The output folder (runs, results and scores).
    #[arg(long, value_name = "DIR", required = true)]
    pub out: Option<PathBuf>,
    /// CADPrompt: the plain prompt or the one with measurements.
    #[arg(long, value_enum, default_value = "plain")]
    pub variant: PromptVariant,
    /// Items in flight at once [default: 4].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Run shard K of N (K from 0); scoring covers every case run so far.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Seconds in-flight cases may take to finish after Ctrl-C [default: 120].
    #[arg(long, value_name = "SECS")]
    pub grace: Option<u64>,
    /// Price of a million prompt tokens, for the cost tables (with --price-out).
    #[arg(long, value_name = "MONEY", requires = "price_out")]
    pub price_in: Option<f64>,
    /// Price of a million completion tokens.
    #[arg(long, value_name = "MONEY", requires = "price_in")]
    pub price_out: Option<f64>,
    #[command(flatten)]
    pub metrics: MetricArgs,
    #[command(flatten)]
    pub llm: LlmArgs,
    #[command(flatten)]
    pub budget: LoopArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// `cadloop bench`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchAction {
    /// Score meshes another system made: RESULTS/<id>.stl against the dataset's references.
    Score {
        /// A folder of <id>.stl files (a missing file scores as a failure).
        #[arg(value_name = "RESULTS")]
        results: PathBuf,
        /// The dataset with the references.
        #[arg(long, value_name = "DATASET")]
        references: PathBuf,
        /// Where bench.json, bench.md and cases/ go.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "plain")]
        variant: PromptVariant,
        #[command(flatten)]
        metrics: MetricArgs,
    },
    /// Compare two bench folders on the same cases: paired differences per
    /// metric with bootstrap intervals and Wilcoxon p-values (B − A).
    Compare {
        /// The baseline bench folder (with its bench.json).
        #[arg(value_name = "A")]
        a: PathBuf,
        /// The bench folder compared with it.
        #[arg(value_name = "B")]
        b: PathBuf,
        /// Also write compare.md and compare.json into this folder.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// The scoring protocol (`--protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtocolArg {
    Cadprompt,
    Text2cad,
    Cadloop,
}

/// Which CADPrompt prompt file a case is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PromptVariant {
    Plain,
    Measurements,
}

/// How results are measured against references.
#[derive(Debug, Args)]
pub struct MetricArgs {
    /// The evaluation procedure, every setting at once: CADPrompt's
    /// published one, the DeepCAD one Text2CAD reports, or cadloop's own
    /// (see the README).
    #[arg(long, value_enum, default_value = "cadprompt")]
    pub protocol: ProtocolArg,
    /// Points sampled on each surface [default: the protocol's].
    #[arg(long, value_name = "N")]
    pub samples: Option<usize>,
    /// Seed of the sampling.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// How points are drawn: evenly spaced (Poisson disk) or independent
    /// and uniform by area [default: the protocol's].
    #[arg(long, value_enum)]
    pub sampling: Option<SamplingArg>,
    /// Align the result to the reference before measuring [default: the protocol's].
    #[arg(long, value_enum)]
    pub align: Option<AlignArg>,
    /// Voxel cells along each side for the IoU.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub voxels: usize,
}

/// How points are drawn on a surface for scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SamplingArg {
    Poisson,
    Uniform,
}

/// How a result is aligned with its reference before scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AlignArg {
    None,
    Icp,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;
    use crate::config::Budget;
    use crate::executor::ExecutorSettings;

    /// The help of `generate`'s flag `long`.
    fn help_of(long: &str) -> String {
        let command = Cli::command();
        let generate = command
            .find_subcommand("generate")
            .expect("generate exists");
        let arg = generate
            .get_arguments()
            .find(|a| a.get_long() == Some(long))
            .unwrap_or_else(|| panic!("--{long} exists"));
        arg.get_help().map(ToString::to_string).unwrap_or_default()
    }

    /// Defaults live in the settings; the help, which cannot name them, must agree.
    #[test]
    fn the_help_states_the_defaults_the_settings_use() {
        let budget = Budget::default();
        assert!(help_of("max-repairs").contains(&format!("[default: {}]", budget.max_repairs)));
        assert!(help_of("max-refines").contains(&format!("[default: {}]", budget.max_refines)));
        let executor = ExecutorSettings::with_defaults("cadloop".into());
        let timeout = executor.timeout.as_secs();
        assert!(help_of("timeout").contains(&format!("[default: {timeout}]")));
        let memory = executor.memory_limit_mib;
        assert!(help_of("memory-limit").contains(&format!("[default: {memory}]")));
    }
}
