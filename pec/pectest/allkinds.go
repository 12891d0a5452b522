package pectest

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pecarchive/pecarchive/pec"
)

var allKindsCache sync.Map // int64 -> []Generated

// AllKinds returns one example of every PEC message kind and variant generated for seed, plus
// the failure cases: every [Defect] (names ending in "-signer-<defect>", "forged" for
// DefectForged) and every [Failure] ("-tampered", "-truncated"). Names are unique and stable:
//
//	original (unsigned, KindNotPEC), accettazione, accettazione-cet (winter time, +0100),
//	non-accettazione, non-accettazione-virus, presa-in-carico, rilevazione-virus,
//	posta-certificata-{completa,breve,sintetica}, avvenuta-consegna-{completa,breve,sintetica},
//	avvenuta-consegna-completa-{sha256,lf,opaque}, errore-consegna-{no-dest,no-dominio,virus,altro},
//	preavviso-errore-consegna, anomalia,
//	avvenuta-consegna-completa-{tampered,truncated}, avvenuta-consegna-completa-signer-<defect>.
//
// The sender is at ProviderA, the recipient at ProviderB; verify with the roots of
// NewCA(seed, nil). Results are cached per seed; each call returns fresh copies of the bytes.
// AllKinds panics if generation fails, which does not happen for its fixed inputs.
func AllKinds(seed int64) []Generated {
	v, ok := allKindsCache.Load(seed)
	if !ok {
		gs, err := allKinds(seed)
		if err != nil {
			panic(err)
		}
		v, _ = allKindsCache.LoadOrStore(seed, gs)
	}
	gs := slices.Clone(v.([]Generated))
	for i := range gs {
		gs[i].Bytes = slices.Clone(gs[i].Bytes)
	}
	return gs
}

