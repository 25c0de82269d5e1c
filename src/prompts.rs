//! The LLM prompts: plain template files in `prompts/`, filled with minijinja.
//!
//! Stage in the flow: `pipeline` asks for a filled prompt at each step
//! (generate, repair, critique, edit, and a reminder when a reply had no
//! code or no verdict) and sends it through `llm`. The project's templates are compiled
//! into the binary; `--prompts DIR` replaces any of them with the user's copy.
//! Every template is filled once with sample values when loaded, so a typo in
//! a user's copy is reported before any work starts.

use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

/// The templates, by file name, with the project's text.
pub const TEMPLATES: [(&str, &str); 6] = [
    ("system.md", include_str!("../prompts/system.md")),
    ("generate.md", include_str!("../prompts/generate.md")),
    ("repair.md", include_str!("../prompts/repair.md")),
    ("critique.md", include_str!("../prompts/critique.md")),
    ("edit.md", include_str!("../prompts/edit.md")),
    ("reminder.md", include_str!("../prompts/reminder.md")),
];

/// A template could not be read or filled.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("--prompts {}: not a folder", dir.display())]
    NotAFolder { dir: PathBuf },
    #[error("--prompts {}: none of {names} is there", dir.display(), names = template_names())]
    NoTemplates { dir: PathBuf },
    #[error("cannot read the prompt template {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("prompt template {origin}: {message}")]
    Template { origin: String, message: String },
}

/// Templates that had another name before: a user's folder holding the old
/// name still works (the critique prompt was refine.md).
const FORMER_NAMES: [(&str, &str); 1] = [("critique.md", "refine.md")];

fn template_names() -> String {
    TEMPLATES.map(|(name, _)| name).join(", ")
}

/// What the system prompt may use.
#[derive(Debug, Clone, Serialize)]
pub struct SystemContext {
    pub allowed_modules: Vec<String>,
    /// Whether replies carry checks ([`crate::checks`]): the library is described.
    pub checks: bool,
    /// For an agent that calls cadloop's tools (`cadloop mcp`'s guide)
    /// rather than the loop's LLM, which replies in fenced blocks.
    pub agent: bool,
}

/// A failed run, for the repair prompt.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorContext {
    pub kind: String,
    pub message: String,
    pub line: Option<u32>,
}

/// What the repair template is filled with.
#[derive(Debug, Clone, Serialize)]
pub struct RepairContext<'a> {
    pub prompt: &'a str,
    /// The code with right-aligned line numbers, as tracebacks count them.
    pub numbered_code: String,
    pub error: ErrorContext,
    /// What the script printed, trimmed; empty when nothing.
    pub output: String,
    /// The request's checks, one "- " line each; empty when none.
    pub checks: String,
}

/// One view's caption, for the critique prompt.
#[derive(Debug, Clone, Serialize)]
pub struct ViewCaption {
    pub view: String,
    pub text: String,
}

/// What the critique template is filled with.
#[derive(Debug, Clone, Serialize)]
pub struct CritiqueContext<'a> {
    pub prompt: &'a str,
    /// The geometry facts in words, one "- " line each.
    pub facts: String,
    /// `None` when no captioner ran.
    pub captions: Option<Vec<ViewCaption>>,
    pub numbered_code: String,
    /// No rewrite can run after this critique (the refine budget is spent):
    /// ask for the verdict and reasons only.
    pub last_round: bool,
    pub checks: ChecksContext,
}

/// The checks' results on the attempt a critique judges.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChecksContext {
    /// Whether checks are in use (the LLM may change them).
    pub on: bool,
    pub passed: u32,
    pub total: u32,
    /// The failing checks, one "- " line each with measured and expected.
    pub failures: String,
    /// Why the request's checks could not be read; empty when they could.
    pub problem: String,
}

/// A follow-up change to a part that was built (`cadloop refine`).
#[derive(Debug, Clone, Serialize)]
pub struct EditContext<'a> {
    /// The part as asked for so far: the prompt and earlier changes ([`with_edits`]).
    pub prompt: &'a str,
    /// The new change.
    pub request: &'a str,
    /// The geometry facts of the starting script's solid, in words.
    pub facts: String,
    pub numbered_code: String,
    /// Ask for the changed part's checks too.
    pub checks: bool,
}

/// What a reminder asks for again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Want {
    Code,
    Verdict,
    /// A rewrite (or a reasoned change of the checks) after a MATCH verdict
    /// that failing checks overrule.
    Checks,
}

/// The loaded templates.
pub struct Prompts {
    env: Environment<'static>,
    /// Where each template came from: "built-in" or a path.
    origins: Vec<(String, String)>,
}

