// aql_h3_client is the AQL client of the end-to-end tests of
// nanasqlite-server's AQL services on its gRPC door (tests/e2e/test_aql.py).
// It is the interop peer: its messages are built and read by Go's protobuf
// (Debian's google.golang.org/protobuf 1.28), from Go code that
// build-aql-client.sh generates out of the repository's .proto files, and
// they travel over quic-go 0.29's HTTP/3; nothing of the server's own code
// makes or reads them.
//
// It reads one JSON script on stdin, runs its operations one after another
// on ONE connection and prints one JSON line per operation, then a last
// line {"conn": true, "error"}:
//
//	{"addr": "127.0.0.1:PORT", "ca": "ca.pem", "server_name": "localhost",
//	 "timeout_s": 60,
//	 "sign": {"account": "default", "key": "nana_private.pem"},  (the door's
//	         login metadata, sent with the connection's first call)
//	 "metadata": [["nana-db", "other.db"]],   (sent with every call)
//	 "ops": [OP, ...]}
//
// Operations (every one takes "metadata" (more for its calls),
// "grpc_timeout" ("100m") and "proof" (sends nana-proof: 1)):
//
//	{"op": "get"|"delete", "collection", "key" | "key_hex"}
//	{"op": "set", "collection", "key" | "key_hex", "value_json" | "value_hex",
//	 "compression": 0}
//	{"op": "range", "collection", "start" | "start_hex", "end" | "end_hex", "limit"}
//	{"op": "filter", "collection", "predicate": P, "limit", "offset"}
//	{"op": "update", "collection", "predicate": P,
//	 "updates": [{"set": ["field", "json"]}, {"add": [...]}, {"mul": [...]}]}
//	   These six run on AqlService/ExecuteQuery; with "via": "amaters" on
//	   /AmateRS/Execute. All take "request_id" and "timeout_ms".
//	{"op": "amaters_execute", "query": OP, "bare": false, "query_bytes_hex"}
//	   /AmateRS/Execute: query_bytes is the serialized amaters.aql.QueryRequest
//	   of OP (a bare amaters.query.Query with "bare"; these bytes with
//	   "query_bytes_hex").
//	{"op": "batch", "queries": [OP, ...] | "generate": G, "request_id", "timeout_ms"}
//	{"op": "stream", "query": OP, "read_delay_ms": 0, "slow_for_ms": 0,
//	 "watch_pid": 0, "keep_values": 0}
//	   ExecuteStream; each message is read read_delay_ms after the one
//	   before while slow_for_ms has not passed since the call began (all
//	   the call when 0). With watch_pid, that process's VmRSS is read
//	   before the call and after every message.
//	{"op": "interactive", "queries": [OP, ...] | "generate": G, "via": "amaters",
//	 "max_kept": 0}
//	   ExecuteInteractive (or /AmateRS/ExecuteStream): every query is sent
//	   at once (pipelined) while the answers are read.
//	{"op": "health", "service": "..."}   {"op": "info"}
//	{"op": "parallel", "ops": [OP, ...]}   (the ops at once, as streams of the connection)
//
// G: {"n", "start": 0, "kind": "set"|"get", "collection", "key_fmt": "k%07d",
// "pad": 0}: query i (start <= i < start + n) sets key_fmt(i) to
// {"i": i, "pad": "xx..."} (or gets it); request_id "r<i>".
//
// P: {"eq"|"gt"|"lt"|"gte"|"lte": ["field", "json text"]},
// {"and"|"or": [P, P, ...]} (folded left), {"not": P}.
//
// An operation's line: {"index", "op", "grpc_status" (-1: none), "grpc_message",
// "trailers", "error" (transport), "ms", and:
// "response" (the answer decoded by protojson, proto field names; bytes in
// base64), "server_proof" (hex, AmateRS); for interactive "responses" (the
// first max_kept, all when 0), "nresponses", "ids_in_order", "nerrors",
// "error_codes" (index -> code); for stream "nmessages", "sequences_ok",
// "nvalues", "keys_sorted", "has_more_false" (batches saying has_more false),
// "end" (the StreamEnd), "end_sequence", "after_end", "errors", "values" (the
// first keep_values), "last_key", "rss_base_kb", "rss_max_slow_kb",
// "rss_max_kb"; for parallel "results"}.
//
// Like grpc_h3_client, it reads the trailers from the raw QUIC stream under
// the response body (quic-go 0.29's body reader skips a HEADERS frame after
// DATA without reading it).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
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
	"time"

	quic "github.com/lucas-clemente/quic-go"
	"github.com/lucas-clemente/quic-go/http3"
	"github.com/lucas-clemente/quic-go/quicvarint"
	"github.com/marten-seemann/qpack"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	aqlpb "nanatest/amaters/aql"
	querypb "nanatest/amaters/query"
	amaterspb "nanatest/amaters/service"
	typespb "nanatest/amaters/types"
)

