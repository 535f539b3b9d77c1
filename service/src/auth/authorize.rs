//! The authorization decision, as a pure function of the caller and the
//! parsed request. The rules:
//!
//! - Nobody crosses tenants: every key, query and watch must name the
//!   token's tenant.
//! - A user may Sync, Get, BatchGet and ListOverrides only documents it owns
//!   (key.owner == token subject), and Watch only with owner = itself.
//!   Query lists other owners' documents, so users may not call it.
//! - A service may Sync, Get, BatchGet, ListOverrides, Query and Watch anything in its
//!   tenant: backend services write users' settings (the seed story).
//! - `--insecure-no-auth` allows everything.

use settings_sync_protocol::{DocumentKey, Id};

use super::{Caller, Identity, Role};

/// One RPC with the parts of its (already parsed) request that matter.
#[derive(Clone, Copy, Debug)]
pub enum Access<'a> {
    Sync(&'a DocumentKey),
    Get(&'a DocumentKey),
    /// The override log of one document: whoever may Get it.
    ListOverrides(&'a DocumentKey),
    BatchGet(&'a [DocumentKey]),
    Query {
        tenant: &'a Id,
    },
    Watch {
        tenant: &'a Id,
        owner: Option<&'a Id>,
    },
}

/// Why a verified caller may not do this. Answered as PERMISSION_DENIED.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("the token is for tenant {token}, not {requested}")]
    OtherTenant { token: String, requested: String },
    #[error("a user may only access their own documents: owner must be {subject}, not {requested}")]
    OtherOwner { subject: String, requested: String },
    #[error("Query lists other owners' documents: only service identities may call it")]
    QueryNeedsService,
    #[error("a user may only Watch their own documents: set owner to {subject}")]
    WatchNeedsOwner { subject: String },
}

pub fn authorize(caller: &Caller, access: Access<'_>) -> Result<(), Denied> {
    let Caller::Authenticated(identity) = caller else {
        return Ok(());
    };
    match access {
        Access::Sync(key) | Access::Get(key) | Access::ListOverrides(key) => {
            document(identity, key)
        }
        Access::BatchGet(keys) => keys.iter().try_for_each(|key| document(identity, key)),
        Access::Query { tenant } => {
            same_tenant(identity, tenant)?;
            match identity.role {
                Role::Service => Ok(()),
                Role::User => Err(Denied::QueryNeedsService),
            }
        }
        Access::Watch { tenant, owner } => {
            same_tenant(identity, tenant)?;
            match (identity.role, owner) {
                (Role::Service, _) => Ok(()),
                (Role::User, Some(owner)) => own(identity, owner),
                (Role::User, None) => Err(Denied::WatchNeedsOwner {
                    subject: identity.subject.to_string(),
                }),
            }
        }
    }
}

fn document(identity: &Identity, key: &DocumentKey) -> Result<(), Denied> {
    same_tenant(identity, &key.tenant)?;
    match identity.role {
        Role::Service => Ok(()),
        Role::User => own(identity, &key.owner),
    }
}

fn same_tenant(identity: &Identity, tenant: &Id) -> Result<(), Denied> {
    if &identity.tenant == tenant {
        Ok(())
    } else {
        Err(Denied::OtherTenant {
            token: identity.tenant.to_string(),
            requested: tenant.to_string(),
        })
    }
}

fn own(identity: &Identity, owner: &Id) -> Result<(), Denied> {
    if &identity.subject == owner {
        Ok(())
    } else {
        Err(Denied::OtherOwner {
            subject: identity.subject.to_string(),
            requested: owner.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Id {
        Id::parse("id", s).unwrap()
    }

    fn caller(tenant: &str, subject: &str, role: Role) -> Caller {
        Caller::Authenticated(Identity {
            tenant: id(tenant),
            subject: id(subject),
            role,
        })
    }

    fn key(tenant: &str, owner: &str) -> DocumentKey {
        DocumentKey::parse(tenant, owner, "alerts").unwrap()
    }

    /// Every RPC on a document of (tenant, owner), for each caller kind.
    fn decide(caller: &Caller, tenant: &str, owner: &str) -> [bool; 6] {
        let (k, t, o) = (key(tenant, owner), id(tenant), id(owner));
        let keys = [key(tenant, owner)];
        [
            authorize(caller, Access::Sync(&k)).is_ok(),
            authorize(caller, Access::Get(&k)).is_ok(),
            authorize(caller, Access::BatchGet(&keys)).is_ok(),
            authorize(caller, Access::Query { tenant: &t }).is_ok(),
            authorize(
                caller,
                Access::Watch {
                    tenant: &t,
                    owner: Some(&o),
                },
            )
            .is_ok(),
            authorize(
                caller,
                Access::Watch {
                    tenant: &t,
                    owner: None,
                },
            )
            .is_ok(),
        ]
    }

    #[test]
    fn the_decision_table_holds_for_every_caller_and_rpc() {
        let alice = caller("acme", "alice", Role::User);
        let service = caller("acme", "svc-alerts", Role::Service);
        // Sync, Get, BatchGet, Query, Watch(owner), Watch(all)
        let table = [
            (
                "user, own document",
                &alice,
                "acme",
                "alice",
                [true, true, true, false, true, false],
            ),
            (
                "user, other owner",
                &alice,
                "acme",
                "bob",
                [false, false, false, false, false, false],
            ),
            ("user, other tenant", &alice, "globex", "alice", [false; 6]),
            ("service, own tenant", &service, "acme", "bob", [true; 6]),
            (
                "service, other tenant",
                &service,
                "globex",
                "bob",
                [false; 6],
            ),
        ];
        for (case, caller, tenant, owner, expected) in table {
            assert_eq!(decide(caller, tenant, owner), expected, "{case}");
        }
    }

    #[test]
    fn one_foreign_key_denies_the_whole_batch() {
        let alice = caller("acme", "alice", Role::User);
        let keys = [key("acme", "alice"), key("acme", "bob")];
        assert_eq!(
            authorize(&alice, Access::BatchGet(&keys)),
            Err(Denied::OtherOwner {
                subject: "alice".into(),
                requested: "bob".into()
            })
        );
    }

    #[test]
    fn the_tenant_is_checked_before_the_owner() {
        let alice = caller("acme", "alice", Role::User);
        let denied = authorize(&alice, Access::Get(&key("globex", "bob"))).unwrap_err();
        assert!(matches!(denied, Denied::OtherTenant { .. }), "{denied}");
    }

    #[test]
    fn insecure_mode_allows_everything() {
        let anyone = Caller::Insecure { peer: None };
        assert_eq!(decide(&anyone, "globex", "bob"), [true; 6]);
    }
}
