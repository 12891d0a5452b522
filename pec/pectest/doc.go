// Package pectest is a test PEC provider: it produces realistic, signed PEC traffic for the tests
// of other packages, for the demo and for load tests. It is for tests only: its keys are derived
// from public seeds and its certificates must never be trusted outside tests.
//
// It owns:
//
//   - A CA hierarchy shaped like the real one ([NewCA]): a root (like Actalis Authentication Root
//     CA) and a name-constrained intermediate (like AgID CA1: permitted rfc822Name, dNSName and
//     directoryName subtrees for the provider domains, all IP addresses excluded, policy
//     1.3.76.16.3.1), issuing provider signer certificates with the real profile ([CA.NewSigner]):
//     provider organisation in the subject, posta-certificata@<domain> as rfc822Name, KeyUsage
//     digitalSignature critical, no BasicConstraints, policy 1.3.76.16.3.1.1 with CPS, EKU
//     emailProtection, OCSP and CRL locations, RSA-2048, three years. A [Defect] gives expired,
//     not-yet-valid, untrusted (look-alike root), wrong-SAN, outside-constraints, CA-flag,
//     no-digitalSignature and forged signers. CA.Root / CA.Intermediate are *x509.Certificate
//     (DER in .Raw); CA.Roots, RootPEM, IntermediatePEM, ChainPEM build trust stores.
//   - A CMS SignedData encoder ([Signer.Sign]): DER, detached or opaque, SHA-1 (like real
//     providers) or SHA-256 digest, signed attributes contentType, signingTime (settable),
//     messageDigest and sMIMECapabilities, signer certificate then intermediate.
//   - Generators for every PEC message kind ([Provider.Acceptance], [Provider.NonAcceptance],
//     [Provider.TakingCharge], [Provider.VirusDetected], [Provider.Envelope], [Provider.Delivery],
//     [Provider.NonDelivery], [Provider.NonDeliveryWarning], [Provider.Anomaly]) about an
//     original built by [Provider.Original], laid out byte for byte like the real Aruba envelope
//     (the test TestFidelityRealEnvelope rebuilds its signed part exactly), with LF or CRLF line
//     ends; whole exchanges ([Provider.Conversation]); one example of everything ([AllKinds]);
//     a typical receipt for benchmarks ([TypicalDeliveryReceipt]); damage after signing
//     ([Damage], [Tamper], [Truncate]); a provider index ([IndexLDIF], [CA.SignIndex]).
//
// Every generated message comes as a [Generated] carrying its bytes and what a test should
// expect: kind, identificativo, msgid, recipient, receipt type, errore, daticert, postacert, the
// canonical signed entity, signing time, and whether the signature should be valid and trusted
// (verifying with CA.Roots() as of the signing time, signer e-mail equal to From).
//
// Everything is deterministic: the same seed and inputs give byte-identical output, whatever the
// call order. RSA keys are derived from the seed (crypto/rsa.GenerateKey ignores custom random
// sources) in about 40 ms each and cached per process.
package pectest
