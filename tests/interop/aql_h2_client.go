// aql_h2_client is a gRPC client of nanasqlite-server's gRPC door over
// HTTP/2 and TLS for the end-to-end tests (tests/e2e/test_grpc_h2.py). It
// is built on grpc-go 1.33 (Debian's golang-google-grpc-dev) and Go's TLS,
// neither of which the server shares anything with: calls go through grpc-go's
// generic ClientConn.Invoke and NewStream, and the messages are built and
// read by Go's protobuf 1.28 from code gen-go-protos.sh generates out of the
// repository's .proto files.
//
// grpc-go 1.33's own codec marshals with github.com/golang/protobuf 1.3,
// which cannot handle messages generated for the newer runtime (oneofs), so
// every call forces a codec on google.golang.org/protobuf/proto.
//
// It reads one JSON script on stdin, runs its operations one after another
// on ONE ClientConn (one connection) and prints one JSON line per operation,
// then {"conn": true, "alpn", "tls"}:
//
//	{"addr": "127.0.0.1:PORT", "ca": "ca.pem", "server_name": "localhost",
//	 "timeout_s": 60, "tls_max": "1.2" (default: 1.3),
//	 "login": "sign" | "token" | "cert" | "",
//	 "account": "alice", "key": "nana_private.pem",   (sign: the signature
//	          metadata, over the TLS exporter of this connection, learned
//	          from a first health Check)
//	 "token": "JWT",                                   (token: authorization)
//	 "cert": "c.pem", "cert_key": "c-key.pem",         (cert: mTLS)
//	 "ops": [OP, ...]}
//
// Operations (each may give "deadline_ms", the call's deadline):
//
//	{"op": "health", "service": ""}           grpc.health.v1.Health/Check
//	{"op": "aql_health"}                      AqlService/HealthCheck
//	{"op": "query", "kind": "set"|"get", "key", "value", "collection"}
//	{"op": "batch", "n", "prefix"}            ExecuteBatch of n sets prefix%05d
//	{"op": "stream", "start", "end"}          ExecuteStream of a range
//	{"op": "interactive", "n", "prefix", "kind": "set"|"get"}
//	        ExecuteInteractive: n queries sent at once (set prefix%05d = i, or
//	        get it) while the answers are read
//	{"op": "raw", "path"}                     an empty message to any path
//	{"op": "load", "seconds", "streams", "key"}  ExecuteQuery gets of one key
//	        from |streams| goroutines at once for |seconds|, as a busy
//	        application does (grpc-go pings to size its windows meanwhile);
//	        the first error ends it
//
// An operation's line: {"index", "op", "code" (grpc-go's name: "OK",
// "NotFound", ...), "message", "ms", and: "status" (health), "affected",
// "value", "error_code" (query), "results" (batch), "values", "sorted",
// "total", "sequences_ok" (stream), "answers", "in_order", "errors"
// (interactive), "calls", "errors", "first_error" (load)}.
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	aqlpb "nanatest/amaters/aql"
	querypb "nanatest/amaters/query"
	typespb "nanatest/amaters/types"
	healthpb "nanatest/health"
)

type script struct {
	Addr       string   `json:"addr"`
	CA         string   `json:"ca"`
	ServerName string   `json:"server_name"`
	TimeoutS   int      `json:"timeout_s"`
	TLSMax     string   `json:"tls_max"`
	Login      string   `json:"login"`
	Account    string   `json:"account"`
	Key        string   `json:"key"`
	Token      string   `json:"token"`
	Cert       string   `json:"cert"`
	CertKey    string   `json:"cert_key"`
	Ops        []opSpec `json:"ops"`
}

type opSpec struct {
	Op         string `json:"op"`
	Service    string `json:"service"`
	Kind       string `json:"kind"`
	Key        string `json:"key"`
	Value      string `json:"value"`
	Collection string `json:"collection"`
	N          int    `json:"n"`
	Prefix     string `json:"prefix"`
	Start      string `json:"start"`
	End        string `json:"end"`
	Path       string `json:"path"`
	Seconds    int    `json:"seconds"`
	Streams    int    `json:"streams"`
	DeadlineMs int    `json:"deadline_ms"`
}

