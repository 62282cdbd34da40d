//! CRMX partner CRM (seed 004): `GET {base}/customers_location?phone=&pos_id=` reads a
//! member of one location, `PUT {base}/customers_location?pos_id=` updates it (the member is
//! identified by `phone` in the body); Bearer token auth.
//!
//! CRMX has no delete, so erasure ([`Client::erase`]) overwrites every personal field the
//! seed lists (name, email, birthday, year_birthday, home_town, address, fb_id, facebook,
//! twitter, relationship_status) with [`MASK`], then reads the member back and checks each
//! field is masked or empty. The phone stays: it is the key CRMX finds the member by.
//!
//! Answers carry their own `status` next to the HTTP one; a 2xx whose body says otherwise is
//! judged by the body's status. 404 (either way) means no member at that location:
//! `Done(None)` for reads, permanent `CRMX_CUSTOMER_NOT_FOUND` for updates, already done for
//! erasure.

use reqwest::Method;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, ErrorCode, Result, Retry};
use crate::http::{Answer, BearerApi, HttpOptions};
use crate::ids::{Endpoint, Partner, Personal, Phone, PosId};
use crate::reply::{AlreadyDone, Reply};

/// The value written over personal fields.
pub const MASK: &str = "[erased]";

/// CRMX connector configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub base_url: Url,
    pub access_token: SecretString,
    #[serde(default)]
    pub http: HttpOptions,
}

/// A CRMX member as the GET returns it (seed field names).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Customer {
    #[serde(rename = "_id", default)]
    pub id: Option<String>,
    #[serde(default)]
    pub phone: Option<Personal<String>>,
    #[serde(default)]
    pub gender: Option<String>,
    #[serde(default)]
    pub name: Option<Personal<String>>,
    #[serde(default)]
    pub email: Option<Personal<String>>,
    #[serde(default)]
    pub birthday: Option<Personal<String>>,
    #[serde(default)]
    pub year_birthday: Option<Personal<String>>,
    #[serde(default)]
    pub home_town: Option<Personal<String>>,
    #[serde(default)]
    pub address: Option<Personal<String>>,
    #[serde(default)]
    pub fb_id: Option<Personal<String>>,
    #[serde(default)]
    pub facebook: Option<Personal<String>>,
    #[serde(default)]
    pub twitter: Option<Personal<String>>,
    #[serde(default)]
    pub relationship_status: Option<Personal<String>>,
}

impl Customer {
    /// The personal fields erasure must mask, by seed name.
    pub fn personal_fields(&self) -> [(&'static str, Option<&str>); 10] {
        fn value(field: &Option<Personal<String>>) -> Option<&str> {
            field.as_ref().map(|v| v.expose().as_str())
        }
        [
            ("name", value(&self.name)),
            ("email", value(&self.email)),
            ("birthday", value(&self.birthday)),
            ("year_birthday", value(&self.year_birthday)),
            ("home_town", value(&self.home_town)),
            ("address", value(&self.address)),
            ("fb_id", value(&self.fb_id)),
            ("facebook", value(&self.facebook)),
            ("twitter", value(&self.twitter)),
            ("relationship_status", value(&self.relationship_status)),
        ]
    }

    /// Names of personal fields still holding something other than the mask or nothing.
    pub fn unmasked_fields(&self) -> Vec<&'static str> {
        self.personal_fields()
            .into_iter()
            .filter(|(_, value)| value.is_some_and(|v| !v.is_empty() && v != MASK))
            .map(|(name, _)| name)
            .collect()
    }
}

/// Body of the PUT; absent fields are left as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerUpdate {
    pub phone: Phone,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationship_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year_birthday: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_town: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fb_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facebook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twitter: Option<String>,
}

impl CustomerUpdate {
    /// The update that masks every personal field of the member with this phone.
    pub fn mask(phone: Phone) -> Self {
        let mask = || Some(MASK.to_owned());
        Self {
            phone,
            name: mask(),
            email: mask(),
            gender: None,
            relationship_status: mask(),
            birthday: mask(),
            year_birthday: mask(),
            home_town: mask(),
            address: mask(),
            fb_id: mask(),
            facebook: mask(),
            twitter: mask(),
        }
    }
}

/// CRMX's envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    pub message: String,
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
}

fn none<T>() -> Option<T> {
    None
}

/// What erasure left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    /// The fields written with the mask.
    pub masked_fields: Vec<&'static str>,
}

/// CRMX client.
#[derive(Debug, Clone)]
pub struct Client {
    api: BearerApi,
}

