//! Pulling images from OCI distribution registries.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use oci_client::Reference;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth as OciAuth;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::io_err;
use crate::layers::{hex_digest, unpack_layer};
use crate::reference::{ParsedRef, is_insecure};
use crate::store::{Inner, LayerRec, NewImage, digest_hex};
use crate::{Image, ImageConfig, ImageError, PullOptions, PullProgress};

/// Report progress at most every this many bytes (plus at the end of each layer).
const PROGRESS_STEP: u64 = 512 * 1024;

/// The subset of an OCI/Docker image config the store keeps.
#[derive(serde::Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    config: Option<ContainerConfig>,
    #[serde(default)]
    rootfs: Option<RootFs>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ContainerConfig {
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// Parses an image config blob into the run settings and the layers' diff ids.
pub(crate) fn parse_config(bytes: &[u8]) -> Result<(ImageConfig, Vec<String>), ImageError> {
    let f: ConfigFile = serde_json::from_slice(bytes)
        .map_err(|e| ImageError::Format(format!("image config is not valid JSON: {e}")))?;
    let c = f.config.unwrap_or_default();
    let config = ImageConfig {
        entrypoint: c.entrypoint.unwrap_or_default(),
        cmd: c.cmd.unwrap_or_default(),
        env: c.env.unwrap_or_default(),
        working_dir: c.working_dir.unwrap_or_default(),
        user: c.user.unwrap_or_default(),
    };
    let diff_ids = f.rootfs.map(|r| r.diff_ids).unwrap_or_default();
    for d in &diff_ids {
        digest_hex(d)?;
    }
    Ok((config, diff_ids))
}

/// Unpacks every layer that is not unpacked yet (blocking; run off the async threads).
pub(crate) fn unpack_layers(inner: &Inner, layers: &[LayerRec]) -> Result<(), ImageError> {
    for l in layers {
        let dest = inner.layer_path(&l.diff_id)?;
        unpack_layer(&inner.blob_path(&l.digest)?, &l.diff_id, &dest)?;
    }
    Ok(())
}

/// Maps registry client errors onto what the agent needs to tell apart.
struct ErrCtx {
    reference: String,
    registry: String,
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

impl ErrCtx {
    fn not_found(&self, detail: String) -> ImageError {
        ImageError::NotFound {
            reference: self.reference.clone(),
            detail,
        }
    }
    fn unauthorized(&self, detail: String) -> ImageError {
        ImageError::Unauthorized {
            registry: self.registry.clone(),
            reference: self.reference.clone(),
            detail,
        }
    }
    fn unreachable(&self, detail: String) -> ImageError {
        ImageError::Unreachable {
            registry: self.registry.clone(),
            reference: self.reference.clone(),
            detail,
        }
    }
    fn registry(&self, detail: String) -> ImageError {
        ImageError::Registry {
            reference: self.reference.clone(),
            detail,
        }
    }

    fn classify(&self, e: OciDistributionError) -> ImageError {
        use OciDistributionError as E;
        match e {
            E::RequestError(re) => self.unreachable(error_chain(&re)),
            E::AuthenticationFailure(m) => self.unauthorized(m),
            E::UnauthorizedError { url } => {
                self.unauthorized(format!("401 Unauthorized from {url}"))
            }
            E::ImageManifestNotFoundError(m) => self.not_found(m),
            E::RegistryError { envelope, url } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|x| &x.code).collect();
                let detail = format!(
                    "{} ({url})",
                    envelope
                        .errors
                        .iter()
                        .map(|x| format!("{:?}: {}", x.code, x.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                );
                if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    self.unauthorized(detail)
                } else if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::NotFound
                            | OciErrorCode::BlobUnknown
                    )
                }) {
                    self.not_found(detail)
                } else {
                    self.registry(detail)
                }
            }
            E::ServerError { code, url, message } => match code {
                404 => self.not_found(format!("404 from {url}: {message}")),
                401 | 403 => self.unauthorized(format!("{code} from {url}: {message}")),
                _ => self.registry(format!("HTTP {code} from {url}: {message}")),
            },
            E::DigestError(DigestError::VerificationError { expected, actual }) => {
                ImageError::DigestMismatch { expected, actual }
            }
            E::IoError(io) => io_err(format!("pulling {}", self.reference), io),
            e @ (E::ManifestParsingError(_)
            | E::VersionedParsingError(_)
            | E::UnsupportedMediaTypeError(_)
            | E::UnsupportedSchemaVersionError(_)
            | E::ImageIndexParsingNoPlatformResolverError
            | E::JsonError(_)) => ImageError::Format(format!("{}: {e}", self.reference)),
            other => self.registry(error_chain(&other)),
        }
    }
}

