//! One store on one PostgreSQL database: the URL, the connections, the crate's own runtime,
//! and the errors an operator sees at start.
//!
//! The core is synchronous (its `EventStore::append` blocks; `append_async` returns a
//! completion), while the driver is async. The crate therefore runs the driver on a small
//! runtime of its own and hands results back through a completion: a synchronous call waits
//! on it like a sled call waits on its disk, and works from any thread, also one of another
//! runtime (where `block_on` would panic).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use civicflow_core::Completion;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// A dedicated connection's driver half: spawn it (or poll it for notifications).
pub(crate) type DedicatedConnection =
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>;

/// The schema a store lives in unless the URL names another (`?schema=NAME`).
pub const DEFAULT_SCHEMA: &str = "civicflow";

/// Readers' connections per process (the committer has one more of its own).
const POOL_SIZE: usize = 8;

/// How long a connection attempt may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a store on PostgreSQL cannot be opened: one clear message each, for a non-zero exit.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL does not parse or names something unsupported.
    #[error("--store {url}: {reason}")]
    BadUrl {
        /// The URL as given, without its password.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection: the server is down, the port wrong, the host unknown.
    #[error("cannot connect to PostgreSQL at {location}: {reason} (is the server running, and are host and port right?)")]
    Unreachable {
        /// The database, without a password.
        location: String,
        /// What the driver said.
        reason: String,
    },
    /// The server refused the user, or the database does not exist.
    #[error("PostgreSQL at {location} refused the connection: {reason}")]
    Refused {
        /// The database, without a password.
        location: String,
        /// What the server said.
        reason: String,
    },
    /// The user may not create or use the store's schema or tables.
    #[error("PostgreSQL at {location}: the user lacks a permission the store needs: {reason} (grant it CREATE on the database, or create the schema {schema} owned by it)")]
    Permission {
        /// The database, without a password.
        location: String,
        /// The schema.
        schema: String,
        /// What the server said.
        reason: String,
    },
    /// The schema was made by a newer civicflow.
    #[error("the store at {location} has schema version {found}, made by a newer civicflow; this one knows versions up to {known} (upgrade civicflow)")]
    NewerSchema {
        /// The database, without a password.
        location: String,
        /// The version found.
        found: i32,
        /// The newest this binary knows.
        known: i32,
    },
    /// Anything else the server answered at start.
    #[error("PostgreSQL at {location}: {reason}")]
    Other {
        /// The database, without a password.
        location: String,
        /// What went wrong.
        reason: String,
    },
}

/// A parsed store URL: `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?schema=NAME&...]`.
#[derive(Clone)]
pub struct StoreUrl {
    config: tokio_postgres::Config,
    schema: String,
    location: String,
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("StoreUrl")
            .field("location", &self.location)
            .finish()
    }
}

impl StoreUrl {
    /// Parses a store URL. `schema=NAME` (letters, digits and `_`, starting with a letter, at
    /// most 48 bytes) picks the schema; every other parameter is the driver's
    /// (`connect_timeout`, `sslmode`=disable only, `application_name`, …).
    ///
    /// # Errors
    /// [`ConnectError::BadUrl`] naming what is wrong.
    pub fn parse(url: &str) -> Result<Self, ConnectError> {
        let shown = redact(url);
        let bad = |reason: String| ConnectError::BadUrl {
            url: shown.clone(),
            reason,
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(bad(
                "a PostgreSQL store URL starts with postgres:// (postgres://USER@HOST:PORT/DB)"
                    .into(),
            ));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut schema = DEFAULT_SCHEMA.to_owned();
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("schema", name)) => schema = name.to_owned(),
                _ => rest.push(pair),
            }
        }
        check_schema_name(&schema).map_err(|reason| bad(format!("schema: {reason}")))?;
        let driver_url = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let mut config: tokio_postgres::Config = driver_url
            .parse()
            .map_err(|e: tokio_postgres::Error| bad(e.to_string()))?;
        if config.get_dbname().is_none() {
            return Err(bad("name the database: postgres://USER@HOST:PORT/DB".into()));
        }
        if config.get_user().is_none() {
            return Err(bad("name the user: postgres://USER@HOST:PORT/DB".into()));
        }
        if config.get_hosts().is_empty() {
            return Err(bad("name the host: postgres://USER@HOST:PORT/DB".into()));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("civicflow");
        let host = match &config.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(host) => host.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let location = format!(
            "postgres://{}@{host}:{port}/{} (schema {schema})",
            config.get_user().unwrap_or_default(),
            config.get_dbname().unwrap_or_default(),
        );
        Ok(Self {
            config,
            schema,
            location,
        })
    }

    /// The schema the store lives in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The database and schema, for messages (never a password).
    pub fn location(&self) -> &str {
        &self.location
    }
}

/// Whether `text` is a URL of this backend (`--store` takes a sled directory otherwise).
pub fn is_postgres_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// The URL with its password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn check_schema_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !first_ok
        || name.len() > 48
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!(
            "{name:?} is not a schema name civicflow uses: lowercase letters, digits and _, starting with a letter, at most 48 bytes"
        ));
    }
    Ok(())
}

