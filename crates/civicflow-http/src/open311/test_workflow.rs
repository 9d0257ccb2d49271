//! A small workflow for the Open311 unit tests: opened by civic apps, one stage with a
//! deadline, the opening fields each test needs.

use civicflow_core::domain::org::roles;
use civicflow_core::domain::workflow::Definition;

/// The workflow `name`, opened by `open311_client` with these `[[open.fields]]`; its first
/// stage is due within 1 working day.
pub fn with_fields(name: &str, fields: &str) -> Definition {
    let text = format!(
        r#"
id = "test-request"
version = 1
name = "{name}"
initial_stage = "open"

[open]
roles = ["open311_client"]
scope = "any"
{fields}

[[stages]]
id = "open"
name = "open"
deadline = {{ within = "1 working day" }}

[[stages]]
id = "done"
name = "done"
terminal = true

[[actions]]
id = "close"
name = "close"
from = ["open"]
to = "done"
roles = ["grid_worker"]
scope = "any"
"#
    );
    Definition::from_toml(&text, roles::ALL).expect("a valid definition")
}
