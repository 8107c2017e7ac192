//! The Supabase Storage client against the in-process double.

mod support;

use std::path::PathBuf;

use support::storage_double::{Fault, Seen, StorageDouble, CHUNK, KEY};
use support::{Stage, USER};
use xtract::domain::{ErrorCode, Retry};
use xtract::ops::config::{Secret, SupabaseSettings};
use xtract::storage::supabase::KeyKind;
use xtract::storage::{AudioStore, SupabaseStorage};

const MB: usize = 1024 * 1024;

fn settings(double: &StorageDouble, key: &str, bucket: &str) -> SupabaseSettings {
    SupabaseSettings {
        url: double.url.parse().unwrap(),
        service_role_key: Secret::new(key),
        bucket: bucket.into(),
        resumable_threshold: 6 * MB as u64,
    }
}

async fn client(double: &StorageDouble) -> SupabaseStorage {
    SupabaseStorage::connect(&settings(double, KEY, "audio-files"))
        .await
        .unwrap()
}

/// A file of `len` bytes that differ from position to position.
fn file(dir: &tempfile::TempDir, name: &str, len: usize, seed: u8) -> (PathBuf, Vec<u8>) {
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1] ^ seed)
        .collect();
    let path = dir.path().join(name);
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

/// A Storage double (bucket `audio-files`), a client of it, and a file of
/// `len` bytes to upload as `u/j.m4a`: what the upload tests start from.
struct Upload {
    double: StorageDouble,
    store: SupabaseStorage,
    path: PathBuf,
    data: Vec<u8>,
    dir: tempfile::TempDir,
}

impl Upload {
    /// Into a public bucket without a size limit.
    async fn of(len: usize, seed: u8) -> Upload {
        Upload::on(StorageDouble::start(true, None).await, len, seed).await
    }

    /// Into `double`'s bucket (private, or with a size limit).
    async fn on(double: StorageDouble, len: usize, seed: u8) -> Upload {
        let dir = tempfile::tempdir().unwrap();
        let (path, data) = file(&dir, "a.m4a", len, seed);
        let store = client(&double).await;
        Upload {
            double,
            store,
            path,
            data,
            dir,
        }
    }

    /// The client gives up after `n` tries of a request.
    fn tries(mut self, n: usize) -> Upload {
        self.store = self.store.with_tries(n);
        self
    }

    /// Another file beside the first: its path and bytes.
    fn another(&self, name: &str, len: usize, seed: u8) -> (PathBuf, Vec<u8>) {
        file(&self.dir, name, len, seed)
    }

    async fn put(&self) -> Result<xtract::storage::StoredObject, xtract::domain::JobError> {
        self.store.put("u/j.m4a", &self.path, "audio/mp4").await
    }

    /// The object holds the file, byte for byte.
    fn landed(&self) -> bool {
        self.double
            .object("audio-files/u/j.m4a")
            .is_some_and(|o| o.data == self.data)
    }

    /// The double answers a chunk (a TUS PATCH) with `fault`, after
    /// letting `skip` chunks through.
    fn fail_chunk(&self, skip: usize, fault: Fault) {
        self.double
            .fail_nth("PATCH", "/upload/resumable/", skip, fault);
    }

    /// The `method` requests the double saw, in order.
    fn seen(&self, method: &str) -> Vec<Seen> {
        let mut log = self.double.log();
        log.retain(|s| s.method == method);
        log
    }

    /// How many `method` requests the double saw.
    fn requests(&self, method: &str) -> usize {
        self.seen(method).len()
    }
}

