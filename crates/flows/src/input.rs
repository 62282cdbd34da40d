//! The input every closure workflow starts with: our contract with the channels (the
//! HTTP API builds it from a submission). Personal data in it is wrapped so `Debug`
//! never shows it.

use chrono::{DateTime, Utc};
use closeout_connectors::kybio::MemberNumber;
use closeout_connectors::skyjoy::RequestPlatform;
use closeout_connectors::{PartnerMemberId, Personal, Phone, PosId, SkyjoyId};
use closeout_engine::action::{Context, Outcome};
use serde::{Deserialize, Serialize};

use crate::codes;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosureInput {
    pub skyjoy_id: SkyjoyId,
    pub phone: Phone,
    /// The member's reason, in their words.
    pub reason: Personal<String>,
    pub requested_at: DateTime<Utc>,
    pub platform: RequestPlatform,
    /// Partner memberships (HDBank, Vikki, Furama…) to unlink at SkyJoy.
    #[serde(default)]
    pub partner_member_ids: Vec<PartnerMemberId>,
    /// The member's number at KYBIO, when that programme is linked.
    #[serde(default)]
    pub kybio_member: Option<MemberNumber>,
    /// The CRMX location holding the member, when that programme is linked.
    #[serde(default)]
    pub crmx_pos_id: Option<PosId>,
}

impl ClosureInput {
    /// Decodes the workflow input; a malformed input fails the step for good (it was
    /// validated when the request was accepted, so this is a bug, not a retry case).
    pub fn of(ctx: &Context) -> Result<Self, Outcome> {
        serde_json::from_value(ctx.input.as_ref().clone()).map_err(|e| {
            Outcome::fail(
                codes::INVALID_INPUT,
                format!("the workflow input does not decode ({e}); cancel the request and submit it again"),
            )
        })
    }
}
