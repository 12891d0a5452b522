package catalog_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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
		commitBatch(b, pool, bt)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
	// The server's CPU per message, where its processes run on this machine.
	if pg1, _ := procstat.CPUByName("postgres"); pg1 > pg0 {
		b.ReportMetric(float64((pg1-pg0).Microseconds())/float64(b.N), "pg-µs/msg")
	}
}

// BenchmarkManyRecipients measures the delivery receipts of one message sent to 500 recipients:
// the acceptance first, then one delivery receipt per recipient, 20 per committed transaction,
// as the archive's group commit writes them. Each receipt re-derives the message's deliveries;
// it reports the server's CPU and WAL per receipt.
//
//	go test -run '^$' -bench BenchmarkManyRecipients -benchtime 4x ./services/archive/catalog
func BenchmarkManyRecipients(b *testing.B) {
	ctx := context.Background()
	pool := testenv.PG(b)
	if err := catalog.Migrate(ctx, pool); err != nil {
		b.Fatal(err)
	}
	const n, batch = 500, 20
	var leaf uint64
	write := func(msgs []catalog.Message) {
		bt := &catalog.Batch{Now: time.Now()}
		for _, m := range msgs {
			m.LeafIndex, m.ReceivedAt = leaf, time.Now()
			leaf++
			bt.Messages = append(bt.Messages, m)
		}
		commitBatch(b, pool, bt)
	}
	var receipts int
	var cpu time.Duration
	var wal int64
	for i := range b.N {
		msgid := fmt.Sprintf("circolare-%d@pec.ordine.example.it", i)
		rcpts := make([]string, n)
		for j := range rcpts {
			rcpts[j] = fmt.Sprintf("iscritto%d@pec.example.it", j)
		}
		write([]catalog.Message{receipt(pec.KindAccettazione, msgid, "opec."+msgid, rcpts, "", trusted, "")})
		var lsn0, lsn1 int64
		pg0, _ := procstat.CPUByName("postgres")
		if err := pool.QueryRow(ctx, `SELECT pg_current_wal_lsn() - '0/0'`).Scan(&lsn0); err != nil {
			b.Fatal(err)
		}
		for j := 0; j < n; j += batch {
			var msgs []catalog.Message
			for _, r := range rcpts[j:min(j+batch, n)] {
				msgs = append(msgs, receipt(pec.KindAvvenutaConsegna, msgid, "opec."+msgid, rcpts, r, trusted, r))
			}
			write(msgs)
		}
		if err := pool.QueryRow(ctx, `SELECT pg_current_wal_lsn() - '0/0'`).Scan(&lsn1); err != nil {
			b.Fatal(err)
		}
		pg1, _ := procstat.CPUByName("postgres")
		receipts += n
		cpu += pg1 - pg0
		wal += lsn1 - lsn0
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(receipts), "pg-µs/receipt")
	b.ReportMetric(float64(wal)/float64(receipts), "WAL-B/receipt")
}

// commitBatch writes b in a transaction of its own under the writer lock, as the archive's
// committer does, and commits it.
func commitBatch(tb testing.TB, pool *pgxpool.Pool, b *catalog.Batch) {
	tb.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var lock pgx.Batch
	catalog.QueueLock(&lock)
	if err := tx.SendBatch(ctx, &lock).Close(); err != nil {
		tb.Fatal(err)
	}
	if err := catalog.Write(ctx, tx, b); err != nil {
		tb.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
}
