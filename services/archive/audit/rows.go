package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/tlog"
)

// rowPage is how many messages rows (or logged sources) one query reads.
const rowPage = 500

// pager reads rows in leaf order, a page at a time: fetch returns up to rowPage rows after the
// leaf index it is given, leaf the leaf index of a row. onPage, when set, sees each page as it is
// read.
type pager[T any] struct {
	fetch  func(ctx context.Context, after int64) ([]T, error)
	leaf   func(*T) uint64
	onPage func(ctx context.Context, page []T) error
	page   []T
	after  int64
	done   bool
}

func (p *pager[T]) next(ctx context.Context) (*T, error) {
	if len(p.page) == 0 && !p.done {
		page, err := p.fetch(ctx, p.after)
		if err != nil {
			return nil, fmt.Errorf("audit: catalog: %w", err)
		}
		if len(page) < rowPage {
			p.done = true
		}
		if len(page) > 0 {
			p.after = int64(p.leaf(&page[len(page)-1]))
			if p.onPage != nil {
				if err := p.onPage(ctx, page); err != nil {
					return nil, err
				}
			}
		}
		p.page = page
	}
	if len(p.page) == 0 {
		return nil, nil
	}
	r := &p.page[0]
	p.page = p.page[1:]
	return r, nil
}

// rowStream reads the messages rows in leaf order; each page is also checked for the rows
// derived from it (derivedPage) as it is read, so the messages are read once for both.
func (a *auditor) rowStream() *pager[catalog.AuditRow] {
	return &pager[catalog.AuditRow]{after: -1, onPage: a.derivedPage,
		fetch: func(ctx context.Context, after int64) ([]catalog.AuditRow, error) {
			return catalog.AuditPage(ctx, a.cfg.Pool, after, rowPage)
		},
		leaf: func(r *catalog.AuditRow) uint64 { return r.LeafIndex }}
}

// sourceStream reads the sources with a leaf of their own in leaf order.
func (a *auditor) sourceStream() *pager[catalog.LoggedSource] {
	return &pager[catalog.LoggedSource]{after: -1,
		fetch: func(ctx context.Context, after int64) ([]catalog.LoggedSource, error) {
			return catalog.LoggedSourcesPage(ctx, a.cfg.Pool, after, rowPage)
		},
		leaf: func(s *catalog.LoggedSource) uint64 { return s.LeafIndex }}
}

