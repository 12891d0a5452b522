package verdict

import (
	"fmt"
	"strings"
	"time"

	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/smime"
)

// kindNames names each kind of receipt in Italian and in English.
var kindNames = map[pec.Kind][2]string{
	pec.KindAccettazione:            {"ricevuta di accettazione", "acceptance receipt"},
	pec.KindNonAccettazione:         {"avviso di non accettazione", "non-acceptance notice"},
	pec.KindAvvenutaConsegna:        {"ricevuta di avvenuta consegna", "delivery receipt"},
	pec.KindErroreConsegna:          {"avviso di mancata consegna", "non-delivery notice"},
	pec.KindPreavvisoErroreConsegna: {"preavviso di mancata consegna", "non-delivery warning"},
	pec.KindPresaInCarico:           {"ricevuta di presa in carico", "taking-charge receipt"},
	pec.KindRilevazioneVirus:        {"avviso di rilevazione virus", "virus notice"},
}

func kindName(k pec.Kind, lang int) string {
	if n, ok := kindNames[k]; ok {
		return n[lang]
	}
	return string(k)
}

// aKind names k with the indefinite article.
func aKind(k pec.Kind, lang int) string {
	n := kindName(k, lang)
	if lang == 0 {
		if strings.HasPrefix(n, "ricevuta") {
			return "una " + n
		}
		return "un " + n
	}
	if strings.ContainsRune("aeiou", rune(n[0])) {
		return "an " + n
	}
	return "a " + n
}

// when formats a daticert time in its own zone, or says it is unknown.
func when(t time.Time, lang int) string {
	if t.IsZero() {
		return [2]string{"in data sconosciuta", "at an unknown time"}[lang]
	}
	return t.Format("2006-01-02 15:04:05 -07:00")
}

// provider names the provider that issued m.
func provider(m *Message, lang int) string {
	if p := strings.TrimSpace(m.Provider); p != "" {
		return p
	}
	return [2]string{"(gestore non indicato)", "(provider not named)"}[lang]
}

// reasonNames say in words, in Italian and in English, what a verification reason means, for a
// person who does not know the codes (which follow in brackets, for whoever checks them).
var reasonNames = map[string][2]string{
	smime.ReasonNoSignature:          {"il messaggio non è firmato", "the message is not signed"},
	smime.ReasonMalformedCMS:         {"la firma è illeggibile", "the signature cannot be read"},
	smime.ReasonBadSignature:         {"la firma non corrisponde alla chiave del firmatario", "the signature does not match the signer's key"},
	smime.ReasonDigestMismatch:       {"il contenuto è stato alterato dopo la firma", "the content was altered after signing"},
	smime.ReasonUnsupportedAlgorithm: {"la firma usa un algoritmo non ammesso", "the signature uses an algorithm that is not accepted"},
	smime.ReasonNoSignerCertificate:  {"manca il certificato del firmatario", "the signer's certificate is missing"},
	smime.ReasonMultipleSigners:      {"la firma ha più firmatari", "the signature has more than one signer"},
	smime.ReasonExpired:              {"il certificato era scaduto alla data della firma", "the certificate had expired at the signing time"},
	smime.ReasonNotYetValid:          {"il certificato non era ancora valido alla data della firma", "the certificate was not yet valid at the signing time"},
	smime.ReasonUntrusted:            {"il certificato non è stato emesso da un'autorità riconosciuta", "the certificate was not issued by a recognised authority"},
	smime.ReasonNameConstraints:      {"il certificato è fuori dai nomi che la sua autorità può certificare", "the certificate is outside the names its authority may certify"},
	smime.ReasonBadChain:             {"la catena dei certificati non è valida", "the certificate chain is not valid"},
	smime.ReasonBadExtKeyUsage:       {"il certificato non è adatto alla firma della posta", "the certificate is not fit for signing mail"},
	smime.ReasonBadKeyUsage:          {"il certificato non è adatto alla firma", "the certificate is not fit for signing"},
	smime.ReasonIsCA:                 {"il certificato è quello di un'autorità, non di un gestore", "the certificate is an authority's, not a provider's"},
	smime.ReasonBadPolicy:            {"il certificato non è di un gestore PEC", "the certificate is not a PEC provider's"},
	smime.ReasonNoEmail:              {"il certificato non riporta alcun indirizzo", "the certificate names no address"},
	smime.ReasonEmailMismatch:        {"l'indirizzo del certificato non è quello del mittente", "the certificate's address is not the sender's"},
	smime.ReasonNotInIndex:           {"il firmatario non è nell'indice dei gestori PEC", "the signer is not in the index of PEC providers"},
	smime.ReasonIndexCertMismatch:    {"il certificato differisce da quello dell'indice dei gestori PEC", "the certificate differs from the one in the index of PEC providers"},
	smime.ReasonDomainNotManaged:     {"il dominio del mittente non è gestito dal firmatario", "the sender's domain is not managed by the signer"},
	smime.ReasonCanceled:             {"la verifica è stata interrotta", "the verification was interrupted"},
}

