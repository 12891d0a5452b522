package pectest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pecarchive/pecarchive/pec"
)

// Options configure a [Provider]. A nil *Options means the defaults: provider [ProviderA],
// [DefaultTime], a good signer, SHA-1 digest, detached multipart/signed, CRLF line ends, with the
// delivery trace headers (Return-Path, Delivered-To, Received) a mailbox copy has.
type Options struct {
	// Provider is the provider identity (default ProviderA).
	Provider ProviderInfo
	// Time is the base time of the CA built by [NewProvider] and the default date of originals
	// (default [DefaultTime]). Ignored by [CA.NewProvider], which uses the CA's time.
	Time time.Time
	// Defect makes the provider sign with a deliberately flawed signer.
	Defect Defect
	// Digest is the CMS digest algorithm (default SHA1, like real providers).
	Digest Digest
	// Opaque produces application/pkcs7-mime (smime.p7m, content inside the CMS) instead of
	// multipart/signed.
	Opaque bool
	// LF writes LF line ends (as real files are often stored) instead of CRLF. The signature is
	// over the CRLF form either way.
	LF bool
	// NoTrace omits the Return-Path, Delivered-To and Received headers added on delivery.
	NoTrace bool
}

// Provider is a test PEC provider: an identity, a signer issued by a CA, and output options.
// It is immutable and safe for concurrent use.
type Provider struct {
	Info   ProviderInfo
	CA     *CA // the trusted hierarchy (give CA.Roots() to verifiers)
	Signer *Signer
	opts   Options
}

// NewProvider builds the default CA for seed (whose name constraints permit ProviderA, B, C and
// opts.Provider) and a provider under it.
func NewProvider(seed int64, opts *Options) (*Provider, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Provider.Domain == "" {
		o.Provider = ProviderA
	}
	providers := []ProviderInfo{ProviderA, ProviderB, ProviderC}
	if !slices.ContainsFunc(providers, func(p ProviderInfo) bool { return p.Domain == o.Provider.Domain }) {
		providers = append(providers, o.Provider)
	}
	ca, err := NewCA(seed, &CAOptions{Time: o.Time, Providers: providers})
	if err != nil {
		return nil, err
	}
	return ca.NewProvider(&o)
}

// NewProvider returns a provider signing with a certificate issued by ca. A provider whose
// domain the CA's name constraints do not permit gets a certificate that fails chain building.
func (ca *CA) NewProvider(opts *Options) (*Provider, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Provider.Domain == "" {
		o.Provider = ProviderA
	}
	if err := o.Provider.check(); err != nil {
		return nil, err
	}
	o.Provider = o.Provider.withDefaults()
	o.Time = ca.Time
	switch o.Digest {
	case "":
		o.Digest = SHA1
	case SHA1, SHA256:
	default:
		return nil, fmt.Errorf("pectest: unsupported digest %q", o.Digest)
	}
	if _, ok := defectNames[o.Defect]; !ok {
		return nil, fmt.Errorf("pectest: unknown defect %d", o.Defect)
	}
	s, err := ca.NewSigner(o.Provider, o.Defect)
	if err != nil {
		return nil, err
	}
	return &Provider{Info: o.Provider, CA: ca, Signer: s, opts: o}, nil
}

// Options returns the provider's options (with defaults filled in).
func (p *Provider) Options() Options { return p.opts }

// With returns a provider under the same CA with modified options (for example another defect,
// digest or line end).
func (p *Provider) With(modify func(*Options)) (*Provider, error) {
	o := p.opts
	modify(&o)
	return p.CA.NewProvider(&o)
}

// Peer returns another provider under the same CA with the same output options and a good
// signer: by default the first of ProviderA, ProviderB that is not p.
func (p *Provider) Peer(info *ProviderInfo) (*Provider, error) {
	o := p.opts
	o.Defect = DefectNone
	switch {
	case info != nil:
		o.Provider = *info
	case p.Info.Domain == ProviderB.Domain:
		o.Provider = ProviderA
	default:
		o.Provider = ProviderB
	}
	return p.CA.NewProvider(&o)
}

