//! Filing a request: pick a workflow (those the caller's role may open: its definition's
//! `open.roles`), then its intake form, generated from the workflow's intake fields, with the
//! title, the description, the unit it is filed at (the units the caller may file at, by the
//! org chart's own rule), the address and, optionally, the requester's contact details.
//!
//! The form is `POST /api/v1/cases`' body ([`CreateCase`]), checked by the same rules and
//! opened by the same function ([`cases::open_case`]); a refusal is the API's, shown beside
//! the field it names. The form carries an idempotency key, so that sending it twice (a
//! double click, a retry after a lost answer) opens one case.

use axum::extract::State;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use civicflow_core::domain::org::OrgChart;
use civicflow_core::domain::workflow::Definition;
use maud::{html, Markup};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::dashboard::render::form::{self, Names, UnitChoices};
use crate::dashboard::render::labels::{bi, named};
use crate::dashboard::render::{self, Page, PageError};
use crate::dashboard::session::{PageForm, Viewer};
use crate::error::{ApiError, ApiResult};
use crate::json::Validate;
use crate::policy::Policy;
use crate::request_id::WriteOptions;
use crate::routes::cases::{
    self, definition_for, CreateCase, PlaceBody, RequesterBody, DESCRIPTION_MAX, TITLE_MAX,
};
use crate::routes::reports::{query_param, QueryParams};
use crate::routes::{Content, RouteSpec};
use crate::state::AppState;

/// The prefix of the intake fields' input names (beside title, description, …).
const FIELDS: &str = "fields.";

/// The element ids of the intake form's inputs start with this.
const FORM_ID: &str = "nc";

/// The form's inputs that are not intake fields (the API's names for them).
const INPUTS: &[&str] = &[
    "workflow",
    "workflow_version",
    "title",
    "description",
    "unit_id",
    "idempotency_key",
    "place.address",
    "requester.name",
    "requester.phone",
];

/// The routes of filing a request.
pub(crate) fn routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            method: Method::GET,
            path: "/cases/new",
            policy: Policy::Authenticated,
            summary: "The new-request page: the workflows the caller's role may open, then (with ?workflow=ID) that workflow's intake form, generated from its intake fields. 403 for a workflow the caller's role may not open, 422 for one that does not exist.",
            tag: "dashboard",
            request: None,
            params: Some(new_params),
            response: None,
            content: Content::Html,
            status: 200,
            also: &[],
            errors: &[400, 403, 422],
            handler: get(new_page),
        },
        RouteSpec {
            method: Method::POST,
            path: "/cases",
            policy: Policy::Authenticated,
            summary: "File a request from the new-request page (a form: csrf, workflow, workflow_version, title, description, unit_id, idempotency_key, place.address, requester.name, requester.phone, and the workflow's intake fields as fields.NAME). The engine command of POST /api/v1/cases: 303 to the new case's page; a refusal shows the form again with the message beside the field at fault, with the API's status.",
            tag: "dashboard",
            request: Some(crate::openapi::schema_of::<NewCaseForm>),
            params: None,
            response: None,
            content: Content::Html,
            status: 303,
            also: &[],
            errors: &[404, 409, 415, 422, 503],
            handler: post(create_page),
        },
    ]
}

fn new_params() -> Value {
    json!([query_param(
        "workflow",
        false,
        json!({"type": "string"}),
        "the workflow to file in (its id): shows its intake form"
    )])
}

