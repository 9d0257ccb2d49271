//! Administration as events, end to end on a real store: a workflow published in the log is
//! known after a reopen with no file at hand (and by the read side's shared registry at once),
//! versions only go up and a published version never changes, a workflow may name a role only
//! once it is defined, and retiring a unit is refused while it leads an open case, naming it.
//!
//! Guards against a definition that lives only in an embedder's files (its cases unreadable
//! after a restart without them), against two different definitions behind one version, and
//! against a retired unit that still leads work nobody can reach.

use civicflow_core::domain::case::Channel;
use civicflow_core::domain::fields::FieldValue;
use civicflow_core::domain::org::OrgCommand;
use civicflow_core::domain::workflow::{DefinitionRef, WorkflowId};
use civicflow_core::domain::Rejection;
use civicflow_core::engine::{Command, Engine, Outcome, SubmitError, WorkflowOrigin};
use civicflow_core::vault::MasterKey;
use civicflow_core::{CaseId, ManualClock, Role, Timestamp};

use super::engine::{acting, build_chart, fields, open_engine, unit, Scratch};

/// A small workflow: a resident reports a broken street light, the grid repairs it.
fn street_lighting(version: u32, repair_role: &str) -> String {
    format!(
        r#"
id = "street-lighting"
version = {version}
name = "路灯报修 street lighting"
public = true
initial_stage = "reported"
contact_roles = ["grid_worker"]

[open]
roles = ["resident", "grid_worker"]
scope = "any"

[[stages]]
id = "reported"
name = "已报修 reported"

[[stages]]
id = "repaired"
name = "已修复 repaired"
terminal = true

[[actions]]
id = "repair"
name = "修复 repair"
from = ["reported"]
to = "repaired"
roles = ["{repair_role}"]
scope = "subtree"
"#
    )
}

fn admin() -> civicflow_core::domain::org::Acting {
    acting("wang.admin", "community_admin", "tonghui")
}

fn publish(engine: &Engine, toml: String) -> Result<Outcome, SubmitError> {
    engine.submit(&admin(), Command::PublishWorkflow { definition: toml })
}

fn rejected_field(result: Result<Outcome, SubmitError>) -> (String, String) {
    match result {
        Err(SubmitError::Rejected(Rejection::Invalid { field, reason })) => (field, reason),
        other => panic!("expected a refusal naming a field, got {other:?}"),
    }
}

fn open_lighting(engine: &Engine, version: Option<u32>) -> CaseId {
    let Outcome::Case { case, .. } = engine
        .submit(
            &acting("zhou.resident", "resident", "tonghui"),
            Command::OpenCase {
                workflow: WorkflowId::new("street-lighting").expect("an id"),
                version,
                unit: unit("grid-1"),
                title: "路灯不亮 the lamp at gate 3 is out".into(),
                description: String::new(),
                fields: fields(&[]),
                requester: None,
                channel: Channel::Api,
                place: None,
            },
        )
        .expect("opened")
    else {
        panic!("not a case outcome")
    };
    case
}

/// Monday 2026-03-02 09:00 in Asia/Shanghai.
fn monday() -> Timestamp {
    Timestamp::from_unix_seconds(1_772_413_200)
}