/// A connection to one store's database: the pool, the runtime the driver runs on, and the
/// store's schema. Cheap to clone; the log and the vault of one store share one.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    pool: Pool,
    url: StoreUrl,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.pool.close();
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime blocks, which panics on another runtime's thread.
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("location", &self.inner.url.location)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Connects to the store at `url` (see [`StoreUrl::parse`]), checks that the server
    /// answers, and creates the store's schema and tables if they are missing (refusing a
    /// schema from a newer civicflow).
    ///
    /// # Errors
    /// [`ConnectError`], one clear message for each way a start can fail.
    pub fn connect(url: &str) -> Result<Self, ConnectError> {
        Self::open(StoreUrl::parse(url)?)
    }

    /// [`Database::connect`] with a parsed URL.
    ///
    /// # Errors
    /// As [`Database::connect`].
    pub fn open(url: StoreUrl) -> Result<Self, ConnectError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("civicflow-postgres")
            .enable_all()
            .build()
            .map_err(|e| ConnectError::Other {
                location: url.location.clone(),
                reason: format!("cannot start the driver's runtime: {e}"),
            })?;
        let manager = Manager::from_config(
            url.config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| ConnectError::Other {
                location: url.location.clone(),
                reason: e.to_string(),
            })?;
        let database = Self {
            inner: Arc::new(Inner {
                handle: runtime.handle().clone(),
                runtime: Some(runtime),
                pool,
                url,
            }),
        };
        let url = database.inner.url.clone();
        database.run(async move {
            let client = first_client(&url).await?;
            crate::schema::ensure(&client, &url).await
        })?;
        Ok(database)
    }

    /// The store's schema.
    pub fn schema(&self) -> &str {
        &self.inner.url.schema
    }

    /// The database and schema, for messages (never a password).
    pub fn location(&self) -> String {
        self.inner.url.location.clone()
    }

    /// The parsed URL.
    pub fn url(&self) -> &StoreUrl {
        &self.inner.url
    }

    /// `name` qualified with the store's schema, for SQL.
    pub(crate) fn table(&self, name: &str) -> String {
        format!("\"{}\".{name}", self.inner.url.schema)
    }

    /// A pooled connection, or why there is none.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, String> {
        self.inner.pool.get().await.map_err(|e| {
            format!(
                "the database at {} cannot be reached: {e}",
                self.inner.url.location
            )
        })
    }

    /// A connection of its own, outside the pool (the committer's, the listener's).
    pub(crate) async fn dedicated(&self) -> Result<(Client, DedicatedConnection), String> {
        self.connect_with(&self.inner.url.config).await
    }

    /// [`Database::dedicated`] under another `application_name` (how the listeners of a store
    /// find each other in `pg_stat_activity`).
    pub(crate) async fn dedicated_named(
        &self,
        name: &str,
    ) -> Result<(Client, DedicatedConnection), String> {
        let mut config = self.inner.url.config.clone();
        config.application_name(name);
        self.connect_with(&config).await
    }

    async fn connect_with(
        &self,
        config: &tokio_postgres::Config,
    ) -> Result<(Client, DedicatedConnection), String> {
        config.connect(NoTls).await.map_err(|e| {
            format!(
                "cannot connect to {}: {}",
                self.inner.url.location,
                describe(&e)
            )
        })
    }

    /// Runs `future` on the driver's runtime and waits for it, from any thread.
    pub(crate) fn run<T, F>(&self, future: F) -> T
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        self.complete(future).wait()
    }

    /// Runs `future` on the driver's runtime; the completion is its result (a future, or
    /// [`Completion::wait`] to block).
    pub(crate) fn complete<T, F>(&self, future: F) -> Completion<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let (completion, completer) = Completion::new();
        self.inner.handle.spawn(async move {
            completer.complete(future.await);
        });
        completion
    }

    /// Spawns a task on the driver's runtime.
    pub(crate) fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.handle.spawn(future)
    }
}

/// A first connection, with the server's refusal turned into the operator's message; its
/// connection task runs until the client is dropped.
async fn first_client(url: &StoreUrl) -> Result<tokio_postgres::Client, ConnectError> {
    let (client, connection) = url
        .config
        .connect(NoTls)
        .await
        .map_err(|e| classify(&url.location, &url.schema, &e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// What a driver error says, with the server's own message when there is one.
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(inner) = source {
                text.push_str(": ");
                text.push_str(&inner.to_string());
                source = inner.source();
            }
            text
        }
    }
}

/// Sorts an error at start into the operator's categories.
pub(crate) fn classify(
    location: &str,
    schema: &str,
    error: &tokio_postgres::Error,
) -> ConnectError {
    let reason = describe(error);
    let location = location.to_owned();
    match error.code() {
        Some(code)
            if *code == SqlState::INSUFFICIENT_PRIVILEGE
                || *code == SqlState::INVALID_SCHEMA_NAME =>
        {
            ConnectError::Permission {
                location,
                schema: schema.to_owned(),
                reason,
            }
        }
        Some(code)
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                || *code == SqlState::INVALID_CATALOG_NAME
                || *code == SqlState::TOO_MANY_CONNECTIONS =>
        {
            ConnectError::Refused { location, reason }
        }
        Some(_) => ConnectError::Other { location, reason },
        None => ConnectError::Unreachable { location, reason },
    }
}
