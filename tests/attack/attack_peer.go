// attack_peer is a hostile NanaSQLite client for the end-to-end attack tests
// of nanasqlite-server. It is independent of the project's C code: the QUIC
// stack is Debian's quic-go 0.29 (golang-github-lucas-clemente-quic-go-dev)
// and the wire protocol (u32 big-endian length + msgpack, Ed25519 challenge
// login) is written here from scratch, so what it proves does not depend on
// our own client agreeing with our own server. Built offline by
// tests/attack/build-attack.sh.
//
// Modes (each bounded by --hold or --timeout seconds; each prints one JSON
// line of results on stdout at the end, and JSON progress lines on stderr
// with --verbose):
//
//	flood   --connect ADDR --ca PEM --conns N [--rate PER_SEC] [--parallel P] --hold S [--reopen]
//	    opens N connections that never log in, kept alive with PINGs;
//	    --reopen redials every one the server closes or refuses.
//	partial --connect ADDR --ca PEM --conns N --streams S --frame-bytes B --send-bytes X
//	        --hold S [--auth KEYFILE] [--exit-when-answered] [--call-after METHOD]
//	    per stream writes the length B, then X bytes of the body, never the
//	    rest and no FIN; records what the server answers and when.
//	unread  --connect ADDR --ca PEM --auth KEYFILE --conns N --calls M --method NAME
//	        --args JSON --hold S [--read-after]
//	    logs in, sends M calls each on its own stream, reads nothing during
//	    the hold (optionally reads every reply afterwards), then closes.
//	call    --connect ADDR --ca PEM --auth KEYFILE --method NAME [--args JSON] [--kwargs JSON]
//	    one call, as a well-behaved client: the decoded reply and how long
//	    connecting, logging in and the reply took.
//
// --args and --kwargs take JSON text, or @FILE to read it from a file.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	quic "github.com/lucas-clemente/quic-go"
)

// The server selects no ALPN or "nanasqlite"; a quic-go client fails the
// handshake unless the server selects one, so this one is offered.
const alpn = "nanasqlite"

// Replies larger than this are not read (no honest reply is this big).
const maxReplyBytes = 256 << 20

func usage() {
	fmt.Fprintf(os.Stderr, `usage:
  %[1]s flood   --connect ADDR --ca PEM --conns N [--rate PER_SEC] [--parallel P] --hold S [--reopen]
  %[1]s partial --connect ADDR --ca PEM --conns N --streams S --frame-bytes B --send-bytes X --hold S
                [--auth KEYFILE] [--exit-when-answered] [--call-after METHOD [--call-args JSON]]
  %[1]s unread  --connect ADDR --ca PEM --auth KEYFILE --conns N --calls M --method NAME --args JSON
                [--db NAME] --hold S [--read-after] [--read-timeout S]
  %[1]s call    --connect ADDR --ca PEM --auth KEYFILE --method NAME [--args JSON] [--kwargs JSON]
                [--db NAME] [--timeout S]
common: [--server-name NAME] [--account NAME] [--keepalive-ms N] [--handshake-timeout-ms N] [--verbose]
`, filepath.Base(os.Args[0]))
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "attack_peer: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	if os.Getenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING") == "" {
		os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	}
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	switch os.Args[1] {
	case "flood":
		runFlood(os.Args[2:])
	case "partial":
		runPartial(os.Args[2:])
	case "unread":
		runUnread(os.Args[2:])
	case "call":
		runCall(os.Args[2:])
	case "-h", "--help", "help":
		usage()
	default:
		usage()
		os.Exit(2)
	}
}

// ---------------------------------------------------------------- msgpack

// mpAppend appends the msgpack form of v (nil, bool, int, int64, uint64,
// float64, string, []byte, []interface{}, map[string]interface{}) to b.
func mpAppend(b []byte, v interface{}) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, 0xc0), nil
	case bool:
		if x {
			return append(b, 0xc3), nil
		}
		return append(b, 0xc2), nil
	case int:
		return mpInt(b, int64(x)), nil
	case int64:
		return mpInt(b, x), nil
	case uint64:
		if x <= math.MaxInt64 {
			return mpInt(b, int64(x)), nil
		}
		return put64(append(b, 0xcf), x), nil
	case float64:
		return put64(append(b, 0xcb), math.Float64bits(x)), nil
	case string:
		b = mpHeader(b, len(x), 0xa0, 31, 0xd9, 0xda, 0xdb)
		return append(b, x...), nil
	case []byte:
		b = mpHeader(b, len(x), 0, -1, 0xc4, 0xc5, 0xc6)
		return append(b, x...), nil
	case []interface{}:
		b = mpHeader(b, len(x), 0x90, 15, 0, 0xdc, 0xdd)
		var err error
		for _, e := range x {
			if b, err = mpAppend(b, e); err != nil {
				return nil, err
			}
		}
		return b, nil
	case map[string]interface{}:
		b = mpHeader(b, len(x), 0x80, 15, 0, 0xde, 0xdf)
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var err error
		for _, k := range keys {
			b, _ = mpAppend(b, k)
			if b, err = mpAppend(b, x[k]); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	return nil, fmt.Errorf("msgpack: cannot encode %T", v)
}

// mpHeader appends a length header: the fix form (fixBase|n) when n <=
// fixMax, else the 8-, 16- or 32-bit form (a zero tag means "no such form").
func mpHeader(b []byte, n int, fixBase byte, fixMax int, t8, t16, t32 byte) []byte {
	switch {
	case n <= fixMax:
		return append(b, fixBase|byte(n))
	case n <= 0xff && t8 != 0:
		return append(b, t8, byte(n))
	case n <= 0xffff:
		return put16(append(b, t16), uint16(n))
	default:
		return put32(append(b, t32), uint32(n))
	}
}

