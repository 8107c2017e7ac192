//! The words every part of xtract shares: platforms and their policy, the
//! egress pool (where their requests leave from), the audio format, what
//! yt-dlp tells about a video, the job and its audio row, and the one error
//! type of a job. A leaf: it imports nothing of ours, and
//! the queue, the pipeline, storage and operations all import it.

pub mod egress_pool;
pub mod error;
pub mod job;
pub mod media;
pub mod platform;
pub mod ytdlp_args;

pub use egress_pool::{Egress, EgressPool, EgressRoutes, ProxyUrl};
pub use error::{ErrorCode, JobError, Retry};
pub use job::{AudioRow, Job, ReusableAudio};
pub use media::{AudioFormat, AudioSource, MediaMeta};
pub use platform::{Platform, PlatformPolicy, PlatformTable};