/// The new-request form (`POST /cases`).
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // Read as form pairs; the type describes the form in the OpenAPI document.
pub(crate) struct NewCaseForm {
    /// The CSRF token of the page the form is on (needed with the session cookie only).
    #[serde(default)]
    #[schemars(length(max = 64))]
    csrf: Option<String>,
    /// A workflow id (GET /api/v1/workflows).
    #[schemars(length(min = 1, max = 64))]
    workflow: String,
    /// The workflow's version the form was made from; default: the newest.
    #[serde(default)]
    #[schemars(regex(pattern = "^[0-9]*$"))]
    workflow_version: Option<String>,
    /// Its title.
    #[schemars(length(min = 1, max = TITLE_MAX))]
    title: String,
    /// What it is about.
    #[serde(default)]
    #[schemars(length(max = DESCRIPTION_MAX))]
    description: Option<String>,
    /// The unit it is filed at.
    #[schemars(length(min = 1, max = 64))]
    unit_id: String,
    /// A key the page makes: the same form sent twice opens one case.
    #[serde(default)]
    #[schemars(length(max = 64))]
    idempotency_key: Option<String>,
    /// A street address.
    #[serde(default, rename = "place.address")]
    #[schemars(length(max = 200))]
    place_address: Option<String>,
    /// The requester's name (kept encrypted; shown masked).
    #[serde(default, rename = "requester.name")]
    #[schemars(length(max = 200))]
    requester_name: Option<String>,
    /// The requester's phone number (kept encrypted; shown masked).
    #[serde(default, rename = "requester.phone")]
    #[schemars(length(max = 200))]
    requester_phone: Option<String>,
    /// The workflow's intake fields, as fields.NAME (GET /api/v1/workflows/{id}).
    #[serde(flatten)]
    fields: std::collections::BTreeMap<String, String>,
}

/// The workflows (their newest versions) the caller's role may open, by name.
pub(crate) fn openable(state: &AppState, viewer: &Viewer) -> Vec<std::sync::Arc<Definition>> {
    let role = &viewer.acting().role;
    let mut list: Vec<_> = state
        .engine()
        .definitions()
        .latest_all()
        .into_iter()
        .filter(|d| d.open.roles.contains(role))
        .cloned()
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

/// The definition `workflow` names, when the caller's role may open it.
///
/// # Errors
/// 422 naming `workflow` when there is none; 403 when the role may not open it.
fn chosen(
    state: &AppState,
    viewer: &Viewer,
    workflow: &str,
) -> ApiResult<std::sync::Arc<Definition>> {
    let definition = definition_for(state, workflow, None)?;
    if !definition.open.roles.contains(&viewer.acting().role) {
        return Err(ApiError::forbidden(format!(
            "the role {} may not open a case of {}; its roles: {}",
            viewer.acting().role,
            definition.id,
            definition
                .open
                .roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .field("workflow"));
    }
    Ok(definition)
}

/// What the page shows again after a refusal: the error and the form as posted.
struct Refused<'a> {
    error: &'a ApiError,
    pairs: &'a [(String, String)],
}

async fn new_page(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
) -> Result<Response, PageError> {
    let with_nav = |e: ApiError| PageError::from(e).viewer(&viewer);
    let params = QueryParams::parse(&uri, &["workflow"]).map_err(with_nav)?;
    let Some(workflow) = params.get("workflow").filter(|w| !w.is_empty()) else {
        return Ok(page(&state, &viewer, None, None, None));
    };
    match chosen(&state, &viewer, workflow) {
        Ok(definition) => Ok(page(&state, &viewer, Some(&definition), None, None)),
        Err(error) => Ok(page(
            &state,
            &viewer,
            None,
            Some(workflow),
            Some(&Refused {
                error: &error,
                pairs: &[],
            }),
        )),
    }
}

async fn create_page(
    State(state): State<AppState>,
    viewer: Viewer,
    options: Result<WriteOptions, ApiError>,
    form: PageForm,
) -> Result<Response, PageError> {
    let with_nav = |e: ApiError| PageError::from(e).viewer(&viewer);
    let WriteOptions(options) = options.map_err(with_nav)?;
    let workflow = form.get("workflow").unwrap_or("").trim().to_owned();
    let definition = match read_version(&form).and_then(|version| {
        crate::json::required("workflow", &workflow)?;
        definition_for(&state, &workflow, version)
    }) {
        Ok(definition) => definition,
        Err(error) => {
            let refused = Refused {
                error: &error,
                pairs: &form.0,
            };
            return Ok(page(&state, &viewer, None, Some(&workflow), Some(&refused)));
        }
    };
    let opened = match read_form(&state, &form, &definition) {
        Ok(body) => cases::open_case(&state, viewer.acting(), body, options).await,
        Err(error) => Err(error),
    };
    match opened {
        Ok(answer) => Ok(render::see_other(&format!("/cases/{}", answer.id), None)),
        Err(error) => {
            let refused = Refused {
                error: &error,
                pairs: &form.0,
            };
            Ok(page(
                &state,
                &viewer,
                Some(&definition),
                None,
                Some(&refused),
            ))
        }
    }
}

fn read_version(form: &PageForm) -> ApiResult<Option<u32>> {
    match form.get("workflow_version").map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|v| *v >= 1)
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "workflow_version must be a whole number from 1, not {text:?}"
                ))
                .field("workflow_version")
            }),
    }
}

