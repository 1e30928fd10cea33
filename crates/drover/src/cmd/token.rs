//! `drover token create|list|revoke`: the join tokens other machines join with
//! (kubeadm's bootstrap tokens: Secrets `bootstrap-token-<id>` in kube-system), run on
//! the server machine with the admin kubeconfig.

use anyhow::{Context, bail};
use apiserver::join::{self, JoinToken};
use base64::Engine;
use std::path::PathBuf;

/// Flags of `drover token`.
#[derive(clap::Args)]
pub struct Args {
    /// The server's data directory (its kubeconfig and ca.crt are used).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Create a join token and print it.
    Create {
        /// How long the token is valid (e.g. 24h, 30m, 1h30m; 0 never expires).
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// A note shown by `drover token list`.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the join tokens.
    List,
    /// Revoke a join token (by id, or the whole token).
    Revoke {
        /// The token id (the 6 characters after `drv1.`) or the token.
        id: String,
    },
}

/// Parses `24h`, `30m`, `90s`, `1h30m`, `2d` or `0` into seconds.
pub fn parse_ttl(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    if s == "0" {
        return Ok(0);
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => bail!("--ttl {s:?}: unknown unit {c:?} (use s, m, h or d, e.g. 24h)"),
        };
        let n: u64 = num
            .parse()
            .with_context(|| format!("--ttl {s:?}: a number must come before {c:?}"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        num.clear();
    }
    if !num.is_empty() || total == 0 {
        bail!("--ttl {s:?} must be a duration such as 24h, 30m or 1h30m (or 0 for never)");
    }
    Ok(total)
}

fn field(secret: &serde_json::Value, key: &str) -> Option<String> {
    let raw = secret["data"][key].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
    String::from_utf8(bytes).ok()
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = args.data_dir.unwrap_or_else(super::default_data_dir);
    let kubeconfig = dir.join("kubeconfig");
    let client = client::Client::from_kubeconfig_file(&kubeconfig).with_context(|| {
        format!(
            "cannot use {}; run this on the server machine (or pass its --data-dir)",
            kubeconfig.display()
        )
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let secrets = client::Resource::SECRETS;
    runtime.block_on(async move {
        match args.command {
            Command::Create { ttl, description } => {
                let seconds = parse_ttl(&ttl)?;
                let ca_path = dir.join("ca.crt");
                let ca = std::fs::read_to_string(&ca_path)
                    .with_context(|| format!("cannot read {}", ca_path.display()))?;
                let t = JoinToken::generate(&join::ca_hash(&ca)?);
                let expiration = (seconds > 0).then(|| {
                    let at = time::OffsetDateTime::now_utc()
                        + time::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 2));
                    at.format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default()
                });
                let secret = join::bootstrap_secret(&t, expiration.as_deref(), &description);
                client
                    .create(&secrets, Some("kube-system"), &secret, &Default::default())
                    .await
                    .context("cannot store the token")?;
                println!("{t}");
            }
            Command::List => {
                let list = client
                    .list(&secrets, Some("kube-system"), &Default::default())
                    .await
                    .context("cannot list the tokens")?;
                println!("{:<8}{:<24}DESCRIPTION", "ID", "EXPIRES");
                let now = time::OffsetDateTime::now_utc();
                for s in list
                    .items
                    .iter()
                    .filter(|s| s["type"] == join::BOOTSTRAP_SECRET_TYPE)
                {
                    let id = field(s, "token-id").unwrap_or_default();
                    let exp = match field(s, "expiration") {
                        None => "never".to_string(),
                        Some(e) => match time::OffsetDateTime::parse(
                            &e,
                            &time::format_description::well_known::Rfc3339,
                        ) {
                            Ok(at) if at <= now => format!("{e} (expired)"),
                            _ => e,
                        },
                    };
                    let desc = field(s, "description").unwrap_or_default();
                    println!("{id:<8}{exp:<24}{desc}");
                }
            }
            Command::Revoke { id } => {
                let id = match JoinToken::parse(&id) {
                    Ok(t) => t.id,
                    Err(_) => id,
                };
                let name = format!("{}{id}", join::BOOTSTRAP_SECRET_PREFIX);
                match client
                    .delete(&secrets, Some("kube-system"), &name, &Default::default())
                    .await
                {
                    Ok(_) => println!("join token {id} revoked"),
                    Err(e) if e.is_not_found() => bail!("there is no join token {id}"),
                    Err(e) => return Err(e).context("cannot revoke the token"),
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("24h").unwrap(), 86400);
        assert_eq!(parse_ttl("1h30m").unwrap(), 5400);
        assert_eq!(parse_ttl("0").unwrap(), 0);
        assert!(parse_ttl("5").is_err());
        assert!(parse_ttl("5y").is_err());
    }
}
