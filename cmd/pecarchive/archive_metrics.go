package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pecarchive/pecarchive/services/archive"
)

// The archive service's metrics (pecarchive archive --metrics ADDR, or
// PECARCHIVE_ARCHIVE_METRICS_ADDR; none by default): the archive's counters (archive.Stats) as
// Prometheus counters. checkpoints_refused_total above zero means the archive refused to sign a
// tree that does not extend its latest signed checkpoint, or a log whose checkpoints its key does
// not verify, and signs nothing more until it is restarted after repair: alert on it.

const envArchiveMetrics = "PECARCHIVE_ARCHIVE_METRICS_ADDR"

// archiveCollector exports the counters of stats, read at each scrape.
type archiveCollector struct {
	stats func() archive.Stats
	descs []archiveCounter
}

type archiveCounter struct {
	desc  *prometheus.Desc
	value func(archive.Stats) uint64
}

func newArchiveCollector(stats func() archive.Stats) *archiveCollector {
	c := &archiveCollector{stats: stats}
	add := func(name, help string, value func(archive.Stats) uint64) {
		c.descs = append(c.descs, archiveCounter{prometheus.NewDesc("pecarchive_archive_"+name, help, nil, nil), value})
	}
	add("messages_stored_total", "New messages committed (a postacert.eml carried by a receipt included).",
		func(s archive.Stats) uint64 { return s.Stored })
	add("duplicates_total", "Store calls for messages already stored.", func(s archive.Stats) uint64 { return s.Duplicates })
	add("access_records_total", "Reads of evidence recorded (access rows with their leaves).", func(s archive.Stats) uint64 { return s.Accesses })
	add("commit_failures_total", "Commit transactions that failed.", func(s archive.Stats) uint64 { return s.Failed })
	add("checkpoints_published_total", "Signed checkpoints published.", func(s archive.Stats) uint64 { return s.Published })
	add("checkpoints_refused_total", "Refusals to sign a checkpoint: the tree does not extend the latest signed checkpoint, "+
		"or the log's key does not verify it. Signing stays stopped until the archive is restarted after repair.",
		func(s archive.Stats) uint64 { return s.Refused })
	return c
}

func (c *archiveCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d.desc
	}
}

func (c *archiveCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for _, d := range c.descs {
		ch <- prometheus.MustNewConstMetric(d.desc, prometheus.CounterValue, float64(d.value(s)))
	}
}

// archiveRegistry returns a registry of the archive's metrics and the process's.
func archiveRegistry(a *archive.Archive) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newArchiveCollector(a.Stats), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
