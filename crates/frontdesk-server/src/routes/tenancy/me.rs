//! `/v1/me`: the signed-in user.

use frontdesk_core::tenancy::users::{self, User};

use crate::{
    error::{ApiError, ApiResult, Problem},
    extract::UserScope,
};

/// The signed-in user's profile, as last seen in their token.
#[utoipa::path(get, path = "/v1/me", tag = "users",
    responses((status = 200, body = User), (status = 403, body = Problem)))]
pub async fn get(scope: UserScope) -> ApiResult<axum::Json<User>> {
    let id = scope
        .user_id()
        .ok_or_else(|| ApiError::Forbidden("the operator is not a user".into()))?;
    let user = scope.read(async |tx| users::me(tx, id).await).await?;
    Ok(axum::Json(user))
}
