package verdict

import (
	"fmt"
	"strings"
	"time"

	"github.com/pecarchive/pecarchive/pec"
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

// whyFailed says why m's signature does not count.
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
	if len(m.Reasons) > 0 {
		what += ": " + strings.Join(m.Reasons, ", ")
	}
	return what
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
		it = fmt.Sprintf("Consegnato a %s il %s: %s (%s) del gestore %s, con firma valida e attendibile",
			a, when(d.DaticertTime, 0), kindName(d.Kind, 0), d.ReceiptType, provider(d, 0))
		en = fmt.Sprintf("Delivered to %s on %s: %s (%s) from provider %s, its signature valid and trusted",
			a, when(d.DaticertTime, 1), kindName(d.Kind, 1), d.ReceiptType, provider(d, 1))
	case NotDelivered:
		it = fmt.Sprintf("Non consegnato a %s: %s del gestore %s del %s (errore %s), con firma valida e attendibile",
			a, kindName(d.Kind, 0), provider(d, 0), when(d.DaticertTime, 0), errore(d))
		en = fmt.Sprintf("Not delivered to %s: %s from provider %s on %s (error %s), its signature valid and trusted",
			a, kindName(d.Kind, 1), provider(d, 1), when(d.DaticertTime, 1), errore(d))
	case NotAccepted:
		it = fmt.Sprintf("Non accettato: il gestore del mittente %s ha rifiutato il messaggio il %s (%s, errore %s, con firma valida e attendibile), quindi non è mai stato inviato a %s",
			provider(d, 0), when(d.DaticertTime, 0), kindName(d.Kind, 0), errore(d), a)
		en = fmt.Sprintf("Not accepted: the sender's provider %s refused the message on %s (%s, error %s, its signature valid and trusted), so it was never sent to %s",
			provider(d, 1), when(d.DaticertTime, 1), kindName(d.Kind, 1), errore(d), a)
	case Warned:
		it = fmt.Sprintf("Non ancora consegnato a %s: il %s il gestore %s ha avvisato che il messaggio non è stato consegnato entro 12 ore (%s con firma valida e attendibile)",
			a, when(d.DaticertTime, 0), provider(d, 0), kindName(d.Kind, 0))
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
			en = fmt.Sprintf("Unverified for %s: the only receipt, %s of %s, fails verification (%s)",
				a, aKind(f.Kind, 1), when(f.DaticertTime, 1), whyFailed(f, 1))
		} else {
			it = fmt.Sprintf("Non verificabile per %s: nessuna delle %d ricevute supera la verifica; la più rilevante, %s, per %s",
				a, n, aKind(f.Kind, 0), whyFailed(f, 0))
			en = fmt.Sprintf("Unverified for %s: none of its %d receipts passes verification; the strongest, %s, for %s",
				a, n, aKind(f.Kind, 1), whyFailed(f, 1))
		}
		failed = -1 // already said
	case Pending:
		it = fmt.Sprintf("In attesa per %s: non è stata archiviata alcuna ricevuta per questo destinatario", a)
		en = fmt.Sprintf("Pending for %s: no receipt about this recipient has been archived", a)
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
		it += fmt.Sprintf("; attenzione, ricevute valide si contraddicono (anche: %s)", strings.Join(names[0], ", "))
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
