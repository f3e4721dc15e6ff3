// quicgo_peer is an independent QUIC peer used for interop tests of the
// nanasqlite-server C QUIC implementation. It is built against Debian's
// quic-go 0.29 (package golang-github-lucas-clemente-quic-go-dev), offline:
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o quicgo_peer tests/interop/quicgo_peer.go
//
// It speaks a trivial echo protocol over raw bidirectional QUIC streams: the
// client writes bytes and FINs, the server reads to FIN, writes the same bytes
// back and FINs.
//
// Usage:
//
//	quicgo_peer server --listen 127.0.0.1:PORT --cert server.pem --key server.key
//	    [--alpn nanasqlite | --no-alpn] [--client-ca ca.pem [--require-client-cert]]
//	    [--ready-file PATH] [--max-seconds 120] [--verbose]
//	quicgo_peer client --connect 127.0.0.1:PORT --ca ca.pem --server-name localhost
//	    [--alpn nanasqlite | --no-alpn] [--cert client.pem --key client.key]
//	    --streams N --size BYTES [--timeout 30] [--verbose]
//
// ALPN notes for quic-go 0.29 (qtls-go1-19, ExtraConfig.EnforceNextProtoSelection=true):
//   - a quic-go CLIENT fails the handshake unless the server selects an ALPN,
//     so the client needs a non-empty NextProtos that the server supports;
//   - a quic-go SERVER accepts a client that offers no ALPN at all (no
//     protocol is selected), and also accepts any client if the server itself
//     has no NextProtos; if both sides offer ALPN lists without overlap the
//     server aborts with TLS alert no_application_protocol (CRYPTO_ERROR 0x178).
//
// --alpn takes a comma-separated list; --no-alpn sends/accepts no ALPN at all
// (to test the behaviour above).
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	quic "github.com/lucas-clemente/quic-go"
	"github.com/lucas-clemente/quic-go/logging"
)

const defaultALPN = "nanasqlite"

func usage() {
	fmt.Fprintf(os.Stderr, `usage:
  %[1]s server --listen ADDR --cert PEM --key PEM [--alpn LIST|--no-alpn]
         [--client-ca PEM [--require-client-cert]] [--ready-file PATH]
         [--max-seconds N] [--max-echo-bytes N] [--verbose]
  %[1]s client --connect ADDR --ca PEM [--server-name NAME] [--alpn LIST|--no-alpn]
         [--cert PEM --key PEM] --streams N --size BYTES [--timeout SECONDS] [--verbose]
`, filepath.Base(os.Args[0]))
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "error: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	// quic-go prints a warning on stderr when it cannot enlarge the UDP
	// receive buffer; it is noise for these short tests.
	if os.Getenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING") == "" {
		os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	}
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	switch os.Args[1] {
	case "server":
		runServer(os.Args[2:])
	case "client":
		runClient(os.Args[2:])
	case "-h", "--help", "help":
		usage()
		os.Exit(0)
	default:
		usage()
		os.Exit(2)
	}
}

// parseALPN turns the --alpn / --no-alpn flags into a NextProtos list.
func parseALPN(list string, none bool) []string {
	if none {
		return nil
	}
	var out []string
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if len(p) > 255 {
			fail("ALPN protocol too long: %q", p)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		fail("--alpn is empty (use --no-alpn to send no ALPN)")
	}
	return out
}

func loadPool(path string) *x509.CertPool {
	pem, err := os.ReadFile(path)
	if err != nil {
		fail("read CA %s: %v", path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		fail("no PEM certificates found in %s", path)
	}
	return pool
}

func loadKeyPair(certPath, keyPath string) tls.Certificate {
	c, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		fail("load key pair %s / %s: %v", certPath, keyPath, err)
	}
	return c
}

func checkNoArgs(fs *flag.FlagSet) {
	if fs.NArg() != 0 {
		fail("unexpected arguments: %v", fs.Args())
	}
}

// ---------------------------------------------------------------- server

// serverTracer logs why server-side connections closed (the only way to see
// handshake failures on the server, since Listener.Accept only returns
// connections whose handshake completed).
type serverTracer struct {
	logging.NullTracer
	verbose bool
}

