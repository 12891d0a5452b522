package catalog_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/internal/procstat"
	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
)

// BenchmarkWrite measures catalog.Write of batches of 20 and 200 receipts (acceptance, delivery,
// non-delivery, warning per original), each batch in its own committed transaction.
//
//	go test -run '^$' -bench BenchmarkWrite -benchtime 20000x ./services/archive/catalog
func BenchmarkWrite(b *testing.B) {
	for _, batch := range []int{20, 200} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchmarkWrite(b, batch) })
	}
}

func benchmarkWrite(b *testing.B, batch int) {
	ctx := context.Background()
	pool := testenv.PG(b)
	if err := catalog.Migrate(ctx, pool); err != nil {
		b.Fatal(err)
	}
	kinds := []pec.Kind{pec.KindAccettazione, pec.KindAvvenutaConsegna, pec.KindErroreConsegna, pec.KindPreavvisoErroreConsegna}
	var leaf uint64
	b.ResetTimer()
	start := time.Now()
	pg0, _ := procstat.CPUByName("postgres")
	for done := 0; done < b.N; done += batch {
		tx, err := pool.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := catalog.LockWriter(ctx, tx); err != nil {
			b.Fatal(err)
		}
		bt := &catalog.Batch{Now: time.Now()}
		for i := 0; i < batch && done+i < b.N; i++ {
			n := done + i
			msgid := fmt.Sprintf("bench-%d@pec.example.it", n/4)
			m := receipt(kinds[n%4], msgid, "opec."+msgid, []string{"a@pec.example.it"}, "a@pec.example.it", trusted, fmt.Sprint(n))
			m.LeafIndex = leaf
			leaf++
			m.ReceivedAt = time.Now()
			bt.Messages = append(bt.Messages, m)
			bt.Sources = append(bt.Sources, catalog.SourceRow{SHA256: m.SHA256, Source: catalog.Source{Mailbox: "m", Folder: "INBOX", UIDValidity: 1, UID: uint32(n + 1)}})
		}
		if err := catalog.Write(ctx, tx, bt); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
	// The server's CPU per message, where its processes run on this machine.
	if pg1, _ := procstat.CPUByName("postgres"); pg1 > pg0 {
		b.ReportMetric(float64((pg1-pg0).Microseconds())/float64(b.N), "pg-µs/msg")
	}
}
