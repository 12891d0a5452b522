package pectest

import (
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/big"
	"math/rand/v2"
	"sync"
)

// keyBits is the size of every generated RSA key (real PEC signers use RSA-2048).
const keyBits = 2048

var (
	keyMu    sync.Mutex
	keyCache = map[string]*keyEntry{}
)

type keyEntry struct {
	once sync.Once
	key  *rsa.PrivateKey
	err  error
}

// Key returns the RSA-2048 private key derived from seed and label. The same (seed, label) always
// gives the same key; keys are generated once per process and cached, since generation takes
// about a tenth of a second. crypto/rsa.GenerateKey ignores custom random sources, so the primes
// are drawn here from a ChaCha8 stream seeded with SHA-256(seed, label).
func Key(seed int64, label string) (*rsa.PrivateKey, error) {
	id := fmt.Sprintf("%d/%s", seed, label)
	keyMu.Lock()
	e := keyCache[id]
	if e == nil {
		e = &keyEntry{}
		keyCache[id] = e
	}
	keyMu.Unlock()
	e.once.Do(func() { e.key, e.err = deriveKey(seed, label) })
	return e.key, e.err
}

func deriveKey(seed int64, label string) (*rsa.PrivateKey, error) {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(seed))
	h.Write([]byte("pectest rsa key\x00"))
	h.Write(b[:])
	h.Write([]byte(label))
	var s [32]byte
	copy(s[:], h.Sum(nil))
	rng := rand.New(rand.NewChaCha8(s))

	e := big.NewInt(65537)
	one := big.NewInt(1)
	for {
		p := genPrime(rng, keyBits/2)
		q := genPrime(rng, keyBits/2)
		if p.Cmp(q) == 0 {
			continue
		}
		if p.Cmp(q) < 0 {
			p, q = q, p
		}
		n := new(big.Int).Mul(p, q)
		if n.BitLen() != keyBits {
			continue
		}
		pm1 := new(big.Int).Sub(p, one)
		qm1 := new(big.Int).Sub(q, one)
		phi := new(big.Int).Mul(pm1, qm1)
		d := new(big.Int).ModInverse(e, phi)
		if d == nil {
			continue
		}
		k := &rsa.PrivateKey{
			PublicKey: rsa.PublicKey{N: n, E: 65537},
			D:         d,
			Primes:    []*big.Int{p, q},
		}
		k.Precompute()
		if err := k.Validate(); err != nil {
			return nil, fmt.Errorf("pectest: derived key invalid: %w", err)
		}
		return k, nil
	}
}

// smallPrimes are used to sieve prime candidates before the probabilistic test.
var smallPrimes = func() []uint64 {
	var ps []uint64
	for n := uint64(3); n < 1<<14; n += 2 {
		prime := true
		for _, p := range ps {
			if p*p > n {
				break
			}
			if n%p == 0 {
				prime = false
				break
			}
		}
		if prime {
			ps = append(ps, n)
		}
	}
	return ps
}()

// genPrime returns a prime of exactly bits bits with the two top bits set (so that the product
// of two such primes has exactly 2*bits bits) and p-1 coprime to 65537.
func genPrime(rng *rand.Rand, bits int) *big.Int {
	buf := make([]byte, bits/8)
	mods := make([]uint64, len(smallPrimes))
	cand := new(big.Int)
	bigDelta := new(big.Int)
	e := big.NewInt(65537)
	r := new(big.Int)
	for {
		for i := 0; i < len(buf); i += 8 {
			binary.BigEndian.PutUint64(buf[i:], rng.Uint64())
		}
		buf[0] |= 0xC0
		buf[len(buf)-1] |= 1
		base := new(big.Int).SetBytes(buf)
		for i, sp := range smallPrimes {
			mods[i] = new(big.Int).Mod(base, new(big.Int).SetUint64(sp)).Uint64()
		}
	search:
		for delta := uint64(0); delta < 1<<16; delta += 2 {
			for i, sp := range smallPrimes {
				if (mods[i]+delta)%sp == 0 {
					continue search
				}
			}
			bigDelta.SetUint64(delta)
			cand.Add(base, bigDelta)
			if cand.BitLen() != bits {
				break
			}
			if r.Mod(cand, e).Int64() == 1 {
				continue
			}
			// Baillie-PSW only: no known counterexample, and these are test keys.
			if cand.ProbablyPrime(0) {
				return new(big.Int).Set(cand)
			}
		}
	}
}
