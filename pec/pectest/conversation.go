package pectest

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/pecarchive/pecarchive/pec"
)

// Outcome is what happens to one recipient of a conversation. The zero Outcome is a successful
// delivery with the default receipt type.
type Outcome struct {
	// Error, when set, makes delivery fail with this errore: no-dest and altro are reported by
	// the recipient's provider after taking charge, virus by the sender's provider after the
	// recipient's provider sent it a rilevazione-virus, no-dominio by the sender's provider (no
	// envelope is sent).
	Error pec.ErrorCode
	// ErrorDetail is the errore-esteso (default [Provider.DefaultErrorDetail]).
	ErrorDetail string
	// Late makes the sender's provider issue a preavviso-errore-consegna after 12 hours; then
	// the delivery receipt arrives after 13 hours, or, with Error, the sender's provider issues the
	// errore-consegna after 24 hours.
	Late bool
	// ReceiptType overrides the delivery receipt type ([DefaultReceiptType]).
	ReceiptType pec.ReceiptType
}

// ConversationConfig describes one sent message and what happens to each recipient.
type ConversationConfig struct {
	// Original is the spec given to [Provider.Original]. When it has no recipients the default
	// ones are used: To protocollo@pec.esempio.it (ProviderB), Cc ufficio@pec.example.it (the
	// sender's provider) and Cc info@example.com (not PEC).
	Original *Original
	// AttachmentSize, when > 0 and Original.Attachments is nil, is the size of the default PDF
	// attachment.
	AttachmentSize int
	// Outcomes are per recipient address (default: delivered).
	Outcomes map[string]Outcome
}

// Conversation is everything one sent PEC message produces, in time order.
type Conversation struct {
	Original *Original
	// Providers by provider domain; the sender's provider is Providers[Original's provider].
	Providers map[string]*Provider
	Messages  []*Generated
}

// Find returns the first message of kind concerning recipient ("" matches any), or nil.
func (c *Conversation) Find(kind pec.Kind, recipient string) *Generated {
	for _, g := range c.Messages {
		if g.Kind == kind && (recipient == "" || g.Recipient == recipient) {
			return g
		}
	}
	return nil
}

// ByKind returns the messages of kind.
func (c *Conversation) ByKind(kind pec.Kind) []*Generated {
	var out []*Generated
	for _, g := range c.Messages {
		if g.Kind == kind {
			out = append(out, g)
		}
	}
	return out
}

