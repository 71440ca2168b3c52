#!/usr/bin/python3
"""Runs the io_lever relay's back ends interleaved (issue 14): for every round and rate, each
back end once, the order rotating from round to round. Per run it reads the relay's CPU over
the measured window only (the load prints "start"/"end" after both connections are up):
utime+stime from /proc/PID/stat (clock ticks) and, for resolution at low rates, the sum of
/proc/PID/task/*/schedstat run times (ns; io_uring worker threads included while they live).
A separate run per back end and rate counts system calls with
perf stat -e raw_syscalls:sys_enter (and per-call tracepoints) attached to the relay for the
window. Prints a markdown table of medians with [min-max], and writes every run to --json.

  clients/bench/io_lever/run.py --build build --rounds 5
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
EVENTS = ["raw_syscalls:sys_enter", "syscalls:sys_enter_epoll_wait",
          "syscalls:sys_enter_recvfrom", "syscalls:sys_enter_sendmsg",
          "syscalls:sys_enter_epoll_ctl", "syscalls:sys_enter_io_uring_enter"]


def stat_cpu(pid):
    """utime + stime of the whole process, in seconds (tick resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def schedstat_cpu(pid):
    """Run time of every live thread of the process, in seconds (ns resolution)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            pass
    return total / 1e9


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def run_once(args, backend, rate, count_syscalls):
    relay = subprocess.Popen([args.relay, "--backend", backend], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    port = relay.stdout.readline().split()[1]
    load = subprocess.Popen([args.load, "--port", port, "--rate", str(rate),
                             "--warmup", str(args.warmup), "--duration", str(args.duration)],
                            stdout=subprocess.PIPE, text=True)
    run = {"backend": backend, "rate": rate, "loadavg_before": loadavg()}
    perf = None
    perf_out = f"/tmp/io_lever_perf.{relay.pid}.csv"
    for line in load.stdout:
        words = line.split()
        if words[0] == "start":
            relay.send_signal(signal.SIGUSR1)
            if count_syscalls:
                perf = subprocess.Popen(["perf", "stat", "-x,", "-o", perf_out,
                                         "-e", ",".join(EVENTS), "-p", str(relay.pid),
                                         "--", "sleep", str(args.duration)])
            else:
                cpu0, sched0 = stat_cpu(relay.pid), schedstat_cpu(relay.pid)
        elif words[0] == "end":
            if not count_syscalls:
                cpu1, sched1 = stat_cpu(relay.pid), schedstat_cpu(relay.pid)
            relay.send_signal(signal.SIGUSR1)
        elif words[0] == "result":
            values = dict(zip(words[1::2], words[2::2]))
            run["messages"] = int(values["messages"])
            run["rate_measured"] = float(values["rate"])
            run["p50_us"] = float(values["p50_us"])
            run["p99_us"] = float(values["p99_us"])
    load.wait()
    _, errors = relay.communicate()
    if relay.returncode or load.returncode or "messages" not in run:
        sys.exit(f"run failed: {backend} {rate}: {errors}")
    run["loadavg_after"] = loadavg()
    messages = max(run["messages"], 1)
    snapshots = [int(line.split()[3]) for line in errors.splitlines()
                 if line.startswith("snapshot")]
    passes = snapshots[1] - snapshots[0] if len(snapshots) == 2 else None
    if count_syscalls:
        perf.wait()
        counts = {}
        with open(perf_out) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) > 2 and parts[2] in EVENTS:
                    counts[parts[2].split(":")[1]] = int(parts[0]) if parts[0].isdigit() else None
        os.unlink(perf_out)
        run["syscalls"] = counts
        run["syscalls_per_message"] = counts["sys_enter"] / messages
        if passes:
            run["syscalls_per_pass"] = counts["sys_enter"] / passes
    else:
        run["cpu_us_per_message"] = (cpu1 - cpu0) * 1e6 / messages
        run["sched_us_per_message"] = (sched1 - sched0) * 1e6 / messages
        run["cpu_fraction"] = (sched1 - sched0) / args.duration
        if passes is not None:
            run["passes_per_message"] = passes / messages
    return run


def spread(values, digits):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    fmt = f"{{:.{digits}f}}"
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}–{fmt.format(max(values))}]"


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build", help="the CMake build directory")
    parser.add_argument("--backends", default="epoll,uring,uring-defer")
    parser.add_argument("--rates", default="0,1000,10000,50000", help="msg/s, 0 = saturation")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--json", default="io_lever.json")
    args = parser.parse_args()
    where = os.path.join(args.build, "clients", "bench", "io_lever")
    args.relay, args.load = os.path.join(where, "relay"), os.path.join(where, "load")
    backends = args.backends.split(",")
    rates = [int(r) for r in args.rates.split(",")]

    runs = []
    began = time.time()
    for round_index in range(args.rounds):
        for rate in rates:
            shift = round_index % len(backends)
            for backend in backends[shift:] + backends[:shift]:
                run = run_once(args, backend, rate, False)
                run["round"] = round_index
                runs.append(run)
                print(json.dumps(run), file=sys.stderr, flush=True)
    for rate in rates:
        for backend in backends:
            run = run_once(args, backend, rate, True)
            run["round"] = "syscalls"
            runs.append(run)
            print(json.dumps(run), file=sys.stderr, flush=True)
    with open(args.json, "w") as f:
        json.dump({"began": began, "ended": time.time(), "args": vars(args), "runs": runs}, f,
                  indent=1)

    print(f"| rate | back end | msg/s | CPU µs/msg (stat) | CPU µs/msg (schedstat) | relay CPU % "
          f"| passes/msg | syscalls/pass | syscalls/msg | p50 µs | p99 µs | loadavg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for rate in rates:
        for backend in backends:
            timed = [r for r in runs if r["backend"] == backend and r["rate"] == rate
                     and r["round"] != "syscalls"]
            counted = [r for r in runs if r["backend"] == backend and r["rate"] == rate
                       and r["round"] == "syscalls"]
            loads = [r["loadavg_before"] for r in timed] + [r["loadavg_after"] for r in timed]
            print(f"| {'saturation' if rate == 0 else rate} | {backend} "
                  f"| {spread([r['rate_measured'] for r in timed], 0)} "
                  f"| {spread([r['cpu_us_per_message'] for r in timed], 2)} "
                  f"| {spread([r['sched_us_per_message'] for r in timed], 2)} "
                  f"| {spread([100 * r['cpu_fraction'] for r in timed], 0)} "
                  f"| {spread([r.get('passes_per_message') for r in timed], 3)} "
                  f"| {spread([r.get('syscalls_per_pass') for r in counted], 2)} "
                  f"| {spread([r['syscalls_per_message'] for r in counted], 2)} "
                  f"| {spread([r['p50_us'] for r in timed], 0)} "
                  f"| {spread([r['p99_us'] for r in timed], 0)} "
                  f"| {min(loads):.1f}–{max(loads):.1f} |")


if __name__ == "__main__":
    main()
