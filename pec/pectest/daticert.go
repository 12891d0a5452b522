package pectest

import (
	"strings"
	"time"

	"github.com/pecarchive/pecarchive/pec"
)

// Daticert is the content of a generated daticert.xml. It mirrors [pec.Daticert] with the time
// kept as an instant (the zone written is Italian civil time at that instant).
type Daticert struct {
	Tipo             pec.Kind
	Errore           pec.ErrorCode // "" means nessuno
	Mittente         string
	Destinatari      []pec.Recipient
	Risposte         string
	Oggetto          string
	GestoreEmittente string
	Data             time.Time
	Identificativo   string
	MsgID            string // without angle brackets; "" omits the element
	Ricevuta         pec.ReceiptType
	Consegna         string
	Ricezione        []string
	ErroreEsteso     string
}

// Marshal returns daticert.xml in the exact layout of real providers (XML declaration, four-space
// indentation, LF line ends, "<ricevuta tipo=... />", msgid with &lt; &gt;).
func (d *Daticert) Marshal() []byte {
	var b strings.Builder
	errore := d.Errore
	if errore == "" {
		errore = pec.ErrNessuno
	}
	lt, zone := rome(d.Data)
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<postacert tipo="` + xmlEscape(string(d.Tipo)) + `" errore="` + xmlEscape(string(errore)) + `">` + "\n")
	b.WriteString("    <intestazione>\n")
	b.WriteString("        <mittente>" + xmlEscape(d.Mittente) + "</mittente>\n")
	for _, r := range d.Destinatari {
		t := r.Type
		if t == "" {
			t = pec.RecipientCertificato
		}
		b.WriteString(`        <destinatari tipo="` + string(t) + `">` + xmlEscape(r.Address) + "</destinatari>\n")
	}
	b.WriteString("        <risposte>" + xmlEscape(d.Risposte) + "</risposte>\n")
	if d.Oggetto != "" {
		b.WriteString("        <oggetto>" + xmlEscape(d.Oggetto) + "</oggetto>\n")
	}
	b.WriteString("    </intestazione>\n")
	b.WriteString("    <dati>\n")
	b.WriteString("        <gestore-emittente>" + xmlEscape(d.GestoreEmittente) + "</gestore-emittente>\n")
	b.WriteString(`        <data zona="` + zone + `">` + "\n")
	b.WriteString("            <giorno>" + lt.Format("02/01/2006") + "</giorno>\n")
	b.WriteString("            <ora>" + lt.Format("15:04:05") + "</ora>\n")
	b.WriteString("        </data>\n")
	b.WriteString("        <identificativo>" + xmlEscape(d.Identificativo) + "</identificativo>\n")
	if d.MsgID != "" {
		b.WriteString("        <msgid>" + xmlEscape("<"+d.MsgID+">") + "</msgid>\n")
	}
	if d.Ricevuta != "" {
		b.WriteString(`        <ricevuta tipo="` + string(d.Ricevuta) + `" />` + "\n")
	}
	if d.Consegna != "" {
		b.WriteString("        <consegna>" + xmlEscape(d.Consegna) + "</consegna>\n")
	}
	for _, r := range d.Ricezione {
		b.WriteString("        <ricezione>" + xmlEscape(r) + "</ricezione>\n")
	}
	if d.ErroreEsteso != "" {
		b.WriteString("        <errore-esteso>" + xmlEscape(d.ErroreEsteso) + "</errore-esteso>\n")
	}
	b.WriteString("    </dati>\n")
	b.WriteString("</postacert>\n")
	return []byte(b.String())
}
