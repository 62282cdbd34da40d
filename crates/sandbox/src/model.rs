//! The simulated members and what each partner holds about them, plus the built-in default
//! set that covers every case the flows branch on.
//!
//! One [`Member`] carries its SkyJoy account and its footprint at every partner, so a test
//! reads one value to see what a closure changed everywhere.

use chrono::{DateTime, Utc};
use closeout_connectors::crmx::Customer;
use closeout_connectors::galaxypay::{
    BankLink, BankLinkKind, BankLinkStatus, VirtualAccount, VirtualAccountStatus, Vnd, Wallet,
    WalletStatus,
};
use closeout_connectors::kybio::{Enable, MemberNumber};
use closeout_connectors::skyjoy::MemberStatus;
use closeout_connectors::{
    BankLinkId, DocumentId, EmailAddress, PartnerMemberId, Personal, Phone, PosId, SkyjoyId,
    WalletId,
};
use serde::{Deserialize, Serialize};

/// A simulated member: seed data and current state at every partner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub skyjoy_id: SkyjoyId,
    pub phone: Phone,
    pub email: EmailAddress,
    #[serde(default = "yes")]
    pub email_verified: bool,
    pub status: MemberStatus,
    pub full_name: String,
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub points: i64,
    #[serde(default)]
    pub document_id: Option<DocumentId>,
    /// Partner memberships (HDBank, Vikki, Furama...) linked to this SkyJoy account.
    #[serde(default)]
    pub partner_member_ids: Vec<PartnerMemberId>,
    /// An unprocessed deletion request is on file at SkyJoy.
    #[serde(default)]
    pub deletion_requested: bool,
    /// When SkyJoy closed the account; a closed member is "not found" to every read.
    #[serde(default)]
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub vietjet: Option<VietjetAccount>,
    #[serde(default)]
    pub wallet: Option<WalletState>,
    #[serde(default)]
    pub kybio: Option<KybioRecord>,
    #[serde(default)]
    pub crmx: Option<CrmxRecord>,
}

fn yes() -> bool {
    true
}

/// The member's Vietjet user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VietjetAccount {
    #[serde(default)]
    pub card_tokens: Vec<String>,
    /// Set by the `deletion` call; Vietjet then answers `USER_NOT_EXIST`.
    #[serde(default)]
    pub deleted: bool,
}

/// The member's Galaxy Pay wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalletState {
    pub wallet_id: WalletId,
    #[serde(default = "active")]
    pub status: WalletStatus,
    #[serde(default)]
    pub balance: Vnd,
    /// `None` when the wallet never had a virtual account.
    #[serde(default)]
    pub virtual_account: Option<VirtualAccountStatus>,
    #[serde(default)]
    pub bank_links: Vec<BankLink>,
}

fn active() -> WalletStatus {
    WalletStatus::Active
}

impl WalletState {
    /// The wallet as the Galaxy Pay API reports it.
    pub fn to_wire(&self, skyjoy_id: &SkyjoyId) -> Wallet {
        Wallet {
            wallet_id: self.wallet_id.clone(),
            skyjoy_id: skyjoy_id.clone(),
            status: self.status,
            balance: self.balance,
            virtual_account: self.virtual_account.map(|status| VirtualAccount { status }),
            bank_links: self.bank_links.clone(),
        }
    }
}

/// The member's KYBIO record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KybioRecord {
    pub number: MemberNumber,
    pub customer_uid: u64,
    pub enable: Enable,
}

/// The member's CRMX record at one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmxRecord {
    pub pos_id: PosId,
    pub customer: Customer,
}

/// SkyJoy IDs of the built-in members, one per case the flows branch on.
pub mod members {
    /// Active, verified email, 1 200 points, Gold; two linked partner memberships; Vietjet
    /// user with two card tokens; wallet with balance, open virtual account and two bank
    /// links; enabled at KYBIO; present at CRMX.
    pub const ACTIVE_FULL: &str = "SJ1000000001";
    /// Pending, verified; Vietjet user without tokens; empty wallet without virtual account
    /// or bank links; disabled at KYBIO.
    pub const PENDING: &str = "SJ1000000002";
    /// Welcome, verified; no Vietjet user; wallet with a balance, a closed virtual account
    /// and no bank link.
    pub const WELCOME: &str = "SJ1000000003";
    /// Active but the email is not verified.
    pub const UNVERIFIED_EMAIL: &str = "SJ1000000004";
    pub const MERGED: &str = "SJ1000000005";
    pub const BLOCKED: &str = "SJ1000000006";
    pub const SUSPECTED_FRAUD: &str = "SJ1000000007";
    /// Active and verified, with an unprocessed deletion request already on file.
    pub const REQUEST_PENDING: &str = "SJ1000000008";
}

