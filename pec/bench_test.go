package pec

import (
	"testing"

	"github.com/pecarchive/pecarchive/internal/samples"
)

// typicalReceipt is a synthetic delivery receipt of about 10 KB (completa, with a small
// postacert.eml), laid out like real ones.
func typicalReceipt() []byte {
	return synth{kind: KindAvvenutaConsegna, ricevuta: ReceiptCompleta, datB64: true,
		extra: "        <consegna>dest@pec.example.it</consegna>\n", postacert: postacertWithPDF(1500)}.build()
}

func benchParse(b *testing.B, raw []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		m, _ := Parse(raw, nil)
		if m.Kind == KindNotPEC {
			b.Fatal("not PEC")
		}
	}
}

func BenchmarkParse(b *testing.B) {
	b.Run("synthetic-10KB", func(b *testing.B) { benchParse(b, typicalReceipt()) })
	b.Run("synthetic-10KB-CRLF", func(b *testing.B) { benchParse(b, Canonicalize(typicalReceipt())) })
	b.Run("aruba-envelope", func(b *testing.B) {
		benchParse(b, samples.Read(b, "real/aruba-busta-trasporto-2023-08-18.eml"))
	})
	b.Run("accettazione", func(b *testing.B) { benchParse(b, samples.Read(b, "anonymised/accettazione.eml")) })
}

func BenchmarkCanonicalize(b *testing.B) {
	lf := typicalReceipt()
	crlf := Canonicalize(lf)
	b.Run("LF", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(lf)))
		for b.Loop() {
			Canonicalize(lf)
		}
	})
	b.Run("CRLF", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(crlf)))
		for b.Loop() {
			Canonicalize(crlf)
		}
	})
}

func BenchmarkDaticert(b *testing.B) {
	raw := typicalReceipt()
	m, _ := Parse(raw, nil)
	d := m.DaticertRaw
	b.ReportAllocs()
	for b.Loop() {
		parseDaticert(d, Limits{})
	}
}
