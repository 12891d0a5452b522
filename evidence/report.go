package evidence

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

//go:embed report.html.tmpl
var reportTemplate string

var reportTmpl = template.Must(template.New("report").Parse(reportTemplate))

// RenderReport writes report.html for m: self-contained (inline style and SVG, no script, no
// external resource), Italian first and English second, every value from the manifest escaped by
// html/template (subjects and addresses come from mail and are hostile). m.Files are the files
// the report lists: those written before it. The rendering is deterministic: the verifier checks
// that a bundle's report.html is exactly what its manifest renders to.
func RenderReport(w io.Writer, m *Manifest) error {
	return reportTmpl.Execute(w, newReportView(m))
}

type reportView struct {
	CreatedAt      string
	ExportedBy     string
	Selectors      []string
	Origin         string
	CheckpointSize uint64
	CheckpointRoot string
	Earlier        []EarlierCheckpoint
	Deliveries     []deliveryView
	Messages       []messageView
	Files          []File
	Chains         []CertSet
	AnchorSets     []CertSet
	Signed         []messageView // messages with a signature, for the OpenSSL commands
}

type deliveryView struct {
	Subject, Sender, SentAt, MsgID, PECID, SHA256 string
	Recipients                                    []recipientView
}

type recipientView struct {
	Address                       string
	Verdict, VerdictIT, VerdictEN string
	Class                         string // CSS class of the verdict
	ExplanationIT, ExplanationEN  string
	At                            string
	AcceptedAt, AcceptedBy        string
	DecidedBy                     string   // provider of the deciding receipt
	Conflicts                     []string // valid receipts that contradict one another
	Events                        []eventView
	Timeline                      timelineView
}

type eventView struct {
	KindIT, KindEN string
	At             string
	Provider       string
	SHA256         string
	Trusted        bool
	Deciding       bool
}

type messageView struct {
	SHA256, File            string
	KindIT, KindEN          string
	Provider, At, SignedAt  string
	Present, Valid, Trusted bool
	Signer                  string
	Reasons                 string
	LeafIndex               uint64
	AttimeUnix              int64
	AttimeText              string
	AnchorsFile, ChainFile  string
	ContainedIn             string
}

var verdictLabels = map[string][2]string{
	VerdictDelivered:    {"CONSEGNATO", "Delivered"},
	VerdictNotDelivered: {"NON CONSEGNATO", "Not delivered"},
	VerdictNotAccepted:  {"NON ACCETTATO", "Not accepted"},
	VerdictWarned:       {"PREAVVISO DI MANCATA CONSEGNA", "Delivery warning"},
	VerdictAcceptedOnly: {"SOLO ACCETTATO", "Accepted only"},
	VerdictPending:      {"IN ATTESA", "Pending"},
	VerdictUnverified:   {"NON VERIFICATO", "Unverified"},
}

var kindLabels = map[string][2]string{
	"accettazione":              {"Accettazione", "Acceptance"},
	"non-accettazione":          {"Non accettazione", "Non-acceptance"},
	"presa-in-carico":           {"Presa in carico", "Taken in charge"},
	"avvenuta-consegna":         {"Avvenuta consegna", "Delivery"},
	"posta-certificata":         {"Busta di trasporto", "Transport envelope"},
	"errore-consegna":           {"Errore di consegna", "Non-delivery"},
	"preavviso-errore-consegna": {"Preavviso di errore di consegna", "Delivery warning"},
	"rilevazione-virus":         {"Rilevazione virus", "Virus detected"},
	"anomalia":                  {"Busta di anomalia", "Anomaly envelope"},
	"not-pec":                   {"Messaggio non PEC (originale)", "Non-PEC message (original)"},
}

func kindLabel(k string) [2]string {
	if l, ok := kindLabels[k]; ok {
		return l
	}
	return [2]string{k, k}
}

// humanTime renders a manifest time for people: day/month/year, time and offset as recorded.
func humanTime(s string) string {
	t, err := parseTime(s)
	if err != nil {
		return s
	}
	if t.IsZero() {
		return "—"
	}
	return t.Format("02/01/2006 15:04:05 -07:00")
}