/// Parses one of the [`members`] constants.
pub fn member_id(id: &str) -> SkyjoyId {
    SkyjoyId::parse(id).expect("built-in member IDs are valid")
}

fn base(id: &str, n: u8, status: MemberStatus) -> Member {
    Member {
        skyjoy_id: member_id(id),
        phone: Phone::parse(format!("+8490000000{n}")).expect("valid phone"),
        email: EmailAddress::parse(format!("member{n}@sandbox.test")).expect("valid email"),
        email_verified: true,
        status,
        full_name: format!("SANDBOX MEMBER {n}"),
        tier: Some("Silver".into()),
        points: 100 * i64::from(n),
        document_id: Some(DocumentId::parse(format!("0790000000{n}")).expect("valid doc")),
        partner_member_ids: Vec::new(),
        deletion_requested: false,
        closed_at: None,
        vietjet: Some(VietjetAccount {
            card_tokens: Vec::new(),
            deleted: false,
        }),
        wallet: None,
        kybio: None,
        crmx: None,
    }
}

fn link(id: &str, kind: BankLinkKind, bank: &str) -> BankLink {
    BankLink {
        link_id: BankLinkId::parse(id).expect("valid link id"),
        kind,
        bank_code: bank.into(),
        status: BankLinkStatus::Linked,
    }
}

fn crmx_customer(n: u8) -> Customer {
    let personal = |value: String| Some(Personal::new(value));
    Customer {
        id: Some(format!("crmx-{n}")),
        phone: personal(format!("090000000{n}")),
        gender: Some("1".into()),
        name: personal(format!("Sandbox Member {n}")),
        email: personal(format!("member{n}@sandbox.test")),
        birthday: personal("05-30".into()),
        year_birthday: personal("1996".into()),
        home_town: personal("Ha Noi".into()),
        address: personal("1 Sandbox Street".into()),
        fb_id: personal(format!("15213408{n}")),
        facebook: personal(format!("https://facebook.example/member{n}")),
        twitter: None,
        relationship_status: personal("single".into()),
    }
}

/// The built-in member set.
pub fn default_members() -> Vec<Member> {
    let mut full = base(members::ACTIVE_FULL, 1, MemberStatus::Active);
    full.tier = Some("Gold".into());
    full.points = 1200;
    full.partner_member_ids = vec![
        PartnerMemberId::parse("HD000001").expect("valid"),
        PartnerMemberId::parse("VK000001").expect("valid"),
    ];
    full.vietjet = Some(VietjetAccount {
        card_tokens: vec!["tok_visa_4242".into(), "tok_mc_5454".into()],
        deleted: false,
    });
    full.wallet = Some(WalletState {
        wallet_id: WalletId::parse("W-0001").expect("valid"),
        status: WalletStatus::Active,
        balance: Vnd(150_000),
        virtual_account: Some(VirtualAccountStatus::Open),
        bank_links: vec![
            link("BL-0001", BankLinkKind::Card, "VCB"),
            link("BL-0002", BankLinkKind::Account, "HDB"),
        ],
    });
    full.kybio = Some(KybioRecord {
        number: MemberNumber("8008010001".into()),
        customer_uid: 813_951_242_628_553_689,
        enable: Enable::Available,
    });
    full.crmx = Some(CrmxRecord {
        pos_id: PosId::parse("pos-001").expect("valid"),
        customer: crmx_customer(1),
    });

    let mut pending = base(members::PENDING, 2, MemberStatus::Pending);
    pending.wallet = Some(WalletState {
        wallet_id: WalletId::parse("W-0002").expect("valid"),
        status: WalletStatus::Active,
        balance: Vnd(0),
        virtual_account: None,
        bank_links: Vec::new(),
    });
    pending.kybio = Some(KybioRecord {
        number: MemberNumber("8008010002".into()),
        customer_uid: 2,
        enable: Enable::Disabled,
    });

    let mut welcome = base(members::WELCOME, 3, MemberStatus::Welcome);
    welcome.vietjet = None;
    welcome.wallet = Some(WalletState {
        wallet_id: WalletId::parse("W-0003").expect("valid"),
        status: WalletStatus::Active,
        balance: Vnd(25_000),
        virtual_account: Some(VirtualAccountStatus::Closed),
        bank_links: Vec::new(),
    });

    let mut unverified = base(members::UNVERIFIED_EMAIL, 4, MemberStatus::Active);
    unverified.email_verified = false;

    let mut requested = base(members::REQUEST_PENDING, 8, MemberStatus::Active);
    requested.deletion_requested = true;

    vec![
        full,
        pending,
        welcome,
        unverified,
        base(members::MERGED, 5, MemberStatus::Merged),
        base(members::BLOCKED, 6, MemberStatus::Blocked),
        base(members::SUSPECTED_FRAUD, 7, MemberStatus::SuspectedFraud),
        requested,
    ]
}
