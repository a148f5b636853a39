//! The namespace ACL (SPEC §14) as requests meet it: what access a request
//! needs, and the `403 namespace_forbidden` when the policy in force grants
//! it none. Asked before a body is read, and for each op of a transaction.
//! Without `HULY_ACL_FILE` every token that may use a workspace may use
//! every namespace of it.

use hyper::Method;

use crate::acl::{Access, Acl, Identity};
use crate::auth::Claims;
use crate::error::ApiError;

/// The access a request with `method` needs: reading for GET and HEAD
/// (values, listings, streams, long polls), writing for anything else.
pub(super) fn needed(method: &Method) -> Access {
    if method == Method::GET || method == Method::HEAD {
        Access::Read
    } else {
        Access::Write
    }
}

/// Who the token of `claims` is, as rules name it.
fn identity(claims: &Claims) -> Identity<'_> {
    Identity {
        service: claims.extra.get("service").map(String::as_str),
        account: claims.account,
    }
}

/// `Ok` unless `acl` (if any) has no rule at all for the token of
/// `claims`: a transaction asks this before its body (which names the
/// namespaces) is read.
pub(super) fn check_any(acl: Option<&Acl>, claims: &Claims) -> Result<(), ApiError> {
    match acl {
        Some(acl) if !acl.knows(&identity(claims)) => Err(ApiError::NoNamespace),
        _ => Ok(()),
    }
}

/// `Ok` when `acl` (if any) lets the token of `claims` do `access` to `namespace`.
pub(super) fn check(
    acl: Option<&Acl>,
    claims: &Claims,
    namespace: &str,
    access: Access,
) -> Result<(), ApiError> {
    let Some(acl) = acl else {
        return Ok(());
    };
    if acl.allows(&identity(claims), namespace, access) {
        Ok(())
    } else {
        Err(ApiError::NamespaceForbidden {
            namespace: namespace.to_owned(),
            access: access.name(),
            op: None,
        })
    }
}
