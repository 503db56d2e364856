//! Webhook secrets in the SQLite file: sealed under the main key, never in clear.
//!
//! The current secret (`secret_sealed`) and the list of old ones (`old_secrets_sealed`)
//! are each bound to their webhook id, so a sealed value moved to another row does not
//! open. A `main_key_check` setting, sealed under the same key, makes a wrong key fail
//! at start with a clear message instead of at the first delivery.

use sqlx::Row as _;

use rusqlite::types::Value;

use super::{SqliteStore, webhook_from_row};
use crate::crypto::MainKey;
use crate::domain::webhook::Webhook;
pub(super) use crate::store::sealing::seal_secrets;
use crate::store::sealing::{
    KEY_CHECK_SETTING, reseal_token_hash_key, seal_key_check, verify_key_check,
};
use crate::store::{SecretRotation, StoreError, StoreResult};
use crate::tokens::TOKEN_HASH_KEY_SETTING;

/// Reads before a rotation gives up: only a storm of concurrent rotations of one
/// webhook loses this many races.
const ROTATION_ATTEMPTS: usize = 8;

impl SqliteStore {
    /// Fails with [`StoreError::WrongMainKey`] when the database was sealed under
    /// another key; on a new database, records the key check.
    pub(super) async fn check_main_key(&self) -> StoreResult<()> {
        let stored: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                .bind(KEY_CHECK_SETTING)
                .fetch_optional(&self.writer)
                .await?;
        match stored {
            Some(value) => verify_key_check(&self.key, value),
            None => {
                sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?)")
                    .bind(KEY_CHECK_SETTING)
                    .bind(seal_key_check(&self.key))
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }
        }
    }

    /// Seals the secrets of rows written before migration 0002 and wipes their plain
    /// copies (secure_delete is on; the WAL is checkpointed and truncated after).
    pub(super) async fn seal_legacy_secrets(&self) -> StoreResult<u64> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let rows = sqlx::query("SELECT * FROM webhooks WHERE secret_sealed IS NULL")
            .fetch_all(&mut *tx)
            .await?;
        for row in &rows {
            let webhook = webhook_from_row(row, &self.key)?;
            let sealed = seal_secrets(&self.key, &webhook)?;
            sqlx::query("UPDATE webhooks SET secret = '', secret_sealed = ? WHERE id = ?")
                .bind(sealed.current)
                .bind(webhook.id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if !rows.is_empty() {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.writer)
                .await?;
        }
        Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX))
    }

    /// [`crate::store::Store::rotate_main_key`]: one transaction on the maintenance
    /// connection, then the WAL is checkpointed so no old sealed value stays in it.
    pub(super) async fn reseal_under(&self, new: &MainKey) -> StoreResult<u64> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let rows = sqlx::query("SELECT * FROM webhooks")
            .fetch_all(&mut *tx)
            .await?;
        for row in &rows {
            let webhook = webhook_from_row(row, &self.key)?;
            let sealed = seal_secrets(new, &webhook)?;
            sqlx::query("UPDATE webhooks SET secret = '', secret_sealed = ?, old_secrets_sealed = ? WHERE id = ?")
                .bind(sealed.current)
                .bind(sealed.old)
                .bind(webhook.id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE settings SET value = ? WHERE key = ?")
            .bind(seal_key_check(new))
            .bind(KEY_CHECK_SETTING)
            .execute(&mut *tx)
            .await?;
        let token_key: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                .bind(TOKEN_HASH_KEY_SETTING)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(stored) = token_key {
            sqlx::query("UPDATE settings SET value = ? WHERE key = ?")
                .bind(reseal_token_hash_key(&self.key, new, &stored)?)
                .bind(TOKEN_HASH_KEY_SETTING)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        // Values sealed under the old key leave the WAL too (secure_delete zeroes the pages).
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await?;
        Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX))
    }

    /// The rotation of [`crate::store::Store::rotate_webhook_secret`]: read, rotated,
    /// then written only if the sealed secrets are still those read (compare and swap),
    /// so concurrent rotations cannot lose a secret; a lost race reads again.
    pub(super) async fn rotate_secret_atomically(
        &self,
        r: &SecretRotation,
    ) -> StoreResult<Option<Webhook>> {
        let (id, site, now) = (r.webhook.to_string(), r.site.to_string(), r.now);
        for _ in 0..ROTATION_ATTEMPTS {
            let row = sqlx::query("SELECT * FROM webhooks WHERE id = ? AND site_id = ?")
                .bind(&id)
                .bind(&site)
                .fetch_optional(&self.reader)
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let read_current: Option<String> = row.try_get("secret_sealed")?;
            let read_old: Option<String> = row.try_get("old_secrets_sealed")?;
            let mut webhook = webhook_from_row(&row, &self.key)?;
            webhook.rotate_secret(r.new.clone(), now, r.grace);
            let sealed = seal_secrets(&self.key, &webhook)?;
            let swapped = self
                .execute(
                    "UPDATE webhooks SET secret = '', secret_sealed = ?1, old_secrets_sealed = ?2, updated_at = ?3 \
                     WHERE id = ?4 AND secret_sealed IS ?5 AND old_secrets_sealed IS ?6",
                    vec![
                        Value::from(sealed.current),
                        Value::from(sealed.old),
                        Value::from(now),
                        Value::from(webhook.id.to_string()),
                        Value::from(read_current),
                        Value::from(read_old),
                    ],
                )
                .await?;
            if swapped == 1 {
                return Ok(Some(webhook));
            }
        }
        Err(StoreError::WriteFailed(
            "the webhook's secrets kept changing during the rotation; try again".into(),
        ))
    }
}
