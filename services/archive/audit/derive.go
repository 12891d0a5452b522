package audit

import (
	"context"
	"fmt"

	"github.com/pecarchive/pecarchive/services/archive/catalog"
)

// The rows the catalog derives from the messages rows, checked both ways:
//   - from each page of messages (as rowsAndLeaves reads them, each row also checked against its
//     leaf): their message_recipients rows, the delivery_events of each receipt and the
//     message_links between them and any message are derived again (catalog.CheckDerived, the
//     commit's own derivation) and compared with what is stored;
//   - then each of those tables, and message_sources, is walked in its key order for rows no
//     stored message accounts for (catalog.CheckStoredRows);
//   - every cert_chains and trust_anchor_sets row is hashed again (certSets).
// So a flipped ok, a non-delivery rewritten as a delivery (with deliveries re-derived to match),
// an added, removed or edited recipient, link, event or source is named.

// tableKinds maps the tables of catalog.Mismatch to finding kinds.
var tableKinds = map[string]string{
	catalog.TableRecipients: RecipientAltered,
	catalog.TableEvents:     EventAltered,
	catalog.TableLinks:      LinkAltered,
	catalog.TableSources:    SourceAltered,
	catalog.TableChains:     ChainAltered,
	catalog.TableAnchors:    AnchorsAltered,
}

func (a *auditor) addMismatch(m catalog.Mismatch) {
	a.add(Finding{Kind: tableKinds[m.Table], SHA256: m.SHA256, LeafIndex: -1, Detail: m.Table + ": " + m.What})
}

// derivedPage checks the rows derived from one page of messages rows.
func (a *auditor) derivedPage(ctx context.Context, page []catalog.AuditRow) error {
	ms := make([]catalog.Message, len(page))
	for i := range page {
		ms[i] = page[i].Message
	}
	bad, err := catalog.CheckDerived(ctx, a.cfg.Pool, ms)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	for _, m := range bad {
		a.addMismatch(m)
	}
	return nil
}

// storedRows walks the derived tables and message_sources for rows no stored message accounts for.
func (a *auditor) storedRows(ctx context.Context) error {
	for _, t := range []struct {
		table string
		n     *uint64
	}{
		{catalog.TableRecipients, &a.rep.Recipients},
		{catalog.TableEvents, &a.rep.Events},
		{catalog.TableLinks, &a.rep.Links},
		{catalog.TableSources, nil},
	} {
		n, err := catalog.CheckStoredRows(ctx, a.cfg.Pool, t.table, func(m catalog.Mismatch) error {
			a.addMismatch(m)
			return nil
		})
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		if t.n != nil {
			*t.n = n
		}
	}
	return nil
}

// certSets hashes every stored certificate chain and trust-anchor set again.
func (a *auditor) certSets(ctx context.Context) error {
	for _, table := range []string{catalog.TableChains, catalog.TableAnchors} {
		var after []byte
		for {
			page, err := catalog.CertSetsPage(ctx, a.cfg.Pool, table, after, rowPage)
			if err != nil {
				return fmt.Errorf("audit: %w", err)
			}
			for _, c := range page {
				a.rep.CertSets++
				if what := catalog.CheckCertSet(table, c); what != "" {
					a.addMismatch(catalog.Mismatch{Table: table, SHA256: c.SHA256, What: what})
				}
			}
			if len(page) < rowPage {
				break
			}
			last := page[len(page)-1].SHA256
			after = last[:]
		}
	}
	return nil
}
