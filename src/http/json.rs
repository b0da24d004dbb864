//! `Json<T>`: the request-body extractor every REST handler uses. The body is read
//! with actix's JSON extractor (size limit, content type, body deadline, mapped to the
//! standard errors in `errors::json_config`) under the shared rules of
//! [`crate::dto::strict_json`], then becomes `T`.

use std::ops::{Deref, DerefMut};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::errors::invalid_body;
use crate::dto::strict_json::StrictObject;

pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Json<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let object = web::Json::<StrictObject>::from_request(req, payload);
        Box::pin(async move {
            let web::Json(object) = object.await?;
            object.into_request().map(Json).map_err(|cause| invalid_body(&cause).into())
        })
    }
}

/// An optional JSON body: a request without one (no `Content-Length`, or zero) or with
/// `null` is `None`; any other body follows every rule of [`Json`], so a broken one is
/// refused rather than ignored.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let declared = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        let chunked = req.headers().contains_key(actix_web::http::header::TRANSFER_ENCODING);
        if declared.unwrap_or(0) == 0 && !chunked {
            return Box::pin(async { Ok(OptionalJson(None)) });
        }
        let body = web::Json::<Option<StrictObject>>::from_request(req, payload);
        Box::pin(async move {
            let Some(object) = body.await?.into_inner() else {
                return Ok(OptionalJson(None));
            };
            object
                .into_request()
                .map(|request| OptionalJson(Some(request)))
                .map_err(|cause| invalid_body(&cause).into())
        })
    }
}