fn make_client(registry: &str, opts: &PullOptions) -> Result<oci_client::Client, ImageError> {
    // reqwest is built without a built-in crypto provider; use ring like the rest of the workspace.
    // Failing means another provider is already installed, which is just as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let protocol = if is_insecure(registry, &opts.insecure_registries) {
        ClientProtocol::Http
    } else {
        ClientProtocol::Https
    };
    let config = ClientConfig {
        protocol,
        connect_timeout: Some(Duration::from_secs(15)),
        read_timeout: Some(Duration::from_secs(120)),
        user_agent: "drover-agent",
        ..Default::default()
    };
    oci_client::Client::try_from(config).map_err(|e| {
        ImageError::Format(format!(
            "cannot build the registry client: {}",
            error_chain(&e)
        ))
    })
}

/// Downloads one blob into `dest`, hashing it on the way; a mismatch deletes the file.
async fn download(
    client: &oci_client::Client,
    oref: &Reference,
    desc: &OciDescriptor,
    dest: &Path,
    ctx: &ErrCtx,
    progress: Option<&(dyn Fn(PullProgress) + Send + Sync)>,
) -> Result<(), ImageError> {
    let res = download_inner(client, oref, desc, dest, ctx, progress).await;
    if res.is_err() {
        let _ = tokio::fs::remove_file(dest).await;
    }
    res
}

async fn download_inner(
    client: &oci_client::Client,
    oref: &Reference,
    desc: &OciDescriptor,
    dest: &Path,
    ctx: &ErrCtx,
    progress: Option<&(dyn Fn(PullProgress) + Send + Sync)>,
) -> Result<(), ImageError> {
    let mut stream = client
        .pull_blob_stream(oref, desc)
        .await
        .map_err(|e| ctx.classify(e))?;
    let mut file = tokio::fs::File::create(dest)
        .await
        .map_err(ImageError::io(format!("creating {}", dest.display())))?;
    let mut hasher = Sha256::new();
    let total = desc.size.max(0) as u64;
    let (mut done, mut reported) = (0u64, 0u64);
    if let Some(p) = progress {
        p(PullProgress {
            layer: desc.digest.clone(),
            done_bytes: 0,
            total_bytes: total,
        });
    }
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                // oci-client's own verification surfaces as an io::Error wrapping a DigestError.
                if let Some(DigestError::VerificationError { expected, actual }) =
                    e.get_ref().and_then(|i| i.downcast_ref::<DigestError>())
                {
                    return Err(ImageError::DigestMismatch {
                        expected: expected.clone(),
                        actual: actual.clone(),
                    });
                }
                return Err(ctx.unreachable(format!(
                    "downloading {}: {}",
                    desc.digest,
                    error_chain(&e)
                )));
            }
        };
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(ImageError::io(format!("writing {}", dest.display())))?;
        done += chunk.len() as u64;
        if let Some(p) = progress
            && done - reported >= PROGRESS_STEP
        {
            reported = done;
            p(PullProgress {
                layer: desc.digest.clone(),
                done_bytes: done,
                total_bytes: total,
            });
        }
    }
    file.flush()
        .await
        .map_err(ImageError::io(format!("writing {}", dest.display())))?;
    file.sync_all()
        .await
        .map_err(ImageError::io(format!("syncing {}", dest.display())))?;
    let actual = hex_digest(hasher);
    if actual != desc.digest {
        return Err(ImageError::DigestMismatch {
            expected: desc.digest.clone(),
            actual,
        });
    }
    if let Some(p) = progress {
        p(PullProgress {
            layer: desc.digest.clone(),
            done_bytes: done,
            total_bytes: total,
        });
    }
    Ok(())
}

pub(crate) async fn pull(
    inner: &Arc<Inner>,
    r: &ParsedRef,
    opts: &PullOptions,
    progress: &(dyn Fn(PullProgress) + Send + Sync),
) -> Result<Image, ImageError> {
    if r.registry == "docker.io" {
        for m in &opts.mirrors {
            let mut via = r.clone();
            via.registry = m.trim_end_matches('/').to_string();
            match pull_via(inner, r, &via, opts, progress).await {
                Ok(img) => return Ok(img),
                Err(e) => {
                    tracing::warn!(mirror = %m, error = %e, "mirror failed; trying the next source")
                }
            }
        }
    }
    pull_via(inner, r, r, opts, progress).await
}