// Address returns the provider's own address, posta-certificata@<domain>.
func (p *Provider) Address() string { return "posta-certificata@" + p.Info.Domain }

// rnd returns deterministic pseudo-random bytes for the given labels (seeded by the CA seed).
func (p *Provider) rnd(labels ...string) [32]byte {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(p.CA.seed))
	h.Write([]byte("pectest message\x00"))
	h.Write(b[:])
	for _, l := range labels {
		h.Write([]byte(l))
		h.Write([]byte{0})
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

func (p *Provider) num(mod uint64, labels ...string) uint64 {
	r := p.rnd(labels...)
	return binary.BigEndian.Uint64(r[:8]) % mod
}

// Attachment is a file attached to an original message.
type Attachment struct {
	Name        string // file name (UTF-8; RFC 2047-encoded in the headers like real webmails)
	ContentType string // default application/octet-stream
	Data        []byte
}

// Original is a message as the sender's client submits it to its provider. Build one with
// [Provider.Original]; the zero fields of the spec get defaults.
type Original struct {
	From, FromName string
	To, Cc         []string
	ReplyTo        string // default From
	Subject        string
	Date           time.Time
	// MessageID is the client's Message-ID, without angle brackets (the msgid of daticert and the
	// X-Riferimento-Message-ID of every receipt).
	MessageID string
	// ReceiptType is the X-TipoRicevuta the sender asks for (default completa).
	ReceiptType pec.ReceiptType
	Body        string
	Attachments []Attachment
	// ID is the PEC identificativo the sender's provider assigns on acceptance.
	ID string
	// Raw is the message as submitted (LF line ends).
	Raw []byte
}

// Recipients returns the daticert recipients of o: To then Cc, "certificato" when the address'
// domain is managed by a provider of the CA, else "esterno".
func (p *Provider) Recipients(o *Original) []pec.Recipient {
	var rs []pec.Recipient
	for _, a := range append(slices.Clone(o.To), o.Cc...) {
		t := pec.RecipientEsterno
		if _, ok := p.CA.Provider(domainOf(a)); ok {
			t = pec.RecipientCertificato
		}
		rs = append(rs, pec.Recipient{Address: a, Type: t})
	}
	return rs
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return ""
}

func localOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[:i]
	}
	return addr
}

// Limits on generated content, so that a mistaken size does not exhaust memory.
const (
	MaxAttachmentSize = 32 << 20
	maxRecipients     = 1000
	maxSubject        = 500
)

// ErrInvalid is returned (wrapped) for invalid generation parameters.
var ErrInvalid = errors.New("pectest: invalid parameters")

