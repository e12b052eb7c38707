package reportsource

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/evidence"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
	"github.com/mailsec/mailsec/internal/verdict"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func newSource(t *testing.T, driver string) Source {
	t.Helper()
	st := storetest.Open(t, driver)
	return Source{Store: st, Evidence: evidence.Gatherer{Store: st}, ZoneA: "a.mailtest.example", ZoneB: "b.mailtest.example",
		BaseURL: "https://mailsec.example/"}
}

func TestLoadLiveAndFrozen(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := newSource(t, driver)
		// The broken-DNSSEC host's address reaches the picture's column.
		broken := netip.MustParseAddr("192.0.2.99")
		s.Evidence.Rules.BrokenAddrs = []netip.Addr{broken}
		ctx := t.Context()
		tt := store.Test{ID: "t1", Created: t0, Updated: t0, Kind: store.TestToken, Sender: "jane@user.example", State: store.TestOpen}
		if err := s.Store.CreateTest(ctx, tt); err != nil {
			t.Fatal(err)
		}
		c := store.SMTPConnection{TestID: "t1", Started: t0.Add(time.Minute), Ended: t0.Add(time.Minute + time.Second), Client: netip.MustParseAddrPort("192.0.2.7:1"),
			EHLO: "mta.user.example", Persona: 1, State: store.StateMail, MailFrom: "jane@user.example"}
		if err := s.Store.InsertConnection(ctx, &c); err != nil {
			t.Fatal(err)
		}
		in, err := s.Load(ctx, "t1", t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if in.Final || len(in.Connections) != 1 || in.Verdict.Attempts != 1 || in.URL != "" || s.URL("k1") != "https://mailsec.example/t/k1" || in.Mail != nil {
			t.Fatalf("live report input %+v", in)
		}
		if len(in.BrokenHostAddrs) != 1 || in.BrokenHostAddrs[0] != broken {
			t.Errorf("live: broken host addresses %v", in.BrokenHostAddrs)
		}
		if in.Inbound != nil || !strings.Contains(in.InboundNote, "not available") {
			t.Errorf("inbound %v %q", in.Inbound, in.InboundNote)
		}

		frozen, _ := json.Marshal(verdict.Verdict{Policy: verdict.PolicyDANE, Why: "frozen"})
		tt.State = store.TestFinal
		if err := s.Store.FinalizeTest(ctx, tt, store.TestResult{TestID: "t1", Final: t0.Add(time.Hour), Verdict: frozen, SenderDomain: "user.example",
			MailState: store.MailWithheld, MailReason: "not sent"}); err != nil {
			t.Fatal(err)
		}
		in, err = s.Load(ctx, "t1", t0.Add(2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if !in.Final || in.Verdict.Why != "frozen" || in.Mail == nil || in.Mail.State != store.MailWithheld {
			t.Fatalf("final report input %+v", in)
		}
		if len(in.BrokenHostAddrs) != 1 || in.BrokenHostAddrs[0] != broken {
			t.Errorf("frozen: broken host addresses %v", in.BrokenHostAddrs)
		}
		if _, err := s.Load(ctx, "nope", t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown test: %v", err)
		}
	})
}

func TestInboundNotes(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := newSource(t, driver)
		tests := []struct {
			name    string
			domain  string
			inbound InboundFunc
			note    string
			report  bool
		}{
			{"no domain", "", nil, "the sender's domain is not known yet", false},
			{"no checker", "user.example", nil, "Inbound check not available.", false},
			{"none", "user.example", func(context.Context, string, string) ([]byte, error) { return nil, ErrNoInbound }, "Inbound check not available.", false},
			{"pending", "user.example", func(context.Context, string, string) ([]byte, error) { return nil, nil }, "Inbound check of user.example pending.", false},
			{"error", "user.example", func(context.Context, string, string) ([]byte, error) { return nil, errors.New("boom") }, "(boom)", false},
			{"unreadable", "user.example", func(context.Context, string, string) ([]byte, error) { return []byte("{"), nil }, "unreadable", false},
			{"there", "user.example", func(context.Context, string, string) ([]byte, error) { return []byte(`{"domain":"user.example"}`), nil }, "", true},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				s.Inbound = tc.inbound
				ib, note := s.inbound(t.Context(), "t1", tc.domain)
				if (ib != nil) != tc.report || !strings.Contains(note, tc.note) || tc.note == "" && note != "" {
					t.Fatalf("inbound %v, note %q; want report %v, note with %q", ib, note, tc.report, tc.note)
				}
			})
		}
		if got := (Source{}).URL("x"); got != "" {
			t.Errorf("URL without a web UI: %q", got)
		}
	})
}
