//! `flotilla image ...`: import, list, inspect and remove images in the
//! local content-addressed store (flotilla_image).

use crate::context::Context;
use anyhow::{bail, Context as _, Result};
use flotilla_image::{ArchiveFormat, ImageStore, ImageSummary, ImportOptions};
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
#[command(defer = true)]
pub enum ImageCmd {
    /// Import a `docker save` archive, an OCI layout (directory or tar), or a
    /// root filesystem (tar, .tar.gz, .tar.zst or directory).
    Import {
        /// The archive or directory to import.
        path: PathBuf,
        /// Name for the image (`busybox` means `busybox:latest`); default: the
        /// names the archive carries.
        #[arg(long, short = 'n')]
        name: Option<String>,
        /// Archive format, instead of detecting it: docker-save, oci-layout or rootfs.
        #[arg(long)]
        format: Option<ArchiveFormat>,
        /// Default command for a root filesystem import: a JSON array
        /// (`["/bin/sh","-c","echo hi"]`) or words split on spaces.
        #[arg(long)]
        cmd: Option<String>,
    },
    /// List images.
    #[command(alias = "list")]
    Ls,
    /// Show an image's config, layers and names.
    Inspect {
        /// Name, ID or ID prefix.
        image: String,
    },
    /// Remove names; an image whose last name goes (or given by ID) is deleted.
    #[command(alias = "remove")]
    Rm {
        /// Names, IDs or ID prefixes.
        #[arg(required = true)]
        images: Vec<String>,
    },
}

pub fn run(ctx: &Context, cmd: ImageCmd) -> Result<u8> {
    let store = ImageStore::open(&ctx.data_dir)
        .with_context(|| format!("opening the image store in {}", ctx.data_dir.display()))?;
    match cmd {
        ImageCmd::Import {
            path,
            name,
            format,
            cmd,
        } => {
            let options = ImportOptions {
                name,
                format,
                cmd: cmd.as_deref().map(parse_cmd).transpose()?,
            };
            let summary = store
                .import_with(&path, &options)
                .with_context(|| format!("importing {}", path.display()))?;
            if !ctx.print_json(&summary)? {
                println!("Imported {} ({})", display_names(&summary), summary.id);
            }
        }
        ImageCmd::Ls => {
            let images = store.list()?;
            if !ctx.print_json(&images)? {
                print_table(&images);
            }
        }
        ImageCmd::Inspect { image } => {
            let resolved = store.resolve(&image)?;
            // Inspect output is for reading details: JSON in both modes, like `docker inspect`.
            println!("{}", serde_json::to_string_pretty(&resolved)?);
        }
        ImageCmd::Rm { images } => {
            let users = containers_by_image(ctx)?;
            let mut outcomes = Vec::new();
            for image in &images {
                refuse_if_in_use(&store, image, &users)?;
                let outcome = store.remove(image)?;
                if let Some(id) = &outcome.deleted {
                    // The per-image layer the runtime made for its starts.
                    flotilla_runtime::rootfs::remove_mount_targets(&ctx.data_dir, id);
                }
                outcomes.push(outcome);
            }
            if !ctx.print_json(&outcomes)? {
                for outcome in &outcomes {
                    for name in &outcome.untagged {
                        println!("Untagged: {name}");
                    }
                    if let Some(id) = &outcome.deleted {
                        println!("Deleted: {id}");
                    }
                }
            }
        }
    }
    Ok(0)
}

/// The names of the containers (any state) that use each image ID: their
/// root filesystems are overlays over the image's layers.
fn containers_by_image(ctx: &Context) -> Result<HashMap<String, Vec<String>>> {
    let mut users: HashMap<String, Vec<String>> = HashMap::new();
    for c in flotilla_runtime::Runtime::new(&ctx.data_dir)?.list()? {
        users.entry(c.image_id).or_default().push(c.name);
    }
    Ok(users)
}

/// Refuses, like `docker rmi`, to delete an image that a container uses;
/// removing one of several names of it only untags and is allowed.
fn refuse_if_in_use(
    store: &ImageStore,
    reference: &str,
    users: &HashMap<String, Vec<String>>,
) -> Result<()> {
    let resolved = store.resolve(reference)?;
    let untag_only = resolved.names.len() > 1
        && flotilla_image::normalize_name(reference).is_ok_and(|n| resolved.names.contains(&n));
    match users.get(&resolved.id) {
        Some(names) if !untag_only => bail!(
            "image {reference} is used by container(s) {}: remove them first (flotilla container rm -f {})",
            names.join(", "),
            names.join(" ")
        ),
        _ => Ok(()),
    }
}

/// `["a","b"]` as JSON, or `a b` split on whitespace.
fn parse_cmd(raw: &str) -> Result<Vec<String>> {
    let trimmed = raw.trim();
    let words: Vec<String> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed)
            .with_context(|| format!("--cmd {raw:?}: expected a JSON array of strings like [\"/bin/sh\",\"-c\",\"true\"]"))?
    } else {
        trimmed.split_whitespace().map(str::to_string).collect()
    };
    if words.is_empty() {
        bail!("--cmd is empty; expected a command such as /bin/sh");
    }
    Ok(words)
}

fn display_names(summary: &ImageSummary) -> String {
    if summary.names.is_empty() {
        "<none>".to_string()
    } else {
        summary.names.join(", ")
    }
}

fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

fn print_table(images: &[ImageSummary]) {
    let rows: Vec<[String; 4]> = images
        .iter()
        .flat_map(|image| {
            let names = if image.names.is_empty() {
                vec!["<none>".to_string()]
            } else {
                image.names.clone()
            };
            names.into_iter().map(move |name| {
                [
                    name,
                    short_id(&image.id).to_string(),
                    image.layers.to_string(),
                    human_size(image.size),
                ]
            })
        })
        .collect();
    let header = ["NAME", "ID", "LAYERS", "SIZE"].map(str::to_string);
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .chain([&header])
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in [&header].into_iter().chain(rows.iter()) {
        println!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
    }
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmd_parses_json_or_words() {
        assert_eq!(
            parse_cmd(r#"["/bin/sh","-c","echo hi"]"#).unwrap(),
            vec!["/bin/sh", "-c", "echo hi"]
        );
        assert_eq!(
            parse_cmd("/bin/busybox sh").unwrap(),
            vec!["/bin/busybox", "sh"]
        );
        assert!(parse_cmd("  ").is_err());
        assert!(parse_cmd("[1,2]")
            .unwrap_err()
            .to_string()
            .contains("JSON array"));
    }

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(2_140_672), "2.1MB");
    }
}
