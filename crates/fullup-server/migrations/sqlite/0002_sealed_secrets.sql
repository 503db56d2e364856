-- Webhook secrets at rest are sealed with AES-256-GCM under the main key (see
-- src/crypto.rs): `v1:` + base64(nonce || ciphertext || tag), bound to the webhook id.
-- `secret` keeps only '' once a row is sealed; rows written by 0001 are sealed at the
-- next start, which needs the main key and so cannot happen in SQL.

ALTER TABLE webhooks ADD COLUMN secret_sealed TEXT;
-- The secrets replaced by rotations, as one sealed JSON list
-- [{"secret", "valid_until"}], newest first; NULL when there are none.
ALTER TABLE webhooks ADD COLUMN old_secrets_sealed TEXT;
