// grpc_h3_client is a small gRPC-over-HTTP/3 client for the end-to-end tests
// of nanasqlite-server's gRPC door (tests/e2e/test_grpc.py). It runs on an
// HTTP/3 stack we did not write: quic-go 0.29's http3.RoundTripper (Debian,
// built offline by tests/interop/build-quicgo.sh).
//
// It reads one JSON script on stdin, runs its calls on ONE connection
// (sequentially, or all at once with "concurrent": true) and prints one JSON
// line per call, in the script's order, then one line about the connection:
//
//	{"addr": "127.0.0.1:PORT", "ca": "ca.pem", "server_name": "localhost",
//	 "cert": "client.pem", "key": "client-key.pem",        (optional, mTLS)
//	 "concurrent": false,
//	 "calls": [{
//	   "path": "/grpc.health.v1.Health/Check",
//	   "method": "POST", "content_type": "application/grpc", (defaults; "-" omits it)
//	   "metadata": [["name", "value"], ["x-bin", "hex:00ff"]],  ("hex:" values of
//	                -bin names are sent as unpadded base64)
//	   "messages": ["hex", ...],        (each framed with the 5-byte prefix)
//	   "compressed": false,             (the prefix's compressed flag)
//	   "raw_body": "hex",               (sent as is instead of "messages")
//	   "timeout": "100m",               (grpc-timeout, as sent)
//	   "delay_ms": 0,                   (wait before starting this call)
//	   "cancel_after_ms": 0,            (cancel the call then)
//	   "cancel_after_messages": 0,      (cancel after reading that many messages)
//	   "keep_open": false,              (do not end the request after its messages)
//	   "max_kept": 0,                   (keep only this many answer messages; 0: all)
//	   "sign": {"account": "default", "key": "nana_private.pem",
//	            "timestamp": 0, "corrupt": false}   (the door's login metadata)
//	   "raw_stream": "hex"              (instead of all the above: these bytes,
//	                                     HTTP/3 frames made by hand, on a new
//	                                     request stream, which is then ended)
//	 }]}
//
// A call's result: {"index", "status" (HTTP), "headers", "messages" (hex),
// "nmessages" (how many came),
// "trailers", "grpc_status" (from the trailers, or the header block of a
// Trailers-Only answer; -1 when none), "grpc_message", "reset" (the stream
// error code the server reset with, -1 when none), "error", "login" (the
// login metadata sent), "ms", and for a raw stream "raw" (the bytes that
// came back, hex) and "conn_error" (the application error code the server
// closed the connection with, -1 when none)}. The last line: {"conn": true, "goaway"
// (the stream ID of the server's last GOAWAY, -1 when none), "error"}.
//
// quic-go 0.29's response body reader skips a HEADERS frame after DATA
// without reading its payload, so trailers cannot be read through
// resp.Body: this client takes the raw QUIC stream under the body (the
// exported embedded "Stream" field of http3's wrapper) and reads the DATA
// frames and the trailers' HEADERS frame itself (QPACK with
// github.com/marten-seemann/qpack; the client offers no dynamic table, so
// the server may use none). The control stream is read by a wrapper around
// the connection (quic-go's client reads SETTINGS and then nothing), so
// GOAWAY frames are seen too.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	quic "github.com/lucas-clemente/quic-go"
	"github.com/lucas-clemente/quic-go/http3"
	"github.com/lucas-clemente/quic-go/quicvarint"
	"github.com/marten-seemann/qpack"
)

type signSpec struct {
	Account   string `json:"account"`
	Key       string `json:"key"`
	Timestamp int64  `json:"timestamp"`
	Corrupt   bool   `json:"corrupt"`
}

type callSpec struct {
	Path                string      `json:"path"`
	Method              string      `json:"method"`
	ContentType         string      `json:"content_type"`
	Metadata            [][2]string `json:"metadata"`
	Messages            []string    `json:"messages"`
	Compressed          bool        `json:"compressed"`
	RawBody             *string     `json:"raw_body"`
	Timeout             string      `json:"timeout"`
	DelayMs             int         `json:"delay_ms"`
	CancelAfterMs       int         `json:"cancel_after_ms"`
	CancelAfterMessages int         `json:"cancel_after_messages"`
	KeepOpen            bool        `json:"keep_open"`
	MaxKept             int         `json:"max_kept"`
	Sign                *signSpec   `json:"sign"`
	RawStream           *string     `json:"raw_stream"`
	// AmateRS requests signed by client_signature: each of AmatersQueries
	// (hex of query_bytes) becomes a message {query_bytes, client_signature},
	// appended to Messages, signed with seq AmatersSign.Seq + i.
	AmatersSign    *reqSignSpec `json:"amaters_sign"`
	AmatersQueries []string     `json:"amaters_queries"`
}

