package pec

// Parse parses one raw RFC 5322 message. It always returns a non-nil *Message: on malformed input
// it holds what could be recovered, and Message.Problems lists the typed problems found (each a
// *ParseError wrapping one of the sentinel errors). The error is non-nil only when the input is
// refused whole (larger than Limits.MaxSize: [ErrTooLarge]).
//
// Byte slices in the result alias raw where no decoding was needed; raw must not be modified
// while the result is in use.
//
// Classification: the daticert.xml tipo is authoritative; without daticert.xml the kind comes
// from X-Ricevuta / X-Trasporto (X-Trasporto: errore is an anomaly envelope); a disagreement
// between the two is reported as [ErrInconsistent]. A message with neither is [KindNotPEC]
// (not a problem). Attached messages (message/rfc822, such as postacert.eml or a forwarded
// receipt) are not looked into for classification.
func Parse(raw []byte, opts *Options) (*Message, error) {
	return parse(raw, opts.limits(), nil)
}

// parse is Parse with a visitor called for every MIME entity walked (for tests).
func parse(raw []byte, lim Limits, visit func(e entity, depth int)) (*Message, error) {
	m := &Message{Kind: KindNotPEC}
	if len(raw) > lim.MaxSize {
		p := newProblem(ErrTooLarge, "", "%d bytes, limit %d", len(raw), lim.MaxSize)
		m.Problems = append(m.Problems, p)
		return m, p
	}
	w := newWalker(lim, m)
	w.visit = visit
	top := w.readEntity(raw, 0, len(raw), &w.top)
	switch {
	case top.isType("multipart/signed"):
		if visit != nil {
			visit(top, 0)
		}
		w.signed(&top)
	case top.isType("application/pkcs7-mime") || top.isType("application/x-pkcs7-mime"):
		if visit != nil {
			visit(top, 0)
		}
		w.opaque(&top)
	default:
		w.walk(top, 0, modeScope)
	}
	w.decodeHeaders(&m.Headers)

	if w.haveDaticert {
		w.path = w.path[:0]
		raw := w.decodeAt(&w.daticert, daticertPart)
		m.DaticertRaw = raw
		d, probs := parseDaticert(raw, lim)
		m.Daticert = d
		m.Problems = append(m.Problems, probs...)
	}
	w.classify()

	if w.havePostacert && m.Kind != KindNotPEC {
		m.Postacert = w.decodeAt(&w.postacert, "postacert.eml")
	}
	if m.Kind == KindAvvenutaConsegna {
		// .hash parts: in the original attached to a breve receipt, or (some providers) in the
		// receipt itself.
		for i := range w.hashEnts {
			h := &w.hashEnts[i]
			w.prefix = h.path
			w.hashPart(&h.e, h.e.name())
		}
		w.prefix = ""
		if m.Postacert != nil && m.ReceiptType() == ReceiptBreve && !w.tooMany {
			w.walkPostacert(m.Postacert)
		}
	}
	return m, nil
}

// decodeAt decodes e, reporting problems under the given part name.
func (w *walker) decodeAt(e *entity, part string) []byte {
	saved := w.prefix
	w.prefix = part
	w.path = w.path[:0]
	b := w.decode(e)
	w.prefix = saved
	return b
}

// headerKind returns the kind the PEC headers announce, "" when there are none.
func (w *walker) headerKind() Kind {
	h := &w.msg.Headers
	var byRicevuta, byTrasporto Kind
	if h.XRicevuta != "" {
		k := Kind(h.XRicevuta)
		if k.IsReceipt() {
			byRicevuta = k
		} else {
			w.problemAt(ErrMalformedHeader, "", "unknown X-Ricevuta %q", clipString(h.XRicevuta, 40))
		}
	}
	switch h.XTrasporto {
	case "":
	case "posta-certificata":
		byTrasporto = KindPostaCertificata
	case "errore":
		byTrasporto = KindAnomalia
	default:
		w.problemAt(ErrMalformedHeader, "", "unknown X-Trasporto %q", clipString(h.XTrasporto, 40))
	}
	switch {
	case byRicevuta != "" && byTrasporto != "":
		w.problemAt(ErrInconsistent, "", "both X-Ricevuta %q and X-Trasporto %q", h.XRicevuta, h.XTrasporto)
		return byRicevuta
	case byRicevuta != "":
		return byRicevuta
	}
	return byTrasporto
}

// classify sets Message.Kind from daticert.xml and the headers.
func (w *walker) classify() {
	m := w.msg
	hk := w.headerKind()
	var dk Kind
	if m.Daticert != nil && knownTipo(m.Daticert.Tipo) {
		dk = m.Daticert.Tipo
	}
	switch {
	case dk != "":
		m.Kind = dk
		switch {
		case hk == "":
			w.problemAt(ErrInconsistent, "", "daticert.xml tipo %q but no X-Ricevuta or X-Trasporto header", dk)
		case hk != dk:
			w.problemAt(ErrInconsistent, "", "daticert.xml tipo %q but headers say %q", dk, hk)
		}
		if dk == KindPostaCertificata && m.Daticert.Ricevuta != "" && m.Headers.XTipoRicevuta != "" &&
			string(m.Daticert.Ricevuta) != m.Headers.XTipoRicevuta {
			w.problemAt(ErrInconsistent, "", "daticert.xml ricevuta %q but X-TipoRicevuta %q",
				m.Daticert.Ricevuta, m.Headers.XTipoRicevuta)
		}
	case hk != "":
		m.Kind = hk
		if hk != KindAnomalia && m.Daticert == nil {
			w.problemAt(ErrDaticertMissing, "", "%s message without daticert.xml", hk)
		}
	default:
		m.Kind = KindNotPEC
	}
	if m.Kind != KindNotPEC && m.Signature == nil {
		w.problemAt(ErrSignatureMissing, "", "%s message is not signed", m.Kind)
	}
}