func mpInt(b []byte, n int64) []byte {
	switch {
	case n >= 0 && n < 128:
		return append(b, byte(n))
	case n < 0 && n >= -32:
		return append(b, byte(n))
	case n >= 0 && n <= 0xff:
		return append(b, 0xcc, byte(n))
	case n >= 0 && n <= 0xffff:
		return put16(append(b, 0xcd), uint16(n))
	case n >= 0 && n <= 0xffffffff:
		return put32(append(b, 0xce), uint32(n))
	case n >= 0:
		return put64(append(b, 0xcf), uint64(n))
	case n >= -128:
		return append(b, 0xd0, byte(n))
	case n >= -32768:
		return put16(append(b, 0xd1), uint16(n))
	case n >= math.MinInt32:
		return put32(append(b, 0xd2), uint32(n))
	default:
		return put64(append(b, 0xd3), uint64(n))
	}
}

func put16(b []byte, v uint16) []byte { return append(b, byte(v>>8), byte(v)) }
func put32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
func put64(b []byte, v uint64) []byte { return put32(put32(b, uint32(v>>32)), uint32(v)) }

// mpReader decodes one msgpack value from a byte slice it does not own.
type mpReader struct {
	b     []byte
	depth int
}

func (r *mpReader) take(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)) {
		return nil, errors.New("msgpack: truncated")
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out, nil
}

func (r *mpReader) uint(n int) (uint64, error) {
	p, err := r.take(uint64(n))
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range p {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// value decodes the next value: maps come back as map[string]interface{}
// (non-string keys are printed into strings), bin as []byte, ints as int64
// (uint64 above the int64 range), floats as float64.
func (r *mpReader) value() (interface{}, error) {
	if r.depth > 64 {
		return nil, errors.New("msgpack: nested too deep")
	}
	t, err := r.uint(1)
	if err != nil {
		return nil, err
	}
	c := byte(t)
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c >= 0xa0 && c <= 0xbf:
		return r.str(uint64(c & 0x1f))
	case c >= 0x90 && c <= 0x9f:
		return r.array(uint64(c & 0x0f))
	case c >= 0x80 && c <= 0x8f:
		return r.mapping(uint64(c & 0x0f))
	}
	switch c {
	case 0xc0:
		return nil, nil
	case 0xc2:
		return false, nil
	case 0xc3:
		return true, nil
	case 0xc4, 0xc5, 0xc6:
		n, err := r.uint(1 << (c - 0xc4))
		if err != nil {
			return nil, err
		}
		p, err := r.take(n)
		if err != nil {
			return nil, err
		}
		return append([]byte(nil), p...), nil
	case 0xca:
		v, err := r.uint(4)
		return float64(math.Float32frombits(uint32(v))), err
	case 0xcb:
		v, err := r.uint(8)
		return math.Float64frombits(v), err
	case 0xcc, 0xcd, 0xce, 0xcf:
		v, err := r.uint(1 << (c - 0xcc))
		if err != nil {
			return nil, err
		}
		if v > math.MaxInt64 {
			return v, nil
		}
		return int64(v), nil
	case 0xd0, 0xd1, 0xd2, 0xd3:
		n := 1 << (c - 0xd0)
		v, err := r.uint(n)
		if err != nil {
			return nil, err
		}
		shift := uint(64 - 8*n)
		return int64(v<<shift) >> shift, nil
	case 0xd9, 0xda, 0xdb:
		n, err := r.uint(1 << (c - 0xd9))
		if err != nil {
			return nil, err
		}
		return r.str(n)
	case 0xdc, 0xdd:
		n, err := r.uint(2 << (c - 0xdc))
		if err != nil {
			return nil, err
		}
		return r.array(n)
	case 0xde, 0xdf:
		n, err := r.uint(2 << (c - 0xde))
		if err != nil {
			return nil, err
		}
		return r.mapping(n)
	}
	return nil, fmt.Errorf("msgpack: unsupported type byte 0x%02x", c)
}

func (r *mpReader) str(n uint64) (interface{}, error) {
	p, err := r.take(n)
	if err != nil {
		return nil, err
	}
	return string(p), nil
}

func (r *mpReader) array(n uint64) (interface{}, error) {
	if n > uint64(len(r.b)) {
		return nil, errors.New("msgpack: array longer than its data")
	}
	r.depth++
	defer func() { r.depth-- }()
	out := make([]interface{}, 0, n)
	for i := uint64(0); i < n; i++ {
		v, err := r.value()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (r *mpReader) mapping(n uint64) (interface{}, error) {
	if n > uint64(len(r.b))/2 {
		return nil, errors.New("msgpack: map longer than its data")
	}
	r.depth++
	defer func() { r.depth-- }()
	out := make(map[string]interface{}, n)
	for i := uint64(0); i < n; i++ {
		k, err := r.value()
		if err != nil {
			return nil, err
		}
		v, err := r.value()
		if err != nil {
			return nil, err
		}
		ks, ok := k.(string)
		if !ok {
			ks = fmt.Sprint(k)
		}
		out[ks] = v
	}
	return out, nil
}

// mpDecode decodes exactly one value filling all of b.
func mpDecode(b []byte) (interface{}, error) {
	r := mpReader{b: b}
	v, err := r.value()
	if err != nil {
		return nil, err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("msgpack: %d bytes after the value", len(r.b))
	}
	return v, nil
}

// ---------------------------------------------------------------- JSON <-> values

// parseJSONArg reads a JSON flag value (or @FILE) into msgpack-encodable
// values: integers as int64, other numbers as float64.
func parseJSONArg(name, text string) interface{} {
	if strings.HasPrefix(text, "@") {
		b, err := os.ReadFile(text[1:])
		if err != nil {
			fail("%s: %v", name, err)
		}
		text = string(b)
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v interface{}
	if err := dec.Decode(&v); err != nil {
		fail("%s is not JSON: %v", name, err)
	}
	return fromJSON(v)
}

func fromJSON(v interface{}) interface{} {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []interface{}:
		for i := range x {
			x[i] = fromJSON(x[i])
		}
		return x
	case map[string]interface{}:
		for k := range x {
			x[k] = fromJSON(x[k])
		}
		return x
	}
	return v
}

// printable turns a decoded value into something encoding/json accepts
// (non-finite floats become strings); strings longer than maxStr (if > 0)
// are replaced by a note of their length.
func printable(v interface{}, maxStr int) interface{} {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Sprint(x)
		}
	case string:
		if maxStr > 0 && len(x) > maxStr {
			return fmt.Sprintf("<string of %d bytes>", len(x))
		}
	case []byte:
		if maxStr > 0 && len(x) > maxStr {
			return fmt.Sprintf("<bin of %d bytes>", len(x))
		}
	case []interface{}:
		out := make([]interface{}, len(x))
		for i := range x {
			out[i] = printable(x[i], maxStr)
		}
		return out
	case map[string]interface{}:
		out := make(map[string]interface{}, len(x))
		for k, e := range x {
			out[k] = printable(e, maxStr)
		}
		return out
	}
	return v
}

// emit prints one JSON line on w.
func emit(w io.Writer, v interface{}) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"json_error": err.Error()})
	}
	w.Write(append(b, '\n'))
}

