-- Users can be disabled, and unlocked after failed logins (failures up to unlocked_at no longer count).
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN unlocked_at INTEGER;
-- Ending a user's tickets and sessions (password change, disable) finds them by user.
CREATE INDEX login_tokens_user ON login_tokens(user_id);
