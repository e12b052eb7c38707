// Command mailsec-hardening is lab/hardening's attack suite
// (internal/hardening): it attacks the lab's running service from inside
// the lab's network namespace and writes the checks' figures as JSON.
//
//	mailsec-hardening -env lab/state/env -out lab/state/hardening.json [-full] [-only R6,R1]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mailsec/mailsec/internal/hardening"
)

func main() {
	envFile := flag.String("env", "lab/state/env", "the lab's environment file (lab/up writes it)")
	out := flag.String("out", "lab/state/hardening.json", "where to write the report")
	full := flag.Bool("full", false, "full sizes (60 s floods, 5,000 idle connections); default: CI's reduced sizes")
	only := flag.String("only", "", "comma-separated name prefixes of the checks to run (e.g. R6,R1); checks: "+strings.Join(hardening.Names(), ", "))
	timeout := flag.Duration("timeout", 20*time.Minute, "bound on the whole run")
	flag.Parse()

	env, err := hardening.LoadEnv(*envFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mailsec-hardening:", err)
		os.Exit(2)
	}
	sizes := hardening.ReducedSizes
	if *full {
		sizes = hardening.FullSizes
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var prefixes []string
	if *only != "" {
		prefixes = strings.Split(*only, ",")
	}
	suite := &hardening.Suite{Env: env, Sizes: sizes, Log: func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "lab/hardening: "+format+"\n", args...)
	}}
	rep := suite.Run(ctx, prefixes)
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		fmt.Fprintln(os.Stderr, "mailsec-hardening:", err)
		os.Exit(2)
	}
	if err := os.WriteFile(*out, append(js, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "mailsec-hardening:", err)
		os.Exit(2)
	}
	if !rep.OK() {
		os.Exit(1)
	}
}
