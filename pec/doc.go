// Package pec parses Italian certified e-mail (PEC, Posta Elettronica Certificata; RFC 6109)
// messages: raw RFC 5322 bytes in, a typed [Message] plus typed errors out.
//
// It owns the MIME walk over the exact bytes (LF or CRLF, any transfer encoding, nested messages),
// classification into message kinds, the daticert.xml model, the PEC headers and the parts a
// court expert needs: the signed entity as the provider signed it, the signature, the inner
// postacert.eml and the .hash parts of breve receipts. It does no I/O and no logging, never
// panics, and bounds every input by [Limits]. Signature verification lives in package
// [github.com/pecarchive/pecarchive/pec/smime].
package pec
