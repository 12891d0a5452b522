package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are ingest's Prometheus metrics, labelled by mailbox (its configured name).
type metrics struct {
	fetched, archived, newMsgs, refused, bytes *prometheus.CounterVec
	reconnects, resets, authFailures, moved    *prometheus.CounterVec
	lag, leaseHeld, quotaUsage, quotaLimit     *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pecarchive", Subsystem: "ingest", Name: name, Help: help},
			append([]string{"mailbox"}, labels...))
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "pecarchive", Subsystem: "ingest", Name: name, Help: help},
			append([]string{"mailbox"}, labels...))
	}
	m := &metrics{
		fetched:      counter("fetched_messages_total", "Messages fetched from the mailbox (again after a crash or a UIDVALIDITY reset)."),
		archived:     counter("archived_messages_total", "Messages the archive acknowledged (new or already archived)."),
		newMsgs:      counter("new_messages_total", "Messages the archive stored for the first time."),
		refused:      counter("refused_messages_total", "Messages the archive refused, written to the dead-letter table."),
		bytes:        counter("fetched_bytes_total", "Bytes of messages fetched."),
		reconnects:   counter("reconnects_total", "Connections made after a failed or lost one."),
		resets:       counter("uidvalidity_resets_total", "UIDVALIDITY changes seen (the folder is fetched again)."),
		authFailures: counter("auth_failures_total", "Logins the server refused."),
		moved:        counter("policy_messages_total", "Messages moved or expunged by the after_archive policy.", "action"),
		lag:          gauge("lag_seconds", "Age (by INTERNALDATE) of the oldest message fetched and not yet acknowledged; 0 when none waits."),
		leaseHeld:    gauge("lease_held", "1 while this replica holds the mailbox's lease."),
		quotaUsage:   gauge("quota_usage", "Quota usage reported by the server, per resource (STORAGE in KiB).", "resource"),
		quotaLimit:   gauge("quota_limit", "Quota limit reported by the server, per resource (STORAGE in KiB).", "resource"),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.fetched, m.archived, m.newMsgs, m.refused, m.bytes, m.reconnects,
		m.resets, m.authFailures, m.moved, m.lag, m.leaseHeld, m.quotaUsage, m.quotaLimit} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
