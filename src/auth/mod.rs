//! Who is asking, what they may do, and as whom their jobs run (docs/api.md,
//! "Who may do what, and as whom").
//!
//! Every request resolves to one [`Principal`] before any handler runs
//! (`src/http/access.rs` calls [`Authority::authenticate`]): a token, a
//! local user on the unix socket, or anonymous on a loopback daemon
//! without tokens. The principal carries its [`Role`], the owner string
//! recorded on the jobs it submits, and the user those jobs run as
//! ([`RunAs`]), decided here once by the contract's rules. The engine
//! records the owner and the user; the runner switches to the user.
//!
//! Token secrets live in [`token`]; the user database in [`account`].

pub mod account;
pub mod token;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use account::{Account, AccountError};
pub use token::{Presented, Secret};

use crate::config::Config;

/// What a principal may do. Ordered: each role may do what the ones
/// before it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Only GET: jobs, output, events, queues, metrics.
    Read,
    /// Also submit jobs, and cancel, retry and delete its own.
    Submit,
    /// Everything: queue changes, and acting on anyone's jobs.
    Admin,
}

impl Role {
    /// The name used in the config and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Submit => "submit",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The user a job runs as, as its record keeps it (job fields `user` and
/// `uid`). The rest of the account (groups, home) is looked up again when
/// the job starts, as login does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAs {
    /// The login name.
    pub user: String,
    /// The user id.
    pub uid: u32,
}

impl From<&Account> for RunAs {
    fn from(account: &Account) -> RunAs {
        RunAs {
            user: account.name.clone(),
            uid: account.uid,
        }
    }
}

/// Who a principal is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// An `[[auth.tokens]]` entry, by name.
    Token(String),
    /// A local user connected to the unix socket.
    Unix(String),
    /// A client on loopback TCP of a daemon without tokens.
    Anonymous,
}

/// The owner of jobs from before owners existed (docs/api.md).
pub const ANONYMOUS: &str = "anonymous";

/// One request's principal: who, with which role, and as whom its jobs
/// run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Who.
    pub identity: Identity,
    /// What it may do.
    pub role: Role,
    /// The user its jobs run as.
    pub runs_as: RunAs,
}

impl Principal {
    /// The owner recorded on its jobs: `token:<name>`, `unix:<user>` or
    /// `anonymous`.
    pub fn owner(&self) -> String {
        match &self.identity {
            Identity::Token(name) => format!("token:{name}"),
            Identity::Unix(user) => format!("unix:{user}"),
            Identity::Anonymous => ANONYMOUS.to_owned(),
        }
    }

    /// True when it may cancel, retry or delete a job owned by `owner`:
    /// admins any job, `submit` principals their own.
    pub fn may_act_on(&self, owner: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Submit => self.owner() == owner,
            Role::Read => false,
        }
    }

    /// True when it may see the values of the `env` of a job owned by
    /// `owner` (they are often secrets): its owner and admins.
    pub fn may_see_env_of(&self, owner: &str) -> bool {
        self.role == Role::Admin || self.owner() == owner
    }
}

/// Why a request has no principal, or not one allowed to do what it asks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token, or not one of ours: 401.
    #[error("{0}")]
    Unauthorized(String),
    /// Known, but not allowed: 403.
    #[error("{0}")]
    Forbidden(String),
}

/// How a request reached the daemon, as far as identity goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A TCP connection.
    Tcp,
    /// The unix socket, with the peer's credentials from the kernel.
    Unix {
        /// Its user id.
        uid: u32,
        /// Its group id.
        gid: u32,
    },
}

/// A configured token, its secret and what it stands for.
#[derive(Debug)]
struct Token {
    /// Its name: the owner is `token:<name>`.
    name: String,
    /// Its role.
    role: Role,
    /// The secret a request must present.
    secret: Secret,
    /// The user its jobs run as.
    runs_as: RunAs,
}

