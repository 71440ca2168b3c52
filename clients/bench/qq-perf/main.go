// qq-perf: the client of clients/bench/cluster_quorum_bench.py, on amqp091-go. One process holds
// producers and consumers on different nodes of a cluster, so their confirm and delivery
// latencies land in one histogram. Messages go through the default exchange to one queue the
// driver has declared (a quorum queue: this client declares nothing).
//
// Throughput mode (the default): connect every producer and consumer, print "ready", wait for a
// line on stdin, then publish for --warmup seconds unmeasured, print "measure start" and wait
// for a line (the driver reads the brokers' CPU), run --time seconds, print "measure end" and
// wait for a line, stop, wait up to --settle seconds for outstanding confirms, print one RESULT
// line of key=value pairs.
//
// Failover mode (--failover): one producer (the first --publish URI), consumers as given; after
// "ready" and a line, publish until stdin says "mark KILL_NS" (the driver has just sent SIGKILL,
// at CLOCK_MONOTONIC KILL_NS), then print "FIRST ms=X gap_ms=Y" when the first confirm of a
// message published after the mark arrives (X from the kill; Y the longest time without any
// confirm since the mark); "settle" waits until confirms flow again with the window not full (or
// --settle seconds) and prints "SETTLED outstanding=N nacked=M"; "stop" ends with a RESULT line.
//
// Built offline in GOPATH mode from Debian's golang-github-rabbitmq-amqp091-go-dev, as go-perf.
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	amqp "github.com/rabbitmq/amqp091-go"
)

var epoch = time.Now()

// now: nanoseconds of one monotonic clock since the process began (stamped into bodies).
func now() uint64 { return uint64(time.Since(epoch)) }

// histogram: log-linear, 64 buckets per power of two (as go-perf's and warren-perf's).
const subBits = 6
const subCount = 1 << subBits

type histogram struct {
	mu       sync.Mutex
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
	h.mu.Lock()
	h.buckets[index]++
	h.count++
	if h.min == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.mu.Unlock()
}

// quantile: a bucket midpoint clamped to [min, max]; 0 when empty.
func (h *histogram) quantile(q float64) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
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
			value = (uint64(i%subCount)+subCount)<<shift + (uint64(1)<<shift)/2
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

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

var (
	publishURIs, consumeURIs listFlag
	queue                    string
	size, window, prefetch   int
	multiAck                 int
	rate, warmup, runTime    float64
	settleTime               float64
	failover                 bool
)

// Counters: only what happens while measuring is true counts toward the RESULT line.
var (
	measuring                              atomic.Bool
	stopping                               atomic.Bool
	published, confirmed, nacked, received atomic.Uint64
	totalPublished, totalSettled           atomic.Uint64
	confirmLatency, deliveryLatency        histogram
	errorsMu                               sync.Mutex
	errorsSeen                             []string
	// Failover: the mark's time and the first confirm of a publish made after it.
	markAt, firstAfterMark, lastConfirmAt atomic.Uint64
	firstAfterMarkMonotonic               atomic.Uint64
	longestGap                            atomic.Uint64
	// --slow-ms: confirms slower than this are written to stderr, with the wall clock of their
	// publish, to be lined up with the brokers' logs (where a latency tail comes from).
	slowNs uint64
)

func fail(format string, args ...interface{}) {
	errorsMu.Lock()
	errorsSeen = append(errorsSeen, fmt.Sprintf(format, args...))
	errorsMu.Unlock()
	fmt.Fprintf(os.Stderr, "qq-perf: "+format+"\n", args...)
}

