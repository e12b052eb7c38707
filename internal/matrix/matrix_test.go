package matrix

import (
	"bytes"
	"encoding/xml"
	"flag"
	"image/png"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var t0 = time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)

// history builds connections from a compact script: each step is a
// column key, "+" delivered or "-" refused, and its start offset.
type step struct {
	col       string
	delivered bool
	at        time.Duration
}

var (
	brokenAddr = netip.MustParseAddr("127.0.0.29")
	ipv6Addr   = netip.MustParseAddr("2001:db8::25")
)

func history(steps ...step) []store.SMTPConnection {
	var out []store.SMTPConnection
	client := netip.MustParseAddrPort("192.0.2.1:40000")
	for i, s := range steps {
		c := store.SMTPConnection{ID: int64(i + 1), Client: client, Started: t0.Add(s.at), Ended: t0.Add(s.at + time.Second),
			EHLO: "mta.example.org", State: store.StateNone, Local: netip.MustParseAddrPort("127.0.0.1:25")}
		switch s.col {
		case verdict.ColumnPlainWindow:
			c.Persona = 1
		case verdict.ColumnPlainOffer:
			c.Persona, c.STARTTLSOffered = 1, true
		case verdict.ColumnB7Plain:
			c.Persona = 7
		case verdict.ColumnBrokenHost:
			c.Local, c.EHLO, c.Reply = netip.AddrPortFrom(brokenAddr, 25), "", "421 4.3.2 try the next MX host"
		case verdict.ColumnIPv6Host:
			c.Local, c.EHLO, c.Reply = netip.AddrPortFrom(ipv6Addr, 25), "", "421 4.3.2 try the next MX host"
			c.Client = netip.MustParseAddrPort("[2001:db8:1::7]:40000")
		case "open":
			c.Ended, c.Persona, c.STARTTLSOffered, c.State = time.Time{}, 4, true, store.StateSniSeen
		default:
			n := map[string]int{"2": 2, "3": 3, "4": 4, "5": 5, "6": 6, "7t": 7}[s.col]
			c.Persona, c.CertPersona, c.STARTTLSOffered, c.TLSVersion, c.State, c.SNI = n, n, true, "TLS 1.3", store.StateTLSStarted, "mx.a.example"
			if !s.delivered {
				c.State, c.TLSVersion = store.StateSniSeen, ""
			}
		}
		if s.delivered {
			c.State, c.MailFrom = store.StateMail, "sender@example.org"
		}
		out = append(out, c)
	}
	return out
}

// cases are representative histories: a DANE sender seen everywhere, a
// plain-text fallback, one still in the downgrade window, a resolver that
// does not validate DNSSEC, an MTA-STS sender with its policy fetch, no
// connection yet, a retry burst.
var cases = []struct {
	name    string
	conns   []store.SMTPConnection
	fetched bool
	broken  bool
	ipv6    bool
}{
	{name: "dane", conns: history(step{"1w", false, 0}, step{"3", false, 5 * time.Minute}, step{"4", true, 5*time.Minute + time.Second},
		step{"7t", true, 5*time.Minute + 2*time.Second}, step{"5", false, 10 * time.Minute}, step{"6", true, 10*time.Minute + time.Second})},
	{name: "may-fallback", conns: history(step{"1w", true, 0}, step{"3", false, 6 * time.Minute}, step{"1o", true, 6*time.Minute + time.Second},
		step{"7p", true, 10 * time.Second})},
	{name: "window", conns: history(step{"1w", false, 0}, step{"7p", false, time.Second}, step{"open", false, 2 * time.Minute})},
	{name: "dane-broken-dnssec", broken: true, conns: history(step{"broken", false, 0}, step{"1w", false, time.Second}, step{"broken", false, 5 * time.Minute},
		step{"4", true, 5*time.Minute + time.Second}, step{"5", false, 9 * time.Minute}, step{"6", true, 9*time.Minute + time.Second})},
	{name: "mta-sts", fetched: true, conns: history(step{"1w", false, 0}, step{"3", false, 5 * time.Minute}, step{"4", false, 9 * time.Minute},
		step{"5", true, 13 * time.Minute}, step{"6", true, 17 * time.Minute})},
	// Postfix in the lab: three refusals in the window within seconds
	// (one attempt: one attempt number over the burst), B in plain text.
	{name: "retry-burst", conns: history(step{"1w", false, 0}, step{"7p", true, 0}, step{"1w", false, time.Second}, step{"1w", false, 2 * time.Second},
		step{"5", false, 11 * time.Second}, step{"6", true, 11*time.Second + 500*time.Millisecond}, step{"7t", true, 11*time.Second + 700*time.Millisecond})},
	// A sender that reaches the IPv6-only host (answered 421) before the
	// personas: one more column, no attempt.
	{name: "ipv6", ipv6: true, conns: history(step{"v6", false, 0}, step{"1w", false, time.Second}, step{"v6", false, 4 * time.Minute},
		step{"4", true, 4*time.Minute + time.Second}, step{"5", false, 8 * time.Minute}, step{"6", true, 8*time.Minute + time.Second})},
	{name: "empty"},
}