// protoCodec marshals with google.golang.org/protobuf (see the top).
type protoCodec struct{}

func (protoCodec) Marshal(v interface{}) ([]byte, error) {
	return proto.Marshal(v.(proto.Message))
}

func (protoCodec) Unmarshal(data []byte, v interface{}) error {
	return proto.Unmarshal(data, v.(proto.Message))
}

func (protoCodec) Name() string { return "proto" }

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "aql_h2_client: "+format+"\n", args...)
	os.Exit(1)
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

// signLogin returns the door's login metadata (GRPC.md, "Logging in"): an
// Ed25519 signature over the connection's TLS exporter value, the account
// and a timestamp.
func signLogin(st *tls.ConnectionState, account, keyPath string) (metadata.MD, error) {
	exp, err := st.ExportKeyingMaterial("EXPORTER-nanasqlite-grpc-login", nil, 32)
	if err != nil {
		return nil, err
	}
	key, err := readKey(keyPath)
	if err != nil {
		return nil, err
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	var m bytes.Buffer
	m.WriteString("nanasqlite-grpc-login-v1")
	m.WriteByte(0)
	m.Write(exp)
	m.WriteString(account)
	m.WriteByte(0)
	m.WriteString(ts)
	sig := ed25519.Sign(key, m.Bytes())
	return metadata.Pairs("nana-account", account, "nana-timestamp", ts,
		"nana-signature-bin", string(sig)), nil
}

type client struct {
	cc      *grpc.ClientConn
	md      metadata.MD // sent with every call
	timeout time.Duration
	state   *tls.ConnectionState
}

// ctx is a call's context: the script's metadata and the op's deadline (or the script's).
func (c *client) ctx(op *opSpec) (context.Context, context.CancelFunc) {
	d := c.timeout
	if op.DeadlineMs > 0 {
		d = time.Duration(op.DeadlineMs) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	if len(c.md) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, c.md)
	}
	return ctx, cancel
}

func (c *client) invoke(op *opSpec, path string, req, resp proto.Message) error {
	ctx, cancel := c.ctx(op)
	defer cancel()
	var p peer.Peer
	err := c.cc.Invoke(ctx, path, req, resp, grpc.ForceCodec(protoCodec{}), grpc.Peer(&p))
	if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && c.state == nil {
		st := ti.State
		c.state = &st
	}
	return err
}

func key(k string) *typespb.Key { return &typespb.Key{Data: []byte(k)} }

func setQ(coll, k, v string) *querypb.Query {
	return &querypb.Query{Query: &querypb.Query_Set{Set: &querypb.SetQuery{
		Collection: coll, Key: key(k), Value: &typespb.CipherBlob{Data: []byte(v)}}}}
}

func getQ(coll, k string) *querypb.Query {
	return &querypb.Query{Query: &querypb.Query_Get{Get: &querypb.GetQuery{
		Collection: coll, Key: key(k)}}}
}

const aqlSvc = "/amaters.aql.AqlService/"

