//! Admission: the skiff-api pipeline every written object goes through — decode
//! (unknown fields per `fieldValidation`), defaults, validation — turned into API errors.

use http::StatusCode;
use serde_json::Value;
use skiff_api::validation::FieldError;
use skiff_api::{Object, object, validation};

use crate::error::{ApiError, Cause};
use crate::query::FieldValidation;
use crate::resources::Resource;

/// An admitted object, and the warnings to send back (`Warning` headers).
#[derive(Debug, Clone)]
pub struct Admitted {
    pub object: Value,
    pub warnings: Vec<String>,
}

/// Decodes a body, handling unknown fields as `fv` says.
fn decode(
    r: Resource,
    body: &Value,
    fv: FieldValidation,
) -> Result<(Object, Vec<String>), ApiError> {
    let decoded = object::decode(r, body).map_err(api_error)?;
    let warnings = match fv {
        FieldValidation::Strict => {
            let object = decoded.into_strict().map_err(api_error)?;
            return Ok((object, Vec::new()));
        }
        FieldValidation::Warn => decoded
            .unknown_fields
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect(),
        FieldValidation::Ignore => Vec::new(),
    };
    Ok((decoded.object, warnings))
}

/// A new object: decoded, defaulted, validated.
pub fn admit_create(r: Resource, body: Value, fv: FieldValidation) -> Result<Admitted, ApiError> {
    let (mut obj, warnings) = decode(r, &body, fv)?;
    skiff_api::defaulting::apply_defaults(&mut obj);
    check(r, &obj, validation::validate_create(&obj))?;
    Ok(Admitted {
        object: obj.to_value().map_err(api_error)?,
        warnings,
    })
}

/// A changed object: decoded, defaulted, validated as a transition from `old`.
pub fn admit_update(
    r: Resource,
    old: &Value,
    new: Value,
    status_only: bool,
    fv: FieldValidation,
) -> Result<Admitted, ApiError> {
    let mut new = new;
    if r.group.is_empty() && r.plural == "services" && !status_only {
        crate::allocator::keep_allocated(old, &mut new);
    }
    let (mut obj, warnings) = decode(r, &new, fv)?;
    let old_obj = Object::from_value(r, old).map_err(api_error)?;
    skiff_api::defaulting::prepare_for_update(&old_obj, &mut obj);
    skiff_api::defaulting::apply_defaults(&mut obj);
    let errors = if status_only {
        validation::validate_status_update(&old_obj, &obj)
    } else {
        validation::validate_update(&old_obj, &obj)
    };
    check(r, &obj, errors)?;
    Ok(Admitted {
        object: obj.to_value().map_err(api_error)?,
        warnings,
    })
}

fn check(r: Resource, obj: &Object, errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        return Ok(());
    }
    let status = validation::invalid_status(r, obj.name(), &errors);
    let mut err = ApiError::invalid(
        r.kind,
        r.group,
        obj.name(),
        errors.iter().map(cause).collect(),
    );
    if let Some(m) = status.message {
        err.message = m;
    }
    Err(err)
}

/// A skiff-api error as the API answers it.
pub fn api_error(e: skiff_api::Error) -> ApiError {
    if let skiff_api::Error::Invalid { name, errors, .. } = &e {
        let mut err = ApiError::invalid("", "", name, errors.iter().map(cause).collect());
        err.message = e.to_string();
        return err;
    }
    let code = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::BAD_REQUEST);
    match code {
        StatusCode::NOT_FOUND => ApiError::path_not_found(&e.to_string()),
        StatusCode::INTERNAL_SERVER_ERROR => ApiError::internal(e.to_string()),
        _ => ApiError::bad_request(e.to_string()),
    }
}

fn cause(e: &FieldError) -> Cause {
    Cause {
        reason: e.reason.cause_type().to_string(),
        message: e.body(),
        field: e.path.clone(),
    }
}
