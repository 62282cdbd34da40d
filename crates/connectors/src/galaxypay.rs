//! Galaxy Pay (SkyPay) wallet API: **our contract**, documented in
//! `docs/galaxypay-wallet-api.md`, because the BRD names the wallet steps (section 2.3) but
//! not an API.
//!
//! Bearer token auth. Success is `{"data": Wallet | Settlement}`; failure is
//! `{"error": {"code", "message"}}`. Mapping:
//! - `VIRTUAL_ACCOUNT_ALREADY_CLOSED`, `BANK_LINK_ALREADY_UNLINKED` → already done;
//! - `WALLET_CLOSED` → already done for close-wallet, permanent for set-status and the other
//!   steps (a closed wallet cannot change);
//! - `WALLET_NOT_FOUND`, `BANK_LINK_NOT_FOUND`, `WALLET_NOT_INACTIVE`, and close-wallet's
//!   preconditions `VIRTUAL_ACCOUNT_OPEN`, `BALANCE_NOT_ZERO`, `BANK_LINKS_REMAIN` →
//!   permanent: the saga orders the steps so these mean an earlier step did not happen.

use reqwest::{Method, RequestBuilder};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use strum::{Display, EnumIter, EnumString};
use url::Url;

use crate::error::{ErrorCode, Result};
use crate::http::{Answer, BearerApi, HttpOptions};
use crate::ids::{serde_via_strum, BankLinkId, Endpoint, Partner, SkyjoyId, WalletId};
use crate::reply::Reply;

/// Galaxy Pay connector configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub base_url: Url,
    pub access_token: SecretString,
    #[serde(default)]
    pub http: HttpOptions,
}

/// Wallet status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, EnumIter)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum WalletStatus {
    Active,
    Inactive,
    Closed,
}
serde_via_strum!(WalletStatus);

/// Virtual account state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, EnumIter)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum VirtualAccountStatus {
    Open,
    Closed,
}
serde_via_strum!(VirtualAccountStatus);

/// What a bank link points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, EnumIter)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum BankLinkKind {
    Card,
    Account,
}
serde_via_strum!(BankLinkKind);

/// Bank link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, EnumIter)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum BankLinkStatus {
    Linked,
    Unlinked,
}
serde_via_strum!(BankLinkStatus);

/// An amount in Vietnamese dong (no minor unit).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Vnd(pub i64);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualAccount {
    pub status: VirtualAccountStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BankLink {
    pub link_id: BankLinkId,
    pub kind: BankLinkKind,
    pub bank_code: String,
    pub status: BankLinkStatus,
}

/// A wallet as Galaxy Pay reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Wallet {
    pub wallet_id: WalletId,
    pub skyjoy_id: SkyjoyId,
    pub status: WalletStatus,
    pub balance: Vnd,
    /// `None` when the wallet never had a virtual account.
    pub virtual_account: Option<VirtualAccount>,
    pub bank_links: Vec<BankLink>,
}

impl Wallet {
    /// Links still active, which must each be unlinked before the wallet can close.
    pub fn linked_banks(&self) -> impl Iterator<Item = &BankLink> {
        self.bank_links
            .iter()
            .filter(|link| link.status == BankLinkStatus::Linked)
    }

    /// BRD 2.3.4: virtual account closed (or absent), balance zero, no bank link left.
    pub fn may_close(&self) -> bool {
        self.virtual_account
            .as_ref()
            .is_none_or(|va| va.status == VirtualAccountStatus::Closed)
            && self.balance == Vnd(0)
            && self.linked_banks().next().is_none()
    }
}

/// Body of the set-status call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetStatus {
    pub status: WalletStatus,
}

/// `data` of the settle call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settlement {
    pub wallet_id: WalletId,
    /// What was paid out to bring the balance to zero.
    pub settled_amount: Vnd,
    pub balance: Vnd,
}

/// Success envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub data: T,
}

