//! `drover image`: the node's image store (the same one the agent under DATA_DIR uses).

use anyhow::Context;
use std::path::PathBuf;

/// Flags of `drover image`.
#[derive(clap::Args)]
pub struct Args {
    /// The server's or agent's data directory (images live in DIR/agent/images).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Load an OCI image archive, OCI layout directory or docker-archive (`docker save`).
    Import {
        /// The archive or layout.
        file: PathBuf,
    },
    /// List images.
    Ls,
    /// Remove an image by reference or id.
    Rm {
        /// Reference or id.
        image: String,
    },
    /// Write an OCI archive of a minimal busybox image built from Debian's static busybox
    /// (for demos and tests on machines that reach no registry).
    BuildBusybox {
        /// The archive to write.
        #[arg(long)]
        output: PathBuf,
        /// The image's name.
        #[arg(long, default_value = "drover.local/busybox:latest")]
        tag: String,
        /// The static busybox binary.
        #[arg(long, default_value = "/usr/bin/busybox")]
        busybox: PathBuf,
    },
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = args.data_dir.unwrap_or_else(super::default_data_dir);
    let open = || {
        images::ImageStore::open(&dir.join("agent").join("images"))
            .with_context(|| format!("cannot open the image store in {}", dir.display()))
    };
    match args.command {
        Command::Import { file } => {
            let imported = open()?
                .import(&file)
                .with_context(|| format!("cannot import {}", file.display()))?;
            for i in imported {
                println!("imported {} ({})", i.references.join(", "), i.id);
            }
        }
        Command::Ls => {
            println!("{:<60} {:<20} {:>10}", "IMAGE", "ID", "SIZE");
            for i in open()?.list()? {
                let id: String =
                    i.id.trim_start_matches("sha256:")
                        .chars()
                        .take(12)
                        .collect();
                // One line per name, as `docker images` shows tags of one image.
                let names = if i.references.is_empty() {
                    vec!["<none>".to_string()]
                } else {
                    i.references.clone()
                };
                for name in names {
                    println!("{name:<60} {id:<20} {:>9.1}M", i.size as f64 / 1_048_576.0);
                }
            }
        }
        Command::Rm { image } => {
            open()?.remove(&image)?;
            println!("removed {image}");
        }
        Command::BuildBusybox {
            output,
            tag,
            busybox,
        } => {
            images::busybox::write_oci_archive(&busybox, &tag, &output).with_context(|| {
                format!("cannot build the busybox image from {}", busybox.display())
            })?;
            println!("wrote {} ({tag})", output.display());
        }
    }
    Ok(())
}
