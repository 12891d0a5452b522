package pectest

import (
	"bytes"
	"fmt"
	"mime"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/pecarchive/pecarchive/pec"
)

// Params describe one provider message about an original. Zero fields get defaults that make a
// consistent exchange (see each generator).
type Params struct {
	// Original is the message the receipt or envelope is about (required, except for Anomaly
	// when Received is set).
	Original *Original
	// ID is the PEC identificativo of the original (default Original.ID).
	ID string
	// At is when the provider issues the message: Date header and daticert data (default: the
	// original's date plus a few seconds, depending on the kind; 12 hours for a warning).
	At time.Time
	// SigningTime is the CMS signingTime (default At).
	SigningTime time.Time
	// Recipient is the recipient concerned: consegna of delivery, non-delivery, warning and virus
	// messages (default the first recipient), and the mailbox an envelope copy is delivered to.
	Recipient string
	// ReceiptType overrides the receipt type (envelope X-TipoRicevuta, delivery ricevuta tipo).
	ReceiptType pec.ReceiptType
	// Error is the daticert errore of non-delivery and warning messages (default no-dest, altro).
	Error pec.ErrorCode
	// ErrorDetail is errore-esteso (default: a realistic "5.1.1 - ..." text for Error).
	ErrorDetail string
	// Recipients is the ricezione list of a presa-in-carico (default: the original's recipients
	// whose domain the issuing provider manages).
	Recipients []string
	// Virus makes a non-acceptance or non-delivery a virus one (X-VerificaSicurezza: errore).
	Virus bool
	// Received is the raw message an anomaly envelope wraps (default Original.Raw).
	Received []byte
	// Name overrides the Generated.Name.
	Name string
}

// Generated is one generated message with what a test needs to check it.
type Generated struct {
	Name        string   // unique in a set, for example "avvenuta-consegna-breve"
	Kind        pec.Kind // KindNotPEC for the unsigned original
	Issuer      string   // domain of the provider that signed it ("" for the original)
	Mailbox     string   // address whose mailbox the message lands in
	Recipient   string   // consegna or the recipient concerned, if any
	ReceiptType pec.ReceiptType
	Error       pec.ErrorCode
	ID          string // daticert identificativo
	MsgID       string // original client Message-ID (X-Riferimento-Message-ID), no brackets
	MessageID   string // this message's Message-ID, no brackets
	Time        time.Time
	SigningTime time.Time
	Daticert    *Daticert      // nil when the message has no daticert.xml
	HashParts   []pec.HashPart // the .hash parts of a breve receipt
	Postacert   []byte         // the attached postacert.eml (LF), nil if none
	Content     []byte         // the signed entity in canonical CRLF form (what p7.Content must equal)
	Defect      Defect         // signer defect
	Failure     Failure        // damage done after signing
	Signer      *Signer        // the signer used
	WantValid   bool           // the CMS signature matches the bytes
	WantTrusted bool           // valid, and the signer is trusted by CA.Roots() at SigningTime and fits the profile
	Bytes       []byte         // the message
}

func (p *Provider) needOriginal(prm *Params) (*Original, string, error) {
	o := prm.Original
	if o == nil || o.Raw == nil {
		return nil, "", fmt.Errorf("%w: Params.Original must come from Provider.Original", ErrInvalid)
	}
	id := prm.ID
	if id == "" {
		id = o.ID
	}
	return o, id, nil
}

func defaultAt(prm *Params, o *Original, d time.Duration) time.Time {
	if !prm.At.IsZero() {
		return prm.At.Truncate(time.Second)
	}
	return o.Date.Add(d)
}

func (p *Provider) daticert(kind pec.Kind, o *Original, id string, at time.Time) *Daticert {
	return &Daticert{
		Tipo: kind, Mittente: o.From, Destinatari: p.Recipients(o), Risposte: o.ReplyTo,
		Oggetto: o.Subject, GestoreEmittente: p.Info.Name, Data: at, Identificativo: id, MsgID: o.MessageID,
	}
}

func (p *Provider) textData(o *Original, id string, at time.Time) textData {
	lt, zone := rome(at)
	return textData{day: lt.Format("02/01/2006"), clock: lt.Format("15:04:05"), zone: zone,
		subject: o.Subject, from: o.From, recipients: p.Recipients(o), id: id}
}

