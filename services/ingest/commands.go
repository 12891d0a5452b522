package ingest

// Small IMAP commanders go-imap v1 lacks: GETQUOTAROOT with its QUOTA answers (RFC 9208, the
// QUOTA capability) and UID EXPUNGE (RFC 4315, UIDPLUS).

import (
	"strconv"
	"strings"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/responses"
)

// getQuotaRoot is GETQUOTAROOT mailbox.
type getQuotaRoot struct{ mailbox string }

func (c getQuotaRoot) Command() *imap.Command {
	return &imap.Command{Name: "GETQUOTAROOT", Arguments: []interface{}{imap.FormatMailboxName(c.mailbox)}}
}

// Quota is one resource of a quota root: usage and limit in the server's units (STORAGE in KiB,
// MESSAGE in messages).
type Quota struct {
	Root     string
	Resource string // STORAGE, MESSAGE, ...
	Usage    int64
	Limit    int64
}

// quotaHandler collects the QUOTA answers of GETQUOTAROOT.
type quotaHandler struct{ quotas []Quota }

func (h *quotaHandler) Handle(resp imap.Resp) error {
	dr, ok := resp.(*imap.DataResp)
	if !ok || len(dr.Fields) < 1 {
		return responses.ErrUnhandled
	}
	name, ok := dr.Fields[0].(string)
	if !ok {
		return responses.ErrUnhandled
	}
	switch strings.ToUpper(name) {
	case "QUOTAROOT":
		return nil
	case "QUOTA":
		h.quotas = append(h.quotas, parseQuota(dr.Fields[1:])...)
		return nil
	}
	return responses.ErrUnhandled
}

// parseQuota reads `root (RESOURCE usage limit ...)`; malformed parts are skipped.
func parseQuota(fields []interface{}) []Quota {
	if len(fields) < 2 {
		return nil
	}
	root, _ := imap.ParseString(fields[0])
	list, ok := fields[1].([]interface{})
	if !ok {
		return nil
	}
	var out []Quota
	for i := 0; i+2 < len(list); i += 3 {
		res, _ := imap.ParseString(list[i])
		usage, err1 := parseNumber(list[i+1])
		limit, err2 := parseNumber(list[i+2])
		if res == "" || err1 != nil || err2 != nil {
			continue
		}
		out = append(out, Quota{Root: root, Resource: strings.ToUpper(res), Usage: usage, Limit: limit})
	}
	return out
}

func parseNumber(f interface{}) (int64, error) {
	switch v := f.(type) {
	case uint32:
		return int64(v), nil
	case string:
		return strconv.ParseInt(v, 10, 64)
	case imap.RawString:
		return strconv.ParseInt(string(v), 10, 64)
	}
	s, err := imap.ParseString(f)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(s, 10, 64)
}

// uidExpunge is UID EXPUNGE set: it expunges exactly those UIDs, never other messages some
// other client flagged \Deleted.
type uidExpunge struct{ set *imap.SeqSet }

func (c uidExpunge) Command() *imap.Command {
	return &imap.Command{Name: "UID", Arguments: []interface{}{imap.RawString("EXPUNGE"), c.set}}
}

// quota returns the quotas of the mailbox's INBOX root, or nil when the server has no QUOTA.
func (ic *imapConn) quota() ([]Quota, error) {
	if !ic.capable("QUOTA") {
		return nil, nil
	}
	ic.g.arm(ic.o.CommandTimeout)
	defer ic.g.arm(0)
	h := &quotaHandler{}
	st, err := ic.c.Execute(getQuotaRoot{"INBOX"}, h)
	if err != nil {
		return nil, ic.wrap("GETQUOTAROOT", err)
	}
	if err := st.Err(); err != nil {
		return nil, nil // a server may refuse it for a mailbox without quota
	}
	return h.quotas, nil
}