type serverConnTracer struct {
	logging.NullConnectionTracer
	verbose bool
	mu      sync.Mutex
	remote  net.Addr
}

func (t *serverTracer) TracerForConnection(ctx context.Context, p logging.Perspective, odcid logging.ConnectionID) logging.ConnectionTracer {
	return &serverConnTracer{verbose: t.verbose}
}

func (t *serverConnTracer) StartedConnection(local, remote net.Addr, src, dst logging.ConnectionID) {
	t.mu.Lock()
	t.remote = remote
	t.mu.Unlock()
}

func (t *serverConnTracer) ClosedConnection(err error) {
	t.mu.Lock()
	remote := t.remote
	t.mu.Unlock()
	var appErr *quic.ApplicationError
	if errors.As(err, &appErr) && appErr.Remote && appErr.ErrorCode == 0 && !t.verbose {
		return // normal close by the client
	}
	fmt.Fprintf(os.Stderr, "server: connection from %v closed: %v\n", remote, err)
}

func runServer(args []string) {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "UDP address to listen on (port 0 = pick a free port)")
	certPath := fs.String("cert", "", "server certificate chain (PEM)")
	keyPath := fs.String("key", "", "server private key (PEM)")
	alpn := fs.String("alpn", defaultALPN, "comma-separated ALPN protocols")
	noALPN := fs.Bool("no-alpn", false, "configure no ALPN protocols at all")
	clientCA := fs.String("client-ca", "", "CA (PEM) used to verify client certificates")
	requireClient := fs.Bool("require-client-cert", false, "require a client certificate signed by --client-ca")
	readyFile := fs.String("ready-file", "", "write the bound port to this file (atomically) once listening")
	maxSeconds := fs.Int("max-seconds", 120, "exit after this many seconds (0 = never)")
	maxEcho := fs.Int64("max-echo-bytes", 256<<20, "largest stream payload buffered for echo")
	maxStreams := fs.Int64("max-streams", 1000, "max concurrent incoming bidirectional streams per connection")
	verbose := fs.Bool("verbose", false, "log connections and streams to stderr")
	fs.Parse(args)
	checkNoArgs(fs)

	if *certPath == "" || *keyPath == "" {
		fail("server needs --cert and --key")
	}
	if *requireClient && *clientCA == "" {
		fail("--require-client-cert needs --client-ca")
	}

	tlsConf := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{loadKeyPair(*certPath, *keyPath)},
		NextProtos:   parseALPN(*alpn, *noALPN),
		ClientAuth:   tls.NoClientCert,
	}
	if *clientCA != "" {
		tlsConf.ClientCAs = loadPool(*clientCA)
		if *requireClient {
			tlsConf.ClientAuth = tls.RequireAndVerifyClientCert
		} else {
			tlsConf.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	qconf := &quic.Config{
		MaxIncomingStreams:    *maxStreams,
		MaxIncomingUniStreams: -1,
		HandshakeIdleTimeout:  10 * time.Second,
		MaxIdleTimeout:        30 * time.Second,
		Tracer:                &serverTracer{verbose: *verbose},
	}

	ln, err := quic.ListenAddr(*listen, tlsConf, qconf)
	if err != nil {
		fail("listen %s: %v", *listen, err)
	}
	addr := ln.Addr().String()

	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	var expired <-chan time.Time
	if *maxSeconds > 0 {
		expired = time.After(time.Duration(*maxSeconds) * time.Second)
	}
	done := make(chan string, 1)
	go func() {
		select {
		case s := <-sigs:
			done <- "signal " + s.String()
		case <-expired:
			done <- fmt.Sprintf("--max-seconds %d reached", *maxSeconds)
		}
		cancel()
		ln.Close()
	}()

	if *readyFile != "" {
		_, port, _ := net.SplitHostPort(addr)
		tmp := fmt.Sprintf("%s.tmp.%d", *readyFile, os.Getpid())
		if err := os.WriteFile(tmp, []byte(port+"\n"), 0o644); err != nil {
			fail("write ready file: %v", err)
		}
		if err := os.Rename(tmp, *readyFile); err != nil {
			os.Remove(tmp)
			fail("rename ready file: %v", err)
		}
	}
	fmt.Printf("listening on %s\n", addr)

	for {
		conn, err := ln.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			fail("accept: %v", err)
		}
		go serveConn(ctx, conn, *maxEcho, *verbose)
	}
	reason := <-done
	fmt.Fprintf(os.Stderr, "server: %s, exiting\n", reason)
	os.Exit(0)
}

