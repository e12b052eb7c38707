package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// This file holds what the PostgreSQL store does differently (docs/store.md
// "PostgreSQL"): how it connects, the locks that stand in for SQLite's one
// writer, and the durable commit. The statements themselves are the same
// on both; "?" placeholders become "$n" in Store.q.

// Drivers are the values of store.driver.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// ErrUnsupported is returned by a store operation the database behind the
// store does not offer (Backup and the integrity check on PostgreSQL): the
// error says what to use instead.
var ErrUnsupported = errors.New("store: not supported by this database")

// pgMaxOpenConns bounds the PostgreSQL pool: the SMTP sessions, the DNS
// log's writer, the finaliser and the web UI share it, and every
// connection is a server process. The server's max_connections (100 by
// default) must leave room for every node's pool (issue 18: several nodes
// share one database).
const pgMaxOpenConns = 16

// OpenDriver opens the store of driver (DriverSQLite: dsn is the file's
// path; DriverPostgres: dsn is a libpq URL or keyword/value string).
func OpenDriver(ctx context.Context, driver, dsn string) (*Store, error) {
	switch driver {
	case DriverSQLite, "":
		return Open(ctx, dsn)
	case DriverPostgres:
		return OpenPostgres(ctx, dsn)
	}
	return nil, fmt.Errorf("store: driver %q is not supported (%s, %s)", driver, DriverSQLite, DriverPostgres)
}

// OpenPostgres connects to the PostgreSQL database of dsn (a libpq URL,
// postgres://user:password@host:port/db?sslmode=..., or keyword/value
// string; PGPASSWORD and ~/.pgpass work as with libpq) and applies any
// pending migrations. No error it returns shows the DSN's password: the
// DSN is never part of one.
func OpenPostgres(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx masks passwords in its parse errors on a best-effort basis
		// only (a malformed DSN can be too ambiguous), so the DSN is not
		// repeated at all.
		return nil, errors.New("store: the PostgreSQL DSN (store.dsn) does not parse; it is not shown here because it may hold a password")
	}
	where := fmt.Sprintf("postgres %s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(pgMaxOpenConns)
	db.SetMaxIdleConns(pgMaxOpenConns)
	// A server may end idle connections (idle_session_timeout, a
	// failover); the pool replaces old ones rather than finding out.
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &Store{db: db, dialect: dialectPostgres, writeSeconds: newWriteSeconds()}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", where, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", where, err)
	}
	return s, nil
}

// Driver reports the store's database: DriverSQLite or DriverPostgres.
func (s *Store) Driver() string {
	if s.dialect == dialectPostgres {
		return DriverPostgres
	}
	return DriverSQLite
}

// lockKey names what a transaction that counts and then writes must have to
// itself. On SQLite every transaction begins IMMEDIATE and so holds the one
// write lock from its start; PostgreSQL runs transactions side by side (READ
// COMMITTED), where two could both count "one below the cap" and both
// insert. There the transaction first takes a transaction-scoped advisory
// lock of its key (pg_advisory_xact_lock, released at commit or rollback),
// which serialises exactly the transactions of one key, across every
// process and node on the database.
type lockKey int64

// The keys, in a range of their own ("mailsec" in ASCII, shifted) so they
// do not meet the advisory locks of other software sharing a database.
const (
	lockBase        lockKey = 0x6d61696c736563 << 8
	lockMigrations          = lockBase + 1 // applying the schema migrations
	lockFixedTests          = lockBase + 2 // the caps of open fixed-address tests
	lockTLSRPTQuota         = lockBase + 3 // the TLS-RPT reports' quota
	lockTestSlots           = lockBase + 4 // handing out the test slots (CreateSlotTest)
	lockLeader              = lockBase + 5 // the leader node (session-level: TryLead)
)

// serialise makes the transaction tx the only one holding k until it ends
// (see lockKey). On SQLite it does nothing: tx holds the write lock.
func (s *Store) serialise(ctx context.Context, tx *sql.Tx, k lockKey) error {
	if s.dialect != dialectPostgres {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(k)); err != nil {
		return fmt.Errorf("advisory lock: %w", err)
	}
	return nil
}

// pgDurableCommit makes the commit of the transaction tx wait for its WAL
// to be flushed to disk, whatever the server's or the database's default
// (an operator may set synchronous_commit=off for the many history writes,
// as SQLite's pool runs synchronous=NORMAL). A setting stronger than off
// (local, on, remote_write, remote_apply) is kept: each of them flushes
// the local WAL before the commit returns.
func pgDurableCommit(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `SELECT set_config('synchronous_commit', 'on', true) WHERE current_setting('synchronous_commit') = 'off'`)
	return err
}

// pgStats fills st on PostgreSQL: the rows of the tables in the store's
// schema and the database's size. The integrity check uses the amcheck
// extension (bt_index_check of every B-tree index of the schema) when the
// database has it, and is ErrUnsupported otherwise.
func (s *Store) pgStats(ctx context.Context, st *Stats, integrity bool) error {
	names, err := queryRows(ctx, s.db, "stats", scanValue[string],
		`SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema() ORDER BY tablename`)
	if err != nil {
		return err
	}
	if err := s.countTables(ctx, st, names); err != nil {
		return err
	}
	if st.Bytes, err = queryOne(ctx, s.db, "stats", scanValue[int64], `SELECT pg_database_size(current_database())`); err != nil {
		return err
	}
	if !integrity {
		return nil
	}
	n, err := queryOne(ctx, s.db, "integrity check", scanValue[int64], `SELECT COUNT(*) FROM pg_catalog.pg_extension WHERE extname = 'amcheck'`)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: the integrity check on PostgreSQL needs the amcheck extension (CREATE EXTENSION amcheck, as a superuser), or run pg_amcheck", ErrUnsupported)
	}
	// bt_index_check raises an error at the first corrupt index; each
	// index is checked on its own so the report names every one.
	indexes, err := queryRows(ctx, s.db, "integrity check", scanValue[string], `SELECT c.relname FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
JOIN pg_catalog.pg_am a ON a.oid = c.relam
WHERE a.amname = 'btree' AND c.relnamespace = current_schema()::regnamespace
ORDER BY c.relname`)
	if err != nil {
		return err
	}
	var problems []string
	for _, ix := range indexes {
		if _, err := s.db.ExecContext(ctx, `SELECT bt_index_check(to_regclass(quote_ident($1)), true)`, ix); err != nil {
			problems = append(problems, fmt.Sprintf("index %s: %v", ix, err))
		}
	}
	st.Integrity = "ok"
	if len(problems) > 0 {
		st.Integrity = strings.Join(problems, "; ")
	}
	return nil
}