func newReportView(m *Manifest) *reportView {
	v := &reportView{
		CreatedAt:      humanTime(m.CreatedAt),
		ExportedBy:     m.ExportedBy,
		Origin:         m.Log.Origin,
		CheckpointSize: m.Log.Checkpoint.Size,
		CheckpointRoot: m.Log.Checkpoint.Root,
		Earlier:        m.Log.Earlier,
		Files:          m.Files,
		Chains:         m.Chains,
		AnchorSets:     m.AnchorSets,
	}
	for _, s := range m.Selectors {
		v.Selectors = append(v.Selectors, s.String())
	}
	bySum := make(map[string]*Message, len(m.Messages))
	for i := range m.Messages {
		bySum[m.Messages[i].SHA256] = &m.Messages[i]
	}
	for _, msg := range m.Messages {
		r := msg.Record
		kl := kindLabel(r.Kind)
		mv := messageView{
			SHA256: msg.SHA256, File: msg.File, KindIT: kl[0], KindEN: kl[1],
			Provider: r.Provider, At: humanTime(r.DaticertTime), SignedAt: humanTime(r.Signature.SignedAt),
			Present: r.Signature.Present, Valid: r.Signature.Valid, Trusted: r.Signature.Trusted,
			Signer: r.Signature.Signer, Reasons: strings.Join(r.Signature.Reasons, ", "),
			LeafIndex: msg.Leaf.Index, ContainedIn: msg.ContainedIn,
		}
		if r.ChainSHA256 != "" {
			mv.ChainFile = dirChains + r.ChainSHA256 + ".pem"
		}
		if r.AnchorsSHA256 != "" {
			mv.AnchorsFile = dirAnchors + r.AnchorsSHA256 + ".pem"
		}
		if t, err := parseTime(r.Signature.VerifiedAt); err == nil && !t.IsZero() {
			mv.AttimeUnix = t.Unix()
			mv.AttimeText = t.UTC().Format(time.RFC3339)
		}
		v.Messages = append(v.Messages, mv)
		if mv.Present && mv.AnchorsFile != "" && mv.AttimeUnix > 0 {
			v.Signed = append(v.Signed, mv)
		}
	}
	for _, d := range m.Deliveries {
		dv := deliveryView{Subject: d.Subject, Sender: d.Sender, SentAt: humanTime(d.SentAt), MsgID: d.MsgID,
			PECID: d.PECID, SHA256: d.SHA256}
		for _, r := range d.Recipients {
			labels, ok := verdictLabels[r.Verdict]
			if !ok {
				labels = [2]string{r.Verdict, r.Verdict}
			}
			rv := recipientView{
				Address: r.Address, Verdict: r.Verdict, VerdictIT: labels[0], VerdictEN: labels[1],
				Class:         "v-" + strings.ToLower(strings.ReplaceAll(r.Verdict, "_", "-")),
				ExplanationIT: r.ExplanationIT, ExplanationEN: r.ExplanationEN, At: humanTime(r.At),
				Conflicts: r.Conflicts,
			}
			type ev struct {
				eventView
				t time.Time
			}
			var evs []ev
			for _, s := range r.Receipts {
				msg := bySum[s]
				if msg == nil {
					continue
				}
				t, _ := parseTime(msg.Record.DaticertTime)
				kl := kindLabel(msg.Record.Kind)
				e := ev{eventView{KindIT: kl[0], KindEN: kl[1], At: humanTime(msg.Record.DaticertTime),
					Provider: msg.Record.Provider, SHA256: s, Trusted: msg.Record.Signature.Trusted,
					Deciding: s == r.Deciding}, t}
				evs = append(evs, e)
				if msg.Record.Kind == "accettazione" && rv.AcceptedAt == "" && e.Trusted {
					rv.AcceptedAt, rv.AcceptedBy = e.At, e.Provider
				}
				if e.Deciding {
					rv.DecidedBy = e.Provider
				}
			}
			slices.SortStableFunc(evs, func(a, b ev) int { return a.t.Compare(b.t) })
			var sent time.Time
			if t, err := parseTime(d.SentAt); err == nil {
				sent = t
			}
			points := []timelinePoint{}
			if !sent.IsZero() {
				points = append(points, timelinePoint{LabelIT: "Invio", LabelEN: "Sent", At: sent, Class: "t-sent"})
			}
			for _, e := range evs {
				rv.Events = append(rv.Events, e.eventView)
				cls := "t-event"
				switch {
				case !e.Trusted:
					cls = "t-untrusted"
				case e.Deciding:
					cls = rv.Class
				}
				points = append(points, timelinePoint{LabelIT: e.KindIT, LabelEN: e.KindEN, At: e.t, Class: cls})
			}
			rv.Timeline = newTimeline(points)
			dv.Recipients = append(dv.Recipients, rv)
		}
		v.Deliveries = append(v.Deliveries, dv)
	}
	return v
}

