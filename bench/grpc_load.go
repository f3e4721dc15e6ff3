// grpc_load is a closed-loop gRPC load generator on grpc-go (Debian's 1.33),
// a gRPC stack neither etcd's nor ours: bench/etcd_compare.py drives etcd
// and nanasqlite-server with it where h2load cannot do the job, the writes,
// which must store a new value every request (h2load sends one body file
// for every request; SQLite skips a row whose value did not change).
//
// -c connections (one grpc-go ClientConn each), -m calls in flight on each
// (m goroutines calling one after another), for -duration after -warmup.
// Messages are written by hand (two fields; no generated code), sent and
// read as bytes:
//
//	-kind etcd-put  /etcdserverpb.KV/Put            PutRequest{key, value}
//	-kind nana-set  /nanasqlite.v1.NanaSQLite/Set   SetRequest{key, value_json}
//	-kind body      -path P -body FILE              the file's message (a framed
//	                                                gRPC request, as h2load sends it)
//
// Each connection has fixed flow-control windows (1 MiB a stream, 16 MiB in
// all), so grpc-go sends no window-sizing pings. Keys are key%07d drawn at
// random from -keys; every value is 64 bytes of one form on both kinds, a
// JSON string whose digits count the requests, so no two writes store the
// same value. -once sends one call and prints its status and answer (hex),
// for checking a request file before a run.
//
// Prints one JSON object: {"requests", "errors", "first_error", "seconds",
// "rps", "p50_us", "p99_us", "p999_us", "mean_us"}.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// rawCodec sends and receives messages as the bytes they already are.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }

func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ",") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "grpc_load: "+format+"\n", args...)
	os.Exit(1)
}

// field appends protobuf field |num| (length-delimited) holding |b|.
func field(out []byte, num int, b []byte) []byte {
	out = append(out, byte(num<<3|2))
	n := len(b)
	for n >= 0x80 {
		out = append(out, byte(n)|0x80)
		n >>= 7
	}
	out = append(out, byte(n))
	return append(out, b...)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:2379", "host:port")
	useTLS := flag.Bool("tls", false, "TLS (else h2c, prior knowledge)")
	ca := flag.String("ca", "", "CA file (with -tls)")
	serverName := flag.String("server-name", "localhost", "TLS server name")
	conns := flag.Int("c", 1, "connections")
	streams := flag.Int("m", 1, "calls in flight per connection")
	duration := flag.Duration("duration", 3*time.Second, "measured time")
	warmup := flag.Duration("warmup", time.Second, "time before measuring")
	kind := flag.String("kind", "etcd-put", "etcd-put, nana-set or body")
	path := flag.String("path", "", "method path (with -kind body)")
	bodyFile := flag.String("body", "", "framed request file (with -kind body)")
	keys := flag.Int("keys", 10000, "key space")
	once := flag.Bool("once", false, "one call; print its status and answer")
	var hdrs headers
	flag.Var(&hdrs, "H", "metadata 'name: value' (repeatable)")
	flag.Parse()

	var body []byte
	switch *kind {
	case "etcd-put":
		*path = "/etcdserverpb.KV/Put"
	case "nana-set":
		*path = "/nanasqlite.v1.NanaSQLite/Set"
	case "body":
		b, err := os.ReadFile(*bodyFile)
		if err != nil || len(b) < 5 {
			fail("body: %v", err)
		}
		body = b[5:]
	default:
		fail("unknown -kind %s", *kind)
	}
	md := metadata.MD{}
	for _, h := range hdrs {
		i := strings.Index(h, ":")
		if i < 0 {
			fail("bad -H %q", h)
		}
		md.Append(strings.TrimSpace(h[:i]), strings.TrimSpace(h[i+1:]))
	}
	// Fixed flow-control windows (1 MiB a stream, 16 MiB the connection):
	// grpc-go then sends no window-sizing (BDP) pings, the same for every server.
	opts := []grpc.DialOption{grpc.WithBlock(),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
		grpc.WithInitialWindowSize(1 << 20), grpc.WithInitialConnWindowSize(16 << 20)}
	if *useTLS {
		pool := x509.NewCertPool()
		pemCA, err := os.ReadFile(*ca)
		if err != nil || !pool.AppendCertsFromPEM(pemCA) {
			fail("CA %s: %v", *ca, err)
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(
			&tls.Config{RootCAs: pool, ServerName: *serverName})))
	} else {
		opts = append(opts, grpc.WithInsecure())
	}
	ccs := make([]*grpc.ClientConn, *conns)
	for i := range ccs {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cc, err := grpc.DialContext(dctx, *addr, opts...)
		cancel()
		if err != nil {
			fail("dial %s: %v", *addr, err)
		}
		ccs[i] = cc
	}
	ctx := metadata.NewOutgoingContext(context.Background(), md)
	if *once {
		var resp []byte
		err := ccs[0].Invoke(ctx, *path, &body, &resp)
		st, _ := status.FromError(err)
		fmt.Printf("{\"code\": %q, \"message\": %q, \"answer\": %q}\n", st.Code().String(),
			st.Message(), hex.EncodeToString(resp))
		return
	}

	var requests, errors int64
	var firstErr atomic.Value
	start := time.Now().Add(*warmup)
	end := start.Add(*duration)
	lat := make([][]int64, *conns**streams)
	var wg sync.WaitGroup
	for w := 0; w < *conns**streams; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			cc := ccs[w%*conns]
			rng := rand.New(rand.NewSource(int64(w) + 1))
			var resp []byte
			for n := 0; ; n++ {
				req := body
				if *kind != "body" {
					k := []byte(fmt.Sprintf("key%07d", rng.Intn(*keys)))
					// 64 bytes: a JSON string of 62 characters, counting requests.
					v := []byte(fmt.Sprintf("\"%04d%016d%042d\"", w, n, 0))
					req = field(field(nil, 1, k), 2, v)
				}
				t0 := time.Now()
				err := cc.Invoke(ctx, *path, &req, &resp)
				t1 := time.Now()
				if t1.After(end) {
					return
				}
				if t0.Before(start) {
					continue
				}
				atomic.AddInt64(&requests, 1)
				if err != nil {
					if atomic.AddInt64(&errors, 1) == 1 {
						firstErr.Store(err.Error())
					}
					continue
				}
				lat[w] = append(lat[w], t1.Sub(t0).Microseconds())
			}
		}(w)
	}
	wg.Wait()
	var all []int64
	var sum int64
	for _, l := range lat {
		all = append(all, l...)
		for _, x := range l {
			sum += x
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) int64 {
		if len(all) == 0 {
			return 0
		}
		return all[int(p*float64(len(all)-1))]
	}
	out := map[string]interface{}{"requests": requests, "errors": errors,
		"seconds": duration.Seconds(), "rps": float64(requests) / duration.Seconds(),
		"p50_us": pct(0.5), "p99_us": pct(0.99), "p999_us": pct(0.999)}
	if len(all) > 0 {
		out["mean_us"] = sum / int64(len(all))
	}
	if e := firstErr.Load(); e != nil {
		out["first_error"] = e
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail("%v", err)
	}
}
