package pectest

import (
	"strings"

	"github.com/pecarchive/pecarchive/pec"
)

// textData feeds the human-readable texts of provider messages (Italian, as real providers
// write them; readers must parse daticert.xml, never these texts).
type textData struct {
	day, clock, zone string
	subject, from    string
	recipients       []pec.Recipient
	recipient        string
	id               string
	detail           string
	receipt          pec.ReceiptType
	virus            bool
}

func tipoLabel(t pec.RecipientType) string {
	if t == pec.RecipientEsterno {
		return "posta ordinaria"
	}
	return "posta certificata"
}

func (d textData) rcptList(sep string, html bool) string {
	var parts []string
	for _, r := range d.recipients {
		if html {
			parts = append(parts, htmlText(r.Address)+" (&quot;"+tipoLabel(r.Type)+"&quot;)")
		} else {
			parts = append(parts, r.Address+" (\""+tipoLabel(r.Type)+"\")")
		}
	}
	return strings.Join(parts, sep)
}

func (d textData) plainList() string {
	var parts []string
	for _, r := range d.recipients {
		parts = append(parts, r.Address)
	}
	return strings.Join(parts, "\n")
}

func (d textData) htmlList() string {
	var parts []string
	for _, r := range d.recipients {
		parts = append(parts, htmlText(r.Address)+"<br>")
	}
	return strings.Join(parts, "\n")
}

func (d textData) when() string {
	return "Il giorno " + d.day + " alle ore " + d.clock + " (" + d.zone + ")"
}

func htmlPage(title, body string) string {
	return "<html>\n<head><title>" + title + "</title></head>\n<body>\n<h3>" + title + "</h3>\n<hr><br>\n" + body + "</body>\n</html>\n"
}

