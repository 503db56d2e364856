//! Webhook secrets in PostgreSQL: sealed under the main key (see
//! [`crate::store::sealing`]), never in clear; the main key check; start-up re-sealing
//! of values in an older format or under an older key of the ring; rotations read and
//! written under a row lock, so concurrent rotations on several nodes cannot lose a
//! secret; main key rotations only while no other process holds the database
//! ([`super::key_lock`]).

use std::sync::Arc;

use sqlx::Row as _;

use super::PgStore;
use crate::crypto::MainKey;
use crate::domain::webhook::Webhook;
use crate::store::rows::postgres::{binding, sealed, webhook as webhook_from_row};
use crate::store::sealing::{
    Binding, KEY_CHECK_SETTING, Resealed, needs_reseal, reseal, reseal_token_hash_key,
    seal_key_check, seal_secrets, verify_key_check,
};
use crate::store::{SecretRotation, StoreResult};
use crate::tokens::TOKEN_HASH_KEY_SETTING;

impl PgStore {
    /// Fails with [`crate::store::StoreError::WrongMainKey`] when the database was
    /// sealed under a key outside the ring; on a new database, records the key check
    /// (the first of several nodes starting at once wins, and the others are checked
    /// against it); a check sealed under an older key of the ring is sealed again.
    pub(super) async fn check_main_key(&self) -> StoreResult<()> {
        check_main_key(self.pool.clone(), Arc::clone(&self.key)).await
    }

    /// Re-seals under the current key every row sealed in the first format or under an
    /// older key of the ring, each in a transaction of its own under its row lock; a row
    /// that does not open is left as it is (its webhook's deliveries fail, and the
    /// warning names it). Returns how many were re-sealed.
    pub(super) async fn reseal_stale(&self) -> StoreResult<u64> {
        let prefix = format!("{}{}:", crate::crypto::SEALED_PREFIX, self.key.key_id());
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM webhooks WHERE position($1::bytea IN secret_sealed) <> 1 \
             OR position($1::bytea IN COALESCE(old_secrets_sealed, $1::bytea)) <> 1 \
             OR url_sealed IS NULL OR position($1::bytea IN url_sealed) <> 1 \
             OR (headers <> '{}' AND NOT starts_with(headers, convert_from($1::bytea, 'UTF8')))",
        )
        .bind(prefix.into_bytes())
        .fetch_all(&self.pool)
        .await?;
        let mut resealed = 0u64;
        for id in ids {
            let mut tx = self.pool.begin().await?;
            let row = sqlx::query("SELECT * FROM webhooks WHERE id = $1 FOR UPDATE")
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else { continue };
            let (current, old) = (
                sealed(&row, "secret_sealed")?,
                sealed(&row, "old_secrets_sealed")?,
            );
            let url = sealed(&row, "url_sealed")?;
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
            let binding = binding(&row)?;
            let webhook = webhook_from_row(&row, &self.key)?;
            match reseal(&self.key, binding, &webhook) {
                Ok(new) => write_sealed(&mut tx, binding, new).await?,
                Err(err) => {
                    tracing::warn!(error = %err, "a webhook's secrets could not be re-sealed");
                    continue;
                }
            }
            tx.commit().await?;
            resealed += 1;
        }
        Ok(resealed)
    }

    /// [`crate::store::Store::rotate_main_key`]: only while no other process holds the
    /// database; one transaction, every webhook row locked while it is re-sealed.
    /// Refused, changing nothing, when a row's secrets do not open.
    pub(super) async fn reseal_under(&self, new: &MainKey) -> StoreResult<u64> {
        self.key_lock
            .exclusively(|| async {
                let mut tx = self.pool.begin().await?;
                let rows = sqlx::query("SELECT * FROM webhooks FOR UPDATE")
                    .fetch_all(&mut *tx)
                    .await?;
                for row in &rows {
                    let binding = binding(row)?;
                    let webhook = webhook_from_row(row, &self.key)?;
                    write_sealed(&mut tx, binding, reseal(new, binding, &webhook)?).await?;
                }
                sqlx::query("UPDATE settings SET value = $1 WHERE key = $2")
                    .bind(seal_key_check(new))
                    .bind(KEY_CHECK_SETTING)
                    .execute(&mut *tx)
                    .await?;
                let token_key: Option<Vec<u8>> =
                    sqlx::query_scalar("SELECT value FROM settings WHERE key = $1 FOR UPDATE")
                        .bind(TOKEN_HASH_KEY_SETTING)
                        .fetch_optional(&mut *tx)
                        .await?;
                if let Some(stored) = token_key {
                    sqlx::query("UPDATE settings SET value = $1 WHERE key = $2")
                        .bind(reseal_token_hash_key(&self.key, new, &stored)?)
                        .bind(TOKEN_HASH_KEY_SETTING)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX))
            })
            .await
    }

    /// The rotation of [`crate::store::Store::rotate_webhook_secret`]: the row is locked
    /// (`FOR UPDATE`) from read to write, so a concurrent rotation waits for this one.
    /// The new values are sealed for the next secret version.
    pub(super) async fn rotate_secret_atomically(
        &self,
        r: &SecretRotation,
    ) -> StoreResult<Option<Webhook>> {
        let (id, site, now) = (r.webhook.to_string(), r.site.to_string(), r.now);
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT * FROM webhooks WHERE id = $1 AND site_id = $2 FOR UPDATE")
            .bind(&id)
            .bind(&site)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut webhook = webhook_from_row(&row, &self.key)?;
        webhook.rotate_secret(r.new.clone(), now, r.grace)?;
        let read = binding(&row)?;
        let next = Binding {
            version: read.version + 1,
            ..read
        };
        let sealed = seal_secrets(&self.key, next, webhook.secrets()?)?;
        sqlx::query(
            "UPDATE webhooks SET secret_sealed = $1, old_secrets_sealed = $2, updated_at = $3, \
             secret_version = $4 WHERE id = $5",
        )
        .bind(sealed.current.into_bytes())
        .bind(sealed.old.map(String::into_bytes))
        .bind(now)
        .bind(next.version)
        .bind(webhook.id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(webhook))
    }
}

/// [`PgStore::check_main_key`] on `pool` with `key` (also run by the main key lock's
/// keeper after it took the lock again).
pub(super) async fn check_main_key(pool: sqlx::PgPool, key: Arc<MainKey>) -> StoreResult<()> {
    sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
        .bind(KEY_CHECK_SETTING)
        .bind(seal_key_check(&key))
        .execute(&pool)
        .await?;
    let stored: Vec<u8> = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
        .bind(KEY_CHECK_SETTING)
        .fetch_one(&pool)
        .await?;
    if verify_key_check(&key, stored.clone())? {
        sqlx::query("UPDATE settings SET value = $1 WHERE key = $2 AND value = $3")
            .bind(seal_key_check(&key))
            .bind(KEY_CHECK_SETTING)
            .bind(stored)
            .execute(&pool)
            .await?;
    }
    Ok(())
}

/// Writes a row's re-sealed secrets, URL and custom headers (same binding, same
/// version).
async fn write_sealed(
    tx: &mut sqlx::PgConnection,
    binding: Binding,
    resealed: Resealed,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE webhooks SET secret_sealed = $1, old_secrets_sealed = $2, url = '', \
         url_sealed = $3, headers = $4 WHERE id = $5",
    )
    .bind(resealed.secrets.current.into_bytes())
    .bind(resealed.secrets.old.map(String::into_bytes))
    .bind(resealed.url.into_bytes())
    .bind(resealed.headers)
    .bind(binding.webhook.to_string())
    .execute(tx)
    .await?;
    Ok(())
}