/// Failure envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// Galaxy Pay's failure codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, EnumIter)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorKey {
    Unauthorized,
    WalletNotFound,
    WalletClosed,
    WalletNotInactive,
    VirtualAccountAlreadyClosed,
    VirtualAccountOpen,
    BalanceNotZero,
    BankLinksRemain,
    BankLinkNotFound,
    BankLinkAlreadyUnlinked,
}

impl ErrorKey {
    /// The HTTP status and envelope Galaxy Pay sends for this code.
    pub fn answer(self) -> (u16, ErrorEnvelope) {
        let (status, message) = match self {
            ErrorKey::Unauthorized => (401, "missing or invalid bearer token"),
            ErrorKey::WalletNotFound => (404, "wallet not found"),
            ErrorKey::BankLinkNotFound => (404, "bank link not found"),
            ErrorKey::WalletClosed => (409, "wallet is closed"),
            ErrorKey::WalletNotInactive => (409, "wallet must be inactive"),
            ErrorKey::VirtualAccountAlreadyClosed => (409, "virtual account already closed"),
            ErrorKey::VirtualAccountOpen => (409, "virtual account still open"),
            ErrorKey::BalanceNotZero => (409, "balance is not zero"),
            ErrorKey::BankLinksRemain => (409, "bank links remain"),
            ErrorKey::BankLinkAlreadyUnlinked => (409, "bank link already unlinked"),
        };
        (
            status,
            ErrorEnvelope {
                error: ErrorDetail {
                    code: self.to_string(),
                    message: message.to_owned(),
                },
            },
        )
    }
}

/// Galaxy Pay client.
#[derive(Debug, Clone)]
pub struct Client {
    api: BearerApi,
}

impl Client {
    pub fn new(config: Config) -> Result<Self> {
        Ok(Self {
            api: BearerApi::new(
                Partner::Galaxypay,
                config.base_url,
                config.access_token,
                &config.http,
            )?,
        })
    }

    /// `GET /v1/wallets?skyjoyId=`: the member's wallet.
    pub async fn wallet_of(
        &self,
        skyjoy_id: &SkyjoyId,
        idempotency_key: &str,
    ) -> Result<Reply<Wallet>> {
        let request = self
            .api
            .request(Method::GET, &["v1/wallets"])?
            .query(&[("skyjoyId", skyjoy_id.as_str())]);
        self.call(Endpoint::GalaxypayGetWallet, request, idempotency_key)
            .await
    }

    /// `GET /v1/wallets/{walletId}`.
    pub async fn wallet(
        &self,
        wallet_id: &WalletId,
        idempotency_key: &str,
    ) -> Result<Reply<Wallet>> {
        let request = self
            .api
            .request(Method::GET, &["v1/wallets", wallet_id.as_str()])?;
        self.call(Endpoint::GalaxypayGetWallet, request, idempotency_key)
            .await
    }

    /// `POST /v1/wallets/{walletId}/status`: Inactive to freeze the wallet, Active to undo.
    pub async fn set_status(
        &self,
        wallet_id: &WalletId,
        status: WalletStatus,
        idempotency_key: &str,
    ) -> Result<Reply<Wallet>> {
        let request = self
            .api
            .request(Method::POST, &["v1/wallets", wallet_id.as_str(), "status"])?
            .json(&SetStatus { status });
        self.call(Endpoint::GalaxypaySetStatus, request, idempotency_key)
            .await
    }

    /// `POST /v1/wallets/{walletId}/virtual-account/close`.
    pub async fn close_virtual_account(
        &self,
        wallet_id: &WalletId,
        idempotency_key: &str,
    ) -> Result<Reply<Wallet>> {
        self.post_empty(
            Endpoint::GalaxypayCloseVirtualAccount,
            &["v1/wallets", wallet_id.as_str(), "virtual-account/close"],
            idempotency_key,
        )
        .await
    }