// timelinePoint is one event of a recipient's timeline.
type timelinePoint struct {
	LabelIT, LabelEN string
	At               time.Time
	Class            string
}

// timelineView is the inline SVG of a timeline: numbers are preformatted.
type timelineView struct {
	Width, Height int
	Marks         []timelineMark
	X1, X2, Y     string
}

type timelineMark struct {
	X, Y                   string
	Y1, Y2, Y3             string // the Italian label, the English label, the time
	Anchor                 string
	LabelIT, LabelEN, Time string
	Class                  string
}

// Geometry of a timeline, in SVG user units (the SVG scales to the page width).
const (
	tlWidth  = 700
	tlHeight = 136
	tlLeft   = 70
	tlRight  = 630
	tlAxis   = 66
	tlGap    = 90 // least distance between neighbouring marks
)

// newTimeline lays points out along a horizontal axis in time order, in proportion to time
// where that leaves neighbours at least tlGap apart and evenly otherwise, labels alternating
// above and below the axis so that neighbours never collide.
func newTimeline(points []timelinePoint) timelineView {
	tv := timelineView{Width: tlWidth, Height: tlHeight, X1: "20", X2: strconv.Itoa(tlWidth - 20), Y: strconv.Itoa(tlAxis)}
	n := len(points)
	if n == 0 {
		return tv
	}
	xs := make([]float64, n)
	var lo, hi time.Time
	for _, p := range points {
		if p.At.IsZero() {
			continue
		}
		if lo.IsZero() || p.At.Before(lo) {
			lo = p.At
		}
		if p.At.After(hi) {
			hi = p.At
		}
	}
	span := hi.Sub(lo)
	even := n == 1 || span <= 0
	for i, p := range points {
		if p.At.IsZero() {
			even = true
			break
		}
		xs[i] = tlLeft + float64(p.At.Sub(lo))/float64(span)*(tlRight-tlLeft)
	}
	if !even { // push neighbours apart, then back from the right edge
		for i := 1; i < n; i++ {
			xs[i] = max(xs[i], xs[i-1]+tlGap)
		}
		if xs[n-1] > tlRight {
			xs[n-1] = tlRight
			for i := n - 2; i >= 0; i-- {
				xs[i] = min(xs[i], xs[i+1]-tlGap)
			}
		}
		even = xs[0] < tlLeft
	}
	if even {
		for i := range xs {
			if n == 1 {
				xs[i] = (tlLeft + tlRight) / 2
			} else {
				xs[i] = tlLeft + float64(i)/float64(n-1)*(tlRight-tlLeft)
			}
		}
	}
	for i, p := range points {
		ys := [3]int{tlAxis - 42, tlAxis - 29, tlAxis - 16}
		if i%2 == 1 {
			ys = [3]int{tlAxis + 24, tlAxis + 37, tlAxis + 50}
		}
		anchor := "middle"
		if xs[i] < tlLeft+30 {
			anchor = "start"
		} else if xs[i] > tlRight-30 {
			anchor = "end"
		}
		t := "—"
		if !p.At.IsZero() {
			t = p.At.Format("02/01/2006 15:04:05")
		}
		tv.Marks = append(tv.Marks, timelineMark{
			X: fmt.Sprintf("%.1f", xs[i]), Y: strconv.Itoa(tlAxis),
			Y1: strconv.Itoa(ys[0]), Y2: strconv.Itoa(ys[1]), Y3: strconv.Itoa(ys[2]),
			Anchor: anchor, LabelIT: p.LabelIT, LabelEN: p.LabelEN, Time: t, Class: p.Class,
		})
	}
	return tv
}
