//! The registry of collectives (accounts that authenticate with an Ed25519 key).
//!
//! A collective is registered with its public key (PEM or base64, see
//! [`crate::auth::challenge::parse_public_key`]) and an optional starting cash balance, in
//! integer cents (money is never floating point). Collectives come from the `--collectives`
//! file at start-up and from the admin API afterwards; [`Collectives`] is the one shared,
//! bounded ([`DEFAULT_MAX_COLLECTIVES`]) map both feed.
//!
//! # File format
//!
//! TOML (any file not ending in `.json`):
//!
//! ```toml
//! [[collective]]
//! id = "acme"
//! public_key = "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="
//! starting_cash = 100000   # cents, optional
//!
//! [[collective]]
//! id = "globex"
//! public_key = """
//! -----BEGIN PUBLIC KEY-----
//! MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=
//! -----END PUBLIC KEY-----
//! """
//! ```
//!
//! JSON (`.json`): the same entries either as a bare list or under `"collective"`
//! (or `"collectives"`):
//!
//! ```json
//! [{"id": "acme", "public_key": "GfjE...", "starting_cash": 100000}]
//! ```
//!
//! Ids follow the client-id rules (1-128 characters of `[A-Za-z0-9_.:-]`). Unknown fields,
//! duplicate ids, bad keys and negative cash are errors that name the entry (`collective #2
//! ("globex"): ...`), so a typo never silently drops an account.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use ed25519_dalek::VerifyingKey;
use roomcast_protocol::{ClientId, IdError};
use serde::{Deserialize, Serialize};

use super::challenge::{parse_public_key, KeyError};

/// The most collectives a registry holds unless configured otherwise.
pub const DEFAULT_MAX_COLLECTIVES: usize = 100_000;

/// A collective's id. Same rules as a [`ClientId`], so it can stand wherever a client id
/// can (as a connection's principal, inside `portfolio:{id}` room names).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CollectiveId(ClientId);

impl CollectiveId {
    /// The longest accepted id, in bytes.
    pub const MAX_LEN: usize = ClientId::MAX_LEN;

    /// Validates and wraps an id.
    pub fn parse(s: &str) -> Result<CollectiveId, IdError> {
        ClientId::parse(s).map(CollectiveId)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The id's shared text, without copying it.
    pub fn to_shared(&self) -> std::sync::Arc<str> {
        self.0.to_shared()
    }

    /// The same text as a client id (e.g. for a connection keyed by collective).
    pub fn as_client_id(&self) -> &ClientId {
        &self.0
    }
}

impl From<ClientId> for CollectiveId {
    fn from(id: ClientId) -> Self {
        CollectiveId(id)
    }
}

impl fmt::Debug for CollectiveId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for CollectiveId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Borrow<str> for CollectiveId {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for CollectiveId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::str::FromStr for CollectiveId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

impl Serialize for CollectiveId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for CollectiveId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ClientId::deserialize(d).map(CollectiveId)
    }
}

/// One registered collective.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collective {
    /// Its id.
    pub id: CollectiveId,
    /// The key that verifies its challenge signatures.
    pub public_key: VerifyingKey,
    /// The key as it was registered (for listing it back).
    pub public_key_text: String,
    /// Opening cash balance in cents, if the arena should not use its default.
    pub starting_cash: Option<i64>,
}

/// Why an entry cannot become a [`Collective`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CollectiveError {
    /// The id breaks the id rules.
    #[error("id: {0}")]
    Id(#[from] IdError),
    /// The public key cannot be parsed.
    #[error("public_key: {0}")]
    Key(#[from] KeyError),
    /// Starting cash below zero.
    #[error("starting_cash must not be negative (got {0})")]
    NegativeCash(i64),
}

impl Collective {
    /// Builds a collective from its parts, parsing the key.
    pub fn new(
        id: CollectiveId,
        public_key: &str,
        starting_cash: Option<i64>,
    ) -> Result<Collective, CollectiveError> {
        if let Some(cash) = starting_cash.filter(|c| *c < 0) {
            return Err(CollectiveError::NegativeCash(cash));
        }
        let text = public_key.trim();
        Ok(Collective {
            public_key: parse_public_key(text)?,
            public_key_text: text.to_owned(),
            id,
            starting_cash,
        })
    }

    /// Builds a collective from unvalidated text (an admin API body, a file entry).
    pub fn parse(
        id: &str,
        public_key: &str,
        starting_cash: Option<i64>,
    ) -> Result<Collective, CollectiveError> {
        Collective::new(CollectiveId::parse(id)?, public_key, starting_cash)
    }
}

/// Why a registry change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// [`Collectives::register`] of an id that exists.
    #[error("collective {0} is already registered")]
    Duplicate(CollectiveId),
    /// The registry holds its maximum.
    #[error("the registry is full ({0} collectives)")]
    Full(usize),
}

