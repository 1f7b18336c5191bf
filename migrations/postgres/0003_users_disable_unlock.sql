-- Users can be disabled, and unlocked after failed logins (failures up to unlocked_at no longer count).
ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN unlocked_at BIGINT;
-- Ending a user's tickets and sessions (password change, disable) finds them by user.
CREATE INDEX login_tokens_user ON login_tokens(user_id);
