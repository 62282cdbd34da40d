//! Simulated CRMX: `GET` and `PUT /customers_location` from seed 004, Bearer auth
//! (`bearer`, any case). A member is found by phone (as CRMX stores it) and `pos_id`; PUT
//! overwrites the fields present in the body.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use closeout_connectors::crmx::{Customer, CustomerUpdate, Envelope};
use closeout_connectors::{Endpoint, Personal, PosId};
use serde::Deserialize;

use crate::auth::bearer_is;
use crate::model::Member;
use crate::world::{exchange, Answer, Call, State as AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/customers_location", get(customer).put(update))
}

fn envelope(status: u16, message: &str, data: Option<Customer>) -> Answer {
    Answer::new(
        status,
        Envelope {
            status,
            status_code: (status == 200 && data.is_none()).then_some(200),
            message: message.to_owned(),
            data,
        },
    )
}

fn not_found() -> Answer {
    envelope(404, "Customer not found", None)
}

fn authorised(state: &AppState, headers: &HeaderMap) -> Result<(), Answer> {
    if bearer_is(headers, &state.credentials.crmx_token) {
        Ok(())
    } else {
        Err(envelope(401, "Unauthorized", None))
    }
}

fn at_location<'m>(member: &'m Member, phone: &str, pos_id: &str) -> Option<&'m Customer> {
    let record = member.crmx.as_ref()?;
    let stored = record.customer.phone.as_ref()?.expose();
    (record.pos_id.as_str() == pos_id && stored == phone).then_some(&record.customer)
}

#[derive(Debug, Deserialize)]
struct GetQuery {
    phone: String,
    pos_id: String,
}

async fn customer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<GetQuery>,
) -> Response {
    if let Err(denied) = authorised(&state, &headers) {
        return denied.into_response();
    }
    let owner = state
        .world()
        .find(|m| at_location(m, &query.phone, &query.pos_id).is_some())
        .map(|m| m.skyjoy_id.clone());
    let call = Call::new(Endpoint::CrmxGetCustomer, &headers, owner);
    exchange(&state, call, |world, _| {
        match world.find(|m| at_location(m, &query.phone, &query.pos_id).is_some()) {
            Some(member) => envelope(
                200,
                "Customer info",
                at_location(member, &query.phone, &query.pos_id).cloned(),
            ),
            None => not_found(),
        }
    })
    .await
}

#[derive(Debug, Deserialize)]
struct PutQuery {
    pos_id: String,
}

async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PutQuery>,
    body: Bytes,
) -> Response {
    if let Err(denied) = authorised(&state, &headers) {
        return denied.into_response();
    }
    let Ok(update) = serde_json::from_slice::<CustomerUpdate>(&body) else {
        return envelope(400, "Invalid body", None).into_response();
    };
    let Ok(pos_id) = PosId::parse(query.pos_id) else {
        return not_found().into_response();
    };
    let phone = update.phone.as_str().to_owned();
    let owner = state
        .world()
        .find(|m| at_location(m, &phone, pos_id.as_str()).is_some())
        .map(|m| m.skyjoy_id.clone());
    let call = Call::new(Endpoint::CrmxUpdateCustomer, &headers, owner.clone());
    exchange(&state, call, |world, call| {
        let Some(record) = world
            .find(|m| at_location(m, &phone, pos_id.as_str()).is_some())
            .and_then(|m| m.crmx.as_mut())
        else {
            return not_found();
        };
        let customer = &mut record.customer;
        let mut changed = Vec::new();
        let mut set =
            |name: &'static str, field: &mut Option<Personal<String>>, value: &Option<String>| {
                if let Some(value) = value {
                    if field.as_ref().map(|f| f.expose()) != Some(value) {
                        *field = Some(Personal::new(value.clone()));
                        changed.push(name);
                    }
                }
            };
        set("name", &mut customer.name, &update.name);
        set("email", &mut customer.email, &update.email);
        set("birthday", &mut customer.birthday, &update.birthday);
        set(
            "year_birthday",
            &mut customer.year_birthday,
            &update.year_birthday,
        );
        set("home_town", &mut customer.home_town, &update.home_town);
        set("address", &mut customer.address, &update.address);
        set("fb_id", &mut customer.fb_id, &update.fb_id);
        set("facebook", &mut customer.facebook, &update.facebook);
        set("twitter", &mut customer.twitter, &update.twitter);
        set(
            "relationship_status",
            &mut customer.relationship_status,
            &update.relationship_status,
        );
        if let Some(gender) = &update.gender {
            if customer.gender.as_ref() != Some(gender) {
                customer.gender = Some(gender.clone());
                changed.push("gender");
            }
        }
        if !changed.is_empty() {
            world.record(
                call,
                owner.as_ref(),
                format!("updated {}", changed.join(", ")),
            );
        }
        envelope(200, "Success!", None)
    })
    .await
}
