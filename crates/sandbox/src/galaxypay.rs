//! Simulated Galaxy Pay wallet API (our contract, `docs/galaxypay-wallet-api.md`), Bearer
//! auth. Closing enforces the BRD's preconditions: virtual account closed or absent, balance
//! zero, no bank link left; settling requires the wallet to be Inactive first.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use closeout_connectors::galaxypay::{
    BankLinkStatus, Envelope, ErrorKey, SetStatus, Settlement, VirtualAccountStatus, Vnd,
    WalletStatus,
};
use closeout_connectors::{BankLinkId, Endpoint, SkyjoyId, WalletId};
use serde::Deserialize;
use serde_json::json;

use crate::auth::bearer_is;
use crate::model::{Member, WalletState};
use crate::world::{exchange, Answer, Call, State as AppState, World};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/wallets", get(wallet_of))
        .route("/v1/wallets/{id}", get(wallet))
        .route("/v1/wallets/{id}/status", post(set_status))
        .route(
            "/v1/wallets/{id}/virtual-account/close",
            post(close_virtual_account),
        )
        .route(
            "/v1/wallets/{id}/bank-links/{link}/unlink",
            post(unlink_bank),
        )
        .route("/v1/wallets/{id}/settle", post(settle))
        .route("/v1/wallets/{id}/close", post(close))
}

fn error(key: ErrorKey) -> Answer {
    let (status, body) = key.answer();
    Answer::new(status, body)
}

fn ok(owner: &SkyjoyId, wallet: &WalletState) -> Answer {
    Answer::ok(Envelope {
        data: wallet.to_wire(owner),
    })
}

fn authorised(state: &AppState, headers: &HeaderMap) -> Result<(), Answer> {
    if bearer_is(headers, &state.credentials.galaxypay_token) {
        Ok(())
    } else {
        Err(error(ErrorKey::Unauthorized))
    }
}

fn find_wallet<'w>(world: &'w mut World, wallet_id: &WalletId) -> Option<&'w mut Member> {
    world.find(|m| m.wallet.as_ref().is_some_and(|w| &w.wallet_id == wallet_id))
}

/// The preamble every call on one wallet shares: auth, the wallet ID, the exchange. `apply`
/// gets the wallet's owner and the wallet and answers with what changed (if anything) and
/// the answer, or refuses with an error key; a changed wallet is recorded as an effect.
async fn wallet_call(
    state: AppState,
    headers: HeaderMap,
    endpoint: Endpoint,
    id: String,
    apply: impl FnOnce(&SkyjoyId, &mut WalletState) -> Result<(Option<String>, Answer), ErrorKey>,
) -> Response {
    if let Err(denied) = authorised(&state, &headers) {
        return denied.into_response();
    }
    let Ok(wallet_id) = WalletId::parse(id) else {
        return error(ErrorKey::WalletNotFound).into_response();
    };
    let owner = find_wallet(&mut state.world(), &wallet_id).map(|m| m.skyjoy_id.clone());
    let call = Call::new(endpoint, &headers, owner);
    exchange(&state, call, |world, call| {
        let Some(member) = find_wallet(world, &wallet_id) else {
            return error(ErrorKey::WalletNotFound);
        };
        let owner = member.skyjoy_id.clone();
        let Some(wallet) = member.wallet.as_mut() else {
            return error(ErrorKey::WalletNotFound);
        };
        match apply(&owner, wallet) {
            Err(key) => error(key),
            Ok((changed, answer)) => {
                if let Some(changed) = changed {
                    world.record(call, Some(&owner), changed);
                }
                answer
            }
        }
    })
    .await
}

