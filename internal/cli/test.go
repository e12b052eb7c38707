package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/evidence"
	"github.com/mailsec/mailsec/internal/report"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/sendingserver"
	"github.com/mailsec/mailsec/internal/service"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/untrusted"
	"github.com/mailsec/mailsec/internal/verdict"
)

// testAddresses are what a user sends the test mail to.
type testAddresses struct {
	ID      string    `json:"id"`
	A       string    `json:"address_a"`
	B       string    `json:"address_b"`
	Created time.Time `json:"created"`
	// The sending server named at creation, as the API's answer has them.
	SendingServer    string       `json:"sending_server"`
	SendingAddresses []netip.Addr `json:"sending_addresses"`
	// The test slot and the shared names' addresses, as the API's answer
	// has them (docs/api.md).
	Slot     string `json:"slot"`
	SharedA  string `json:"shared_address_a"`
	SharedB  string `json:"shared_address_b"`
	SlotNote string `json:"slot_note,omitempty"`
	// OwnerKey opens the test (its pages, report, API and deletion) and
	// URL is its private link; only from 'test new', the one time the key
	// exists outside the tester's hands (the store keeps its hash).
	OwnerKey string `json:"owner_key,omitempty"`
	URL      string `json:"url,omitempty"`
}

func addressesOf(cfg *config.Config, t store.Test) testAddresses {
	addrs := t.SendingAddrs
	if addrs == nil {
		addrs = []netip.Addr{}
	}
	sa := service.Slots(cfg).AddressesOf(t.ID, t.Slot, t.Kind == store.TestToken)
	return testAddresses{ID: t.ID, Created: t.Created, A: sa.A, B: sa.B, SharedA: sa.SharedA, SharedB: sa.SharedB,
		Slot: sa.Slot, SlotNote: sa.Note, SendingServer: t.SendingServer, SendingAddresses: addrs}
}

// resolveSendingServer reads -sending-server: an IP address, or a host
// name resolved through the service's resolver (resolver.address).
func resolveSendingServer(e *env, cfg *config.Config, input string) (sendingserver.Server, error) {
	var q sendingserver.Querier
	if res, err := resolver.New(cfg.Resolver.Address); err == nil {
		q = res
	}
	srv, err := sendingserver.Resolve(e.ctx, q, input)
	if errors.Is(err, sendingserver.ErrInvalid) {
		return srv, fmt.Errorf("%w: -sending-server: %v", errUsage, err)
	}
	return srv, err
}