// Original fills in spec's defaults (sender at the provider's last managed domain, one PEC
// recipient at the peer provider, a subject, a text body, one 2 KiB PDF attachment, the base
// time, a webmail-style Message-ID, receipt type completa, the PEC identificativo this provider
// assigns) and builds the raw message the client submits, in the layout of a real webmail.
// A nil spec means all defaults.
func (p *Provider) Original(spec *Original) (*Original, error) {
	var o Original
	if spec != nil {
		o = *spec
		o.To = slices.Clone(spec.To)
		o.Cc = slices.Clone(spec.Cc)
		o.Attachments = slices.Clone(spec.Attachments)
	}
	if o.From == "" {
		o.From = "segreteria@" + p.Info.ManagedDomains[len(p.Info.ManagedDomains)-1]
		if o.FromName == "" {
			o.FromName = "Segreteria"
		}
	}
	if len(o.To) == 0 && len(o.Cc) == 0 {
		peer := ProviderB
		if p.Info.Domain == ProviderB.Domain {
			peer = ProviderA
		}
		o.To = []string{"protocollo@" + peer.Domain}
	}
	if len(o.To)+len(o.Cc) > maxRecipients {
		return nil, fmt.Errorf("%w: more than %d recipients", ErrInvalid, maxRecipients)
	}
	for _, a := range append(append([]string{o.From}, o.To...), o.Cc...) {
		if !strings.Contains(a, "@") || strings.ContainsAny(a, " <>\"\r\n") {
			return nil, fmt.Errorf("%w: bad address %q", ErrInvalid, a)
		}
	}
	if o.ReplyTo == "" {
		o.ReplyTo = o.From
	}
	if o.Subject == "" {
		o.Subject = "Trasmissione documentazione prot. 583/2026"
	}
	if strings.ContainsAny(o.Subject, "\r\n") || len(o.Subject) > maxSubject {
		return nil, fmt.Errorf("%w: subject with line breaks or longer than %d bytes", ErrInvalid, maxSubject)
	}
	if o.Date.IsZero() {
		o.Date = p.opts.Time
	}
	o.Date = o.Date.Truncate(time.Second)
	if o.ReceiptType == "" {
		o.ReceiptType = pec.ReceiptCompleta
	}
	if o.MessageID == "" {
		r := p.rnd("msgid", o.From, o.Subject, o.Date.String(), strings.Join(o.To, ","), strings.Join(o.Cc, ","))
		o.MessageID = "RZLFE1$" + strings.ToUpper(hex.EncodeToString(r[:16])) + "@" + domainOf(o.From)
	}
	if o.Body == "" {
		o.Body = "Gentili colleghi,\nsi trasmette in allegato la documentazione richiesta.\nCordiali saluti.\n"
	}
	if spec == nil || spec.Attachments == nil {
		o.Attachments = []Attachment{{Name: "documento.pdf", ContentType: "application/pdf", Data: p.FileData(2048, "documento.pdf")}}
	}
	total := 0
	for _, a := range o.Attachments {
		total += len(a.Data)
		if a.Name == "" || strings.ContainsAny(a.Name, "\r\n\"") {
			return nil, fmt.Errorf("%w: bad attachment name %q", ErrInvalid, a.Name)
		}
	}
	if total > MaxAttachmentSize {
		return nil, fmt.Errorf("%w: attachments larger than %d bytes", ErrInvalid, MaxAttachmentSize)
	}
	if o.ID == "" {
		o.ID = p.pecID(o.Date.Add(time.Second), o.MessageID)
	}
	o.Raw = p.buildOriginal(&o)
	return &o, nil
}

// FileData returns size deterministic bytes that look like a small PDF file.
func (p *Provider) FileData(size int, label string) []byte {
	if size < 0 {
		size = 0
	}
	if size > MaxAttachmentSize {
		size = MaxAttachmentSize
	}
	head := []byte("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n")
	out := make([]byte, 0, size)
	out = append(out, head...)
	for i := 0; len(out) < size; i++ {
		r := p.rnd("file", label, fmt.Sprint(i))
		out = append(out, r[:]...)
	}
	tail := []byte("\n%%EOF\n")
	if size >= len(head)+len(tail) {
		out = append(out[:size-len(tail)], tail...)
	}
	return out[:size]
}

// pecID returns a PEC identificativo in the Aruba shape, for example
// opec21010.20230818173714.75133.134.1.56@pec.aruba.it.
func (p *Provider) pecID(at time.Time, key string) string {
	lt, _ := rome(at)
	return fmt.Sprintf("opec21010.%s.%d.%d.1.%d@%s", lt.Format("20060102150405"),
		1000+p.num(98000, "pid", key), p.num(1000, "n", key), p.num(100, "k", key), p.Info.Domain)
}

// receiptMessageID is the Message-ID of a receipt, for example
// opec210312.20241115182038.288127.606.1.771.53@fakepec.it.
func (p *Provider) receiptMessageID(at time.Time, key string) string {
	lt, _ := rome(at)
	return fmt.Sprintf("opec210312.%s.%d.%d.1.%d.%d@%s", lt.Format("20060102150405"),
		1000+p.num(298000, "rpid", key), p.num(1000, "rn", key), p.num(1000, "rm", key), p.num(100, "rk", key), p.Info.Domain)
}

