//! Placeholder until the full classifier lands.
use crate::error::ErrorCode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub code: ErrorCode,
    pub detail: String,
}

pub fn classify_ytdlp(output: &str) -> Diagnosis {
    let line = output
        .lines()
        .rev()
        .find(|l| l.starts_with("ERROR:"))
        .unwrap_or("")
        .to_string();
    let code = if line.contains("429") {
        ErrorCode::RateLimited
    } else if line.contains("Requested format is not available") {
        ErrorCode::NoFormats
    } else if line.contains("403") {
        ErrorCode::HttpForbidden
    } else if line.contains("log in") {
        ErrorCode::LoginRequired
    } else if line.contains("404") {
        ErrorCode::NotFound
    } else if line.contains("Unsupported URL") {
        ErrorCode::UnsupportedUrl
    } else {
        ErrorCode::Internal
    };
    Diagnosis { code, detail: line }
}

pub fn filter_rejection(output: &str) -> Option<Diagnosis> {
    if output.contains("larger than max-filesize") {
        return Some(Diagnosis {
            code: ErrorCode::TooLarge,
            detail: "size".into(),
        });
    }
    output.contains("does not pass filter").then(|| Diagnosis {
        code: ErrorCode::TooLong,
        detail: "filter".into(),
    })
}

pub fn classify_ffmpeg(stderr: &str) -> Diagnosis {
    let code = if stderr.contains("matches no streams") {
        ErrorCode::NoAudio
    } else {
        ErrorCode::Internal
    };
    Diagnosis {
        code,
        detail: stderr.trim().to_string(),
    }
}
