//! The registry of collectives (accounts that authenticate with an Ed25519 key).
//!
//! A collective is registered with its public key (PEM or base64, see
//! [`crate::auth::challenge::parse_public_key`]) and a *profile*: the extra fields a domain
//! built on the engine defines for its accounts (the trading arena's `starting_cash` and
//! `starting_positions`). The engine stores a profile as JSON and never reads it: the domain
//! registers a [`ProfileSchema`] that names the fields it accepts and validates them, so a
//! typo is still an error that names the entry, while the engine stays free of domain words.
//! Without a schema, an entry has only `id` and `public_key`. Collectives come from the
//! `--collectives` file at start-up and from the admin API afterwards; [`Collectives`] is
//! the one shared, bounded ([`DEFAULT_MAX_COLLECTIVES`]) map both feed.
//!
//! # File format
//!
//! TOML (any file not ending in `.json`):
//!
//! ```toml
//! [[collective]]
//! id = "acme"
//! public_key = "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="
//! starting_cash = 100000   # a profile field (here: the arena's), optional
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
//! duplicate ids, bad keys and profile fields the schema refuses are errors that name the
//! entry (`collective #2
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

/// A collective's domain fields, as JSON (see [`ProfileSchema`]).
pub type Profile = serde_json::Map<String, serde_json::Value>;

/// The profile fields a domain adds to every collective entry, and their validation.
pub trait ProfileSchema: Send + Sync + fmt::Debug {
    /// The field names accepted beside `id` and `public_key`.
    fn fields(&self) -> &[&'static str];
    /// Checks one entry's profile (it holds only names from [`ProfileSchema::fields`]).
    fn validate(&self, profile: &Profile) -> Result<(), String>;
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
    /// The domain's fields, validated by the schema in force when it was registered.
    pub profile: Profile,
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
    /// A field neither the engine nor the profile schema knows.
    #[error("unknown field `{0}`")]
    UnknownField(String),
    /// The profile schema refused a field.
    #[error("{0}")]
    Profile(String),
}

impl Collective {
    /// Builds a collective from its parts, parsing the key and checking the profile
    /// against `schema` (no schema: the profile must be empty).
    pub fn new(
        id: CollectiveId,
        public_key: &str,
        profile: Profile,
        schema: Option<&dyn ProfileSchema>,
    ) -> Result<Collective, CollectiveError> {
        let known = schema.map(|s| s.fields()).unwrap_or_default();
        if let Some(unknown) = profile.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(CollectiveError::UnknownField(unknown.clone()));
        }
        if let Some(schema) = schema {
            schema
                .validate(&profile)
                .map_err(CollectiveError::Profile)?;
        }
        let text = public_key.trim();
        Ok(Collective {
            public_key: parse_public_key(text)?,
            public_key_text: text.to_owned(),
            id,
            profile,
        })
    }