func dial(uri string) (*amqp.Connection, *amqp.Channel, error) {
	conn, err := amqp.DialConfig(uri, amqp.Config{FrameSize: 131072, Locale: "en_US"})
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

// producer publishes persistent messages with at most `window` unconfirmed, paced at `rate`
// messages per second when rate > 0; start is closed when publishing may begin.
func producer(uri string, ready *sync.WaitGroup, start chan struct{}, done *sync.WaitGroup) {
	defer done.Done()
	conn, ch, err := dial(uri)
	if err != nil {
		fail("producer %s: %v", uri, err)
		ready.Done()
		return
	}
	defer conn.Close()
	if err := ch.Confirm(false); err != nil {
		fail("producer %s: confirm.select: %v", uri, err)
		ready.Done()
		return
	}
	w := uint64(window)
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, w+1))
	sentAt := make([]uint64, w)
	counted := make([]bool, w) // published while measuring
	body := make([]byte, size)
	ready.Done()
	<-start
	var nextSeq, settled uint64 = 1, 1
	settle := func(c amqp.Confirmation) {
		t := now()
		slot := c.DeliveryTag % w
		if c.Ack {
			if measuring.Load() { // every confirm arriving in the window counts
				confirmed.Add(1)
				confirmLatency.record(t - sentAt[slot])
			}
			if slowNs != 0 && t-sentAt[slot] > slowNs {
				sent := epoch.Add(time.Duration(sentAt[slot]))
				fmt.Fprintf(os.Stderr, "SLOW %s confirm_ms=%.1f producer=%s tag=%d\n",
					sent.UTC().Format("15:04:05.000000"), float64(t-sentAt[slot])/1e6, uri, c.DeliveryTag)
			}
		} else {
			nacked.Add(1)
		}
		if m := markAt.Load(); m != 0 {
			if last := lastConfirmAt.Load(); last != 0 {
				from := last
				if from < m {
					from = m
				}
				if t > from && t-from > longestGap.Load() {
					longestGap.Store(t - from)
				}
			}
			if c.Ack && sentAt[slot] >= m && firstAfterMark.Load() == 0 {
				firstAfterMarkMonotonic.Store(monotonic())
				firstAfterMark.Store(t)
			}
		}
		lastConfirmAt.Store(t)
		totalSettled.Add(1)
		settled = c.DeliveryTag + 1
	}
	wait := func() bool {
		select {
		case c, ok := <-confirms:
			if !ok {
				if !stopping.Load() {
					fail("producer %s: channel closed with %d unconfirmed", uri, nextSeq-settled)
				}
				return false
			}
			settle(c)
		case <-time.After(100 * time.Millisecond):
		}
		return true
	}
	var interval uint64
	if rate > 0 {
		interval = uint64(1e9 / rate)
	}
	began := now()
	var sent uint64
	for !stopping.Load() {
		if nextSeq-settled >= w {
			if !wait() {
				return
			}
			continue
		}
		if interval > 0 {
			if due, t := began+sent*interval, now(); t < due {
				d := due - t
				if d > uint64(50*time.Millisecond) {
					d = uint64(50 * time.Millisecond)
				}
				time.Sleep(time.Duration(d))
				continue
			}
		}
		t := now()
		binary.LittleEndian.PutUint64(body, t)
		slot := nextSeq % w
		sentAt[slot], counted[slot] = t, measuring.Load()
		nextSeq++
		if err := ch.Publish("", queue, false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body}); err != nil {
			fail("producer %s: publish: %v", uri, err)
			return
		}
		sent++
		totalPublished.Add(1)
		if counted[slot] {
			published.Add(1)
		}
		for len(confirms) > 0 {
			settle(<-confirms)
		}
	}
	// Outstanding confirms: wait for them (a lost confirm shows as unconfirmed at the end).
	deadline := time.Now().Add(time.Duration(settleTime * float64(time.Second)))
	for settled < nextSeq && time.Now().Before(deadline) {
		if !wait() {
			return
		}
	}
	if settled < nextSeq {
		fail("producer %s: %d publishes unconfirmed %.0f s after publishing stopped", uri,
			nextSeq-settled, settleTime)
	}
}