/// The shared registry. Reads (every challenge answer) take a read lock for one lookup.
#[derive(Debug)]
pub struct Collectives {
    map: RwLock<HashMap<CollectiveId, Arc<Collective>>>,
    max: usize,
}

impl Default for Collectives {
    fn default() -> Self {
        Collectives::new()
    }
}

impl Collectives {
    /// An empty registry holding at most [`DEFAULT_MAX_COLLECTIVES`].
    pub fn new() -> Collectives {
        Collectives::with_max(DEFAULT_MAX_COLLECTIVES)
    }

    /// An empty registry holding at most `max` collectives.
    pub fn with_max(max: usize) -> Collectives {
        Collectives {
            map: RwLock::new(HashMap::new()),
            max,
        }
    }

    /// Adds a new collective; refuses an id that is already registered.
    pub fn register(&self, collective: Collective) -> Result<Arc<Collective>, RegistryError> {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if map.contains_key(&collective.id) {
            return Err(RegistryError::Duplicate(collective.id));
        }
        if map.len() >= self.max {
            return Err(RegistryError::Full(self.max));
        }
        let collective = Arc::new(collective);
        map.insert(collective.id.clone(), Arc::clone(&collective));
        Ok(collective)
    }

    /// Adds a collective or replaces the one with its id (e.g. to rotate its key); returns
    /// the replaced one.
    pub fn upsert(&self, collective: Collective) -> Result<Option<Arc<Collective>>, RegistryError> {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if !map.contains_key(&collective.id) && map.len() >= self.max {
            return Err(RegistryError::Full(self.max));
        }
        Ok(map.insert(collective.id.clone(), Arc::new(collective)))
    }

    /// Removes a collective; the caller disconnects its live connections.
    pub fn remove(&self, id: &str) -> Option<Arc<Collective>> {
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }

    /// The collective with this id.
    pub fn get(&self, id: &str) -> Option<Arc<Collective>> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// All collectives, sorted by id.
    pub fn list(&self) -> Vec<Arc<Collective>> {
        let mut all: Vec<Arc<Collective>> = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// How many are registered.
    pub fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether none are registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A registry holding `collectives` (e.g. from [`parse_collectives`]).
    pub fn from_list(
        collectives: Vec<Collective>,
        max: usize,
    ) -> Result<Collectives, RegistryError> {
        let registry = Collectives::with_max(max);
        for collective in collectives {
            registry.register(collective)?;
        }
        Ok(registry)
    }

    /// Loads the `--collectives` file (format chosen by extension, see the module docs).
    pub fn load_file(path: &Path) -> Result<Collectives, LoadError> {
        let list = load_collectives(path)?;
        let max = DEFAULT_MAX_COLLECTIVES;
        Collectives::from_list(list, max).map_err(|e| LoadError::Registry {
            path: path.display().to_string(),
            source: e,
        })
    }
}

/// The syntax of a collectives file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectivesFormat {
    /// `[[collective]]` tables.
    Toml,
    /// A list, or an object with a `collective` list.
    Json,
}

impl CollectivesFormat {
    /// JSON for `.json` files, TOML otherwise.
    pub fn from_path(path: &Path) -> CollectivesFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => CollectivesFormat::Json,
            _ => CollectivesFormat::Toml,
        }
    }
}

/// Why a collectives file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML/JSON of the documented shape.
    #[error("{source_name}: not a valid collectives file: {message}")]
    Syntax {
        /// The file (or `<input>`).
        source_name: String,
        /// The parser's message.
        message: String,
    },
    /// One entry is invalid.
    #[error("{source_name}: collective #{index} ({id:?}): {error}")]
    Entry {
        /// The file (or `<input>`).
        source_name: String,
        /// 1-based position in the file.
        index: usize,
        /// The id as written.
        id: String,
        /// What is wrong with it.
        error: CollectiveError,
    },
    /// Two entries share an id.
    #[error(
        "{source_name}: collective #{index} ({id:?}): duplicate id (first defined as #{first})"
    )]
    Duplicate {
        /// The file (or `<input>`).
        source_name: String,
        /// 1-based position of the repeat.
        index: usize,
        /// The id.
        id: String,
        /// 1-based position of the first definition.
        first: usize,
    },
    /// The registry refused the list (too many entries).
    #[error("{path}: {source}")]
    Registry {
        /// The file.
        path: String,
        /// The registry's error.
        source: RegistryError,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: String,
    public_key: String,
    #[serde(default)]
    starting_cash: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default, alias = "collectives")]
    collective: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawJson {
    List(Vec<RawEntry>),
    File(RawFile),
}

