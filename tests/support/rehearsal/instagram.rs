//! Instagram (to come).
use super::server::{Reply, Req};
use super::Shared;

pub const MEDIA_HOST: &str = "scontent-rehearsal.cdninstagram.com";

pub(crate) fn handle(_req: &Req, _shared: &Shared) -> Reply {
    Reply::status(404, "Not Found").answer("unknown")
}