// receiptHeaders are the headers of a receipt in the order real providers write them.
func receiptHeaders(subject, msgid string, at time.Time, to, xricevuta string, extra []string, from string) []string {
	h := []string{
		"Subject: " + headerEncode(subject) + "\n",
		"X-Riferimento-Message-ID: <" + msgid + ">\n",
		"Date: " + rfc5322Date(at) + "\n",
		"To: " + to + "\n",
		"X-Ricevuta: " + xricevuta + "\n",
	}
	h = append(h, extra...)
	return append(h, "From: "+from+"\n")
}

// finish assembles s and wraps it in a Generated.
func (p *Provider) finish(s *spec, g *Generated, d *Daticert) (*Generated, error) {
	if d != nil {
		s.daticert = d.Marshal()
	}
	a, err := p.assemble(s)
	if err != nil {
		return nil, err
	}
	g.Kind = s.kind
	g.Issuer = p.Info.Domain
	g.Mailbox = s.deliveredTo
	g.MessageID = s.messageID
	g.Time = s.at
	g.SigningTime = s.signingTime
	if g.SigningTime.IsZero() {
		g.SigningTime = s.at
	}
	g.Daticert = d
	if s.attach != nil {
		g.Postacert = append(slices.Clone(s.attach), '\n') // as carried: the provider adds a blank line
	}
	g.Content = a.entity
	g.Defect = p.Signer.Defect
	g.Signer = p.Signer
	g.WantValid = p.Signer.Defect != DefectForged
	g.WantTrusted = p.Signer.Defect == DefectNone
	g.Bytes = a.raw
	if g.Name == "" {
		g.Name = string(s.kind)
	}
	return g, nil
}

// Acceptance returns the ricevuta di accettazione the sender's provider (p) sends the sender.
// At defaults to the original's date plus one second.
func (p *Provider) Acceptance(prm Params) (*Generated, error) {
	o, id, err := p.needOriginal(&prm)
	if err != nil {
		return nil, err
	}
	at := defaultAt(&prm, o, time.Second)
	key := "accettazione|" + id + "|" + at.String()
	s := &spec{kind: pec.KindAccettazione, at: at, signingTime: prm.SigningTime, key: key,
		messageID: p.receiptMessageID(at, key), deliveredTo: o.From, returnPath: p.Address()}
	s.headers = receiptHeaders("ACCETTAZIONE: "+o.Subject, o.MessageID, at, o.From, "accettazione", nil, p.Address())
	s.text, s.html = texts(pec.KindAccettazione, p.textData(o, id, at))
	d := p.daticert(pec.KindAccettazione, o, id, at)
	return p.finish(s, &Generated{Name: prm.Name, ID: id, MsgID: o.MessageID}, d)
}

// NonAcceptance returns the avviso di non accettazione the sender's provider sends when it
// refuses the original (errore altro; with Virus, errore virus, X-VerificaSicurezza: errore and
// the "PER VIRUS" subject).
func (p *Provider) NonAcceptance(prm Params) (*Generated, error) {
	o, id, err := p.needOriginal(&prm)
	if err != nil {
		return nil, err
	}
	at := defaultAt(&prm, o, time.Second)
	key := "non-accettazione|" + id + "|" + at.String() + fmt.Sprint(prm.Virus)
	code, detail, subject := pec.ErrAltro, prm.ErrorDetail, "AVVISO DI NON ACCETTAZIONE: "
	var extra []string
	if prm.Virus {
		code, subject = pec.ErrVirus, "AVVISO DI NON ACCETTAZIONE PER VIRUS: "
		extra = append(extra, "X-VerificaSicurezza: errore\n")
		if detail == "" {
			detail = "Eicar-Test-Signature"
		}
	} else if detail == "" {
		detail = "messaggio non conforme alle regole tecniche (destinatari non validi)"
	}
	if prm.Error != "" {
		code = prm.Error
	}
	s := &spec{kind: pec.KindNonAccettazione, at: at, signingTime: prm.SigningTime, key: key,
		messageID: p.receiptMessageID(at, key), deliveredTo: o.From, returnPath: p.Address()}
	s.headers = receiptHeaders(subject+o.Subject, o.MessageID, at, o.From, "non-accettazione", extra, p.Address())
	td := p.textData(o, id, at)
	td.detail, td.virus = detail, prm.Virus
	s.text, s.html = texts(pec.KindNonAccettazione, td)
	d := p.daticert(pec.KindNonAccettazione, o, id, at)
	d.Errore, d.ErroreEsteso = code, detail
	return p.finish(s, &Generated{Name: prm.Name, ID: id, MsgID: o.MessageID, Error: code}, d)
}