func (c *client) run(op *opSpec, out map[string]interface{}) error {
	switch op.Op {
	case "health":
		resp := &healthpb.HealthCheckResponse{}
		err := c.invoke(op, "/grpc.health.v1.Health/Check",
			&healthpb.HealthCheckRequest{Service: op.Service}, resp)
		out["status"] = resp.Status.String()
		return err
	case "aql_health":
		resp := &aqlpb.HealthCheckResponse{}
		err := c.invoke(op, aqlSvc+"HealthCheck", &aqlpb.HealthCheckRequest{}, resp)
		out["status"] = resp.Status.String()
		return err
	case "query":
		q := getQ(op.Collection, op.Key)
		if op.Kind == "set" {
			q = setQ(op.Collection, op.Key, op.Value)
		}
		resp := &aqlpb.QueryResponse{}
		err := c.invoke(op, aqlSvc+"ExecuteQuery", &aqlpb.QueryRequest{Query: q}, resp)
		if e := resp.GetError(); e != nil {
			out["error_code"] = e.Code.String()
		}
		if r := resp.GetResult(); r != nil {
			if s := r.GetSuccess(); s != nil {
				out["affected"] = s.AffectedRows
			}
			if s := r.GetSingle(); s != nil && s.Value != nil {
				out["value"] = string(s.Value.Data)
			}
		}
		return err
	case "batch":
		req := &aqlpb.BatchRequest{}
		for i := 0; i < op.N; i++ {
			k := fmt.Sprintf("%s%05d", op.Prefix, i)
			req.Queries = append(req.Queries, setQ(op.Collection, k, strconv.Itoa(i)))
		}
		resp := &aqlpb.BatchResponse{}
		err := c.invoke(op, aqlSvc+"ExecuteBatch", req, resp)
		if e := resp.GetError(); e != nil {
			out["error_code"] = e.Code.String()
		}
		out["results"] = len(resp.GetResults().GetResults())
		return err
	case "stream":
		return c.stream(op, out)
	case "interactive":
		return c.interactive(op, out)
	case "load":
		return c.load(op, out)
	case "raw":
		return c.invoke(op, op.Path, &healthpb.HealthCheckRequest{},
			&healthpb.HealthCheckResponse{})
	}
	return fmt.Errorf("unknown op %q", op.Op)
}