func build(t *testing.T, conns []store.SMTPConnection, fetched, broken bool, ipv6 ...bool) (Picture, verdict.Verdict) {
	t.Helper()
	obs := verdict.Observations{Connections: conns, Now: t0.Add(time.Hour), Quiet: 10 * time.Minute}
	in := Input{Connections: conns, PolicyFetched: fetched, DowngradeWindow: 3 * time.Minute}
	if fetched {
		obs.PolicyFetches = []store.PolicyFetch{{Time: t0, Client: netip.MustParseAddrPort("192.0.2.1:1"), Status: 200}}
	}
	if broken {
		obs.BrokenHostAddrs, in.BrokenHostAddrs = []netip.Addr{brokenAddr}, []netip.Addr{brokenAddr}
	}
	if len(ipv6) > 0 && ipv6[0] {
		obs.IPv6HostAddrs, in.IPv6HostAddrs = []netip.Addr{ipv6Addr}, []netip.Addr{ipv6Addr}
	}
	in.Verdict = verdict.Judge(obs)
	return Build(in), in.Verdict
}

// TestGolden compares the SVG of both drawings and the text table of
// each case with testdata/<case>.golden (go test -update rewrites them;
// read the diff). It also checks what a golden file could hide: the SVG
// is well-formed XML with role="img", an aria-label and a title, and the
// verdict's row is drawn first.
func TestGolden(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, v := build(t, c.conns, c.fetched, c.broken, c.ipv6)
			m, tl := p.MatrixSVG(English), p.TimelineSVG(English, time.UTC)
			got := m + "\n\n" + tl + "\n\n" + p.Text(English) + "\n" + p.Summary(English) + "\n"
			path := filepath.Join("testdata", c.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("%s differs from the golden file (go test ./internal/matrix -update, then read the diff):\n%s", c.name, got)
			}
			for _, svg := range []string{m, tl} {
				checkSVG(t, svg)
			}
			if len(p.Rows) == 0 || v.Policy != verdict.PolicyUnknown && v.Policy != verdict.PolicyInconsistent && p.Rows[0].Policy != v.Policy {
				t.Errorf("rows %v: the verdict %s is not first", p.Rows, v.Policy)
			}
		})
	}
}

// checkSVG parses an SVG element and checks its accessibility: role="img",
// a non-empty aria-label, a <title> first, no script, every <g> titled.
func checkSVG(t *testing.T, svg string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	depth, first := 0, true
	var groupOpen bool
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG not well-formed: %v", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			depth++
			attrs := map[string]string{}
			for _, a := range e.Attr {
				attrs[a.Name.Local] = a.Value
			}
			switch {
			case depth == 1:
				if e.Name.Local != "svg" || attrs["role"] != "img" || attrs["aria-label"] == "" {
					t.Errorf("root %s %v: want <svg role=img aria-label=…>", e.Name.Local, attrs)
				}
			case depth == 2 && first:
				if e.Name.Local != "title" {
					t.Errorf("first child %s, want title", e.Name.Local)
				}
				first = false
			case e.Name.Local == "script" || e.Name.Local == "foreignObject":
				t.Errorf("SVG contains %s", e.Name.Local)
			}
			if groupOpen && e.Name.Local != "title" {
				t.Errorf("a group whose first child is %s, not its title", e.Name.Local)
			}
			groupOpen = e.Name.Local == "g"
		case xml.EndElement:
			depth--
		}
	}
}

// TestPNG: the mail's image decodes, has the drawings' size at PNGScale,
// and is not blank (it has the palette's dark inks).
func TestPNG(t *testing.T) {
	p, _ := build(t, cases[0].conns, false, false)
	b, w, h, err := p.PNG(English, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Bounds().Size(); got.X < w*PNGScale-1 || got.Y < h*PNGScale-1 || w < 400 || h < 200 {
		t.Fatalf("PNG %v for %dx%d", got, w, h)
	}
	inks := map[rgb]int{}
	// Every other pixel of every other row: the shapes are wider than
	// that, and the race detector's run counts every pixel read.
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y += 2 {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x += 2 {
			r, g, b, _ := img.At(x, y).RGBA()
			c := rgb{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)}
			for _, k := range []rgb{goodInk, badInk, textInk, goodFill, badFill, windowFill} {
				if c == k {
					inks[k]++
				}
			}
		}
	}
	for _, k := range []rgb{goodInk, badInk, textInk, goodFill, badFill, windowFill} {
		if inks[k] < 20 {
			t.Errorf("PNG: colour %s drawn at %d pixels: the drawing is missing", k.hex(), inks[k])
		}
	}
	if *update {
		_ = os.WriteFile(filepath.Join(os.TempDir(), "matrix-dane.png"), b, 0o644)
	}
}