#[tokio::test]
async fn a_small_file_goes_up_in_one_request_byte_for_byte() {
    let up = Upload::of(300_000, 1).await;
    let stored = up.put().await.unwrap();

    assert!(up.landed(), "bytes differ");
    let double = &up.double;
    let object = double.object("audio-files/u/j.m4a").unwrap();
    assert_eq!(object.content_type, "audio/mp4");
    assert_eq!(stored.size, up.data.len() as u64);
    assert_eq!(stored.path, "u/j.m4a");
    assert_eq!(
        stored.url,
        format!(
            "{}/storage/v1/object/public/audio-files/u/j.m4a",
            double.url
        )
    );
    let upload = up.seen("POST");
    assert_eq!(upload.len(), 1);
    assert_eq!(upload[0].path, "/storage/v1/object/audio-files/u/j.m4a");
    assert!(upload[0].upsert, "x-upsert: true");
    assert_eq!(
        upload[0].authorization.as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(upload[0].apikey.as_deref(), Some(KEY));
}

#[tokio::test]
async fn a_large_file_goes_up_resumably_in_6_mib_chunks() {
    let up = Upload::of(15 * MB, 2).await;
    up.put().await.unwrap();

    assert!(up.landed(), "bytes differ");
    let object = up.double.object("audio-files/u/j.m4a").unwrap();
    assert_eq!(object.content_type, "audio/mp4");
    let create = up.seen("POST");
    assert_eq!(create.len(), 1);
    assert_eq!(create[0].path, "/storage/v1/upload/resumable");
    assert!(create[0].upsert);
    let patches = up.seen("PATCH");
    let chunks: Vec<(Option<u64>, usize)> = patches
        .iter()
        .map(|s| (s.upload_offset, s.body_len))
        .collect();
    let c = CHUNK as u64;
    assert_eq!(
        chunks,
        vec![(Some(0), CHUNK), (Some(c), CHUNK), (Some(2 * c), 3 * MB)]
    );
    assert!(patches
        .iter()
        .all(|s| s.content_type.as_deref() == Some("application/offset+octet-stream")));
}

#[tokio::test]
async fn a_retried_job_overwrites_its_own_object() {
    let up = Upload::of(2000, 4).await;
    let (first, _) = up.another("1.m4a", 1000, 3);
    up.store.put("u/j.m4a", &first, "audio/mp4").await.unwrap();
    up.put().await.unwrap();
    assert_eq!(up.double.object_count(), 1);
    assert!(up.landed());
}

/// A TUS step: PATCH at an offset, or HEAD.
type Step = (String, Option<u64>);

fn patch(offset: u64) -> Step {
    ("PATCH".into(), Some(offset))
}

fn head() -> Step {
    ("HEAD".into(), None)
}

fn tus_steps(double: &StorageDouble) -> Vec<Step> {
    double
        .log()
        .iter()
        .filter(|s| s.method == "PATCH" || s.method == "HEAD")
        .map(|s| (s.method.clone(), s.upload_offset))
        .collect()
}

/// The media server the daemon tests' jobs download from (with the real
/// yt-dlp).
async fn media_server() -> xtract::ops::media_server::MediaServer {
    xtract::ops::media_server::MediaServer::start(&support::media().dir)
        .await
        .unwrap()
}

/// `xtract run --exit-when-idle` on the stage, to its successful end.
async fn run_until_idle(s: &Stage) -> support::Daemon {
    let mut daemon = s.spawn(&["run", "--exit-when-idle"]);
    let status = daemon.wait_exit(std::time::Duration::from_secs(120)).await;
    assert!(status.success(), "{}", daemon.log_text());
    daemon
}

#[tokio::test]
async fn a_chunk_that_fails_halfway_resumes_from_the_servers_offset() {
    let up = Upload::of(15 * MB, 5).await;
    // The second chunk's connection drops mid-body.
    up.fail_chunk(1, Fault::Drop);
    up.put().await.unwrap();

    assert!(up.landed(), "bytes differ");
    // The server kept what arrived of the cut-off chunk (as the real one
    // does): the upload goes on from its offset, in 6 MiB chunks from there.
    let c = CHUNK as u64;
    let steps = tus_steps(&up.double);
    assert_eq!(steps[..3], [patch(0), patch(c), head()], "{steps:?}");
    let resumed = steps[3].1.unwrap();
    assert!(c < resumed && resumed < 2 * c, "{steps:?}");
    assert_eq!(
        steps[3..],
        [patch(resumed), patch(resumed + c)],
        "{steps:?}"
    );
    assert_eq!(up.requests("POST"), 1, "never started over");
}

#[tokio::test]
async fn an_upload_the_server_forgot_is_started_again_once() {
    let up = Upload::of(15 * MB, 9).await;
    let double = &up.double;
    // The upload URL expires after the first chunk.
    up.fail_chunk(1, Fault::Reply(404, "Not Found".into()));
    up.put().await.unwrap();

    assert!(up.landed(), "bytes differ");
    let c = CHUNK as u64;
    assert_eq!(
        tus_steps(double),
        vec![patch(0), patch(c), patch(0), patch(c), patch(2 * c)]
    );
    assert_eq!(up.requests("POST"), 2, "one new upload");

    // Forgotten twice: the job's error, not an endless loop, and not a
    // "bucket does not exist" message.
    up.fail_chunk(0, Fault::Reply(404, "Not Found".into()));
    up.fail_chunk(0, Fault::Reply(404, "Not Found".into()));
    let err = up
        .store
        .put("u/k.m4a", &up.path, "audio/mp4")
        .await
        .unwrap_err();
    assert_eq!(err.code, xtract::domain::ErrorCode::Storage);
    assert!(!err.message.contains("bucket"), "{}", err.message);
}

#[tokio::test]
async fn an_offset_the_server_disagrees_with_is_mended_by_asking_it() {
    let up = Upload::of(13 * MB, 12).await;
    // The first chunk is "accepted" but not kept: the next PATCH gets 409.
    up.fail_chunk(0, Fault::Reply(204, String::new()));
    up.put().await.unwrap();

    assert!(up.landed(), "bytes differ");
    let c = CHUNK as u64;
    assert_eq!(
        tus_steps(&up.double),
        vec![patch(0), patch(c), head(), patch(0), patch(c), patch(2 * c)]
    );
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let up = Upload::of(5000, 6).await;
    let double = &up.double;
    double.fail_next(
        "POST",
        "/object/",
        Fault::Reply(503, "upstream connect error".into()),
    );
    double.fail_next(
        "POST",
        "/object/",
        Fault::Reply(400, r#"{"statusCode":"409","code":"ResourceLocked","error":"ResourceLocked","message":"The object is locked"}"#.into()),
    );
    double.fail_next(
        "POST",
        "/object/",
        Fault::Reply(429, r#"{"statusCode":"429","message":"slow down"}"#.into()),
    );
    up.put().await.unwrap();
    assert!(up.landed());
    assert_eq!(up.requests("POST"), 4);
}

#[tokio::test]
async fn a_connection_dropped_mid_body_is_retried() {
    let up = Upload::of(2 * MB, 7).await;
    up.double.fail_next("POST", "/object/", Fault::Drop);
    up.put().await.unwrap();
    assert!(up.landed());
    // The drop happened (the first request), and one retry followed.
    assert_eq!(up.requests("POST"), 2, "{:?}", up.double.log());
}

#[tokio::test]
async fn persistent_server_errors_become_a_retryable_storage_error() {
    let up = Upload::of(1000, 8).await.tries(2);
    for _ in 0..2 {
        up.double.fail_next(
            "POST",
            "/object/",
            Fault::Reply(500, r#"{"statusCode":"500","message":"internal"}"#.into()),
        );
    }
    let e = up.put().await.unwrap_err();
    assert_eq!((e.code, e.retry), (ErrorCode::Storage, Retry::Backoff));
    assert_eq!(up.requests("POST"), 2, "both tries were made");
}

#[tokio::test]
async fn over_the_bucket_limit_the_job_fails_with_too_large_naming_the_limit() {
    // One file in one request, one resumably.
    let up = Upload::on(StorageDouble::start(true, Some(MB as u64)).await, 2 * MB, 9).await;
    let (large, _) = up.another("b.m4a", 7 * MB, 9);
    for path in [&up.path, &large] {
        let e = up
            .store
            .put("u/j.m4a", path, "audio/mp4")
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::TooLarge, "{e:?}");
        assert_eq!(e.retry, Retry::Never);
        assert!(e.message.contains("1 MB"), "{}", e.message);
    }
    assert_eq!(up.double.object_count(), 0);
}

#[tokio::test]
async fn a_wrong_key_or_a_missing_bucket_stops_at_connect_without_leaking_the_key() {
    let double = StorageDouble::start(true, None).await;
    let wrong = "wrong-key-0000000000000000";
    let e = SupabaseStorage::connect(&settings(&double, wrong, "audio-files"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            xtract::storage::supabase::StorageError::Status { status: 401, .. }
        ),
        "{e:?}"
    );
    let missing = SupabaseStorage::connect(&settings(&double, KEY, "nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            missing,
            xtract::storage::supabase::StorageError::Status { status: 404, .. }
        ),
        "{missing:?}"
    );
    let job = missing.clone().into_job_error(None);
    assert_eq!((job.code, job.retry), (ErrorCode::Storage, Retry::Never));
    assert!(job.detail.contains("XTRACT_STORAGE_BUCKET"));
    for text in [
        e.to_string(),
        format!("{e:?}"),
        missing.to_string(),
        format!("{missing:?}"),
        format!("{:?}", client(&double).await),
        format!("{:?}", settings(&double, KEY, "audio-files")),
    ] {
        assert!(
            !text.contains(KEY) && !text.contains(wrong),
            "key in: {text}"
        );
    }
}

#[tokio::test]
async fn a_private_bucket_gets_authenticated_urls() {
    let up = Upload::on(StorageDouble::start(false, None).await, 1000, 10).await;
    let stored = up.put().await.unwrap();
    assert_eq!(
        stored.url,
        format!(
            "{}/storage/v1/object/authenticated/audio-files/u/j.m4a",
            up.double.url
        )
    );
}

#[tokio::test]
async fn copies_and_deletes() {
    let up = Upload::of(4000, 11).await;
    let (double, store, data) = (&up.double, &up.store, &up.data);
    store.put("u1/j1.m4a", &up.path, "audio/mp4").await.unwrap();
    let copy = store.copy("u1/j1.m4a", "u2/j2.m4a", 4000).await.unwrap();
    assert_eq!(copy.path, "u2/j2.m4a");
    assert!(double.object("audio-files/u2/j2.m4a").unwrap().data == *data);
    // Copying again (a retried job) replaces its own copy.
    store.copy("u1/j1.m4a", "u2/j2.m4a", 4000).await.unwrap();
    assert!(double.object("audio-files/u2/j2.m4a").unwrap().data == *data);
    store.delete("u2/j2.m4a").await.unwrap();
    store.delete("u2/j2.m4a").await.unwrap(); // already gone: fine
    assert!(double.object("audio-files/u2/j2.m4a").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_stores_audio_in_supabase_storage() {
    let double = StorageDouble::start(true, None).await;
    let server = media_server().await;
    // The key as systemd's LoadCredential= hands it over: a file, with a
    // trailing newline.
    let secrets = tempfile::tempdir().unwrap();
    let key_file = secrets.path().join("service-role-key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let mut env = double.daemon_env(KEY);
    // In place of SUPABASE_SERVICE_ROLE_KEY.
    env[2] = (
        "SUPABASE_SERVICE_ROLE_KEY_FILE".into(),
        key_file.display().to_string(),
    );
    let s = Stage::new()
        .real_ytdlp()
        .envs(env)
        .env("RUST_LOG", "debug")
        .prepare()
        .await;
    let id = s.enqueue(&server.url("clip.mp4")).await;
    let daemon = run_until_idle(&s).await;

    let row = s.job(id).await;
    assert_eq!(row["status"], "completed", "{row}");
    let audio = s.audio(id).await.expect("an audio row");
    let object_path = format!("{USER}/{id}.m4a");
    assert_eq!(audio["storage_path"], object_path);
    assert_eq!(
        audio["file_url"],
        format!(
            "{}/storage/v1/object/public/audio-files/{object_path}",
            double.url
        )
    );
    let object = double
        .object(&format!("audio-files/{object_path}"))
        .unwrap();
    assert_eq!(object.content_type, "audio/mp4");
    assert_eq!(audio["file_size"], object.data.len());
    assert!(!daemon.log_text().contains(KEY), "the key reached the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_supabase_key_and_bucket() {
    let double = StorageDouble::start(false, Some(50 * MB as u64)).await;
    let mut s = Stage::new().real_ytdlp().prepare().await;
    let base = double.daemon_env(KEY);
    s.options.extra_env = base.clone();
    let ran = s.xtract(&["doctor"]).await;
    let line = ran.lines_starting("ok    storage").join("");
    assert!(
        line.contains("bucket 'audio-files'") && line.contains("private") && line.contains("50 MB"),
        "{}",
        ran.stdout
    );
    assert!(line.contains("legacy service role key"), "{line}");

    // The publishable key is named for what it is, not "create the bucket".
    let mut public = base.clone();
    public[2].1 = support::storage_double::PUBLISHABLE_KEY.into();
    s.options.extra_env = public;
    let ran = s.xtract(&["doctor"]).await;
    let line = ran.lines_starting("FAIL  storage").join("");
    assert!(line.contains("this is the public key"), "{}", ran.stdout);
    assert!(!line.contains("create the bucket"), "{}", ran.stdout);

    s.options.extra_env = base;
    s.options
        .extra_env
        .push(("XTRACT_STORAGE_BUCKET".into(), "missing".into()));
    let ran = s.xtract(&["doctor"]).await;
    assert!(!ran.status.success());
    let line = ran.lines_starting("FAIL  storage").join("");
    assert!(line.contains("create the bucket"), "{}", ran.stdout);
    assert!(!ran.stdout.contains(KEY) && !ran.stderr.contains(KEY));
}

/// Storage answering with a server error (an outage, a gateway in
/// trouble): doctor's line says what to do after "→", not nothing (found
/// against the real server: "→ " ended the line).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_gives_advice_when_storage_answers_with_a_server_error() {
    let double = StorageDouble::start(false, None).await;
    double.go_down(Fault::Reply(503, "upstream connect error".into()));
    let s = Stage::new()
        .real_ytdlp()
        .envs(double.daemon_env(KEY))
        .prepare()
        .await;
    let ran = s.xtract(&["doctor"]).await;
    let line = ran.lines_starting("FAIL  storage").join("");
    assert!(line.contains("503"), "{ran}");
    let advice = line.rsplit_once(" → ").map(|(_, a)| a.trim()).unwrap_or("");
    assert!(advice.len() > 20, "no advice after →: {line}");
    assert!(advice.contains("again"), "{line}");
}

// ---- Supabase keys as they are in late 2026 ----

#[tokio::test]
async fn a_secret_key_travels_in_apikey_alone() {
    use support::storage_double::SECRET_KEY;
    let double = StorageDouble::start(true, None).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = file(&dir, "a.m4a", 1000, 13);
    let store = SupabaseStorage::connect(&settings(&double, SECRET_KEY, "audio-files"))
        .await
        .unwrap();
    assert_eq!(store.key_kind(), &KeyKind::Secret);
    store.put("u/j.m4a", &path, "audio/mp4").await.unwrap();
    assert!(double.object("audio-files/u/j.m4a").unwrap().data == data);
    for seen in double.log() {
        assert_eq!(seen.apikey.as_deref(), Some(SECRET_KEY), "{seen:?}");
        assert_eq!(seen.authorization, None, "{seen:?}");
        // The gateway refuses secret keys from browsers: we say what we are.
        let ua = seen.user_agent.unwrap_or_default();
        assert!(ua.starts_with("xtract/"), "{ua}");
    }
}

#[tokio::test]
async fn the_public_keys_are_named_and_refused_before_any_request() {
    use support::storage_double::{ANON_KEY, PUBLISHABLE_KEY};
    let double = StorageDouble::start(true, None).await;
    for (key, kind) in [(PUBLISHABLE_KEY, "publishable key"), (ANON_KEY, "anon key")] {
        let e = SupabaseStorage::connect(&settings(&double, key, "audio-files"))
            .await
            .unwrap_err();
        let text = format!("{e}{}", e.advice());
        assert!(text.contains("this is the public key"), "{text}");
        assert!(text.contains("use the secret (service role) key"), "{text}");
        assert!(text.contains(kind), "{text}");
        assert!(!text.contains("create the bucket"), "{text}");
        assert!(!text.contains(&key[16..]), "the key itself: {text}");
    }
    assert!(double.log().is_empty(), "asked the server anyway");
}

#[tokio::test]
async fn a_url_that_does_not_lead_to_storage_is_a_wrong_url_not_a_missing_bucket() {
    let double = StorageDouble::start(true, None).await;
    // The Storage URL copied from the dashboard: refused by the configuration.
    let e = xtract::ops::config::Config::from_lookup(|k| match k {
        "SUPABASE_URL" => Some(format!("{}/storage/v1", double.url)),
        "SUPABASE_SERVICE_ROLE_KEY" => Some(KEY.into()),
        "XTRACT_YTDLP" | "XTRACT_FFMPEG" | "XTRACT_FFPROBE" => Some("/bin/true".into()),
        _ => None,
    })
    .unwrap()
    .supabase
    .unwrap_err();
    assert_eq!(e.var, "SUPABASE_URL");
    assert!(e.reason.contains("has a path"), "{e}");
    // A host that answers, but not as Storage (another web server).
    let elsewhere = xtract::ops::media_server::MediaServer::start(&support::media().dir)
        .await
        .unwrap();
    let mut wrong = settings(&double, KEY, "audio-files");
    wrong.url = elsewhere.url("").parse().unwrap();
    let e = SupabaseStorage::connect(&wrong).await.unwrap_err();
    assert!(
        matches!(e, xtract::storage::supabase::StorageError::WrongUrl(_)),
        "{e:?}"
    );
    assert!(e.advice().contains("SUPABASE_URL"), "{}", e.advice());
    assert!(!e.is_missing_bucket());
}

#[test]
fn size_limits_read_as_they_were_set() {
    use xtract::storage::supabase::human_size;
    assert_eq!(human_size(10_000_000), "10 MB");
    assert_eq!(human_size(50 * 1024 * 1024), "50 MB");
    assert_eq!(human_size(100_000), "100 KB");
    assert_eq!(human_size(102_400), "100 KB");
    assert_eq!(human_size(12_345_678), "12.3 MB");
    assert_eq!(human_size(5_000_000_000), "5 GB");
    assert_eq!(human_size(512), "512 bytes");
}

#[tokio::test]
async fn size_limit_messages_show_the_limit_as_set() {
    for (limit, shown) in [(10_000_000u64, "10 MB"), (100_000, "100 KB")] {
        let double = StorageDouble::start(true, Some(limit)).await;
        let e = Upload::on(double, limit as usize + 1, 14)
            .await
            .put()
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::TooLarge);
        assert!(
            e.message.contains(&format!("the limit is {shown}")),
            "{}",
            e.message
        );
    }
}

#[tokio::test]
async fn a_limit_lowered_after_start_is_the_one_named() {
    let up = Upload::of(9_000_000, 21).await;
    up.double.add_bucket("audio-files", true, Some(8_000_000));
    let e = up.put().await.unwrap_err();
    assert_eq!(e.code, ErrorCode::TooLarge);
    assert!(e.message.contains("the limit is 8 MB"), "{}", e.message);
}

/// Copying u1/j1.m4a (4000 bytes) to u2/j2.m4a is refused for good as too
/// large, naming `limit`, and writes nothing.
async fn assert_copy_refused(double: &StorageDouble, store: &SupabaseStorage, limit: &str) {
    let e = store
        .copy("u1/j1.m4a", "u2/j2.m4a", 4000)
        .await
        .unwrap_err();
    assert_eq!((e.code, e.retry), (ErrorCode::TooLarge, Retry::Never));
    assert!(e.message.contains(limit), "{}", e.message);
    assert!(double.object("audio-files/u2/j2.m4a").is_none());
}

#[tokio::test]
async fn a_copy_respects_the_buckets_size_limit_like_an_upload() {
    let double = StorageDouble::start(true, Some(3000)).await;
    double.put_object("audio-files/u1/j1.m4a", vec![7; 4000]);
    assert_copy_refused(&double, &client(&double).await, "3 KB").await;
}

/// An operator changes the bucket's limit while the daemon runs: a copy is
/// judged by the limit as it is now, both ways (found against the real
/// server: the limit read at start was used until a restart).
#[tokio::test]
async fn a_copy_is_checked_against_the_limit_as_it_is_now() {
    // Lowered after start: the larger copy is refused, naming the new limit.
    let double = StorageDouble::start(true, None).await;
    let store = client(&double).await;
    double.put_object("audio-files/u1/j1.m4a", vec![7; 4000]);
    double.add_bucket("audio-files", true, Some(3000));
    assert_copy_refused(&double, &store, "3 KB").await;

    // Raised, then removed, after start: the copy goes through.
    let double = StorageDouble::start(true, Some(3000)).await;
    let store = client(&double).await;
    double.put_object("audio-files/u1/j1.m4a", vec![7; 4000]);
    double.add_bucket("audio-files", true, Some(5000));
    store.copy("u1/j1.m4a", "u2/j2.m4a", 4000).await.unwrap();
    double.add_bucket("audio-files", true, None);
    store.copy("u1/j1.m4a", "u3/j3.m4a", 4000).await.unwrap();
    assert!(double.object("audio-files/u3/j3.m4a").unwrap().data == vec![7; 4000]);

    // The bucket cannot be read just then: the limit known at start judges
    // the copy (as it names an upload's), not the failed read.
    let double = StorageDouble::start(true, Some(3000)).await;
    let store = client(&double).await;
    double.put_object("audio-files/u1/j1.m4a", vec![7; 4000]);
    let refused = r#"{"statusCode":"403","error":"Unauthorized","message":"new row violates row-level security policy"}"#;
    double.fail_next(
        "GET",
        "/bucket/audio-files",
        Fault::Reply(403, refused.into()),
    );
    assert_copy_refused(&double, &store, "3 KB").await;
}

// ---- Resumable uploads as the real server behaves ----

#[tokio::test]
async fn a_resumable_upload_onto_an_existing_object_replaces_it() {
    let up = Upload::of(13 * MB, 15).await;
    let double = &up.double;
    // An earlier attempt of the job finished its upload.
    double.put_object("audio-files/u/j.m4a", vec![1; 10]);
    up.put().await.unwrap();
    assert!(up.landed());
    let patches = up.seen("PATCH");
    assert_eq!(patches.len(), 3);
    assert!(patches.iter().all(|p| p.upsert), "x-upsert on every PATCH");
}

/// The real server builds a TUS Location from the request's host and
/// forwarded headers, and with NODE_ENV=production always says https://:
/// behind plain http every PATCH then failed on TLS. The Location's path
/// is resolved against SUPABASE_URL; hosted Supabase's shape (the project
/// URL itself) and a relative Location keep working.
#[tokio::test]
async fn a_tus_location_is_followed_on_the_configured_url() {
    let up = Upload::of(7 * MB, 22).await.tries(2);
    let double = &up.double;
    let https = double.url.replacen("http://", "https://", 1);
    for location_base in [https.as_str(), "", double.url.as_str()] {
        double.hand_out_locations_on(location_base);
        let object = format!("u/{}.m4a", location_base.len());
        up.store
            .put(&object, &up.path, "audio/mp4")
            .await
            .unwrap_or_else(|e| panic!("Location on {location_base:?}: {}", e.detail));
        assert!(
            double
                .object(&format!("audio-files/{object}"))
                .unwrap()
                .data
                == up.data
        );
    }
    assert_eq!(
        up.requests("PATCH"),
        3 * 2,
        "two chunks per upload, none lost to TLS"
    );
}

#[tokio::test]
async fn already_exists_is_not_an_offset_disagreement() {
    let up = Upload::of(13 * MB, 16).await;
    let double = &up.double;
    up.fail_chunk(0, Fault::Reply(409, "The resource already exists".into()));
    let e = up.put().await.unwrap_err();
    assert_eq!((e.code, e.retry), (ErrorCode::Storage, Retry::Never));
    assert!(e.detail.contains("already exists"), "{}", e.detail);
    assert!(
        !double.log().iter().any(|s| s.method == "HEAD"),
        "asked for the offset of a refused upload"
    );
    support::eventually(
        "the refused upload to be terminated",
        std::time::Duration::from_secs(10),
        || async { (double.open_uploads() == 0).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn plain_text_tus_errors_are_read_from_the_status() {
    let double = StorageDouble::start(true, Some(10_000_000)).await;
    let up = Upload::on(double, 11 * MB, 17).await.tries(1);
    let e = up.put().await.unwrap_err();
    assert_eq!(e.code, ErrorCode::TooLarge);
    assert!(e.message.contains("10 MB"), "{}", e.message);
    assert!(e.detail.contains("Maximum size exceeded"), "{}", e.detail);

    // The bucket deleted after the daemon started: the create says so in
    // plain text.
    up.double.fail_next(
        "POST",
        "/upload/resumable",
        Fault::Reply(404, "Bucket not found".into()),
    );
    let (under_the_limit, _) = up.another("b.m4a", 7 * MB, 18);
    let e = up
        .store
        .put("u/k.m4a", &under_the_limit, "audio/mp4")
        .await
        .unwrap_err();
    assert_eq!((e.code, e.retry), (ErrorCode::Storage, Retry::Never));
    assert!(e.message.contains("bucket does not exist"), "{}", e.message);
}

#[tokio::test]
async fn an_abandoned_resumable_upload_is_terminated() {
    let up = Upload::of(13 * MB, 19).await.tries(2);
    let double = &up.double;
    // Fails for good after the first chunk (two tries of the second).
    for skip in [1, 0] {
        up.fail_chunk(skip, Fault::Reply(500, "Internal Server Error".into()));
    }
    up.put().await.unwrap_err();
    let terminated =
        support::eventually("the DELETE", std::time::Duration::from_secs(10), || async {
            double
                .log()
                .into_iter()
                .find(|s| s.method == "DELETE" && s.path.contains("/upload/resumable/"))
        })
        .await;
    assert_eq!(terminated.tus_resumable.as_deref(), Some("1.0.0"));
    assert_eq!(double.open_uploads(), 0);
}

/// A job run again (its object already stored) is cancelled mid-upload:
/// the partial upload is terminated (with x-upsert, or the server refuses),
/// the earlier object stays, and a daemon exiting right away still waits
/// for the termination.
#[tokio::test]
async fn a_cancelled_resumable_upload_is_terminated() {
    let up = Upload::of(13 * MB, 20).await;
    let (double, store) = (&up.double, &up.store);
    double.put_object("audio-files/u/j.m4a", vec![5; 100]);
    // The second chunk never gets an answer; the job is cancelled meanwhile.
    up.fail_chunk(1, Fault::Hang);
    let upload = up.put();
    tokio::select! {
        _ = upload => panic!("the upload finished"),
        _ = support::eventually("the second chunk", std::time::Duration::from_secs(20), || async {
            (up.requests("PATCH") == 2).then_some(())
        }) => {}
    }
    store.finish(std::time::Duration::from_secs(10)).await;
    let terminate = double
        .log()
        .into_iter()
        .find(|s| s.method == "DELETE" && s.path.contains("/upload/resumable/"))
        .expect("a termination before finish returned");
    assert!(terminate.upsert, "{terminate:?}");
    assert_eq!(double.open_uploads(), 0);
    assert_eq!(
        double.object("audio-files/u/j.m4a").unwrap().data,
        vec![5; 100]
    );
}

/// A job run again after its upload finished (an operator's retry, a crash
/// between upload and write-back) goes up resumably onto its own object:
/// the real server would refuse every PATCH without x-upsert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumable_job_retried_after_completion_uploads_again() {
    let double = StorageDouble::start(false, None).await;
    double.add_bucket("podcasts", false, None);
    let server = media_server().await;
    let s = Stage::new()
        .real_ytdlp()
        // Today's kind of key.
        .envs(double.daemon_env(support::storage_double::SECRET_KEY))
        .env("XTRACT_STORAGE_BUCKET", "podcasts")
        // Every file goes up resumably.
        .env("XTRACT_RESUMABLE_THRESHOLD_MB", "0.001")
        .prepare()
        .await;
    let id = s.enqueue(&server.url("clip.mp4")).await;
    for run in 0..2 {
        if run == 1 {
            // The operator retries the completed job.
            s.operator_sets(id, "pending").await;
        }
        run_until_idle(&s).await;
        let row = s.job(id).await;
        assert_eq!(row["status"], "completed", "run {run}: {row}");
        assert_eq!(row["attempts"], 1, "run {run}: one attempt, no 409 loop");
    }
    let path = format!("{USER}/{id}.m4a");
    let object = double.object(&format!("podcasts/{path}")).unwrap();
    let log = double.log();
    let creates = log
        .iter()
        .filter(|s| s.method == "POST" && s.path.ends_with("/upload/resumable"))
        .count();
    let patches: Vec<_> = log.iter().filter(|s| s.method == "PATCH").collect();
    assert_eq!(creates, 2, "one upload per run");
    assert_eq!(patches.len(), 2);
    assert!(patches.iter().all(|p| p.upsert), "x-upsert on every PATCH");
    assert!(log.iter().all(|s| s.authorization.is_none()));
    let audio = s.audio(id).await.expect("an audio row");
    assert_eq!(audio["file_size"], object.data.len());
    // The users' storage policy reads the bucket the daemon uses.
    let bucket: String = s
        .client
        .query_one("SELECT storage_bucket FROM xtract.settings", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(bucket, "podcasts");
}

/// The double is as strict as the real server's TUS handler (@tus/server):
/// a request without `Tus-Resumable` is refused with 412, a PATCH that is
/// not an offset stream with 400. (The client sends both on every TUS
/// request: every resumable test above would fail without them.)
#[tokio::test]
async fn the_double_refuses_tus_requests_without_the_protocol_header() {
    let double = StorageDouble::start(true, None).await;
    use base64::Engine;
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    let create = |tus: Option<&str>| {
        let mut r = reqwest::Client::new()
            .post(format!("{}/storage/v1/upload/resumable", double.url))
            .header("apikey", KEY)
            .header("authorization", format!("Bearer {KEY}"))
            .header("upload-length", "10")
            .header(
                "upload-metadata",
                format!(
                    "bucketName {},objectName {}",
                    b64("audio-files"),
                    b64("u/j.m4a")
                ),
            );
        if let Some(v) = tus {
            r = r.header("tus-resumable", v);
        }
        r.send()
    };
    let refused = create(None).await.unwrap();
    assert_eq!(refused.status(), 412);
    assert_eq!(refused.text().await.unwrap(), "Tus-Resumable Required\n");
    assert_eq!(create(Some("0.2.2")).await.unwrap().status(), 400);
    let created = create(Some("1.0.0")).await.unwrap();
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_string();
    let chunk = reqwest::Client::new()
        .patch(location)
        .header("apikey", KEY)
        .header("authorization", format!("Bearer {KEY}"))
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(chunk.status(), 400);
    assert_eq!(chunk.text().await.unwrap(), "Invalid content-type\n");
}