func serveConn(ctx context.Context, conn quic.Connection, maxEcho int64, verbose bool) {
	remote := conn.RemoteAddr()
	if verbose {
		st := conn.ConnectionState().TLS
		fmt.Fprintf(os.Stderr, "server: accepted %v alpn=%q client_certs=%d\n",
			remote, st.NegotiatedProtocol, len(st.PeerCertificates))
	}
	for {
		str, err := conn.AcceptStream(ctx)
		if err != nil {
			return // connection closed; logged by the tracer
		}
		go func(str quic.Stream) {
			data, err := io.ReadAll(io.LimitReader(str, maxEcho+1))
			if err == nil && int64(len(data)) > maxEcho {
				err = fmt.Errorf("payload exceeds --max-echo-bytes %d", maxEcho)
				str.CancelRead(1)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "server: %v stream %d read: %v\n", remote, str.StreamID(), err)
				str.CancelWrite(1)
				return
			}
			if _, err := str.Write(data); err != nil {
				fmt.Fprintf(os.Stderr, "server: %v stream %d write: %v\n", remote, str.StreamID(), err)
				str.CancelWrite(1)
				return
			}
			str.Close()
			if verbose {
				fmt.Fprintf(os.Stderr, "server: %v stream %d echoed %d bytes\n", remote, str.StreamID(), len(data))
			}
		}(str)
	}
}

// ---------------------------------------------------------------- client

// patternByte is the deterministic payload: byte i of stream k.
func patternByte(k, i int) byte {
	x := uint32(i)*2654435761 + uint32(k)*40503
	return byte(x>>24) ^ byte(i>>8)
}

func fillPattern(buf []byte, k, off int) {
	for j := range buf {
		buf[j] = patternByte(k, off+j)
	}
}

