// Package pgtest gives tests a real PostgreSQL database: one throwaway
// cluster per test binary (initdb and pg_ctl of the Debian postgresql
// package, in a temporary directory, as an unprivileged user, on loopback)
// and a fresh database per test, dropped when the test ends. It is the
// PostgreSQL half of the store's tests; there is no mock.
//
// Without PostgreSQL installed, Database skips the test on a developer
// machine but fails it when CI=true or MAILSEC_REQUIRE_PEERS=1, so CI can
// never pass by skipping the PostgreSQL half.
package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// runAs is the user the cluster runs as when the tests run as root: initdb
// refuses root and needs a user with a passwd entry.
const runAs = "nobody"

// The cluster is one per test binary, started by the first test that asks
// and stopped when the binary exits (see start): process-wide state by
// nature, kept to this one value.
var shared struct {
	once    sync.Once
	cluster *cluster
	err     error
	skip    string // why PostgreSQL is not available ("" when it is)
	dbs     atomic.Int64
}

// cluster is a running PostgreSQL server.
type cluster struct {
	port  int
	admin *sql.DB // the "postgres" database, for CREATE and DROP DATABASE
	// watchdog stops the cluster and removes its directory when this pipe
	// closes: at the exit of the test binary, however it exits.
	watchdog *os.File
}

// Database returns the DSN (a postgres:// URL) of a new, empty database on
// the test binary's cluster, starting the cluster first if needed. The
// database is dropped when t ends (after the cleanups t registers later,
// such as closing a store on it).
func Database(t testing.TB) string {
	t.Helper()
	shared.once.Do(func() { shared.cluster, shared.skip, shared.err = start() })
	if shared.skip != "" {
		if os.Getenv("CI") == "true" || os.Getenv("MAILSEC_REQUIRE_PEERS") == "1" {
			t.Fatalf("PostgreSQL is required here (CI=true or MAILSEC_REQUIRE_PEERS=1): %s; run scripts/install-deps", shared.skip)
		}
		t.Skipf("PostgreSQL half skipped: %s (install the Debian postgresql package; CI=true makes this a failure)", shared.skip)
	}
	if shared.err != nil {
		t.Fatalf("pgtest: start the PostgreSQL cluster: %v", shared.err)
	}
	c := shared.cluster
	name := fmt.Sprintf("t%d_%d", os.Getpid(), shared.dbs.Add(1))
	ctx := context.Background()
	if _, err := c.admin.ExecContext(ctx, `CREATE DATABASE `+name+` TEMPLATE template0`); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if _, err := c.admin.ExecContext(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return c.dsn(name)
}

// Exec runs a statement as the cluster's superuser in the database of dsn
// (one Database returned): setup a test needs beyond what the code under
// test does, such as CREATE EXTENSION.
func Exec(t testing.TB, dsn, statement string) {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), statement); err != nil {
		t.Fatalf("pgtest: %s: %v", statement, err)
	}
}

// dsn is the URL of database name on the cluster, over TCP on loopback
// (the way a deployment connects); the server has no TLS.
func (c *cluster) dsn(name string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)), Path: "/" + name,
		RawQuery: "sslmode=disable"}
	return u.String()
}

// BinDirEnv names the environment variable that points pgtest at the
// directory of initdb and pg_ctl, for PostgreSQL installed elsewhere than
// Debian puts it. Set, it is the only place looked in.
const BinDirEnv = "MAILSEC_PG_BINDIR"

// binDir finds the newest installed PostgreSQL's programs.
func binDir() (string, error) {
	if dir := os.Getenv(BinDirEnv); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err != nil {
			return "", fmt.Errorf("no pg_ctl in %s=%s", BinDirEnv, dir)
		}
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return va - vb
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "pg_ctl")); err == nil {
			return dirs[i], nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real), nil
		}
	}
	return "", errors.New("no PostgreSQL server programs (initdb, pg_ctl) found in /usr/lib/postgresql/*/bin or PATH")
}

// start makes and starts the cluster. skip is set when PostgreSQL is not
// installed; err when it is but would not start.
func start() (c *cluster, skip string, err error) {
	bin, err := binDir()
	if err != nil {
		return nil, err.Error(), nil
	}
	dir, err := os.MkdirTemp("", "mailsec-pgtest-")
	if err != nil {
		return nil, "", err
	}
	// As root, the cluster's files and processes belong to runAs.
	var prefix []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup(runAs)
		if err != nil {
			os.RemoveAll(dir)
			return nil, "", fmt.Errorf("running as root needs the user %s: %w", runAs, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, "", err
		}
		prefix = []string{"runuser", "-u", runAs, "--"}
	}
	run := func(name string, args ...string) *exec.Cmd {
		argv := append(slices.Clone(prefix), append([]string{filepath.Join(bin, name)}, args...)...)
		cmd := exec.Command(argv[0], argv[1:]...)
		// Its own process group: a ^C to `go test` does not stop the
		// server before the watchdog can.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		return cmd
	}
	data := filepath.Join(dir, "data")
	if out, err := run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("initdb: %w: %s", err, out)
	}

	// The watchdog outlives nothing: it waits for its standard input to
	// close (the test binary's exit, even by a signal), then stops the
	// server and removes the directory.
	stopArgs := append(slices.Clone(prefix), filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
	script := `cat >/dev/null; "$@" >/dev/null 2>&1; rm -rf "` + dir + `"`
	r, w, err := os.Pipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	wd := exec.Command("sh", append([]string{"-c", script, "pgtest-watchdog"}, stopArgs...)...)
	wd.Stdin = r
	wd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := wd.Start(); err != nil {
		r.Close()
		w.Close()
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("start the watchdog: %w", err)
	}
	r.Close()
	go wd.Wait() //nolint:errcheck // it only cleans up

	var lastErr error
	for range 5 { // a free port can be taken before the server binds it
		port, err := freePort()
		if err != nil {
			return nil, "", err
		}
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c full_page_writes=off -c max_connections=300 -c shared_buffers=32MB", port, dir)
		out, err := run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-o", opts, "-w", "-t", "60", "start").CombinedOutput()
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			lastErr = fmt.Errorf("pg_ctl start: %w: %s %s", err, out, tail(string(log), 2000))
			continue
		}
		c := &cluster{port: port, watchdog: w}
		if c.admin, err = sql.Open("pgx", c.dsn("postgres")); err != nil {
			w.Close()
			return nil, "", err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = c.admin.PingContext(ctx)
		cancel()
		if err != nil {
			w.Close()
			return nil, "", fmt.Errorf("connect to the cluster: %w", err)
		}
		return c, "", nil
	}
	w.Close()
	return nil, "", lastErr
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return strings.TrimSpace(s)
}