// stream runs ExecuteStream of a range and checks what came back.
func (c *client) stream(op *opSpec, out map[string]interface{}) error {
	ctx, cancel := c.ctx(op)
	defer cancel()
	desc := &grpc.StreamDesc{StreamName: "ExecuteStream", ServerStreams: true}
	st, err := c.cc.NewStream(ctx, desc, aqlSvc+"ExecuteStream", grpc.ForceCodec(protoCodec{}))
	if err != nil {
		return err
	}
	q := &querypb.Query{Query: &querypb.Query_Range{Range: &querypb.RangeQuery{
		Collection: op.Collection, Start: key(op.Start), End: key(op.End)}}}
	if err := st.SendMsg(&aqlpb.QueryRequest{Query: q}); err != nil {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	var keys []string
	seqOK, total := true, uint64(0)
	for n := uint64(0); ; n++ {
		m := &aqlpb.StreamResponse{}
		if err := st.RecvMsg(m); err != nil {
			if err == io.EOF {
				break
			}
			return err
		}
		if m.Sequence != n {
			seqOK = false
		}
		for _, kv := range m.GetBatch().GetValues() {
			keys = append(keys, string(kv.Key.Data))
		}
		if e := m.GetEnd(); e != nil {
			total = e.TotalCount
		}
	}
	out["values"] = len(keys)
	out["sorted"] = sort.StringsAreSorted(keys)
	out["total"] = total
	out["sequences_ok"] = seqOK
	return nil
}

// interactive sends every query of ExecuteInteractive at once from one
// goroutine while this one reads the answers.
func (c *client) interactive(op *opSpec, out map[string]interface{}) error {
	ctx, cancel := c.ctx(op)
	defer cancel()
	desc := &grpc.StreamDesc{StreamName: "ExecuteInteractive", ServerStreams: true,
		ClientStreams: true}
	st, err := c.cc.NewStream(ctx, desc, aqlSvc+"ExecuteInteractive",
		grpc.ForceCodec(protoCodec{}))
	if err != nil {
		return err
	}
	sendErr := make(chan error, 1)
	go func() {
		for i := 0; i < op.N; i++ {
			k := fmt.Sprintf("%s%05d", op.Prefix, i)
			q := getQ(op.Collection, k)
			if op.Kind == "set" {
				q = setQ(op.Collection, k, strconv.Itoa(i))
			}
			id := "r" + strconv.Itoa(i)
			if err := st.SendMsg(&aqlpb.QueryRequest{Query: q, RequestId: &id}); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- st.CloseSend()
	}()
	answers, errs, inOrder := 0, 0, true
	for {
		m := &aqlpb.QueryResponse{}
		if err := st.RecvMsg(m); err != nil {
			if err == io.EOF {
				break
			}
			return err
		}
		if m.GetRequestId() != "r"+strconv.Itoa(answers) {
			inOrder = false
		}
		if m.GetError() != nil {
			errs++
		} else if op.Kind == "set" {
			if m.GetResult().GetSuccess().GetAffectedRows() != 1 {
				errs++
			}
		} else {
			v := m.GetResult().GetSingle().GetValue()
			if v == nil || string(v.Data) != strconv.Itoa(answers) {
				errs++
			}
		}
		answers++
	}
	if err := <-sendErr; err != nil {
		return err
	}
	out["answers"] = answers
	out["in_order"] = inOrder
	out["errors"] = errs
	return nil
}

// load calls ExecuteQuery from op.Streams goroutines for op.Seconds.
func (c *client) load(op *opSpec, out map[string]interface{}) error {
	end := time.Now().Add(time.Duration(op.Seconds) * time.Second)
	var mu sync.Mutex
	calls, errs, first := 0, 0, ""
	var wg sync.WaitGroup
	for g := 0; g < op.Streams; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				mu.Lock()
				stop := errs > 0 // the first error ends the load
				mu.Unlock()
				if stop {
					return
				}
				resp := &aqlpb.QueryResponse{}
				err := c.invoke(op, aqlSvc+"ExecuteQuery",
					&aqlpb.QueryRequest{Query: getQ(op.Collection, op.Key)}, resp)
				mu.Lock()
				calls++
				if err != nil || resp.GetResult() == nil {
					errs++
					if first == "" {
						first = fmt.Sprint(err)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	out["calls"] = calls
	out["errors"] = errs
	out["first_error"] = first
	return nil
}

func main() {
	var sc script
	if err := json.NewDecoder(os.Stdin).Decode(&sc); err != nil {
		fail("script: %v", err)
	}
	pemCA, err := os.ReadFile(sc.CA)
	if err != nil {
		fail("%v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		fail("%s: no certificate", sc.CA)
	}
	tc := &tls.Config{RootCAs: pool, ServerName: sc.ServerName, MinVersion: tls.VersionTLS12}
	if sc.TLSMax == "1.2" {
		tc.MaxVersion = tls.VersionTLS12
	}
	if sc.Login == "cert" {
		pair, err := tls.LoadX509KeyPair(sc.Cert, sc.CertKey)
		if err != nil {
			fail("%v", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	if sc.TimeoutS <= 0 {
		sc.TimeoutS = 60
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Second)
	cc, err := grpc.DialContext(dctx, sc.Addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithBlock(), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	dcancel()
	if err != nil {
		fail("dial %s: %v", sc.Addr, err)
	}
	c := &client{cc: cc, timeout: time.Duration(sc.TimeoutS) * time.Second}
	// A health Check (no login needed) tells the connection's TLS state.
	hop := &opSpec{}
	if err := c.invoke(hop, "/grpc.health.v1.Health/Check", &healthpb.HealthCheckRequest{},
		&healthpb.HealthCheckResponse{}); err != nil || c.state == nil {
		fail("first health Check: %v", err)
	}
	switch sc.Login {
	case "sign":
		md, err := signLogin(c.state, sc.Account, sc.Key)
		if err != nil {
			fail("login: %v", err)
		}
		c.md = md
	case "token":
		c.md = metadata.Pairs("authorization", "Bearer "+sc.Token)
	}
	enc := json.NewEncoder(os.Stdout)
	for i := range sc.Ops {
		op := &sc.Ops[i]
		out := map[string]interface{}{"index": i, "op": op.Op}
		t0 := time.Now()
		err := c.run(op, out)
		st, _ := status.FromError(err)
		out["code"] = st.Code().String()
		out["message"] = st.Message()
		out["ms"] = time.Since(t0).Milliseconds()
		if err := enc.Encode(out); err != nil {
			fail("%v", err)
		}
	}
	ver := map[uint16]string{tls.VersionTLS12: "1.2", tls.VersionTLS13: "1.3"}[c.state.Version]
	if err := enc.Encode(map[string]interface{}{"conn": true,
		"alpn": c.state.NegotiatedProtocol, "tls": ver}); err != nil {
		fail("%v", err)
	}
	cc.Close()
}