// senderProviderAddress is the posta-certificata address of the original's sender provider.
func (p *Provider) senderProviderAddress(o *Original, id string) string {
	if d := domainOf(id); d != "" {
		if pi, ok := p.CA.Provider(d); ok {
			return "posta-certificata@" + pi.Domain
		}
	}
	if pi, ok := p.CA.Provider(domainOf(o.From)); ok {
		return "posta-certificata@" + pi.Domain
	}
	return p.Address()
}

// managedBy returns the recipients of o whose domain p manages.
func (p *Provider) managedBy(o *Original) []string {
	var out []string
	for _, a := range append(slices.Clone(o.To), o.Cc...) {
		if slices.Contains(p.Info.ManagedDomains, domainOf(a)) {
			out = append(out, a)
		}
	}
	return out
}

// TakingCharge returns the ricevuta di presa in carico the recipients' provider (p) sends the
// sender's provider on receiving the envelope; <ricezione> lists Params.Recipients (default: the
// recipients p manages). At defaults to the original's date plus three seconds.
func (p *Provider) TakingCharge(prm Params) (*Generated, error) {
	o, id, err := p.needOriginal(&prm)
	if err != nil {
		return nil, err
	}
	at := defaultAt(&prm, o, 3*time.Second)
	rcpts := prm.Recipients
	if len(rcpts) == 0 {
		rcpts = p.managedBy(o)
	}
	if len(rcpts) == 0 {
		rcpts = append(slices.Clone(o.To), o.Cc...)
	}
	to := p.senderProviderAddress(o, id)
	key := "presa-in-carico|" + id + "|" + at.String() + strings.Join(rcpts, ",")
	s := &spec{kind: pec.KindPresaInCarico, at: at, signingTime: prm.SigningTime, key: key,
		messageID: p.receiptMessageID(at, key), deliveredTo: to, returnPath: p.Address()}
	s.headers = receiptHeaders("PRESA IN CARICO: "+o.Subject, o.MessageID, at, to, "presa-in-carico", nil, p.Address())
	td := p.textData(o, id, at)
	td.recipients = nil
	for _, r := range rcpts {
		td.recipients = append(td.recipients, pec.Recipient{Address: r, Type: pec.RecipientCertificato})
	}
	s.text, s.html = texts(pec.KindPresaInCarico, td)
	d := p.daticert(pec.KindPresaInCarico, o, id, at)
	d.Ricezione = rcpts
	return p.finish(s, &Generated{Name: prm.Name, ID: id, MsgID: o.MessageID}, d)
}

func firstRecipient(o *Original) string {
	if len(o.To) > 0 {
		return o.To[0]
	}
	if len(o.Cc) > 0 {
		return o.Cc[0]
	}
	return ""
}

// VirusDetected returns the avviso di rilevazione virus the recipient's provider (p) sends the
// sender's provider when the envelope carries a virus (X-Mittente: the original sender, errore
// virus, consegna the recipient). At defaults to the original's date plus three seconds.
func (p *Provider) VirusDetected(prm Params) (*Generated, error) {
	o, id, err := p.needOriginal(&prm)
	if err != nil {
		return nil, err
	}
	at := defaultAt(&prm, o, 3*time.Second)
	rcpt := prm.Recipient
	if rcpt == "" {
		rcpt = firstRecipient(o)
	}
	detail := prm.ErrorDetail
	if detail == "" {
		detail = "Eicar-Test-Signature"
	}
	to := p.senderProviderAddress(o, id)
	key := "rilevazione-virus|" + id + "|" + at.String() + rcpt
	s := &spec{kind: pec.KindRilevazioneVirus, at: at, signingTime: prm.SigningTime, key: key,
		messageID: p.receiptMessageID(at, key), deliveredTo: to, returnPath: p.Address()}
	s.headers = receiptHeaders("PROBLEMA DI SICUREZZA: "+o.Subject, o.MessageID, at, to, "rilevazione-virus",
		[]string{"X-Mittente: " + o.From + "\n", "X-VerificaSicurezza: errore\n"}, p.Address())
	td := p.textData(o, id, at)
	td.recipient, td.detail = rcpt, detail
	s.text, s.html = texts(pec.KindRilevazioneVirus, td)
	d := p.daticert(pec.KindRilevazioneVirus, o, id, at)
	d.Errore, d.Consegna, d.ErroreEsteso = pec.ErrVirus, rcpt, detail
	return p.finish(s, &Generated{Name: prm.Name, ID: id, MsgID: o.MessageID, Recipient: rcpt, Error: pec.ErrVirus}, d)
}