const aqlSvc = "/amaters.aql.AqlService/"

type signSpec struct {
	Account   string `json:"account"`
	Key       string `json:"key"`
	Timestamp int64  `json:"timestamp"`
	Corrupt   bool   `json:"corrupt"`
}

type genSpec struct {
	N          int    `json:"n"`
	Start      int    `json:"start"`
	Kind       string `json:"kind"`
	Collection string `json:"collection"`
	KeyFmt     string `json:"key_fmt"`
	Pad        int    `json:"pad"`
}

type opSpec struct {
	Op          string                 `json:"op"`
	Collection  string                 `json:"collection"`
	Key         *string                `json:"key"`
	KeyHex      *string                `json:"key_hex"`
	ValueJSON   *string                `json:"value_json"`
	ValueHex    *string                `json:"value_hex"`
	Compression int32                  `json:"compression"`
	Start       *string                `json:"start"`
	StartHex    *string                `json:"start_hex"`
	End         *string                `json:"end"`
	EndHex      *string                `json:"end_hex"`
	Limit       *uint32                `json:"limit"`
	Offset      *uint32                `json:"offset"`
	Predicate   json.RawMessage        `json:"predicate"`
	Updates     []map[string][2]string `json:"updates"`
	RequestID   *string                `json:"request_id"`
	TimeoutMs   *uint32                `json:"timeout_ms"`
	GrpcTimeout string                 `json:"grpc_timeout"`
	Metadata    [][2]string            `json:"metadata"`
	Proof       bool                   `json:"proof"`
	Via         string                 `json:"via"`
	Bare        bool                   `json:"bare"`
	QueryBytes  *string                `json:"query_bytes_hex"`
	Query       *opSpec                `json:"query"`
	Queries     []opSpec               `json:"queries"`
	Generate    *genSpec               `json:"generate"`
	ReadDelayMs int                    `json:"read_delay_ms"`
	SlowForMs   int                    `json:"slow_for_ms"`
	WatchPid    int                    `json:"watch_pid"`
	KeepValues  int                    `json:"keep_values"`
	MaxKept     int                    `json:"max_kept"`
	Service     *string                `json:"service"`
	Ops         []opSpec               `json:"ops"`
}

type script struct {
	Addr       string      `json:"addr"`
	CA         string      `json:"ca"`
	ServerName string      `json:"server_name"`
	TimeoutS   int         `json:"timeout_s"`
	Sign       *signSpec   `json:"sign"`
	Metadata   [][2]string `json:"metadata"`
	Ops        []opSpec    `json:"ops"`
}

