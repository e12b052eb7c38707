// Package metrics serves the operator's Prometheus metrics: the Go runtime
// and the process (goroutines, memory, descriptors); what the listeners
// hold, refused and answered (SMTP connections and their caps, the DATA
// memory budget, acknowledgements, DNS queries by type and rcode, response
// rate limiting and TCP caps); the store's write latency; and the rows the
// store holds (tests by state, final verdicts, result mails, connections
// by persona and state, policy fetches, inbound checks, scans). Beside
// /metrics it serves the health probes (package health).
//
// It listens on its own addresses (metrics.listen, none by default), never
// on the public web UI's: the figures tell an attacker how close a cap is.
package metrics

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailsec/mailsec/internal/dnsserver"
	"github.com/mailsec/mailsec/internal/health"
	"github.com/mailsec/mailsec/internal/listen"
	"github.com/mailsec/mailsec/internal/smtpd"
	"github.com/mailsec/mailsec/internal/store"
)

// Sources are the parts whose figures are exported; nil ones are left out.
type Sources struct {
	SMTP  *smtpd.Server
	DNS   *dnsserver.Server
	Store *store.Store
	// Log receives the failures of the store's counts (the scrape then
	// shows mailsec_store_counts_up 0 instead of failing whole).
	Log *slog.Logger
}

// NewRegistry returns a registry (not Prometheus's global one) with the
// runtime, process, listener and store collectors.
func NewRegistry(src Sources) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "mailsec", Name: name, Help: help}, f))
	}
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mailsec", Name: name, Help: help}, f))
	}
	if s := src.SMTP; s != nil {
		gauge("smtp_connections_open", "SMTP connections open now.", func() float64 { return float64(s.Stats().Open) })
		gauge("smtp_connections_open_max_per_client", "The most SMTP connections one client network holds now.", func() float64 { return float64(s.Stats().MaxOpenPerClient) })
		counter("smtp_connections_refused_total", "SMTP connections answered 421 at the connection caps.", func() float64 { return float64(s.Stats().Refused) })
		gauge("smtp_data_bytes_held", "Bytes the DATA phases hold now (smtp.data_memory_budget).", func() float64 { return float64(s.Stats().DataBytesHeld) })
		counter("smtp_panics_total", "Panics recovered in SMTP sessions.", func() float64 { return float64(s.Stats().Panics) })
		reg.MustRegister(acknowledgements{s})
	}
	if d := src.DNS; d != nil {
		counter("dns_rrl_slipped_total", "UDP answers sent truncated by response rate limiting.", func() float64 { return float64(d.Limited().RRLSlipped) })
		counter("dns_rrl_dropped_total", "UDP answers dropped by response rate limiting.", func() float64 { return float64(d.Limited().RRLDropped) })
		counter("dns_amplification_cut_total", "UDP answers sent truncated by the amplification cap.", func() float64 { return float64(d.Limited().AmplificationCut) })
		counter("dns_tcp_refused_total", "DNS TCP connections closed at accept by the connection caps.", func() float64 { return float64(d.Limited().TCPRefused) })
		reg.MustRegister(dnsQueries{d})
	}
	if st := src.Store; st != nil {
		log := src.Log
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		reg.MustRegister(st.WriteSeconds(), storeCounts{st, log})
	}
	return reg
}

// Serve answers GET /metrics, and the probes of ready (if not nil), on ls
// until ctx ends.
func Serve(ctx context.Context, reg *prometheus.Registry, ready *health.Checker, ls []net.Listener, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	if ready != nil {
		ready.Register(mux)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	return listen.HTTP(ctx, srv, ls, 5*time.Second)
}
