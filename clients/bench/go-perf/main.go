// go-perf: a second, independent load generator for clients/bench/compare, on amqp091-go (the
// Go client RabbitMQ maintains), so that no figure depends on warren-perf and rabbitmq-c alone.
// It speaks the subset of warren-perf's options that compare uses for W1, W2 and W3, declares
// the same topology (direct exchange "warren-perf.direct", ".durable" appended with --durable,
// each queue bound with its own name), stamps the send time in the first 8 body bytes
// (little-endian nanoseconds of one monotonic clock, read back by the consumer in the same
// process), prints "measure start" / "measure end" around the measured phase and ends with the
// same RESULT line. Built offline in GOPATH mode from Debian's golang-github-rabbitmq-amqp091-go-dev.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"math/bits"
	"os"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

type config struct {
	uri          string
	cacert       string // with amqps: the CA certificates (PEM) the server is verified against
	producers    int
	consumers    int
	queue        string
	size         int
	autoack      bool
	prefetch     int
	multiAck     int
	confirm      int
	durable      bool
	persistent   bool
	timeLimit    float64
	count        uint64
	rate         float64
	drain        bool
	deleteQueues bool
	maxTime      float64
	stallTimeout float64
	markerWait   bool
}

// The monotonic clock both stamps and reads bodies: nanoseconds since the process began.
var epoch = time.Now()

func now() uint64 { return uint64(time.Since(epoch)) }

// histogram: log-linear buckets, 64 per power of two (under 1.6 % error), as warren-perf's.
// One goroutine writes each; they are merged once the writers have finished.
const subBits = 6
const subCount = 1 << subBits

type histogram struct {
	buckets  [(64 - subBits + 1) * subCount]uint64
	count    uint64
	min, max uint64
}

