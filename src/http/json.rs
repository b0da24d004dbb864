//! `Json<T>`: the request-body extractor every REST handler uses. The body is read
//! with actix's JSON extractor (size limit, content type, body deadline, mapped to the
//! standard errors in `errors::json_config`) under the shared rules of
//! [`crate::dto::strict_json`], then becomes `T`.

use std::ops::{Deref, DerefMut};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::{dto::strict_json::StrictObject, error::ApiError};

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
            object.into_request().map(Json).map_err(|cause| {
                ApiError::bad_request("invalid_body", format!("the JSON body does not fit this request: {cause}"))
                    .into()
            })
        })
    }
}
