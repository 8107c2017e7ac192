//! YouTube (to come).
use super::server::{Reply, Req};
use super::Shared;

pub const MEDIA_HOST: &str = "rr3---sn-rehearsal.googlevideo.com";
pub const IMAGE_HOST: &str = "i.ytimg.com";

pub(crate) fn handle(_req: &Req, _shared: &Shared) -> Reply {
    Reply::status(404, "Not Found").answer("unknown")
}