// rowsAndLeaves merges the catalog's messages rows and logged sources (each by leaf index) with
// the log's leaves (by index).
func (a *auditor) rowsAndLeaves(ctx context.Context, size uint64) error {
	rows, srcs := a.rowStream(), a.sourceStream()
	row, err := rows.next(ctx)
	if err != nil {
		return err
	}
	src, err := srcs.next(ctx)
	if err != nil {
		return err
	}
	err = a.cfg.Log.Leaves(ctx, func(i uint64, data []byte) error {
		if i >= size {
			return errStop
		}
		leaf, perr := tlog.ParseLeaf(data)
		if perr != nil {
			a.add(Finding{Kind: LeafMalformed, LeafIndex: int64(i), Detail: perr.Error()})
		} else {
			switch leaf.Kind {
			case tlog.KindMessage:
				a.rep.MessageLeaves++
			case tlog.KindAccess:
				a.rep.AccessLeaves++
			case tlog.KindSource:
				a.rep.SourceLeaves++
			}
		}
		matched := false
		if row != nil && row.LeafIndex == i {
			a.rep.Rows++
			a.compare(row, leaf, perr)
			matched = true
			if row, err = rows.next(ctx); err != nil {
				return err
			}
		}
		if src != nil && src.LeafIndex == i {
			a.compareSource(src, leaf, perr)
			matched = true
			if src, err = srcs.next(ctx); err != nil {
				return err
			}
		}
		switch {
		case matched || perr != nil:
		case leaf.Kind == tlog.KindMessage:
			a.add(Finding{Kind: LeafNotInCatalog, SHA256: leaf.SHA256, LeafIndex: int64(i),
				Detail: "no catalog row points at this message leaf"})
		case leaf.Kind == tlog.KindSource:
			a.add(Finding{Kind: SourceAltered, SHA256: leaf.SHA256, LeafIndex: int64(i),
				Detail: "missing: no message_sources row points at this source leaf"})
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("audit: log leaves: %w", err)
	}
	// Rows beyond the audited size: new since the audit began, unless beyond the log itself.
	end, err := a.cfg.Log.Size(ctx)
	if err != nil {
		return fmt.Errorf("audit: log size: %w", err)
	}
	for ; row != nil; row, err = rows.next(ctx) {
		if row.LeafIndex >= end {
			a.rep.Rows++
			a.add(Finding{Kind: RowNotInLog, SHA256: row.SHA256, LeafIndex: int64(row.LeafIndex),
				Detail: fmt.Sprintf("leaf index beyond the log size %d", end)})
		}
	}
	if err != nil {
		return err
	}
	for ; src != nil; src, err = srcs.next(ctx) {
		if src.LeafIndex >= end {
			a.add(Finding{Kind: SourceAltered, SHA256: src.SHA256, LeafIndex: int64(src.LeafIndex),
				Detail: fmt.Sprintf("extra: %s has leaf index %d, beyond the log size %d", catalog.DescribeSource(&src.Source), src.LeafIndex, end)})
		}
	}
	return err
}

// compare checks one catalog row against the leaf at its index, and its unlogged sources: under a
// catalog/v2 leaf, exactly its first source, which the leaf covers.
func (a *auditor) compare(r *catalog.AuditRow, leaf tlog.Leaf, perr error) {
	m := &r.Message
	if perr != nil {
		a.add(Finding{Kind: RowLeafMismatch, SHA256: m.SHA256, LeafIndex: int64(m.LeafIndex), Detail: "the row's leaf does not parse"})
		return
	}
	var first *catalog.Source
	d, derr := catalog.ParseLeafDigest(leaf.Extra)
	switch {
	case derr != nil || leaf.Kind != tlog.KindMessage || leaf.SHA256 != m.SHA256:
	case d.Version == catalog.DigestV1:
		a.mu.Lock()
		a.rep.LegacyRows++
		a.rep.LegacySources += uint64(len(r.Unlogged))
		a.mu.Unlock()
	case d.Version == catalog.DigestV2:
		// The first source is the unlogged one the leaf's source digest names; any other unlogged
		// source has no reason to be there.
		for i := range r.Unlogged {
			if first == nil && catalog.SourceDigest(m.SHA256, &r.Unlogged[i]) == d.Source {
				first = &r.Unlogged[i]
			}
		}
		for i := range r.Unlogged {
			s := &r.Unlogged[i]
			if s == first || (first == nil && i == 0) {
				continue
			}
			a.add(Finding{Kind: SourceAltered, SHA256: m.SHA256, LeafIndex: int64(m.LeafIndex),
				Detail: "extra: " + catalog.DescribeSource(s) + " has no leaf of its own and is not the first source the message's leaf covers"})
		}
		if first == nil && len(r.Unlogged) > 0 {
			first = &r.Unlogged[0] // for the finding: it differs from what the leaf covers
		}
	}
	a.mu.Lock()
	a.rep.Sources += uint64(len(r.Unlogged))
	a.mu.Unlock()
	err := catalog.CheckMessageLeaf(leaf, m, first)
	f := Finding{SHA256: m.SHA256, LeafIndex: int64(m.LeafIndex)}
	switch {
	case err == nil:
		// The digest is of the normalised row: the stored values must be that form too.
		if nc := m.NonCanonical(); len(nc) > 0 {
			f.Kind, f.Detail = RowAltered, "stored otherwise than the archive writes it, though it normalises to what its leaf commits to: "+strings.Join(nc, ", ")
			a.add(f)
		}
		return
	case errors.Is(err, catalog.ErrNotItsLeaf):
		f.Kind = RowLeafMismatch
	case errors.Is(err, catalog.ErrSourceAltered):
		f.Kind = SourceAltered
	default:
		f.Kind = RowAltered
	}
	f.Detail = err.Error()
	if f.Kind == RowAltered && !a.cfg.Deep {
		f.Detail += " (a digest does not say which: a deep audit names the fields that differ from the blob)"
	}
	a.add(f)
}

// compareSource checks a source with a leaf of its own against that leaf.
func (a *auditor) compareSource(s *catalog.LoggedSource, leaf tlog.Leaf, perr error) {
	a.mu.Lock()
	a.rep.Sources++
	a.mu.Unlock()
	f := Finding{Kind: SourceAltered, SHA256: s.SHA256, LeafIndex: int64(s.LeafIndex)}
	if perr != nil {
		f.Detail = catalog.DescribeSource(&s.Source) + ": its leaf does not parse"
		a.add(f)
		return
	}
	if err := catalog.CheckSourceLeaf(leaf, s.SHA256, &s.Source); err != nil {
		f.Detail = err.Error()
		a.add(f)
	}
}
