package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrConfig: the mailbox file (or a mailbox's secret) is invalid; use errors.Is.
var ErrConfig = errors.New("ingest: invalid mailbox configuration")

// MaxMailboxFileSize bounds the mailbox file.
const MaxMailboxFileSize = 1 << 20

// TLS modes of a mailbox.
const (
	TLSImplicit = "implicit" // TLS from the first byte (IMAPS, port 993)
	TLSStartTLS = "starttls" // plain connection upgraded with STARTTLS before login (port 143)
	TLSNone     = "none"     // no TLS: loopback only
)

// Mailbox is one entry of the mailbox file (the contract in the architecture document).
type Mailbox struct {
	// Name is unique: cursors, sources and metrics use it.
	Name string `yaml:"name"`
	Host string `yaml:"host"`
	// Port defaults to 993 for implicit TLS and 143 for starttls and none.
	Port int `yaml:"port"`
	// TLS is TLSImplicit (default), TLSStartTLS or TLSNone (only to a loopback host).
	TLS string `yaml:"tls"`
	// CAFile, when set, names PEM certificates to trust for this server instead of the system's.
	CAFile   string `yaml:"ca_file"`
	Username string `yaml:"username"`
	// The password comes from a file (its content, trailing newline trimmed) or from an
	// environment variable, never from the mailbox file itself.
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
	// Folders are the folders to pull: ["*"] (default) for every selectable folder, or names.
	// A name may hold path.Match wildcards (*, ?, [...]; "*" alone matches every folder, at
	// any depth).
	Folders []string `yaml:"folders"`
	// ExcludeFolders are left out (names or path.Match patterns).
	ExcludeFolders []string `yaml:"exclude_folders"`
	// AfterArchive is the policy for messages once archived: "keep" (default),
	// "move:FOLDER:DAYS" or "expunge:DAYS".
	AfterArchive string `yaml:"after_archive"`

	policy Policy
}

// Policy returns the parsed AfterArchive policy (valid after ParseMailboxes).
func (m *Mailbox) Policy() Policy { return m.policy }

// Addr returns host:port.
func (m *Mailbox) Addr() string { return net.JoinHostPort(m.Host, strconv.Itoa(m.Port)) }

// PolicyAction is what an after_archive policy does.
type PolicyAction int

// Policy actions.
const (
	Keep    PolicyAction = iota // never touch the mailbox (default)
	Move                        // move archived messages older than Days to Folder
	Expunge                     // expunge archived messages older than Days
)

// Policy is a parsed after_archive value.
type Policy struct {
	Action PolicyAction
	Folder string // Move only
	Days   int
}

// Writes reports whether the policy changes the mailbox (its folders are then opened with
// SELECT instead of EXAMINE).
func (p Policy) Writes() bool { return p.Action != Keep }

func (p Policy) String() string {
	switch p.Action {
	case Move:
		return fmt.Sprintf("move:%s:%d", p.Folder, p.Days)
	case Expunge:
		return fmt.Sprintf("expunge:%d", p.Days)
	}
	return "keep"
}

// ParsePolicy parses an after_archive value: keep | move:FOLDER:DAYS | expunge:DAYS. FOLDER may
// contain colons (DAYS is after the last one); DAYS is a whole number of days, 0 to 36500.
func ParsePolicy(s string) (Policy, error) {
	s = strings.TrimSpace(s)
	days := func(d string) (int, error) {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 || n > 36500 {
			return 0, fmt.Errorf("%w: after_archive %q: DAYS must be a number of days from 0 to 36500", ErrConfig, s)
		}
		return n, nil
	}
	switch {
	case s == "" || s == "keep":
		return Policy{}, nil
	case strings.HasPrefix(s, "expunge:"):
		n, err := days(strings.TrimPrefix(s, "expunge:"))
		return Policy{Action: Expunge, Days: n}, err
	case strings.HasPrefix(s, "move:"):
		rest := strings.TrimPrefix(s, "move:")
		i := strings.LastIndexByte(rest, ':')
		if i <= 0 {
			return Policy{}, fmt.Errorf("%w: after_archive %q: want move:FOLDER:DAYS", ErrConfig, s)
		}
		n, err := days(rest[i+1:])
		return Policy{Action: Move, Folder: rest[:i], Days: n}, err
	}
	return Policy{}, fmt.Errorf("%w: after_archive %q: want keep, move:FOLDER:DAYS or expunge:DAYS", ErrConfig, s)
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$`)

// LoadMailboxes reads and checks the mailbox file at path (see ParseMailboxes).
func LoadMailboxes(file string) ([]Mailbox, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxMailboxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, file, err)
	}
	if len(b) > MaxMailboxFileSize {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrConfig, file, MaxMailboxFileSize)
	}
	ms, err := ParseMailboxes(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return ms, nil
}

// ParseMailboxes parses the mailbox file (YAML, `mailboxes:` list; unknown keys are errors),
// fills in the defaults and checks every entry: unique names, a host, a TLS mode (plaintext only
// to a loopback host), a username, exactly one of password_file and password_env (a password in
// the file itself is refused), and the after_archive policy.
func ParseMailboxes(data []byte) ([]Mailbox, error) {
	var doc struct {
		Mailboxes []Mailbox `yaml:"mailboxes"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: empty mailbox file", ErrConfig)
		}
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if len(doc.Mailboxes) == 0 {
		return nil, fmt.Errorf("%w: no mailboxes", ErrConfig)
	}
	seen := map[string]bool{}
	for i := range doc.Mailboxes {
		m := &doc.Mailboxes[i]
		if err := m.check(); err != nil {
			return nil, fmt.Errorf("%w: mailbox %d (%q): %v", ErrConfig, i+1, m.Name, err)
		}
		if seen[m.Name] {
			return nil, fmt.Errorf("%w: mailbox name %q appears twice", ErrConfig, m.Name)
		}
		seen[m.Name] = true
	}
	return doc.Mailboxes, nil
}

