package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// This file holds the tests' owner keys (migration 0015): the secret that
// opens a test's pages, report, events and deletion. The test ID cannot be
// that secret: it is the local part of the test's addresses, so it is in
// the sender's mail logs, its queue and at every relay (issue 16).

// How a test got an owner key (OwnerKeyInfo.Via).
const (
	// KeyCreated: made when the test was created (web, API, CLI) and
	// given once to its creator.
	KeyCreated = "created"
	// KeyResultMail: made when the result mail was composed; the link in
	// the mail carries it. The mail's recipient is the owner of a
	// fixed-address test, who learns of the test only then.
	KeyResultMail = "result_mail"
	// KeyLegacyID: the test existed before owner keys (migration 0015);
	// its ID stays its key, as it was, so links already sent still work.
	KeyLegacyID = "legacy_id"
)

// ownerKeyBytes is the owner key's randomness: 160 bits, above the 128
// bits that make guessing hopeless at any request rate.
const ownerKeyBytes = 20

// OwnerKeyLen is the length of a key from NewOwnerKey: ownerKeyBytes in
// base32 without padding.
const OwnerKeyLen = (ownerKeyBytes*8 + 4) / 5

// ownerKeyRe is the form of an owner key from NewOwnerKey (or a legacy
// test ID): lower-case base32, bounded so no long input is hashed.
var ownerKeyRe = regexp.MustCompile(`^[a-z2-7]{1,64}$`)

// NewOwnerKey returns a fresh owner key: 32 lower-case base32 characters
// (160 bits from crypto/rand; RFC 4648 without padding), safe in a URL
// path and in a mail without quoting.
func NewOwnerKey() (string, error) {
	var b [ownerKeyBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("store: owner key: %w", err)
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])), nil
}

// ownerKeyHash is what the store keeps of a key: the hex SHA-256 of its
// lower-case form. The key has 160 random bits, so a plain hash (no salt,
// no slow hash) is enough to make a copy of the database useless as keys.
func ownerKeyHash(key string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(key)))
	return hex.EncodeToString(sum[:])
}

// OwnerKeyInfo is what is known of one of a test's keys (never the key).
type OwnerKeyInfo struct {
	Via     string    `json:"via"` // KeyCreated, KeyResultMail, KeyLegacyID
	Created time.Time `json:"created"`
}

// addOwnerKey stores the hash of key as a key of test id.
func (s *Store) addOwnerKey(ctx context.Context, db querier, testID, key, via string, now time.Time) error {
	if !ownerKeyRe.MatchString(key) {
		return fmt.Errorf("store: owner key of test %s: malformed key", testID)
	}
	ns, err := timeToNanos(now)
	if err != nil {
		return fmt.Errorf("store: owner key of test %s: %w", testID, err)
	}
	return insertNew(ctx, db, "owner key of test "+testID, s.q(`INSERT INTO test_owner_keys (key_hash, test_id, via, created_ns)
    VALUES (?, ?, ?, ?) ON CONFLICT (key_hash) DO NOTHING`), ownerKeyHash(key), strings.ToLower(testID), via, ns)
}

// AddOwnerKey stores key (from NewOwnerKey) as one more key of the test
// id, made at now for the reason via (KeyResultMail). It returns an error
// wrapping ErrNotFound if there is no such test.
func (s *Store) AddOwnerKey(ctx context.Context, testID, key, via string, now time.Time) error {
	return s.inTx(ctx, "owner key of test "+testID, func(tx *sql.Tx) error {
		if _, err := queryOne(ctx, tx, "test "+testID, scanValue[string], s.q(`SELECT id FROM tests WHERE id = ?`), strings.ToLower(testID)); err != nil {
			return err
		}
		return s.addOwnerKey(ctx, tx, testID, key, via, now)
	})
}

// TestByOwnerKey returns the test that key opens; an error wrapping
// ErrNotFound if it opens none (malformed, wrong, or the test's ID where
// the test has keys of its own).
//
// The key is looked up by its hash, so what the database's index search
// takes time on is the hash, not the key: how long a wrong key takes says
// nothing about the right one. The stored hash is then compared in
// constant time, so no collation or index quirk can let a near miss in.
func (s *Store) TestByOwnerKey(ctx context.Context, key string) (Test, error) {
	key = strings.ToLower(key)
	if !ownerKeyRe.MatchString(key) {
		return Test{}, fmt.Errorf("store: test by owner key: %w", ErrNotFound)
	}
	want := ownerKeyHash(key)
	type keyRow struct{ hash, testID string }
	k, err := queryOne(ctx, s.db, "test by owner key", func(row rowScanner) (r keyRow, err error) {
		err = row.Scan(&r.hash, &r.testID)
		return r, err
	}, s.q(`SELECT key_hash, test_id FROM test_owner_keys WHERE key_hash = ?`), want)
	if err != nil {
		return Test{}, err
	}
	if subtle.ConstantTimeCompare([]byte(k.hash), []byte(want)) != 1 {
		return Test{}, fmt.Errorf("store: test by owner key: %w", ErrNotFound)
	}
	return s.Test(ctx, k.testID)
}

// OwnerKeys returns what is known of a test's keys (how and when each was
// made; never the keys), oldest first.
func (s *Store) OwnerKeys(ctx context.Context, testID string) ([]OwnerKeyInfo, error) {
	return queryRows(ctx, s.db, "owner keys of "+testID, func(row rowScanner) (OwnerKeyInfo, error) {
		var (
			k  OwnerKeyInfo
			ns int64
		)
		err := row.Scan(&k.Via, &ns)
		k.Created = nanosToTime(ns)
		return k, err
	}, s.q(`SELECT via, created_ns FROM test_owner_keys WHERE test_id = ? ORDER BY created_ns, via LIMIT 1000`), strings.ToLower(testID))
}

// backfillLegacyOwnerKeys makes the ID of every test that exists when
// migration 0015 runs its key (KeyLegacyID), as it was before: nothing
// that worked stops working. Hashing needs Go, so it is a backfill.
func (s *Store) backfillLegacyOwnerKeys(ctx context.Context, tx *sql.Tx) error {
	return backfillInBatches(ctx, tx, "backfill test_owner_keys", s.q(`SELECT id, created_ns FROM tests WHERE id > ? ORDER BY id LIMIT ?`),
		"", func(r backfillRow[string, int64]) error {
			_, err := tx.ExecContext(ctx, s.q(`INSERT INTO test_owner_keys (key_hash, test_id, via, created_ns) VALUES (?, ?, ?, ?)
    ON CONFLICT (key_hash) DO NOTHING`), ownerKeyHash(r.cursor), r.cursor, KeyLegacyID, r.value)
			return err
		})
}