func formatAddr(name, addr string) string {
	if name == "" {
		return addr
	}
	return "\"" + headerEncode(name) + "\" <" + addr + ">"
}

// foldList folds an address list header value at commas when it is long.
func foldList(name string, addrs []string) string {
	line := name + ": " + strings.Join(addrs, ", ")
	if len(line) <= 76 {
		return line + "\n"
	}
	return name + ": " + strings.Join(addrs, ",\n ") + "\n"
}

// buildOriginal writes the client message in the layout of the XaM3 webmail seen in the real
// envelope: multipart/mixed { multipart/alternative { text/plain, text/html } base64 UTF-8,
// attachments base64 with RFC 2047 names }, Message-ID last.
func (p *Provider) buildOriginal(o *Original) []byte {
	key := o.MessageID
	ts := o.Date.Unix()
	bnd := func(label string) string {
		return fmt.Sprintf("_=__=_XaM3_.%d.2A.%d.42.%d.52.42.007.%d", ts, 800000+p.num(100000, "b1", label, key),
			20000+p.num(9000, "b2", key), p.num(2000000000, "b3", label, key))
	}
	mixed, alt := bnd("mixed"), bnd("alt")
	var b strings.Builder
	b.WriteString("Date: " + rfc5322Date(o.Date) + "\n")
	b.WriteString("Subject: " + headerEncode(o.Subject) + "\n")
	b.WriteString("MIME-Version: 1.0\n")
	b.WriteString("X-Sensitivity: 3\n")
	b.WriteString("Content-Type: multipart/mixed;\n\tboundary=\"" + mixed + "\"\n")
	b.WriteString("Reply-To: " + o.ReplyTo + "\n")
	b.WriteString("From: " + formatAddr(o.FromName, o.From) + "\n")
	var to, cc []string
	for _, a := range o.To {
		to = append(to, formatAddr(localOf(a), a))
	}
	for _, a := range o.Cc {
		cc = append(cc, formatAddr(localOf(a), a))
	}
	if len(to) > 0 {
		b.WriteString(foldList("To", to))
	}
	if len(cc) > 0 {
		b.WriteString(foldList("Cc", cc))
	}
	b.WriteString("X-XaM3-API-Version: 4.2.88\n")
	b.WriteString("X-TipoRicevuta: " + string(o.ReceiptType) + "\n")
	b.WriteString("X-type: 0\n")
	b.WriteString("Message-ID: <" + o.MessageID + ">\n")
	b.WriteString("\n\n--" + mixed + "\n")
	b.WriteString("Content-Type: multipart/alternative;\n\tboundary=\"" + alt + "\"\n\n")
	b.WriteString("\n--" + alt + "\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n")
	b.Write(base64Lines([]byte(o.Body), 72))
	b.WriteString("\n\n--" + alt + "\n")
	b.WriteString("Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n")
	htmlBody := "<span style=\"font-family: Arial; font-size: medium;\">" +
		strings.ReplaceAll(htmlText(strings.TrimRight(o.Body, "\n")), "\n", "<br />") + "</span>"
	b.Write(base64Lines([]byte(htmlBody), 72))
	b.WriteString("\n\n--" + alt + "--\n")
	for _, a := range o.Attachments {
		ct := a.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		name := headerEncode(a.Name)
		b.WriteString("\n--" + mixed + "\n")
		b.WriteString("Content-Type: " + ct + "; name=\"" + name + "\"\n")
		b.WriteString("Content-Transfer-Encoding: base64\n")
		b.WriteString("Content-Disposition: attachment; filename=\"" + name + "\"\n\n")
		b.Write(base64Lines(a.Data, 72))
		b.WriteString("\n")
	}
	b.WriteString("\n--" + mixed + "--\n")
	return []byte(b.String())
}
