package pec

// Limits bound the work [Parse] does on one input. A zero field means the default.
type Limits struct {
	MaxSize       int // bytes of raw input; default 64 MiB
	MaxDepth      int // MIME nesting (multipart and message/rfc822); default 16
	MaxHeaders    int // header fields per entity; default 1000
	MaxParts      int // MIME parts in total; default 10000
	MaxXMLDepth   int // element nesting in daticert.xml; default 32
	MaxXMLSize    int // bytes of daticert.xml; default 1 MiB
	MaxHeaderSize int // bytes of one entity's header block; default 1 MiB
}

// Options configure [Parse]. A nil *Options means the defaults.
type Options struct {
	Limits Limits
}

const (
	defaultMaxSize       = 64 << 20
	defaultMaxDepth      = 16
	defaultMaxHeaders    = 1000
	defaultMaxParts      = 10000
	defaultMaxXMLDepth   = 32
	defaultMaxXMLSize    = 1 << 20
	defaultMaxHeaderSize = 1 << 20
)

func (o *Options) limits() Limits {
	var l Limits
	if o != nil {
		l = o.Limits
	}
	if l.MaxSize <= 0 {
		l.MaxSize = defaultMaxSize
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = defaultMaxDepth
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = defaultMaxHeaders
	}
	if l.MaxParts <= 0 {
		l.MaxParts = defaultMaxParts
	}
	if l.MaxXMLDepth <= 0 {
		l.MaxXMLDepth = defaultMaxXMLDepth
	}
	if l.MaxXMLSize <= 0 {
		l.MaxXMLSize = defaultMaxXMLSize
	}
	if l.MaxHeaderSize <= 0 {
		l.MaxHeaderSize = defaultMaxHeaderSize
	}
	return l
}
