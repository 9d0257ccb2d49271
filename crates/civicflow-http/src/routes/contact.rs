//! The requester's contact details, unmasked: the one way to read them through the service.
//! Every other answer shows them masked. Only the roles the case's workflow names in
//! `contact_roles`, within its scope, may call it; each call is a `ContactViewed` event in the
//! case's history, with its purpose, whether or not the person has been erased since.

use axum::extract::State;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Content, RouteSpec};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::{cap, required, StrictJson, Validate};
use crate::openapi::{answer_schema_of, schema_of};
use crate::path::Path;
use crate::policy::Policy;
use crate::request_id::WriteOptions;
use crate::state::AppState;

/// The routes of this module.
pub fn routes() -> Vec<RouteSpec> {
    vec![RouteSpec {
        method: Method::POST,
        path: "/api/v1/cases/{id}/contact",
        // Any token reaches the engine, which allows only the workflow's contact_roles
        // within scope (403 otherwise) and records the view.
        policy: Policy::Authenticated,
        summary: "The requester's contact details unmasked, for {purpose}: only for the roles the workflow names in contact_roles, within scope (403 otherwise); each call is a ContactViewed event in the case's history. {\"erased\": true} once the person is erased; 422 when the case has no requester. Cache-Control: no-store.",
        tag: "cases",
        request: Some(schema_of::<ViewBody>),
        params: Some(crate::idempotency::header_param),
        response: Some(answer_schema_of::<ContactAnswer>),
        content: Content::Json,
        status: 200,
        also: &[],
        errors: &[404, 422, 503],
        handler: post(view),
    }]
}

/// The most characters of a purpose.
pub const PURPOSE_MAX: usize = 200;

/// What the details are asked for.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ViewBody {
    /// Why the details are needed (kept in the case's history).
    #[schemars(length(min = 1, max = PURPOSE_MAX))]
    purpose: String,
}

/// A requester's contact details, unmasked, or that the person was erased.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum ContactAnswer {
    /// The details.
    Details {
        /// The case.
        case: String,
        /// False: the details follow.
        #[schemars(extend("enum" = [false]))]
        erased: bool,
        /// The name.
        name: Option<String>,
        /// The phone number.
        phone: Option<String>,
        /// The e-mail address.
        email: Option<String>,
        /// The street address.
        address: Option<String>,
    },
    /// The person was erased; nothing else is shown.
    Erased {
        /// The case.
        case: String,
        /// True: the person was erased.
        #[schemars(extend("enum" = [true]))]
        erased: bool,
    },
}

impl Validate for ViewBody {
    fn validate(&self) -> Result<(), ApiError> {
        required("purpose", &self.purpose)?;
        cap("purpose", &self.purpose, PURPOSE_MAX)
    }
}

async fn view(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WriteOptions(options): WriteOptions,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<ViewBody>,
) -> ApiResult<Response> {
    let id = super::cases::case_id(&id)?;
    // 404 outside the caller's sight, before anything is recorded.
    state.engine().case(&caller.acting, id)?;
    let acting = caller.acting.clone();
    let purpose = body.purpose.trim().to_owned();
    let details = state
        .blocking(move |engine| engine.view_contact_with(&acting, id, &purpose, options))
        .await??;
    let owned = |text: Option<&str>| text.map(str::to_owned);
    let answer = match details {
        Some(d) => ContactAnswer::Details {
            case: id.to_string(),
            erased: false,
            name: owned(d.name()),
            phone: owned(d.phone()),
            email: owned(d.email()),
            address: owned(d.address()),
        },
        None => ContactAnswer::Erased {
            case: id.to_string(),
            erased: true,
        },
    };
    let mut response = Json(answer).into_response();
    // Personal data: no cache on the way keeps it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