// received returns the Received lines the sender's access point adds to the original (LF).
func (p *Provider) received(o *Original, id string) string {
	rcpt := firstRecipient(o)
	ap := p.Info.Domain // the sender's provider: the one that assigned id
	if pi, ok := p.CA.Provider(domainOf(id)); ok {
		ap = pi.Domain
	}
	d := receivedDate(o.Date)
	q := func(l string) string {
		r := p.rnd("ap-qid", l, id)
		return fmt.Sprintf("4R%X", r[:7])
	}
	return "Received: from smtps." + ap + " (localhost [127.0.0.1])\n" +
		"\tby smtps." + ap + " (Postfix) with ESMTP id " + q("1") + "\n" +
		"\tfor <" + rcpt + ">; " + d + "\n" +
		"Received: from " + domainOf(o.From) + " (webmail." + ap + " [192.0.2.23])\n" +
		"\t(using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits))\n" +
		"\t(No client certificate requested)\n" +
		"\tby smtp." + ap + " (Postfix) with ESMTPSA id " + q("2") + "\n" +
		"\tfor <" + rcpt + ">; " + d + "\n"
}

// refold unfolds a header block and folds each field again at spaces (tabs kept inside lines),
// as the real envelope does with the Received fields it copies.
func refold(block string) []string {
	var fields []string
	for _, line := range strings.Split(strings.TrimSuffix(block, "\n"), "\n") {
		if (strings.HasPrefix(line, "\t") || strings.HasPrefix(line, " ")) && len(fields) > 0 {
			fields[len(fields)-1] += "\t" + strings.TrimLeft(line, " \t")
			continue
		}
		fields = append(fields, line)
	}
	var out []string
	for _, f := range fields {
		var b strings.Builder
		for len(f) > 76 {
			i := strings.LastIndexByte(f[:76], ' ')
			if i <= 0 {
				break
			}
			b.WriteString(f[:i] + "\n")
			f = f[i:]
		}
		b.WriteString(f + "\n")
		out = append(out, b.String())
	}
	return out
}

// postacert returns the original as the sender's provider forwards it: its Received lines
// first, Message-ID replaced by the PEC identificativo and X-Riferimento-Message-ID added after
// it (as in the real envelope).
func (p *Provider) postacert(o *Original, id string) []byte {
	raw := o.Raw
	old := []byte("Message-ID: <" + o.MessageID + ">\n")
	repl := []byte("Message-ID: <" + id + ">\nX-Riferimento-Message-ID: <" + o.MessageID + ">\n")
	out := append([]byte(p.received(o, id)), bytes.Replace(raw, old, repl, 1)...)
	return out
}

func addrList(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		out = append(out, formatAddr(localOf(a), a))
	}
	return out
}

