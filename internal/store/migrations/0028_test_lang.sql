-- The language of a test's result mail (issue 19, point 3; docs/i18n.md):
-- chosen when the test is created (the API's "lang", or the language of
-- the page it was started from), "en" or "de". Tests from before it read
-- in English, as their mails did.
ALTER TABLE tests ADD COLUMN lang TEXT NOT NULL DEFAULT 'en';