// texts returns the text/plain and text/html alternatives (UTF-8; converted to ISO-8859-1 when
// written) for a message kind.
func texts(kind pec.Kind, d textData) (plain, html string) {
	hs, hf := htmlText(d.subject), htmlText(d.from)
	switch kind {
	case pec.KindPostaCertificata:
		plain = "--Questo è un Messaggio di Posta Certificata--\n\n" +
			d.when() + " il messaggio con Oggetto\n" +
			"\"" + d.subject + "\" è stato inviato dal mittente \"" + d.from + "\"\n" +
			"e indirizzato a:\n" + d.plainList() + "\n" +
			"Il messaggio originale è incluso in allegato, per aprirlo cliccare sul file \"postacert.eml\" (nella webmail o in alcuni client di posta l'allegato potrebbe avere come nome l'oggetto del messaggio originale).\n" +
			"L'allegato daticert.xml contiene informazioni di servizio sulla trasmissione\n" +
			"L'identificativo univoco di questo messaggio è: " + d.id + "\n\n\n"
		html = htmlPage("Messaggio di posta certificata",
			d.when()+" il messaggio<br>\n"+
				"&quot;"+hs+"&quot; &egrave; stato inviato da &quot;"+hf+"&quot;<br>\n"+
				"indirizzato a:<br>\n"+d.htmlList()+"\n<br>\n"+
				"Il messaggio originale &egrave; incluso in allegato.<br>\n"+
				"Identificativo messaggio: "+htmlText(d.id)+"<br>\n<br>\n\n")
	case pec.KindAccettazione:
		plain = "-- Ricevuta di accettazione del messaggio indirizzato a " + d.rcptList(", ", false) + " --\n\n" +
			d.when() + " il messaggio con Oggetto\n" +
			"\"" + d.subject + "\" inviato da \"" + d.from + "\"\n" +
			"ed indirizzato a:\n" + d.rcptList("\n", false) + "\n" +
			"è stato accettato dal sistema ed inoltrato.\n" +
			"Identificativo del messaggio: " + d.id + "\n" +
			"L'allegato daticert.xml contiene informazioni di servizio sulla trasmissione\n"
		html = htmlPage("Ricevuta di accettazione",
			d.when()+" il messaggio<br>\n"+
				"&quot;"+hs+"&quot; proveniente da &quot;"+hf+"&quot;<br>\n"+
				"ed indirizzato a:<br>\n"+d.rcptList("<br>\n", true)+"\n<br><br>\n"+
				"Il messaggio &egrave; stato accettato dal sistema ed inoltrato.<br>\n"+
				"Identificativo messaggio: "+htmlText(d.id)+"<br>\n")
	case pec.KindNonAccettazione:
		title, cause := "Avviso di non accettazione", "è stato rilevato un problema che ne impedisce l'accettazione a causa di: "+d.detail
		if d.virus {
			title, cause = "Avviso di non accettazione per virus", "è stato rilevato un virus: "+d.detail
		}
		plain = "-- " + title + " --\n\n" +
			d.when() + " nel messaggio con Oggetto\n" +
			"\"" + d.subject + "\" inviato da \"" + d.from + "\"\n" +
			"e indirizzato a:\n" + d.plainList() + "\n" +
			cause + "\n" +
			"Il messaggio non è stato accettato.\n" +
			"Identificativo del messaggio: " + d.id + "\n"
		html = htmlPage(title,
			d.when()+" nel messaggio<br>\n"+
				"&quot;"+hs+"&quot; proveniente da &quot;"+hf+"&quot;<br>\n"+
				"e indirizzato a:<br>\n"+d.htmlList()+"\n"+
				htmlText(cause)+"<br>\n"+
				"Il messaggio non &egrave; stato accettato.<br>\n"+
				"Identificativo messaggio: "+htmlText(d.id)+"<br>\n")
	case pec.KindPresaInCarico:
		plain = "-- Ricevuta di presa in carico --\n\n" +
			d.when() + " il messaggio con Oggetto\n" +
			"\"" + d.subject + "\" inviato da \"" + d.from + "\"\n" +
			"e indirizzato a:\n" + d.plainList() + "\n" +
			"è stato accettato dal sistema di posta certificata del destinatario.\n" +
			"Identificativo del messaggio: " + d.id + "\n"
		html = htmlPage("Ricevuta di presa in carico",
			d.when()+" il messaggio<br>\n"+
				"&quot;"+hs+"&quot; proveniente da &quot;"+hf+"&quot;<br>\n"+
				"e indirizzato a:<br>\n"+d.htmlList()+"\n"+
				"&egrave; stato accettato dal sistema di posta certificata del destinatario.<br>\n"+
				"Identificativo messaggio: "+htmlText(d.id)+"<br>\n")
	case pec.KindRilevazioneVirus:
		plain = "-- Avviso di rilevazione virus --\n\n" +
			d.when() + " nel messaggio con Oggetto\n" +
			"\"" + d.subject + "\" inviato da \"" + d.from + "\"\n" +
			"e destinato all'utente\n\"" + d.recipient + "\"\n" +
			"è stato rilevato un virus: " + d.detail + "\n" +
			"Il messaggio non è stato consegnato.\n" +
			"Identificativo del messaggio: " + d.id + "\n"
		html = htmlPage("Avviso di rilevazione virus",
			d.when()+" nel messaggio<br>\n"+
				"&quot;"+hs+"&quot; proveniente da &quot;"+hf+"&quot;<br>\n"+
				"e destinato all'utente &quot;"+htmlText(d.recipient)+"&quot;<br>\n"+
				"&egrave; stato rilevato un virus: <b>"+htmlText(d.detail)+"</b><br>\n"+
				"Il messaggio non &egrave; stato consegnato.<br>\n"+
				"Identificativo messaggio: "+htmlText(d.id)+"<br>\n")
	case pec.KindAvvenutaConsegna:
		var att string
		switch d.receipt {
		case pec.ReceiptSintetica:
		case pec.ReceiptBreve:
			att = "Il messaggio originale è incluso in allegato (file \"postacert.eml\"); i suoi allegati sono sostituiti dai rispettivi hash.\n"
		default:
			att = "Il messaggio originale è incluso in allegato, per aprirlo cliccare sul file \"postacert.eml\" (nella webmail o in alcuni client di posta l'allegato potrebbe avere come nome l'oggetto del messaggio originale).\n"
		}
		plain = "-- Ricevuta di avvenuta consegna del messaggio indirizzato a " + d.recipient + " \"posta certificata\" --\n\n" +
			d.when() + " il messaggio con Oggetto\n" +
			"\"" + d.subject + "\" inviato da \"" + d.from + "\"\n" +
			"ed indirizzato a \"" + d.recipient + "\"\n" +
			"è stato correttamente consegnato al destinatario.\n" +
			"Identificativo del messaggio: " + d.id + "\n" + att +
			"L'allegato daticert.xml contiene informazioni di servizio sulla trasmissione\n\n"
		html = htmlPage("Ricevuta di avvenuta consegna",
			d.when()+" il messaggio<br>\n"+
				"&quot;"+hs+"&quot; proveniente da &quot;"+hf+"&quot;<br>\n"+
				"ed indirizzato a &quot;"+htmlText(d.recipient)+"&quot;<br>\n"+
				"&egrave; stato correttamente consegnato al destinatario.<br>\n"+
				"Identificativo messaggio: "+htmlText(d.id)+"<br>\n")
	case pec.KindErroreConsegna:
		title := "Avviso di mancata consegna"
		if d.virus {
			title = "Avviso di mancata consegna per virus"
		}
		plain = "--" + title + " del messaggio--\n\n" +
			d.when() + " nel messaggio con Oggetto\n" +
			"\"" + d.subject + "\" inviato da \"" + d.from + "\"\n" +
			"e destinato all'utente\n\"" + d.recipient + "\"\n" +
			"è stato rilevato il seguente errore:\n" + d.detail + "\n" +
			"Il messaggio è stato rifiutato dal sistema.\n" +
			"Identificativo del messaggio: " + d.id + "\n"
		html = htmlPage(title,
			d.when()+" nel messaggio<br>\n"+
				"&quot;"+hs+"&quot; proveniente da &quot;"+hf+"&quot;<br>\n"+
				"e destinato all'utente &quot;"+htmlText(d.recipient)+"&quot;<br>\n"+
				"&egrave; stato rilevato un errore: <b>"+htmlText(d.detail)+"</b><br>\n"+
				"Il messaggio &egrave; stato rifiutato dal sistema.<br>\n"+
				"Identificativo messaggio: "+htmlText(d.id)+"<br>\n")
	case pec.KindPreavvisoErroreConsegna:
		title := "Avviso di mancata consegna per superamento tempo massimo"
		plain = "--" + title + "--\n\n" +
			d.when() + " nel messaggio con Oggetto\n" +
			"\"" + d.subject + "\" inviato da \"" + d.from + "\"\n" +
			"e destinato all'utente\n\"" + d.recipient + "\"\n" +
			"non è ancora pervenuta la ricevuta di avvenuta consegna entro le prime 12 ore dall'invio:\n" + d.detail + "\n" +
			"Il messaggio potrebbe non essere stato consegnato.\n" +
			"Identificativo del messaggio: " + d.id + "\n"
		html = htmlPage(title,
			d.when()+" nel messaggio<br>\n"+
				"&quot;"+hs+"&quot; proveniente da &quot;"+hf+"&quot;<br>\n"+
				"e destinato all'utente &quot;"+htmlText(d.recipient)+"&quot;<br>\n"+
				"non &egrave; ancora pervenuta la ricevuta di avvenuta consegna: <b>"+htmlText(d.detail)+"</b><br>\n"+
				"Identificativo messaggio: "+htmlText(d.id)+"<br>\n")
	case pec.KindAnomalia:
		plain = "--Anomalia nel messaggio--\n\n" +
			d.when() + " è stato ricevuto\n" +
			"il messaggio \"" + d.subject + "\" proveniente da \"" + d.from + "\"\n" +
			"ed indirizzato a:\n" + d.plainList() + "\n" +
			"Tali dati non sono stati certificati per il seguente errore:\n" + d.detail + "\n" +
			"Il messaggio originale è incluso in allegato.\n" +
			"Identificativo del messaggio: " + d.id + "\n\n"
		html = htmlPage("Anomalia nel messaggio",
			d.when()+" &egrave; stato ricevuto<br>\n"+
				"il messaggio &quot;"+hs+"&quot; proveniente da &quot;"+hf+"&quot;<br>\n"+
				"ed indirizzato a:<br>\n"+d.htmlList()+"\n"+
				"Tali dati non sono stati certificati per il seguente errore: <b>"+htmlText(d.detail)+"</b><br>\n"+
				"Il messaggio originale &egrave; incluso in allegato.<br>\n"+
				"Identificativo messaggio: "+htmlText(d.id)+"<br>\n")
	}
	return plain, html
}
