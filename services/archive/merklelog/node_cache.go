package merklelog

import (
	"math/bits"
	"sync"

	"github.com/transparency-dev/merkle/compact"
)

// Bounds of the cache of upper nodes (see nodeCache).
const (
	// cacheMinLevel is the lowest level of a cached node: nodes below it are many, and few
	// proofs share them.
	cacheMinLevel = 4
	// cacheLevels is how many levels below the top of the tree are cached (at most about
	// 2^(cacheLevels+1) nodes), whatever the size of the log.
	cacheLevels = 17
	// maxCachedNodes is the most nodes kept: past it the cache starts over.
	maxCachedNodes = 1 << 18
)

// nodeCache keeps the hashes of the upper stored nodes that inclusion proofs read. A stored node
// is a complete subtree, written once when its last leaf is appended and never changed (the
// migrations' triggers refuse it), so its hash is the same for every tree size that contains it:
// proofs against one checkpoint, and against every later one, share the nodes near the top.
// Only nodes read from the database are cached; a proof made from them is verified by its
// reader against the signed checkpoint, as any other.
type nodeCache struct {
	mu sync.RWMutex
	m  map[compact.NodeID][32]byte
}

// minLevel is the lowest level cached in a tree of size: the cacheLevels levels below its top,
// and not below cacheMinLevel.
func (c *nodeCache) minLevel(size uint64) uint {
	return uint(max(cacheMinLevel, bits.Len64(size)-cacheLevels))
}

// get fills in hs[i] for every ids[i] cached and returns the indices of ids it did not have.
func (c *nodeCache) get(ids []compact.NodeID, hs [][]byte, size uint64) (missing []int) {
	lvl := c.minLevel(size)
	c.mu.RLock()
	defer c.mu.RUnlock()
	for i, id := range ids {
		if id.Level >= lvl {
			if h, ok := c.m[id]; ok {
				hs[i] = h[:]
				continue
			}
		}
		missing = append(missing, i)
	}
	return missing
}

// put caches the nodes of ids (with their 32-byte hashes hs) at the cached levels of a tree of
// size.
func (c *nodeCache) put(ids []compact.NodeID, hs [][]byte, size uint64) {
	lvl := c.minLevel(size)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, id := range ids {
		if id.Level < lvl || len(hs[i]) != 32 {
			continue
		}
		if c.m == nil || len(c.m) >= maxCachedNodes {
			c.m = make(map[compact.NodeID][32]byte)
		}
		c.m[id] = [32]byte(hs[i])
	}
}