/// Resolves requests to principals, by the config's tokens and the unix
/// socket's peers.
#[derive(Debug)]
pub struct Authority {
    /// The configured tokens; none means loopback TCP is anonymous.
    tokens: Vec<Token>,
    /// The user jobs run as when no rule names another (`[jobs] user`, or
    /// the daemon's own).
    default_user: RunAs,
    /// The daemon's own user: every job runs as it unless the daemon is
    /// root.
    daemon: Account,
    /// Members of this group on the unix socket are admins.
    admin_gid: Option<u32>,
}

impl Authority {
    /// The authority of a validated config, run by `daemon`.
    pub fn new(config: &Config, daemon: Account) -> Authority {
        let default_user = match (&config.jobs.user, daemon.is_root()) {
            (Some(account), true) => RunAs::from(account),
            _ => RunAs::from(&daemon),
        };
        let tokens = config
            .auth
            .tokens
            .iter()
            .map(|t| Token {
                name: t.name.clone(),
                role: t.role,
                secret: t.secret.clone(),
                runs_as: match (&t.run_as, daemon.is_root()) {
                    (Some(account), true) => RunAs::from(account),
                    _ => default_user.clone(),
                },
            })
            .collect();
        Authority {
            tokens,
            default_user,
            admin_gid: config.auth.admin_group.as_ref().map(|g| g.gid),
            daemon,
        }
    }

    /// True when every TCP request needs a token.
    pub fn requires_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The daemon's own account.
    pub fn daemon(&self) -> &Account {
        &self.daemon
    }

    /// The principal of a request that came over `peer` with `presented`
    /// credentials.
    ///
    /// A token, when the daemon has tokens, is checked wherever it comes
    /// from, and wins over the socket's peer; a daemon without tokens
    /// ignores one (a client may have `JOBQ_TOKEN` set for another
    /// daemon). Without a token, a unix peer is its user and loopback TCP
    /// is anonymous when there are no tokens.
    pub fn authenticate(
        &self,
        peer: Peer,
        presented: Presented<'_>,
    ) -> Result<Principal, AuthError> {
        let how = "send `Authorization: Bearer <token>`";
        if self.requires_tokens() {
            match presented {
                Presented::Bearer(token) => {
                    return match token::find(self.tokens.iter().map(|t| &t.secret), token) {
                        Some(i) => {
                            let t = &self.tokens[i];
                            Ok(Principal {
                                identity: Identity::Token(t.name.clone()),
                                role: t.role,
                                runs_as: t.runs_as.clone(),
                            })
                        }
                        None => Err(AuthError::Unauthorized(
                            "the token is not one of this daemon's tokens".to_owned(),
                        )),
                    };
                }
                Presented::Malformed => {
                    return Err(AuthError::Unauthorized(
                        "the Authorization header is not `Bearer <token>`".to_owned(),
                    ))
                }
                Presented::Nothing => {}
            }
        }
        match peer {
            Peer::Unix { uid, .. } => self.unix_peer(uid),
            Peer::Tcp if self.requires_tokens() => Err(AuthError::Unauthorized(format!(
                "this daemon needs a token: {how}"
            ))),
            Peer::Tcp => Ok(Principal {
                identity: Identity::Anonymous,
                role: Role::Admin,
                runs_as: self.default_user.clone(),
            }),
        }
    }

    /// The principal of the local user `uid` on the unix socket: admin for
    /// root and members of `auth.admin_group`, `submit` for everyone else;
    /// its jobs run as itself when the daemon is root (like at(1)).
    fn unix_peer(&self, uid: u32) -> Result<Principal, AuthError> {
        let account = Account::by_uid(uid).map_err(|e| {
            AuthError::Forbidden(format!(
                "the unix socket's peer (uid {uid}) has no user account jobq can name: {e}"
            ))
        })?;
        let admin = account.is_root() || self.admin_gid.is_some_and(|gid| account.in_group(gid));
        let runs_as = if self.daemon.is_root() {
            RunAs::from(&account)
        } else {
            RunAs::from(&self.daemon)
        };
        Ok(Principal {
            identity: Identity::Unix(account.name),
            role: if admin { Role::Admin } else { Role::Submit },
            runs_as,
        })
    }
}