/// Reads and validates a collectives file.
pub fn load_collectives(path: &Path) -> Result<Vec<Collective>, LoadError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::Io {
        path: name.clone(),
        source: e,
    })?;
    parse_collectives(&text, CollectivesFormat::from_path(path), &name)
}

/// Parses and validates collectives text; `source_name` labels errors.
pub fn parse_collectives(
    text: &str,
    format: CollectivesFormat,
    source_name: &str,
) -> Result<Vec<Collective>, LoadError> {
    let syntax = |message: String| LoadError::Syntax {
        source_name: source_name.to_owned(),
        message,
    };
    let entries = match format {
        CollectivesFormat::Toml => {
            toml::from_str::<RawFile>(text)
                .map_err(|e| syntax(e.message().to_owned()))?
                .collective
        }
        CollectivesFormat::Json => match serde_json::from_str::<RawJson>(text) {
            Ok(RawJson::List(list)) => list,
            Ok(RawJson::File(file)) => file.collective,
            // The untagged enum's own message says nothing useful; try each shape for one.
            Err(_) => {
                let message = match serde_json::from_str::<Vec<RawEntry>>(text) {
                    Err(e) if text.trim_start().starts_with('[') => e.to_string(),
                    _ => serde_json::from_str::<RawFile>(text)
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default(),
                };
                return Err(syntax(message));
            }
        },
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let index = i + 1;
        if let Some(&first) = seen.get(&entry.id) {
            return Err(LoadError::Duplicate {
                source_name: source_name.to_owned(),
                index,
                id: entry.id,
                first,
            });
        }
        let collective = Collective::parse(&entry.id, &entry.public_key, entry.starting_cash)
            .map_err(|error| LoadError::Entry {
                source_name: source_name.to_owned(),
                index,
                id: entry.id.clone(),
                error,
            })?;
        seen.insert(entry.id, index);
        out.push(collective);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::EncodePublicKey;
    use ed25519_dalek::SigningKey;

    fn public_b64(seed: u8) -> String {
        STANDARD.encode(
            SigningKey::from_bytes(&[seed; 32])
                .verifying_key()
                .as_bytes(),
        )
    }

    fn public_pem(seed: u8) -> String {
        SigningKey::from_bytes(&[seed; 32])
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem")
    }

    #[test]
    fn ids_follow_client_id_rules() {
        assert!(CollectiveId::parse("acme-1_2.3:x").is_ok());
        assert!(CollectiveId::parse("").is_err());
        assert!(CollectiveId::parse("a/b").is_err());
        assert!(CollectiveId::parse(&"a".repeat(129)).is_err());
        let id: CollectiveId = serde_json::from_str("\"acme\"").expect("json");
        assert_eq!(serde_json::to_string(&id).expect("json"), "\"acme\"");
        assert!(serde_json::from_str::<CollectiveId>("\"a b\"").is_err());
    }

    #[test]
    fn register_get_list_remove() {
        let registry = Collectives::new();
        assert!(registry.is_empty());
        let b = Collective::parse("bravo", &public_b64(2), None).expect("b");
        let a = Collective::parse("alpha", &public_pem(1), Some(100_000)).expect("a");
        registry.register(b.clone()).expect("register");
        registry.register(a).expect("register");
        assert_eq!(
            registry.register(b.clone()).err(),
            Some(RegistryError::Duplicate(b.id.clone()))
        );
        let ids: Vec<String> = registry.list().iter().map(|c| c.id.to_string()).collect();
        assert_eq!(ids, ["alpha", "bravo"]);
        let alpha = registry.get("alpha").expect("alpha");
        assert_eq!(alpha.starting_cash, Some(100_000));
        assert!(alpha
            .public_key_text
            .starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(
            alpha.public_key,
            SigningKey::from_bytes(&[1; 32]).verifying_key()
        );

        // Upsert rotates a key in place.
        let rotated = Collective::parse("bravo", &public_b64(3), None).expect("b");
        let old = registry.upsert(rotated).expect("upsert").expect("replaced");
        assert_eq!(old.public_key_text, public_b64(2));
        assert_eq!(
            registry.get("bravo").expect("b").public_key_text,
            public_b64(3)
        );

        assert!(registry.remove("bravo").is_some());
        assert!(registry.remove("bravo").is_none());
        assert!(registry.get("bravo").is_none());
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn the_registry_is_bounded() {
        let registry = Collectives::with_max(2);
        for id in ["a", "b"] {
            registry
                .register(Collective::parse(id, &public_b64(1), None).expect("c"))
                .expect("register");
        }
        let c = Collective::parse("c", &public_b64(1), None).expect("c");
        assert_eq!(
            registry.register(c.clone()).err(),
            Some(RegistryError::Full(2))
        );
        assert_eq!(registry.upsert(c).err(), Some(RegistryError::Full(2)));
        // Replacing an existing one is still allowed when full.
        let a = Collective::parse("a", &public_b64(2), None).expect("a");
        assert!(registry.upsert(a).is_ok());
    }

    #[test]
    fn entries_are_validated() {
        assert!(matches!(
            Collective::parse("bad id", &public_b64(1), None),
            Err(CollectiveError::Id(_))
        ));
        assert!(matches!(
            Collective::parse("a", "nope", None),
            Err(CollectiveError::Key(_))
        ));
        assert_eq!(
            Collective::parse("a", &public_b64(1), Some(-1)).err(),
            Some(CollectiveError::NegativeCash(-1))
        );
    }

    #[test]
    fn toml_files_load() {
        let text = format!(
            "[[collective]]\nid = \"acme\"\npublic_key = \"{}\"\nstarting_cash = 100000\n\n\
             [[collective]]\nid = \"globex\"\npublic_key = \"\"\"\n{}\"\"\"\n",
            public_b64(1),
            public_pem(2)
        );
        let list = parse_collectives(&text, CollectivesFormat::Toml, "c.toml").expect("load");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].id.as_str(), "acme");
        assert_eq!(list[0].starting_cash, Some(100_000));
        assert_eq!(list[1].starting_cash, None);
        assert_eq!(
            list[1].public_key,
            SigningKey::from_bytes(&[2; 32]).verifying_key()
        );
        // An empty file is an empty list.
        assert!(parse_collectives("", CollectivesFormat::Toml, "c.toml")
            .expect("empty")
            .is_empty());
    }

    #[test]
    fn json_files_load_as_list_or_object() {
        let list = format!(
            "[{{\"id\": \"acme\", \"public_key\": \"{}\", \"starting_cash\": 5}}]",
            public_b64(1)
        );
        let got = parse_collectives(&list, CollectivesFormat::Json, "c.json").expect("list");
        assert_eq!(got[0].starting_cash, Some(5));
        let object = format!(
            "{{\"collectives\": [{{\"id\": \"acme\", \"public_key\": \"{}\"}}]}}",
            public_b64(1)
        );
        let got = parse_collectives(&object, CollectivesFormat::Json, "c.json").expect("object");
        assert_eq!(got[0].id.as_str(), "acme");
    }

    #[test]
    fn errors_name_the_bad_entry() {
        let text = format!(
            "[[collective]]\nid = \"acme\"\npublic_key = \"{}\"\n\n\
             [[collective]]\nid = \"globex\"\npublic_key = \"AAAA\"\n",
            public_b64(1)
        );
        let err = parse_collectives(&text, CollectivesFormat::Toml, "c.toml").expect_err("bad");
        let msg = err.to_string();
        assert!(msg.contains("c.toml"), "{msg}");
        assert!(msg.contains("#2"), "{msg}");
        assert!(msg.contains("\"globex\""), "{msg}");
        assert!(msg.contains("public_key"), "{msg}");

        let dup = format!(
            "[[collective]]\nid = \"acme\"\npublic_key = \"{0}\"\n\
             [[collective]]\nid = \"acme\"\npublic_key = \"{0}\"\n",
            public_b64(1)
        );
        let msg = parse_collectives(&dup, CollectivesFormat::Toml, "c.toml")
            .expect_err("dup")
            .to_string();
        assert!(msg.contains("duplicate") && msg.contains("#1"), "{msg}");

        let typo = format!(
            "[[collective]]\nid = \"acme\"\npublickey = \"{}\"\n",
            public_b64(1)
        );
        let err = parse_collectives(&typo, CollectivesFormat::Toml, "c.toml").expect_err("typo");
        assert!(matches!(err, LoadError::Syntax { .. }), "{err}");
        assert!(err.to_string().contains("publickey"), "{err}");

        let err =
            parse_collectives("{\"x\": 1}", CollectivesFormat::Json, "c.json").expect_err("shape");
        assert!(matches!(err, LoadError::Syntax { .. }), "{err}");
        let err = parse_collectives("[{\"id\": 1}]", CollectivesFormat::Json, "c.json")
            .expect_err("shape");
        assert!(err.to_string().contains("c.json"), "{err}");
    }

    #[test]
    fn files_load_from_disk() {
        let dir = std::env::temp_dir().join(format!("roomcast-collectives-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("c.json");
        std::fs::write(
            &path,
            format!(
                "[{{\"id\": \"acme\", \"public_key\": \"{}\"}}]",
                public_b64(1)
            ),
        )
        .expect("write");
        let registry = Collectives::load_file(&path).expect("load");
        assert!(registry.get("acme").is_some());
        let missing = Collectives::load_file(&dir.join("missing.toml")).expect_err("missing");
        assert!(matches!(missing, LoadError::Io { .. }));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
