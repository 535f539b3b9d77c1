//! Which store a `--database-url` names: the one dispatch `serve` and
//! `migrate` share.

use std::path::{Path, PathBuf};

use super::{PostgresStore, SqliteStore, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    Postgres {
        url: String,
    },
    /// `path` is the database file; its directory is created on opening.
    Sqlite {
        url: String,
        path: PathBuf,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--database-url must start with postgres://, postgresql:// or sqlite://")]
pub struct UnknownScheme;

impl Database {
    pub fn parse(url: &str) -> Result<Self, UnknownScheme> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres {
                url: url.to_string(),
            });
        }
        let path = url.strip_prefix("sqlite://").ok_or(UnknownScheme)?;
        // Connection options after `?` are not part of the file name.
        let path = path.split_once('?').map_or(path, |(file, _)| file);
        if path.is_empty() {
            return Err(UnknownScheme);
        }
        Ok(Database::Sqlite {
            url: url.to_string(),
            path: PathBuf::from(path),
        })
    }

    /// Applies pending migrations and closes the connection.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Database::Postgres { url } => PostgresStore::connect_lazy(url, 1)?.migrate().await,
            // Opening an embedded database migrates it.
            Database::Sqlite { .. } => self.open_sqlite(1).await.map(drop),
        }
    }

    /// Opens (creating the file and its directory if missing) and migrates
    /// an embedded database. Not a SQLite URL: an internal error.
    pub async fn open_sqlite(&self, pool_size: u32) -> Result<SqliteStore, StoreError> {
        let Database::Sqlite { url, path } = self else {
            return Err(StoreError::internal("not a SQLite database URL"));
        };
        create_parent_dir(path)?;
        SqliteStore::open(url, pool_size).await
    }
}

fn create_parent_dir(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::internal(format!(
                "creating the data directory {}: {e}",
                dir.display()
            ))
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_url_scheme_names_one_store() {
        let postgres = |url: &str| Database::Postgres { url: url.into() };
        let sqlite = |url: &str, path: &str| Database::Sqlite {
            url: url.into(),
            path: path.into(),
        };
        for (url, expected) in [
            ("postgres://u@h/db", Ok(postgres("postgres://u@h/db"))),
            ("postgresql://u@h/db", Ok(postgres("postgresql://u@h/db"))),
            (
                "sqlite://data/settings.db",
                Ok(sqlite("sqlite://data/settings.db", "data/settings.db")),
            ),
            (
                "sqlite:///var/lib/s.db?mode=rwc",
                Ok(sqlite("sqlite:///var/lib/s.db?mode=rwc", "/var/lib/s.db")),
            ),
            ("sqlite://", Err(UnknownScheme)),
            ("mysql://u@h/db", Err(UnknownScheme)),
            ("data/settings.db", Err(UnknownScheme)),
            ("", Err(UnknownScheme)),
        ] {
            assert_eq!(Database::parse(url), expected, "{url}");
        }
    }

    #[tokio::test]
    async fn migrating_an_embedded_database_creates_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("new").join("nested").join("settings.db");
        let url = format!("sqlite://{}", file.display());
        Database::parse(&url).unwrap().migrate().await.unwrap();
        assert!(file.exists(), "{} was not created", file.display());
    }
}