// reasonName says what reason means in words, then its code.
func reasonName(reason string, lang int) string {
	if n, ok := reasonNames[reason]; ok {
		return n[lang] + " (" + reason + ")"
	}
	return reason
}

// whyFailed says why m's signature does not count: the reasons against it, not its warnings.
func whyFailed(m *Message, lang int) string {
	var what string
	switch {
	case !m.Valid:
		what = [2]string{"firma non valida", "signature not valid"}[lang]
	case !m.Trusted:
		what = [2]string{"firma non attendibile", "signature not trusted"}[lang]
	default:
		what = [2]string{"firma contestata", "signature disputed"}[lang]
	}
	var against []string
	for _, r := range m.Reasons {
		if !smime.IsWarning(r) {
			against = append(against, reasonName(r, lang))
		}
	}
	if len(against) > 0 {
		what += ": " + strings.Join(against, ", ")
	}
	return what
}

// caveat says what a person relying on the deciding receipt d should know of its signature
// although it counts: it carries no signing time, or one after it was received (it was then
// verified as of when the archive received it); "" when there is nothing to say.
func caveat(d *Message, lang int) string {
	for _, r := range d.Reasons {
		switch r {
		case smime.ReasonSignedAfterReceipt:
			return [2]string{
				"; nota: la data della firma è successiva alla ricezione, quindi la firma è stata verificata alla data di ricezione (" + r + ")",
				"; note: its signing time is after it was received, so its signature was verified as of its receipt (" + r + ")"}[lang]
		case smime.ReasonNoSigningTime:
			return [2]string{
				"; nota: la firma non indica quando è stata apposta, quindi è stata verificata alla data di ricezione (" + r + ")",
				"; note: its signature does not say when it was made, so it was verified as of its receipt (" + r + ")"}[lang]
		}
	}
	return ""
}

// receiptType names a delivery receipt's type in brackets, or nothing when it is unknown.
func receiptType(d *Message) string {
	if d.ReceiptType == "" {
		return ""
	}
	return " (" + string(d.ReceiptType) + ")"
}

// errore describes the error of a non-delivery notice.
func errore(m *Message) string {
	s := string(m.Errore)
	if s == "" {
		s = "?"
	}
	if e := strings.TrimSpace(m.ErroreEsteso); e != "" {
		s += ", " + e
	}
	return s
}

