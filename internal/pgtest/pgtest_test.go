package pgtest

import (
	"database/sql"
	"testing"
)

// TestDatabase: a database of the cluster takes a connection and a table,
// and two tests' databases are apart.
func TestDatabase(t *testing.T) {
	a, b := Database(t), Database(t)
	if a == b {
		t.Fatalf("two databases with one DSN %s", a)
	}
	for _, dsn := range []string{a, b} {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.ExecContext(t.Context(), `CREATE TABLE x (id BIGINT)`); err != nil {
			t.Fatalf("%s: %v", dsn, err)
		}
	}
}
