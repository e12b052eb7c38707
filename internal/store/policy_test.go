package store

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPolicyFetchesRoundTrip(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	t0 := time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)
	fetch := func(i int, client string) PolicyFetch {
		return PolicyFetch{
			Time:      t0.Add(time.Duration(i) * time.Second),
			Client:    netip.MustParseAddrPort(client),
			SNI:       "mta-sts.a.example",
			UserAgent: "postfix-mta-sts-resolver/1.4",
			Path:      "/.well-known/mta-sts.txt",
			Status:    200,
		}
	}
	in := []PolicyFetch{
		fetch(0, "192.0.2.1:40000"),
		fetch(1, "[2001:db8::1]:443"),
		fetch(2, "[::ffff:198.51.100.7]:5555"), // dual-stack socket
		{Time: t0.Add(3 * time.Second), Path: "/other", Status: 404},
	}
	for _, f := range in {
		if err := s.AddPolicyFetch(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	want := append([]PolicyFetch(nil), in...)
	want[2].Client = netip.MustParseAddrPort("198.51.100.7:5555")

	tests := []struct {
		name         string
		since, until time.Time
		limit        int
		want         []PolicyFetch
	}{
		{"all", time.Time{}, time.Time{}, 0, want},
		{"since", t0.Add(time.Second), time.Time{}, 0, want[1:]},
		{"until excludes", time.Time{}, t0.Add(2 * time.Second), 0, want[:2]},
		{"window", t0.Add(time.Second), t0.Add(3 * time.Second), 0, want[1:3]},
		{"limit", time.Time{}, time.Time{}, 2, want[:2]},
		{"empty", t0.Add(time.Hour), time.Time{}, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.PolicyFetches(ctx, tc.since, tc.until, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
	if _, err := s.PolicyFetches(ctx, time.Time{}, time.Time{}, -1); err == nil {
		t.Fatal("negative limit accepted")
	}
}

func TestAddPolicyFetchBoundsText(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	long := strings.Repeat("x", 5000)
	if err := s.AddPolicyFetch(ctx, PolicyFetch{Time: time.Unix(1, 0), UserAgent: long, Path: long, SNI: long, Status: 404}); err != nil {
		t.Fatal(err)
	}
	got, err := s.PolicyFetches(ctx, time.Time{}, time.Time{}, 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("%v %v", got, err)
	}
	if len(got[0].UserAgent) != maxPolicyFetchText || len(got[0].Path) != maxPolicyFetchText || len(got[0].SNI) != maxPolicyFetchText {
		t.Fatalf("texts not cut to %d: %d %d %d", maxPolicyFetchText, len(got[0].UserAgent), len(got[0].Path), len(got[0].SNI))
	}
	if err := s.AddPolicyFetch(ctx, PolicyFetch{Time: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Fatal("a time outside the storable range was accepted")
	}
}