/// A call on one wallet answered with the wallet itself: `change` edits it and says what
/// changed (if anything), or refuses with an error key.
async fn on_wallet(
    state: AppState,
    headers: HeaderMap,
    endpoint: Endpoint,
    id: String,
    change: impl FnOnce(&mut WalletState) -> Result<Option<String>, ErrorKey>,
) -> Response {
    wallet_call(state, headers, endpoint, id, |owner, wallet| {
        let changed = change(wallet)?;
        Ok((changed, ok(owner, wallet)))
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ByOwner {
    skyjoy_id: String,
}

async fn wallet_of(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ByOwner>,
) -> Response {
    if let Err(denied) = authorised(&state, &headers) {
        return denied.into_response();
    }
    let Ok(owner) = SkyjoyId::parse(query.skyjoy_id) else {
        return error(ErrorKey::WalletNotFound).into_response();
    };
    let call = Call::new(Endpoint::GalaxypayGetWallet, &headers, Some(owner.clone()));
    exchange(&state, call, |world, _| {
        match world
            .find(|m| m.skyjoy_id == owner)
            .and_then(|m| m.wallet.as_ref())
        {
            Some(wallet) => ok(&owner, wallet),
            None => error(ErrorKey::WalletNotFound),
        }
    })
    .await
}

async fn wallet(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    on_wallet(state, headers, Endpoint::GalaxypayGetWallet, id, |_| {
        Ok(None)
    })
    .await
}

async fn set_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(SetStatus { status }) = serde_json::from_slice(&body) else {
        return Answer::new(
            400,
            json!({"error": {"code": "BAD_REQUEST", "message": "status must be ACTIVE or INACTIVE"}}),
        )
        .into_response();
    };
    on_wallet(state, headers, Endpoint::GalaxypaySetStatus, id, |wallet| {
        if wallet.status == WalletStatus::Closed {
            return Err(ErrorKey::WalletClosed);
        }
        if status == WalletStatus::Closed {
            // Closing has its own call with its own preconditions.
            return Err(ErrorKey::WalletClosed);
        }
        if wallet.status == status {
            return Ok(None);
        }
        wallet.status = status;
        Ok(Some(format!("set the wallet {status}")))
    })
    .await
}

async fn close_virtual_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    on_wallet(
        state,
        headers,
        Endpoint::GalaxypayCloseVirtualAccount,
        id,
        |wallet| match wallet.virtual_account {
            Some(VirtualAccountStatus::Open) => {
                wallet.virtual_account = Some(VirtualAccountStatus::Closed);
                Ok(Some("closed the virtual account".to_owned()))
            }
            _ => Err(ErrorKey::VirtualAccountAlreadyClosed),
        },
    )
    .await
}

async fn unlink_bank(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, link)): Path<(String, String)>,
) -> Response {
    let link = BankLinkId::parse(link).ok();
    on_wallet(
        state,
        headers,
        Endpoint::GalaxypayUnlinkBank,
        id,
        |wallet| {
            let found = wallet
                .bank_links
                .iter_mut()
                .find(|l| Some(&l.link_id) == link.as_ref())
                .ok_or(ErrorKey::BankLinkNotFound)?;
            if found.status == BankLinkStatus::Unlinked {
                return Err(ErrorKey::BankLinkAlreadyUnlinked);
            }
            found.status = BankLinkStatus::Unlinked;
            Ok(Some(format!(
                "unlinked bank link {}",
                found.link_id.as_str()
            )))
        },
    )
    .await
}

async fn settle(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    wallet_call(
        state,
        headers,
        Endpoint::GalaxypaySettleBalance,
        id,
        |_, wallet| {
            if wallet.status == WalletStatus::Closed {
                return Err(ErrorKey::WalletClosed);
            }
            if wallet.status != WalletStatus::Inactive {
                return Err(ErrorKey::WalletNotInactive);
            }
            let settled = std::mem::take(&mut wallet.balance);
            let changed = (settled != Vnd(0))
                .then(|| format!("paid out {} VND to bring the balance to zero", settled.0));
            let answer = Answer::ok(Envelope {
                data: Settlement {
                    wallet_id: wallet.wallet_id.clone(),
                    settled_amount: settled,
                    balance: Vnd(0),
                },
            });
            Ok((changed, answer))
        },
    )
    .await
}

async fn close(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    on_wallet(
        state,
        headers,
        Endpoint::GalaxypayCloseWallet,
        id,
        |wallet| {
            if wallet.status == WalletStatus::Closed {
                return Err(ErrorKey::WalletClosed);
            }
            if wallet.virtual_account == Some(VirtualAccountStatus::Open) {
                return Err(ErrorKey::VirtualAccountOpen);
            }
            if wallet.balance != Vnd(0) {
                return Err(ErrorKey::BalanceNotZero);
            }
            if wallet
                .bank_links
                .iter()
                .any(|l| l.status == BankLinkStatus::Linked)
            {
                return Err(ErrorKey::BankLinksRemain);
            }
            wallet.status = WalletStatus::Closed;
            Ok(Some("closed the wallet".to_owned()))
        },
    )
    .await
}
