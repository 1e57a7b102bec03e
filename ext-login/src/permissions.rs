//! Permission bit flags, roles and the ownership check.

use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign};

use flagon::HttpError;
use flagon::http::StatusCode;

use crate::user::User;

/// A set of permission bits (the blog seeds' `Permission` flags).
///
/// ```
/// use flagon_login::Permissions;
/// let p = Permissions::READ | Permissions::CREATE;
/// assert!(p.contains(Permissions::READ));
/// assert!(!p.contains(Permissions::READ | Permissions::DELETE));
/// assert_eq!(p.to_string(), "READ|CREATE");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Permissions(u32);

impl Permissions {
    /// Read content.
    pub const READ: Permissions = Permissions(1);
    /// Create content.
    pub const CREATE: Permissions = Permissions(1 << 1);
    /// Update content (anyone's; one's own needs only [`Permissions::CREATE`] and ownership).
    pub const UPDATE: Permissions = Permissions(1 << 2);
    /// Delete content.
    pub const DELETE: Permissions = Permissions(1 << 3);
    /// Administer the site.
    pub const ADMIN: Permissions = Permissions(1 << 4);

    const NAMES: [(Permissions, &'static str); 5] = [
        (Permissions::READ, "READ"),
        (Permissions::CREATE, "CREATE"),
        (Permissions::UPDATE, "UPDATE"),
        (Permissions::DELETE, "DELETE"),
        (Permissions::ADMIN, "ADMIN"),
    ];

    /// No permission.
    pub const fn empty() -> Permissions {
        Permissions(0)
    }

    /// Every permission.
    pub const fn all() -> Permissions {
        Permissions(0b1_1111)
    }

    /// From raw bits (as stored in a database column); unknown bits are dropped.
    pub const fn from_bits(bits: u32) -> Permissions {
        Permissions(bits & Self::all().0)
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }

    /// The names of the set bits.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(p, _)| self.contains(*p))
            .map(|(_, n)| *n)
            .collect()
    }
}

impl BitOr for Permissions {
    type Output = Permissions;
    fn bitor(self, rhs: Permissions) -> Permissions {
        Permissions(self.0 | rhs.0)
    }
}

impl BitOrAssign for Permissions {
    fn bitor_assign(&mut self, rhs: Permissions) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for Permissions {
    type Output = Permissions;
    fn bitand(self, rhs: Permissions) -> Permissions {
        Permissions(self.0 & rhs.0)
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join("|"))
    }
}

/// The blog's roles, each a fixed set of permissions.
///
/// ```
/// use flagon_login::{Permissions, Role};
/// assert!(Role::Editor.permissions().contains(Permissions::UPDATE));
/// assert!(!Role::Author.permissions().contains(Permissions::DELETE));
/// assert_eq!(Role::parse("admin"), Some(Role::Admin));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Reads.
    Guest,
    /// Reads and writes (and edits their own posts).
    Author,
    /// Also edits and deletes anyone's.
    Editor,
    /// Everything.
    Admin,
}

impl Role {
    /// The role's permissions.
    pub const fn permissions(self) -> Permissions {
        match self {
            Role::Guest => Permissions::READ,
            Role::Author => Permissions(Permissions::READ.0 | Permissions::CREATE.0),
            Role::Editor => Permissions(
                Permissions::READ.0
                    | Permissions::CREATE.0
                    | Permissions::UPDATE.0
                    | Permissions::DELETE.0,
            ),
            Role::Admin => Permissions::all(),
        }
    }

    /// A role by name (`guest`, `author`, `editor`, `admin`, any case).
    pub fn parse(name: &str) -> Option<Role> {
        match name.to_ascii_lowercase().as_str() {
            "guest" => Some(Role::Guest),
            "author" => Some(Role::Author),
            "editor" => Some(Role::Editor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Why [`ensure_owner`] refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PermissionError {
    /// The user lacks a permission.
    #[error("you do not have permission to do this")]
    Missing,
}

/// "Only the author may edit": `Ok` when `user` owns the item (`owner_id` is its id), or
/// holds `override_with` (an editor's [`Permissions::UPDATE`]); else a 403 [`HttpError`]
/// whose cause is [`PermissionError::Missing`].
///
/// ```
/// use flagon_login::{Permissions, User, ensure_owner};
/// struct U(&'static str, Permissions);
/// impl User for U {
///     fn id(&self) -> String { self.0.into() }
///     fn auth_hash(&self) -> Vec<u8> { vec![] }
///     fn permissions(&self) -> Permissions { self.1 }
/// }
/// let author = U("7", Permissions::CREATE);
/// let editor = U("8", Permissions::UPDATE);
/// assert!(ensure_owner(&author, "7", Permissions::UPDATE).is_ok());
/// assert_eq!(ensure_owner(&author, "9", Permissions::UPDATE).unwrap_err().status(), 403);
/// assert!(ensure_owner(&editor, "9", Permissions::UPDATE).is_ok());
/// ```
pub fn ensure_owner<U: User + ?Sized>(
    user: &U,
    owner_id: &str,
    override_with: Permissions,
) -> Result<(), HttpError> {
    let owns = subtle_eq(user.id().as_bytes(), owner_id.as_bytes());
    let overrides =
        override_with != Permissions::empty() && user.permissions().contains(override_with);
    if owns || overrides {
        Ok(())
    } else {
        Err(HttpError::with_cause(
            StatusCode::FORBIDDEN,
            PermissionError::Missing,
        ))
    }
}

fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
