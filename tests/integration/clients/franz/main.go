// franz-client: a franz-go (github.com/twmb/franz-go) Kafka client for kgateway's
// integration tests. It produces --count numbered records to --topic, then consumes them in
// the consumer group --group, and prints one JSON object; on failure it prints
// "franz-client: FAILED: <why>" on stderr and exits 1.
//
// Its security options are the ones every client script of tests/integration/clients takes
// (harness/client_security.py writes them): --security-protocol, --ssl-ca, --ssl-cert,
// --ssl-key, --sasl-mechanism, --sasl-username, --sasl-password.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

type options struct {
	bootstrap, topic, group             string
	count                               int
	timeout                             time.Duration
	protocol, caFile, certFile, keyFile string
	mechanism, username, password       string
}

func parse() options {
	var o options
	flag.StringVar(&o.bootstrap, "bootstrap", "", "host:port[,host:port]")
	flag.StringVar(&o.topic, "topic", "", "topic to produce to and consume from")
	flag.StringVar(&o.group, "group", "", "consumer group (default: franz-<topic>)")
	flag.IntVar(&o.count, "count", 30, "records to produce and consume")
	timeout := flag.Float64("timeout", 60, "seconds before giving up")
	flag.StringVar(&o.protocol, "security-protocol", "PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
	flag.StringVar(&o.caFile, "ssl-ca", "", "PEM CA file the server certificate is checked against")
	flag.StringVar(&o.certFile, "ssl-cert", "", "PEM client certificate (mTLS)")
	flag.StringVar(&o.keyFile, "ssl-key", "", "PEM client key (mTLS)")
	flag.StringVar(&o.mechanism, "sasl-mechanism", "", "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER")
	flag.StringVar(&o.username, "sasl-username", "", "SASL user (OAUTHBEARER: the token's subject)")
	flag.StringVar(&o.password, "sasl-password", "", "SASL password")
	flag.Parse()
	o.timeout = time.Duration(*timeout * float64(time.Second))
	if o.group == "" {
		o.group = "franz-" + o.topic
	}
	return o
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "franz-client: FAILED: "+format+"\n", args...)
	os.Exit(1)
}

func tlsConfig(o options) (*tls.Config, error) {
	config := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", o.caFile)
		}
		config.RootCAs = pool
	}
	if o.certFile != "" || o.keyFile != "" {
		pair, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return nil, err
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return config, nil
}

// unsecuredToken is an unsigned JWS ("alg": "none"), what Kafka's unsecured OAUTHBEARER
// validator accepts: the subject is the principal.
func unsecuredToken(subject string) string {
	encode := func(v any) string {
		raw, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(raw)
	}
	now := time.Now().Unix()
	return encode(map[string]any{"alg": "none"}) + "." +
		encode(map[string]any{"sub": subject, "iat": now, "exp": now + 3600}) + "."
}

func mechanism(o options) (sasl.Mechanism, error) {
	switch o.mechanism {
	case "PLAIN":
		return plain.Auth{User: o.username, Pass: o.password}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: o.username, Pass: o.password}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: o.username, Pass: o.password}.AsSha512Mechanism(), nil
	case "OAUTHBEARER":
		return oauth.Auth{Token: unsecuredToken(o.username)}.AsMechanism(), nil
	}
	return nil, fmt.Errorf("unknown SASL mechanism %q", o.mechanism)
}

func clientOptions(o options) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(o.bootstrap, ",")...),
		kgo.ClientID("franz-client"),
		// Warnings on stderr: a refused login or handshake is logged there (the produce
		// itself only ends in a timeout, as franz-go retries).
		kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelWarn, nil)),
		kgo.RequestRetries(3),
		kgo.RetryTimeout(o.timeout / 2),
	}
	if o.protocol == "SSL" || o.protocol == "SASL_SSL" {
		config, err := tlsConfig(o)
		if err != nil {
			return nil, err
		}
		// kgo sets each connection's ServerName to the host it dials, so the host name
		// (or IP SAN) is verified as librdkafka and Java verify it.
		opts = append(opts, kgo.DialTLSConfig(config))
	}
	if strings.HasPrefix(o.protocol, "SASL_") {
		m, err := mechanism(o)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func main() {
	o := parse()
	if o.bootstrap == "" || o.topic == "" {
		fail("--bootstrap and --topic are required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	base, err := clientOptions(o)
	if err != nil {
		fail("%v", err)
	}

	producer, err := kgo.NewClient(append(base, kgo.DefaultProduceTopic(o.topic), kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		fail("%v", err)
	}
	records := make([]*kgo.Record, o.count)
	for seq := range records {
		records[seq] = &kgo.Record{Key: []byte(strconv.Itoa(seq)), Value: []byte(fmt.Sprintf("franz-%08d", seq))}
	}
	if err := producer.ProduceSync(ctx, records...).FirstErr(); err != nil {
		fail("produce: %v", err)
	}
	producer.Close()

	consumer, err := kgo.NewClient(append(base,
		kgo.ConsumerGroup(o.group),
		kgo.ConsumeTopics(o.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
	)...)
	if err != nil {
		fail("%v", err)
	}
	seen := map[int]int{}
	for len(seen) < o.count {
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			fail("consumed %d of %d records before the timeout", len(seen), o.count)
		}
		var errs []string
		fetches.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				errs = append(errs, fmt.Sprintf("%s/%d: %v", topic, partition, err))
			}
		})
		if len(errs) > 0 {
			fail("consume: %s", strings.Join(errs, "; "))
		}
		fetches.EachRecord(func(r *kgo.Record) {
			seq, err := strconv.Atoi(string(r.Key))
			if err == nil && string(r.Value) == fmt.Sprintf("franz-%08d", seq) {
				seen[seq]++
			}
		})
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		fail("commit: %v", err)
	}
	consumer.Close()

	duplicates := []int{}
	for seq, n := range seen {
		if n > 1 {
			duplicates = append(duplicates, seq)
		}
	}
	sort.Ints(duplicates)
	out, _ := json.Marshal(map[string]any{
		"client": "franz-go", "produced": o.count, "consumed": len(seen),
		"duplicates": duplicates, "group": o.group,
	})
	fmt.Println(string(out))
}
