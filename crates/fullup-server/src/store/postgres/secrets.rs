//! Webhook secrets in PostgreSQL: sealed under the main key (see
//! [`crate::store::sealing`]), never in clear; the main key check; rotations read and
//! written under a row lock, so concurrent rotations on several nodes cannot lose a
//! secret.

use super::PgStore;
use crate::crypto::MainKey;
use crate::domain::webhook::Webhook;
use crate::store::rows::postgres::webhook as webhook_from_row;
use crate::store::sealing::{
    KEY_CHECK_SETTING, reseal_token_hash_key, seal_key_check, seal_secrets, verify_key_check,
};
use crate::store::{SecretRotation, StoreResult};
use crate::tokens::TOKEN_HASH_KEY_SETTING;

impl PgStore {
    /// Fails with [`crate::store::StoreError::WrongMainKey`] when the database was
    /// sealed under another key; on a new database, records the key check (the first
    /// of several nodes starting at once wins, and the others are checked against it).
    pub(super) async fn check_main_key(&self) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(KEY_CHECK_SETTING)
        .bind(seal_key_check(&self.key))
        .execute(&self.pool)
        .await?;
        let stored: Vec<u8> = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(KEY_CHECK_SETTING)
            .fetch_one(&self.pool)
            .await?;
        verify_key_check(&self.key, stored)
    }

    /// [`crate::store::Store::rotate_main_key`]: one transaction, every webhook row
    /// locked while it is re-sealed.
    pub(super) async fn reseal_under(&self, new: &MainKey) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query("SELECT * FROM webhooks FOR UPDATE")
            .fetch_all(&mut *tx)
            .await?;
        for row in &rows {
            let webhook = webhook_from_row(row, &self.key)?;
            let sealed = seal_secrets(new, &webhook)?;
            sqlx::query(
                "UPDATE webhooks SET secret_sealed = $1, old_secrets_sealed = $2 WHERE id = $3",
            )
            .bind(sealed.current.into_bytes())
            .bind(sealed.old.map(String::into_bytes))
            .bind(webhook.id.to_string())
            .execute(&mut *tx)
            .await?;
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
    }

    /// The rotation of [`crate::store::Store::rotate_webhook_secret`]: the row is locked
    /// (`FOR UPDATE`) from read to write, so a concurrent rotation waits for this one.
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
        webhook.rotate_secret(r.new.clone(), now, r.grace);
        let sealed = seal_secrets(&self.key, &webhook)?;
        sqlx::query(
            "UPDATE webhooks SET secret_sealed = $1, old_secrets_sealed = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(sealed.current.into_bytes())
        .bind(sealed.old.map(String::into_bytes))
        .bind(now)
        .bind(webhook.id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(webhook))
    }
}