// ---------------------------------------------------------------- frames

// encodeFrame returns u32 big-endian length + msgpack of v.
func encodeFrame(v interface{}) []byte {
	b, err := mpAppend(make([]byte, 4, 64), v)
	if err != nil {
		fail("%v", err)
	}
	n := uint32(len(b) - 4)
	b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return b
}

// readFrame reads one reply frame from r and decodes it.
func readFrame(r io.Reader) (interface{}, int, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, 0, err
	}
	n := uint32(hdr[0])<<24 | uint32(hdr[1])<<16 | uint32(hdr[2])<<8 | uint32(hdr[3])
	if n > maxReplyBytes {
		return nil, 0, fmt.Errorf("reply frame of %d bytes is over %d", n, maxReplyBytes)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, 0, fmt.Errorf("reply cut after its length (%d bytes): %w", n, err)
	}
	v, err := mpDecode(body)
	return v, int(n), err
}

// ---------------------------------------------------------------- errors

// closeInfo is what an error from quic-go says about why a connection or
// stream ended.
type closeInfo struct {
	Kind   string // CONNECTION_REFUSED, another transport code, application, idle_timeout, ...
	Code   uint64
	Reason string // the peer's reason phrase, if any
	Remote bool   // the server closed (not us, not a timer)
}

func classify(err error) closeInfo {
	var te *quic.TransportError
	var ae *quic.ApplicationError
	var se *quic.StreamError
	var it *quic.IdleTimeoutError
	var ht *quic.HandshakeTimeoutError
	var sr *quic.StatelessResetError
	switch {
	case errors.As(err, &te):
		return closeInfo{te.ErrorCode.String(), uint64(te.ErrorCode), te.ErrorMessage, te.Remote}
	case errors.As(err, &ae):
		return closeInfo{"application", uint64(ae.ErrorCode), ae.ErrorMessage, ae.Remote}
	case errors.As(err, &se):
		return closeInfo{"stream_reset", uint64(se.ErrorCode), "", true}
	case errors.As(err, &it):
		return closeInfo{"idle_timeout", 0, "", false}
	case errors.As(err, &ht):
		return closeInfo{"handshake_timeout", 0, "", false}
	case errors.As(err, &sr):
		return closeInfo{"stateless_reset", 0, "", true}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return closeInfo{"timeout", 0, "", false}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return closeInfo{"timeout", 0, "", false}
	}
	return closeInfo{"other", 0, err.Error(), false}
}

// label is the key under which an outcome is counted: "KIND: reason".
func (c closeInfo) label() string {
	k := c.Kind
	if c.Kind == "application" || c.Kind == "stream_reset" {
		k = fmt.Sprintf("%s 0x%x", c.Kind, c.Code)
	}
	if c.Reason == "" {
		return k
	}
	return k + ": " + c.Reason
}

// counts is a concurrent string -> count map.
type counts struct {
	mu sync.Mutex
	m  map[string]int
}

func newCounts() *counts { return &counts{m: map[string]int{}} }

func (c *counts) add(k string) {
	c.mu.Lock()
	c.m[k]++
	c.mu.Unlock()
}

func (c *counts) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

// ---------------------------------------------------------------- connecting

// common holds the flags every mode shares.
type common struct {
	connect, ca, serverName, account string
	keepaliveMs, handshakeMs         int
	verbose, skipVerify              bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.connect, "connect", "", "server UDP address HOST:PORT")
	fs.StringVar(&c.ca, "ca", "", "CA (PEM) to verify the server certificate with")
	fs.StringVar(&c.serverName, "server-name", "localhost", "name the server certificate must carry")
	fs.StringVar(&c.account, "account", "", "account name sent with the login response")
	fs.IntVar(&c.keepaliveMs, "keepalive-ms", 1000, "QUIC PING period (0: none)")
	fs.IntVar(&c.handshakeMs, "handshake-timeout-ms", 5000, "handshake idle timeout")
	fs.BoolVar(&c.verbose, "verbose", false, "progress JSON lines on stderr")
	fs.BoolVar(&c.skipVerify, "skip-verify", false, "do not verify the server certificate (an attacker need not)")
}