// reqSignSpec: who signs AmateRS requests, and how (a bad signature on purpose).
type reqSignSpec struct {
	Account string `json:"account"`
	Key     string `json:"key"`
	Seq     uint64 `json:"seq"`
	UnixMs  int64  `json:"unix_ms"` // 0: now
	Corrupt bool   `json:"corrupt"`
}

type script struct {
	Addr       string     `json:"addr"`
	CA         string     `json:"ca"`
	ServerName string     `json:"server_name"`
	Cert       string     `json:"cert"`
	Key        string     `json:"key"`
	Concurrent bool       `json:"concurrent"`
	TimeoutS   int        `json:"timeout_s"`
	Calls      []callSpec `json:"calls"`
}

type result struct {
	Index       int               `json:"index"`
	Status      int               `json:"status"`
	Headers     map[string]string `json:"headers"`
	Messages    []string          `json:"messages"`
	NMessages   int               `json:"nmessages"`
	Trailers    map[string]string `json:"trailers"`
	GrpcStatus  int               `json:"grpc_status"`
	GrpcMessage string            `json:"grpc_message"`
	Reset       int64             `json:"reset"`
	Error       string            `json:"error"`
	Login       map[string]string `json:"login,omitempty"`
	Ms          int64             `json:"ms"`
	Raw         string            `json:"raw,omitempty"`
	ConnError   int64             `json:"conn_error"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "grpc_h3_client: "+format+"\n", args...)
	os.Exit(2)
}

// ---- the connection, with its control stream read ------------------------------

// watchedConn is the QUIC connection under the RoundTripper: it reads the
// server's control stream itself and hands quic-go's HTTP/3 client a copy of
// what it read, so GOAWAY frames are seen.
type watchedConn struct {
	quic.EarlyConnection
	goaway *int64
}

// ctrlCopy is the server's control stream as quic-go sees it: the bytes
// the watcher copied into a pipe.
type ctrlCopy struct {
	quic.ReceiveStream
	r io.Reader
}

func (c *ctrlCopy) Read(b []byte) (int, error) { return c.r.Read(b) }

func (w *watchedConn) AcceptUniStream(ctx context.Context) (quic.ReceiveStream, error) {
	str, err := w.EarlyConnection.AcceptUniStream(ctx)
	if err != nil {
		return str, err
	}
	br := bufio.NewReader(str)
	typ, err := quicvarint.Read(br)
	if err != nil || typ != 0 { // not the control stream: as it was
		pr, pw := io.Pipe()
		go func() {
			var b bytes.Buffer
			quicvarint.Write(&b, typ)
			pw.Write(b.Bytes())
			io.Copy(pw, br)
			pw.Close()
		}()
		return &ctrlCopy{str, pr}, nil
	}
	pr, pw := io.Pipe()
	go func() {
		var b bytes.Buffer
		quicvarint.Write(&b, typ)
		pw.Write(b.Bytes())
		// quic-go reads the SETTINGS frame and then nothing: it gets the
		// first frame; the rest is read here.
		first := true
		for {
			t, err := quicvarint.Read(br)
			if err != nil {
				break
			}
			l, err := quicvarint.Read(br)
			if err != nil {
				break
			}
			payload := make([]byte, l)
			if _, err := io.ReadFull(br, payload); err != nil {
				break
			}
			if first {
				b.Reset()
				quicvarint.Write(&b, t)
				quicvarint.Write(&b, l)
				b.Write(payload)
				go pw.Write(b.Bytes())
				first = false
			}
			if t == 7 { // GOAWAY
				id, err := quicvarint.Read(bytes.NewReader(payload))
				if err == nil {
					atomic.StoreInt64(w.goaway, int64(id))
				}
			}
		}
	}()
	return &ctrlCopy{str, pr}, nil
}

// ---- a call ------------------------------------------------------------------

// frame returns |msg| with gRPC's 5-byte prefix.
func frame(msg []byte, compressed bool) []byte {
	out := make([]byte, 5+len(msg))
	if compressed {
		out[0] = 1
	}
	binary.BigEndian.PutUint32(out[1:5], uint32(len(msg)))
	copy(out[5:], msg)
	return out
}

// readKey reads an Ed25519 private key (PKCS#8 PEM, as nanasqlite-key-gen writes it).
func readKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: not PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an Ed25519 key", path)
	}
	return ek, nil
}

// login returns the door's login metadata for |s| on connection |conn|.
func login(conn quic.EarlyConnection, s *signSpec) (map[string]string, error) {
	<-conn.HandshakeComplete().Done()
	st := conn.ConnectionState().TLS
	exp, err := st.ExportKeyingMaterial("EXPORTER-nanasqlite-grpc-login", nil, 32)
	if err != nil {
		return nil, err
	}
	key, err := readKey(s.Key)
	if err != nil {
		return nil, err
	}
	ts := s.Timestamp
	if ts == 0 {
		ts = time.Now().Unix()
	}
	tstext := strconv.FormatInt(ts, 10)
	var m bytes.Buffer
	m.WriteString("nanasqlite-grpc-login-v1")
	m.WriteByte(0)
	m.Write(exp)
	m.WriteString(s.Account)
	m.WriteByte(0)
	m.WriteString(tstext)
	sig := ed25519.Sign(key, m.Bytes())
	if s.Corrupt {
		sig[10] ^= 0x40
	}
	return map[string]string{
		"nana-account":       s.Account,
		"nana-timestamp":     tstext,
		"nana-signature-bin": base64.RawStdEncoding.EncodeToString(sig),
	}, nil
}

// pbBytes appends protobuf field |num| of bytes |b| to |out|.
func pbBytes(out []byte, num int, b []byte) []byte {
	out = binary.AppendUvarint(out, uint64(num)<<3|2)
	out = binary.AppendUvarint(out, uint64(len(b)))
	return append(out, b...)
}

// amatersRequests builds signed AmateRS QueryRequest messages on |conn|:
// client_signature = u8 1 | u8 account_len | account | u64be seq |
// i64be unix_ms | Ed25519 over "nanasqlite-aql-request-v1" NUL | exporter |
// account_len | account | seq | unix_ms | SHA-256(query_bytes).
func amatersRequests(conn quic.EarlyConnection, s *reqSignSpec, queries []string) ([][]byte, error) {
	<-conn.HandshakeComplete().Done()
	st := conn.ConnectionState().TLS
	exp, err := st.ExportKeyingMaterial("EXPORTER-nanasqlite-grpc-login", nil, 32)
	if err != nil {
		return nil, err
	}
	key, err := readKey(s.Key)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for i, qh := range queries {
		q, err := hex.DecodeString(qh)
		if err != nil {
			return nil, err
		}
		ms := s.UnixMs
		if ms == 0 {
			ms = time.Now().UnixMilli()
		}
		var fields bytes.Buffer
		fields.WriteByte(byte(len(s.Account)))
		fields.WriteString(s.Account)
		binary.Write(&fields, binary.BigEndian, s.Seq+uint64(i))
		binary.Write(&fields, binary.BigEndian, ms)
		h := sha256.Sum256(q)
		var m bytes.Buffer
		m.WriteString("nanasqlite-aql-request-v1")
		m.WriteByte(0)
		m.Write(exp)
		m.Write(fields.Bytes())
		m.Write(h[:])
		sig := ed25519.Sign(key, m.Bytes())
		if s.Corrupt {
			sig[5] ^= 1
		}
		cs := append([]byte{1}, fields.Bytes()...)
		cs = append(cs, sig...)
		msg := pbBytes(nil, 1, q)
		msg = pbBytes(msg, 2, cs)
		out = append(out, msg)
	}
	return out, nil
}

// rawStream is the QUIC stream under an http3 response body.
func rawStream(body io.ReadCloser) (quic.Stream, error) {
	hs, ok := body.(http3.HTTPStreamer)
	if !ok {
		return nil, errors.New("the response body is no http3.HTTPStreamer")
	}
	v := reflect.ValueOf(hs.HTTPStream())
	if v.Kind() == reflect.Ptr {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil, errors.New("unexpected http3 stream type")
	}
	f := v.FieldByName("Stream")
	if !f.IsValid() {
		return nil, errors.New("no Stream field under the http3 stream")
	}
	s, ok := f.Interface().(quic.Stream)
	if !ok {
		return nil, errors.New("the Stream field is no quic.Stream")
	}
	return s, nil
}

func streamErr(err error, r *result) {
	var se *quic.StreamError
	if errors.As(err, &se) {
		r.Reset = int64(se.ErrorCode)
	}
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && ae.Remote {
		r.ConnError = int64(ae.ErrorCode)
	}
	if r.Error == "" {
		r.Error = err.Error()
	}
}

// readRest reads the response's remaining HTTP/3 frames from |s|: DATA (gRPC
// messages) and then the trailers. Stops after |stopAfter| messages if > 0.
func readRest(s quic.Stream, r *result, stopAfter, maxKept int, cancel func()) {
	br := bufio.NewReader(s)
	var buf []byte
	for {
		t, err := quicvarint.Read(br)
		if err != nil {
			if err != io.EOF {
				streamErr(err, r)
			}
			break
		}
		l, err := quicvarint.Read(br)
		if err != nil {
			streamErr(err, r)
			break
		}
		if l > 64<<20 {
			r.Error = fmt.Sprintf("frame of %d bytes", l)
			break
		}
		payload := make([]byte, l)
		if _, err := io.ReadFull(br, payload); err != nil {
			streamErr(err, r)
			break
		}
		switch t {
		case 0: // DATA
			buf = append(buf, payload...)
			for len(buf) >= 5 {
				n := int(binary.BigEndian.Uint32(buf[1:5]))
				if len(buf) < 5+n {
					break
				}
				if maxKept <= 0 || len(r.Messages) < maxKept {
					r.Messages = append(r.Messages, hex.EncodeToString(buf[5:5+n]))
				}
				r.NMessages++
				buf = buf[5+n:]
			}
			if stopAfter > 0 && r.NMessages >= stopAfter {
				cancel()
				return
			}
		case 1: // HEADERS: the trailers
			hfs, err := qpack.NewDecoder(nil).DecodeFull(payload)
			if err != nil {
				r.Error = "trailers: " + err.Error()
				return
			}
			for _, hf := range hfs {
				r.Trailers[hf.Name] = hf.Value
			}
		}
	}
	if len(buf) > 0 && r.Error == "" {
		r.Error = fmt.Sprintf("%d bytes of an unfinished message", len(buf))
	}
}

// runRaw writes the bytes of a "raw_stream" call on a new request stream
// as they are (HTTP/3 frames the test made by hand, however malformed),
// ends the stream, and reads whatever comes back until the end of the
// stream, a reset, the connection's end or the script's timeout.
func runRaw(sc *script, conn func() quic.EarlyConnection, c *callSpec, r *result) {
	data, err := hex.DecodeString(*c.RawStream)
	if err != nil {
		r.Error = "raw_stream: " + err.Error()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(),
		time.Duration(sc.TimeoutS)*time.Second)
	defer cancel()
	s, err := conn().OpenStreamSync(ctx)
	if err != nil {
		streamErr(err, r)
		return
	}
	if _, err = s.Write(data); err == nil {
		err = s.Close()
	}
	if err != nil {
		streamErr(err, r)
		return
	}
	_ = s.SetReadDeadline(time.Now().Add(time.Duration(sc.TimeoutS) * time.Second))
	got, err := io.ReadAll(s)
	r.Raw = hex.EncodeToString(got)
	if err != nil {
		streamErr(err, r)
	}
}

func runCall(rt *http3.RoundTripper, sc *script, conn func() quic.EarlyConnection, i int,
	c *callSpec) (r result) {
	r = result{Index: i, GrpcStatus: -1, Reset: -1, ConnError: -1, Headers: map[string]string{},
		Trailers: map[string]string{}, Messages: []string{}}
	if c.DelayMs > 0 {
		time.Sleep(time.Duration(c.DelayMs) * time.Millisecond)
	}
	if c.RawStream != nil {
		t0 := time.Now()
		runRaw(sc, conn, c, &r)
		r.Ms = time.Since(t0).Milliseconds()
		return r
	}
	t0 := time.Now()
	defer func() { r.Ms = time.Since(t0).Milliseconds() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if c.CancelAfterMs > 0 {
		t := time.AfterFunc(time.Duration(c.CancelAfterMs)*time.Millisecond, cancel)
		defer t.Stop()
	}
	method := c.Method
	if method == "" {
		method = "POST"
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+sc.ServerName+c.Path, pr)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	req.Host = sc.ServerName
	req.Header = http.Header{}
	ct := c.ContentType
	if ct == "" {
		ct = "application/grpc"
	}
	if ct != "-" {
		req.Header["content-type"] = []string{ct}
	}
	req.Header["te"] = []string{"trailers"}
	req.Header["user-agent"] = []string{"grpc_h3_client"}
	if c.Timeout != "" {
		req.Header["grpc-timeout"] = []string{c.Timeout}
	}
	for _, kv := range c.Metadata {
		v := kv[1]
		if strings.HasSuffix(kv[0], "-bin") && strings.HasPrefix(v, "hex:") {
			b, err := hex.DecodeString(v[4:])
			if err != nil {
				r.Error = "metadata hex: " + err.Error()
				return r
			}
			v = base64.RawStdEncoding.EncodeToString(b)
		}
		req.Header[kv[0]] = append(req.Header[kv[0]], v)
	}
	if c.Sign != nil {
		m, err := login(conn(), c.Sign)
		if err != nil {
			r.Error = "sign: " + err.Error()
			return r
		}
		r.Login = m
		for k, v := range m {
			req.Header[k] = []string{v}
		}
	}
	var body []byte
	if c.RawBody != nil {
		body, err = hex.DecodeString(*c.RawBody)
		if err != nil {
			r.Error = "raw_body hex: " + err.Error()
			return r
		}
	} else {
		for _, h := range c.Messages {
			m, err := hex.DecodeString(h)
			if err != nil {
				r.Error = "message hex: " + err.Error()
				return r
			}
			body = append(body, frame(m, c.Compressed)...)
		}
		if c.AmatersSign != nil {
			msgs, err := amatersRequests(conn(), c.AmatersSign, c.AmatersQueries)
			if err != nil {
				r.Error = "amaters_sign: " + err.Error()
				return r
			}
			for _, m := range msgs {
				body = append(body, frame(m, false)...)
			}
		}
	}
	go func() {
		if len(body) > 0 {
			pw.Write(body)
		}
		if !c.KeepOpen {
			pw.Close()
		}
	}()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		streamErr(err, &r)
		return r
	}
	defer resp.Body.Close()
	r.Status = resp.StatusCode
	for k, v := range resp.Header {
		r.Headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	s, err := rawStream(resp.Body)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	readRest(s, &r, c.CancelAfterMessages, c.MaxKept, cancel)
	src := r.Trailers
	if _, ok := src["grpc-status"]; !ok {
		src = r.Headers
	}
	if v, ok := src["grpc-status"]; ok {
		if n, err := strconv.Atoi(v); err == nil {
			r.GrpcStatus = n
		}
	}
	r.GrpcMessage = src["grpc-message"]
	return r
}

func main() {
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	var sc script
	if err := json.NewDecoder(os.Stdin).Decode(&sc); err != nil {
		fail("reading the script: %v", err)
	}
	if sc.ServerName == "" {
		sc.ServerName = "localhost"
	}
	if sc.TimeoutS == 0 {
		sc.TimeoutS = 60
	}
	pemCA, err := os.ReadFile(sc.CA)
	if err != nil {
		fail("%v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		fail("%s: no certificate", sc.CA)
	}
	tlsConf := &tls.Config{RootCAs: pool, ServerName: sc.ServerName, NextProtos: []string{"h3"}}
	if sc.Cert != "" {
		cert, err := tls.LoadX509KeyPair(sc.Cert, sc.Key)
		if err != nil {
			fail("client certificate: %v", err)
		}
		tlsConf.Certificates = []tls.Certificate{cert}
	}
	goaway := int64(-1)
	// The connection is made here, before any call, so a login can be
	// signed before the first call and a refused handshake is reported.
	qc := &quic.Config{Versions: []quic.VersionNumber{quic.Version1}, MaxIncomingStreams: -1,
		HandshakeIdleTimeout: 10 * time.Second, MaxIdleTimeout: 30 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	c, err := quic.DialAddrEarlyContext(ctx, sc.Addr, tlsConf, qc)
	if err == nil {
		select {
		case <-c.HandshakeComplete().Done():
		case <-c.Context().Done():
			err = errors.New("handshake failed")
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	cancel()
	if err != nil {
		json.NewEncoder(os.Stdout).Encode(map[string]interface{}{"conn": false, "goaway": -1,
			"error": err.Error()})
		return
	}
	w := &watchedConn{EarlyConnection: c, goaway: &goaway}
	rt := &http3.RoundTripper{
		TLSClientConfig:    tlsConf,
		DisableCompression: true,
		QuicConfig:         qc,
		Dial: func(context.Context, string, *tls.Config, *quic.Config) (quic.EarlyConnection, error) {
			return w, nil
		},
	}
	conn := func() quic.EarlyConnection { return w }
	results := make([]result, len(sc.Calls))
	if sc.Concurrent {
		var wg sync.WaitGroup
		for i := range sc.Calls {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				results[i] = runCall(rt, &sc, conn, i, &sc.Calls[i])
			}(i)
		}
		wg.Wait()
	} else {
		for i := range sc.Calls {
			results[i] = runCall(rt, &sc, conn, i, &sc.Calls[i])
		}
	}
	enc := json.NewEncoder(os.Stdout)
	for _, r := range results {
		enc.Encode(r)
	}
	last := map[string]interface{}{"conn": true, "goaway": atomic.LoadInt64(&goaway), "error": ""}
	select {
	case <-w.Context().Done():
		last["error"] = fmt.Sprint(w.Context().Err())
	default:
	}
	enc.Encode(last)
	rt.Close()
}