func runClient(args []string) {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	connect := fs.String("connect", "", "server UDP address HOST:PORT")
	caPath := fs.String("ca", "", "CA (PEM) used to verify the server certificate")
	serverName := fs.String("server-name", "", "name to verify in the server certificate and send as SNI (default: host of --connect)")
	alpn := fs.String("alpn", defaultALPN, "comma-separated ALPN protocols")
	noALPN := fs.Bool("no-alpn", false, "offer no ALPN at all (quic-go then fails the handshake itself)")
	certPath := fs.String("cert", "", "client certificate chain (PEM)")
	keyPath := fs.String("key", "", "client private key (PEM)")
	streams := fs.Int("streams", 1, "number of concurrent bidirectional streams")
	size := fs.Int("size", 1024, "bytes written on each stream")
	timeout := fs.Float64("timeout", 30, "overall timeout in seconds")
	verbose := fs.Bool("verbose", false, "log details to stderr")
	fs.Parse(args)
	checkNoArgs(fs)

	if *connect == "" || *caPath == "" {
		fail("client needs --connect and --ca")
	}
	if *streams < 1 || *size < 0 {
		fail("--streams must be >= 1 and --size >= 0")
	}
	if (*certPath == "") != (*keyPath == "") {
		fail("--cert and --key must be given together")
	}
	if *timeout <= 0 {
		fail("--timeout must be > 0")
	}
	name := *serverName
	if name == "" {
		host, _, err := net.SplitHostPort(*connect)
		if err != nil {
			fail("bad --connect %q: %v", *connect, err)
		}
		name = host
	}

	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		RootCAs:    loadPool(*caPath),
		ServerName: name,
		NextProtos: parseALPN(*alpn, *noALPN),
	}
	if *certPath != "" {
		cert := loadKeyPair(*certPath, *keyPath)
		// Always present the certificate. (With tls.Config.Certificates, Go's
		// client silently sends an empty Certificate message when the cert's
		// issuer is not in the server's certificate_authorities list, which
		// would hide "untrusted client cert" cases from the server under test.)
		tlsConf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		}
	}

	dur := time.Duration(*timeout * float64(time.Second))
	// Hard backstop in case something ignores the context.
	time.AfterFunc(dur+2*time.Second, func() {
		fail("timeout after %v (hard)", dur)
	})
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	deadline, _ := ctx.Deadline()

	qconf := &quic.Config{
		HandshakeIdleTimeout: minDur(dur, 10*time.Second),
		MaxIdleTimeout:       30 * time.Second,
	}
	conn, err := quic.DialAddrContext(ctx, *connect, tlsConf, qconf)
	if err != nil {
		if ctx.Err() != nil {
			fail("timeout after %v during handshake: %v", dur, err)
		}
		fail("handshake with %s: %v", *connect, err)
	}
	if *verbose {
		st := conn.ConnectionState().TLS
		fmt.Fprintf(os.Stderr, "client: connected to %v alpn=%q tls=%#x cipher=%#x\n",
			conn.RemoteAddr(), st.NegotiatedProtocol, st.Version, st.CipherSuite)
	}

	errs := make(chan error, *streams)
	var wg sync.WaitGroup
	for k := 0; k < *streams; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			if err := echoStream(ctx, conn, k, *size, deadline); err != nil {
				errs <- fmt.Errorf("stream #%d: %w", k, err)
				cancel()
			}
		}(k)
	}
	wg.Wait()
	close(errs)
	var first error
	for e := range errs {
		// Prefer the root cause over errors caused by our own cancel().
		if first == nil || errors.Is(first, context.Canceled) {
			first = e
		}
	}
	if first != nil {
		conn.CloseWithError(1, "echo failed")
		if errors.Is(first, context.DeadlineExceeded) || isTimeout(first) {
			fail("timeout after %v: %v", dur, first)
		}
		var te *quic.TransportError
		var ae *quic.ApplicationError
		if errors.As(first, &te) || errors.As(first, &ae) {
			// In TLS 1.3 the client finishes its handshake before the server
			// has checked the client certificate, so a rejected client cert
			// shows up here, after DialAddr succeeded.
			fail("connection closed after handshake: %v", first)
		}
		fail("%v", first)
	}
	conn.CloseWithError(0, "done")
	fmt.Printf("ok streams=%d bytes=%d\n", *streams, int64(*streams)*int64(*size))
	os.Exit(0)
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func echoStream(ctx context.Context, conn quic.Connection, k, size int, deadline time.Time) error {
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	str.SetDeadline(deadline)

	// Read concurrently with writing, so a server that echoes as it reads
	// (instead of buffering to FIN) cannot deadlock us on flow control.
	readErr := make(chan error, 1)
	go func() { readErr <- verifyEcho(str, k, size) }()

	buf := make([]byte, 32*1024)
	var werr error
	for off := 0; off < size; {
		n := len(buf)
		if size-off < n {
			n = size - off
		}
		fillPattern(buf[:n], k, off)
		if _, err := str.Write(buf[:n]); err != nil {
			werr = fmt.Errorf("write at offset %d: %w", off, err)
			break
		}
		off += n
	}
	if werr == nil {
		if err := str.Close(); err != nil {
			werr = fmt.Errorf("close (FIN): %w", err)
		}
	}
	if werr != nil {
		str.CancelRead(1)
		<-readErr
		return werr
	}
	select {
	case err := <-readErr:
		return err
	case <-ctx.Done():
		str.CancelRead(1)
		return ctx.Err()
	}
}

func verifyEcho(str quic.Stream, k, size int) error {
	buf := make([]byte, 32*1024)
	want := make([]byte, len(buf))
	got := 0
	for {
		n, err := str.Read(buf)
		if n > 0 {
			if got+n > size {
				return fmt.Errorf("echo longer than sent: got at least %d bytes, sent %d", got+n, size)
			}
			fillPattern(want[:n], k, got)
			if !bytes.Equal(buf[:n], want[:n]) {
				for j := 0; j < n; j++ {
					if buf[j] != want[j] {
						return fmt.Errorf("echo mismatch at offset %d: got 0x%02x want 0x%02x", got+j, buf[j], want[j])
					}
				}
			}
			got += n
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read after %d bytes: %w", got, err)
		}
	}
	if got != size {
		return fmt.Errorf("echo too short: got %d bytes, want %d", got, size)
	}
	return nil
}