// peer dials connections over a small pool of shared UDP sockets (quic-go
// tells connections apart by connection ID), so thousands of connections
// do not need thousands of sockets.
type peer struct {
	addr  *net.UDPAddr
	host  string
	tls   *tls.Config
	qconf *quic.Config
	socks []net.PacketConn
	next  uint32
}

// newPeer checks the common flags and opens nsocks UDP sockets; idle is the
// longest silence the connections tolerate (keep-alives go out far sooner).
func newPeer(c *common, nsocks int, idle time.Duration) *peer {
	if c.connect == "" || c.ca == "" {
		fail("--connect and --ca are required")
	}
	addr, err := net.ResolveUDPAddr("udp", c.connect)
	if err != nil {
		fail("bad --connect %q: %v", c.connect, err)
	}
	pemData, err := os.ReadFile(c.ca)
	if err != nil {
		fail("read --ca: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		fail("no certificate in %s", c.ca)
	}
	p := &peer{
		addr: addr,
		host: c.serverName,
		tls: &tls.Config{
			MinVersion: tls.VersionTLS13,
			RootCAs:    pool,
			ServerName: c.serverName,
			NextProtos: []string{alpn},
			// An attacker has no reason to check whom it floods; skipping
			// the check leaves more of the machine for the attack.
			InsecureSkipVerify: c.skipVerify,
		},
		qconf: &quic.Config{
			HandshakeIdleTimeout: time.Duration(c.handshakeMs) * time.Millisecond,
			MaxIdleTimeout:       idle,
			KeepAlivePeriod:      time.Duration(c.keepaliveMs) * time.Millisecond,
		},
	}
	if nsocks < 1 {
		nsocks = 1
	}
	for i := 0; i < nsocks; i++ {
		laddr := &net.UDPAddr{IP: net.IPv4zero}
		if addr.IP.To4() == nil {
			laddr = &net.UDPAddr{IP: net.IPv6zero}
		}
		s, err := net.ListenUDP("udp", laddr)
		if err != nil {
			fail("UDP socket: %v", err)
		}
		p.socks = append(p.socks, s)
	}
	return p
}

func (p *peer) dial(ctx context.Context) (quic.Connection, error) {
	i := atomic.AddUint32(&p.next, 1) % uint32(len(p.socks))
	return quic.DialContext(ctx, p.socks[i], p.addr, p.host, p.tls, p.qconf)
}

// loadKey reads an unencrypted PKCS#8 PEM Ed25519 private key.
func loadKey(path string) ed25519.PrivateKey {
	b, err := os.ReadFile(path)
	if err != nil {
		fail("read key: %v", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		fail("%s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		fail("%s: %v", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		fail("%s: not an Ed25519 key (%T)", path, k)
	}
	return ek
}

// roundTrip sends one frame on a new stream with FIN and reads the reply.
func roundTrip(ctx context.Context, conn quic.Connection, v interface{}) (interface{}, error) {
	s, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	if _, err := s.Write(encodeFrame(v)); err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	s.Close()
	r, _, err := readFrame(s)
	if err != nil {
		return nil, fmt.Errorf("read reply: %w", err)
	}
	return r, nil
}

// login runs AUTH_START, signs the challenge, and expects AUTH_OK.
func login(ctx context.Context, conn quic.Connection, key ed25519.PrivateKey, account string) error {
	r, err := roundTrip(ctx, conn, "AUTH_START")
	if err != nil {
		return fmt.Errorf("AUTH_START: %w", err)
	}
	m, _ := r.(map[string]interface{})
	data, _ := m["data"].([]byte)
	if m == nil || m["type"] != "challenge" || len(data) != 32 {
		return fmt.Errorf("AUTH_START: unexpected reply %v", printable(r, 200))
	}
	resp := map[string]interface{}{"type": "response", "data": []byte(ed25519.Sign(key, data))}
	if account != "" {
		resp["account"] = account
	}
	r, err = roundTrip(ctx, conn, resp)
	if err != nil {
		return fmt.Errorf("login response: %w", err)
	}
	if r != "AUTH_OK" {
		return fmt.Errorf("login refused: %v", printable(r, 200))
	}
	return nil
}

// request builds a call map.
func request(method string, args, kwargs interface{}, db string) map[string]interface{} {
	if args == nil {
		args = []interface{}{}
	}
	if kwargs == nil {
		kwargs = map[string]interface{}{}
	}
	req := map[string]interface{}{"method": method, "args": args, "kwargs": kwargs}
	if db != "" {
		req["db"] = db
	}
	return req
}

// replySummary describes a decoded reply in a few fields for counting.
func replySummary(r interface{}) (status, errType, msg string) {
	m, ok := r.(map[string]interface{})
	if !ok {
		return "other", "", fmt.Sprint(printable(r, 200))
	}
	status, _ = m["status"].(string)
	errType, _ = m["error_type"].(string)
	msg, _ = m["message"].(string)
	return status, errType, msg
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

func secs(d time.Duration) float64 { return math.Round(float64(d)/1e7) / 100 }

// backstop ends the process if something ignores every deadline.
func backstop(d time.Duration, mode string) {
	time.AfterFunc(d, func() {
		emit(os.Stdout, map[string]interface{}{"mode": mode, "error": "hard timeout"})
		os.Exit(3)
	})
}

// ---------------------------------------------------------------- flood

func runFlood(args []string) {
	fs := flag.NewFlagSet("flood", flag.ExitOnError)
	var c common
	c.register(fs)
	n := fs.Int("conns", 1000, "connections to hold")
	rate := fs.Int("rate", 0, "dials per second at most (0: as fast as --parallel allows)")
	parallel := fs.Int("parallel", 256, "handshakes in flight at once")
	hold := fs.Float64("hold", 20, "seconds the attack lasts (from the first dial)")
	reopen := fs.Bool("reopen", false, "redial every connection the server closes or refuses")
	retryMs := fs.Int("retry-ms", 1000, "with --reopen: wait this long before redialing a refused or failed slot")
	sockets := fs.Int("sockets", 0, "UDP sockets shared by the connections (0: one per 256)")
	fs.Parse(args)
	if fs.NArg() != 0 || *n < 1 || *parallel < 1 || *hold <= 0 {
		fail("flood: bad arguments")
	}
	holdDur := time.Duration(*hold * float64(time.Second))
	backstop(holdDur+30*time.Second, "flood")
	ns := *sockets
	if ns <= 0 {
		ns = (*n + 255) / 256
	}
	p := newPeer(&c, ns, holdDur+60*time.Second)

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), holdDur)
	defer cancel()

	var attempts, opened, refused, failed, closedByServer, lost, open, peak int64
	refusedReasons, failedReasons, closedReasons, lostReasons := newCounts(), newCounts(), newCounts(), newCounts()
	var firstRefusal string
	var firstMu sync.Mutex
	var fullAt float64 = -1 // seconds until N were open at once
	var fullOnce sync.Once

	var tokens <-chan time.Time
	if *rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(*rate))
		defer t.Stop()
		tokens = t.C
	}
	sem := make(chan struct{}, *parallel)

	var mu sync.Mutex
	live := map[quic.Connection]struct{}{}

	sleep := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	slot := func() {
		for ctx.Err() == nil {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			if tokens != nil {
				select {
				case <-tokens:
				case <-ctx.Done():
					<-sem
					return
				}
			}
			atomic.AddInt64(&attempts, 1)
			conn, err := p.dial(ctx)
			<-sem
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				ci := classify(err)
				if ci.Kind == "CONNECTION_REFUSED" {
					atomic.AddInt64(&refused, 1)
					refusedReasons.add(ci.Reason)
					firstMu.Lock()
					if firstRefusal == "" {
						firstRefusal = err.Error()
					}
					firstMu.Unlock()
				} else {
					atomic.AddInt64(&failed, 1)
					failedReasons.add(ci.label())
				}
				if !*reopen || !sleep(time.Duration(*retryMs)*time.Millisecond) {
					return
				}
				continue
			}
			atomic.AddInt64(&opened, 1)
			now := atomic.AddInt64(&open, 1)
			for {
				pk := atomic.LoadInt64(&peak)
				if now <= pk || atomic.CompareAndSwapInt64(&peak, pk, now) {
					break
				}
			}
			if now >= int64(*n) {
				fullOnce.Do(func() { fullAt = secs(time.Since(start)) })
			}
			mu.Lock()
			live[conn] = struct{}{}
			mu.Unlock()
			// The server opens no streams: this returns when the connection
			// ends (or the attack does).
			_, err = conn.AcceptStream(ctx)
			if ctx.Err() != nil {
				return // still open when the attack ended: counted, then closed
			}
			atomic.AddInt64(&open, -1)
			mu.Lock()
			delete(live, conn)
			mu.Unlock()
			ci := classify(err)
			if ci.Remote {
				atomic.AddInt64(&closedByServer, 1)
				closedReasons.add(ci.label())
			} else {
				atomic.AddInt64(&lost, 1)
				lostReasons.add(ci.label())
			}
			if !*reopen {
				return
			}
		}
	}

	var wg sync.WaitGroup
	for i := 0; i < *n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slot()
		}()
	}
	var maxRate, lastOpened int64
	tick := time.NewTicker(time.Second)
	openAtEnd := int64(0)
