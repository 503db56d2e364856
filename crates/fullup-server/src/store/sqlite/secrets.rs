//! Webhook secrets in the SQLite file: sealed under the main key (see
//! [`crate::store::sealing`]), never in clear; the main key check; start-up re-sealing
//! of values in an older format or under an older key of the ring.
//!
//! A SQLite database serves one process at a time (its lock file), so a main key
//! rotation (`fullup admin rotate-main-key`) cannot run beside a running service.

use sqlx::Row as _;

use rusqlite::types::Value;

use super::SqliteStore;
use crate::crypto::MainKey;
use crate::domain::webhook::Webhook;
use crate::store::rows::sqlite::{binding, sealed, webhook as webhook_from_row};
use crate::store::sealing::{
    Binding, KEY_CHECK_SETTING, Resealed, needs_reseal, reseal, reseal_token_hash_key,
    seal_key_check, seal_secrets, seal_url_of, verify_key_check,
};
use crate::store::{SecretRotation, StoreError, StoreResult};
use crate::tokens::TOKEN_HASH_KEY_SETTING;

/// Reads before a rotation gives up: only a storm of concurrent rotations of one
/// webhook loses this many races.
const ROTATION_ATTEMPTS: usize = 8;

/// Setting recorded once the secrets stored in clear by the first schema were sealed:
/// from then on, a row with a secret in clear is never read (a database writer could
/// otherwise plant a secret of its choosing).
const PLAINTEXT_SEALED_SETTING: &str = "plaintext_secrets_sealed";

impl SqliteStore {
    /// Fails with [`StoreError::WrongMainKey`] when the database was sealed under a
    /// key outside the ring; on a new database, records the key check; a check sealed
    /// under an older key of the ring is sealed again under the current one.
    pub(super) async fn check_main_key(&self) -> StoreResult<()> {
        let stored: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                .bind(KEY_CHECK_SETTING)
                .fetch_optional(&self.writer)
                .await?;
        let stale = match stored {
            Some(value) => verify_key_check(&self.key, value)?,
            None => true,
        };
        if stale {
            sqlx::query("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)")
                .bind(KEY_CHECK_SETTING)
                .bind(seal_key_check(&self.key))
                .execute(&self.writer)
                .await?;
        }
        Ok(())
    }

