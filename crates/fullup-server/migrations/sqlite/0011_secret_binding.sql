-- Sealed secrets are bound to their site, webhook and secret version (issue 18, item 3):
-- the version is part of the associated data, raised by every secret rotation, so a
-- sealed value written back from an earlier version of the row (or moved to another
-- site) does not open. Values sealed before this (`v1:`, bound to the webhook id only)
-- are re-sealed at start under the current key with the full binding.
ALTER TABLE webhooks ADD COLUMN secret_version INTEGER NOT NULL DEFAULT 1;

-- Receiver URLs are sealed too (issue 17, item 12): paths and queries often carry the
-- receiver's token. `url_sealed` holds the URL sealed under the main key, bound to the
-- site and webhook; `url` keeps '' once a row is sealed. Rows of earlier versions are
-- sealed at start.
ALTER TABLE webhooks ADD COLUMN url_sealed TEXT;