/// The one path CRMX serves.
const PATH: &[&str] = &["customers_location"];

impl Client {
    pub fn new(config: Config) -> Result<Self> {
        Ok(Self {
            api: BearerApi::new(
                Partner::Crmx,
                config.base_url,
                config.access_token,
                &config.http,
            )?,
        })
    }

    /// The member with this phone at this location; `Done(None)` when there is none.
    pub async fn customer(
        &self,
        phone: &Phone,
        pos_id: &PosId,
        idempotency_key: &str,
    ) -> Result<Reply<Option<Customer>>> {
        let request = self
            .api
            .request(Method::GET, PATH)?
            .query(&[("phone", phone.as_str()), ("pos_id", pos_id.as_str())]);
        let answer = self
            .api
            .send(Endpoint::CrmxGetCustomer, idempotency_key, request)
            .await?;
        match interpret::<Customer>(&answer)? {
            Found::Data(reply) => Ok(reply),
            Found::NotFound => Ok(Reply::Done(None)),
        }
    }

    /// Updates the member identified by `update.phone`.
    pub async fn update(
        &self,
        pos_id: &PosId,
        update: &CustomerUpdate,
        idempotency_key: &str,
    ) -> Result<Reply<()>> {
        let request = self
            .api
            .request(Method::PUT, PATH)?
            .query(&[("pos_id", pos_id.as_str())])
            .json(update);
        let answer = self
            .api
            .send(Endpoint::CrmxUpdateCustomer, idempotency_key, request)
            .await?;
        match interpret::<serde::de::IgnoredAny>(&answer)? {
            Found::Data(reply) => Ok(reply.map(|_| ())),
            Found::NotFound => Err(answer.permanent(ErrorCode::CrmxCustomerNotFound, None)),
        }
    }

    /// Masks the member's personal fields, then reads them back to verify. Sub-calls use
    /// `{key}/mask` and `{key}/verify`.
    pub async fn erase(
        &self,
        phone: &Phone,
        pos_id: &PosId,
        idempotency_key: &str,
    ) -> Result<Reply<Erasure>> {
        let update = CustomerUpdate::mask(phone.clone());
        match self
            .update(pos_id, &update, &format!("{idempotency_key}/mask"))
            .await
        {
            Ok(_) => {}
            Err(Error::Permanent(failure)) if failure.code == ErrorCode::CrmxCustomerNotFound => {
                return Ok(Reply::AlreadyDone(AlreadyDone {
                    data: None,
                    code: Some(ErrorCode::CrmxCustomerNotFound),
                    note: "CRMX has no member with this phone at this location".into(),
                }));
            }
            Err(other) => return Err(other),
        }
        let read = self
            .customer(phone, pos_id, &format!("{idempotency_key}/verify"))
            .await?
            .into_data()
            .flatten();
        let unmasked = read.map(|c| c.unmasked_fields()).unwrap_or_default();
        if !unmasked.is_empty() {
            return Err(Error::Retryable(Retry {
                partner: Partner::Crmx,
                endpoint: Endpoint::CrmxGetCustomer,
                code: ErrorCode::CrmxNotMasked,
                status: None,
                retry_after: None,
                ambiguous: true,
            }));
        }
        Ok(Reply::Done(Erasure {
            masked_fields: Customer::default()
                .personal_fields()
                .iter()
                .map(|(name, _)| *name)
                .collect(),
        }))
    }
}

enum Found<T> {
    Data(Reply<Option<T>>),
    NotFound,
}

fn interpret<T: serde::de::DeserializeOwned>(answer: &Answer) -> Result<Found<T>> {
    if answer.status == reqwest::StatusCode::NOT_FOUND {
        return match answer.json::<Envelope<serde::de::IgnoredAny>>() {
            Some(_) => Ok(Found::NotFound),
            None => Err(answer.unexpected()),
        };
    }
    if !answer.is_success() {
        return Err(answer.unexpected());
    }
    let envelope: Envelope<T> = answer.parse_success()?;
    match envelope.status {
        200..=299 => Ok(Found::Data(answer.reply(envelope.data))),
        404 => Ok(Found::NotFound),
        other => {
            // CRMX may say 200 over HTTP and fail in the body: judge by the body's status.
            let mut judged = answer.clone();
            judged.status = reqwest::StatusCode::from_u16(other)
                .unwrap_or(reqwest::StatusCode::INTERNAL_SERVER_ERROR);
            Err(judged.unexpected())
        }
    }
}