loop:
	for {
		select {
		case <-tick.C:
			o := atomic.LoadInt64(&opened)
			if o-lastOpened > maxRate {
				maxRate = o - lastOpened
			}
			lastOpened = o
			if c.verbose {
				emit(os.Stderr, map[string]interface{}{
					"t": secs(time.Since(start)), "attempts": atomic.LoadInt64(&attempts),
					"opened": o, "open": atomic.LoadInt64(&open), "refused": atomic.LoadInt64(&refused),
					"failed": atomic.LoadInt64(&failed), "closed_by_server": atomic.LoadInt64(&closedByServer),
				})
			}
		case <-ctx.Done():
			break loop
		}
	}
	tick.Stop()
	mu.Lock()
	openAtEnd = int64(len(live))
	// Closed in small batches: a burst of thousands of CONNECTION_CLOSE
	// packets would overflow the server's socket buffer, and the lost ones
	// would linger there until their idle timeout.
	k := 0
	for conn := range live {
		go conn.CloseWithError(0, "")
		if k++; k%50 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	mu.Unlock()
	waitDone := make(chan struct{})
	go func() { wg.Wait(); close(waitDone) }()
	select {
	case <-waitDone:
	case <-time.After(5 * time.Second):
	}
	out := map[string]interface{}{
		"mode":             "flood",
		"conns":            *n,
		"seconds":          secs(time.Since(start)),
		"attempts":         atomic.LoadInt64(&attempts),
		"opened":           atomic.LoadInt64(&opened),
		"refused":          atomic.LoadInt64(&refused),
		"refused_reasons":  refusedReasons.snapshot(),
		"first_refusal":    firstRefusal,
		"failed":           atomic.LoadInt64(&failed),
		"failed_reasons":   failedReasons.snapshot(),
		"closed_by_server": atomic.LoadInt64(&closedByServer),
		"closed_reasons":   closedReasons.snapshot(),
		"lost":             atomic.LoadInt64(&lost),
		"lost_reasons":     lostReasons.snapshot(),
		"open_at_end":      openAtEnd,
		"peak_open":        atomic.LoadInt64(&peak),
		"all_open_after_s": fullAt,
		"max_opened_per_s": maxRate,
	}
	emit(os.Stdout, out)
	os.Exit(0)
}