impl std::fmt::Debug for Prompts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prompts")
            .field("origins", &self.origins)
            .finish()
    }
}

impl Prompts {
    /// The project's own templates.
    pub fn builtin() -> Prompts {
        Prompts::from_sources(
            TEMPLATES
                .iter()
                .map(|(name, text)| (name.to_string(), text.to_string(), "built-in".to_string()))
                .collect(),
        )
        .expect("the built-in templates are checked by the tests")
    }

    /// The templates in `dir`, with the built-in ones for files it lacks.
    pub fn load(dir: &Path) -> Result<Prompts, PromptError> {
        if !dir.is_dir() {
            return Err(PromptError::NotAFolder {
                dir: dir.to_path_buf(),
            });
        }
        let mut sources = Vec::new();
        let mut found = 0;
        for (name, builtin) in TEMPLATES {
            let mut path = dir.join(name);
            if let Some((_, former)) = FORMER_NAMES.iter().find(|(now, _)| *now == name) {
                if !path.exists() && dir.join(former).exists() {
                    path = dir.join(former);
                }
            }
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    found += 1;
                    sources.push((name.to_string(), text, path.display().to_string()));
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    sources.push((name.to_string(), builtin.to_string(), "built-in".into()));
                }
                Err(source) => return Err(PromptError::Read { path, source }),
            }
        }
        if found == 0 {
            return Err(PromptError::NoTemplates {
                dir: dir.to_path_buf(),
            });
        }
        Prompts::from_sources(sources)
    }

    fn from_sources(sources: Vec<(String, String, String)>) -> Result<Prompts, PromptError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .build()
                .expect("default delimiters"),
        );
        let mut origins = Vec::new();
        for (name, text, origin) in sources {
            env.add_template_owned(name.clone(), text)
                .map_err(|e| template_error(&origin, &e))?;
            origins.push((name, origin));
        }
        let prompts = Prompts { env, origins };
        prompts.check()?;
        Ok(prompts)
    }

    /// Where each template came from, for the run record.
    pub fn origins(&self) -> &[(String, String)] {
        &self.origins
    }

    /// Fills every template with sample values, so missing or misspelt
    /// variables surface now rather than mid-run.
    fn check(&self) -> Result<(), PromptError> {
        for (checks, agent) in [(false, false), (true, false), (true, true)] {
            self.system(&SystemContext {
                allowed_modules: vec!["math".into()],
                checks,
                agent,
            })?;
            self.generate("a cube", checks)?;
        }
        let error = ErrorContext {
            kind: "exception".into(),
            message: "NameError".into(),
            line: Some(1),
        };
        self.repair(&RepairContext {
            prompt: "a cube",
            numbered_code: number_lines("result = x\n"),
            error: error.clone(),
            output: "printed".into(),
            checks: "- `bbox(10, 10, 10)`".into(),
        })?;
        self.repair(&RepairContext {
            prompt: "a cube",
            numbered_code: number_lines("result = x\n"),
            error: ErrorContext {
                line: None,
                ..error
            },
            output: String::new(),
            checks: String::new(),
        })?;
        let some_checks = ChecksContext {
            on: true,
            passed: 1,
            total: 2,
            failures: "- `bbox(10, 10, 10)`: X = 9 mm".into(),
            problem: "line 1: `x` is not a check".into(),
        };
        for captions in [
            None,
            Some(vec![ViewCaption {
                view: "front".into(),
                text: "a cube".into(),
            }]),
        ] {
            for (last_round, checks) in [
                (false, some_checks.clone()),
                (true, ChecksContext::default()),
            ] {
                self.critique(&CritiqueContext {
                    prompt: "a cube",
                    facts: "- one solid".into(),
                    captions: captions.clone(),
                    numbered_code: number_lines("result = x\n"),
                    last_round,
                    checks,
                })?;
            }
        }
        self.edit(&EditContext {
            prompt: "a cube",
            request: "make it taller",
            facts: "- one solid".into(),
            numbered_code: number_lines("result = x\n"),
            checks: true,
        })?;
        self.reminder(Want::Code, "")?;
        self.reminder(Want::Verdict, "")?;
        self.reminder(Want::Checks, "- `bbox(10, 10, 10)`: X = 9 mm")?;
        Ok(())
    }

    fn fill(&self, name: &str, context: impl Serialize) -> Result<String, PromptError> {
        let origin = self
            .origins
            .iter()
            .find(|(n, _)| n == name)
            .map_or(name.to_string(), |(_, o)| o.clone());
        let template = self
            .env
            .get_template(name)
            .map_err(|e| template_error(&origin, &e))?;
        let text = template
            .render(minijinja::Value::from(minijinja::value::Serde(context)))
            .map_err(|e| template_error(&origin, &e))?;
        Ok(text.trim().to_string())
    }

    /// The system prompt.
    pub fn system(&self, context: &SystemContext) -> Result<String, PromptError> {
        self.fill("system.md", context)
    }

    /// The first request for code; `checks`: ask for the request's checks too.
    pub fn generate(&self, prompt: &str, checks: bool) -> Result<String, PromptError> {
        self.fill("generate.md", minijinja::context! { prompt, checks })
    }

    /// The repair prompt, for code that failed.
    pub fn repair(&self, context: &RepairContext) -> Result<String, PromptError> {
        self.fill("repair.md", context)
    }

    /// The critique prompt, for an attempt that built.
    pub fn critique(&self, context: &CritiqueContext) -> Result<String, PromptError> {
        self.fill("critique.md", context)
    }

    /// The edit prompt, for a change in words.
    pub fn edit(&self, context: &EditContext) -> Result<String, PromptError> {
        self.fill("edit.md", context)
    }

    /// The reminder for what a reply lacked; `failures`: the failing checks,
    /// for [`Want::Checks`].
    pub fn reminder(&self, want: Want, failures: &str) -> Result<String, PromptError> {
        self.fill(
            "reminder.md",
            minijinja::context! {
                want => minijinja::Value::from(minijinja::value::Serde(want)),
                failures,
            },
        )
    }
}

