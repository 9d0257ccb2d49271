//! The engine end to end on a real store: a service request through the whole 12345 loop, a
//! late step that escalates, a directive that reaches every shop, contact data that is
//! masked, viewed and erased, and an audit whose chain verifies.
//!
//! Guards against the engine and the pure domain disagreeing (a command accepted by `decide`
//! that the engine stores wrongly, a deadline that never fires or fires twice, progress that
//! does not roll up).

use std::sync::Arc;
use std::time::Duration;

use civicflow_core::calendar::{BusinessCalendar, Span, Zone};
use civicflow_core::domain::case::Channel;
use civicflow_core::domain::directive::DirectiveKind;
use civicflow_core::domain::fields::{FieldValue, Fields};
use civicflow_core::domain::org::{Acting, ActorKind, OrgCommand, Tier};
use civicflow_core::domain::Rejection;
use civicflow_core::engine::{
    Command, Contact, DeadlineOutcome, Engine, EngineConfig, Outcome, Requester, SubmitError,
    SubmitOptions,
};
use civicflow_core::vault::ContactDetails;
use civicflow_core::Clock;
use civicflow_core::{ActorId, ManualClock, Role, Timestamp, UnitId};

pub(crate) struct Scratch(pub(crate) std::path::PathBuf);

impl Scratch {
    pub(crate) fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("civicflow-engine-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The system, which sees every case (the tests read what the engine recorded).
pub(crate) fn system() -> Acting {
    Acting::system(unit("tonghui"))
}

pub(crate) fn unit(id: &str) -> UnitId {
    UnitId::new(id).expect("valid unit")
}

pub(crate) fn acting(actor: &str, role: &str, unit_id: &str) -> Acting {
    Acting::new(
        ActorId::new(actor).expect("valid"),
        Role::new(role).expect("valid"),
        unit(unit_id),
    )
}

/// Monday 2026-03-02 09:00 in Asia/Shanghai (01:00 UTC): a plain working day.
fn monday_morning() -> Timestamp {
    Timestamp::from_unix_seconds(1_772_413_200)
}

pub(crate) fn fields(pairs: &[(&str, FieldValue)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

pub(crate) fn build_chart(engine: &Engine) {
    let system = Acting::system(unit("tonghui"));
    let units = [
        ("tonghui", "通惠社区", Tier::Community, None),
        ("grid-1", "第一网格", Tier::Grid, Some("tonghui")),
        ("grid-2", "第二网格", Tier::Grid, Some("tonghui")),
        ("yiwu-heart", "义乌之心", Tier::Enterprise, Some("grid-1")),
        ("intime", "银泰百货", Tier::Enterprise, Some("grid-2")),
        (
            "shop-yh-101",
            "义乌之心 101 茶饮",
            Tier::Shop,
            Some("yiwu-heart"),
        ),
        (
            "shop-yh-102",
            "义乌之心 102 书店",
            Tier::Shop,
            Some("yiwu-heart"),
        ),
        ("shop-it-201", "银泰 201 服饰", Tier::Shop, Some("intime")),
        (
            "market-regulation",
            "市场监管所",
            Tier::Department,
            Some("tonghui"),
        ),
    ];
    for (id, name, tier, parent) in units {
        engine
            .submit(
                &system,
                Command::Org(OrgCommand::CreateUnit {
                    id: unit(id),
                    name: name.into(),
                    tier,
                    parent: parent.map(unit),
                }),
            )
            .expect("unit created");
    }
    let people = [
        ("wang.admin", "community_admin", "tonghui"),
        ("li.grid1", "grid_worker", "grid-1"),
        ("zhao.grid2", "grid_worker", "grid-2"),
        ("chen.liaison", "enterprise_liaison", "yiwu-heart"),
        ("liu.shop101", "shop_owner", "shop-yh-101"),
        ("he.shop102", "shop_owner", "shop-yh-102"),
        ("sun.shop201", "shop_owner", "shop-it-201"),
        ("zhou.resident", "resident", "tonghui"),
        ("qian.officer", "department_officer", "market-regulation"),
    ];
    for (actor, role, unit_id) in people {
        let id = ActorId::new(actor).expect("valid");
        engine
            .submit(
                &system,
                Command::Org(OrgCommand::RegisterActor {
                    id: id.clone(),
                    name: actor.into(),
                    kind: ActorKind::Person,
                }),
            )
            .expect("actor registered");
        engine
            .submit(
                &system,
                Command::Org(OrgCommand::GrantRole {
                    actor: id,
                    role: Role::new(role).expect("valid"),
                    unit: unit(unit_id),
                }),
            )
            .expect("role granted");
    }
}

pub(crate) fn open_engine(
    dir: &std::path::Path,
    clock: &ManualClock,
    key: &civicflow_core::vault::MasterKey,
) -> Engine {
    Engine::open(
        EngineConfig::new(dir)
            .clock(Arc::new(clock.clone()))
            .master_key(key.clone()),
    )
    .expect("engine opens")
}

#[test]
fn a_service_request_runs_the_whole_loop_and_audits() {
    let scratch = Scratch::new("loop");
    let clock = ManualClock::new(monday_morning());
    let key = civicflow_core::vault::MasterKey::generate().expect("randomness");
    let engine = open_engine(&scratch.0, &clock, &key);
    build_chart(&engine);

    let resident = acting("zhou.resident", "resident", "tonghui");
    let details = ContactDetails::default()
        .with_name("周敏")
        .expect("valid")
        .with_phone("138 0000 1234")
        .expect("valid");
    let Outcome::Case { case, stage, .. } = engine
        .submit(
            &resident,
            Command::OpenCase {
                workflow: "service-request".parse_workflow(),
                version: None,
                unit: unit("tonghui"),
                title: "路灯不亮 street light out".into(),
                description: "The light at Xinmalu Impression has been out for three nights."
                    .into(),
                fields: fields(&[("category", FieldValue::Choice("public_facilities".into()))]),
                requester: Some(Requester::New(details)),
                channel: Channel::Door,
                place: None,
            },
        )
        .expect("opened")
    else {
        panic!("a case outcome")
    };
    assert_eq!(stage, "received");

    // Masked for everyone by default; the resident sees their own case.
    let view = engine
        .case(&resident, case)
        .expect("the requester sees their case");
    match &view.contact {
        Contact::Masked(masked) => assert_eq!(masked.name.as_deref(), Some("周*")),
        other => panic!("expected masked contact, got {other:?}"),
    }
    // A shop owner elsewhere does not see the case at all.
    let outsider = acting("sun.shop201", "shop_owner", "shop-it-201");
    assert!(matches!(
        engine.case(&outsider, case),
        Err(SubmitError::Rejected(Rejection::NotFound { .. }))
    ));

    let admin = acting("wang.admin", "community_admin", "tonghui");
    let grid1 = acting("li.grid1", "grid_worker", "grid-1");
    let act = |who: &Acting, action: &str, f: Fields| {
        engine.submit(
            who,
            Command::Act {
                case,
                action: action.into(),
                fields: f,
                expected_version: None,
            },
        )
    };

    // A shop owner may not dispatch; the grid worker of grid 1 may not act before dispatch.
    let refused = act(
        &outsider,
        "dispatch",
        fields(&[("unit", FieldValue::Unit(unit("grid-1")))]),
    )
    .expect_err("not allowed");
    assert!(
        matches!(
            refused,
            SubmitError::Rejected(Rejection::NotGranted { .. } | Rejection::RoleNotAllowed { .. })
        ),
        "{refused}"
    );
    let refused = act(&grid1, "sign_for", Fields::new()).expect_err("not dispatched yet");
    assert!(
        matches!(
            refused,
            SubmitError::Rejected(Rejection::ActionNotInStage { .. })
        ),
        "{refused}"
    );
    let refused = act(&admin, "dispatch", Fields::new()).expect_err("unit missing");
    assert!(
        matches!(&refused, SubmitError::Rejected(Rejection::FieldMissing { field, .. }) if field == "unit"),
        "{refused}"
    );

    clock.advance(Duration::from_secs(30 * 60));
    act(
        &admin,
        "dispatch",
        fields(&[("unit", FieldValue::Unit(unit("grid-1")))]),
    )
    .expect("dispatched");
    clock.advance(Duration::from_secs(20 * 60));
    act(&grid1, "sign_for", Fields::new()).expect("signed for");
    act(
        &grid1,
        "add_co_handler",
        fields(&[("unit", FieldValue::Unit(unit("yiwu-heart")))]),
    )
    .expect("co-handler");
    let liaison = acting("chen.liaison", "enterprise_liaison", "yiwu-heart");
    clock.advance(Duration::from_secs(3600));
    act(
        &liaison,
        "reply",
        fields(&[
            ("outcome", FieldValue::Choice("resolved".into())),
            ("result", FieldValue::Text("灯已修好 repaired".into())),
        ]),
    )
    .expect("the co-handler may reply");
    clock.advance(Duration::from_secs(3600));
    act(
        &resident,
        "rate",
        fields(&[("rating", FieldValue::Rating(5))]),
    )
    .expect("rated by the requester");
    act(&grid1, "close", Fields::new()).expect("closed");

    let view = engine.case(&admin, case).expect("visible to the community");
    assert!(view.state.closed);
    assert_eq!(view.state.rating, Some(5));
    assert_eq!(view.state.lead, unit("grid-1"));
    let refused = act(
        &grid1,
        "urge",
        fields(&[("note", FieldValue::Text("?".into()))]),
    )
    .expect_err("closed");
    assert!(
        matches!(refused, SubmitError::Rejected(Rejection::CaseClosed { .. })),
        "{refused}"
    );

    // The unmasked view is for the allowed roles, and is itself an event.
    let details = engine
        .view_contact(&admin, case, "return visit call")
        .expect("allowed")
        .expect("present");
    assert_eq!(details.name(), Some("周敏"));
    assert!(
        engine.view_contact(&liaison, case, "curious").is_err(),
        "an enterprise liaison may not unmask"
    );

    let audit = engine.audit(&system(), case).expect("audit");
    assert!(audit.chain.is_intact(), "{audit}");
    assert!(
        audit.deadlines.iter().all(|d| matches!(
            d.outcome,
            DeadlineOutcome::Met { .. } | DeadlineOutcome::Running
        )),
        "{audit}"
    );
    assert!(
        audit
            .steps
            .iter()
            .any(|s| s.summary.contains("contact data viewed")),
        "{audit}"
    );
    assert_eq!(audit.steps.last().map(|s| s.closed_after), Some(true));
    let text = audit.to_string();
    assert!(text.contains("dispatch: received → dispatched"), "{text}");

    // State as of an earlier version.
    let early = engine
        .case_at_version(
            &system(),
            case,
            civicflow_core::Version::new(2).expect("nz"),
        )
        .expect("read");
    assert_eq!(early.stage, "received");

    // Erasing the requester: the vault forgets them, reads show erased, the chain holds.
    let person = view.state.requester.expect("has a requester");
    engine
        .submit(
            &admin,
            Command::ErasePerson {
                person,
                reason: "requester asked (PIPL art. 47)".into(),
            },
        )
        .expect("erased");
    assert_eq!(
        engine.case(&admin, case).expect("visible").contact,
        Contact::Erased
    );
    assert!(engine
        .view_contact(&admin, case, "after erasure")
        .expect("allowed")
        .is_none());
    assert!(engine.log().verify().expect("runs").is_intact());
}

trait ParseWorkflow {
    fn parse_workflow(&self) -> civicflow_core::domain::workflow::WorkflowId;
}

impl ParseWorkflow for str {
    fn parse_workflow(&self) -> civicflow_core::domain::workflow::WorkflowId {
        civicflow_core::domain::workflow::WorkflowId::new(self).expect("valid workflow id")
    }
}

#[test]
fn a_late_step_escalates_once_also_across_a_restart() {
    let scratch = Scratch::new("escalation");
    let clock = ManualClock::new(monday_morning());
    let key = civicflow_core::vault::MasterKey::generate().expect("randomness");
    let engine = open_engine(&scratch.0, &clock, &key);
    build_chart(&engine);
    let grid1 = acting("li.grid1", "grid_worker", "grid-1");
    let Outcome::Case { case, .. } = engine
        .submit(
            &grid1,
            neighbourhood_case_at_grid1("噪音扰民 noise at night"),
        )
        .expect("opened")
    else {
        panic!("a case")
    };
    engine
        .submit(
            &grid1,
            Command::Act {
                case,
                action: "dispatch".into(),
                fields: fields(&[("unit", FieldValue::Unit(unit("yiwu-heart")))]),
                expected_version: None,
            },
        )
        .expect("dispatched to the enterprise");
    // Nobody signs for it. Sign-for has 2 working hours: 1 to the reminder, 2 to the
    // escalation, 4 to the breach.
    clock.advance(Duration::from_secs(90 * 60));
    let taken = engine.run_due_deadlines().expect("runs");
    assert_eq!(
        taken.iter().map(|t| t.step.as_str()).collect::<Vec<_>>(),
        ["remind"]
    );
    assert!(
        engine.run_due_deadlines().expect("runs").is_empty(),
        "nothing twice"
    );

    // The engine is down while the escalation falls due; it is taken on restart, once.
    drop(engine);
    clock.advance(Duration::from_secs(60 * 60));
    let engine = open_engine(&scratch.0, &clock, &key);
    let audit = engine.audit(&system(), case).expect("audit");
    let steps: Vec<_> = audit
        .deadlines
        .iter()
        .flat_map(|d| d.steps.iter().map(|(s, u, _)| (s.as_str(), u.to_string())))
        .collect();
    assert_eq!(
        steps,
        [
            ("remind", "yiwu-heart".to_owned()),
            ("escalate", "grid-1".to_owned())
        ],
        "{audit}"
    );
    assert!(engine.run_due_deadlines().expect("runs").is_empty());
    drop(engine);
    let engine = open_engine(&scratch.0, &clock, &key);
    assert_eq!(
        engine
            .audit(&system(), case)
            .expect("audit")
            .deadlines
            .iter()
            .map(|d| d.steps.len())
            .sum::<usize>(),
        2
    );

    // Signing for it late misses the deadline.
    let liaison = acting("chen.liaison", "enterprise_liaison", "yiwu-heart");
    engine
        .submit(
            &liaison,
            Command::Act {
                case,
                action: "sign_for".into(),
                fields: Fields::new(),
                expected_version: None,
            },
        )
        .expect("signed");
    let audit = engine.audit(&system(), case).expect("audit");
    assert!(
        audit
            .deadlines
            .iter()
            .any(|d| matches!(d.outcome, DeadlineOutcome::Missed { .. })),
        "{audit}"
    );
    assert!(audit.chain.is_intact());
}

#[test]
fn a_directive_reaches_every_shop_and_rolls_up() {
    let scratch = Scratch::new("directive");
    let clock = ManualClock::new(monday_morning());
    let key = civicflow_core::vault::MasterKey::generate().expect("randomness");
    let engine = open_engine(&scratch.0, &clock, &key);
    build_chart(&engine);
    let admin = acting("wang.admin", "community_admin", "tonghui");
    let Outcome::Directive {
        directive, parts, ..
    } = engine
        .submit(
            &admin,
            Command::IssueDirective {
                title: "消费维权宣传 consumer-rights week".into(),
                body: "Put up the notice and train staff.".into(),
                kind: DirectiveKind::ConsumerProtection,
                unit: unit("tonghui"),
                within: Span::WorkingDays(3),
            },
        )
        .expect("issued")
    else {
        panic!("a directive")
    };
    // 2 grids, 2 enterprises, 3 shops (the department is outside the chain).
    assert_eq!(parts, 7);
    let progress = engine
        .directive(&system(), directive)
        .expect("read")
        .progress;
    assert_eq!(
        (progress.units, progress.reported, progress.complete),
        (7, 0, false)
    );

    let report = |who: &Acting| {
        engine.submit(
            who,
            Command::ReportDirective {
                directive,
                note: "done".into(),
            },
        )
    };
    for who in [
        acting("liu.shop101", "shop_owner", "shop-yh-101"),
        acting("he.shop102", "shop_owner", "shop-yh-102"),
        acting("chen.liaison", "enterprise_liaison", "yiwu-heart"),
        acting("li.grid1", "grid_worker", "grid-1"),
    ] {
        report(&who).expect("reported");
    }
    let progress = engine
        .directive(&system(), directive)
        .expect("read")
        .progress;
    let grid1 = progress
        .parts
        .iter()
        .find(|p| p.unit == unit("grid-1"))
        .expect("grid-1 has a part");
    assert!(
        grid1.complete,
        "grid 1 is done when its enterprise and shops are"
    );
    assert_eq!((grid1.units, grid1.units_reported), (4, 4));
    let grid2 = progress
        .parts
        .iter()
        .find(|p| p.unit == unit("grid-2"))
        .expect("grid-2 has a part");
    assert!(!grid2.complete);
    assert!(!progress.complete);

    // A shop reports only its own part.
    let refused = engine
        .submit(
            &acting("sun.shop201", "shop_owner", "shop-it-201"),
            Command::AcknowledgeDirective {
                directive,
                note: String::new(),
            },
        )
        .map(|_| ());
    assert!(refused.is_ok(), "a shop acknowledges its own part");

    // Three working days pass: the parts not reported escalate to the unit above.
    clock.advance(Duration::from_secs(4 * 24 * 3600));
    let taken = engine.run_due_deadlines().expect("runs");
    assert_eq!(
        taken.len(),
        3,
        "grid-2, intime and shop-it-201 escalate: {taken:?}"
    );
    assert!(engine.run_due_deadlines().expect("runs").is_empty());
}

#[test]
fn business_calendar_counts_the_adjusted_working_saturday() {
    // Friday 2026-02-13 16:00 (08:00 UTC): 2 working hours run into the adjusted working
    // Saturday 2026-02-14, not into Monday.
    let friday = Timestamp::from_unix_seconds(1_770_969_600);
    let due = BusinessCalendar::china().add(friday, Span::WorkingHours(2));
    assert_eq!(due.to_string(), "2026-02-14T01:00:00.000000Z");
}

#[test]
fn workflows_load_from_a_directory_and_bad_ones_are_named() {
    use civicflow_core::domain::workflow::{DefinitionRegistry, BUILT_IN};
    use civicflow_core::engine::load_workflows;
    let scratch = Scratch::new("workflows");
    std::fs::create_dir_all(&scratch.0).expect("dir");
    // Version 2 of the service request, and a broken file.
    let v2 = BUILT_IN[0].1.replace("version = 1", "version = 2");
    std::fs::write(scratch.0.join("a-service-request-v2.toml"), v2).expect("write");
    let mut registry = DefinitionRegistry::built_in();
    let loaded = load_workflows(&scratch.0, &mut registry).expect("loads");
    assert_eq!(
        loaded.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["service-request@2"]
    );
    let broken = BUILT_IN[0].1.replace("version = 1", "version = 3").replace(
        "initial_stage = \"received\"",
        "initial_stage = \"nowhere\"",
    );
    std::fs::write(scratch.0.join("b-broken.toml"), broken).expect("write");
    let err = load_workflows(&scratch.0, &mut registry)
        .expect_err("the broken file is refused")
        .to_string();
    assert!(
        err.contains("b-broken.toml") && err.contains("the initial stage nowhere is not declared"),
        "{err}"
    );
}

#[test]
fn tokens_are_issued_for_real_grants_by_administrators_and_revoked_as_events() {
    use civicflow_core::domain::access::{AccessCommand, TokenHash, TokenId};
    let scratch = Scratch::new("tokens");
    let clock = ManualClock::new(monday_morning());
    let key = civicflow_core::vault::MasterKey::generate().expect("randomness");
    let engine = open_engine(&scratch.0, &clock, &key);
    build_chart(&engine);
    let admin = acting("wang.admin", "community_admin", "tonghui");
    let worker = acting("li.grid1", "grid_worker", "grid-1");
    let hash = TokenHash([7; 32]);
    let issue = |by: &Acting, hash: TokenHash, who: Acting| {
        engine.submit(
            by,
            Command::Access(AccessCommand::Issue {
                hash,
                acting: who,
                name: "grid-1 tablet".into(),
            }),
        )
    };

    // A grid worker may not issue tokens; nor may anyone issue one for a grant the actor
    // does not hold.
    assert!(matches!(
        issue(&worker, hash, worker.clone()),
        Err(SubmitError::Rejected(Rejection::RoleNotAllowed { .. }))
    ));
    assert!(issue(
        &admin,
        hash,
        acting("li.grid1", "community_admin", "grid-1")
    )
    .is_err());

    // The administrator issues one; the log holds the hash, never a secret.
    let Outcome::Token { token, .. } = issue(&admin, hash, worker.clone()).expect("issued") else {
        panic!("a token outcome");
    };
    assert_eq!(token, TokenId::of_hash(&hash));
    assert!(
        issue(&admin, hash, worker.clone()).is_err(),
        "the same hash twice"
    );
    let tokens = engine.tokens().expect("read");
    let grant = &tokens.tokens[&token];
    assert_eq!(grant.acting, worker);
    assert_eq!(grant.revoked_at, None);

    // Revoked: still listed, with when.
    engine
        .submit(
            &admin,
            Command::Access(AccessCommand::Revoke {
                token: token.clone(),
                reason: "tablet lost".into(),
            }),
        )
        .expect("revoked");
    let tokens = engine.tokens().expect("read");
    assert!(tokens.tokens[&token].revoked_at.is_some());
    assert_eq!(tokens.valid().count(), 0);
    let history = engine
        .log()
        .read_stream(
            &civicflow_core::domain::access::access_stream(),
            civicflow_core::Version::FIRST,
            10,
        )
        .expect("read");
    assert_eq!(
        history
            .iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        ["TokenIssued", "TokenRevoked"]
    );
    assert_eq!(history[0].actor.role.as_str(), "community_admin");
}

#[test]
fn a_session_ended_through_the_engine_is_ended_in_its_tokens_and_after_a_restart() {
    use civicflow_core::domain::access::{
        access_stream, AccessCommand, SessionNonce, TokenHash, TokenId,
    };
    let scratch = Scratch::new("session-ended");
    let clock = ManualClock::new(monday_morning());
    let key = civicflow_core::vault::MasterKey::generate().expect("randomness");
    let engine = open_engine(&scratch.0, &clock, &key);
    build_chart(&engine);
    let admin = acting("wang.admin", "community_admin", "tonghui");
    let worker = acting("li.grid1", "grid_worker", "grid-1");
    let other = acting("zhao.grid2", "grid_worker", "grid-2");
    let hash = TokenHash([9; 32]);
    engine
        .submit(
            &admin,
            Command::Access(AccessCommand::Issue {
                hash,
                acting: worker.clone(),
                name: "grid-1 dashboard".into(),
            }),
        )
        .expect("issued");
    let token = TokenId::of_hash(&hash);
    let session = SessionNonce([0x5e; 16]);
    let expires_at = clock.now().saturating_add(Duration::from_secs(8 * 3600));
    let end = |session: SessionNonce| {
        Command::Access(AccessCommand::EndSession {
            token: token.clone(),
            session,
            expires_at,
        })
    };
    assert!(!engine
        .tokens()
        .expect("read")
        .session_ended(&token, &session));

    // Another grid worker may not sign the worker out; nothing is written.
    assert!(matches!(
        engine.submit_with(&other, end(session), SubmitOptions::default()),
        Err(SubmitError::Rejected(Rejection::RoleNotAllowed { .. }))
    ));
    assert!(!engine
        .tokens()
        .expect("read")
        .session_ended(&token, &session));

    // The holder signs out.
    clock.advance(Duration::from_secs(60));
    let outcome = engine
        .submit_with(&worker, end(session), SubmitOptions::default())
        .expect("ended");
    let Outcome::Token { token: ended, .. } = outcome else {
        panic!("a token outcome, not {outcome:?}");
    };
    assert_eq!(ended, token);
    let tokens = engine.tokens().expect("read");
    assert!(tokens.session_ended(&token, &session));
    assert!(!tokens.session_ended(&token, &SessionNonce([0x5f; 16])));
    // The token itself stays valid: its other sessions go on.
    assert_eq!(tokens.valid().count(), 1);

    // Again: nothing more is written.
    engine
        .submit_with(&worker, end(session), SubmitOptions::default())
        .expect("still fine");
    let types = |engine: &Engine| {
        engine
            .log()
            .read_stream(&access_stream(), civicflow_core::Version::FIRST, 10)
            .expect("read")
            .into_iter()
            .map(|e| (e.event_type.as_str().to_owned(), e.actor.id.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        types(&engine),
        [
            ("TokenIssued".to_owned(), "wang.admin".to_owned()),
            ("SessionEnded".to_owned(), "li.grid1".to_owned()),
        ]
    );

    // The log is what holds it: a restart reads it back.
    drop(engine);
    let engine = open_engine(&scratch.0, &clock, &key);
    assert!(engine
        .tokens()
        .expect("read")
        .session_ended(&token, &session));
}

/// Opening a service request about the neighbourhood at grid 1, by staff.
fn neighbourhood_case_at_grid1(title: &str) -> Command {
    Command::OpenCase {
        workflow: "service-request".parse_workflow(),
        version: None,
        unit: unit("grid-1"),
        title: title.into(),
        description: String::new(),
        fields: fields(&[("category", FieldValue::Choice("neighbourhood".into()))]),
        requester: None,
        channel: Channel::Staff,
        place: None,
    }
}

/// Opening a service request about a broken bench at grid 1, through the API channel.
fn broken_bench_at_grid1(title: &str) -> Command {
    Command::OpenCase {
        workflow: "service-request".parse_workflow(),
        version: None,
        unit: unit("grid-1"),
        title: title.into(),
        description: "Broken bench.".into(),
        fields: fields(&[("category", FieldValue::Choice("public_facilities".into()))]),
        requester: None,
        channel: Channel::Api,
        place: None,
    }
}

#[test]
fn an_opening_retried_with_its_idempotency_key_opens_one_case() {
    use civicflow_core::IdempotencyKey;
    let scratch = Scratch::new("idempotent-open");
    let clock = ManualClock::new(monday_morning());
    let key = civicflow_core::vault::MasterKey::generate().expect("randomness");
    let engine = open_engine(&scratch.0, &clock, &key);
    build_chart(&engine);
    let worker = acting("li.grid1", "grid_worker", "grid-1");
    let open = broken_bench_at_grid1;
    let idem = IdempotencyKey::new("tablet-7:req-1").expect("valid");
    let first = engine
        .submit_with_key(&worker, open("长椅坏了"), idem.clone())
        .expect("opened");
    let head = engine.log().head().map(|h| h.position);
    let again = engine
        .submit_with_key(&worker, open("长椅坏了"), idem.clone())
        .expect("answered again");
    // The first answer again (the same case, stage, version, event count and position),
    // and nothing written.
    assert_eq!(again, first, "a retry answers the first answer");
    assert!(matches!(first, Outcome::Case { events, .. } if events > 0));
    assert_eq!(engine.log().head().map(|h| h.position), head);
    // The same key for another case is refused, naming the key.
    assert!(matches!(
        engine.submit_with_key(&worker, open("另一个"), idem.clone()),
        Err(SubmitError::Rejected(Rejection::IdempotencyKeyReused { key })) if key == "tablet-7:req-1"
    ));
}

#[test]
fn async_openings_answer_like_sync_ones_and_concurrent_retries_open_one_case() {
    use civicflow_core::IdempotencyKey;
    let scratch = Scratch::new("async-open");
    let clock = ManualClock::new(monday_morning());
    let key = civicflow_core::vault::MasterKey::generate().expect("randomness");
    let engine = std::sync::Arc::new(open_engine(&scratch.0, &clock, &key));
    build_chart(&engine);
    let worker = acting("li.grid1", "grid_worker", "grid-1");
    let open = broken_bench_at_grid1;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // Without a key: the same answer as the blocking path, and the case is there.
        let Outcome::Case {
            case,
            stage,
            version,
            events,
            ..
        } = engine
            .open_case_async(&worker, open("长椅坏了"), SubmitOptions::default())
            .await
            .expect("opened")
        else {
            panic!("a case outcome");
        };
        assert_eq!(version.map(|v| v.get()), Some(events as u64));
        let view = engine.case(&worker, case).expect("loaded");
        assert_eq!(view.state.stage, stage);

        // A refusal is the domain's, and writes nothing.
        let head = engine.log().head().map(|h| h.position);
        // (li.grid1 holds no grant at grid-2.)
        let stranger = acting("li.grid1", "grid_worker", "grid-2");
        assert!(matches!(
            engine
                .open_case_async(&stranger, open("x"), SubmitOptions::default())
                .await,
            Err(SubmitError::Rejected(_))
        ));
        assert_eq!(engine.log().head().map(|h| h.position), head);

        // Eight concurrent openings with one key: one case, seven answers of it.
        let idem = IdempotencyKey::new("tablet-9:req-1").expect("valid");
        let before = engine.log().head().map_or(0, |h| h.position.get());
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (engine, worker, idem) = (engine.clone(), worker.clone(), idem.clone());
            let command = open("路灯不亮");
            tasks.push(tokio::spawn(async move {
                engine
                    .open_case_async(&worker, command, SubmitOptions::keyed(idem))
                    .await
            }));
        }
        let mut answers = Vec::new();
        for task in tasks {
            let answer = task.await.expect("joined");
            let Ok(outcome @ Outcome::Case { .. }) = answer else {
                panic!("every retry answers the case: {answer:?}");
            };
            answers.push(outcome);
        }
        // Every answer is the first answer, and one opening's events were written.
        assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
        let Outcome::Case { events, .. } = answers[0] else {
            unreachable!("checked above")
        };
        let after = engine.log().head().map_or(0, |h| h.position.get());
        assert_eq!(after - before, events as u64, "one opening wrote");
        // The key for another case is refused, naming it.
        assert!(matches!(
            engine
                .open_case_async(&worker, open("另一个"), SubmitOptions::keyed(idem))
                .await,
            Err(SubmitError::Rejected(
                Rejection::IdempotencyKeyReused { .. }
            ))
        ));
    });
}

#[test]
fn the_deadline_index_snapshot_only_saves_reading_and_never_changes_what_is_due() {
    let scratch = Scratch::new("deadline-snapshot");
    let other = Scratch::new("deadline-snapshot-other");
    let clock = ManualClock::new(monday_morning());
    let key = civicflow_core::vault::MasterKey::generate().expect("randomness");
    let snapshot = scratch.0.join("deadline-index.snapshot");
    let open_some_cases = |engine: &Engine, n: usize| {
        let grid1 = acting("li.grid1", "grid_worker", "grid-1");
        for i in 0..n {
            let Outcome::Case { case, .. } = engine
                .submit(&grid1, neighbourhood_case_at_grid1(&format!("case {i}")))
                .expect("opened")
            else {
                panic!("a case")
            };
            if i % 2 == 0 {
                engine
                    .submit(
                        &grid1,
                        Command::Act {
                            case,
                            action: "dispatch".into(),
                            fields: fields(&[("unit", FieldValue::Unit(unit("yiwu-heart")))]),
                            expected_version: None,
                        },
                    )
                    .expect("dispatched");
            }
        }
    };

    // Another store, with a snapshot of its own.
    let engine = open_engine(&other.0, &clock, &key);
    build_chart(&engine);
    open_some_cases(&engine, 3);
    drop(engine);
    let foreign = std::fs::read(other.0.join("deadline-index.snapshot")).expect("its snapshot");

    let engine = open_engine(&scratch.0, &clock, &key);
    build_chart(&engine);
    open_some_cases(&engine, 6);
    clock.advance(Duration::from_secs(90 * 60));
    assert!(
        !engine.run_due_deadlines().expect("runs").is_empty(),
        "reminders"
    );
    engine.save_deadline_index().expect("saved");
    let older = std::fs::read(&snapshot).expect("a snapshot");
    open_some_cases(&engine, 4);
    let expected = engine.pending_deadline_steps().expect("pending");
    assert!(expected.0 > 0);
    drop(engine);
    assert!(snapshot.exists(), "closing writes the snapshot");
    let newest = std::fs::read(&snapshot).expect("a snapshot");
    assert_ne!(newest, older);

    let mut damaged = newest.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x20;
    let variants: [(&str, Option<Vec<u8>>); 5] = [
        ("the newest snapshot", Some(newest.clone())),
        ("no snapshot", None),
        ("a damaged snapshot", Some(damaged)),
        ("an older snapshot (a crash after it)", Some(older)),
        ("another store's snapshot", Some(foreign)),
    ];
    for (what, bytes) in variants {
        match &bytes {
            Some(bytes) => std::fs::write(&snapshot, bytes).expect("written"),
            None => {
                let _ = std::fs::remove_file(&snapshot);
            }
        }
        let engine = open_engine(&scratch.0, &clock, &key);
        assert_eq!(
            engine.pending_deadline_steps().expect("pending"),
            expected,
            "{what}"
        );
        drop(engine);
    }
    // And the steps due next are taken once, from a reopened engine.
    clock.advance(Duration::from_secs(24 * 3600));
    let engine = open_engine(&scratch.0, &clock, &key);
    assert!(
        engine.run_due_deadlines().expect("runs").is_empty(),
        "taken on open"
    );
    let (pending, _) = engine.pending_deadline_steps().expect("pending");
    assert!(
        pending < expected.0,
        "steps were taken: {pending} of {}",
        expected.0
    );
}

#[test]
fn a_place_is_recorded_with_the_opening_and_checked_field_by_field() {
    use civicflow_core::domain::case::Place;
    let scratch = Scratch::new("place");
    let clock = ManualClock::new(monday_morning());
    let key = civicflow_core::vault::MasterKey::generate().expect("randomness");
    let engine = open_engine(&scratch.0, &clock, &key);
    build_chart(&engine);
    let worker = acting("li.grid1", "grid_worker", "grid-1");
    let open_at = |place: Option<Place>| {
        let Command::OpenCase {
            workflow,
            version,
            unit,
            title,
            description,
            fields,
            requester,
            channel,
            ..
        } = broken_bench_at_grid1("路灯不亮")
        else {
            unreachable!("an opening")
        };
        engine.submit(
            &worker,
            Command::OpenCase {
                workflow,
                version,
                unit,
                title,
                description,
                fields,
                requester,
                channel,
                place: place.map(Box::new),
            },
        )
    };
    let place = Place {
        lat: Some(29.3069),
        long: Some(120.0751),
        address: Some("稠城街道通惠社区 3 幢".into()),
        address_id: Some("addr-17".into()),
        media_url: Some("https://example.org/photo.jpg".into()),
    };
    let Ok(Outcome::Case { case, events, .. }) = open_at(Some(place.clone())) else {
        panic!("opened")
    };
    assert_eq!(events, 3, "opening, place, deadline");
    let view = engine.case(&worker, case).expect("read");
    assert_eq!(view.state.place.as_ref(), Some(&place));
    let history = engine.history(&system(), case).expect("history");
    assert_eq!(history[1].recorded.event_type.as_str(), "PlaceRecorded");
    assert!(
        history[1].summary.contains("稠城街道通惠社区"),
        "{}",
        history[1].summary
    );

    // An empty place records nothing; a bad one is refused, naming the field, and nothing is
    // written.
    let Ok(Outcome::Case { events, .. }) = open_at(Some(Place::default())) else {
        panic!("opened")
    };
    assert_eq!(events, 2);
    let head = engine.log().head().map(|h| h.position);
    for (bad, field) in [
        (
            Place {
                lat: Some(91.0),
                ..place.clone()
            },
            "place.lat",
        ),
        (
            Place {
                long: Some(-180.5),
                ..place.clone()
            },
            "place.long",
        ),
        (
            Place {
                lat: Some(f64::NAN),
                ..place.clone()
            },
            "place.lat",
        ),
        (
            Place {
                long: None,
                ..place.clone()
            },
            "place.long",
        ),
        (
            Place {
                lat: None,
                ..place.clone()
            },
            "place.lat",
        ),
        (
            Place {
                address: Some("   ".into()),
                ..place.clone()
            },
            "place.address",
        ),
        (
            Place {
                address: Some("街".repeat(501)),
                ..place.clone()
            },
            "place.address",
        ),
        (
            Place {
                address_id: Some("x".repeat(201)),
                ..place.clone()
            },
            "place.address_id",
        ),
        (
            Place {
                media_url: Some("file:///etc/passwd".into()),
                ..place.clone()
            },
            "place.media_url",
        ),
    ] {
        match open_at(Some(bad.clone())) {
            Err(SubmitError::Rejected(Rejection::FieldInvalid { field: f, .. })) => {
                assert_eq!(f, field, "{bad:?}");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert_eq!(engine.log().head().map(|h| h.position), head);
}

/// A list item links only cases its editor can see, and a hidden case is refused with the
/// answer of a missing one (issue 13: every case a command names is checked, not only the one
/// it acts on; `Aggregate::cases_named`).
#[test]
fn a_list_item_links_only_cases_its_editor_can_see() {
    use civicflow_core::domain::lists::{ListCommand, ListKind};
    let scratch = Scratch::new("list-link-scope");
    let clock = ManualClock::new(monday_morning());
    let key = civicflow_core::vault::MasterKey::generate().expect("randomness");
    let engine = open_engine(&scratch.0, &clock, &key);
    build_chart(&engine);
    let grid1 = acting("li.grid1", "grid_worker", "grid-1");
    let grid2 = acting("zhao.grid2", "grid_worker", "grid-2");
    let case_of = |outcome: Outcome| match outcome {
        Outcome::Case { case, .. } => case,
        other => panic!("a case outcome, got {other:?}"),
    };
    let hidden = case_of(
        engine
            .submit(&grid2, {
                let mut open = neighbourhood_case_at_grid1("二网格的事");
                if let Command::OpenCase { unit: at, .. } = &mut open {
                    *at = unit("grid-2");
                }
                open
            })
            .expect("grid 2 files at grid 2"),
    );
    let visible = case_of(
        engine
            .submit(&grid1, neighbourhood_case_at_grid1("一网格的事"))
            .expect("grid 1 files at grid 1"),
    );
    let item = match engine
        .submit(
            &grid1,
            Command::AddListItem {
                list: ListKind::Projects,
                title: "楼道微更新".into(),
                description: String::new(),
                unit: unit("grid-1"),
            },
        )
        .expect("item added")
    {
        Outcome::ListItem { item, .. } => item,
        other => panic!("a list item outcome, got {other:?}"),
    };
    let link = |case| Command::ListItem {
        item,
        command: ListCommand::Link { case },
    };
    let missing =
        civicflow_core::CaseId::parse("0192f3a0-0000-7000-8000-00000000dead").expect("a case id");
    let head = engine.log().head().map(|h| h.position);
    let refusal = |case: civicflow_core::CaseId| match engine.submit(&grid1, link(case)) {
        Err(SubmitError::Rejected(rejection)) => {
            rejection.to_string().replace(&case.to_string(), "<case>")
        }
        other => panic!("linking {case} must be refused, got {other:?}"),
    };
    assert_eq!(
        refusal(hidden),
        refusal(missing),
        "hidden answers like missing"
    );
    assert_eq!(refusal(missing), "field case: case <case> does not exist");
    assert_eq!(
        engine.log().head().map(|h| h.position),
        head,
        "nothing written"
    );
    engine
        .submit(&grid1, link(visible))
        .expect("a visible case links");
}

/// Every command kind takes an idempotency key (issue 13; docs/engine.md, "Retries"): a retry
/// with the same key and command answers the first answer and writes nothing, before and
/// after a restart; the same key with another command is refused naming the key; keys are
/// per actor; a refused command leaves its key free.
#[test]
fn every_command_retried_with_its_key_takes_effect_once() {
    use civicflow_core::domain::lists::ListKind;
    use civicflow_core::domain::merchants::StandingCommand;
    use civicflow_core::IdempotencyKey;
    let scratch = Scratch::new("keyed-commands");
    let clock = ManualClock::new(monday_morning());
    let master = civicflow_core::vault::MasterKey::generate().expect("randomness");
    let key = |text: &str| IdempotencyKey::new(text).expect("a valid key");
    let admin = acting("wang.admin", "community_admin", "tonghui");
    let grid1 = acting("li.grid1", "grid_worker", "grid-1");
    let grid2 = acting("zhao.grid2", "grid_worker", "grid-2");
    let deduct = |points: u8| Command::Standing {
        unit: unit("shop-yh-101"),
        command: StandingCommand::Deduct {
            points,
            reason: "占道经营 goods on the pavement".into(),
        },
    };
    let head = |engine: &Engine| engine.log().head().map(|h| h.position);

    let (case, answers) = {
        let engine = open_engine(&scratch.0, &clock, &master);
        build_chart(&engine);
        engine
            .submit(
                &admin,
                Command::Standing {
                    unit: unit("shop-yh-101"),
                    command: StandingCommand::StartCycle {
                        cycle: "2026".into(),
                    },
                },
            )
            .expect("a cycle starts");
        let case = match engine
            .submit(&grid1, neighbourhood_case_at_grid1("楼道堆物"))
            .expect("opened")
        {
            Outcome::Case { case, .. } => case,
            other => panic!("a case outcome, got {other:?}"),
        };
        let urge = || Command::Act {
            case,
            action: "dispatch".into(),
            fields: fields(&[("unit", FieldValue::Unit(unit("yiwu-heart")))]),
            expected_version: None,
        };
        let directive = || Command::IssueDirective {
            title: "消防通道检查 fire lanes".into(),
            body: String::new(),
            kind: DirectiveKind::StaffTraining,
            unit: unit("grid-1"),
            within: Span::WorkingDays(2),
        };
        let item = || Command::AddListItem {
            list: ListKind::Projects,
            title: "楼道微更新".into(),
            description: String::new(),
            unit: unit("grid-1"),
        };
        let mut answers = Vec::new();
        for (name, who, command) in [
            ("points-1", &grid1, deduct(3)),
            ("action-1", &grid1, urge()),
            ("directive-1", &grid1, directive()),
            ("item-1", &grid1, item()),
        ] {
            let first = engine
                .submit_with_key(who, command.clone(), key(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let before = head(&engine);
            let again = engine
                .submit_with_key(who, command, key(name))
                .unwrap_or_else(|e| panic!("{name} again: {e}"));
            assert_eq!(again, first, "{name}: a retry answers the first answer");
            assert_eq!(head(&engine), before, "{name}: a retry wrote");
            answers.push((name, first));
        }
        // The same key with another request: refused, naming the key, nothing written.
        let before = head(&engine);
        match engine.submit_with_key(&grid1, deduct(4), key("points-1")) {
            Err(SubmitError::Rejected(Rejection::IdempotencyKeyReused { key })) => {
                assert_eq!(key, "points-1");
            }
            other => panic!("another deduction under points-1 must be refused, got {other:?}"),
        }
        assert_eq!(head(&engine), before);
        // Keys are per actor: grid 2's points-1 is its own (and deducts at its own shop).
        let theirs = Command::Standing {
            unit: unit("shop-it-201"),
            command: StandingCommand::Deduct {
                points: 3,
                reason: "占道经营 goods on the pavement".into(),
            },
        };
        engine
            .submit(
                &admin,
                Command::Standing {
                    unit: unit("shop-it-201"),
                    command: StandingCommand::StartCycle {
                        cycle: "2026".into(),
                    },
                },
            )
            .expect("a cycle starts");
        engine
            .submit_with_key(&grid2, theirs, key("points-1"))
            .expect("another actor's key is another key");
        assert_ne!(head(&engine), before, "grid 2's deduction was written");
        // A refused command leaves its key free: grid 2 cannot deduct at grid 1's shop, then
        // uses the key for what it may do.
        assert!(matches!(
            engine.submit_with_key(&grid2, deduct(1), key("free-1")),
            Err(SubmitError::Rejected(_))
        ));
        let second = Command::Standing {
            unit: unit("shop-it-201"),
            command: StandingCommand::Deduct {
                points: 1,
                reason: "乱扔垃圾 litter".into(),
            },
        };
        engine
            .submit_with_key(&grid2, second, key("free-1"))
            .expect("the key was left free");
        (case, answers)
    };
    let _ = case;

    // After a restart the keys are still there: every retry answers its first answer.
    let engine = open_engine(&scratch.0, &clock, &master);
    for (name, first) in answers {
        let command = match name {
            "points-1" => deduct(3),
            "action-1" => Command::Act {
                case,
                action: "dispatch".into(),
                fields: fields(&[("unit", FieldValue::Unit(unit("yiwu-heart")))]),
                expected_version: None,
            },
            "directive-1" => Command::IssueDirective {
                title: "消防通道检查 fire lanes".into(),
                body: String::new(),
                kind: DirectiveKind::StaffTraining,
                unit: unit("grid-1"),
                within: Span::WorkingDays(2),
            },
            _ => Command::AddListItem {
                list: ListKind::Projects,
                title: "楼道微更新".into(),
                description: String::new(),
                unit: unit("grid-1"),
            },
        };
        let before = head(&engine);
        let again = engine
            .submit_with_key(&grid1, command, key(name))
            .unwrap_or_else(|e| panic!("{name} after a restart: {e}"));
        assert_eq!(again, first, "{name}: after a restart, the first answer");
        assert_eq!(
            head(&engine),
            before,
            "{name}: a retry after a restart wrote"
        );
    }
}

/// Tracing a request through the log (issue 13): every event a command writes carries the
/// caller's correlation id; what an event sets off carries that event's id as its cause: a
/// merge's other half, a directive's parts, a deadline's reminder (its `DeadlineSet`), and the
/// audit names the step that caused each.
#[test]
fn a_request_and_what_its_events_set_off_are_traced_through_the_log() {
    use civicflow_core::engine::SubmitOptions;
    use civicflow_core::{CausationId, CorrelationId, RecordedEvent, Version};
    let scratch = Scratch::new("tracing");
    let clock = ManualClock::new(monday_morning());
    let key = civicflow_core::vault::MasterKey::generate().expect("randomness");
    let engine = open_engine(&scratch.0, &clock, &key);
    build_chart(&engine);
    let grid1 = acting("li.grid1", "grid_worker", "grid-1");
    let stream_of = |stream: &civicflow_core::StreamId| -> Vec<RecordedEvent> {
        engine
            .log()
            .read_stream(stream, Version::FIRST, 1000)
            .expect("read")
    };
    let case_of = |outcome: Outcome| match outcome {
        Outcome::Case { case, .. } => case,
        other => panic!("a case outcome, got {other:?}"),
    };

    // The caller's correlation id is on every event of its request.
    let request = CorrelationId::from_uuid(uuid::Uuid::from_u128(0x0123_4567_89ab_cdef));
    let a = case_of(
        engine
            .submit_with(
                &grid1,
                neighbourhood_case_at_grid1("重复: 楼道堆物"),
                SubmitOptions::default().correlated(request),
            )
            .expect("opened"),
    );
    let opened = stream_of(&a.stream());
    assert!(opened.len() >= 2, "an opening and its deadline");
    assert!(
        opened.iter().all(|e| e.correlation_id == request),
        "{opened:?}"
    );

    // A merge: the other case's DuplicateMerged is caused by this case's MergedInto.
    let b = case_of(
        engine
            .submit(&grid1, neighbourhood_case_at_grid1("楼道堆物"))
            .expect("opened"),
    );
    engine
        .submit(
            &grid1,
            Command::Act {
                case: a,
                action: "merge".into(),
                fields: fields(&[("into", FieldValue::Case(b))]),
                expected_version: None,
            },
        )
        .expect("merged");
    let merged_into = stream_of(&a.stream())
        .into_iter()
        .find(|e| e.event_type.as_str() == "MergedInto")
        .expect("MergedInto");
    let duplicate = stream_of(&b.stream())
        .into_iter()
        .find(|e| e.event_type.as_str() == "DuplicateMerged")
        .expect("DuplicateMerged");
    assert_eq!(
        duplicate.causation_id,
        Some(CausationId::from(merged_into.event_id)),
        "the merge's other half names the MergedInto as its cause"
    );
    assert_eq!(
        duplicate.correlation_id, merged_into.correlation_id,
        "one request"
    );

    // A directive's parts are caused by its issuing.
    let Outcome::Directive { directive, .. } = engine
        .submit(
            &grid1,
            Command::IssueDirective {
                title: "消防通道检查".into(),
                body: String::new(),
                kind: DirectiveKind::StaffTraining,
                unit: unit("grid-1"),
                within: Span::WorkingDays(2),
            },
        )
        .expect("issued")
    else {
        panic!("a directive outcome")
    };
    let issued = stream_of(&directive.stream());
    let cause = Some(CausationId::from(issued[0].event_id));
    let part = stream_of(&directive.part_stream(1));
    assert!(!part.is_empty(), "the issuing unit's part");
    assert!(part.iter().all(|e| e.causation_id == cause), "{part:?}");

    // A deadline's reminder is caused by the DeadlineSet that set it, and the audit says so.
    let c = case_of(
        engine
            .submit(&grid1, neighbourhood_case_at_grid1("噪音扰民"))
            .expect("opened"),
    );
    engine
        .submit(
            &grid1,
            Command::Act {
                case: c,
                action: "dispatch".into(),
                fields: fields(&[("unit", FieldValue::Unit(unit("yiwu-heart")))]),
                expected_version: None,
            },
        )
        .expect("dispatched");
    clock.advance(Duration::from_secs(90 * 60));
    let taken = engine.run_due_deadlines().expect("runs");
    assert!(
        taken.iter().any(|t| t.step.as_str() == "remind"),
        "{taken:?}"
    );
    let events = stream_of(&c.stream());
    let reminder = events
        .iter()
        .rev()
        .find(|e| e.event_type.as_str() == "DeadlineStepReached")
        .expect("the reminder");
    let set = events
        .iter()
        .rev()
        .find(|e| e.event_type.as_str() == "DeadlineSet" && e.position < reminder.position)
        .expect("the deadline it came from");
    assert_eq!(reminder.causation_id, Some(CausationId::from(set.event_id)));
    let audit = engine.audit(&system(), c).expect("audit");
    let step = audit
        .steps
        .iter()
        .find(|s| s.version == reminder.version)
        .expect("the reminder's step");
    assert_eq!(step.caused_by_version, Some(set.version));
    assert!(
        audit
            .to_string()
            .contains(&format!("(caused by #{})", set.version)),
        "{audit}"
    );
}

/// Opens a neighbourhood case at grid 1 and walks it: dispatched to 义乌之心 half an hour
/// later, signed for an hour after that. Answers the case and the moments it was opened,
/// dispatched and signed for.
fn a_case_walked_through_three_moments(
    engine: &Engine,
    clock: &ManualClock,
) -> (civicflow_core::CaseId, [Timestamp; 3]) {
    let grid1 = acting("li.grid1", "grid_worker", "grid-1");
    let opened = clock.now();
    let Outcome::Case { case, .. } = engine
        .submit(&grid1, neighbourhood_case_at_grid1("积水 standing water"))
        .expect("opened")
    else {
        panic!("a case")
    };
    clock.advance(Duration::from_secs(30 * 60));
    let dispatched = clock.now();
    engine
        .submit(
            &grid1,
            Command::Act {
                case,
                action: "dispatch".into(),
                fields: fields(&[("unit", FieldValue::Unit(unit("yiwu-heart")))]),
                expected_version: None,
            },
        )
        .expect("dispatched");
    clock.advance(Duration::from_secs(60 * 60));
    let signed = clock.now();
    engine
        .submit(
            &acting("chen.liaison", "enterprise_liaison", "yiwu-heart"),
            Command::Act {
                case,
                action: "sign_for".into(),
                fields: Fields::new(),
                expected_version: None,
            },
        )
        .expect("signed for");
    (case, [opened, dispatched, signed])
}

#[test]
fn a_case_reads_as_of_each_version_and_each_moment_and_not_before_or_beyond() {
    use civicflow_core::engine::AsOf;
    use civicflow_core::Version;

    let scratch = Scratch::new("as-of");
    let clock = ManualClock::new(monday_morning());
    let key = civicflow_core::vault::MasterKey::generate().expect("randomness");
    let engine = open_engine(&scratch.0, &clock, &key);
    build_chart(&engine);
    let (case, [opened, dispatched, signed]) = a_case_walked_through_three_moments(&engine, &clock);
    let now = engine.case(&system(), case).expect("visible").state;
    let current = now.version.expect("has events");

    // Each version: the state the case had right after that event, as the audit's own fold
    // records it step by step.
    let audit = engine.audit(&system(), case).expect("audit");
    assert_eq!(audit.steps.len() as u64, current.get());
    for step in &audit.steps {
        let then = engine
            .case_at_version(&system(), case, step.version)
            .expect("a version of the case");
        assert_eq!(then.version, Some(step.version));
        assert_eq!(
            (&then.stage, &then.lead, then.closed),
            (&step.stage_after, &step.lead_after, step.closed_after),
            "version {}",
            step.version
        );
    }
    let first = engine
        .case_at_version(&system(), case, Version::FIRST)
        .expect("version 1");
    assert_eq!(
        (first.stage.as_str(), first.lead.as_str()),
        ("received", "grid-1")
    );
    assert_eq!(
        engine
            .case_at_version(&system(), case, current)
            .expect("now"),
        now
    );

    // Moments: at an event's own time it is included; between two events the earlier holds.
    let at = |t: Timestamp| engine.case_at_time(&system(), case, t).expect("a moment");
    assert_eq!(at(opened).stage, "received");
    let between = at(dispatched.saturating_add(Duration::from_secs(10 * 60)));
    assert_eq!(
        (between.stage.as_str(), between.lead.as_str()),
        ("dispatched", "yiwu-heart")
    );
    assert_eq!(between.updated_at, dispatched);
    assert_eq!(at(signed), now);
    assert_eq!(
        at(signed.saturating_add(Duration::from_secs(86_400))),
        now,
        "a moment after the last event is the case as it is"
    );

    // Before its opening the case did not exist: not found, saying as of when.
    let before = engine
        .case_at_time(
            &system(),
            case,
            Timestamp::from_unix_micros(opened.as_unix_micros() - 1),
        )
        .expect_err("not yet opened");
    match &before {
        SubmitError::Rejected(Rejection::NotFound { what: "case", id }) => {
            assert!(
                id.starts_with(&case.to_string()) && id.contains("as of"),
                "{id}"
            );
        }
        other => panic!("expected not found, got {other}"),
    }
    // Past its current version: refused, naming the version and the range there is.
    let beyond = engine
        .case_at_version(&system(), case, current.next())
        .expect_err("no such version yet");
    match &beyond {
        SubmitError::Rejected(Rejection::Invalid { field, reason }) => {
            assert_eq!(field, "version");
            assert!(reason.contains(&format!("from 1 to {current}")), "{reason}");
        }
        other => panic!("expected an invalid version, got {other}"),
    }

    // Who may not see the case now may not read its past either; the answer is the same.
    let outsider = acting("sun.shop201", "shop_owner", "shop-it-201");
    for as_of in [AsOf::Version(Version::FIRST), AsOf::Time(dispatched)] {
        assert!(
            matches!(
                engine.case_as_of(&outsider, case, as_of),
                Err(SubmitError::Rejected(Rejection::NotFound { what: "case", ref id })) if *id == case.to_string()
            ),
            "{as_of:?}"
        );
    }
    // A past state offers no actions, and says which version the case is at now.
    let liaison = acting("chen.liaison", "enterprise_liaison", "yiwu-heart");
    assert!(
        !engine
            .case(&liaison, case)
            .expect("visible")
            .available_actions
            .is_empty(),
        "the liaison may act on the case now"
    );
    let then = engine
        .case_as_of(&liaison, case, AsOf::Time(dispatched))
        .expect("visible now, so its past too");
    assert_eq!(then.view.state.stage, "dispatched");
    assert!(then.view.available_actions.is_empty());
    assert_eq!(then.current_version, current);
}

#[test]
fn audits_write_every_time_in_the_calendars_zone() {
    let scratch = Scratch::new("audit-zone");
    let clock = ManualClock::new(monday_morning());
    let key = civicflow_core::vault::MasterKey::generate().expect("randomness");
    let engine = open_engine(&scratch.0, &clock, &key);
    build_chart(&engine);
    let grid1 = acting("li.grid1", "grid_worker", "grid-1");
    let Outcome::Case { case, .. } = engine
        .submit(&grid1, neighbourhood_case_at_grid1("噪音 noise"))
        .expect("opened")
    else {
        panic!("a case")
    };
    // The engine's calendar is China's, in Asia/Shanghai: Monday 2026-03-02 09:00 there.
    let audit = engine.audit(&system(), case).expect("audit");
    assert_eq!(audit.zone.name(), "Asia/Shanghai");
    let set = audit
        .steps
        .iter()
        .find(|s| s.event_type == "DeadlineSet")
        .expect("a deadline was set");
    // The due time in the summary is local, with its offset (it was UTC, `…000000Z`).
    assert!(
        set.summary.contains("+08:00") && !set.summary.contains('Z'),
        "{}",
        set.summary
    );
    let text = audit.to_string();
    assert!(text.contains("2026-03-02T09:00:00+08:00"), "{text}");
    assert!(!text.contains("000Z"), "{text}");
    // Read with another zone, the same log's audit writes the same instants there.
    let berlin = Zone::named("Europe/Berlin").expect("a zone");
    let there =
        civicflow_core::engine::audit_log(&**engine.log(), &engine.definitions(), &berlin, case)
            .expect("audit");
    assert_eq!(
        there
            .steps
            .iter()
            .map(|s| s.recorded_at)
            .collect::<Vec<_>>(),
        audit
            .steps
            .iter()
            .map(|s| s.recorded_at)
            .collect::<Vec<_>>()
    );
    let text = there.to_string();
    assert!(text.contains("2026-03-02T02:00:00+01:00"), "{text}");
    assert!(!text.contains("+08:00"), "{text}");
}

#[test]
fn the_audit_reads_each_steps_tier_from_the_chart_as_it_was_then() {
    let scratch = Scratch::new("audit-tier-then");
    let clock = ManualClock::new(monday_morning());
    let key = civicflow_core::vault::MasterKey::generate().expect("randomness");
    let engine = open_engine(&scratch.0, &clock, &key);
    build_chart(&engine);
    let grid1 = acting("li.grid1", "grid_worker", "grid-1");
    let Outcome::Case { case, .. } = engine
        .submit(&grid1, neighbourhood_case_at_grid1("噪音 noise"))
        .expect("opened")
    else {
        panic!("a case")
    };
    engine
        .submit(
            &grid1,
            Command::Act {
                case,
                action: "dispatch".into(),
                fields: fields(&[("unit", FieldValue::Unit(unit("yiwu-heart")))]),
                expected_version: None,
            },
        )
        .expect("dispatched");
    // The scheduler reminds as the system acting for `system`, which is no unit of the chart.
    clock.advance(Duration::from_secs(90 * 60));
    let reminded_at = clock.now();
    assert_eq!(engine.run_due_deadlines().expect("runs").len(), 1);
    // Later a unit with that id is created: from then on steps of `system` have its tier.
    engine
        .submit(
            &system(),
            Command::Org(OrgCommand::CreateUnit {
                id: unit("system"),
                name: "系统 system".into(),
                tier: Tier::Community,
                parent: None,
            }),
        )
        .expect("created");
    clock.advance(Duration::from_secs(60 * 60));
    assert_eq!(engine.run_due_deadlines().expect("runs").len(), 1);

    let tiers = |audit: &civicflow_core::engine::CaseAudit| {
        audit
            .steps
            .iter()
            .filter(|s| s.actor.unit.as_str() == "system")
            .map(|s| {
                let step = ["remind", "escalate", "breach"]
                    .into_iter()
                    .find(|step| s.summary.contains(&format!(": {step} →")));
                (step, s.tier)
            })
            .collect::<Vec<_>>()
    };
    let audit = engine.audit(&system(), case).expect("audit");
    assert_eq!(
        tiers(&audit),
        [
            (Some("remind"), None),
            (Some("escalate"), Some(Tier::Community)),
        ],
        "{audit}"
    );
    // The other steps keep theirs: grid 1 opened and dispatched it.
    assert_eq!(audit.steps[0].tier, Some(Tier::Grid), "{audit}");
    // The stopped store's audit reads the chart from the same log, the same way.
    let offline = civicflow_core::engine::audit_log(
        &**engine.log(),
        &engine.definitions(),
        engine.calendar().zone(),
        case,
    )
    .expect("audit");
    assert_eq!(offline.steps, audit.steps);

    // Up to the reminder: the steps until then, and no more; the deadline still running.
    let early = engine
        .audit_as_of(&system(), case, reminded_at)
        .expect("audit as of the reminder");
    assert_eq!(early.steps.as_slice(), &audit.steps[..early.steps.len()]);
    assert_eq!(tiers(&early).len(), 1, "{early}");
    assert!(early.steps.iter().all(|s| s.recorded_at <= reminded_at));
    assert!(
        early
            .deadlines
            .iter()
            .all(|d| d.steps.iter().all(|(step, _, _)| step.as_str() == "remind")),
        "{early}"
    );
    let offline_early = civicflow_core::engine::audit_log_as_of(
        &**engine.log(),
        &engine.definitions(),
        engine.calendar().zone(),
        case,
        reminded_at,
    )
    .expect("audit");
    assert_eq!(offline_early, early);
}