// explain returns the one-sentence explanations of r in Italian and in English. failed is the
// strongest receipt that fails verification and claimed more than what decided, or -1.
func explain(r *Recipient, receipts []Message, failed int) (it, en string) {
	a := r.Address
	var d *Message
	if r.Deciding >= 0 {
		d = &receipts[r.Deciding]
	}
	switch r.Verdict {
	case Delivered:
		it = fmt.Sprintf("Consegnato a %s il %s: %s%s del gestore %s, con firma valida e attendibile",
			a, when(d.DaticertTime, 0), kindName(d.Kind, 0), receiptType(d), provider(d, 0))
		en = fmt.Sprintf("Delivered to %s on %s: %s%s from provider %s, its signature valid and trusted",
			a, when(d.DaticertTime, 1), kindName(d.Kind, 1), receiptType(d), provider(d, 1))
	case NotDelivered:
		it = fmt.Sprintf("Non consegnato a %s: %s emesso dal gestore %s il %s (errore %s), con firma valida e attendibile",
			a, kindName(d.Kind, 0), provider(d, 0), when(d.DaticertTime, 0), errore(d))
		en = fmt.Sprintf("Not delivered to %s: %s from provider %s on %s (error %s), its signature valid and trusted",
			a, kindName(d.Kind, 1), provider(d, 1), when(d.DaticertTime, 1), errore(d))
	case NotAccepted:
		it = fmt.Sprintf("Non accettato: il gestore del mittente %s ha rifiutato il messaggio il %s (%s, errore %s, con firma valida e attendibile), quindi non è mai stato inviato a %s",
			provider(d, 0), when(d.DaticertTime, 0), kindName(d.Kind, 0), errore(d), a)
		en = fmt.Sprintf("Not accepted: the sender's provider %s refused the message on %s (%s, error %s, its signature valid and trusted), so it was never sent to %s",
			provider(d, 1), when(d.DaticertTime, 1), kindName(d.Kind, 1), errore(d), a)
	case Warned:
		it = fmt.Sprintf("Non ancora consegnato a %s: il gestore %s ha avvisato il %s che il messaggio non è stato consegnato entro 12 ore (%s, con firma valida e attendibile)",
			a, provider(d, 0), when(d.DaticertTime, 0), kindName(d.Kind, 0))
		en = fmt.Sprintf("Not yet delivered to %s: on %s provider %s warned that the message was not delivered within 12 hours (%s, its signature valid and trusted)",
			a, when(d.DaticertTime, 1), provider(d, 1), kindName(d.Kind, 1))
	case AcceptedOnly:
		it = fmt.Sprintf("Accettato dal gestore del mittente %s il %s, ma per %s non c'è alcuna ricevuta valida di consegna o di mancata consegna",
			provider(d, 0), when(d.DaticertTime, 0), a)
		en = fmt.Sprintf("Accepted by the sender's provider %s on %s, but there is no valid delivery or non-delivery receipt for %s",
			provider(d, 1), when(d.DaticertTime, 1), a)
	case Unverified:
		f := &receipts[strongestFailed(r, receipts)]
		n := len(r.Failed)
		if n == 1 {
			it = fmt.Sprintf("Non verificabile per %s: l'unica ricevuta, %s del %s, non supera la verifica (%s)",
				a, aKind(f.Kind, 0), when(f.DaticertTime, 0), whyFailed(f, 0))
			en = fmt.Sprintf("Unverified for %s: the only receipt, %s dated %s, fails verification (%s)",
				a, aKind(f.Kind, 1), when(f.DaticertTime, 1), whyFailed(f, 1))
		} else {
			it = fmt.Sprintf("Non verificabile per %s: nessuna delle %d ricevute supera la verifica; la più rilevante, %s del %s, non la supera (%s)",
				a, n, aKind(f.Kind, 0), when(f.DaticertTime, 0), whyFailed(f, 0))
			en = fmt.Sprintf("Unverified for %s: none of its %d receipts passes verification; the strongest, %s dated %s, fails it (%s)",
				a, n, aKind(f.Kind, 1), when(f.DaticertTime, 1), whyFailed(f, 1))
		}
		failed = -1 // already said
	case Pending:
		it = fmt.Sprintf("In attesa per %s: non è stata archiviata alcuna ricevuta per questo destinatario", a)
		en = fmt.Sprintf("Pending for %s: no receipt about this recipient has been archived", a)
	}
	if d != nil {
		it += caveat(d, 0)
		en += caveat(d, 1)
	}
	if len(r.Conflicts) > 0 {
		var names [2][]string
		for _, i := range r.Conflicts {
			if i == r.Deciding {
				continue
			}
			for l := range 2 {
				names[l] = append(names[l], kindName(receipts[i].Kind, l))
			}
		}
		it += fmt.Sprintf("; attenzione: ricevute valide si contraddicono (c'è anche: %s)", strings.Join(names[0], ", "))
		en += fmt.Sprintf("; note that valid receipts contradict each other (also: %s)", strings.Join(names[1], ", "))
	}
	if failed >= 0 {
		f := &receipts[failed]
		it += fmt.Sprintf("; non si è tenuto conto di %s che non supera la verifica (%s)", aKind(f.Kind, 0), whyFailed(f, 0))
		en += fmt.Sprintf("; %s was disregarded because it fails verification (%s)", aKind(f.Kind, 1), whyFailed(f, 1))
	}
	return it + ".", en + "."
}

// strongestFailed returns the failing receipt of r with the strongest class (earliest on ties).
func strongestFailed(r *Recipient, receipts []Message) int {
	best := r.Failed[0]
	for _, i := range r.Failed[1:] {
		ci, cb := classOf(receipts[i].Kind), classOf(receipts[best].Kind)
		if rank[ci] > rank[cb] || rank[ci] == rank[cb] && earlier(&receipts[i], &receipts[best]) {
			best = i
		}
	}
	return best
}
