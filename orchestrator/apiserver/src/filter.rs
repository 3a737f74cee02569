//! List and watch filters: a label selector and a field selector, parsed by skiff-api,
//! checked against the kind's supported fields, applied to JSON objects.

use serde_json::Value;
use skiff_api::selector::{FieldSelector, LabelSelector};

use crate::admission::api_error;
use crate::error::ApiError;
use crate::object;
use crate::resources::Resource;

#[derive(Debug, Clone)]
pub struct Filter {
    resource: Resource,
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
    name: Option<String>,
}

impl Filter {
    pub fn parse(
        r: Resource,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Self, ApiError> {
        let labels = labels
            .map(LabelSelector::parse)
            .transpose()
            .map_err(api_error)?;
        let fields = match fields {
            Some(f) => {
                let sel = FieldSelector::parse(f).map_err(api_error)?;
                sel.check_supported(r).map_err(api_error)?;
                Some(sel)
            }
            None => None,
        };
        Ok(Self {
            resource: r,
            labels,
            fields,
            name: None,
        })
    }

    /// Also requires `metadata.name == name` (a watch on one object).
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(n) = &self.name
            && object::name(obj) != Some(n.as_str())
        {
            return false;
        }
        if let Some(l) = &self.labels
            && !l.matches(&object::labels(obj))
        {
            return false;
        }
        if let Some(f) = &self.fields
            && !f.matches_object(self.resource, obj)
        {
            return false;
        }
        true
    }
}
