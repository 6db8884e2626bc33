//! Developer tooling subcommands: `roomcast token` mints an HS256 token with the configured
//! secret, `roomcast keygen` writes an Ed25519 key pair for a collective.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine;
use clap::Args;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::SigningKey;
use rand::TryRngCore;
use roomcast_engine::auth::{mint_hs256, MintRequest};

/// Options of `roomcast token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The client id the token is for (`sub`).
    #[arg(long)]
    pub sub: String,
    /// Subscribe patterns (`rooms` claim), comma-separated, e.g. `chat:*,general`.
    #[arg(long, value_delimiter = ',')]
    pub rooms: Vec<String>,
    /// Publish patterns (`publish` claim), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub publish: Vec<String>,
    /// Roles (`roles` claim), e.g. `admin`.
    #[arg(long = "role")]
    pub roles: Vec<String>,
    /// The collective the holder acts for (`collective_id` claim).
    #[arg(long)]
    pub collective: Option<String>,
    /// Lifetime: seconds, or `90s`, `30m`, `1h 30m`, `7d` (one duration syntax, see
    /// `roomcast_engine::duration`). [default: 1h]
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub ttl: Duration,
    /// `iss` claim.
    #[arg(long)]
    pub issuer: Option<String>,
    /// `aud` claim.
    #[arg(long)]
    pub audience: Option<String>,
    /// HS256 secret (default: the server's, from the environment or --config).
    #[arg(long, env = "ROOMCAST_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Configuration file to read the secret from.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Options of `roomcast keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Path prefix: writes PREFIX.pem (private, PKCS#8) and PREFIX.pub.pem (public, SPKI).
    #[arg(long)]
    pub out: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    match roomcast_engine::duration::parse(s) {
        Ok(d) if d.is_zero() => Err("ttl must be positive".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// `roomcast token`: prints a token on stdout.
pub fn token(args: TokenArgs) -> anyhow::Result<()> {
    let secret = match args.jwt_secret {
        Some(s) => s,
        None => {
            let file = match &args.config {
                Some(path) => crate::config::RawConfig::load(path)?,
                None => crate::config::RawConfig::default(),
            };
            match file.auth.jwt_secret {
                Some(s) => s,
                None => bail!("no secret: pass --jwt-secret SECRET (or ROOMCAST_JWT_SECRET, or --config with auth.jwt_secret)"),
            }
        }
    };
    let request = MintRequest {
        sub: args.sub,
        rooms: (!args.rooms.is_empty()).then_some(args.rooms),
        publish: (!args.publish.is_empty()).then_some(args.publish),
        roles: args.roles,
        collective_id: args.collective,
        issuer: args.issuer,
        audience: args.audience,
        ttl: args.ttl,
    };
    let token = mint_hs256(&secret, &request, time::OffsetDateTime::now_utc())?;
    println!("{token}");
    Ok(())
}

fn write_new(path: &Path, text: &str, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        bail!("{} exists (use --force to overwrite)", path.display());
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// `roomcast keygen`: writes a key pair and prints the public key to register.
pub fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed)
        .context("reading the OS random number generator")?;
    let key = SigningKey::from_bytes(&seed);
    // PKCS#8 v1 (the seed only): OpenSSL 3.0 and most tools read it; the v2 form with the
    // public key attached is refused by `openssl pkey` 3.0.
    let private = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    }
    .to_pkcs8_pem(LineEnding::LF)
    .context("encoding the private key")?;
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .context("encoding the public key")?;
    let prefix = args.out.display().to_string();
    let private_path = PathBuf::from(format!("{prefix}.pem"));
    let public_path = PathBuf::from(format!("{prefix}.pub.pem"));
    write_new(&private_path, &private, args.force)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&private_path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", private_path.display()))?;
    }
    write_new(&public_path, &public, args.force)?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes());
    eprintln!(
        "wrote {} (private, keep secret) and {}",
        private_path.display(),
        public_path.display()
    );
    println!("{b64}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("120"), Ok(Duration::from_secs(120)));
        assert!(parse_ttl("1 fortnight").is_err());
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("0s").is_err());
        // Too large for a duration: an error, never an overflow.
        assert!(parse_ttl("99999999999999999999d").is_err());
    }
}