// Conversation generates a whole exchange sent through p: the original (unsigned, Kind
// KindNotPEC, as kept in the sender's Sent folder), the acceptance, per recipient provider a
// presa-in-carico, per recipient the transport envelope in its mailbox and the delivery receipt
// (To: completa by default, Cc: sintetica) or the non-delivery messages given by cfg.Outcomes.
// Recipients at domains no CA provider manages are external: they get the envelope, no receipt.
// Every receipt carries the original's Message-ID and the identificativo of the acceptance.
func (p *Provider) Conversation(cfg *ConversationConfig) (*Conversation, error) {
	var c ConversationConfig
	if cfg != nil {
		c = *cfg
	}
	var spec Original
	if c.Original != nil {
		spec = *c.Original
	}
	if len(spec.To) == 0 && len(spec.Cc) == 0 {
		peer := ProviderB
		if p.Info.Domain == ProviderB.Domain {
			peer = ProviderA
		}
		spec.To = []string{"protocollo@" + peer.Domain}
		spec.Cc = []string{"ufficio@" + p.Info.Domain, "info@example.com"}
	}
	if spec.Attachments == nil && c.AttachmentSize > 0 {
		if c.AttachmentSize > MaxAttachmentSize {
			return nil, fmt.Errorf("%w: attachment size %d", ErrInvalid, c.AttachmentSize)
		}
		spec.Attachments = []Attachment{{Name: "documento.pdf", ContentType: "application/pdf", Data: p.FileData(c.AttachmentSize, "documento.pdf")}}
	}
	o, err := p.Original(&spec)
	if err != nil {
		return nil, err
	}
	conv := &Conversation{Original: o, Providers: map[string]*Provider{p.Info.Domain: p}}
	providerFor := func(addr string) (*Provider, error) {
		info, ok := p.CA.Provider(domainOf(addr))
		if !ok {
			return nil, nil
		}
		if q := conv.Providers[info.Domain]; q != nil {
			return q, nil
		}
		q, err := p.Peer(&info)
		if err != nil {
			return nil, err
		}
		conv.Providers[info.Domain] = q
		return q, nil
	}
	add := func(g *Generated, err error) error {
		if err != nil {
			return err
		}
		conv.Messages = append(conv.Messages, g)
		return nil
	}

	orig := &Generated{Name: "original", Kind: pec.KindNotPEC, Mailbox: o.From, ID: o.ID, MsgID: o.MessageID,
		MessageID: o.MessageID, Time: o.Date, Bytes: o.Raw}
	if !p.opts.LF {
		orig.Bytes = toCRLF(o.Raw)
	}
	conv.Messages = append(conv.Messages, orig)
	if err := add(p.Acceptance(Params{Original: o, Name: "accettazione"})); err != nil {
		return nil, err
	}

	rcpts := append(slices.Clone(o.To), o.Cc...)
	tookCharge := map[string]bool{}
	for _, r := range rcpts {
		out := c.Outcomes[r]
		q, err := providerFor(r)
		if err != nil {
			return nil, err
		}
		if out.Error == pec.ErrNoDominio {
			if err := add(p.NonDelivery(Params{Original: o, Recipient: r, Error: out.Error, ErrorDetail: out.ErrorDetail,
				Name: "errore-consegna/" + r})); err != nil {
				return nil, err
			}
			continue
		}
		if q == nil { // external: the envelope goes out by ordinary SMTP, no receipts
			if err := add(p.Envelope(Params{Original: o, Recipient: r, Name: "posta-certificata/" + r})); err != nil {
				return nil, err
			}
			continue
		}
		if q != p && !tookCharge[q.Info.Domain] {
			tookCharge[q.Info.Domain] = true
			if err := add(q.TakingCharge(Params{Original: o, Name: "presa-in-carico/" + q.Info.Domain})); err != nil {
				return nil, err
			}
		}
		if out.Late {
			if err := add(p.NonDeliveryWarning(Params{Original: o, Recipient: r, Name: "preavviso-errore-consegna/" + r})); err != nil {
				return nil, err
			}
		}
		switch {
		case out.Error == pec.ErrVirus:
			if q != p {
				if err := add(q.VirusDetected(Params{Original: o, Recipient: r, Name: "rilevazione-virus/" + r})); err != nil {
					return nil, err
				}
			}
			// The sender's provider turns the recipient provider's virus report into the notice.
			if err := add(p.NonDelivery(Params{Original: o, Recipient: r, Error: out.Error, ErrorDetail: out.ErrorDetail,
				At: o.Date.Add(6 * time.Second), Name: "errore-consegna/" + r})); err != nil {
				return nil, err
			}
		case out.Error != "" && out.Late:
			if err := add(p.NonDelivery(Params{Original: o, Recipient: r, Error: out.Error, ErrorDetail: out.ErrorDetail,
				At: o.Date.Add(24 * time.Hour), Name: "errore-consegna/" + r})); err != nil {
				return nil, err
			}
		case out.Error != "":
			if err := add(q.NonDelivery(Params{Original: o, Recipient: r, Error: out.Error, ErrorDetail: out.ErrorDetail,
				Name: "errore-consegna/" + r})); err != nil {
				return nil, err
			}
		default:
			if err := add(p.Envelope(Params{Original: o, Recipient: r, Name: "posta-certificata/" + r})); err != nil {
				return nil, err
			}
			prm := Params{Original: o, Recipient: r, ReceiptType: out.ReceiptType, Name: "avvenuta-consegna/" + r}
			if out.Late {
				prm.At = o.Date.Add(13 * time.Hour)
			}
			if err := add(q.Delivery(prm)); err != nil {
				return nil, err
			}
		}
	}
	sort.SliceStable(conv.Messages, func(i, j int) bool { return conv.Messages[i].Time.Before(conv.Messages[j].Time) })
	return conv, nil
}