#[test]
fn a_published_workflow_outlives_a_restart_without_its_file() {
    let scratch = Scratch::new("admin-publish");
    let clock = ManualClock::new(monday());
    let key = MasterKey::generate().expect("randomness");
    let case = {
        let engine = open_engine(&scratch.0, &clock, &key);
        build_chart(&engine);
        // The read side's shared registry follows the publication at once.
        let shared = engine.shared_definitions().clone();
        let reference = DefinitionRef {
            id: WorkflowId::new("street-lighting").expect("an id"),
            version: 1,
        };
        assert!(shared.current().get(&reference).is_none());
        let Outcome::Workflow {
            workflow,
            version,
            events,
            ..
        } = publish(&engine, street_lighting(1, "grid_worker")).expect("published")
        else {
            panic!("not a workflow outcome")
        };
        assert_eq!(
            (workflow.as_str(), version, events),
            ("street-lighting", 1, 1)
        );
        assert!(shared.current().get(&reference).is_some());
        // The same definition again changes nothing.
        let Outcome::Workflow { events, .. } =
            publish(&engine, street_lighting(1, "grid_worker")).expect("idempotent")
        else {
            panic!("not a workflow outcome")
        };
        assert_eq!(events, 0);
        let case = open_lighting(&engine, None);
        engine
            .submit(
                &acting("li.grid1", "grid_worker", "grid-1"),
                Command::Act {
                    case,
                    action: "repair".into(),
                    fields: fields(&[]),
                    expected_version: None,
                },
            )
            .expect("repaired");
        case
    };
    // Reopened with the built-in definitions only: the log teaches it the rest.
    let engine = open_engine(&scratch.0, &clock, &key);
    let view = engine
        .case(&admin(), case)
        .expect("the case reads after a restart");
    assert_eq!(view.state.stage, "repaired");
    assert!(view.state.closed);
    let versions = engine
        .workflow_versions(&WorkflowId::new("street-lighting").expect("an id"))
        .expect("versions");
    assert_eq!(versions.len(), 1);
    match &versions[0].origin {
        WorkflowOrigin::Published { by, .. } => {
            assert_eq!(
                (by.id.as_str(), by.role.as_str(), by.unit.as_str()),
                ("wang.admin", "community_admin", "tonghui")
            );
        }
        other => panic!("published, not {other:?}"),
    }
    assert!(versions[0].latest);
    // A built-in one comes from the configuration.
    let built_in = engine
        .workflow_versions(&WorkflowId::new("service-request").expect("an id"))
        .expect("versions");
    assert!(built_in
        .iter()
        .all(|v| v.origin == WorkflowOrigin::Configured));
}

#[test]
fn versions_only_go_up_and_a_published_one_never_changes() {
    let scratch = Scratch::new("admin-versions");
    let clock = ManualClock::new(monday());
    let key = MasterKey::generate().expect("randomness");
    let engine = open_engine(&scratch.0, &clock, &key);
    build_chart(&engine);
    publish(&engine, street_lighting(2, "grid_worker")).expect("version 2");
    let head = engine.log().head();
    // Version 2 again, with other content.
    let (field, reason) = rejected_field(publish(&engine, street_lighting(2, "community_admin")));
    assert_eq!(field, "version");
    assert!(reason.contains("exists with other content"), "{reason}");
    // A lower one.
    let (field, reason) = rejected_field(publish(&engine, street_lighting(1, "grid_worker")));
    assert_eq!(field, "version");
    assert!(reason.contains("must be higher"), "{reason}");
    // A built-in id at a version it already has, with other content.
    let mut built_in = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/service-request.toml"),
    )
    .expect("the built-in file");
    built_in = built_in.replacen("public = true", "public = false", 1);
    let (field, _) = rejected_field(publish(&engine, built_in));
    assert_eq!(field, "version");
    // Not a definition: the key at fault is named.
    let (field, reason) = rejected_field(publish(
        &engine,
        street_lighting(3, "grid_worker").replace(
            "initial_stage = \"reported\"",
            "initial_stage = \"nowhere\"",
        ),
    ));
    assert_eq!(field, "initial_stage", "{reason}");
    let (field, _) = rejected_field(publish(
        &engine,
        street_lighting(3, "grid_worker").replace("name = \"路灯报修 street lighting\"\n", ""),
    ));
    assert_eq!(field, "name");
    // Nothing of it was written.
    assert_eq!(engine.log().head(), head);
    // A grid worker may not publish.
    let refused = engine.submit(
        &acting("li.grid1", "grid_worker", "grid-1"),
        Command::PublishWorkflow {
            definition: street_lighting(3, "grid_worker"),
        },
    );
    assert!(
        matches!(
            refused,
            Err(SubmitError::Rejected(Rejection::RoleNotAllowed { .. }))
        ),
        "{refused:?}"
    );
    // Cases stay pinned; migrating moves one.
    let case = open_lighting(&engine, None);
    publish(&engine, street_lighting(3, "grid_worker")).expect("version 3");
    let view = engine.case(&admin(), case).expect("reads");
    assert_eq!(view.state.workflow.version, 2);
    engine
        .submit(
            &admin(),
            Command::MigrateCase {
                case,
                to_version: 3,
            },
        )
        .expect("migrated");
    assert_eq!(
        engine
            .case(&admin(), case)
            .expect("reads")
            .state
            .workflow
            .version,
        3
    );
}