func allKinds(seed int64) ([]Generated, error) {
	a, err := NewProvider(seed, nil)
	if err != nil {
		return nil, err
	}
	b, err := a.Peer(nil)
	if err != nil {
		return nil, err
	}
	var out []Generated
	var firstErr error
	add := func(g *Generated, err error) {
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("pectest: AllKinds: %w", err)
			}
			return
		}
		out = append(out, *g)
	}
	to := "protocollo@" + ProviderB.Domain
	spec := func(rt pec.ReceiptType, subject string) *Original {
		return &Original{To: []string{to}, Cc: []string{"ufficio@" + ProviderA.Domain, "info@example.com"},
			ReceiptType: rt, Subject: subject}
	}
	o, err := a.Original(spec(pec.ReceiptCompleta, ""))
	if err != nil {
		return nil, err
	}
	oBreve, err := a.Original(spec(pec.ReceiptBreve, "Invio atti (ricevuta breve)"))
	if err != nil {
		return nil, err
	}
	oSint, err := a.Original(spec(pec.ReceiptSintetica, "Comunicazione (ricevuta sintetica)"))
	if err != nil {
		return nil, err
	}
	winter := &Original{To: []string{to}, Subject: "Convocazione assemblea", Date: time.Date(2026, 1, 15, 9, 5, 0, 0, time.UTC)}
	oWinter, err := a.Original(winter)
	if err != nil {
		return nil, err
	}

	orig := Generated{Name: "original", Kind: pec.KindNotPEC, Mailbox: o.From, ID: o.ID, MsgID: o.MessageID,
		MessageID: o.MessageID, Time: o.Date, Bytes: toCRLF(o.Raw)}
	out = append(out, orig)
	add(a.Acceptance(Params{Original: o, Name: "accettazione"}))
	add(a.Acceptance(Params{Original: oWinter, Name: "accettazione-cet"}))
	add(a.NonAcceptance(Params{Original: o, Name: "non-accettazione"}))
	add(a.NonAcceptance(Params{Original: o, Virus: true, Name: "non-accettazione-virus"}))
	add(b.TakingCharge(Params{Original: o, Name: "presa-in-carico"}))
	add(b.VirusDetected(Params{Original: o, Recipient: to, Name: "rilevazione-virus"}))
	add(a.Envelope(Params{Original: o, Recipient: to, Name: "posta-certificata-completa"}))
	add(a.Envelope(Params{Original: oBreve, Recipient: to, Name: "posta-certificata-breve"}))
	add(a.Envelope(Params{Original: oSint, Recipient: to, Name: "posta-certificata-sintetica"}))
	add(b.Delivery(Params{Original: o, Recipient: to, Name: "avvenuta-consegna-completa"}))
	add(b.Delivery(Params{Original: oBreve, Recipient: to, Name: "avvenuta-consegna-breve"}))
	add(b.Delivery(Params{Original: oSint, Recipient: to, Name: "avvenuta-consegna-sintetica"}))
	for _, v := range []struct {
		p    *Provider
		code pec.ErrorCode
	}{{b, pec.ErrNoDest}, {a, pec.ErrNoDominio}, {a, pec.ErrVirus}, {b, pec.ErrAltro}} {
		add(v.p.NonDelivery(Params{Original: o, Recipient: to, Error: v.code, Name: "errore-consegna-" + string(v.code)}))
	}
	add(a.NonDeliveryWarning(Params{Original: o, Recipient: to, Name: "preavviso-errore-consegna"}))
	plain, err := a.Original(&Original{From: "mario.bianchi@example.com", FromName: "Mario Bianchi", To: []string{to},
		Subject: "Richiesta informazioni", Attachments: []Attachment{}})
	if err != nil {
		return nil, err
	}
	add(b.Anomaly(Params{Received: plain.Raw, Name: "anomalia"}))

	for _, v := range []struct {
		name string
		mod  func(*Options)
	}{
		{"sha256", func(o *Options) { o.Digest = SHA256 }},
		{"lf", func(o *Options) { o.LF = true }},
		{"opaque", func(o *Options) { o.Opaque = true }},
	} {
		q, err := b.With(v.mod)
		if err != nil {
			return nil, err
		}
		add(q.Delivery(Params{Original: o, Recipient: to, Name: "avvenuta-consegna-completa-" + v.name}))
	}
	good, err := b.Delivery(Params{Original: o, Recipient: to})
	if err != nil {
		return nil, err
	}
	for _, f := range Failures {
		add(Damage(good, f))
	}
	for _, d := range Defects {
		q, err := b.With(func(o *Options) { o.Defect = d })
		if err != nil {
			return nil, err
		}
		name := "avvenuta-consegna-completa-signer-" + d.String()
		if d == DefectForged {
			name = "forged"
		}
		add(q.Delivery(Params{Original: o, Recipient: to, Name: name}))
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

var typicalCache sync.Map // int64 -> []byte

// typicalAttachment is the size of the PDF attached to the original of TypicalDeliveryReceipt.
const typicalAttachment = 512

// TypicalDeliveryReceipt returns a typical complete delivery receipt (SHA-1, CRLF, signer and
// intermediate certificates included, the original with a 512-byte PDF attached): about 13 KB,
// of which about 5 KB are the base64 CMS, as in real receipts (real ones are a little larger,
// AgID CA1 alone being 4.5 KB). For benchmarks. Cached per seed.
func TypicalDeliveryReceipt(seed int64) []byte {
	if v, ok := typicalCache.Load(seed); ok {
		return slices.Clone(v.([]byte))
	}
	a, err := NewProvider(seed, nil)
	if err != nil {
		panic(err)
	}
	b, err := a.Peer(nil)
	if err != nil {
		panic(err)
	}
	o, err := a.Original(&Original{Attachments: []Attachment{{Name: "documento.pdf", ContentType: "application/pdf",
		Data: a.FileData(typicalAttachment, "typical")}}})
	if err != nil {
		panic(err)
	}
	g, err := b.Delivery(Params{Original: o})
	if err != nil {
		panic(err)
	}
	typicalCache.Store(seed, g.Bytes)
	return slices.Clone(g.Bytes)
}