// ---------------------------------------------------------------- partial

// streamResult is what happened to one partial frame.
type streamResult struct {
	Conn       int     `json:"conn"`
	Stream     int     `json:"stream"`
	Written    int64   `json:"written"`
	WriteError string  `json:"write_error,omitempty"`
	Outcome    string  `json:"outcome"` // reply, reset, conn_closed, no_answer
	Status     string  `json:"status,omitempty"`
	ErrorType  string  `json:"error_type,omitempty"`
	Message    string  `json:"message,omitempty"`
	Detail     string  `json:"detail,omitempty"`
	Ms         float64 `json:"ms"` // from opening the stream to the answer
}

func runPartial(args []string) {
	fs := flag.NewFlagSet("partial", flag.ExitOnError)
	var c common
	c.register(fs)
	nconns := fs.Int("conns", 1, "connections")
	nstreams := fs.Int("streams", 1, "partial frames (streams) per connection")
	frameBytes := fs.Int64("frame-bytes", 10<<20, "the length the frames announce")
	sendBytes := fs.Int64("send-bytes", 1<<20, "bytes of each body actually sent")
	hold := fs.Float64("hold", 10, "seconds to hold the streams open")
	auth := fs.String("auth", "", "log in with this private key first (default: never log in)")
	exitAnswered := fs.Bool("exit-when-answered", false, "stop as soon as every stream got its answer")
	callAfter := fs.String("call-after", "", "at the end, make this call on the first connection")
	callArgs := fs.String("call-args", "[]", "its arguments (JSON)")
	fs.Parse(args)
	if fs.NArg() != 0 || *nconns < 1 || *nstreams < 1 || *frameBytes < 0 || *sendBytes < 0 ||
		*frameBytes > math.MaxUint32 || *hold <= 0 {
		fail("partial: bad arguments")
	}
	var cargs interface{}
	if *callAfter != "" {
		cargs = parseJSONArg("--call-args", *callArgs)
	}
	var key ed25519.PrivateKey
	if *auth != "" {
		key = loadKey(*auth)
	}
	holdDur := time.Duration(*hold * float64(time.Second))
	backstop(holdDur+40*time.Second, "partial")
	p := newPeer(&c, 1, holdDur+60*time.Second)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), holdDur)
	defer cancel()

	connReasons, authErrors := newCounts(), newCounts()
	conns := make([]quic.Connection, *nconns)
	results := make([]*streamResult, 0, *nconns**nstreams)
	var resMu sync.Mutex
	var answered, pending int64
	allAnswered := make(chan struct{})
	var answeredOnce sync.Once
	var writers, readers sync.WaitGroup
	var connsOpened int

	body := make([]byte, 64<<10)
	for i := range body {
		body[i] = 'x'
	}
	for ci := 0; ci < *nconns && ctx.Err() == nil; ci++ {
		conn, err := p.dial(ctx)
		if err != nil {
			connReasons.add("dial: " + classify(err).label())
			continue
		}
		connsOpened++
		conns[ci] = conn
		if key != nil {
			actx, acancel := context.WithTimeout(ctx, 10*time.Second)
			err := login(actx, conn, key, c.account)
			acancel()
			if err != nil {
				authErrors.add(err.Error())
				continue
			}
		}
		go func(ci int, conn quic.Connection) {
			_, err := conn.AcceptStream(context.Background())
			if ctx.Err() == nil {
				connReasons.add("closed: " + classify(err).label())
			}
		}(ci, conn)
		for si := 0; si < *nstreams; si++ {
			s, err := conn.OpenStreamSync(ctx)
			if err != nil {
				connReasons.add("open stream: " + classify(err).label())
				break
			}
			opened := time.Now()
			r := &streamResult{Conn: ci, Stream: si, Outcome: "no_answer"}
			resMu.Lock()
			results = append(results, r)
			resMu.Unlock()
			atomic.AddInt64(&pending, 1)
			dl, _ := ctx.Deadline()
			s.SetWriteDeadline(dl)
			s.SetReadDeadline(dl)
			writers.Add(1)
			go func() { // the partial frame: length, some body, no FIN
				defer writers.Done()
				n := *frameBytes
				hdr := []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
				if _, err := s.Write(hdr); err != nil {
					resMu.Lock()
					r.WriteError = classify(err).label()
					resMu.Unlock()
					return
				}
				left := *sendBytes
				for left > 0 {
					chunk := body
					if int64(len(chunk)) > left {
						chunk = chunk[:left]
					}
					k, err := s.Write(chunk)
					resMu.Lock()
					r.Written += int64(k)
					if err != nil {
						r.WriteError = classify(err).label()
					}
					resMu.Unlock()
					if err != nil {
						return
					}
					left -= int64(k)
				}
				if c.verbose {
					emit(os.Stderr, map[string]interface{}{"event": "sent", "conn": r.Conn,
						"stream": r.Stream, "bytes": *sendBytes, "ms": ms(time.Since(opened))})
				}
			}()
			readers.Add(1)
			go func() { // whatever the server answers
				defer readers.Done()
				v, _, err := readFrame(s)
				elapsed := ms(time.Since(opened))
				resMu.Lock()
				switch {
				case err == nil:
					r.Outcome = "reply"
					r.Status, r.ErrorType, r.Message = replySummary(v)
				case classify(err).Kind == "stream_reset":
					r.Outcome, r.Detail = "reset", classify(err).label()
				case !classify(err).Remote:
					r.Outcome = "no_answer" // our deadline, or our own close at the end
				default:
					r.Outcome, r.Detail = "conn_closed", classify(err).label()
				}
				if r.Outcome != "no_answer" {
					r.Ms = elapsed
				}
				resMu.Unlock()
				if r.Outcome != "no_answer" {
					atomic.AddInt64(&answered, 1)
					if c.verbose {
						emit(os.Stderr, map[string]interface{}{"event": "answer", "conn": r.Conn,
							"stream": r.Stream, "outcome": r.Outcome, "ms": elapsed})
					}
				}
				if atomic.AddInt64(&pending, -1) == 0 && atomic.LoadInt64(&answered) > 0 {
					answeredOnce.Do(func() { close(allAnswered) })
				}
			}()
		}
	}
	go func() {
		writers.Wait()
		if c.verbose {
			emit(os.Stderr, map[string]interface{}{"event": "sent_all", "ms": ms(time.Since(start))})
		}
	}()
	if *exitAnswered {
		select {
		case <-allAnswered:
		case <-ctx.Done():
		}
	} else {
		<-ctx.Done()
	}
	holdEnded := ms(time.Since(start))
	var after map[string]interface{}
	if *callAfter != "" {
		after = map[string]interface{}{"ok": false}
		if conns[0] == nil {
			after["error"] = "no first connection"
		} else {
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			t0 := time.Now()
			r, err := roundTrip(cctx, conns[0], request(*callAfter, cargs, nil, ""))
			ccancel()
			after["ms"] = ms(time.Since(t0))
			if err != nil {
				after["error"] = classify(err).label()
			} else {
				after["ok"] = true
				after["reply"] = printable(r, 1024)
			}
		}
	}
	cancel()
	for _, conn := range conns {
		if conn != nil {
			conn.CloseWithError(0, "")
		}
	}
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
	}
	resMu.Lock()
	outcomes := map[string]int{}
	var maxMs float64
	nAnswered := 0
	for _, r := range results {
		k := r.Outcome
		switch r.Outcome {
		case "reply":
			k = fmt.Sprintf("reply %s %s: %s", r.Status, r.ErrorType, r.Message)
		case "reset", "conn_closed":
			k = r.Outcome + " " + r.Detail
		}
		outcomes[k]++
		if r.Outcome != "no_answer" {
			nAnswered++
			if r.Ms > maxMs {
				maxMs = r.Ms
			}
		}
	}
	out := map[string]interface{}{
		"mode":           "partial",
		"conns_opened":   connsOpened,
		"auth_errors":    authErrors.snapshot(),
		"conn_events":    connReasons.snapshot(),
		"streams_opened": len(results),
		"answered":       nAnswered,
		"answer_ms_max":  maxMs,
		"outcomes":       outcomes,
		"streams":        results,
		"hold_ended_ms":  holdEnded,
	}
	if after != nil {
		out["call_after"] = after
	}
	emit(os.Stdout, out)
	resMu.Unlock()
	os.Exit(0)
}

