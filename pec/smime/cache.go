package smime

import (
	"container/list"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"sync/atomic"
	"time"
)

// certEntry is a parsed certificate with the values verification derives from it.
type certEntry struct {
	cert    *x509.Certificate
	sum256  [32]byte // SHA-256 of the DER: chain cache keys
	sum1    [20]byte // SHA-1 of the DER: provider index (providerCertificateHash)
	subject string   // cert.Subject.String(), computed once
}

func newCertEntry(c *x509.Certificate) *certEntry {
	return &certEntry{
		cert:    c,
		sum256:  sha256.Sum256(c.Raw),
		sum1:    sha1.Sum(c.Raw),
		subject: c.Subject.String(),
	}
}

// certCache is a concurrency-safe LRU of parsed certificates keyed by their DER bytes (the map
// hashes the DER; lookups do not copy it).
type certCache struct {
	mu  sync.Mutex
	max int
	m   map[string]*list.Element
	ll  list.List // of *certCacheItem, most recent first
}

type certCacheItem struct {
	key string
	e   *certEntry
}

func newCertCache(max int) *certCache {
	return &certCache{max: max, m: make(map[string]*list.Element)}
}

// get returns the entry for der, parsing and caching it on a miss.
func (c *certCache) get(der []byte) (*certEntry, error) {
	c.mu.Lock()
	if el, ok := c.m[string(der)]; ok {
		c.ll.MoveToFront(el)
		e := el.Value.(*certCacheItem).e
		c.mu.Unlock()
		return e, nil
	}
	c.mu.Unlock()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	e := newCertEntry(cert)
	c.add(e)
	return e, nil
}

// getParsed returns the entry for an already parsed certificate (BER fallback path).
func (c *certCache) getParsed(cert *x509.Certificate) *certEntry {
	c.mu.Lock()
	if el, ok := c.m[string(cert.Raw)]; ok {
		c.ll.MoveToFront(el)
		e := el.Value.(*certCacheItem).e
		c.mu.Unlock()
		return e
	}
	c.mu.Unlock()
	e := newCertEntry(cert)
	c.add(e)
	return e
}

func (c *certCache) add(e *certEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := string(e.cert.Raw)
	if el, ok := c.m[key]; ok { // raced with another goroutine: keep the first
		c.ll.MoveToFront(el)
		return
	}
	c.m[key] = c.ll.PushFront(&certCacheItem{key, e})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*certCacheItem).key)
	}
}

// chainEntry is a successful chain validation: the chain holds at every time in
// [notBefore, notAfter], the intersection of the validity periods of its certificates.
type chainEntry struct {
	chain     []*x509.Certificate
	notBefore time.Time
	notAfter  time.Time
}

// covers reports whether the cached validation applies at t.
func (e *chainEntry) covers(t time.Time) bool {
	return !t.Before(e.notBefore) && !t.After(e.notAfter)
}

// chainCache is a concurrency-safe LRU of successful chain validations keyed by the SHA-256
// over the signer's and the offered intermediates' DER hashes (and the usage mode).
type chainCache struct {
	misses atomic.Int64 // validations not answered by the cache (tests, diagnostics)
	mu     sync.Mutex
	max    int
	m      map[[32]byte]*list.Element
	ll     list.List // of *chainCacheItem
}

type chainCacheItem struct {
	key [32]byte
	e   *chainEntry
}

func newChainCache(max int) *chainCache {
	return &chainCache{max: max, m: make(map[[32]byte]*list.Element)}
}

func (c *chainCache) get(key [32]byte) *chainEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		c.ll.MoveToFront(el)
		return el.Value.(*chainCacheItem).e
	}
	return nil
}

func (c *chainCache) put(key [32]byte, e *chainEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		el.Value.(*chainCacheItem).e = e
		c.ll.MoveToFront(el)
		return
	}
	c.m[key] = c.ll.PushFront(&chainCacheItem{key, e})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*chainCacheItem).key)
	}
}

func chainWindow(chain []*x509.Certificate) (nb, na time.Time) {
	for i, c := range chain {
		if i == 0 || c.NotBefore.After(nb) {
			nb = c.NotBefore
		}
		if i == 0 || c.NotAfter.Before(na) {
			na = c.NotAfter
		}
	}
	return nb, na
}