func consumer(uri string, ready *sync.WaitGroup, done *sync.WaitGroup) {
	defer done.Done()
	conn, ch, err := dial(uri)
	if err != nil {
		fail("consumer %s: %v", uri, err)
		ready.Done()
		return
	}
	defer conn.Close()
	if prefetch > 0 {
		if err := ch.Qos(prefetch, 0, false); err != nil {
			fail("consumer %s: basic.qos: %v", uri, err)
			ready.Done()
			return
		}
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		fail("consumer %s: basic.consume: %v", uri, err)
		ready.Done()
		return
	}
	ready.Done()
	var pending int
	var lastTag uint64
	flush := func() {
		if pending > 0 {
			if err := ch.Ack(lastTag, pending > 1); err != nil && !stopping.Load() {
				fail("consumer %s: basic.ack: %v", uri, err)
			}
			pending = 0
		}
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !stopping.Load() {
		select {
		case d, ok := <-deliveries:
			if !ok {
				if !stopping.Load() {
					fail("consumer %s: deliveries ended (channel or connection closed)", uri)
				}
				return
			}
			if measuring.Load() {
				received.Add(1)
				if len(d.Body) >= 8 {
					deliveryLatency.record(now() - binary.LittleEndian.Uint64(d.Body))
				}
			}
			pending++
			lastTag = d.DeliveryTag
			if pending >= multiAck {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
	flush()
}

var stdin = bufio.NewReader(os.Stdin)

func line() string {
	s, err := stdin.ReadString('\n')
	if err != nil && s == "" {
		return "stop"
	}
	return strings.TrimSpace(s)
}

func say(format string, args ...interface{}) {
	fmt.Printf(format+"\n", args...)
	os.Stdout.Sync()
}

// monotonic: CLOCK_MONOTONIC in nanoseconds, the clock of the driver's time.monotonic_ns().
func monotonic() uint64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0)
	return uint64(ts.Sec)*1e9 + uint64(ts.Nsec)
}

func ms(ns uint64) float64 { return float64(ns) / 1e6 }
func us(ns uint64) float64 { return float64(ns) / 1e3 }

func main() {
	flag.Var(&publishURIs, "publish", "a producer on this URI (repeat for more)")
	flag.Var(&consumeURIs, "consume", "a consumer on this URI (repeat for more)")
	flag.StringVar(&queue, "queue", "qq-bench", "the (already declared) queue")
	flag.IntVar(&size, "size", 1024, "body bytes (at least 8: the send time)")
	flag.IntVar(&window, "confirm", 256, "at most this many unconfirmed publishes per producer")
	flag.Float64Var(&rate, "rate", 0, "messages per second per producer (0: as fast as the window allows)")
	flag.IntVar(&prefetch, "prefetch", 500, "basic.qos per consumer")
	flag.IntVar(&multiAck, "multi-ack", 50, "ack every N deliveries with multiple=true (and every 50 ms)")
	flag.Float64Var(&warmup, "warmup", 2, "unmeasured seconds of publishing before the window")
	flag.Float64Var(&runTime, "time", 10, "measured seconds")
	flag.Float64Var(&settleTime, "settle", 30, "seconds to wait for outstanding confirms at the end")
	flag.BoolVar(&failover, "failover", false, "failover mode (see the top of main.go)")
	slowMs := flag.Float64("slow-ms", 0, "write each confirm slower than this to stderr (0: none)")
	flag.Parse()
	slowNs = uint64(*slowMs * 1e6)
	if len(publishURIs) == 0 || size < 8 || window < 1 {
		fmt.Fprintln(os.Stderr, "qq-perf: needs --publish URI, --size >= 8 and --confirm >= 1")
		os.Exit(2)
	}
	if failover {
		publishURIs = publishURIs[:1]
	}
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for _, uri := range consumeURIs {
		ready.Add(1)
		done.Add(1)
		go consumer(uri, &ready, &done)
	}
	for _, uri := range publishURIs {
		ready.Add(1)
		done.Add(1)
		go producer(uri, &ready, start, &done)
	}
	ready.Wait()
	say("ready")
	line()
	close(start)
	var measured time.Duration
	if failover {
		measuring.Store(true)
		began := time.Now()
		for {
			cmd := line()
			if strings.HasPrefix(cmd, "mark") {
				// "mark KILL_NS": the driver has just sent the kill, at CLOCK_MONOTONIC KILL_NS.
				killNs, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(cmd, "mark")), 10, 64)
				firstAfterMark.Store(0)
				longestGap.Store(0)
				markAt.Store(now())
				go func(m, killNs uint64) {
					for firstAfterMark.Load() == 0 && !stopping.Load() && markAt.Load() == m {
						time.Sleep(time.Millisecond)
					}
					if f := firstAfterMark.Load(); f != 0 && markAt.Load() == m {
						gap := longestGap.Load()
						if f-m > gap {
							gap = f - m
						}
						fromKill := ms(f - m)
						if fm := firstAfterMarkMonotonic.Load(); killNs != 0 && fm > killNs {
							fromKill = ms(fm - killNs)
						}
						say("FIRST ms=%.1f from_mark_ms=%.1f gap_ms=%.1f", fromKill, ms(f-m), ms(gap))
					}
				}(markAt.Load(), killNs)
			} else if cmd == "settle" {
				deadline := time.Now().Add(time.Duration(settleTime * float64(time.Second)))
				// Publishing goes on, so "settled" means confirms flow again (one in the last
				// 100 ms) and the window is not full.
				for time.Now().Before(deadline) && (totalPublished.Load()-totalSettled.Load() >= uint64(window) ||
					now()-lastConfirmAt.Load() > uint64(100*time.Millisecond)) {
					time.Sleep(10 * time.Millisecond)
				}
				say("SETTLED outstanding=%d nacked=%d", totalPublished.Load()-totalSettled.Load(), nacked.Load())
			} else if cmd == "stop" {
				break
			}
		}
		measured = time.Since(began)
	} else {
		time.Sleep(time.Duration(warmup * float64(time.Second)))
		say("measure start")
		line() // the driver reads the brokers' CPU; the window starts once it has
		measuring.Store(true)
		began := time.Now()
		time.Sleep(time.Duration(runTime * float64(time.Second)))
		measuring.Store(false)
		measured = time.Since(began)
		say("measure end")
		line()
	}
	stopping.Store(true)
	finished := make(chan struct{})
	go func() { done.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(time.Duration((settleTime + 5) * float64(time.Second))):
		fail("workers did not finish")
	}
	status := "ok"
	if len(errorsSeen) > 0 {
		status = "error"
	}
	say("RESULT seconds=%.3f published=%d confirmed=%d nacked=%d received=%d "+
		"conf_p50_us=%.0f conf_p99_us=%.0f conf_p999_us=%.0f conf_max_us=%.0f "+
		"lat_p50_us=%.0f lat_p99_us=%.0f unconfirmed=%d status=%s errors=%d",
		measured.Seconds(), published.Load(), confirmed.Load(), nacked.Load(), received.Load(),
		us(confirmLatency.quantile(0.5)), us(confirmLatency.quantile(0.99)),
		us(confirmLatency.quantile(0.999)), us(confirmLatency.quantile(1)),
		us(deliveryLatency.quantile(0.5)), us(deliveryLatency.quantile(0.99)),
		totalPublished.Load()-totalSettled.Load(), status, len(errorsSeen))
	for _, e := range errorsSeen {
		fmt.Fprintln(os.Stderr, "qq-perf error:", e)
	}
}