// Envelope returns the busta di trasporto (transport envelope, posta-certificata) the sender's
// provider (p) sends, as delivered to Params.Recipient's mailbox (default the first recipient):
// the original attached as postacert.eml with its Message-ID replaced by the identificativo,
// X-Tiporicevuta from the original (or Params.ReceiptType). At defaults to the original's date
// plus one second. The signed part is the same for every recipient; only the trace headers
// differ.
func (p *Provider) Envelope(prm Params) (*Generated, error) {
	o, id, err := p.needOriginal(&prm)
	if err != nil {
		return nil, err
	}
	at := defaultAt(&prm, o, time.Second)
	rt := prm.ReceiptType
	if rt == "" {
		rt = o.ReceiptType
	}
	rcpt := prm.Recipient
	if rcpt == "" {
		rcpt = firstRecipient(o)
	}
	key := "posta-certificata|" + id + "|" + at.String() + string(rt)
	s := &spec{kind: pec.KindPostaCertificata, at: at, signingTime: prm.SigningTime, key: key,
		messageID: id, deliveredTo: rcpt, returnPath: o.From}
	s.headers = refold(p.received(o, id))
	s.headers = append(s.headers,
		"Subject: "+headerEncode("POSTA CERTIFICATA: "+o.Subject)+"\n",
		"X-Riferimento-Message-ID: <"+o.MessageID+">\n",
		"Date: "+rfc5322Date(at)+"\n",
		"Reply-To: "+o.ReplyTo+"\n")
	if len(o.To) > 0 {
		s.headers = append(s.headers, foldList("To", addrList(o.To)))
	}
	if len(o.Cc) > 0 {
		s.headers = append(s.headers, foldList("Cc", addrList(o.Cc)))
	}
	s.headers = append(s.headers,
		"X-Trasporto: posta-certificata\n",
		"From: \"Per conto di: "+o.From+"\" <"+p.Address()+">\n",
		"X-Tiporicevuta: "+string(rt)+"\n")
	s.text, s.html = texts(pec.KindPostaCertificata, p.textData(o, id, at))
	s.attach = p.postacert(o, id)
	d := p.daticert(pec.KindPostaCertificata, o, id, at)
	d.Ricevuta = rt
	g := &Generated{Name: prm.Name, ID: id, MsgID: o.MessageID, Recipient: rcpt, ReceiptType: rt}
	if g.Name == "" {
		g.Name = "posta-certificata-" + string(rt)
	}
	return p.finish(s, g, d)
}

// DefaultReceiptType is the delivery receipt type for recipient rcpt of o: what the sender
// asked (X-TipoRicevuta), except that with completa the Cc recipients get a sintetica receipt.
func DefaultReceiptType(o *Original, rcpt string) pec.ReceiptType {
	rt := o.ReceiptType
	if rt == "" {
		rt = pec.ReceiptCompleta
	}
	if rt == pec.ReceiptCompleta && !slices.Contains(o.To, rcpt) && slices.Contains(o.Cc, rcpt) {
		return pec.ReceiptSintetica
	}
	return rt
}

// Delivery returns the ricevuta di avvenuta consegna the recipient's provider (p) sends the
// sender for Params.Recipient (default the first recipient). Type (Params.ReceiptType, default
// [DefaultReceiptType]): completa attaches the whole original as postacert.eml, breve attaches it
// with every named part replaced by a <filename>.hash part ([BreveHash]), sintetica attaches
// nothing. At defaults to the original's date plus four seconds.
func (p *Provider) Delivery(prm Params) (*Generated, error) {
	o, id, err := p.needOriginal(&prm)
	if err != nil {
		return nil, err
	}
	at := defaultAt(&prm, o, 4*time.Second)
	rcpt := prm.Recipient
	if rcpt == "" {
		rcpt = firstRecipient(o)
	}
	rt := prm.ReceiptType
	if rt == "" {
		rt = DefaultReceiptType(o, rcpt)
	}
	key := "avvenuta-consegna|" + id + "|" + at.String() + "|" + rcpt + "|" + string(rt)
	s := &spec{kind: pec.KindAvvenutaConsegna, at: at, signingTime: prm.SigningTime, key: key,
		messageID: p.receiptMessageID(at, key), deliveredTo: o.From, returnPath: p.Address()}
	s.headers = receiptHeaders("CONSEGNA: "+o.Subject, o.MessageID, at, o.From, "avvenuta-consegna", nil, p.Address())
	td := p.textData(o, id, at)
	td.recipient, td.receipt = rcpt, rt
	s.text, s.html = texts(pec.KindAvvenutaConsegna, td)
	g := &Generated{Name: prm.Name, ID: id, MsgID: o.MessageID, Recipient: rcpt, ReceiptType: rt}
	switch rt {
	case pec.ReceiptCompleta:
		s.attach = p.postacert(o, id)
	case pec.ReceiptBreve:
		s.attach, g.HashParts = breveCopy(p.postacert(o, id))
	case pec.ReceiptSintetica:
	default:
		return nil, fmt.Errorf("%w: receipt type %q", ErrInvalid, rt)
	}
	d := p.daticert(pec.KindAvvenutaConsegna, o, id, at)
	d.Ricevuta, d.Consegna = rt, rcpt
	if g.Name == "" {
		g.Name = "avvenuta-consegna-" + string(rt)
	}
	return p.finish(s, g, d)
}