func runTest(e *env, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: 'test new' or 'test show ID'", errUsage)
	}
	switch args[0] {
	case "new":
		fs := newFlags(e, "test new", "[-json] [-sending-server ADDR|HOST]")
		asJSON := fs.Bool("json", false, "print JSON")
		sending := fs.String("sending-server", "", "the sending server (IP address or host name, resolved now): its connections that name no test count for this one (docs/smtp.md, \"Tying connections to a test\")")
		cfg, err := e.parseLoad(fs, args[1:])
		if err != nil {
			return err
		}
		srv, err := resolveSendingServer(e, &cfg, *sending)
		if err != nil {
			return err
		}
		st, err := store.OpenDriver(e.ctx, cfg.Store.Driver, cfg.StorePath())
		if err != nil {
			return err
		}
		defer st.Close()
		now := time.Now().UTC()
		id, err := store.NewTestID()
		if err != nil {
			return err
		}
		key, err := store.NewOwnerKey()
		if err != nil {
			return err
		}
		t := store.Test{ID: id, Created: now, Updated: now, Kind: store.TestToken, State: store.TestOpen,
			SendingServer: srv.Name, SendingAddrs: srv.Addrs, OwnerKey: key}
		if t, err = st.CreateSlotTest(e.ctx, t, service.SlotRules(&cfg)); err != nil {
			return err
		}
		a := addressesOf(&cfg, t)
		a.OwnerKey, a.URL = key, ownerLink(&cfg, key)
		if *asJSON {
			return json.NewEncoder(e.stdout).Encode(a)
		}
		fmt.Fprintf(e.stdout, "Test %s: send one mail to both addresses:\n  %s\n  %s\n", a.ID, a.A, a.B)
		if a.SlotNote != "" {
			fmt.Fprintf(e.stdout, "Note: %s.\n", a.SlotNote)
		}
		fmt.Fprintf(e.stdout, "Owner key (shown once; it opens and deletes the test, the test ID does not): %s\n", key)
		if a.URL != "" {
			fmt.Fprintf(e.stdout, "Private link: %s\n", a.URL)
		}
		if a.SendingServer != "" {
			fmt.Fprintf(e.stdout, "Sending server %s %v: its connections that name no test count for this one.\n", a.SendingServer, a.SendingAddresses)
		}
		return nil
	case "show":
		fs := newFlags(e, "test show", "[-json] [-mail] ID")
		asJSON := fs.Bool("json", false, "print JSON")
		rawMail := fs.Bool("mail", false, "print the result mail as sent (RFC 5322), nothing else")
		if err := fs.Parse(args[1:]); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: 'test show ID'", errUsage)
		}
		cfg, st, t, conns, err := e.openTest(fs.Arg(0))
		if err != nil {
			return err
		}
		defer st.Close()
		// The inbound check of the sender's domain (docs/inbound.md), if
		// one was stored with the test.
		var inboundReport json.RawMessage
		ic, icErr := st.InboundCheckOfTest(e.ctx, t.ID)
		if icErr == nil && json.Valid(ic.Report) {
			inboundReport = ic.Report
		}
		// The result (docs/report.md): the frozen verdict and where and
		// when the result mail went.
		res, attempts, err := testResult(e, st, t.ID)
		if err != nil {
			return err
		}
		keys, err := st.OwnerKeys(e.ctx, t.ID)
		if err != nil {
			return err
		}
		legacy := slices.ContainsFunc(keys, func(k store.OwnerKeyInfo) bool { return k.Via == store.KeyLegacyID })
		if *rawMail {
			if res == nil || len(res.Message) == 0 {
				return fmt.Errorf("test %s has no result mail (yet)", t.ID)
			}
			_, err := e.stdout.Write(res.Message)
			return err
		}
		// The look-ups of the test slot's names (docs/dns.md "Test
		// slots") and the policy fetches counted for the test, by the
		// evidence's own rules.
		obs, err := evidence.Gatherer{Store: st, Rules: service.EvidenceRules(&cfg)}.Gather(e.ctx, t, time.Now())
		if err != nil {
			return err
		}
		lookups, fetches, reports := obs.DNSLookups, obs.PolicyFetches, obs.TLSRPT
		if reports == nil {
			reports = []verdict.TLSRPTReport{}
		}
		if lookups == nil {
			lookups = []store.DNSQuery{}
		}
		if fetches == nil {
			fetches = []store.PolicyFetch{}
		}
		auth, facts := authenticationOf(t, conns, res)
		if *asJSON {
			return json.NewEncoder(e.stdout).Encode(struct {
				Test          store.Test             `json:"test"`
				Connections   []store.SMTPConnection `json:"connections"`
				DNSLookups    []store.DNSQuery       `json:"dns_lookups"`
				PolicyFetches []store.PolicyFetch    `json:"policy_fetches"`
				// The TLS-RPT reports tied to the test (docs/tlsrpt.md).
				TLSRPTReports []verdict.TLSRPTReport `json:"tlsrpt_reports"`
				Inbound       json.RawMessage        `json:"inbound,omitempty"` // schema mailsec.check.v1
				Result        *resultJSON            `json:"result,omitempty"`
				Attempts      []store.MailAttempt    `json:"mail_attempts,omitempty"`
				OwnerKeys     []store.OwnerKeyInfo   `json:"owner_keys"` // how and when each was made; never a key
				// As the API's report has them (docs/api.md).
				Authentication *report.AuthSection `json:"authentication,omitempty"`
				Facts          map[string]any      `json:"facts"`
			}{t, conns, lookups, fetches, reports, inboundReport, resultOf(&cfg, res, legacy), attempts, keys, auth, facts})
		}
		a := addressesOf(&cfg, t)
		fmt.Fprintf(e.stdout, "Test %s (%s, created %s): %s, %s\n", t.ID, t.State, t.Created.Format(time.RFC3339), a.A, a.B)
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "START\tEND\tPERSONA\tTLS\tSNI\tSTATE\tREPLY")
		for _, c := range conns {
			end := "-"
			if !c.Ended.IsZero() {
				end = c.Ended.Format("15:04:05")
			}
			tls := "plain"
			if c.TLSVersion != "" {
				tls = c.TLSVersion
			}
			// SNI and reply carry what the client sent (a name, an
			// address): no control character reaches the terminal, no
			// tab or line break forges a column or a row.
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", c.Started.Format("2006-01-02 15:04:05"), end, c.Persona, tls,
				untrusted.Terminal(c.SNI), c.State, untrusted.Terminal(c.Reply))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, f := range fetches {
			fmt.Fprintf(e.stdout, "Policy fetch %s from %s: %s\n", f.Time.Format("2006-01-02 15:04:05"), f.Client.Addr(), untrusted.Terminal(f.SNI))
		}
		for _, r := range reports {
			fmt.Fprintf(e.stdout, "TLS-RPT report by %s, received %s: %s %s\n", r.Source, r.Received.Format("2006-01-02 15:04:05"),
				untrusted.Terminal(r.Organization), untrusted.Terminal(r.ReportID))
			for _, p := range r.Policies {
				fmt.Fprintf(e.stdout, "  %s policy for %s: %d sessions succeeded, %d failed\n", p.Type, p.Domain, p.Successful, p.Failed)
				for _, f := range p.Failures {
					fmt.Fprintf(e.stdout, "    %d %s at %s from %s\n", f.Sessions, untrusted.Terminal(f.ResultType), untrusted.Terminal(f.ReceivingMX), f.SendingMTA)
				}
			}
		}
		for _, l := range lookups {
			do := ""
			if l.DO {
				do = ", DNSSEC"
			}
			fmt.Fprintf(e.stdout, "Look-up %s from %s: %s %s%s (%s)\n", l.Time.Format("2006-01-02 15:04:05"), l.Client.Addr(),
				dns.TypeToString[l.Type], untrusted.Terminal(l.Name), do, dns.RcodeToString[l.Rcode])
		}
		if auth != nil {
			fmt.Fprintln(e.stdout, "Authentication of the test mail (as received):")
			for _, l := range auth.Lines {
				fmt.Fprintln(e.stdout, "  "+untrusted.Terminal(l))
			}
		}
		if inboundReport != nil {
			var r struct {
				ColourReason string `json:"colour_reason"`
			}
			_ = json.Unmarshal(inboundReport, &r)
			fmt.Fprintf(e.stdout, "Inbound check of %s (%s): %s — %s\n", untrusted.Terminal(ic.Domain), ic.Checked.Format(time.RFC3339), ic.Colour,
				untrusted.Terminal(r.ColourReason))
		}
		fmt.Fprintf(e.stdout, "Owner keys: %s\n", ownerKeysText(keys))
		if rj := resultOf(&cfg, res, legacy); rj != nil {
			// The mail's reason, destination and attempts quote the
			// recipient's MX (its name, its replies).
			fmt.Fprintf(e.stdout, "Final %s: %s. Result mail: %s — %s\n", rj.Final.Format(time.RFC3339), rj.Policy, rj.MailState,
				untrusted.Terminal(rj.MailReason))
			if !rj.Sent.IsZero() {
				fmt.Fprintf(e.stdout, "  sent %s to %s, Message-ID %s\n", rj.Sent.Format(time.RFC3339), untrusted.Terminal(rj.DeliveredTo), rj.MessageID)
			}
			for _, a := range attempts {
				fmt.Fprintf(e.stdout, "  attempt %s: %s: %s\n", a.Time.Format(time.RFC3339), a.Status, untrusted.Terminal(a.Detail))
			}
			if rj.ReportURL != "" {
				fmt.Fprintf(e.stdout, "Report: %s\n", rj.ReportURL)
			}
		}
		return nil
	}
	return fmt.Errorf("%w: unknown 'test %s' ('test new' or 'test show ID')", errUsage, args[0])
}

