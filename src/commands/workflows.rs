//! Publishing workflow definition files into a store: `civicflow serve --workflows DIR` (at
//! start) and `civicflow init --config FILE` (its `workflows`). Each file is a publication by
//! the system (`Command::PublishWorkflow`), so the store keeps it in its log and needs the file
//! no more: a file the store has already changes nothing, a changed file must carry a higher
//! version, and a file the core refuses stops the command naming the file and the key.

use std::path::{Path, PathBuf};

use civicflow::core::domain::org::Acting;
use civicflow::core::engine::{Command, Engine, Outcome, SubmitError};
use civicflow::core::UnitId;

/// What publishing one file did.
#[derive(Debug)]
pub struct Published {
    /// The file.
    pub file: PathBuf,
    /// `id@version`.
    pub reference: String,
    /// False: the store had this very definition already.
    pub changed: bool,
}

/// The `*.toml` files of `dir`, in name order.
///
/// # Errors
/// The directory cannot be read.
pub fn definition_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Publishes the definition in `text` (from `file`, for messages) as the system.
///
/// # Errors
/// The core's refusal, naming the file and the key at fault.
pub fn publish(engine: &Engine, file: &Path, text: String) -> Result<Published, String> {
    let system = Acting::system(UnitId::new("system").expect("a valid unit id"));
    let outcome = engine
        .submit(&system, Command::PublishWorkflow { definition: text })
        .map_err(|e| match e {
            SubmitError::Rejected(rejection) => format!("{}: {rejection}", file.display()),
            SubmitError::Engine(error) => format!("{}: the store failed: {error}", file.display()),
        })?;
    let Outcome::Workflow {
        workflow,
        version,
        events,
        ..
    } = outcome
    else {
        return Err(format!(
            "{}: publishing answered something else",
            file.display()
        ));
    };
    Ok(Published {
        file: file.to_owned(),
        reference: format!("{workflow}@{version}"),
        changed: events > 0,
    })
}

/// Publishes every definition file of `dir`, in name order; stops at the first the core
/// refuses (those before it stay published: each is its own event, and valid).
///
/// # Errors
/// The directory or a file cannot be read, or the core refuses a definition.
pub fn publish_dir(engine: &Engine, dir: &Path) -> Result<Vec<Published>, String> {
    let mut published = Vec::new();
    for file in definition_files(dir)? {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        published.push(publish(engine, &file, text)?);
    }
    Ok(published)
}