// DefaultErrorDetail returns a realistic errore-esteso for a non-delivery code.
func (p *Provider) DefaultErrorDetail(code pec.ErrorCode) string {
	switch code {
	case pec.ErrNoDominio:
		return "5.1.2 - " + p.Info.Name + " - dominio non valido"
	case pec.ErrVirus:
		return "5.7.1 - " + p.Info.Name + " - virus rilevato (Eicar-Test-Signature)"
	case pec.ErrAltro:
		return "5.1.1 - " + p.Info.Name + " - user unknown"
	default:
		return "5.1.1 - " + p.Info.Name + " - indirizzo non valido"
	}
}

// NonDelivery returns the avviso di mancata consegna (errore-consegna) for Params.Recipient
// (default the first recipient) with errore Params.Error (default no-dest; Params.Virus implies
// virus, with X-VerificaSicurezza: errore and the "PER VIRUS" subject) and errore-esteso
// Params.ErrorDetail (default [Provider.DefaultErrorDetail]). In a conversation the recipient's
// provider issues it, except for no-dominio (the sender's provider). At defaults to the
// original's date plus five seconds.
func (p *Provider) NonDelivery(prm Params) (*Generated, error) {
	o, id, err := p.needOriginal(&prm)
	if err != nil {
		return nil, err
	}
	at := defaultAt(&prm, o, 5*time.Second)
	rcpt := prm.Recipient
	if rcpt == "" {
		rcpt = firstRecipient(o)
	}
	code := prm.Error
	if code == "" {
		code = pec.ErrNoDest
		if prm.Virus {
			code = pec.ErrVirus
		}
	}
	virus := prm.Virus || code == pec.ErrVirus
	detail := prm.ErrorDetail
	if detail == "" {
		detail = p.DefaultErrorDetail(code)
	}
	subject := "AVVISO DI MANCATA CONSEGNA: "
	var extra []string
	if virus {
		subject = "AVVISO DI MANCATA CONSEGNA PER VIRUS: "
		extra = append(extra, "X-VerificaSicurezza: errore\n")
	}
	key := "errore-consegna|" + id + "|" + at.String() + "|" + rcpt + "|" + string(code)
	s := &spec{kind: pec.KindErroreConsegna, at: at, signingTime: prm.SigningTime, key: key,
		messageID: p.receiptMessageID(at, key), deliveredTo: o.From, returnPath: p.Address()}
	s.headers = receiptHeaders(subject+o.Subject, o.MessageID, at, o.From, "errore-consegna", extra, p.Address())
	td := p.textData(o, id, at)
	td.recipient, td.detail, td.virus = rcpt, detail, virus
	s.text, s.html = texts(pec.KindErroreConsegna, td)
	d := p.daticert(pec.KindErroreConsegna, o, id, at)
	d.Errore, d.Consegna, d.ErroreEsteso = code, rcpt, detail
	g := &Generated{Name: prm.Name, ID: id, MsgID: o.MessageID, Recipient: rcpt, Error: code}
	if g.Name == "" {
		g.Name = "errore-consegna-" + string(code)
	}
	return p.finish(s, g, d)
}

// NonDeliveryWarning returns the preavviso di mancata consegna the sender's provider (p) sends
// when no delivery receipt arrived within 12 hours (errore Params.Error, default altro, with
// errore-esteso "4.4.7 - ..."). At defaults to the original's date plus 12 hours.
func (p *Provider) NonDeliveryWarning(prm Params) (*Generated, error) {
	o, id, err := p.needOriginal(&prm)
	if err != nil {
		return nil, err
	}
	at := defaultAt(&prm, o, 12*time.Hour)
	rcpt := prm.Recipient
	if rcpt == "" {
		rcpt = firstRecipient(o)
	}
	code := prm.Error
	if code == "" {
		code = pec.ErrAltro
	}
	detail := prm.ErrorDetail
	if detail == "" {
		detail = "4.4.7 - " + p.Info.Name + " - tempo massimo di consegna superato"
	}
	key := "preavviso-errore-consegna|" + id + "|" + at.String() + "|" + rcpt
	s := &spec{kind: pec.KindPreavvisoErroreConsegna, at: at, signingTime: prm.SigningTime, key: key,
		messageID: p.receiptMessageID(at, key), deliveredTo: o.From, returnPath: p.Address()}
	s.headers = receiptHeaders("AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO: "+o.Subject, o.MessageID, at, o.From,
		"preavviso-errore-consegna", nil, p.Address())
	td := p.textData(o, id, at)
	td.recipient, td.detail = rcpt, detail
	s.text, s.html = texts(pec.KindPreavvisoErroreConsegna, td)
	d := p.daticert(pec.KindPreavvisoErroreConsegna, o, id, at)
	d.Errore, d.Consegna, d.ErroreEsteso = code, rcpt, detail
	return p.finish(s, &Generated{Name: prm.Name, ID: id, MsgID: o.MessageID, Recipient: rcpt, Error: code}, d)
}

