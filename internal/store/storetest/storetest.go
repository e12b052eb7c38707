// Package storetest opens stores for the tests of the packages above the
// store, on each database the store supports: SQLite (a file in a
// temporary directory) and PostgreSQL (a fresh database on the test
// binary's throwaway cluster, internal/pgtest: skipped without PostgreSQL
// installed, a failure then under CI=true). The store's own tests have the
// same helpers inside the package (package store cannot import this one).
package storetest

import (
	"path/filepath"
	"testing"

	"github.com/mailsec/mailsec/internal/pgtest"
	"github.com/mailsec/mailsec/internal/store"
)

// Drivers are the databases the tests run on.
var Drivers = []string{store.DriverSQLite, store.DriverPostgres}

// ForEachDriver runs fn as a subtest per database, named after its driver.
func ForEachDriver(t *testing.T, fn func(t *testing.T, driver string)) {
	t.Helper()
	for _, d := range Drivers {
		t.Run(d, func(t *testing.T) { fn(t, d) })
	}
}

// Open opens a store on a fresh, empty database of driver and closes it
// when t ends.
func Open(t testing.TB, driver string) *store.Store {
	t.Helper()
	dsn := filepath.Join(t.TempDir(), "mailsec.db")
	if driver == store.DriverPostgres {
		dsn = pgtest.Database(t)
	}
	st, err := store.OpenDriver(t.Context(), driver, dsn)
	if err != nil {
		t.Fatalf("open a %s store: %v", driver, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
