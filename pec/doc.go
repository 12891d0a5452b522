// Package pec parses Italian certified e-mail (PEC, Posta Elettronica Certificata; RFC 6109)
// messages: raw RFC 5322 bytes in, a typed [Message] plus typed errors out.
//
// It owns the MIME walk over the exact bytes (LF or CRLF, any transfer encoding, nested messages),
// classification into message kinds, the daticert.xml model, the PEC headers and the parts a
// court expert needs: the signed entity as the provider signed it, the signature, the inner
// postacert.eml and the .hash parts of breve receipts. It does no I/O and no logging, never
// panics, and bounds every input by [Limits]. Signature verification lives in package
// [github.com/pecarchive/pecarchive/pec/smime].
//
// # Parsing
//
// [Parse] always returns a *Message. Malformed input yields what could be recovered plus
// Message.Problems, each a *[ParseError] wrapping one of the sentinel errors (errors.Is works on
// them); Parse returns an error only when it refuses the input whole ([ErrTooLarge]).
//
// The MIME walker works on offsets into the raw input and copies nothing it does not have to:
// the signed entity of a multipart/signed message ([Signature].Content) is the sub-slice of the
// raw input between the line end of the first boundary line and the line end before the next one
// (RFC 1847), with the line ends the file has; [Canonicalize] turns it into the CRLF form the
// provider signed. Bodies are transfer-decoded only for the parts the result needs: daticert.xml,
// the signature, postacert.eml and .hash parts.
//
// # Classification
//
// The daticert.xml tipo is authoritative. Without daticert.xml the kind comes from X-Ricevuta or
// X-Trasporto (X-Trasporto: errore is an anomaly envelope, [KindAnomalia]); header names are
// matched case-insensitively (Aruba writes X-Tiporicevuta). Headers that disagree with
// daticert.xml are reported as [ErrInconsistent]; a PEC message without daticert.xml as
// [ErrDaticertMissing]; an unsigned one as [ErrSignatureMissing]. A message with neither PEC
// headers nor daticert.xml is [KindNotPEC], which is not a problem. daticert.xml is found by
// name (daticert.xml or certdata.xml, in a name or filename parameter) or, when unnamed, by the
// application/xml media type, anywhere in the message's own MIME tree; attached messages
// (message/rfc822) are never looked into for classification, so a receipt forwarded as an
// attachment leaves the forwarding message not-pec. postacert.eml is the message/rfc822 part
// named so, else the first attached message (for an anomaly envelope: the received message).
// HashParts are read only for delivery receipts: from inside postacert.eml of a breve receipt,
// and from the receipt's own tree where a provider puts them there.
//
// # daticert.xml
//
// [ParseDaticert] reads daticert.xml on its own. Documents in the plain shape providers write are
// read by a small scanner; anything else goes through an encoding/xml token loop, which is the
// reference (a fuzz target checks that both agree). DTDs and entity declarations are refused
// with [ErrXMLForbidden]; element depth and document size are bounded; the XML declaration's
// encoding is honoured (ISO-8859-1 and the other charsets of
// github.com/emersion/go-message/charset), and an undeclared non-UTF-8 document is read as
// ISO-8859-1 with an [ErrCharset] problem. Stray text between elements (seen in real traffic) is
// reported as [ErrDaticert] and skipped; everything read before a fatal error is kept. The time
// (data: giorno, ora, zona) becomes a time.Time in the fixed zone the document gives.
//
// # Opaque signatures
//
// For an application/pkcs7-mime (signed-data, smime.p7m) message, Signature.Content is nil and
// Signature.CMS holds the decoded blob. Parse reads just enough BER to extract the encapsulated
// content into Signature.Encapsulated and walks it as it would walk the signed entity of a
// multipart/signed message; when that fails, an [ErrMalformedSignature] problem is reported and
// verification is left to package smime.
package pec