// openTest loads the configuration, opens the store and reads test id with
// its connection history. The caller closes the store.
func (e *env) openTest(id string) (config.Config, *store.Store, store.Test, []store.SMTPConnection, error) {
	cfg, st, err := e.loadStore()
	if err != nil {
		return cfg, nil, store.Test{}, nil, err
	}
	t, err := st.Test(e.ctx, strings.ToLower(id))
	if err != nil {
		st.Close()
		return cfg, nil, store.Test{}, nil, err
	}
	conns, err := st.Connections(e.ctx, store.ConnectionFilter{TestID: t.ID})
	if err != nil {
		st.Close()
		return cfg, nil, store.Test{}, nil, err
	}
	return cfg, st, t, conns, nil
}

// ownerLink is the private link of the test ownerKey opens ("" without a
// web UI): internal/web serves the live page and report at /t/{key}.
func ownerLink(cfg *config.Config, ownerKey string) string {
	base := cfg.WebBaseURL()
	if base == "" {
		return ""
	}
	return base + "/t/" + ownerKey
}

// resultJSON is a final test's result in test show -json.
type resultJSON struct {
	Final       time.Time       `json:"final"`
	Policy      string          `json:"policy"`
	Verdict     json.RawMessage `json:"verdict"`
	MailState   string          `json:"mail_state"` // pending, sent, failed, withheld, none
	MailReason  string          `json:"mail_reason"`
	Attempts    int             `json:"mail_attempt_count"`
	Sent        time.Time       `json:"sent,omitzero"`
	DeliveredTo string          `json:"delivered_to,omitempty"`
	MessageID   string          `json:"message_id,omitempty"`
	// ReportURL is the report's link by the test ID: only for a test
	// from before owner keys (store.KeyLegacyID), whose ID still opens
	// it. Other tests open only by their owner's keys, which the store
	// does not keep.
	ReportURL string `json:"report_url,omitempty"`
}

