package smime

import (
	"crypto/x509"
	"net/mail"
	"strings"
)

// pecPolicyArc is the AgID policy arc for PEC provider certificates (1.3.76.16.3.1; providers'
// certificates carry 1.3.76.16.3.1.1).
const pecPolicyArc = "1.3.76.16.3.1"

// profileReasons checks the signer certificate against the PEC provider certificate profile
// (RFC 6109 and the AgID rules): digitalSignature key usage, not a CA, policy under the PEC arc
// when policies are present, and an rfc822Name equal to the From address. It returns the
// reasons and the e-mail address to report as the signer's.
func profileReasons(c *x509.Certificate, from string, add func(string)) (email string) {
	if c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		add(ReasonBadKeyUsage)
	}
	if c.BasicConstraintsValid && c.IsCA {
		add(ReasonIsCA)
	}
	if len(c.Policies) > 0 || len(c.PolicyIdentifiers) > 0 {
		ok := false
		for _, p := range c.Policies {
			s := p.String()
			ok = ok || s == pecPolicyArc || strings.HasPrefix(s, pecPolicyArc+".")
		}
		for _, p := range c.PolicyIdentifiers {
			s := p.String()
			ok = ok || s == pecPolicyArc || strings.HasPrefix(s, pecPolicyArc+".")
		}
		if !ok {
			add(ReasonBadPolicy)
		}
	}
	if len(c.EmailAddresses) == 0 {
		add(ReasonNoEmail)
		return ""
	}
	for _, e := range c.EmailAddresses {
		if from != "" && strings.EqualFold(e, from) {
			return e
		}
	}
	add(ReasonEmailMismatch)
	return c.EmailAddresses[0]
}

// normFrom returns the bare address of a From value that may be a full header value
// ("Name" <addr>), lower-cased; "" when there is none.
func normFrom(from string) string {
	from = strings.TrimSpace(from)
	if strings.ContainsAny(from, "<\" ") {
		if a, err := mail.ParseAddress(from); err == nil {
			from = a.Address
		} else if i, j := strings.LastIndexByte(from, '<'), strings.LastIndexByte(from, '>'); i >= 0 && j > i {
			from = strings.TrimSpace(from[i+1 : j])
		}
	}
	return strings.ToLower(from)
}

// fromDomain returns the domain of an address, "" when there is none.
func fromDomain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return normDomain(addr[i+1:])
}