// ---------------------------------------------------------------- unread

func runUnread(args []string) {
	fs := flag.NewFlagSet("unread", flag.ExitOnError)
	var c common
	c.register(fs)
	nconns := fs.Int("conns", 1, "connections")
	ncalls := fs.Int("calls", 100, "calls per connection")
	method := fs.String("method", "get", "method to call")
	argText := fs.String("args", "[]", "its arguments (JSON or @FILE)")
	kwText := fs.String("kwargs", "{}", "its keyword arguments (JSON or @FILE)")
	db := fs.String("db", "", "database name")
	hold := fs.Float64("hold", 10, "seconds without reading")
	auth := fs.String("auth", "", "private key to log in with")
	readAfter := fs.Bool("read-after", false, "after the hold, read every reply")
	readTimeout := fs.Float64("read-timeout", 20, "seconds allowed for --read-after")
	fs.Parse(args)
	if fs.NArg() != 0 || *nconns < 1 || *ncalls < 1 || *hold <= 0 || *auth == "" {
		fail("unread: bad arguments (--auth is required)")
	}
	key := loadKey(*auth)
	frame := encodeFrame(request(*method, parseJSONArg("--args", *argText),
		parseJSONArg("--kwargs", *kwText), *db))
	holdDur := time.Duration(*hold * float64(time.Second))
	rtDur := time.Duration(*readTimeout * float64(time.Second))
	backstop(holdDur+rtDur+60*time.Second, "unread")
	p := newPeer(&c, 1, holdDur+rtDur+60*time.Second)
	start := time.Now()

	type connState struct {
		conn     quic.Connection
		streams  []quic.Stream
		sentAt   time.Time
		closedMs float64 // since the last call was sent; -1 while open
		reason   string
	}
	states := make([]*connState, 0, *nconns)
	var mu sync.Mutex
	errs := newCounts()
	// Every connection logs in first, then all fire their calls, so no
	// login waits behind the replies of another connection's calls.
	setupCtx, setupCancel := context.WithTimeout(context.Background(), 30*time.Second)
	var wg sync.WaitGroup
	for i := 0; i < *nconns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := p.dial(setupCtx)
			if err != nil {
				errs.add("dial: " + classify(err).label())
				return
			}
			if err := login(setupCtx, conn, key, c.account); err != nil {
				errs.add(err.Error())
				conn.CloseWithError(0, "")
				return
			}
			mu.Lock()
			states = append(states, &connState{conn: conn, closedMs: -1})
			mu.Unlock()
		}()
	}
	wg.Wait()
	var nsent int64
	for _, st := range states {
		go func(st *connState) {
			for j := 0; j < *ncalls; j++ {
				s, err := st.conn.OpenStreamSync(setupCtx)
				if err != nil {
					errs.add("open stream: " + classify(err).label())
					break
				}
				if _, err := s.Write(frame); err != nil {
					errs.add("write: " + classify(err).label())
					break
				}
				s.Close()
				mu.Lock()
				st.streams = append(st.streams, s)
				mu.Unlock()
				atomic.AddInt64(&nsent, 1)
			}
			mu.Lock()
			st.sentAt = time.Now()
			mu.Unlock()
			_, err := st.conn.AcceptStream(context.Background())
			ci := classify(err)
			mu.Lock()
			if st.closedMs < 0 && ci.Remote {
				st.closedMs = ms(time.Since(st.sentAt))
				st.reason = ci.label()
			}
			mu.Unlock()
			if c.verbose && ci.Remote {
				emit(os.Stderr, map[string]interface{}{"event": "closed_by_server", "reason": ci.label(),
					"ms": ms(time.Since(start))})
			}
		}(st)
	}
	// The hold starts once every call is sent.
	for {
		mu.Lock()
		ready := true
		for _, st := range states {
			ready = ready && !st.sentAt.IsZero()
		}
		mu.Unlock()
		if ready || setupCtx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	setupCancel()
	sent := int(atomic.LoadInt64(&nsent))
	sentMs := ms(time.Since(start))
	if c.verbose {
		emit(os.Stderr, map[string]interface{}{"event": "sent_all", "sent": sent, "ms": sentMs})
	}
	// Hold without reading; stop early only if the server closed every
	// connection (nothing left to hold).
	holdEnd := time.Now().Add(holdDur)
	for time.Now().Before(holdEnd) {
		mu.Lock()
		left := 0
		for _, st := range states {
			if st.closedMs < 0 {
				left++
			}
		}
		mu.Unlock()
		if left == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	outcomes := newCounts()
	var replyBytes int64
	if *readAfter {
		rctx, rcancel := context.WithTimeout(context.Background(), rtDur)
		dl, _ := rctx.Deadline()
		mu.Lock()
		var all []quic.Stream
		for _, st := range states {
			all = append(all, st.streams...)
		}
		mu.Unlock()
		{
			for _, s := range all {
				wg.Add(1)
				go func(s quic.Stream) {
					defer wg.Done()
					s.SetReadDeadline(dl)
					v, n, err := readFrame(s)
					if err != nil {
						outcomes.add("no reply: " + classify(err).label())
						return
					}
					atomic.AddInt64(&replyBytes, int64(n))
					status, et, msg := replySummary(v)
					if status == "success" {
						outcomes.add("success")
					} else {
						outcomes.add(fmt.Sprintf("%s %s: %s", status, et, msg))
					}
				}(s)
			}
		}
		wg.Wait()
		rcancel()
	}
	mu.Lock()
	closed := map[string]int{}
	var closedMs []float64
	for _, st := range states {
		if st.closedMs >= 0 {
			closed[st.reason]++
			closedMs = append(closedMs, st.closedMs)
		}
	}
	mu.Unlock()
	for _, st := range states {
		st.conn.CloseWithError(0, "")
	}
	emit(os.Stdout, map[string]interface{}{
		"mode":             "unread",
		"conns":            len(states),
		"sent":             sent,
		"sent_ms":          sentMs,
		"errors":           errs.snapshot(),
		"closed_by_server": closed,
		"closed_after_ms":  closedMs,
		"outcomes":         outcomes.snapshot(),
		"reply_bytes_read": replyBytes,
		"seconds":          secs(time.Since(start)),
	})
	os.Exit(0)
}

// ---------------------------------------------------------------- call

func runCall(args []string) {
	fs := flag.NewFlagSet("call", flag.ExitOnError)
	var c common
	c.register(fs)
	method := fs.String("method", "", "method to call")
	argText := fs.String("args", "[]", "its arguments (JSON or @FILE)")
	kwText := fs.String("kwargs", "{}", "its keyword arguments (JSON or @FILE)")
	db := fs.String("db", "", "database name")
	auth := fs.String("auth", "", "private key to log in with")
	timeout := fs.Float64("timeout", 10, "seconds for the whole call")
	maxPrint := fs.Int("max-print", 4096, "strings longer than this are printed as their length (0: all)")
	fs.Parse(args)
	if fs.NArg() != 0 || *method == "" || *auth == "" || *timeout <= 0 {
		fail("call: bad arguments (--method and --auth are required)")
	}
	key := loadKey(*auth)
	req := request(*method, parseJSONArg("--args", *argText), parseJSONArg("--kwargs", *kwText), *db)
	dur := time.Duration(*timeout * float64(time.Second))
	backstop(dur+10*time.Second, "call")
	p := newPeer(&c, 1, dur+30*time.Second)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	out := map[string]interface{}{"mode": "call", "ok": false}
	finish := func(stage string, err error) {
		if err != nil {
			out["stage"] = stage
			out["error"] = err.Error()
			ci := classify(err)
			out["kind"], out["reason"] = ci.Kind, ci.Reason
		}
		out["total_ms"] = ms(time.Since(start))
		emit(os.Stdout, out)
		if err != nil {
			os.Exit(3)
		}
		os.Exit(0)
	}
	conn, err := p.dial(ctx)
	if err != nil {
		finish("connect", err)
	}
	out["connect_ms"] = ms(time.Since(start))
	if err := login(ctx, conn, key, c.account); err != nil {
		finish("login", err)
	}
	out["login_ms"] = ms(time.Since(start))
	r, err := roundTrip(ctx, conn, req)
	if err != nil {
		finish("call", err)
	}
	out["reply_ms"] = ms(time.Since(start))
	out["ok"] = true
	out["reply"] = printable(r, *maxPrint)
	conn.CloseWithError(0, "")
	finish("", nil)
}