    /// `POST /v1/wallets/{walletId}/bank-links/{linkId}/unlink`.
    pub async fn unlink_bank(
        &self,
        wallet_id: &WalletId,
        link_id: &BankLinkId,
        idempotency_key: &str,
    ) -> Result<Reply<Wallet>> {
        self.post_empty(
            Endpoint::GalaxypayUnlinkBank,
            &[
                "v1/wallets",
                wallet_id.as_str(),
                "bank-links",
                link_id.as_str(),
                "unlink",
            ],
            idempotency_key,
        )
        .await
    }

    /// `POST /v1/wallets/{walletId}/settle`: pays the balance out so it becomes zero.
    pub async fn settle_balance(
        &self,
        wallet_id: &WalletId,
        idempotency_key: &str,
    ) -> Result<Reply<Settlement>> {
        self.post_empty(
            Endpoint::GalaxypaySettleBalance,
            &["v1/wallets", wallet_id.as_str(), "settle"],
            idempotency_key,
        )
        .await
    }

    /// `POST /v1/wallets/{walletId}/close`: refused unless [`Wallet::may_close`].
    pub async fn close_wallet(
        &self,
        wallet_id: &WalletId,
        idempotency_key: &str,
    ) -> Result<Reply<Wallet>> {
        self.post_empty(
            Endpoint::GalaxypayCloseWallet,
            &["v1/wallets", wallet_id.as_str(), "close"],
            idempotency_key,
        )
        .await
    }

    /// A `POST` with the empty JSON object `{}` as its body.
    async fn post_empty<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        path: &[&str],
        idempotency_key: &str,
    ) -> Result<Reply<T>> {
        let request = self
            .api
            .request(Method::POST, path)?
            .json(&serde_json::json!({}));
        self.call(endpoint, request, idempotency_key).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        request: RequestBuilder,
        idempotency_key: &str,
    ) -> Result<Reply<T>> {
        interpret(&self.api.send(endpoint, idempotency_key, request).await?)
    }
}

fn interpret<T: DeserializeOwned>(answer: &Answer) -> Result<Reply<T>> {
    if answer.is_success() {
        let envelope: Envelope<T> = answer.parse_success()?;
        return Ok(answer.reply(envelope.data));
    }
    let (key, _) = answer.error_key(|envelope: &ErrorEnvelope| &envelope.error.code)?;
    let detail = Some(format!("code={key}"));
    // Permanent when Galaxy Pay answered 4xx, retryable when it blamed itself with a 5xx.
    let refused = |code| Err(answer.documented(code, detail.clone()));
    match key {
        ErrorKey::Unauthorized => Err(answer.unexpected()),
        ErrorKey::VirtualAccountAlreadyClosed => Ok(Reply::already(
            ErrorCode::GalaxypayVirtualAccountAlreadyClosed,
            "Galaxy Pay says the virtual account is already closed",
        )),
        ErrorKey::BankLinkAlreadyUnlinked => Ok(Reply::already(
            ErrorCode::GalaxypayBankLinkAlreadyUnlinked,
            "Galaxy Pay says the bank link is already unlinked",
        )),
        ErrorKey::WalletClosed if answer.endpoint == Endpoint::GalaxypayCloseWallet => {
            Ok(Reply::already(
                ErrorCode::GalaxypayWalletClosed,
                "Galaxy Pay says the wallet is already closed",
            ))
        }
        ErrorKey::WalletClosed => refused(ErrorCode::GalaxypayWalletClosed),
        ErrorKey::WalletNotFound => refused(ErrorCode::GalaxypayWalletNotFound),
        ErrorKey::WalletNotInactive => refused(ErrorCode::GalaxypayWalletNotInactive),
        ErrorKey::VirtualAccountOpen => refused(ErrorCode::GalaxypayVirtualAccountOpen),
        ErrorKey::BalanceNotZero => refused(ErrorCode::GalaxypayBalanceNotZero),
        ErrorKey::BankLinksRemain => refused(ErrorCode::GalaxypayBankLinksRemain),
        ErrorKey::BankLinkNotFound => refused(ErrorCode::GalaxypayBankLinkNotFound),
    }
}