#[test]
fn a_workflow_names_a_role_only_once_it_is_defined() {
    let scratch = Scratch::new("admin-roles");
    let clock = ManualClock::new(monday());
    let key = MasterKey::generate().expect("randomness");
    let engine = open_engine(&scratch.0, &clock, &key);
    build_chart(&engine);
    let (field, reason) = rejected_field(publish(&engine, street_lighting(1, "street_sweeper")));
    assert_eq!(field, "actions.repair.roles", "{reason}");
    engine
        .submit(
            &admin(),
            Command::Org(OrgCommand::DefineRole {
                id: Role::new("street_sweeper").expect("a role"),
                name: "保洁员 street sweeper".into(),
            }),
        )
        .expect("defined");
    publish(&engine, street_lighting(1, "street_sweeper")).expect("published");
    // Granted and acting in it.
    engine
        .submit(
            &admin(),
            Command::Org(OrgCommand::GrantRole {
                actor: civicflow_core::ActorId::new("li.grid1").expect("an id"),
                role: Role::new("street_sweeper").expect("a role"),
                unit: unit("grid-1"),
            }),
        )
        .expect("granted");
    let case = open_lighting(&engine, None);
    engine
        .submit(
            &acting("li.grid1", "street_sweeper", "grid-1"),
            Command::Act {
                case,
                action: "repair".into(),
                fields: fields(&[]),
                expected_version: None,
            },
        )
        .expect("a defined role acts");
    // And after a reopen, the registry still accepts the role the log defined.
    drop(engine);
    let engine = open_engine(&scratch.0, &clock, &key);
    assert!(engine.case(&admin(), case).expect("reads").state.closed);
}

#[test]
fn retiring_a_unit_is_refused_while_it_leads_an_open_case() {
    let scratch = Scratch::new("admin-retire");
    let clock = ManualClock::new(monday());
    let key = MasterKey::generate().expect("randomness");
    let engine = open_engine(&scratch.0, &clock, &key);
    build_chart(&engine);
    let retire = |id: &str| {
        engine.submit(
            &admin(),
            Command::Org(OrgCommand::RetireUnit {
                id: unit(id),
                // Whatever a caller says, the engine looks the cases up itself.
                open_cases: Vec::new(),
            }),
        )
    };
    let Outcome::Case { case, .. } = engine
        .submit(
            &acting("liu.shop101", "shop_owner", "shop-yh-101"),
            Command::OpenCase {
                workflow: WorkflowId::new("service-request").expect("an id"),
                version: None,
                unit: unit("shop-yh-101"),
                title: "门口积水 water at the door".into(),
                description: String::new(),
                fields: fields(&[("category", FieldValue::Choice("environment".into()))]),
                requester: None,
                channel: Channel::Door,
                place: None,
            },
        )
        .expect("opened")
    else {
        panic!("not a case")
    };
    assert_eq!(
        engine
            .open_cases_led_by(&unit("shop-yh-101"))
            .expect("reads"),
        vec![case]
    );
    let (field, reason) = rejected_field(retire("shop-yh-101"));
    assert_eq!(field, "id");
    assert!(reason.contains(&case.to_string()), "{reason}");
    // A unit without cases retires; it then takes no case.
    let Outcome::Org { events, .. } = retire("shop-yh-102").expect("retired") else {
        panic!("not an org outcome")
    };
    assert_eq!(events, 1);
    assert!(
        engine
            .org()
            .unit(&unit("shop-yh-102"))
            .expect("kept")
            .retired
    );
    let refused = engine.submit(
        &acting("zhou.resident", "resident", "tonghui"),
        Command::OpenCase {
            workflow: WorkflowId::new("service-request").expect("an id"),
            version: None,
            unit: unit("shop-yh-102"),
            title: "书店关门 the shop is shut".into(),
            description: String::new(),
            fields: fields(&[("category", FieldValue::Choice("other".into()))]),
            requester: None,
            channel: Channel::Api,
            place: None,
        },
    );
    assert!(
        matches!(refused, Err(SubmitError::Rejected(_))),
        "{refused:?}"
    );
}