// authenticationOf is the authentication section and the facts of the
// test's report: with the frozen verdict once final, else with the
// verdict of its connections as they stand.
func authenticationOf(t store.Test, conns []store.SMTPConnection, res *store.TestResult) (*report.AuthSection, map[string]any) {
	var v verdict.Verdict
	if res == nil || json.Unmarshal(res.Verdict, &v) != nil {
		v = verdict.Judge(verdict.Observations{Connections: conns})
	}
	r := report.Build(report.Input{Test: t, Connections: conns, Verdict: v, Final: res != nil})
	return r.Authentication, r.Facts
}

// testResult reads a test's result and mail attempts; nil before final.
func testResult(e *env, st *store.Store, id string) (*store.TestResult, []store.MailAttempt, error) {
	res, err := st.Result(e.ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	attempts, err := st.MailAttempts(e.ctx, id)
	return &res, attempts, err
}

// ownerKeysText says how a test's keys were made (never the keys).
func ownerKeysText(keys []store.OwnerKeyInfo) string {
	if len(keys) == 0 {
		return "none (the test opens for no one; a fixed-address test gets one with its result mail)"
	}
	var parts []string
	for _, k := range keys {
		parts = append(parts, k.Via+" "+k.Created.Format(time.RFC3339))
	}
	return strings.Join(parts, ", ")
}

// resultOf is res in test show's form; legacy: the test's ID is its key
// (a test from before owner keys), so its report link is by the ID.
func resultOf(cfg *config.Config, res *store.TestResult, legacy bool) *resultJSON {
	if res == nil {
		return nil
	}
	var v struct {
		Policy string `json:"policy"`
	}
	_ = json.Unmarshal(res.Verdict, &v)
	url := ""
	if legacy {
		url = ownerLink(cfg, res.TestID)
	}
	return &resultJSON{Final: res.Final, Policy: v.Policy, Verdict: res.Verdict, MailState: res.MailState, MailReason: res.MailReason,
		Attempts: res.Attempts, Sent: res.Sent, DeliveredTo: res.DeliveredTo, MessageID: res.MessageID, ReportURL: url}
}
