//! Rotating the main key (`fullup admin rotate-main-key`): every sealed secret is
//! re-sealed under a new key in one transaction, then the key file is swapped.
//!
//! Order, so that an interruption never loses the key the database needs:
//! 1. the new key is written to `KEYFILE.new` (mode 0600, never overwriting) and made
//!    durable (the file and its folder synced), before the database can need it;
//! 2. the database is re-sealed in one transaction (all or nothing);
//! 3. `KEYFILE.new` is renamed over `KEYFILE` in one step, and the folder synced.
//!
//! Interrupted before 2 commits, the database still needs the old key (delete
//! `KEYFILE.new`); after, it needs `KEYFILE.new`.
//!
//! It runs only while no other process holds the database: SQLite's lock file, and on
//! PostgreSQL an advisory lock every node holds while it runs (see
//! `store::postgres::key_lock`), refuse it with a message saying how many hold it. A
//! running node would otherwise go on sealing new secrets under the old key after step
//! 2 commits. Every row is re-sealed in step 2, so no row uses the old key after it:
//! the new key file holds the new key alone (the old one is retired).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::crypto::{MainKey, sync_parent};

/// What a main key rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rekeyed {
    /// Webhooks whose secrets were re-sealed.
    pub webhooks: u64,
    /// The key file now holding the new key.
    pub key_file: PathBuf,
}

/// `path` with `suffix` appended to its file name (`fullup.key` → `fullup.key.new`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Re-seals the database at `database_url` (sealed under `old`) under a new key, which
/// ends up in `key_file` (replacing the file there, if any).
pub async fn rotate_main_key(
    database_url: &str,
    old: MainKey,
    key_file: &Path,
) -> anyhow::Result<Rekeyed> {
    let staged = with_suffix(key_file, ".new");
    anyhow::ensure!(
        !staged.exists(),
        "{} exists: an earlier rotation was interrupted; if the service does not start with {}, \
         the database needs the key in {} (rename it over {}); otherwise delete it, then retry",
        staged.display(),
        key_file.display(),
        staged.display(),
        key_file.display()
    );
    let new = MainKey::generate();
    new.write_new_file(&staged)?;
    let store = match crate::store::open(database_url, old).await {
        Ok(store) => store,
        Err(err) => {
            let _ = std::fs::remove_file(&staged);
            return Err(err).context("opening the database with the current main key");
        }
    };
    let resealed = store.rotate_main_key(&new).await;
    store.close().await;
    let webhooks = match resealed {
        Ok(n) => n,
        Err(err) => {
            let _ = std::fs::remove_file(&staged);
            return Err(err).context("re-sealing the secrets (nothing was changed)");
        }
    };
    swap_key_files(key_file, &staged)?;
    Ok(Rekeyed {
        webhooks,
        key_file: key_file.to_owned(),
    })
}

/// Renames `staged` over `key_file`: at every instant one of the two holds the new key.
fn swap_key_files(key_file: &Path, staged: &Path) -> anyhow::Result<()> {
    std::fs::rename(staged, key_file).with_context(|| {
        format!(
            "the database now needs the key in {}; moving it to {}",
            staged.display(),
            key_file.display()
        )
    })?;
    sync_parent(key_file).with_context(|| {
        format!(
            "the new key is in {}; syncing its folder to make the rename durable",
            key_file.display()
        )
    })
}