func (h *histogram) record(v uint64) {
	if v == 0 {
		v = 1
	}
	index := v
	if v >= subCount {
		shift := uint64(bits.Len64(v) - subBits - 1)
		index = (shift+1)*subCount + (v >> shift) - subCount
	}
	h.buckets[index]++
	h.count++
	if h.min == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

func (h *histogram) merge(o *histogram) {
	for i, n := range o.buckets {
		h.buckets[i] += n
	}
	h.count += o.count
	if o.count > 0 && (h.min == 0 || o.min < h.min) {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
}

// quantile returns a bucket midpoint clamped to [min, max]; 0 when empty.
func (h *histogram) quantile(q float64) uint64 {
	if h.count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.count)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, n := range h.buckets {
		seen += n
		if seen < rank {
			continue
		}
		value := uint64(i)
		if i >= subCount {
			shift := uint64(i/subCount - 1)
			lower := (uint64(i%subCount) + subCount) << shift
			value = lower + (uint64(1)<<shift)/2
		}
		if value < h.min {
			value = h.min
		}
		if value > h.max {
			value = h.max
		}
		return value
	}
	return h.max
}

type worker struct {
	published, confirmed, nacked, delivered atomic.Uint64
	latency, confirmLatency                 histogram
	done                                    atomic.Bool
	err                                     error
}

type run struct {
	cfg             *config
	exchange        string
	queue           string
	ready           atomic.Int32
	producersReady  atomic.Int32
	start           atomic.Bool // the measured phase has begun
	stopPublishing  atomic.Bool
	stop            atomic.Bool
	failed          atomic.Bool
	workers         []*worker
	producerWorkers []*worker
}

func (r *run) fail(w *worker, format string, args ...interface{}) {
	w.err = fmt.Errorf(format, args...)
	r.failed.Store(true)
	r.stop.Store(true)
}

// waitStart blocks a connected worker until the measured phase begins; false if the run stopped.
func (r *run) waitStart() bool {
	for !r.start.Load() {
		if r.stop.Load() {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return !r.stop.Load()
}

func dial(cfg *config) (*amqp.Connection, *amqp.Channel, error) {
	amqpConfig := amqp.Config{FrameSize: 131072, Locale: "en_US"}
	if cfg.cacert != "" {
		pem, err := os.ReadFile(cfg.cacert)
		if err != nil {
			return nil, nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("no certificate in %s", cfg.cacert)
		}
		amqpConfig.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	conn, err := amqp.DialConfig(cfg.uri, amqpConfig)
	if err != nil {
		return nil, nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, ch, nil
}

func producer(r *run, w *worker, index int) {
	defer w.done.Store(true)
	cfg := r.cfg
	conn, ch, err := dial(cfg)
	if err != nil {
		r.fail(w, "producer %d: %v", index, err)
		return
	}
	defer conn.Close()
	window := uint64(cfg.confirm)
	var confirms chan amqp.Confirmation
	var sentAt []uint64
	if window > 0 {
		if err := ch.Confirm(false); err != nil {
			r.fail(w, "producer %d: confirm.select: %v", index, err)
			return
		}
		confirms = ch.NotifyPublish(make(chan amqp.Confirmation, window))
		sentAt = make([]uint64, window)
	}
	mode := amqp.Transient
	if cfg.persistent {
		mode = amqp.Persistent
	}
	body := make([]byte, cfg.size)
	r.producersReady.Add(1)
	if !r.waitStart() {
		return
	}
	// amqp091-go hands confirmations over in delivery-tag order, one per publish.
	var nextSeq, settled uint64 = 1, 1
	settle := func(c amqp.Confirmation) {
		t := now()
		if c.Ack {
			w.confirmed.Add(1)
			w.confirmLatency.record(t - sentAt[c.DeliveryTag%window])
		} else {
			w.nacked.Add(1)
		}
		settled = c.DeliveryTag + 1
	}
	waitConfirm := func() bool {
		select {
		case c, ok := <-confirms:
			if !ok {
				r.fail(w, "producer %d: channel closed", index)
				return false
			}
			settle(c)
		case <-time.After(100 * time.Millisecond):
		}
		return true
	}
	var interval uint64
	if cfg.rate > 0 {
		interval = uint64(1e9 / cfg.rate)
	}
	start := now()
	var sent uint64
	for !r.stop.Load() && !r.stopPublishing.Load() && (cfg.count == 0 || sent < cfg.count) {
		if window > 0 && nextSeq-settled >= window {
			if !waitConfirm() {
				return
			}
			continue
		}
		if interval > 0 {
			if due, t := start+sent*interval, now(); t < due {
				wait := due - t
				if wait > uint64(100*time.Millisecond) {
					wait = uint64(100 * time.Millisecond)
				}
				time.Sleep(time.Duration(wait))
				continue
			}
		}
		t := now()
		if len(body) >= 8 {
			binary.LittleEndian.PutUint64(body, t)
		}
		if window > 0 {
			sentAt[nextSeq%window] = t
			nextSeq++
		}
		err := ch.Publish(r.exchange, r.queue, false, false,
			amqp.Publishing{DeliveryMode: mode, Body: body})
		if err != nil {
			r.fail(w, "producer %d: publish: %v", index, err)
			return
		}
		sent++
		w.published.Add(1)
		for window > 0 && len(confirms) > 0 {
			settle(<-confirms)
		}
	}
	for window > 0 && settled < nextSeq && !r.stop.Load() {
		if !waitConfirm() {
			return
		}
	}
}

func consumer(r *run, w *worker, index int) {
	defer w.done.Store(true)
	cfg := r.cfg
	conn, ch, err := dial(cfg)
	if err != nil {
		r.fail(w, "consumer %d: %v", index, err)
		return
	}
	defer conn.Close()
	if cfg.prefetch > 0 && !cfg.autoack {
		if err := ch.Qos(cfg.prefetch, 0, false); err != nil {
			r.fail(w, "consumer %d: basic.qos: %v", index, err)
			return
		}
	}
	// With producers, consuming starts before the measured phase (the queue is empty); with none,
	// draining the backlog is the measured work, so basic.consume waits for the start.
	drainingBacklog := cfg.producers == 0
	if drainingBacklog {
		r.ready.Add(1)
		if !r.waitStart() {
			return
		}
	}
	deliveries, err := ch.Consume(r.queue, "", cfg.autoack, false, false, false, nil)
	if err != nil {
		r.fail(w, "consumer %d: basic.consume: %v", index, err)
		return
	}
	if !drainingBacklog {
		r.ready.Add(1)
	}
	var pending int
	var lastTag uint64
	flush := func() error {
		if pending == 0 {
			return nil
		}
		err := ch.Ack(lastTag, pending > 1)
		pending = 0
		return err
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !r.stop.Load() {
		select {
		case d, ok := <-deliveries:
			if !ok {
				r.fail(w, "consumer %d: deliveries ended (channel closed)", index)
				return
			}
			if len(d.Body) >= 8 {
				w.latency.record(now() - binary.LittleEndian.Uint64(d.Body))
			}
			w.delivered.Add(1)
			if !cfg.autoack {
				pending++
				lastTag = d.DeliveryTag
				if pending >= cfg.multiAck {
					if err := flush(); err != nil {
						r.fail(w, "consumer %d: basic.ack: %v", index, err)
						return
					}
				}
			}
		case <-tick.C:
			if err := flush(); err != nil {
				r.fail(w, "consumer %d: basic.ack: %v", index, err)
				return
			}
		}
	}
	flush()
}

type totals struct{ published, confirmed, nacked, delivered uint64 }

func (r *run) totals() totals {
	var t totals
	for _, w := range r.workers {
		t.published += w.published.Load()
		t.confirmed += w.confirmed.Load()
		t.nacked += w.nacked.Load()
		t.delivered += w.delivered.Load()
	}
	return t
}

func (r *run) producersDone() bool {
	for _, w := range r.producerWorkers {
		if !w.done.Load() {
			return false
		}
	}
	return true
}

// watch follows the run until a stop condition, like warren-perf's; it returns the status word,
// the backlog when publishing ended and how long publishing lasted.
func (r *run) watch(start time.Time) (string, uint64, float64) {
	cfg := r.cfg
	var backlog uint64
	publishSeconds := -1.0
	recordPublishEnd := func(t totals, elapsed float64) {
		if publishSeconds >= 0 {
			return
		}
		publishSeconds = elapsed
		if t.published > t.delivered {
			backlog = t.published - t.delivered
		}
	}
	nextLine, lastProgress := time.Second, time.Duration(0)
	var last, previous totals
	for {
		time.Sleep(10 * time.Millisecond)
		since := time.Since(start)
		elapsed := since.Seconds()
		t := r.totals()
		if t != last {
			last, lastProgress = t, since
		}
		if since >= nextLine {
			fmt.Printf("%7.1f s  sent %8d/s  confirmed %8d/s  received %8d/s\n", elapsed,
				t.published-previous.published, t.confirmed-previous.confirmed, t.delivered-previous.delivered)
			previous = t
			nextLine += time.Second
		}
		if cfg.count > 0 && cfg.producers > 0 && r.producersDone() {
			recordPublishEnd(t, elapsed)
		}
		status := ""
		switch {
		case r.failed.Load():
			status = "error"
		case r.stop.Load():
			status = "interrupted"
		case cfg.count > 0 && cfg.producers == 0 && t.delivered >= cfg.count:
			status = "ok"
		case cfg.count > 0 && cfg.producers > 0 && r.producersDone() &&
			(cfg.consumers == 0 || t.delivered >= uint64(cfg.producers)*cfg.count):
			status = "ok"
		case r.stopPublishing.Load() && r.producersDone() && t.delivered >= t.published:
			status = "ok"
		}
		if status == "" && cfg.timeLimit > 0 && elapsed >= cfg.timeLimit && !r.stopPublishing.Load() {
			recordPublishEnd(t, elapsed)
			if !cfg.drain || cfg.consumers == 0 {
				if cfg.count > 0 {
					status = "time-limit"
				} else {
					status = "ok"
				}
			} else {
				r.stopPublishing.Store(true)
				lastProgress = since
			}
		}
		if status == "" && elapsed >= cfg.maxTime {
			status = "max-time"
		}
		if status == "" && (cfg.count > 0 || r.stopPublishing.Load()) && (since-lastProgress).Seconds() >= cfg.stallTimeout {
			status = "stalled"
		}
		if status != "" {
			recordPublishEnd(t, elapsed)
			return status, backlog, publishSeconds
		}
	}
}

var stdin = bufio.NewReader(os.Stdin)

// marker brackets the measured phase for a driver reading the broker's CPU; with --marker-wait
// the driver answers each marker with a line on stdin, so nothing moves in between.
func marker(cfg *config, which string) {
	fmt.Printf("measure %s\n", which)
	os.Stdout.Sync()
	if cfg.markerWait {
		if _, err := stdin.ReadString('\n'); err != nil {
			fmt.Fprintln(os.Stderr, "go-perf: --marker-wait: stdin closed")
		}
	}
}

func micros(ns uint64) float64 { return float64(ns) / 1000 }

func parse() *config {
	cfg := &config{}
	flag.StringVar(&cfg.uri, "uri", "amqp://guest:guest@127.0.0.1:5672/", "amqp://user:pass@host:port/vhost (amqps://... over TLS)")
	flag.StringVar(&cfg.cacert, "cacert", "", "with amqps: verify the server against the CA certificates in this PEM file")
	flag.IntVar(&cfg.producers, "producers", 1, "publishing goroutines, one connection each")
	flag.IntVar(&cfg.consumers, "consumers", 1, "consuming goroutines, one connection each")
	flag.StringVar(&cfg.queue, "queue", "", "queue name (default: server-named, deleted at the end)")
	flag.IntVar(&cfg.size, "size", 64, "body size; bodies of 8 bytes or more carry the send time")
	flag.BoolVar(&cfg.autoack, "autoack", false, "consume with no-ack")
	flag.IntVar(&cfg.prefetch, "prefetch", 0, "basic.qos prefetch count per consumer (0 = unlimited)")
	flag.IntVar(&cfg.multiAck, "multi-ack", 1, "ack every N deliveries with multiple=true")
	flag.IntVar(&cfg.confirm, "confirm", 0, "publisher confirms, at most WINDOW unconfirmed per producer")
	flag.BoolVar(&cfg.durable, "durable", false, "declare the exchange and queue durable")
	flag.BoolVar(&cfg.persistent, "persistent", false, "publish with delivery-mode 2")
	flag.Float64Var(&cfg.timeLimit, "time", 0, "run time in seconds (default 10 unless --count is given)")
	flag.Uint64Var(&cfg.count, "count", 0, "messages per producer; with no producers, deliveries to wait for")
	flag.Float64Var(&cfg.rate, "rate", 0, "messages per second per producer (0 = unlimited)")
	flag.BoolVar(&cfg.drain, "drain", false, "after --time, stop publishing but consume until everything arrived")
	flag.BoolVar(&cfg.deleteQueues, "delete-queues", false, "delete a named queue at the end too")
	flag.Float64Var(&cfg.maxTime, "max-time", 600, "hard bound on any run, seconds")
	flag.Float64Var(&cfg.stallTimeout, "stall-timeout", 10, "end a run when nothing moved for this long")
	flag.BoolVar(&cfg.markerWait, "marker-wait", false, "after each measure marker, wait for a line on stdin")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "go-perf: unexpected argument %q\n", flag.Arg(0))
		os.Exit(64)
	}
	if cfg.producers == 0 && cfg.consumers == 0 {
		fmt.Fprintln(os.Stderr, "go-perf: nothing to do: no producers and no consumers")
		os.Exit(64)
	}
	if cfg.multiAck < 1 {
		cfg.multiAck = 1
	}
	if cfg.prefetch > 0 && cfg.multiAck > cfg.prefetch {
		cfg.multiAck = cfg.prefetch
	}
	if cfg.timeLimit == 0 && cfg.count == 0 {
		cfg.timeLimit = 10
	}
	if cfg.timeLimit > cfg.maxTime {
		cfg.maxTime = cfg.timeLimit
	}
	return cfg
}

func main() {
	cfg := parse()
	r := &run{cfg: cfg, exchange: "warren-perf.direct"}
	if cfg.durable {
		r.exchange += ".durable"
	}

	setupStart := time.Now()
	setupConn, setup, err := dial(cfg)
	if err == nil {
		err = setup.ExchangeDeclare(r.exchange, "direct", cfg.durable, false, false, false, nil)
	}
	var q amqp.Queue
	if err == nil {
		q, err = setup.QueueDeclare(cfg.queue, cfg.durable, false, false, false, nil)
	}
	if err == nil {
		r.queue = q.Name
		err = setup.QueueBind(r.queue, r.queue, r.exchange, false, nil)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-perf: set-up: %v\n", err)
		os.Exit(1)
	}
	setupSeconds := time.Since(setupStart).Seconds()
	fmt.Printf("set-up: exchange %s, queue %s in %.2f s\n", r.exchange, r.queue, setupSeconds)

	var wg sync.WaitGroup
	consumers := make([]*worker, cfg.consumers)
	for i := range consumers {
		consumers[i] = &worker{}
		r.workers = append(r.workers, consumers[i])
		wg.Add(1)
		go func(w *worker, i int) { defer wg.Done(); consumer(r, w, i) }(consumers[i], i)
	}
	for r.ready.Load() < int32(cfg.consumers) && !r.failed.Load() {
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < cfg.producers && !r.failed.Load(); i++ {
		w := &worker{}
		r.workers = append(r.workers, w)
		r.producerWorkers = append(r.producerWorkers, w)
		wg.Add(1)
		go func(w *worker, i int) { defer wg.Done(); producer(r, w, i) }(w, i)
	}
	for r.producersReady.Load() < int32(cfg.producers) && !r.failed.Load() {
		time.Sleep(time.Millisecond)
	}

	status, backlog, publishSeconds := "error", uint64(0), 0.0
	var elapsed float64
	if !r.failed.Load() {
		marker(cfg, "start")
		start := time.Now()
		r.start.Store(true)
		status, backlog, publishSeconds = r.watch(start)
		elapsed = time.Since(start).Seconds()
		r.stopPublishing.Store(true)
		marker(cfg, "end")
	}
	r.stop.Store(true)
	wg.Wait()

	errors := 0
	for _, w := range r.workers {
		if w.err != nil {
			fmt.Fprintf(os.Stderr, "go-perf: %v\n", w.err)
			errors++
		}
	}
	if status != "error" {
		var latency, confirm histogram
		for _, w := range r.workers {
			latency.merge(&w.latency)
			confirm.merge(&w.confirmLatency)
		}
		t := r.totals()
		seconds := math.Max(elapsed, 1e-9)
		fmt.Printf("--- summary: %.2f s (set-up %.2f s), status %s\n", seconds, setupSeconds, status)
		fmt.Printf("published %d  confirmed %d  delivered %d  backlog when publishing ended %d after %.2f s\n",
			t.published, t.confirmed, t.delivered, backlog, publishSeconds)
		fmt.Printf("RESULT elapsed=%.3f setup=%.3f published=%d confirmed=%d nacked=%d returned=0 "+
			"delivered=%d pub_rate=%.1f conf_rate=%.1f del_rate=%.1f "+
			"lat_min_us=%.1f lat_p50_us=%.1f lat_p99_us=%.1f lat_p999_us=%.1f lat_max_us=%.1f "+
			"conf_p50_us=%.1f conf_p99_us=%.1f backlog=%d publish_s=%.3f status=%s\n",
			seconds, setupSeconds, t.published, t.confirmed, t.nacked, t.delivered,
			float64(t.published)/seconds, float64(t.confirmed)/seconds, float64(t.delivered)/seconds,
			micros(latency.min), micros(latency.quantile(0.5)), micros(latency.quantile(0.99)),
			micros(latency.quantile(0.999)), micros(latency.max),
			micros(confirm.quantile(0.5)), micros(confirm.quantile(0.99)), backlog, publishSeconds, status)
	}

	if cfg.queue == "" || cfg.deleteQueues {
		if _, err := setup.QueueDelete(r.queue, false, false, false); err != nil {
			fmt.Fprintf(os.Stderr, "go-perf: clean-up: queue.delete: %v\n", err)
			errors++
		}
	}
	setupConn.Close()
	switch {
	case errors > 0 || status == "error":
		os.Exit(1)
	case status != "ok" && status != "interrupted":
		os.Exit(2)
	}
}
