//! The database as the server sees it: one pool per login role, and the form the request
//! context takes on this database.

use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::{ContextMode, Principal};

/// The request path's pools: `frontdesk_app` (bound by RLS) for every tenant request and
/// the authentication lookups, `frontdesk_operator` (bypasses RLS) for operator requests
/// and the background workers. Cheap to clone.
#[derive(Clone)]
pub struct Db(Arc<Inner>);

struct Inner {
    app: Pool,
    operator: Pool,
    context_mode: ContextMode,
}

impl Db {
    pub fn new(app: Pool, operator: Pool, context_mode: ContextMode) -> Self {
        Self(Arc::new(Inner {
            app,
            operator,
            context_mode,
        }))
    }

    /// Connections as `frontdesk_app`.
    pub fn app(&self) -> &Pool {
        &self.0.app
    }

    /// Connections as `frontdesk_operator`.
    pub fn operator(&self) -> &Pool {
        &self.0.operator
    }

    pub fn context_mode(&self) -> ContextMode {
        self.0.context_mode
    }

    /// The pool of the login role `principal` acts as.
    pub fn pool_for(&self, principal: &Principal) -> &Pool {
        match principal {
            Principal::Operator => self.operator(),
            Principal::User { .. } | Principal::Key { .. } | Principal::Callback { .. } => {
                self.app()
            }
        }
    }
}