func (m *Mailbox) check() error {
	if !nameRE.MatchString(m.Name) {
		return errors.New("name: want 1-128 letters, digits or ._@+- (it keys cursors and metrics)")
	}
	if m.Host == "" || strings.ContainsAny(m.Host, " /\t") {
		return errors.New("host: missing or malformed")
	}
	switch m.TLS {
	case "":
		m.TLS = TLSImplicit
	case TLSImplicit, TLSStartTLS, TLSNone:
	default:
		return fmt.Errorf("tls %q: want implicit, starttls or none", m.TLS)
	}
	if m.Port == 0 {
		m.Port = 993
		if m.TLS != TLSImplicit {
			m.Port = 143
		}
	}
	if m.Port < 1 || m.Port > 65535 {
		return fmt.Errorf("port %d out of range", m.Port)
	}
	if m.TLS == TLSNone && !isLoopback(m.Host) {
		return fmt.Errorf("tls: none is allowed only to a loopback host, not %q", m.Host)
	}
	if m.TLS == TLSNone && m.CAFile != "" {
		return errors.New("ca_file given with tls: none")
	}
	if m.Username == "" {
		return errors.New("username: missing")
	}
	if (m.PasswordFile == "") == (m.PasswordEnv == "") {
		return errors.New("want exactly one of password_file and password_env")
	}
	if len(m.Folders) == 0 {
		m.Folders = []string{"*"}
	}
	for _, f := range append(append([]string{}, m.Folders...), m.ExcludeFolders...) {
		if f == "" {
			return errors.New("empty folder name")
		}
		if _, err := path.Match(f, ""); err != nil {
			return fmt.Errorf("folder pattern %q: %v", f, err)
		}
	}
	p, err := ParsePolicy(m.AfterArchive)
	if err != nil {
		return err
	}
	m.policy = p
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// password returns the mailbox's password from its file or environment variable (lookupEnv;
// nil refuses password_env).
func (m *Mailbox) password(lookupEnv func(string) (string, bool)) (string, error) {
	if m.PasswordFile != "" {
		b, err := os.ReadFile(m.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("%w: mailbox %s: password_file: %w", ErrConfig, m.Name, err)
		}
		p := strings.TrimRight(string(b), "\r\n")
		if p == "" {
			return "", fmt.Errorf("%w: mailbox %s: password_file %s is empty", ErrConfig, m.Name, m.PasswordFile)
		}
		return p, nil
	}
	if lookupEnv == nil {
		return "", fmt.Errorf("%w: mailbox %s: password_env is not available here", ErrConfig, m.Name)
	}
	p, ok := lookupEnv(m.PasswordEnv)
	if !ok || p == "" {
		return "", fmt.Errorf("%w: mailbox %s: environment variable %s is not set", ErrConfig, m.Name, m.PasswordEnv)
	}
	return p, nil
}

// wantFolder reports whether the folder name is selected by the mailbox's folders and
// exclude_folders.
func (m *Mailbox) wantFolder(name string) bool {
	match := func(pats []string) bool {
		for _, p := range pats {
			if p == name || p == "*" {
				return true
			}
			if ok, _ := path.Match(p, name); ok {
				return true
			}
		}
		return false
	}
	return match(m.Folders) && !match(m.ExcludeFolders)
}