    /// Builds a collective from unvalidated text (an admin API body, a file entry).
    pub fn parse(
        id: &str,
        public_key: &str,
        profile: Profile,
        schema: Option<&dyn ProfileSchema>,
    ) -> Result<Collective, CollectiveError> {
        Collective::new(CollectiveId::parse(id)?, public_key, profile, schema)
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

    /// Loads the `--collectives` file (format chosen by extension, see the module docs),
    /// checking profiles against `schema`.
    pub fn load_file(
        path: &Path,
        schema: Option<&dyn ProfileSchema>,
    ) -> Result<Collectives, LoadError> {
        let list = load_collectives(path, schema)?;
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

/// One entry as written. Fields other than `id` and `public_key` are collected into the
/// profile and checked against the schema (so unknown ones are still refused).
#[derive(Deserialize)]
struct RawEntry {
    id: String,
    public_key: String,
    #[serde(flatten)]
    profile: Profile,
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
pub fn load_collectives(
    path: &Path,
    schema: Option<&dyn ProfileSchema>,
) -> Result<Vec<Collective>, LoadError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::Io {
        path: name.clone(),
        source: e,
    })?;
    parse_collectives(&text, CollectivesFormat::from_path(path), &name, schema)
}

/// Parses and validates collectives text; `source_name` labels errors.
pub fn parse_collectives(
    text: &str,
    format: CollectivesFormat,
    source_name: &str,
    schema: Option<&dyn ProfileSchema>,
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
        let collective = Collective::parse(&entry.id, &entry.public_key, entry.profile, schema)
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

    /// A schema like the arena's: one integer field.
    #[derive(Debug)]
    struct Cash;

    impl ProfileSchema for Cash {
        fn fields(&self) -> &[&'static str] {
            &["starting_cash"]
        }
        fn validate(&self, profile: &Profile) -> Result<(), String> {
            match profile.get("starting_cash") {
                None => Ok(()),
                Some(v) if v.as_i64().is_some_and(|c| c >= 0) => Ok(()),
                Some(v) => Err(format!(
                    "starting_cash must be a whole number >= 0 (got {v})"
                )),
            }
        }
    }

    fn cash(cents: i64) -> Profile {
        let mut p = Profile::new();
        p.insert("starting_cash".into(), cents.into());
        p
    }

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
        let b = Collective::parse("bravo", &public_b64(2), Profile::new(), None).expect("b");
        let a = Collective::parse("alpha", &public_pem(1), cash(100_000), Some(&Cash)).expect("a");
        registry.register(b.clone()).expect("register");
        registry.register(a).expect("register");
        assert_eq!(
            registry.register(b.clone()).err(),
            Some(RegistryError::Duplicate(b.id.clone()))
        );
        let ids: Vec<String> = registry.list().iter().map(|c| c.id.to_string()).collect();
        assert_eq!(ids, ["alpha", "bravo"]);
        let alpha = registry.get("alpha").expect("alpha");
        assert_eq!(alpha.profile, cash(100_000));
        assert!(alpha
            .public_key_text
            .starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(
            alpha.public_key,
            SigningKey::from_bytes(&[1; 32]).verifying_key()
        );

        // Upsert rotates a key in place.
        let rotated = Collective::parse("bravo", &public_b64(3), Profile::new(), None).expect("b");
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
                .register(Collective::parse(id, &public_b64(1), Profile::new(), None).expect("c"))
                .expect("register");
        }
        let c = Collective::parse("c", &public_b64(1), Profile::new(), None).expect("c");
        assert_eq!(
            registry.register(c.clone()).err(),
            Some(RegistryError::Full(2))
        );
        assert_eq!(registry.upsert(c).err(), Some(RegistryError::Full(2)));
        // Replacing an existing one is still allowed when full.
        let a = Collective::parse("a", &public_b64(2), Profile::new(), None).expect("a");
        assert!(registry.upsert(a).is_ok());
    }

    #[test]
    fn entries_are_validated() {
        assert!(matches!(
            Collective::parse("bad id", &public_b64(1), Profile::new(), None),
            Err(CollectiveError::Id(_))
        ));
        assert!(matches!(
            Collective::parse("a", "nope", Profile::new(), None),
            Err(CollectiveError::Key(_))
        ));
        assert!(matches!(
            Collective::parse("a", &public_b64(1), cash(-1), Some(&Cash)),
            Err(CollectiveError::Profile(_))
        ));
        // Without a schema, no profile field is accepted.
        assert_eq!(
            Collective::parse("a", &public_b64(1), cash(1), None).err(),
            Some(CollectiveError::UnknownField("starting_cash".into()))
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
        let list =
            parse_collectives(&text, CollectivesFormat::Toml, "c.toml", Some(&Cash)).expect("load");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].id.as_str(), "acme");
        assert_eq!(list[0].profile, cash(100_000));
        assert!(list[1].profile.is_empty());
        assert_eq!(
            list[1].public_key,
            SigningKey::from_bytes(&[2; 32]).verifying_key()
        );
        // An empty file is an empty list.
        assert!(
            parse_collectives("", CollectivesFormat::Toml, "c.toml", None)
                .expect("empty")
                .is_empty()
        );
    }

    #[test]
    fn json_files_load_as_list_or_object() {
        let list = format!(
            "[{{\"id\": \"acme\", \"public_key\": \"{}\", \"starting_cash\": 5}}]",
            public_b64(1)
        );
        let got =
            parse_collectives(&list, CollectivesFormat::Json, "c.json", Some(&Cash)).expect("list");
        assert_eq!(got[0].profile, cash(5));
        let object = format!(
            "{{\"collectives\": [{{\"id\": \"acme\", \"public_key\": \"{}\"}}]}}",
            public_b64(1)
        );
        let got =
            parse_collectives(&object, CollectivesFormat::Json, "c.json", None).expect("object");
        assert_eq!(got[0].id.as_str(), "acme");
    }

    #[test]
    fn errors_name_the_bad_entry() {
        let text = format!(
            "[[collective]]\nid = \"acme\"\npublic_key = \"{}\"\n\n\
             [[collective]]\nid = \"globex\"\npublic_key = \"AAAA\"\n",
            public_b64(1)
        );
        let err =
            parse_collectives(&text, CollectivesFormat::Toml, "c.toml", None).expect_err("bad");
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
        let msg = parse_collectives(&dup, CollectivesFormat::Toml, "c.toml", None)
            .expect_err("dup")
            .to_string();
        assert!(msg.contains("duplicate") && msg.contains("#1"), "{msg}");

        let typo = format!(
            "[[collective]]\nid = \"acme\"\npublickey = \"{}\"\n",
            public_b64(1)
        );
        let err =
            parse_collectives(&typo, CollectivesFormat::Toml, "c.toml", None).expect_err("typo");
        assert!(matches!(err, LoadError::Syntax { .. }), "{err}");
        assert!(err.to_string().contains("public_key"), "{err}");
        let typo = format!(
            "[[collective]]\nid = \"acme\"\npublic_key = \"{}\"\nstartingcash = 5\n",
            public_b64(1)
        );
        let err = parse_collectives(&typo, CollectivesFormat::Toml, "c.toml", Some(&Cash))
            .expect_err("typo");
        assert!(err.to_string().contains("#1"), "{err}");
        assert!(err.to_string().contains("startingcash"), "{err}");

        let err = parse_collectives("{\"x\": 1}", CollectivesFormat::Json, "c.json", None)
            .expect_err("shape");
        assert!(matches!(err, LoadError::Syntax { .. }), "{err}");
        let err = parse_collectives("[{\"id\": 1}]", CollectivesFormat::Json, "c.json", None)
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
        let registry = Collectives::load_file(&path, None).expect("load");
        assert!(registry.get("acme").is_some());
        let missing = Collectives::load_file(&dir.join("missing.toml"), None).expect_err("missing");
        assert!(matches!(missing, LoadError::Io { .. }));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