/// The form as the API's body, checked as the API checks it.
fn read_form(state: &AppState, form: &PageForm, definition: &Definition) -> ApiResult<CreateCase> {
    for (name, _) in &form.0 {
        if !INPUTS.contains(&name.as_str()) && !name.starts_with(FIELDS) {
            return Err(ApiError::bad_request(format!(
                "{name} is not a field of this form; its fields: {}, and the workflow's as {FIELDS}NAME",
                INPUTS.join(", ")
            ))
            .field(name.clone()));
        }
    }
    let text = |name: &str| form.get(name).unwrap_or("").to_owned();
    let given = |name: &str| {
        form.get(name)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    };
    let fields = form::values(
        &definition.open.fields,
        &form.0,
        Names {
            id: FORM_ID,
            name: FIELDS,
        },
        &state.zone(),
    );
    // Null values are fields left empty: the API's parser reads them as absent.
    let requester =
        (given("requester.name").is_some() || given("requester.phone").is_some()).then(|| {
            RequesterBody {
                name: given("requester.name"),
                phone: given("requester.phone"),
                ..RequesterBody::default()
            }
        });
    let place = given("place.address").map(|address| PlaceBody {
        lat: None,
        long: None,
        address: Some(address),
        address_id: None,
        media_url: None,
    });
    let body = CreateCase {
        workflow: definition.id.as_str().to_owned(),
        workflow_version: Some(definition.version),
        unit_id: text("unit_id").trim().to_owned(),
        title: text("title"),
        description: text("description"),
        idempotency_key: given("idempotency_key"),
        fields,
        requester,
        place,
    };
    body.validate()?;
    Ok(body)
}

/// The input a field the API names stands for: the same name, an intake field's under
/// `fields.`, the unit a case is filed at for the engine's `unit` of an opening.
fn input_for(error: &ApiError, definition: Option<&Definition>) -> Option<String> {
    let field = error.field.as_deref()?;
    if INPUTS.contains(&field) || field.starts_with(FIELDS) {
        return Some(field.to_owned());
    }
    let intake = definition.is_some_and(|d| d.open.fields.iter().any(|f| f.name == field));
    match field {
        // Where a case is filed: the engine names it `unit` (403 when it is out of reach).
        "unit" if !intake || error.status == axum::http::StatusCode::FORBIDDEN => {
            Some("unit_id".to_owned())
        }
        _ if intake => Some(format!("{FIELDS}{field}")),
        _ => None,
    }
}

