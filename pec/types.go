package pec

import "time"

// Kind is the kind of a PEC message: the daticert.xml tipo, [KindAnomalia] for an anomaly
// envelope, or [KindNotPEC].
type Kind string

const (
	KindAccettazione            Kind = "accettazione"
	KindNonAccettazione         Kind = "non-accettazione"
	KindPresaInCarico           Kind = "presa-in-carico"
	KindAvvenutaConsegna        Kind = "avvenuta-consegna"
	KindPostaCertificata        Kind = "posta-certificata"
	KindErroreConsegna          Kind = "errore-consegna"
	KindPreavvisoErroreConsegna Kind = "preavviso-errore-consegna"
	KindRilevazioneVirus        Kind = "rilevazione-virus"
	KindAnomalia                Kind = "anomalia"
	KindNotPEC                  Kind = "not-pec"
)

// Kinds lists every kind, in the order of the table in RFC 6109.
var Kinds = []Kind{
	KindAccettazione, KindNonAccettazione, KindPresaInCarico, KindAvvenutaConsegna,
	KindPostaCertificata, KindErroreConsegna, KindPreavvisoErroreConsegna, KindRilevazioneVirus,
	KindAnomalia, KindNotPEC,
}

// IsReceipt reports whether k is a receipt or notice issued by a provider (not an envelope).
func (k Kind) IsReceipt() bool {
	switch k {
	case KindAccettazione, KindNonAccettazione, KindPresaInCarico, KindAvvenutaConsegna,
		KindErroreConsegna, KindPreavvisoErroreConsegna, KindRilevazioneVirus:
		return true
	}
	return false
}

// ReceiptType is the type of delivery receipt the sender asked for (X-TipoRicevuta, daticert
// <ricevuta tipo>).
type ReceiptType string

const (
	ReceiptCompleta  ReceiptType = "completa"
	ReceiptBreve     ReceiptType = "breve"
	ReceiptSintetica ReceiptType = "sintetica"
)

// ErrorCode is the daticert errore attribute.
type ErrorCode string

const (
	ErrNessuno   ErrorCode = "nessuno"
	ErrNoDest    ErrorCode = "no-dest"
	ErrNoDominio ErrorCode = "no-dominio"
	ErrVirus     ErrorCode = "virus"
	ErrAltro     ErrorCode = "altro"
)

// RecipientType is the daticert destinatari tipo: a PEC mailbox or an ordinary one.
type RecipientType string

const (
	RecipientCertificato RecipientType = "certificato"
	RecipientEsterno     RecipientType = "esterno"
)

// Recipient is one daticert destinatari element.
type Recipient struct {
	Address string
	Type    RecipientType
}

// Daticert is the content of daticert.xml (certdata.xml in RFC 6109). Strings are trimmed of
// surrounding white space; absent elements are empty.
type Daticert struct {
	Tipo             Kind      // postacert tipo attribute, as written (an unknown value is kept)
	Errore           ErrorCode // postacert errore attribute; "nessuno" when absent
	Mittente         string
	Destinatari      []Recipient
	Risposte         string
	Oggetto          string
	GestoreEmittente string
	// Data is giorno + ora in the zona offset (for example +0200), as a time with that fixed zone.
	// Zero when absent or unparseable (then a problem is reported).
	Data           time.Time
	Identificativo string
	// MsgID is the msgid element without the surrounding angle brackets.
	MsgID        string
	Ricevuta     ReceiptType // ricevuta tipo attribute
	Consegna     string
	Ricezione    []string
	ErroreEsteso string
}

// Headers are the top-level headers of a message that matter for PEC, decoded (RFC 2047 for
// Subject and display names). Header names are matched case-insensitively.
type Headers struct {
	MessageID             string // without angle brackets
	From                  string // the address only, lower-cased domain
	FromName              string // display name, decoded
	To                    []string
	Cc                    []string
	Date                  time.Time // zero when absent or unparseable
	Subject               string    // decoded
	XRicevuta             string    // lower-cased value
	XTrasporto            string    // lower-cased value
	XTipoRicevuta         string    // lower-cased value
	XRiferimentoMessageID string    // without angle brackets
	XVerificaSicurezza    string
	XMittente             string
}

// HashPart is one part of a breve delivery receipt that replaces an original attachment: the
// attachment's file name (without ".hash") and the SHA-1 hex digest it carries.
type HashPart struct {
	Name string // original file name, the part name with the ".hash" suffix removed
	SHA1 string // 40 lower-case hex characters as written in the part
}

// SignatureForm says how a message is signed.
type SignatureForm string

const (
	SignatureNone     SignatureForm = ""
	SignatureDetached SignatureForm = "multipart/signed"       // detached CMS in a multipart/signed
	SignatureOpaque   SignatureForm = "application/pkcs7-mime" // signed-data with encapsulated content
)

// Signature is what a verifier needs from a signed message: the exact signed entity and the CMS
// blob. Content and CMS alias the raw input; callers must not modify them.
type Signature struct {
	Form SignatureForm
	// Content is the signed entity exactly as it appears in the raw message (between the first
	// boundary line's CRLF/LF and the CRLF/LF before the next boundary line). It may use LF line
	// ends; verifiers must canonicalise it to CRLF (see [Canonicalize]). Nil for opaque signatures.
	Content []byte
	// CMS is the DER (or BER) of the PKCS#7 / CMS SignedData, transfer-decoded.
	CMS []byte
	// Micalg is the micalg parameter of multipart/signed, lower-cased ("sha1", "sha-256", ...).
	Micalg string
	// Protocol is the protocol parameter of multipart/signed or the pkcs7-mime content type.
	Protocol string
	// Encapsulated is, for an opaque signature, the encapsulated content (eContent) that Parse
	// extracted from the CMS and walked for daticert.xml and postacert.eml; nil when it could not
	// be extracted (a problem is reported) and for detached signatures. It aliases CMS unless the
	// content was BER-segmented.
	Encapsulated []byte
}

// Message is a parsed PEC (or non-PEC) message. Byte slices alias the raw input where the part
// was stored without transfer encoding and are freshly decoded otherwise.
type Message struct {
	Kind     Kind
	Headers  Headers
	Daticert *Daticert // nil when the message carries no daticert.xml
	// DaticertRaw is the decoded daticert.xml bytes, nil when absent.
	DaticertRaw []byte
	// Signature is nil for an unsigned message. A multipart/signed message whose signature part
	// is missing or is not PKCS#7 has a Signature with nil CMS (and an ErrSignatureMissing
	// problem).
	Signature *Signature
	// Postacert is the inner postacert.eml exactly as carried (transfer-decoded), nil when absent.
	// For an anomaly envelope it is the received message.
	Postacert []byte
	// HashParts are the .hash parts of a breve delivery receipt, in order.
	HashParts []HashPart
	// Problems are the typed errors found while parsing; the fields above hold what could be
	// recovered. Each is (or wraps) a *ParseError.
	Problems []error
}

// ReceiptType returns the receipt type from daticert, falling back to X-TipoRicevuta.
func (m *Message) ReceiptType() ReceiptType {
	if m.Daticert != nil && m.Daticert.Ricevuta != "" {
		return m.Daticert.Ricevuta
	}
	if m.Kind == KindAvvenutaConsegna || m.Kind == KindPostaCertificata {
		return ReceiptType(m.Headers.XTipoRicevuta)
	}
	return ""
}
