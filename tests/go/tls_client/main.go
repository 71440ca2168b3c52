// tests/go/tls_client: amqp091-go over TLS, for tests/integration/test_tls.py. Dials
// amqps://.../ with the CA (and a client certificate when given), logging in with PLAIN or, with
// -external, SASL EXTERNAL; declares a queue, publishes one message with a confirm, gets it
// back and prints its body. Built offline in GOPATH mode from Debian's
// golang-github-rabbitmq-amqp091-go-dev.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	url := flag.String("url", "", "amqps://user:pass@localhost:port/")
	ca := flag.String("ca", "", "CA bundle (PEM)")
	cert := flag.String("cert", "", "client certificate (PEM)")
	key := flag.String("key", "", "client key (PEM)")
	external := flag.Bool("external", false, "log in with SASL EXTERNAL")
	queue := flag.String("queue", "go-tls", "queue name")
	flag.Parse()

	pem, err := os.ReadFile(*ca)
	if err != nil {
		fail("reading %s: %v", *ca, err)
	}
	config := &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "localhost"}
	config.RootCAs.AppendCertsFromPEM(pem)
	if *cert != "" {
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			fail("loading the client certificate: %v", err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	var conn *amqp.Connection
	if *external {
		conn, err = amqp.DialTLS_ExternalAuth(*url, config)
	} else {
		conn, err = amqp.DialTLS(*url, config)
	}
	if err != nil {
		fail("dial: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		fail("channel: %v", err)
	}
	if _, err = ch.QueueDeclare(*queue, false, true, false, false, nil); err != nil {
		fail("declare: %v", err)
	}
	if err = ch.Confirm(false); err != nil {
		fail("confirm: %v", err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1))
	if err = ch.Publish("", *queue, false, false, amqp.Publishing{Body: []byte("from amqp091-go")}); err != nil {
		fail("publish: %v", err)
	}
	select {
	case c := <-confirms:
		if !c.Ack {
			fail("publish nacked")
		}
	case <-time.After(10 * time.Second):
		fail("no confirm")
	}
	msg, ok, err := ch.Get(*queue, true)
	if err != nil || !ok {
		fail("get: ok=%v err=%v", ok, err)
	}
	fmt.Print(string(msg.Body))
}