fn template_error(origin: &str, err: &minijinja::Error) -> PromptError {
    let mut message = err.to_string();
    if let Some(line) = err.line() {
        if !message.contains("line") {
            message = format!("line {line}: {message}");
        }
    }
    PromptError::Template {
        origin: origin.to_string(),
        message,
    }
}

/// The part as asked for so far: the prompt, then the follow-up changes in
/// order. Repairs and critiques after an edit judge against this text.
pub fn with_edits(prompt: &str, edits: &[String]) -> String {
    if edits.is_empty() {
        return prompt.to_string();
    }
    let mut text = format!(
        "{prompt}\n\nChanged since, in this order (a later change wins where two disagree):"
    );
    for (i, edit) in edits.iter().enumerate() {
        text.push_str(&format!("\n{}. {}", i + 1, edit.trim()));
    }
    text
}

/// Code with line numbers ("  7 | x = 1"), so the LLM can match a
/// traceback's line to the code.
pub fn number_lines(code: &str) -> String {
    let count = code.lines().count().max(1);
    let width = count.to_string().len();
    code.lines()
        .enumerate()
        .map(|(i, line)| format!("{:>width$} | {line}", i + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: &str = "import FreeCAD as App\nimport Part\n\nblock = Part.makeBox(40, 20, 10)\nresult = block.cut(hole)\n";

    #[test]
    fn the_system_prompt() {
        let prompts = Prompts::builtin();
        let text = prompts
            .system(&SystemContext {
                allowed_modules: vec!["FreeCAD".into(), "Part".into(), "math".into()],
                checks: true,
                agent: false,
            })
            .unwrap();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn the_generate_prompt() {
        let prompts = Prompts::builtin();
        insta::assert_snapshot!(prompts
            .generate(
                "a 40 × 20 × 10 mm block with a 6 mm hole through the middle",
                true
            )
            .unwrap());
    }

    #[test]
    fn the_repair_prompt_carries_numbered_code_the_error_and_its_line() {
        let prompts = Prompts::builtin();
        let text = prompts
            .repair(&RepairContext {
                prompt: "a block with a hole",
                numbered_code: number_lines(CODE),
                error: ErrorContext {
                    kind: "exception".into(),
                    message: "Traceback (most recent call last):\n  File \"code.py\", line 5, in <module>\nNameError: name 'hole' is not defined".into(),
                    line: Some(5),
                },
                output: String::new(),
                checks: "- `bbox(40, 20, 10)`\n- `holes(6, count=1, through=True)`".into(),
            })
            .unwrap();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn the_critique_prompt_with_and_without_captions() {
        let prompts = Prompts::builtin();
        let facts = "- bounding box: 40.00 × 20.00 × 10.00 mm\n- one valid solid";
        let captions = ["front", "back", "left", "right", "top", "bottom", "iso"]
            .iter()
            .map(|v| ViewCaption {
                view: v.to_string(),
                text: format!("a gray block seen from the {v}"),
            })
            .collect();
        let with = prompts
            .critique(&CritiqueContext {
                prompt: "a block with a hole",
                facts: facts.into(),
                captions: Some(captions),
                numbered_code: number_lines(CODE),
                last_round: false,
                checks: ChecksContext {
                    on: true,
                    passed: 1,
                    total: 2,
                    failures: "- `holes(6, count=1, through=True)`: 0 hole(s) match, expected 1 through hole(s) of ⌀6 ± 0.1; holes found: 1 × ⌀5 through along Z".into(),
                    problem: String::new(),
                },
            })
            .unwrap();
        insta::assert_snapshot!("critique_with_captions", with);
        let without = prompts
            .critique(&CritiqueContext {
                prompt: "a block with a hole",
                facts: facts.into(),
                captions: None,
                numbered_code: number_lines(CODE),
                last_round: true,
                checks: ChecksContext::default(),
            })
            .unwrap();
        insta::assert_snapshot!("critique_without_captions_last_round", without);
    }

    #[test]
    fn the_edit_prompt_carries_the_earlier_changes_the_code_and_the_request() {
        let prompts = Prompts::builtin();
        let so_far = with_edits(
            "a 40 x 20 x 10 mm block with a 6 mm hole",
            &["make the hole 8 mm".to_string()],
        );
        let text = prompts
            .edit(&EditContext {
                prompt: &so_far,
                request: "add 2 mm fillets on the top edges",
                facts: "- one solid, 40 x 20 x 10 mm".into(),
                numbered_code: number_lines(CODE),
                checks: true,
            })
            .unwrap();
        assert!(text.contains("1. make the hole 8 mm"), "{text}");
        assert!(
            text.contains("4 | block = Part.makeBox(40, 20, 10)"),
            "{text}"
        );
        insta::assert_snapshot!(text);
    }

    #[test]
    fn the_reminders() {
        let prompts = Prompts::builtin();
        insta::assert_snapshot!("reminder_code", prompts.reminder(Want::Code, "").unwrap());
        insta::assert_snapshot!(
            "reminder_verdict",
            prompts.reminder(Want::Verdict, "").unwrap()
        );
        let failures = "- `holes(12)`: 0 hole(s) match, expected at least 1 hole(s) of ⌀12 ± 0.1; holes found: 1 × ⌀10 through along Z";
        insta::assert_snapshot!(
            "reminder_checks",
            prompts.reminder(Want::Checks, failures).unwrap()
        );
    }

    #[test]
    fn numbering_is_right_aligned_and_counts_from_one() {
        let code: String = (1..=10).map(|i| format!("x{i} = {i}\n")).collect();
        let numbered = number_lines(&code);
        assert!(
            numbered.starts_with(" 1 | x1 = 1\n 2 | x2 = 2"),
            "{numbered}"
        );
        assert!(numbered.ends_with("\n10 | x10 = 10"), "{numbered}");
    }

    #[test]
    fn a_users_folder_overrides_some_templates_and_typos_are_caught_at_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("generate.md"), "Part: {{ prompt }}!").unwrap();
        let prompts = Prompts::load(dir.path()).unwrap();
        assert_eq!(prompts.generate("a cube", true).unwrap(), "Part: a cube!");
        assert!(prompts
            .system(&SystemContext {
                allowed_modules: vec![],
                checks: false,
                agent: false,
            })
            .unwrap()
            .contains("FreeCAD"));

        std::fs::write(dir.path().join("repair.md"), "Fix:\n{{ numbered_cod }}\n").unwrap();
        let err = Prompts::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("repair.md"), "{err}");
        assert!(
            err.contains("line 2") || err.contains("numbered_cod"),
            "{err}"
        );

        std::fs::write(dir.path().join("repair.md"), "{% if x %}unclosed").unwrap();
        let err = Prompts::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("repair.md"), "{err}");

        let empty = tempfile::tempdir().unwrap();
        let err = Prompts::load(empty.path()).unwrap_err().to_string();
        assert!(err.contains("none of system.md"), "{err}");
    }

    #[test]
    fn a_users_critique_prompt_under_its_former_name_is_still_used() {
        let dir = tempfile::tempdir().unwrap();
        let builtin = TEMPLATES
            .iter()
            .find(|(n, _)| *n == "critique.md")
            .unwrap()
            .1;
        std::fs::write(dir.path().join("refine.md"), builtin).unwrap();
        let prompts = Prompts::load(dir.path()).unwrap();
        let origin = prompts
            .origins
            .iter()
            .find(|(name, _)| name == "critique.md")
            .map(|(_, origin)| origin.clone())
            .unwrap();
        assert!(origin.ends_with("refine.md"), "{origin}");
    }
}
