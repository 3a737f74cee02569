//! (being written: a placeholder so the crate compiles until this module lands)

use tokio_util::sync::CancellationToken;

use crate::context::Context;

/// Placeholder: returns at once (replaced when this module lands).
pub async fn run(_ctx: Context, _cancel: CancellationToken) {}
