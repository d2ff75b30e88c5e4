//! `berth registry`: run a registry of berth's own (`serve`) and collect its garbage (`gc`).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use berth_engine::registry::{
    serve_registry, AuthConfig, GcOptions, ServerConfig, ServerConfigFile, TlsMode,
};
use clap::{Args, Subcommand};

use super::GlobalOpts;

/// `registry COMMAND`
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Serve the OCI distribution API.
    Serve(ServeArgs),
    /// Delete blobs that no manifest references.
    Gc(GcArgs),
}

/// `registry serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port, printed at start).
    #[arg(long)]
    pub addr: Option<String>,
    /// Storage directory (default: ROOT/registry), or `s3://BUCKET/PREFIX` for an S3 bucket
    /// (endpoint, region and keys from AWS_ENDPOINT_URL[_S3], AWS_REGION, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, else `[registry.s3]` of the config).
    #[arg(long)]
    pub storage: Option<PathBuf>,
    /// With S3 storage: answer blob GETs with a redirect to a presigned URL of the object.
    #[arg(long = "s3-redirect")]
    pub s3_redirect: bool,
    /// Configuration file (berth.toml style: a `[registry]` table).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// TLS certificate (PEM).
    #[arg(long = "tls-cert", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long = "tls-key", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve TLS with a certificate made at start (for trying things out).
    #[arg(long = "tls-self-signed", conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
    /// htpasswd file of users (bcrypt, `htpasswd -B`); enables authentication.
    #[arg(long)]
    pub htpasswd: Option<PathBuf>,
    /// Life of access tokens, seconds (default 300; `token_ttl` in the config).
    #[arg(long = "token-ttl", value_name = "SECONDS")]
    pub token_ttl: Option<u64>,
    /// Life of refresh tokens, the logins clients keep, seconds (default 7776000, 90 days;
    /// `refresh_token_ttl` in the config).
    #[arg(long = "refresh-token-ttl", value_name = "SECONDS")]
    pub refresh_token_ttl: Option<u64>,
}

/// `registry gc`
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Storage directory (default: ROOT/registry), or `s3://BUCKET/PREFIX`.
    #[arg(long)]
    pub storage: Option<PathBuf>,
    /// Configuration file (for its storage setting).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Report what would be deleted, delete nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Keep unreferenced blobs stored or touched less than this many seconds ago (default
    /// 3600): pushes upload blobs before their manifest. Below 60 a collection is safe only
    /// while no push runs.
    #[arg(long = "min-age", value_name = "SECONDS")]
    pub min_age: Option<u64>,
    /// Remove upload sessions untouched for this many seconds (default 86400).
    #[arg(long = "upload-max-age", value_name = "SECONDS")]
    pub upload_max_age: Option<u64>,
}

fn load(config: &Option<PathBuf>) -> anyhow::Result<ServerConfigFile> {
    Ok(match config {
        Some(p) => {
            ServerConfigFile::load(p).map_err(berth_engine::registry::RegistryError::from)?
        }
        None => ServerConfigFile::default(),
    })
}

/// Runs `registry ...`.
pub fn run(g: &GlobalOpts, c: RegistryCommand) -> anyhow::Result<i32> {
    match c {
        RegistryCommand::Serve(a) => serve(g, a),
        RegistryCommand::Gc(a) => crate::exit::status_1(|| gc(g, a)),
    }
}

fn serve(g: &GlobalOpts, a: ServeArgs) -> anyhow::Result<i32> {
    let file = load(&a.config)?;
    let defaults = ServerConfig::default();
    let mut auth: AuthConfig = file.auth.clone().unwrap_or_default();
    if let Some(h) = a.htpasswd.clone() {
        auth.htpasswd = Some(h);
    }
    auth.token_ttl = a.token_ttl.or(auth.token_ttl);
    auth.refresh_token_ttl = a.refresh_token_ttl.or(auth.refresh_token_ttl);
    let tls = if a.tls_self_signed {
        TlsMode::SelfSigned
    } else if let (Some(cert), Some(key)) = (
        a.tls_cert.clone().or(file.tls_cert.clone()),
        a.tls_key.clone().or(file.tls_key.clone()),
    ) {
        TlsMode::Files { cert, key }
    } else {
        TlsMode::Off
    };
    let https = !matches!(tls, TlsMode::Off);
    let storage = a
        .storage
        .or(file.storage.clone())
        .unwrap_or_else(|| g.root.join("registry"));
    let mut config = ServerConfig {
        addr: a.addr.or(file.addr.clone()).unwrap_or(defaults.addr),
        storage: storage.clone(),
        s3: None,
        tls,
        auth,
        max_manifest_size: file.max_manifest_size.unwrap_or(defaults.max_manifest_size),
        tag_cache: file
            .tag_cache_ms
            .map(Duration::from_millis)
            .unwrap_or(defaults.tag_cache),
        upload_max_age: file
            .upload_max_age_secs
            .map(Duration::from_secs)
            .unwrap_or(defaults.upload_max_age),
        manifest_put_deadline: defaults.manifest_put_deadline,
    };
    config
        .set_storage(&storage, file.s3.as_ref())
        .map_err(berth_engine::registry::RegistryError::from)?;
    if let Some(s3) = config.s3.as_mut() {
        s3.redirect |= a.s3_redirect;
    } else if a.s3_redirect {
        anyhow::bail!("--s3-redirect needs S3 storage (--storage s3://BUCKET/PREFIX)");
    }
    serve_registry(&config, |addr| {
        let scheme = if https { "https" } else { "http" };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {scheme}://{addr}");
        let _ = out.flush();
    })?;
    Ok(0)
}

fn gc(g: &GlobalOpts, a: GcArgs) -> anyhow::Result<i32> {
    let file = load(&a.config)?;
    let storage = a
        .storage
        .or(file.storage.clone())
        .unwrap_or_else(|| g.root.join("registry"));
    let defaults = GcOptions::default();
    let mut config = ServerConfig::default();
    config
        .set_storage(&storage, file.s3.as_ref())
        .map_err(berth_engine::registry::RegistryError::from)?;
    let report = config
        .collect_garbage(&GcOptions {
            dry_run: a.dry_run,
            blob_min_age: a
                .min_age
                .map(Duration::from_secs)
                .unwrap_or(defaults.blob_min_age),
            upload_max_age: a
                .upload_max_age
                .or(file.upload_max_age_secs)
                .map(Duration::from_secs)
                .unwrap_or(defaults.upload_max_age),
            ..defaults
        })
        .map_err(berth_engine::registry::RegistryError::from)?;
    let verb = if a.dry_run {
        "would be deleted"
    } else {
        "deleted"
    };
    for d in &report.swept {
        println!("blob {d} {verb}");
    }
    // (a dry run does not look for temp files)
    let temps = if a.dry_run {
        String::new()
    } else {
        format!(", {} temp files deleted", report.debris_removed)
    };
    println!(
        "{} blobs marked, {} blobs {verb} ({} bytes), {} stale uploads {verb}{temps}",
        report.marked,
        report.swept.len(),
        report.bytes_freed,
        report.uploads_removed,
    );
    Ok(0)
}
