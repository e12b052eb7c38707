package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailsec/mailsec/internal/dnsserver"
	"github.com/mailsec/mailsec/internal/smtpd"
	"github.com/mailsec/mailsec/internal/store"
)

var (
	ackDesc = prometheus.NewDesc("mailsec_smtp_acknowledgements_total",
		"Test mails answered by verdict.Acknowledge: reply 250 (accepted) or 451 (try again), by zone.", []string{"zone", "reply"}, nil)
	dnsQueryDesc = prometheus.NewDesc("mailsec_dns_queries_total",
		"DNS queries answered, by query type and rcode (types and rcodes outside the common set are \"other\").", []string{"qtype", "rcode"}, nil)
)

// acknowledgements exports smtpd's 250/451 counts.
type acknowledgements struct{ s *smtpd.Server }

func (a acknowledgements) Describe(ch chan<- *prometheus.Desc) { ch <- ackDesc }

func (a acknowledgements) Collect(ch chan<- prometheus.Metric) {
	st := a.s.Stats()
	for i, zone := range []string{"A", "B"} {
		ch <- prometheus.MustNewConstMetric(ackDesc, prometheus.CounterValue, float64(st.Accepted[i]), zone, "250")
		ch <- prometheus.MustNewConstMetric(ackDesc, prometheus.CounterValue, float64(st.Deferred[i]), zone, "451")
	}
}

// dnsQueries exports the DNS server's answered queries.
type dnsQueries struct{ d *dnsserver.Server }

func (q dnsQueries) Describe(ch chan<- *prometheus.Desc) { ch <- dnsQueryDesc }

func (q dnsQueries) Collect(ch chan<- prometheus.Metric) {
	for _, c := range q.d.Queries() {
		ch <- prometheus.MustNewConstMetric(dnsQueryDesc, prometheus.CounterValue, float64(c.Count), c.Type, c.Rcode)
	}
}

// storeCountsTimeout bounds the store's counts in one scrape (Prometheus'
// default scrape timeout is 10 s).
const storeCountsTimeout = 5 * time.Second

// The store's held rows: gauges, since the retention purge lowers them.
var (
	storeUpDesc = prometheus.NewDesc("mailsec_store_counts_up", "1 if the store's counts were read in this scrape, 0 if the store failed (see the log).", nil, nil)
	storeDescs  = map[string]*prometheus.Desc{
		"tests":          prometheus.NewDesc("mailsec_tests", "Tests held in the store, by state (open, acked, final).", []string{"state"}, nil),
		"verdicts":       prometheus.NewDesc("mailsec_tests_final", "Final tests held in the store, by the frozen verdict's policy.", []string{"verdict"}, nil),
		"result_mails":   prometheus.NewDesc("mailsec_result_mails", "Result mails of the final tests held, by state (pending, sent, failed, withheld, none).", []string{"state"}, nil),
		"mail_attempts":  prometheus.NewDesc("mailsec_result_mail_attempts", "Result mail delivery attempts held, by status (delivered, deferred, bounced).", []string{"status"}, nil),
		"connections":    prometheus.NewDesc("mailsec_smtp_connections", "SMTP connections held in the store, by persona (0: not known yet) and the state they reached.", []string{"persona", "state"}, nil),
		"policy_fetches": prometheus.NewDesc("mailsec_policy_fetches", "Fetches of zone A's MTA-STS policy held, by HTTP status served.", []string{"status"}, nil),
		"scan_items":     prometheus.NewDesc("mailsec_scan_items", "Items of bulk inbound scans held, by state (pending, running, done, error).", []string{"state"}, nil),
		"tlsrpt":         prometheus.NewDesc("mailsec_tlsrpt_reports", "TLS-RPT reports held.", nil, nil),
		"inbound":        prometheus.NewDesc("mailsec_inbound_checks", "Inbound checks held (mailsec check, the web form, test senders' domains).", nil, nil),
	}
)

// storeCounts exports store.Counts, read at scrape time.
type storeCounts struct {
	st  *store.Store
	log *slog.Logger
}

func (s storeCounts) Describe(ch chan<- *prometheus.Desc) {
	ch <- storeUpDesc
	for _, d := range storeDescs {
		ch <- d
	}
}

func (s storeCounts) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), storeCountsTimeout)
	defer cancel()
	c, err := s.st.Counts(ctx)
	if err != nil {
		s.log.Warn("metrics: the store's counts", "err", err)
		ch <- prometheus.MustNewConstMetric(storeUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(storeUpDesc, prometheus.GaugeValue, 1)
	for name, counts := range map[string][]store.Count{
		"tests": c.Tests, "verdicts": c.Verdicts, "result_mails": c.ResultMails, "mail_attempts": c.MailAttempts,
		"connections": c.Connections, "policy_fetches": c.PolicyFetches, "scan_items": c.ScanItems,
	} {
		for _, n := range counts {
			ch <- prometheus.MustNewConstMetric(storeDescs[name], prometheus.GaugeValue, float64(n.N), n.Labels...)
		}
	}
	ch <- prometheus.MustNewConstMetric(storeDescs["tlsrpt"], prometheus.GaugeValue, float64(c.TLSRPTReports))
	ch <- prometheus.MustNewConstMetric(storeDescs["inbound"], prometheus.GaugeValue, float64(c.InboundChecks))
}