    /// Once per database: seals the secrets of rows written before migration 0002 and
    /// wipes their plain copies (secure_delete is on; the WAL is checkpointed and
    /// truncated after), then records that it did.
    pub(super) async fn seal_legacy_secrets(&self) -> StoreResult<u64> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let done: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(PLAINTEXT_SEALED_SETTING)
            .fetch_optional(&mut *tx)
            .await?;
        if done.is_some() {
            return Ok(0);
        }
        let rows = sqlx::query("SELECT * FROM webhooks WHERE secret_sealed IS NULL")
            .fetch_all(&mut *tx)
            .await?;
        for row in &rows {
            let binding = binding(row)?;
            let plain = zeroize::Zeroizing::new(row.try_get::<String, _>("secret")?);
            let secret =
                fullup_signature::Secret::parse(&plain).map_err(crate::store::rows::corrupt)?;
            let secrets = crate::domain::webhook::Secrets::new(secret);
            let url = match sealed(row, "url_sealed")? {
                Some(sealed) => sealed,
                None => {
                    let url = row.try_get::<String, _>("url")?;
                    let url = crate::domain::webhook_url::WebhookUrl::parse(&url)
                        .map_err(crate::store::rows::corrupt)?;
                    seal_url_of(&self.key, binding.site, binding.webhook, &url)
                }
            };
            let secrets = seal_secrets(&self.key, binding, &secrets)?;
            sqlx::query(
                "UPDATE webhooks SET secret = '', secret_sealed = ?, url = '', url_sealed = ? \
                 WHERE id = ?",
            )
            .bind(secrets.current)
            .bind(url)
            .bind(binding.webhook.to_string())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?)")
            .bind(PLAINTEXT_SEALED_SETTING)
            .bind(&b"1"[..])
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if !rows.is_empty() {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.writer)
                .await?;
        }
        Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX))
    }

    /// Re-seals under the current key every row sealed in the first format or under an
    /// older key of the ring; a row that does not open is left as it is (its webhook's
    /// deliveries fail, and the warning names it). Returns how many were re-sealed.
    pub(super) async fn reseal_stale(&self) -> StoreResult<u64> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let rows = sqlx::query("SELECT * FROM webhooks WHERE secret_sealed IS NOT NULL")
            .fetch_all(&mut *tx)
            .await?;
        let mut resealed = 0u64;
        for row in &rows {
            let (current, old) = (
                sealed(row, "secret_sealed")?,
                sealed(row, "old_secrets_sealed")?,
            );
            let url = sealed(row, "url_sealed")?;
            let headers: String = row.try_get("headers")?;
            if !needs_reseal(
                &self.key,
                current.as_deref(),
                old.as_deref(),
                url.as_deref(),
                &headers,
            ) {
                continue;
            }
            let binding = binding(row)?;
            let webhook = webhook_from_row(row, &self.key)?;
            match reseal(&self.key, binding, &webhook) {
                Ok(new) => write_sealed(&mut tx, binding, new).await?,
                Err(err) => {
                    tracing::warn!(error = %err, "a webhook's secrets could not be re-sealed");
                    continue;
                }
            }
            resealed += 1;
        }
        tx.commit().await?;
        if resealed > 0 {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.writer)
                .await?;
        }
        Ok(resealed)
    }

    /// [`crate::store::Store::rotate_main_key`]: one transaction on the maintenance
    /// connection, then the WAL is checkpointed so no old sealed value stays in it.
    /// Refused, changing nothing, when a row's secrets do not open.
    pub(super) async fn reseal_under(&self, new: &MainKey) -> StoreResult<u64> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let rows = sqlx::query("SELECT * FROM webhooks")
            .fetch_all(&mut *tx)
            .await?;
        for row in &rows {
            let binding = binding(row)?;
            let webhook = webhook_from_row(row, &self.key)?;
            write_sealed(&mut tx, binding, reseal(new, binding, &webhook)?).await?;
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
    /// then written only if the sealed secrets and their version are still those read
    /// (compare and swap), so concurrent rotations cannot lose a secret; a lost race
    /// reads again. The new values are sealed for the next secret version.
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
            webhook.rotate_secret(r.new.clone(), now, r.grace)?;
            let read = binding(&row)?;
            let next = Binding {
                version: read.version + 1,
                ..read
            };
            let sealed = seal_secrets(&self.key, next, webhook.secrets()?)?;
            let swapped = self
                .execute(
                    "UPDATE webhooks SET secret = '', secret_sealed = ?1, old_secrets_sealed = ?2, updated_at = ?3, \
                     secret_version = ?7 \
                     WHERE id = ?4 AND secret_sealed IS ?5 AND old_secrets_sealed IS ?6 AND secret_version = ?8",
                    vec![
                        Value::from(sealed.current),
                        Value::from(sealed.old),
                        Value::from(now),
                        Value::from(webhook.id.to_string()),
                        Value::from(read_current),
                        Value::from(read_old),
                        Value::from(next.version),
                        Value::from(read.version),
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

/// Writes a row's re-sealed secrets, URL and custom headers (same binding, same
/// version).
async fn write_sealed(
    tx: &mut sqlx::SqliteConnection,
    binding: Binding,
    resealed: Resealed,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE webhooks SET secret = '', secret_sealed = ?, old_secrets_sealed = ?, url = '', \
         url_sealed = ?, headers = ? WHERE id = ?",
    )
    .bind(resealed.secrets.current)
    .bind(resealed.secrets.old)
    .bind(resealed.url)
    .bind(resealed.headers)
    .bind(binding.webhook.to_string())
    .execute(tx)
    .await?;
    Ok(())
}
