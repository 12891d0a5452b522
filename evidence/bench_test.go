package evidence_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/evidence"
	"github.com/pecarchive/pecarchive/evidence/evidencetest"
	"github.com/pecarchive/pecarchive/pec/pectest"
)

// benchBundle returns a bundle of n conversations like the fixture's first three recipients
// (about 9 messages each).
func benchBundle(b *testing.B, n int) ([]byte, string, int) {
	b.Helper()
	ctx := context.Background()
	p, err := pectest.NewProvider(12, nil)
	if err != nil {
		b.Fatal(err)
	}
	a, err := evidencetest.New(anchorsOf(p))
	if err != nil {
		b.Fatal(err)
	}
	var ds []evidence.Delivery
	for i := range n {
		c, err := p.Conversation(&pectest.ConversationConfig{Original: &pectest.Original{
			Subject: fmt.Sprintf("Avviso %d", i), Date: pectest.DefaultTime.Add(time.Duration(i) * time.Minute),
			To: []string{fmt.Sprintf("socio%d@%s", i, pectest.ProviderB.Domain)},
			Cc: []string{fmt.Sprintf("ufficio%d@%s", i, pectest.ProviderA.Domain)}}})
		if err != nil {
			b.Fatal(err)
		}
		ds = append(ds, a.AddConversation(ctx, c))
	}
	bd, err := a.Bundle(ds, nil)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := evidence.Write(ctx, &buf, bd, a); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes(), a.VKey, len(bd.Messages)
}

// BenchmarkVerifyBundle verifies a bundle on one core; the figure to compare with the target of
// 2,000 messages/s per core is msgs/s.
func BenchmarkVerifyBundle(b *testing.B) {
	data, key, n := benchBundle(b, 100)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		res := evidence.VerifyReaderAt(context.Background(), bytes.NewReader(data), int64(len(data)),
			&evidence.VerifyOptions{LogKey: key, Workers: 1})
		if !res.OK {
			b.Fatal(failures(res))
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(n), "msgs/bundle")
}