type opOut struct {
	Index       int               `json:"index"`
	Op          string            `json:"op"`
	GrpcStatus  int               `json:"grpc_status"`
	GrpcMessage string            `json:"grpc_message"`
	Trailers    map[string]string `json:"trailers"`
	Error       string            `json:"error"`
	Ms          int64             `json:"ms"`
	Response    json.RawMessage   `json:"response,omitempty"`
	ServerProof *string           `json:"server_proof,omitempty"`
	// interactive
	Responses  []json.RawMessage `json:"responses,omitempty"`
	NResponses *int              `json:"nresponses,omitempty"`
	IdsInOrder *bool             `json:"ids_in_order,omitempty"`
	NErrors    *int              `json:"nerrors,omitempty"`
	ErrorCodes map[int]int32     `json:"error_codes,omitempty"`
	// stream
	NMessages    *int              `json:"nmessages,omitempty"`
	SequencesOK  *bool             `json:"sequences_ok,omitempty"`
	NValues      *int              `json:"nvalues,omitempty"`
	KeysSorted   *bool             `json:"keys_sorted,omitempty"`
	HasMoreFalse *int              `json:"has_more_false,omitempty"`
	End          json.RawMessage   `json:"end,omitempty"`
	EndSequence  *int64            `json:"end_sequence,omitempty"`
	AfterEnd     *int              `json:"after_end,omitempty"`
	Errors       []json.RawMessage `json:"errors,omitempty"`
	Values       []json.RawMessage `json:"values,omitempty"`
	LastKey      *string           `json:"last_key,omitempty"`
	RssBaseKB    *int64            `json:"rss_base_kb,omitempty"`
	RssMaxSlowKB *int64            `json:"rss_max_slow_kb,omitempty"`
	RssMaxKB     *int64            `json:"rss_max_kb,omitempty"`
	// parallel
	Results []opOut `json:"results,omitempty"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "aql_h3_client: "+format+"\n", args...)
	os.Exit(2)
}

var pj = protojson.MarshalOptions{UseProtoNames: true}

// js returns |m| as protojson (proto field names), never failing.
func js(m proto.Message) json.RawMessage {
	b, err := pj.Marshal(m)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"marshal_error": err.Error()})
	}
	return b
}

func intp(v int) *int       { return &v }
func boolp(v bool) *bool    { return &v }
func int64p(v int64) *int64 { return &v }

// ---- the connection and its calls -------------------------------------------------

// client is one QUIC connection with an HTTP/3 round tripper on it.
type client struct {
	sc       *script
	conn     quic.EarlyConnection
	rt       *http3.RoundTripper
	signMu   sync.Mutex
	signDone bool
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

// login returns the door's login metadata for |s| on the connection: an
// Ed25519 signature over a TLS exporter value, the account and a timestamp.
func (c *client) login(s *signSpec) (map[string]string, error) {
	st := c.conn.ConnectionState().TLS
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

// frame returns |msg| with gRPC's 5-byte prefix.
func frame(msg []byte) []byte {
	out := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(out[1:5], uint32(len(msg)))
	copy(out[5:], msg)
	return out
}

// callResult is what a call's end said.
type callResult struct {
	grpcStatus  int
	grpcMessage string
	trailers    map[string]string
	err         string
}

// call runs one gRPC call on |path|: |send| writes the request messages
// (each with frame()) and returns; the request then ends. Every answer
// message goes to |recv| in order (an error from it cancels the call).
func (c *client) call(op *opSpec, path string, send func(w io.Writer) error,
	recv func(msg []byte) error) (r callResult) {
	r = callResult{grpcStatus: -1, trailers: map[string]string{}}
	ctx, cancel := context.WithTimeout(context.Background(),
		time.Duration(c.sc.TimeoutS)*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequestWithContext(ctx, "POST", "https://"+c.sc.ServerName+path, pr)
	if err != nil {
		r.err = err.Error()
		return r
	}
	req.Host = c.sc.ServerName
	req.Header = http.Header{}
	req.Header["content-type"] = []string{"application/grpc"}
	req.Header["te"] = []string{"trailers"}
	req.Header["user-agent"] = []string{"aql_h3_client"}
	if op.GrpcTimeout != "" {
		req.Header["grpc-timeout"] = []string{op.GrpcTimeout}
	}
	if op.Proof {
		req.Header["nana-proof"] = []string{"1"}
	}
	for _, md := range [][][2]string{c.sc.Metadata, op.Metadata} {
		for _, kv := range md {
			req.Header[kv[0]] = append(req.Header[kv[0]], kv[1])
		}
	}
	if c.sc.Sign != nil {
		c.signMu.Lock()
		first := !c.signDone
		c.signDone = true
		c.signMu.Unlock()
		if first {
			m, err := c.login(c.sc.Sign)
			if err != nil {
				r.err = "sign: " + err.Error()
				return r
			}
			for k, v := range m {
				req.Header[k] = []string{v}
			}
		}
	}
	sendErr := make(chan error, 1)
	go func() {
		err := send(pw)
		pw.Close()
		sendErr <- err
	}()
	resp, err := c.rt.RoundTrip(req)
	if err != nil {
		r.err = err.Error()
		return r
	}
	defer resp.Body.Close()
	headers := map[string]string{}
	for k, v := range resp.Header {
		headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	if resp.StatusCode != 200 {
		r.err = fmt.Sprintf("HTTP status %d", resp.StatusCode)
	}
	s, err := rawStream(resp.Body)
	if err != nil {
		r.err = err.Error()
		return r
	}
	readAnswer(s, &r, recv, cancel)
	src := r.trailers
	if _, ok := src["grpc-status"]; !ok {
		src = headers // a Trailers-Only answer
	}
	if v, ok := src["grpc-status"]; ok {
		if n, err := strconv.Atoi(v); err == nil {
			r.grpcStatus = n
		}
	}
	r.grpcMessage = src["grpc-message"]
	select {
	case err := <-sendErr:
		if err != nil && r.err == "" && r.grpcStatus == 0 {
			r.err = "send: " + err.Error()
		}
	default:
	}
	return r
}

// readAnswer reads the response's remaining HTTP/3 frames from |s|: DATA
// (gRPC messages, each given to |recv|) and then the trailers.
func readAnswer(s quic.Stream, r *callResult, recv func([]byte) error, cancel func()) {
	br := bufio.NewReader(s)
	var buf []byte
	for {
		t, err := quicvarint.Read(br)
		if err != nil {
			if err != io.EOF {
				r.err = err.Error()
			}
			break
		}
		l, err := quicvarint.Read(br)
		if err != nil {
			r.err = err.Error()
			break
		}
		if l > 64<<20 {
			r.err = fmt.Sprintf("frame of %d bytes", l)
			break
		}
		payload := make([]byte, l)
		if _, err := io.ReadFull(br, payload); err != nil {
			r.err = err.Error()
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
				if buf[0] != 0 {
					r.err = "a compressed answer message"
				} else if err := recv(buf[5 : 5+n]); err != nil {
					r.err = err.Error()
					cancel()
					return
				}
				buf = buf[5+n:]
			}
		case 1: // HEADERS: the trailers
			hfs, err := qpack.NewDecoder(nil).DecodeFull(payload)
			if err != nil {
				r.err = "trailers: " + err.Error()
				return
			}
			for _, hf := range hfs {
				r.trailers[hf.Name] = hf.Value
			}
		}
	}
	if len(buf) > 0 && r.err == "" {
		r.err = fmt.Sprintf("%d bytes of an unfinished message", len(buf))
	}
}

// sendMsgs returns a send function writing |msgs|, each framed.
func sendMsgs(msgs ...proto.Message) func(io.Writer) error {
	return func(w io.Writer) error {
		for _, m := range msgs {
			b, err := proto.Marshal(m)
			if err != nil {
				return err
			}
			if _, err := w.Write(frame(b)); err != nil {
				return err
			}
		}
		return nil
	}
}

// ---- building the messages ------------------------------------------------------------

// bytesOf returns the text |s| as bytes or the hex |h| decoded; nil when neither.
func bytesOf(s, h *string) ([]byte, error) {
	if h != nil {
		return hex.DecodeString(*h)
	}
	if s != nil {
		return []byte(*s), nil
	}
	return nil, nil
}

func keyOf(s, h *string) (*typespb.Key, error) {
	b, err := bytesOf(s, h)
	if err != nil || (b == nil && s == nil && h == nil) {
		return nil, err
	}
	return &typespb.Key{Data: b}, nil
}

func blob(jsonText string) *typespb.CipherBlob {
	return &typespb.CipherBlob{Data: []byte(jsonText)}
}

// buildPredicate turns the JSON form of a predicate into an amaters.types.Predicate.
func buildPredicate(raw json.RawMessage) (*typespb.Predicate, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("predicate: %v", err)
	}
	if len(m) != 1 {
		return nil, fmt.Errorf("predicate: one operator per object, got %s", raw)
	}
	for name, arg := range m {
		switch name {
		case "eq", "gt", "lt", "gte", "lte":
			var fv [2]string
			if err := json.Unmarshal(arg, &fv); err != nil {
				return nil, fmt.Errorf("predicate %s: %v", name, err)
			}
			col, val := &typespb.ColumnRef{Name: fv[0]}, blob(fv[1])
			switch name {
			case "eq":
				return &typespb.Predicate{Predicate: &typespb.Predicate_Eq{
					Eq: &typespb.EqPredicate{Column: col, Value: val}}}, nil
			case "gt":
				return &typespb.Predicate{Predicate: &typespb.Predicate_Gt{
					Gt: &typespb.GtPredicate{Column: col, Value: val}}}, nil
			case "lt":
				return &typespb.Predicate{Predicate: &typespb.Predicate_Lt{
					Lt: &typespb.LtPredicate{Column: col, Value: val}}}, nil
			case "gte":
				return &typespb.Predicate{Predicate: &typespb.Predicate_Gte{
					Gte: &typespb.GtePredicate{Column: col, Value: val}}}, nil
			default:
				return &typespb.Predicate{Predicate: &typespb.Predicate_Lte{
					Lte: &typespb.LtePredicate{Column: col, Value: val}}}, nil
			}
		case "and", "or":
			var parts []json.RawMessage
			if err := json.Unmarshal(arg, &parts); err != nil || len(parts) < 2 {
				return nil, fmt.Errorf("predicate %s: a list of two or more", name)
			}
			acc, err := buildPredicate(parts[0])
			if err != nil {
				return nil, err
			}
			for _, p := range parts[1:] {
				right, err := buildPredicate(p)
				if err != nil {
					return nil, err
				}
				if name == "and" {
					acc = &typespb.Predicate{Predicate: &typespb.Predicate_And{
						And: &typespb.AndPredicate{Left: acc, Right: right}}}
				} else {
					acc = &typespb.Predicate{Predicate: &typespb.Predicate_Or{
						Or: &typespb.OrPredicate{Left: acc, Right: right}}}
				}
			}
			return acc, nil
		case "not":
			inner, err := buildPredicate(arg)
			if err != nil {
				return nil, err
			}
			return &typespb.Predicate{Predicate: &typespb.Predicate_Not{
				Not: &typespb.NotPredicate{Predicate: inner}}}, nil
		}
		return nil, fmt.Errorf("predicate: unknown operator %q", name)
	}
	return nil, nil
}

// buildQuery turns a query operation into an amaters.query.Query.
func buildQuery(op *opSpec) (*querypb.Query, error) {
	key, err := keyOf(op.Key, op.KeyHex)
	if err != nil {
		return nil, err
	}
	switch op.Op {
	case "get":
		return &querypb.Query{Query: &querypb.Query_Get{
			Get: &querypb.GetQuery{Collection: op.Collection, Key: key}}}, nil
	case "delete":
		return &querypb.Query{Query: &querypb.Query_Delete{
			Delete: &querypb.DeleteQuery{Collection: op.Collection, Key: key}}}, nil
	case "set":
		v, err := bytesOf(op.ValueJSON, op.ValueHex)
		if err != nil {
			return nil, err
		}
		val := &typespb.CipherBlob{Data: v}
		if op.Compression != 0 {
			val.Metadata = &typespb.CipherMetadata{
				Compression: typespb.CompressionType(op.Compression)}
		}
		return &querypb.Query{Query: &querypb.Query_Set{
			Set: &querypb.SetQuery{Collection: op.Collection, Key: key, Value: val}}}, nil
	case "range":
		start, err := keyOf(op.Start, op.StartHex)
		if err != nil {
			return nil, err
		}
		end, err := keyOf(op.End, op.EndHex)
		if err != nil {
			return nil, err
		}
		return &querypb.Query{Query: &querypb.Query_Range{Range: &querypb.RangeQuery{
			Collection: op.Collection, Start: start, End: end, Limit: op.Limit}}}, nil
	case "filter", "update":
		var pred *typespb.Predicate
		if len(op.Predicate) > 0 {
			if pred, err = buildPredicate(op.Predicate); err != nil {
				return nil, err
			}
		}
		if op.Op == "filter" {
			return &querypb.Query{Query: &querypb.Query_Filter{Filter: &querypb.FilterQuery{
				Collection: op.Collection, Predicate: pred, Limit: op.Limit,
				Offset: op.Offset}}}, nil
		}
		var ups []*typespb.Update
		for _, u := range op.Updates {
			for kind, fv := range u {
				col, val := &typespb.ColumnRef{Name: fv[0]}, blob(fv[1])
				switch kind {
				case "set":
					ups = append(ups, &typespb.Update{Operation: &typespb.Update_Set{
						Set: &typespb.SetUpdate{Column: col, Value: val}}})
				case "add":
					ups = append(ups, &typespb.Update{Operation: &typespb.Update_Add{
						Add: &typespb.AddUpdate{Column: col, Value: val}}})
				case "mul":
					ups = append(ups, &typespb.Update{Operation: &typespb.Update_Mul{
						Mul: &typespb.MulUpdate{Column: col, Value: val}}})
				default:
					return nil, fmt.Errorf("update: unknown kind %q", kind)
				}
			}
		}
		return &querypb.Query{Query: &querypb.Query_Update{Update: &querypb.UpdateQuery{
			Collection: op.Collection, Predicate: pred, Updates: ups}}}, nil
	}
	return nil, fmt.Errorf("not a query operation: %q", op.Op)
}

// buildRequest wraps a query operation in an amaters.aql.QueryRequest.
func buildRequest(op *opSpec) (*aqlpb.QueryRequest, error) {
	q, err := buildQuery(op)
	if err != nil {
		return nil, err
	}
	return &aqlpb.QueryRequest{Query: q, RequestId: op.RequestID, TimeoutMs: op.TimeoutMs}, nil
}

// generated returns the query operations |g| describes.
func generated(g *genSpec) []opSpec {
	kf := g.KeyFmt
	if kf == "" {
		kf = "k%07d"
	}
	pad := strings.Repeat("x", g.Pad)
	out := make([]opSpec, 0, g.N)
	for i := g.Start; i < g.Start+g.N; i++ {
		key := fmt.Sprintf(kf, i)
		id := "r" + strconv.Itoa(i)
		op := opSpec{Op: "get", Collection: g.Collection, Key: &key, RequestID: &id}
		if g.Kind == "set" {
			v := fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, pad)
			op.Op, op.ValueJSON = "set", &v
		}
		out = append(out, op)
	}
	return out
}

func queriesOf(op *opSpec) []opSpec {
	if op.Generate != nil {
		return generated(op.Generate)
	}
	return op.Queries
}

// ---- the operations ---------------------------------------------------------------

func (o *opOut) setCall(r callResult) {
	o.GrpcStatus, o.GrpcMessage, o.Trailers = r.grpcStatus, r.grpcMessage, r.trailers
	if o.Error == "" {
		o.Error = r.err
	}
}

// unary runs a unary call: |req| in, one answer of type |resp| out.
func (c *client) unary(op *opSpec, o *opOut, path string, req, resp proto.Message) bool {
	got := 0
	r := c.call(op, path, sendMsgs(req), func(b []byte) error {
		got++
		if got > 1 {
			return errors.New("more than one answer to a unary call")
		}
		return proto.Unmarshal(b, resp)
	})
	o.setCall(r)
	return got == 1 && r.err == ""
}

// amaters runs /AmateRS/Execute with |queryBytes|; the inner answer is decoded.
func (c *client) amaters(op *opSpec, o *opOut, queryBytes []byte) {
	var resp amaterspb.QueryResponse
	if !c.unary(op, o, "/AmateRS/Execute", &amaterspb.QueryRequest{QueryBytes: queryBytes}, &resp) {
		return
	}
	proof := hex.EncodeToString(resp.ServerProof)
	o.ServerProof = &proof
	var inner aqlpb.QueryResponse
	if err := proto.Unmarshal(resp.ResultBytes, &inner); err != nil {
		o.Error = "result_bytes: " + err.Error()
		return
	}
	o.Response = js(&inner)
}

func (c *client) runQuery(op *opSpec, o *opOut) {
	req, err := buildRequest(op)
	if err != nil {
		o.Error = err.Error()
		return
	}
	if op.Via == "amaters" {
		b, _ := proto.Marshal(req)
		c.amaters(op, o, b)
		return
	}
	var resp aqlpb.QueryResponse
	if c.unary(op, o, aqlSvc+"ExecuteQuery", req, &resp) {
		o.Response = js(&resp)
	}
}

func (c *client) runAmatersExecute(op *opSpec, o *opOut) {
	var b []byte
	var err error
	switch {
	case op.QueryBytes != nil:
		b, err = hex.DecodeString(*op.QueryBytes)
	case op.Query == nil:
		err = errors.New("amaters_execute: no query")
	case op.Bare:
		var q *querypb.Query
		if q, err = buildQuery(op.Query); err == nil {
			b, err = proto.Marshal(q)
		}
	default:
		var req *aqlpb.QueryRequest
		if req, err = buildRequest(op.Query); err == nil {
			b, err = proto.Marshal(req)
		}
	}
	if err != nil {
		o.Error = err.Error()
		return
	}
	c.amaters(op, o, b)
}

func (c *client) runBatch(op *opSpec, o *opOut) {
	qs := queriesOf(op)
	req := &aqlpb.BatchRequest{RequestId: op.RequestID, TimeoutMs: op.TimeoutMs}
	for i := range qs {
		q, err := buildQuery(&qs[i])
		if err != nil {
			o.Error = err.Error()
			return
		}
		req.Queries = append(req.Queries, q)
	}
	var resp aqlpb.BatchResponse
	if c.unary(op, o, aqlSvc+"ExecuteBatch", req, &resp) {
		o.Response = js(&resp)
	}
}

// vmRSS returns the VmRSS of process |pid| in KiB (-1 when unreadable).
func vmRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, ln := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(ln, "VmRSS:") {
			f := strings.Fields(ln)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return -1
}

func (c *client) runStream(op *opSpec, o *opOut) {
	if op.Query == nil {
		o.Error = "stream: no query"
		return
	}
	req, err := buildRequest(op.Query)
	if err != nil {
		o.Error = err.Error()
		return
	}
	nmsg, nvals, hmf, afterEnd := 0, 0, 0, 0
	seqOK, sorted, ended := true, true, false
	var lastKey []byte
	var endSeq int64 = -1
	var rssBase, rssSlow, rssMax int64 = -1, -1, -1
	if op.WatchPid > 0 {
		rssBase = vmRSS(op.WatchPid)
		rssSlow, rssMax = rssBase, rssBase
	}
	t0 := time.Now()
	r := c.call(op, aqlSvc+"ExecuteStream", sendMsgs(req), func(b []byte) error {
		var m aqlpb.StreamResponse
		if err := proto.Unmarshal(b, &m); err != nil {
			return err
		}
		slow := op.SlowForMs <= 0 || time.Since(t0) < time.Duration(op.SlowForMs)*time.Millisecond
		if op.WatchPid > 0 {
			v := vmRSS(op.WatchPid)
			if v > rssMax {
				rssMax = v
			}
			if slow && v > rssSlow {
				rssSlow = v
			}
		}
		if m.Sequence != uint64(nmsg) {
			seqOK = false
		}
		nmsg++
		if ended {
			afterEnd++
		}
		switch ch := m.Chunk.(type) {
		case *aqlpb.StreamResponse_Batch:
			if !ch.Batch.HasMore {
				hmf++
			}
			for _, kv := range ch.Batch.Values {
				k := kv.GetKey().GetData()
				if lastKey != nil && bytes.Compare(lastKey, k) >= 0 {
					sorted = false
				}
				lastKey = append([]byte(nil), k...)
				if nvals < op.KeepValues {
					o.Values = append(o.Values, js(kv))
				}
				nvals++
			}
		case *aqlpb.StreamResponse_End:
			ended = true
			endSeq = int64(m.Sequence)
			o.End = js(ch.End)
		case *aqlpb.StreamResponse_Error:
			o.Errors = append(o.Errors, js(&m))
		case *aqlpb.StreamResponse_Value:
			o.Errors = append(o.Errors, json.RawMessage(`"a single value message"`))
		}
		if slow && op.ReadDelayMs > 0 {
			time.Sleep(time.Duration(op.ReadDelayMs) * time.Millisecond)
		}
		return nil
	})
	o.setCall(r)
	o.NMessages, o.SequencesOK, o.NValues = intp(nmsg), boolp(seqOK), intp(nvals)
	o.KeysSorted, o.HasMoreFalse, o.AfterEnd = boolp(sorted), intp(hmf), intp(afterEnd)
	o.EndSequence = int64p(endSeq)
	if lastKey != nil {
		k := string(lastKey)
		o.LastKey = &k
	}
	if op.WatchPid > 0 {
		o.RssBaseKB, o.RssMaxSlowKB, o.RssMaxKB = int64p(rssBase), int64p(rssSlow), int64p(rssMax)
	}
}

func (c *client) runInteractive(op *opSpec, o *opOut) {
	qs := queriesOf(op)
	reqs := make([]*aqlpb.QueryRequest, len(qs))
	for i := range qs {
		r, err := buildRequest(&qs[i])
		if err != nil {
			o.Error = err.Error()
			return
		}
		reqs[i] = r
	}
	amaters := op.Via == "amaters"
	path := aqlSvc + "ExecuteInteractive"
	if amaters {
		path = "/AmateRS/ExecuteStream"
	}
	send := func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 64<<10)
		for _, req := range reqs {
			b, err := proto.Marshal(req)
			if err != nil {
				return err
			}
			if amaters {
				if b, err = proto.Marshal(&amaterspb.QueryRequest{QueryBytes: b}); err != nil {
					return err
				}
			}
			if _, err := bw.Write(frame(b)); err != nil {
				return err
			}
		}
		return bw.Flush()
	}
	n, nerr, inOrder := 0, 0, true
	o.ErrorCodes = map[int]int32{}
	r := c.call(op, path, send, func(b []byte) error {
		var resp aqlpb.QueryResponse
		if amaters {
			var outer amaterspb.QueryResponse
			if err := proto.Unmarshal(b, &outer); err != nil {
				return err
			}
			b = outer.ResultBytes
		}
		if err := proto.Unmarshal(b, &resp); err != nil {
			return err
		}
		if n >= len(reqs) || reqs[n].RequestId == nil ||
			resp.RequestId == nil || *resp.RequestId != *reqs[n].RequestId {
			inOrder = false
		}
		if e := resp.GetError(); e != nil {
			nerr++
			o.ErrorCodes[n] = int32(e.Code)
		}
		if op.MaxKept <= 0 || n < op.MaxKept {
			o.Responses = append(o.Responses, js(&resp))
		}
		n++
		return nil
	})
	o.setCall(r)
	o.NResponses, o.IdsInOrder, o.NErrors = intp(n), boolp(inOrder && n == len(reqs)), intp(nerr)
}

func (c *client) runOp(i int, op *opSpec) (o opOut) {
	o = opOut{Index: i, Op: op.Op, GrpcStatus: -1}
	t0 := time.Now()
	defer func() { o.Ms = time.Since(t0).Milliseconds() }()
	switch op.Op {
	case "get", "set", "delete", "range", "filter", "update":
		c.runQuery(op, &o)
	case "amaters_execute":
		c.runAmatersExecute(op, &o)
	case "batch":
		c.runBatch(op, &o)
	case "stream":
		c.runStream(op, &o)
	case "interactive":
		c.runInteractive(op, &o)
	case "health":
		var resp aqlpb.HealthCheckResponse
		if c.unary(op, &o, aqlSvc+"HealthCheck", &aqlpb.HealthCheckRequest{Service: op.Service},
			&resp) {
			o.Response = js(&resp)
		}
	case "info":
		var resp aqlpb.ServerInfoResponse
		if c.unary(op, &o, aqlSvc+"GetServerInfo", &aqlpb.ServerInfoRequest{}, &resp) {
			o.Response = js(&resp)
		}
	case "parallel":
		o.Results = make([]opOut, len(op.Ops))
		var wg sync.WaitGroup
		for j := range op.Ops {
			wg.Add(1)
			go func(j int) {
				defer wg.Done()
				o.Results[j] = c.runOp(j, &op.Ops[j])
			}(j)
		}
		wg.Wait()
	default:
		o.Error = fmt.Sprintf("unknown op %q", op.Op)
	}
	return o
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
	// Small receive windows, so a slow reader holds the server back soon.
	qc := &quic.Config{Versions: []quic.VersionNumber{quic.Version1}, MaxIncomingStreams: -1,
		HandshakeIdleTimeout: 10 * time.Second, MaxIdleTimeout: 30 * time.Second,
		InitialStreamReceiveWindow: 256 << 10, MaxStreamReceiveWindow: 1 << 20,
		InitialConnectionReceiveWindow: 512 << 10, MaxConnectionReceiveWindow: 4 << 20}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	conn, err := quic.DialAddrEarlyContext(ctx, sc.Addr, tlsConf, qc)
	if err == nil {
		select {
		case <-conn.HandshakeComplete().Done():
		case <-conn.Context().Done():
			err = errors.New("handshake failed")
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	cancel()
	enc := json.NewEncoder(os.Stdout)
	if err != nil {
		enc.Encode(map[string]interface{}{"conn": false, "error": err.Error()})
		return
	}
	c := &client{sc: &sc, conn: conn}
	c.rt = &http3.RoundTripper{
		TLSClientConfig:    tlsConf,
		DisableCompression: true,
		QuicConfig:         qc,
		Dial: func(context.Context, string, *tls.Config, *quic.Config) (quic.EarlyConnection, error) {
			return conn, nil
		},
	}
	for i := range sc.Ops {
		enc.Encode(c.runOp(i, &sc.Ops[i]))
	}
	last := map[string]interface{}{"conn": true, "error": ""}
	select {
	case <-conn.Context().Done():
		last["error"] = fmt.Sprint(conn.Context().Err())
	default:
	}
	enc.Encode(last)
	c.rt.Close()
}