/// Pulls image `r` from the registry named in `via` (a mirror, or `r` itself).
async fn pull_via(
    inner: &Arc<Inner>,
    r: &ParsedRef,
    via: &ParsedRef,
    opts: &PullOptions,
    progress: &(dyn Fn(PullProgress) + Send + Sync),
) -> Result<Image, ImageError> {
    let reference = r.normalized();
    let ctx = ErrCtx {
        reference: reference.clone(),
        registry: via.registry.clone(),
    };
    let client = make_client(&via.registry, opts)?;
    let (reg, repo) = (via.registry.clone(), via.repository.clone());
    let oref = match (&r.tag, &r.digest) {
        (Some(t), Some(d)) => Reference::with_tag_and_digest(reg, repo, t.clone(), d.clone()),
        (None, Some(d)) => Reference::with_digest(reg, repo, d.clone()),
        (Some(t), None) => Reference::with_tag(reg, repo, t.clone()),
        (None, None) => Reference::with_tag(reg, repo, "latest".into()),
    };
    let auth = match &opts.auth {
        Some(a) => OciAuth::Basic(a.username.clone(), a.password.clone()),
        None => OciAuth::Anonymous,
    };
    inner.count_registry_pull();
    tracing::debug!(%reference, "resolving image manifest");
    let (manifest, manifest_digest, list_digest) = client
        .pull_image_manifest_and_list_digest(&oref, &auth)
        .await
        .map_err(|e| ctx.classify(e))?;
    let repo_digest = format!(
        "{}@{}",
        r.repo_name(),
        list_digest.unwrap_or(manifest_digest)
    );

    let mut pins = inner.pins();
    let staging = inner.staging("pull")?;
    let mut staged: Vec<(PathBuf, String)> = Vec::new();

    // The config names the image and lists the diff ids.
    let config_digest = manifest.config.digest.clone();
    digest_hex(&config_digest)?;
    pins.add(&config_digest);
    let stored = inner.blob_path(&config_digest)?;
    let config_bytes = if stored.is_file() {
        tokio::fs::read(&stored)
            .await
            .map_err(ImageError::io(format!("reading {}", stored.display())))?
    } else {
        let p = staging.0.join(digest_hex(&config_digest)?);
        download(&client, &oref, &manifest.config, &p, &ctx, None).await?;
        staged.push((p.clone(), config_digest.clone()));
        tokio::fs::read(&p)
            .await
            .map_err(ImageError::io(format!("reading {}", p.display())))?
    };
    let (config, diff_ids) = parse_config(&config_bytes)?;
    if diff_ids.len() != manifest.layers.len() {
        return Err(ImageError::Format(format!(
            "{reference}: manifest lists {} layers but the config lists {} diff ids",
            manifest.layers.len(),
            diff_ids.len()
        )));
    }

    let mut layers = Vec::new();
    for (desc, diff_id) in manifest.layers.iter().zip(diff_ids) {
        if desc.media_type.contains("encrypted") {
            return Err(ImageError::Format(format!(
                "{reference}: encrypted layers ({}) are not supported",
                desc.media_type
            )));
        }
        pins.add(&desc.digest);
        pins.add(&diff_id);
        let stored = inner.blob_path(&desc.digest)?;
        let size = desc.size.max(0) as u64;
        if stored.is_file() {
            progress(PullProgress {
                layer: desc.digest.clone(),
                done_bytes: size,
                total_bytes: size,
            });
        } else {
            let p = staging.0.join(digest_hex(&desc.digest)?);
            if !staged.iter().any(|(_, d)| *d == desc.digest) {
                download(&client, &oref, desc, &p, &ctx, Some(progress)).await?;
                staged.push((p, desc.digest.clone()));
            }
        }
        layers.push(LayerRec {
            digest: desc.digest.clone(),
            diff_id,
            media_type: desc.media_type.clone(),
            size,
        });
    }

    // Everything verified: move blobs into the store, then unpack.
    for (p, d) in &staged {
        inner.commit_blob(p, d)?;
    }
    let inner2 = inner.clone();
    let layers2 = layers.clone();
    let unpacked = tokio::task::spawn_blocking(move || unpack_layers(&inner2, &layers2))
        .await
        .map_err(|e| ImageError::Format(format!("layer unpacking task failed: {e}")))
        .and_then(|r| r);
    if let Err(e) = unpacked {
        inner.discard_blobs(&staged.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>());
        return Err(e);
    }
    drop(staging);
    let image = inner.add_image(NewImage {
        config_digest,
        layers,
        config,
        references: r.tagged().into_iter().collect(),
        repo_digests: vec![repo_digest],
    })?;
    drop(pins);
    tracing::info!(%reference, id = %image.id, "pulled image");
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_https_and_http_clients() {
        // Exercises the crypto provider setup without touching the network.
        make_client("registry.example.com", &PullOptions::default()).unwrap();
        make_client("127.0.0.1:5000", &PullOptions::default()).unwrap();
    }

    #[test]
    fn parses_configs() {
        let (c, d) = parse_config(
            br#"{"config":{"Entrypoint":["/e"],"Cmd":null,"Env":["A=1"],"WorkingDir":"/w","User":"1:2"},
                "rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}"#,
        )
        .unwrap();
        assert_eq!(c.entrypoint, vec!["/e"]);
        assert!(c.cmd.is_empty());
        assert_eq!((c.working_dir.as_str(), c.user.as_str()), ("/w", "1:2"));
        assert_eq!(d.len(), 1);
        assert!(parse_config(br#"{"rootfs":{"diff_ids":["md5:00"]}}"#).is_err());
        assert!(parse_config(b"{}").unwrap().1.is_empty());
    }
}