// Anomaly returns the busta di anomalia the recipient's provider (p) delivers when it receives a
// message it cannot certify (from an ordinary mailbox, or a damaged PEC message): X-Trasporto:
// errore, subject "ANOMALIA MESSAGGIO: ", From "Per conto di: <sender>", no daticert.xml, the
// received message (Params.Received, default Params.Original.Raw) attached whole as
// postacert.eml. At defaults to the received Date plus three seconds (or Params.At).
func (p *Provider) Anomaly(prm Params) (*Generated, error) {
	recv := prm.Received
	if recv == nil && prm.Original != nil {
		recv = prm.Original.Raw
	}
	if len(recv) == 0 {
		return nil, fmt.Errorf("%w: Anomaly needs Params.Received or Params.Original", ErrInvalid)
	}
	if len(recv) > MaxAttachmentSize {
		return nil, fmt.Errorf("%w: received message larger than %d bytes", ErrInvalid, MaxAttachmentSize)
	}
	recv = toLF(recv)
	msg, err := mail.ReadMessage(bytes.NewReader(recv))
	if err != nil {
		return nil, fmt.Errorf("%w: received message: %v", ErrInvalid, err)
	}
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		subject = msg.Header.Get("Subject")
	}
	from := msg.Header.Get("From")
	if a, err := mail.ParseAddress(from); err == nil {
		from = a.Address
	}
	var to []string
	if l, err := msg.Header.AddressList("To"); err == nil {
		for _, a := range l {
			to = append(to, a.Address)
		}
	}
	var cc []string
	if l, err := msg.Header.AddressList("Cc"); err == nil {
		for _, a := range l {
			cc = append(cc, a.Address)
		}
	}
	msgid := strings.Trim(strings.TrimSpace(msg.Header.Get("Message-ID")), "<>")
	at := prm.At.Truncate(time.Second)
	if at.IsZero() {
		if d, err := msg.Header.Date(); err == nil {
			at = d.Add(3 * time.Second)
		} else {
			at = p.opts.Time
		}
	}
	rcpt := prm.Recipient
	if rcpt == "" && len(to) > 0 {
		rcpt = to[0]
	}
	if rcpt == "" && len(cc) > 0 {
		rcpt = cc[0]
	}
	key := "anomalia|" + msgid + "|" + at.String() + "|" + BreveHash(recv)
	id := p.pecID(at, key)
	s := &spec{kind: pec.KindAnomalia, at: at, signingTime: prm.SigningTime, key: key,
		messageID: id, deliveredTo: rcpt, returnPath: from}
	s.headers = []string{
		"Subject: " + headerEncode("ANOMALIA MESSAGGIO: "+subject) + "\n",
	}
	if msgid != "" {
		s.headers = append(s.headers, "X-Riferimento-Message-ID: <"+msgid+">\n")
	}
	s.headers = append(s.headers, "Date: "+rfc5322Date(at)+"\n")
	if len(to) > 0 {
		s.headers = append(s.headers, foldList("To", to))
	}
	if len(cc) > 0 {
		s.headers = append(s.headers, foldList("Cc", cc))
	}
	s.headers = append(s.headers,
		"X-Trasporto: errore\n",
		"From: \"Per conto di: "+from+"\" <"+p.Address()+">\n")
	o := &Original{From: from, To: to, Cc: cc, Subject: subject}
	td := p.textData(o, id, at)
	td.detail = "il messaggio ricevuto non è un messaggio di posta certificata valido"
	s.text, s.html = texts(pec.KindAnomalia, td)
	if !bytes.HasSuffix(recv, []byte("\n")) {
		recv = append(slices.Clone(recv), '\n')
	}
	s.attach = recv
	return p.finish(s, &Generated{Name: prm.Name, ID: id, MsgID: msgid, Recipient: rcpt}, nil)
}
