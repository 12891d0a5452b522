package verdict_test

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/evidence/verdict"
	"github.com/pecarchive/pecarchive/pec"
)

func row(kind pec.Kind, name string, minutes int, f func(*verdict.Row)) verdict.Row {
	r := verdict.Row{
		Message: verdict.Message{SHA256: sha256.Sum256([]byte(name)), Kind: kind, MsgID: msgid, PECID: "opec-1",
			DaticertTime: t0.Add(time.Duration(minutes) * time.Minute), Valid: true, Trusted: true,
			Recipients: []string{"a@pec.it", "b@pec.it"}},
		Subject: "ACCETTAZIONE: Convocazione", Sender: "segreteria@pec.ordine.it",
	}
	if kind == pec.KindNotPEC {
		r.MessageID, r.Subject, r.PECID, r.DaticertTime = msgid, "Convocazione", "", time.Time{}
		r.HeaderDate = t0.Add(-time.Minute)
	}
	if f != nil {
		f(&r)
	}
	return r
}

func TestConversation(t *testing.T) {
	orig := row(pec.KindNotPEC, "orig", 0, nil)
	env := row(pec.KindPostaCertificata, "env", 1, func(r *verdict.Row) { r.MessageID = "opec-1"; r.Subject = "POSTA CERTIFICATA: Convocazione" })
	copyOf := row(pec.KindNotPEC, "copy", 3, func(r *verdict.Row) { r.MessageID = "opec-1" })
	acc := row(pec.KindAccettazione, "acc", 1, nil)
	untrustedAcc := row(pec.KindAccettazione, "acc2", 0, func(r *verdict.Row) { r.Trusted = false; r.PECID = "forged" })
	del := row(pec.KindAvvenutaConsegna, "del", 2, func(r *verdict.Row) { r.Consegna = "a@pec.it" })

	for _, tc := range []struct {
		name           string
		rows           []verdict.Row
		original       int
		pecID, subject string
		sentAt         time.Time
		receipts       int
		verdictA       verdict.Verdict
	}{
		{"original, acceptance, delivery", []verdict.Row{orig, acc, env, del}, 0, "opec-1", "Convocazione", acc.DaticertTime, 2, verdict.Delivered},
		{"no original: the envelope", []verdict.Row{acc, env, del}, 1, "opec-1", "Convocazione", acc.DaticertTime, 2, verdict.Delivered},
		{"only a copy", []verdict.Row{copyOf, del}, 0, "opec-1", "Convocazione", copyOf.HeaderDate, 1, verdict.Delivered},
		{"a counting acceptance wins over an untrusted one", []verdict.Row{untrustedAcc, acc, orig}, 2, "opec-1", "Convocazione", acc.DaticertTime, 2, verdict.AcceptedOnly},
		{"original alone", []verdict.Row{orig}, 0, "", "Convocazione", orig.HeaderDate, 0, verdict.Pending},
		{"receipts alone", []verdict.Row{del}, -1, "opec-1", "Convocazione", time.Time{}, 1, verdict.Delivered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := verdict.Conversation("<"+msgid+">", tc.rows, "")
			if len(as) != 1 {
				t.Fatalf("%d answers", len(as))
			}
			a := as[0]
			if a.Original != tc.original || a.PECID != tc.pecID || a.Subject != tc.subject || !a.SentAt.Equal(tc.sentAt) || len(a.Receipts) != tc.receipts {
				t.Fatalf("got original %d, pec id %q, subject %q, sent %v, %d receipts", a.Original, a.PECID, a.Subject, a.SentAt, len(a.Receipts))
			}
			if a.MsgID != msgid || len(a.Recipients) == 0 || a.Recipients[0].Address != "a@pec.it" || a.Recipients[0].Verdict != tc.verdictA {
				t.Fatalf("got %q %+v", a.MsgID, a.Recipients)
			}
			for _, r := range a.Recipients {
				for _, i := range r.Receipts {
					if i < 0 || i >= len(a.Receipts) {
						t.Fatalf("receipt index %d out of %d", i, len(a.Receipts))
					}
				}
			}
		})
	}
}

// Two sendings of one Message-ID: each is answered on its own, newest first, and a receipt of
// one never proves the other.
func TestConversationSendings(t *testing.T) {
	orig := row(pec.KindNotPEC, "orig", 0, nil)
	acc1 := row(pec.KindAccettazione, "acc1", 1, nil)
	del1 := row(pec.KindAvvenutaConsegna, "del1", 2, func(r *verdict.Row) { r.Consegna = "a@pec.it" })
	acc2 := row(pec.KindAccettazione, "acc2", 60, func(r *verdict.Row) { r.PECID = "opec-2" })
	as := verdict.Conversation(msgid, []verdict.Row{orig, acc1, del1, acc2}, "")
	if len(as) != 2 || as[0].PECID != "opec-2" || as[1].PECID != "opec-1" {
		t.Fatalf("answers %+v", as)
	}
	if as[0].Recipients[0].Verdict != verdict.AcceptedOnly || as[1].Recipients[0].Verdict != verdict.Delivered {
		t.Fatalf("verdicts %s, %s", as[0].Recipients[0].Verdict, as[1].Recipients[0].Verdict)
	}
	if only := verdict.Conversation(msgid, []verdict.Row{orig, acc1, del1, acc2}, "opec-1"); len(only) != 1 || only[0].PECID != "opec-1" {
		t.Fatalf("only opec-1: %+v", only)
	}
}
