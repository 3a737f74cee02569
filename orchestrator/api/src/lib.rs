//! skiff-api: Skiff's resource model, in the Kubernetes wire format. No I/O.
//!
//! The API server, the controllers, the scheduler and the node runtime all share this crate
//! to agree on what an object is, which objects are valid and what they mean. The types are
//! `k8s-openapi`'s (Kubernetes 1.33); this crate adds what the API machinery of Kubernetes
//! adds on top of them, with the Wasm meaning of Pod fields.
//!
//! Where a newcomer starts: [`registry`] lists every resource Skiff serves (one entry per
//! kind). A request body then goes through the same pipeline as in the kube-apiserver:
//!
//! 1. [`object::decode`] — JSON body → typed [`Object`], checking `apiVersion`/`kind` and
//!    reporting unknown fields (for `fieldValidation=Strict`).
//! 2. [`defaulting::apply_defaults`] — fill the fields Kubernetes defaults.
//! 3. [`validation::validate_create`] / [`validation::validate_update`] — every problem at
//!    once, as [`validation::FieldError`]s that render exactly as Kubernetes prints them;
//!    [`validation::invalid_status`] builds the 422 `Status` body.
//! 4. [`registry::storage_key`] — where the object lives in the store.
//!
//! A `PATCH` in `application/strategic-merge-patch+json` (what `kubectl apply` sends the
//! second time) goes through [`strategic_merge::apply`] first, which merges it into the
//! stored object by Kubernetes' rules; the result then takes steps 1–3.
//!
//! Lists and watches use [`selector`] (label and field selectors); the deployment
//! controller names ReplicaSets with [`template_hash::pod_template_hash`]; the scheduler
//! sums requests with [`quantity`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod defaulting;
pub mod error;
pub mod names;
pub mod object;
pub mod quantity;
pub mod registry;
pub mod selector;
pub mod strategic_merge;
pub mod template_hash;
pub mod validation;

pub use error::{Error, Result};
pub use object::{Decoded, Object};
pub use quantity::Quantity;
pub use registry::Resource;
pub use selector::{FieldSelector, LabelSelector};
pub use validation::{FieldError, FieldErrorKind};

/// The `k8s-openapi` version module Skiff speaks (Kubernetes 1.33), re-exported so that every
/// crate uses the same types.
pub use k8s_openapi;
