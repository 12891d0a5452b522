// Package pectest is a test PEC provider: it produces realistic, signed PEC traffic for the tests
// of other packages, for the demo and for load tests.
//
// It owns a CA hierarchy shaped like the real one (a root, a name-constrained intermediate like
// AgID CA1, provider signer certificates with the real PEC profile, plus deliberately defective
// signers), a CMS SignedData encoder (detached S/MIME or opaque, SHA-1 or SHA-256 digest,
// settable signing time) and generators for every PEC message kind, laid out byte for byte like
// real provider messages (Aruba PEC layout), with LF or CRLF line ends.
//
// Everything is deterministic: the same seed and inputs give byte-identical output. RSA keys are
// derived from the seed and cached per process.
//
// pectest is for tests only: its keys are derived from public seeds and its certificates must
// never be trusted outside tests.
package pectest