/// A fresh idempotency key for a form: 32 hex digits.
fn fresh_key() -> String {
    let mut bytes = [0u8; 16];
    // Without randomness the form carries no key, and a retry may open a second case.
    if getrandom::getrandom(&mut bytes).is_err() {
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The page: a 200 page, or the page of a refused form (with the API's status and error code).
fn page(
    state: &AppState,
    viewer: &Viewer,
    definition: Option<&Definition>,
    asked: Option<&str>,
    refused: Option<&Refused<'_>>,
) -> Response {
    let title = "新建诉求 New request";
    let body = page_body(state, viewer, definition, asked, refused);
    match refused {
        Some(r) => render::refused_page(Some(viewer), title, body, r.error),
        None => Page::for_viewer(viewer, title, body).into_response(),
    }
}

fn page_body(
    state: &AppState,
    viewer: &Viewer,
    definition: Option<&Definition>,
    asked: Option<&str>,
    refused: Option<&Refused<'_>>,
) -> Markup {
    let workflows = openable(state, viewer);
    let current = definition.map(|d| d.id.as_str()).or(asked);
    let picker_error =
        refused.filter(|r| definition.is_none() && r.error.field.as_deref() == Some("workflow"));
    let stray =
        refused.filter(|r| definition.is_none() && r.error.field.as_deref() != Some("workflow"));
    let body = html! {
        h1 { (bi("新建诉求", "New request")) }
        section aria-labelledby="pick-h" {
            h2 #pick-h { (bi("选择事项类别", "Choose what it is about")) }
            @if let Some(r) = picker_error {
                p.error #workflow-error role="alert" { (r.error.message) }
            }
            @if let Some(r) = stray {
                p.error role="alert" { (r.error.message) }
            }
            @if workflows.is_empty() {
                p.note { (bi("您的角色不能新建诉求。", "Your role may not file requests.")) }
            }
            ul.workflows aria-describedby=[picker_error.map(|_| "workflow-error")] {
                @for d in &workflows {
                    li {
                        a href={ "/cases/new?workflow=" (d.id.as_str()) }
                            aria-current=[(current == Some(d.id.as_str())).then_some("page")] {
                            (named(&d.name))
                        }
                        @if !d.description.is_empty() { p.hint { (d.description) } }
                    }
                }
            }
        }
        @if let Some(definition) = definition {
            (intake(state, viewer, definition, refused))
        }
    };
    body
}

fn intake(
    state: &AppState,
    viewer: &Viewer,
    definition: &Definition,
    refused: Option<&Refused<'_>>,
) -> Markup {
    let org = state.engine().org();
    let at = refused.and_then(|r| input_for(r.error, Some(definition)));
    let general = refused.filter(|_| at.is_none());
    let error_for = |input: &str| {
        refused
            .filter(|_| at.as_deref() == Some(input))
            .map(|r| r.error.message.as_str())
    };
    let value = |input: &str| -> String {
        refused
            .and_then(|r| {
                form::posted(r.pairs, input)
                    .first()
                    .map(|v| (*v).to_owned())
            })
            .unwrap_or_default()
    };
    let unit_value = {
        let posted = value("unit_id");
        if posted.is_empty() {
            viewer.acting().unit.as_str().to_owned()
        } else {
            posted
        }
    };
    let units = filing_units(&org, viewer, definition);
    // A new key each time the form is shown: a refused form opened nothing, and its
    // corrected version is another request.
    let key = fresh_key();
    let names = Names {
        id: FORM_ID,
        name: FIELDS,
    };
    html! {
        form.intake #new-case method="post" action="/cases" aria-labelledby="intake-h"
            aria-describedby=[general.map(|_| "new-case-error")] {
            h2 #intake-h { (named(&definition.name)) }
            @if !definition.description.is_empty() { p.hint { (definition.description) } }
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="workflow" value=(definition.id.as_str());
            input type="hidden" name="workflow_version" value=(definition.version);
            @if !key.is_empty() { input type="hidden" name="idempotency_key" value=(key); }
            @if let Some(r) = general {
                p.error #new-case-error role="alert" { (r.error.message) }
            }
            (text_input("title", bi("标题", "Title"), &value("title"), true, TITLE_MAX, error_for("title"), None))
            div.field {
                label for="nc-description" { (bi("描述", "Description")) }
                textarea #nc-description name="description" rows="4" maxlength=(DESCRIPTION_MAX)
                    aria-describedby=[error_for("description").map(|_| "nc-description-error")]
                    aria-invalid=[error_for("description").map(|_| "true")] { (value("description")) }
                @if let Some(e) = error_for("description") { (form::error_message("nc-description-error", e)) }
            }
            div.field {
                label for="nc-unit-id" { (bi("受理单位", "Filed at")) (form::required_mark()) }
                select #nc-unit-id name="unit_id" required
                    aria-describedby={ "nc-unit-id-hint" @if error_for("unit_id").is_some() { " nc-unit-id-error" } }
                    aria-invalid=[error_for("unit_id").map(|_| "true")] {
                    option value="" { "— 请选择 choose —" }
                    @for unit in &units {
                        option value=(unit.id.as_str()) selected[unit_value == unit.id.as_str()] { (form::unit_label(unit)) }
                    }
                }
                p.hint #nc-unit-id-hint { (bi("诉求提交到哪个单位。", "The unit the request is filed at.")) }
                @if let Some(e) = error_for("unit_id") { (form::error_message("nc-unit-id-error", e)) }
            }
            @for spec in &definition.open.fields {
                @let input = format!("{FIELDS}{}", spec.name);
                @let values = refused.map(|r| form::posted(r.pairs, &input)).unwrap_or_default();
                (form::field(spec, names, &values, error_for(&input), UnitChoices::Any(&org), false))
            }
            (text_input("place.address", bi("地址", "Address"), &value("place.address"), false, 200, error_for("place.address"),
                Some(bi("公开信息，如“新马路 5 号”。", "Public, e.g. “新马路 5 号”."))))
            fieldset.field {
                legend { (bi("诉求人联系方式（选填）", "The requester's contact (optional)")) }
                p.hint #nc-requester-hint { (bi("加密保存，只有经办人员可查看，页面上显示为脱敏信息。", "Kept encrypted; handlers see it masked.")) }
                (text_input("requester.name", bi("姓名", "Name"), &value("requester.name"), false, 200, error_for("requester.name"), None))
                (text_input("requester.phone", bi("电话", "Phone"), &value("requester.phone"), false, 200, error_for("requester.phone"), None))
            }
            button type="submit" { (bi("提交", "File the request")) }
        }
    }
}

/// A one-line text input with its label, hint and error.
fn text_input(
    name: &str,
    label: Markup,
    value: &str,
    required: bool,
    max: usize,
    error: Option<&str>,
    hint: Option<Markup>,
) -> Markup {
    let id = format!("{FORM_ID}-{}", name.replace(['.', '_'], "-"));
    let mut described = Vec::new();
    if hint.is_some() {
        described.push(format!("{id}-hint"));
    }
    if error.is_some() {
        described.push(format!("{id}-error"));
    }
    let described = (!described.is_empty()).then(|| described.join(" "));
    let kind = if name == "requester.phone" {
        "tel"
    } else {
        "text"
    };
    html! {
        div.field {
            label for=(id) { (label) @if required { (form::required_mark()) } }
            input id=(id) name=(name) type=(kind) value=(value) maxlength=(max) required[required]
                aria-describedby=[described.as_deref()] aria-invalid=[error.map(|_| "true")];
            @if let Some(hint) = hint { p.hint id={ (id) "-hint" } { (hint) } }
            @if let Some(e) = error { (form::error_message(&format!("{id}-error"), e)) }
        }
    }
}

/// The units the caller may file a case of `definition` at, by the org chart's own rule
/// (`OrgChart::may_open_at`, which the engine decides an opening by).
fn filing_units<'o>(
    org: &'o OrgChart,
    viewer: &Viewer,
    definition: &Definition,
) -> Vec<&'o civicflow_core::domain::org::Unit> {
    org.units()
        .filter(|u| org.may_open_at(viewer.acting(), &u.id, definition.open.scope))
        .collect()
}
